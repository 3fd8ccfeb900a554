//! Person names in free text, without a model: a gazetteer of given names and surnames
//! (`names/*.txt`, built by `tools/names/` from census and registry lists; sources and
//! licences in `tools/names/SOURCES.md`) checked on capitalised words that the finder
//! ([`name_candidates`]) or a detector's pattern proposes.
//!
//! The lists are sorted text; the given names and surnames are looked up in hash tables of
//! their lines built at compile time (nothing is built in a VM).
//! Three checks, from the weakest context to the strongest:
//! - [`given_surname`]: two to five capitalised words, anywhere; the first a given name, the
//!   last a surname ("assigned to Maria Garcia", "Maria Garcia called").
//! - [`known_name`]: the words after a greeting, a header or under a role key (`Hi Jan,`,
//!   `From: Pieter de Vries`): one given name, or words starting with a given name or a
//!   surname.
//! - [`cjk_name`]: two to five Han characters or kana before an honorific (`山田太郎様`) or
//!   after a label (`氏名：`), starting with a Han surname.
//!
//! The first two refuse a name that is part of a place ("Maria Street", "Rue Victor Hugo",
//! "San Jose"): [`in_place`], and for the finder's runs [`place_run`].

static GIVEN: &str = include_str!("names/given.txt");
static SURNAMES: &str = include_str!("names/surnames.txt");
static CJK_SURNAMES: &str = include_str!("names/cjk_surnames.txt");

/// Given names that are also words capitalised in titles and UI text; as the first word of a
/// name found without context they are not taken ("May Update", "Will Call").
static FIRST_STOP: WordSet = WordSet::new(&[
    "april",
    "art",
    "august",
    "baby",
    "best",
    "bill",
    "bliss",
    "chase",
    "christian",
    "dawn",
    "don",
    "early",
    "easter",
    "faith",
    "fair",
    "free",
    "golden",
    "grant",
    "happy",
    "hope",
    "joy",
    "june",
    "justice",
    "king",
    "lady",
    "long",
    "lord",
    "major",
    "mark",
    "may",
    "miss",
    "new",
    "page",
    "pat",
    "prince",
    "queen",
    "rich",
    "royal",
    "sky",
    "star",
    "summer",
    "sunny",
    "true",
    "will",
    "young",
    "saint",
    "sainte",
    "san",
    "santa",
    "santo",
    "sankt",
    "st",
]);

/// Words listed as surnames that end team, product and account labels far more often than
/// names (`Sales Team`, `Premium Plan`, `Root User`). Colours are surnames too (`Brown`,
/// `White`, `Green`): only the colour names that are two listed words are refused
/// ([`COLOUR_NAMES`]).
static LAST_STOP: WordSet = WordSet::new(&[
    "bot",
    "department",
    "group",
    "member",
    "office",
    "plan",
    "platform",
    "team",
    "tee",
    "user",
]);

/// Colour, material and product names made of a listed given name and a listed surname.
const COLOUR_NAMES: &[&str] = &[
    "amber gold",
    "dusty rose",
    "earl grey",
    "forest green",
    "heather gray",
    "heather grey",
    "hunter green",
    "jasmine rice",
    "jet black",
    "navy blue",
    "olive green",
    "pearl white",
    "rose gold",
    "royal blue",
    "ruby red",
    "sage green",
    "sky blue",
    "sterling silver",
    "violet blue",
];

/// Words that start sentences and are also listed as names (`My`, `Case`): after a greeting
/// or a header they are not taken as the first word of a name.
static KNOWN_STOP: WordSet = WordSet::new(&[
    "admin", "again", "all", "dr", "frau", "herr", "madame", "monsieur", "mr", "mrs", "ms", "prof",
    "also", "america", "an", "and", "any", "as", "billing", "case", "cloud", "customer", "dear",
    "east", "europe", "everyone", "for", "from", "gold", "good", "guest", "hello", "here", "hi",
    "his", "in", "is", "it", "madam", "my", "no", "north", "not", "now", "of", "on", "our",
    "please", "premium", "root", "sales", "silver", "sir", "so", "south", "standard", "support",
    "team", "thanks", "the", "their", "there", "this", "to", "we", "west", "you", "your",
]);

/// Place words that are also surnames (`Hill`, `Hall`, `Park`, `Court`): in a run they make
/// a place only after two words or more (`Jan Smith Lane`); with [`STRONG_PLACE`], the words
/// after a name that make it a place or an organisation.
static WEAK_PLACE: WordSet = WordSet::new(&[
    "circle", "close", "court", "damm", "garden", "grove", "hall", "hill", "lane", "memorial",
    "park", "place", "quay", "ring", "row", "town", "trail", "walk", "way", "wharf",
]);

/// A word after a name that makes it a place, a building or an organisation ("Maria Street").
fn place_after(word: &[u8]) -> bool {
    STRONG_PLACE.contains_bytes(word) || WEAK_PLACE.contains_bytes(word)
}

/// Words before a name that make it a place ("Rue Victor Hugo", "San Jose", "Via Roma").
static PLACE_BEFORE: WordSet = WordSet::new(&[
    "allée",
    "av",
    "avenida",
    "avenue",
    "bd",
    "boulevard",
    "cabo",
    "calle",
    "cape",
    "carrer",
    "chemin",
    "college",
    "corso",
    "el",
    "estrada",
    "fort",
    "hospital",
    "hotel",
    "isla",
    "la",
    "lago",
    "lake",
    "largo",
    "las",
    "le",
    "los",
    "mount",
    "mt",
    "paseo",
    "piazza",
    "place",
    "plaza",
    "port",
    "praca",
    "praça",
    "rua",
    "rue",
    "saint",
    "san",
    "sankt",
    "santa",
    "santo",
    "sao",
    "são",
    "st",
    "ste",
    "travessa",
    "universidad",
    "university",
    "université",
    "universität",
    "via",
    "viale",
    "villa",
]);

/// Lower-case words allowed between the words of a name ("Pieter de Vries", "Ludwig van der
/// Rohe", "Maria dos Santos").
static PARTICLES: WordSet = WordSet::new(&[
    "al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "e",
    "la", "le", "ten", "ter", "van", "von", "y", "zu",
]);

/// Whether `word` (lower case) is a line of `list` (sorted by bytes, one name per line): a
/// binary search over the bytes, each probe walking back to its line's start and comparing
/// forward. Lines are short: a `memchr` call for each end and a `memcmp` cost more than the
/// walk (~2,300 instructions a word against ~1,300 on the corpus, session 18).
fn listed(list: &str, word: &str) -> bool {
    let (bytes, word) = (list.as_bytes(), word.as_bytes());
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let mut start = mid;
        while start > 0 && bytes[start - 1] != b'\n' {
            start -= 1;
        }
        // The line against `word`, byte by byte.
        let mut k = 0;
        while start + k < bytes.len()
            && bytes[start + k] != b'\n'
            && k < word.len()
            && bytes[start + k] == word[k]
        {
            k += 1;
        }
        let line_ended = bytes.get(start + k).is_none_or(|&b| b == b'\n');
        let line_less = match (line_ended, k == word.len()) {
            (true, true) => return true,
            (true, false) => true,
            (false, true) => false,
            (false, false) => bytes[start + k] < word[k],
        };
        if line_less {
            let mut end = start + k;
            while end < bytes.len() && bytes[end] != b'\n' {
                end += 1;
            }
            lo = end + 1;
        } else {
            hi = start;
        }
    }
    false
}

/// A list of names (sorted, one per line) and a hash table of its lines, built at compile
/// time: a word is found in one to a few probes, where a binary search of
/// the sorted text took ~9 probes, each walking back to its line's start, and a cache miss
/// apiece in a 250 KB list. The table is fixed: no input adds to it, so no input makes a
/// probe sequence longer than the longest one measured at compile time ([`NameList::longest`]).
struct NameList {
    text: &'static str,
    /// Open addressing, linear probing, about half full. An entry is `(line start + 1) <<
    /// TAG_BITS | tag` (0: empty), the tag being the low bits of the line's hash: a probe
    /// compares bytes only when the tags agree.
    slots: &'static [u32],
}

const TAG_BITS: u32 = 13;
const TAG_MASK: u32 = (1 << TAG_BITS) - 1;

/// FNV-1a over `bytes[start..end]`, then murmur3's finaliser (the slot index is taken from
/// the high bits, the tag from the low ones).
const fn name_hash(bytes: &[u8], start: usize, end: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = start;
    while i < end {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The slot a hash probes first in a table of `len` slots (a power of two).
const fn first_slot(hash: u32, len: usize) -> usize {
    (hash >> TAG_BITS) as usize & (len - 1)
}

/// The hash table of the lines of `list` (each ending in `\n`), at compile time.
const fn name_slots<const N: usize>(list: &[u8]) -> [u32; N] {
    assert!(N.is_power_of_two());
    assert!(list.len() < (1 << (32 - TAG_BITS)) - 1);
    // `has` finds a line by the `\n` that ends it.
    assert!(list.is_empty() || list[list.len() - 1] == b'\n');
    let mut slots = [0u32; N];
    let mut used = 0;
    let mut p = 0;
    while p < list.len() {
        let mut e = p;
        while e < list.len() && list[e] != b'\n' {
            e += 1;
        }
        let h = name_hash(list, p, e);
        let mut i = first_slot(h, N);
        while slots[i] != 0 {
            i = (i + 1) & (N - 1);
        }
        slots[i] = ((p as u32 + 1) << TAG_BITS) | (h & TAG_MASK);
        used += 1;
        p = e + 1;
    }
    assert!(8 * used <= 5 * N, "a name table is more than 5/8 full");
    slots
}

static GIVEN_SLOTS: [u32; 1 << 15] = name_slots(GIVEN.as_bytes());
static SURNAME_SLOTS: [u32; 1 << 16] = name_slots(SURNAMES.as_bytes());

static GIVEN_LIST: NameList = NameList {
    text: GIVEN,
    slots: &GIVEN_SLOTS,
};
static SURNAME_LIST: NameList = NameList {
    text: SURNAMES,
    slots: &SURNAME_SLOTS,
};

impl NameList {
    /// Whether `word` (lower case) is a line.
    fn has(&self, word: &[u8]) -> bool {
        let text = self.text.as_bytes();
        let h = name_hash(word, 0, word.len());
        let len = self.slots.len();
        let mut i = first_slot(h, len);
        loop {
            let entry = self.slots[i];
            if entry == 0 {
                return false;
            }
            if entry & TAG_MASK == h & TAG_MASK {
                let at = (entry >> TAG_BITS) as usize - 1;
                let end = at + word.len();
                if text.get(at..end) == Some(word) && text.get(end) == Some(&b'\n') {
                    // Not two lines and the break between them.
                    return !word.contains(&b'\n');
                }
            }
            i = (i + 1) & (len - 1);
        }
    }

    /// The most slots a lookup probes, a word in the list or not (the longest run of
    /// occupied slots, plus the empty one that ends it).
    #[cfg(test)]
    fn longest(&self) -> usize {
        let len = self.slots.len();
        let empty = self.slots.iter().position(|&e| e == 0).unwrap_or(0);
        let (mut run, mut longest) = (0, 0);
        for k in 1..=len {
            if self.slots[(empty + k) % len] == 0 {
                run = 0;
            } else {
                run += 1;
                longest = longest.max(run);
            }
        }
        longest + 1
    }
}

/// A short list of lower-case words and a hash table of them built at compile time: a
/// lookup hashes the word and compares it with one word or a few, where `contains` compared
/// it with each of up to 78.
struct WordSet {
    words: &'static [&'static str],
    /// Open addressing, linear probing: `index + 1` of a word (0: empty), at most half full.
    slots: [u8; 256],
}

impl WordSet {
    const fn new(words: &'static [&'static str]) -> WordSet {
        assert!(2 * words.len() <= 256);
        let mut slots = [0u8; 256];
        let mut k = 0;
        while k < words.len() {
            let w = words[k].as_bytes();
            let mut i = first_slot(name_hash(w, 0, w.len()), 256);
            while slots[i] != 0 {
                i = (i + 1) & 255;
            }
            slots[i] = k as u8 + 1;
            k += 1;
        }
        WordSet { words, slots }
    }

    fn contains(&self, word: &str) -> bool {
        self.contains_bytes(word.as_bytes())
    }

    fn contains_bytes(&self, word: &[u8]) -> bool {
        let mut i = first_slot(name_hash(word, 0, word.len()), 256);
        loop {
            match self.slots[i] {
                0 => return false,
                k if self.words[usize::from(k) - 1].as_bytes() == word => return true,
                _ => i = (i + 1) & 255,
            }
        }
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &'static str> {
        self.words.iter().copied()
    }
}

fn lower(word: &str) -> String {
    word.chars()
        .map(|c| if c == '’' { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// `f` of the bytes of `word` lower-cased as [`lower`] does; an ASCII word (most) on the
/// stack. The lists are looked up by bytes, so the lower-cased copy is not checked as UTF-8
/// again (that check was a sixth of a lookup).
fn with_lower<R>(word: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; 32];
    if word.is_ascii() && word.len() <= buf.len() {
        let b = &mut buf[..word.len()];
        b.copy_from_slice(word.as_bytes());
        b.make_ascii_lowercase();
        return f(b);
    }
    f(lower(word).as_bytes())
}

/// Whether `word`, lower-cased, is one of `list`'s words.
fn one_of(list: &WordSet, word: &str) -> bool {
    with_lower(word, |w| list.contains_bytes(w))
}

/// Whether `word`, lower-cased, is in `list`; a hyphenated word (`Hans-Peter`) when both
/// parts are (split at the first `-`).
fn listed_word(list: &NameList, word: &str) -> bool {
    with_lower(word, |w| {
        list.has(w)
            || memchr::memchr(b'-', w).is_some_and(|p| list.has(&w[..p]) && list.has(&w[p + 1..]))
    })
}

pub(crate) fn is_given(word: &str) -> bool {
    listed_word(&GIVEN_LIST, word)
}

pub(crate) fn is_surname(word: &str) -> bool {
    listed_word(&SURNAME_LIST, word)
}

/// A word of a name: a capital, then letters, the last lower case (`Ada`, `McDonald`,
/// `O'Brien`, `Jean-Luc`); not a word in capitals (`API`).
fn capitalised(word: &str) -> bool {
    if word.is_ascii() {
        return ascii_capitalised(word.as_bytes());
    }
    let mut cs = word.chars();
    cs.next().is_some_and(char::is_uppercase)
        && word.chars().count() >= 2
        && word.chars().last().is_some_and(char::is_lowercase)
        && word
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’' | '-'))
}

/// [`capitalised`] of an ASCII word.
fn ascii_capitalised(word: &[u8]) -> bool {
    match word {
        [first, .., last] => {
            first.is_ascii_uppercase()
                && last.is_ascii_lowercase()
                && word
                    .iter()
                    .all(|b| b.is_ascii_alphabetic() || matches!(b, b'\'' | b'-'))
        }
        _ => false,
    }
}

/// [`capitalised`] of a word's bytes (not a word when they are not UTF-8): an ASCII word
/// (most) without the UTF-8 check.
fn capitalised_bytes(word: &[u8]) -> bool {
    if word.is_ascii() {
        return ascii_capitalised(word);
    }
    std::str::from_utf8(word).is_ok_and(capitalised)
}

/// The words of a candidate name, or `None` when a word is neither capitalised nor a particle
/// (the first and the last must be capitalised), or there are more than [`MAX_RUN`].
fn words(value: &[u8]) -> Option<Words<'_>> {
    let s = std::str::from_utf8(value).ok()?;
    let mut words = Words {
        list: [""; MAX_RUN],
        len: 0,
    };
    // Split at each separator ([`separator_at`]), as `str::split` would.
    let mut start = 0;
    let mut i = 0;
    loop {
        let sep = if i < value.len() {
            // Bytes that cannot start a separator are passed over without `separator_at`'s
            // slice matching.
            if !SEPARATOR_LEADS.contains(&value[i]) {
                i += 1;
                continue;
            }
            match separator_at(value, i) {
                Some(sep) => sep,
                None => {
                    i += 1;
                    continue;
                }
            }
        } else {
            0
        };
        if words.len == MAX_RUN {
            return None;
        }
        // On character boundaries: a separator is a whole character.
        words.list[words.len] = s.get(start..i)?;
        words.len += 1;
        if sep == 0 {
            break;
        }
        i += sep;
        start = i;
    }
    let words_of = &words.list[..words.len];
    let n = words_of.len();
    for (i, w) in words_of.iter().enumerate() {
        let edge = i == 0 || i + 1 == n;
        let initial = w.len() == 2 && w.as_bytes()[0].is_ascii_uppercase() && w.ends_with('.');
        if !(capitalised(w) || (!edge && (PARTICLES.contains(w) || initial))) {
            return None;
        }
    }
    Some(words)
}

/// The one to [`MAX_RUN`] words of a candidate name (see [`words`]), held without allocating.
struct Words<'a> {
    list: [&'a str; MAX_RUN],
    len: usize,
}

impl<'a> std::ops::Deref for Words<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        &self.list[..self.len]
    }
}

/// The word that ends just before `s` (skipping one space or `,`) and the one that starts just
/// after `e`, without a final `.` (a place word is ASCII or Latin-1; [`one_of`] lower-cases).
fn neighbours(text: &[u8], s: usize, e: usize) -> (&str, &str) {
    let word_char = |b: u8| b.is_ascii_alphabetic() || b >= 0x80 || b == b'.';
    let mut b = s;
    while b > 0 && matches!(text[b - 1], b' ' | b',') && s - b < 2 {
        b -= 1;
    }
    let mut bs = b;
    while bs > 0 && word_char(text[bs - 1]) {
        bs -= 1;
    }
    let mut a = e;
    while a < text.len() && matches!(text[a], b' ' | b',') && a - e < 1 {
        a += 1;
    }
    let mut ae = a;
    while ae < text.len() && word_char(text[ae]) {
        ae += 1;
    }
    fn norm(w: &[u8]) -> &str {
        std::str::from_utf8(w).unwrap_or("").trim_end_matches('.')
    }
    (
        if b < s { norm(&text[bs..b]) } else { "" },
        if a > e { norm(&text[a..ae]) } else { "" },
    )
}

/// Whether the name at `text[s..e]` is part of a place, a building or an organisation.
pub(crate) fn in_place(text: &[u8], s: usize, e: usize) -> bool {
    let (before, after) = neighbours(text, s, e);
    one_of(&PLACE_BEFORE, before) || with_lower(after, place_after)
}

/// Two to five words, the first a given name (not a title word), the last a surname, and no
/// place around them.
pub(crate) fn given_surname(text: &[u8], s: usize, e: usize) -> bool {
    let Some(ws) = words(&text[s..e]) else {
        return false;
    };
    let (first, last) = (ws[0], ws[ws.len() - 1]);
    ws.len() >= 2
        && is_given(first)
        && is_surname(last)
        && !one_of(&FIRST_STOP, first)
        && !one_of(&LAST_STOP, last)
        && !(ws.len() == 2 && colour_name(first, last))
        && !in_place(text, s, e)
}

/// Whether `first last`, lower-cased, is one of [`COLOUR_NAMES`], compared word by word: for
/// ASCII words of up to 32 bytes (nearly all) no string is built for a check most names fail.
fn colour_name(first: &str, last: &str) -> bool {
    with_lower(first, |f| {
        with_lower(last, |l| {
            COLOUR_NAMES.iter().any(|c| {
                c.len() == f.len() + 1 + l.len()
                    && c.as_bytes().starts_with(f)
                    && c.as_bytes().ends_with(l)
                    && c.as_bytes().get(f.len()) == Some(&b' ')
            })
        })
    })
}

/// After a greeting, a header or under a role key: one word that is a listed given name
/// (`Hi Jan`; a surname alone is too often a word: `Sales`, `Jenkins`), or two to five words,
/// the first a listed given name or surname, not a word that starts sentences, the last not a
/// word that ends labels (`Team`, `Plan`); no place around them. Or Han characters starting
/// with a surname ([`cjk_name`]).
pub(crate) fn known_name(text: &[u8], s: usize, e: usize) -> bool {
    if text.get(s).is_some_and(|b| *b >= 0xE3) {
        return cjk_name(&text[s..e]);
    }
    // `Maria Garcia Sales@example.com`: the last word belongs to the address (the name
    // before it is `person_name.text`'s, whose runs stop at such a word).
    if glued(text, e) {
        return false;
    }
    let Some(ws) = words(&text[s..e]) else {
        return false;
    };
    let (first, last) = (ws[0], ws[ws.len() - 1]);
    !one_of(&KNOWN_STOP, first)
        && !one_of(&LAST_STOP, last)
        && if ws.len() == 1 {
            is_given(first)
        } else {
            is_given(first) || is_surname(first)
        }
        && !in_place(text, s, e)
}

/// Two to five Han characters or kana starting with a Han surname (one to three characters),
/// not a word for a role (`担当者`, `会員`).
pub(crate) fn cjk_name(value: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(value) else {
        return false;
    };
    // `山田 太郎`: the space between surname and given name is not part of either.
    let chars: Vec<char> = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{3000}'))
        .collect();
    // A Han surname, then Han or kana (`清水あすか`).
    if !(2..=5).contains(&chars.len())
        || !is_han(chars[0])
        || !chars.iter().all(|c| is_han(*c) || is_kana(*c))
    {
        return false;
    }
    // Roles, groups and places addressed like people: 担当者様, 会員様, 関係者各位, 御社,
    // 社長さん, 東京都様, 中央区様, 大阪府様, 王子様, 大家さん.
    if chars
        .last()
        .is_some_and(|c| "者員客社位方同皆長都府県区市町村".contains(*c))
    {
        return false;
    }
    const ROLES: &[&str] = &["王子", "大家", "先生", "皆様", "殿下", "陛下"];
    let word: String = chars.iter().collect();
    if ROLES.contains(&word.as_str()) {
        return false;
    }
    (1..=chars.len().min(3)).any(|k| {
        let prefix: String = chars[..k].iter().collect();
        listed(CJK_SURNAMES, &prefix)
    })
}

/// The character at byte `i` and its length in bytes (`None` inside or outside a character).
fn char_at(text: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *text.get(i)?;
    let len = match b {
        0x00..=0x7F => return Some((char::from(b), 1)),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(text.get(i..i + len)?)
        .ok()?
        .chars()
        .next()?;
    Some((c, len))
}

/// The character that ends at byte `i`.
fn char_before(text: &[u8], i: usize) -> Option<char> {
    let mut k = i.checked_sub(1)?;
    while k > 0 && i - k < 4 && (0x80..0xC0).contains(&text[k]) {
        k -= 1;
    }
    char_at(text, k)
        .filter(|&(_, len)| k + len == i)
        .map(|(c, _)| c)
}

/// A letter of a name: alphabetic, or a combining mark (`José` written `Jose\u{301}`).
fn is_letter(c: char) -> bool {
    c.is_alphabetic() || matches!(c as u32, 0x0300..=0x036F)
}

/// The end of the word of letters starting at `i`, with `'`, `’` or `-` inside (`O'Brien`,
/// `Hans-Peter`), a possessive left out (`Smith's` -> `Smith`).
fn word_end(text: &[u8], i: usize) -> usize {
    let mut e = i;
    // ASCII letters first (most words), then a character at a time.
    while text.get(e).is_some_and(u8::is_ascii_alphabetic) {
        e += 1;
    }
    // Any other ASCII byte but the joiners ends the word (most words end at a space).
    if text
        .get(e)
        .is_none_or(|&b| b < 0x80 && !matches!(b, b'\'' | b'-'))
    {
        return e;
    }
    while let Some((c, len)) = char_at(text, e) {
        if is_letter(c) {
            e += len;
            continue;
        }
        if matches!(c, '\'' | '’' | '-') {
            if let Some((n, nlen)) = char_at(text, e + len) {
                let possessive = c != '-'
                    && matches!(n, 's' | 'S')
                    && !char_at(text, e + len + nlen).is_some_and(|(a, _)| is_letter(a));
                if is_letter(n) && !possessive {
                    e += len;
                    continue;
                }
            }
        }
        break;
    }
    e
}

/// The bytes a separator ([`separator_at`]) starts with.
const SEPARATOR_LEADS: [u8; 3] = [b' ', 0xC2, 0xE2];

/// The separator of the words of a name at byte `i`: a space, a no-break space or a narrow
/// no-break space; its length.
fn separator_at(text: &[u8], i: usize) -> Option<usize> {
    // The first bytes below are `SEPARATOR_LEADS`.
    match text.get(i..)? {
        [b' ', ..] => Some(1),
        [0xC2, 0xA0, ..] => Some(2),
        [0xE2, 0x80, 0xAF, ..] => Some(3),
        _ => None,
    }
}

/// A word glued to what follows it is part of something else: an address (`Maria.Garcia@`,
/// `Sales@`), an identifier (`Maria_1`, `Garcia.Lopez`).
fn glued(text: &[u8], e: usize) -> bool {
    match text.get(e) {
        Some(b'@' | b'_') => true,
        Some(b) if b.is_ascii_digit() => true,
        Some(b'.' | b'-') => text.get(e + 1).is_some_and(|b| b.is_ascii_alphanumeric()),
        _ => false,
    }
}

/// Place words that are rarely surnames: anywhere after the first word of a run of
/// capitalised words, they make it a place or an organisation (`Victor Hugo Street`,
/// `Madison Square Garden`). The others ([`WEAK_PLACE`]) are surnames too.
static STRONG_PLACE: WordSet = WordSet::new(&[
    "academy",
    "airport",
    "allee",
    "arena",
    "ave",
    "avenue",
    "bay",
    "beach",
    "blvd",
    "boulevard",
    "bridge",
    "building",
    "cathedral",
    "center",
    "centre",
    "church",
    "city",
    "clinic",
    "co",
    "college",
    "company",
    "corp",
    "county",
    "crescent",
    "ct",
    "district",
    "dr",
    "drive",
    "foundation",
    "gardens",
    "gasse",
    "gmbh",
    "gracht",
    "group",
    "heights",
    "highway",
    "hospital",
    "hotel",
    "inc",
    "institute",
    "island",
    "kade",
    "laan",
    "lake",
    "library",
    "llc",
    "ln",
    "ltd",
    "mall",
    "market",
    "museum",
    "parkway",
    "pl",
    "platz",
    "plaza",
    "plein",
    "rd",
    "river",
    "road",
    "school",
    "sq",
    "square",
    "st",
    "stadium",
    "station",
    "str",
    "straat",
    "strasse",
    "straße",
    "street",
    "terrace",
    "theater",
    "theatre",
    "tower",
    "university",
    "valley",
    "village",
    "weg",
]);

/// Whether the run of capitalised words `words` (with the words just before and after it, as
/// [`neighbours`] gives them) is a place or an organisation rather than a person.
fn place_run(words: &[&str], before: &str, after: &str) -> bool {
    let n = words.len();
    one_of(&PLACE_BEFORE, before)
        || with_lower(after, place_after)
        || words.iter().enumerate().any(|(k, w)| {
            with_lower(w.trim_end_matches('.'), |w| {
                (k == 0 && PLACE_BEFORE.contains_bytes(w))
                    || (k > 0 && STRONG_PLACE.contains_bytes(w))
                    || (k > 0 && k + 1 == n && n >= 3 && place_after(w))
            })
        })
}

/// At most this many capitalised words make one name; a longer run is searched a window at
/// a time (see [`name_candidates`]).
const MAX_RUN: usize = 5;

/// The candidates of `person_name.text`, from runs of capitalised words separated by single
/// spaces, with up to two particles between them (`Pieter de Vries`). Every sub-run of two
/// words or more is asked, longest first, as `found(start, end, run_start, run_end)`; the first
/// accepted makes the whole run the finding, so an unlisted word of the name is not left out
/// (`Nnamdi James Smith`, `Hans Peter Stiebitz`). A run that names a place is skipped whole
/// ([`place_run`]); a run of more than [`MAX_RUN`] words is searched from each word in turn,
/// each candidate reported as itself; a word glued to an address or identifier ends a run. One pass over the text; words and their boundaries are Unicode letters, so
/// quotes, dashes and marks around a name do not hide it. A text where no first word can end
/// before a separator ([`may_hold_pair`]) has no run, and is not walked.
///
/// `given_surname_only`: `found` accepts only what [`given_surname`] does, so a candidate is
/// asked only when its first word is a given name and its last a surname (each word looked up
/// once a run, or once a window of a longer run), and a run where no candidate is both is
/// passed over without the place check.
pub(crate) fn name_candidates(
    text: &[u8],
    given_surname_only: bool,
    found: impl FnMut(usize, usize, usize, usize) -> bool,
) {
    if may_hold_pair(text) {
        every_run(text, given_surname_only, found);
    }
}

/// Per word of a run: whether it is a given name and a surname, looked up on first use.
#[derive(Clone, Copy, Default)]
struct Listed {
    given: Option<bool>,
    surname: Option<bool>,
}

impl Listed {
    fn given(&mut self, word: &str) -> bool {
        *self.given.get_or_insert_with(|| is_given(word))
    }

    fn surname(&mut self, word: &str) -> bool {
        *self.surname.get_or_insert_with(|| is_surname(word))
    }
}

/// [`name_candidates`] without its first check.
#[allow(clippy::needless_range_loop)] // `starts` and `ends` are read in pairs
fn every_run(
    text: &[u8],
    given_surname_only: bool,
    mut found: impl FnMut(usize, usize, usize, usize) -> bool,
) {
    let word_at = |s: usize, e: usize| std::str::from_utf8(&text[s..e]).unwrap_or("");
    let name_word = |s: usize, e: usize| {
        e > s
            && !glued(text, e)
            && (text[s].is_ascii_uppercase() || text[s] >= 0xC0)
            && capitalised_bytes(&text[s..e])
    };
    let mut i = 0;
    while i < text.len() {
        // A word starts at a capital after something that is not a letter (nor an
        // apostrophe inside a word: the `Brien` of `O'Brien`).
        i = next_capital(text, i);
        if i == text.len() {
            break;
        }
        let after_letter = match char_before(text, i) {
            Some(c @ ('\'' | '’')) => char_before(text, i - c.len_utf8()).is_some_and(is_letter),
            Some(c) => is_letter(c),
            None => false,
        };
        let first_end = word_end(text, i);
        if after_letter || !name_word(i, first_end) {
            i = first_end.max(i + char_at(text, i).map_or(1, |(_, l)| l));
            continue;
        }
        // The run: name words separated by one separator, up to two particles between.
        let mut starts = [0usize; MAX_RUN + 1];
        let mut ends = [0usize; MAX_RUN + 1];
        starts[0] = i;
        ends[0] = first_end;
        let mut n = 1;
        let mut at = first_end;
        'run: while n <= MAX_RUN {
            let mut q = at;
            let mut particles = 0;
            loop {
                let Some(sep) = separator_at(text, q) else {
                    break 'run;
                };
                let ws = q + sep;
                let we = word_end(text, ws);
                if we == ws {
                    break 'run;
                }
                if name_word(ws, we) {
                    starts[n] = ws;
                    ends[n] = we;
                    n += 1;
                    at = we;
                    break;
                }
                let particle = we - ws <= 5 && PARTICLES.contains_bytes(&text[ws..we]);
                if particles < 2 && particle && !glued(text, we) {
                    particles += 1;
                    q = we;
                    continue;
                }
                // An initial (`Hans D. Rohleder`).
                if particles < 2
                    && we == ws + 1
                    && text[ws].is_ascii_uppercase()
                    && text.get(we) == Some(&b'.')
                    && separator_at(text, we + 1).is_some()
                {
                    particles += 1;
                    q = we + 1;
                    continue;
                }
                break 'run;
            }
        }
        let run_end = ends[n - 1];
        if n < 2 {
            i = run_end;
            continue;
        }
        // A candidate's first and last words are words of the run (`words` splits it at
        // the same separators): `given_surname` looks up these.
        let mut listed = [Listed::default(); MAX_RUN + 1];
        if n > MAX_RUN {
            // Longer than a name: names listed one after another, or a name padded with
            // capitalised words to hide it. Candidates of two to four words from the first
            // word, each reported as itself; then on from the next word.
            let accepted = (1..4).rev().find(|&z| {
                (!given_surname_only
                    || (listed[0].given(word_at(starts[0], ends[0]))
                        && listed[z].surname(word_at(starts[z], ends[z]))))
                    && found(i, ends[z], i, ends[z])
            });
            i = accepted.map_or(ends[0], |z| ends[z]);
            continue;
        }
        let mut run = [""; MAX_RUN];
        for (k, w) in run.iter_mut().enumerate().take(n) {
            *w = word_at(starts[k], ends[k]);
        }
        let pair = |listed: &mut [Listed], a: usize, z: usize| {
            !given_surname_only || (listed[a].given(run[a]) && listed[z].surname(run[z]))
        };
        if given_surname_only && !(0..n - 1).any(|a| (a + 1..n).any(|z| pair(&mut listed, a, z))) {
            i = run_end;
            continue;
        }
        let (before, after) = neighbours(text, i, run_end);
        if place_run(&run[..n], before, after) {
            i = run_end;
            continue;
        }
        'found: for a in 0..n - 1 {
            for z in (a + 1..n).rev() {
                if pair(&mut listed, a, z) && found(starts[a], ends[z], i, run_end) {
                    break 'found;
                }
            }
        }
        i = run_end;
    }
}

/// Whether `text` may hold a run of two name words: a separator ([`separator_at`]) right after
/// a lower-case ASCII letter or the last byte of a character beyond U+007F, where a first
/// word ([`capitalised`]: its last letter lower case) would end. Most texts without one (ids,
/// tokens, base64, hashes, timestamps) have no separator at all, and are passed over at
/// `memchr` speed instead of word by word at each capital.
fn may_hold_pair(text: &[u8]) -> bool {
    let [a, b, c] = SEPARATOR_LEADS;
    crate::bytes::any3(a, b, c, text, |p| {
        p > 0 && matches!(text[p - 1], b'a'..=b'z' | 0x80..=0xBF) && separator_at(text, p).is_some()
    })
}

/// Whether `b` may start a word of a name: an ASCII capital, or the lead byte of a character
/// beyond U+007F (a capital or not: [`capitalised`] decides).
fn may_start_name(b: u8) -> bool {
    b.is_ascii_uppercase() || b >= 0xC0
}

/// The first byte at or after `i` that [`may_start_name`], or the text's length; eight bytes
/// at a time (most bytes of a text are not capitals).
fn next_capital(text: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = text.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        // Per byte, on its low seven bits (no carry crosses a byte): at least `A`, and past `Z`.
        let t = x & !HI;
        let at_least_a = (t + LO * (0x80 - u64::from(b'A'))) & HI;
        let past_z = (t + LO * (0x80 - u64::from(b'Z') - 1)) & HI;
        let capital = at_least_a & !past_z & !x;
        // Bits 7 and 6 set: 0xC0 and up.
        let lead = x & (x << 1) & HI;
        let found = capital | lead;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < text.len() && !may_start_name(text[i]) {
        i += 1;
    }
    i
}

fn is_kana(c: char) -> bool {
    matches!(c as u32, 0x3041..=0x3096 | 0x30A1..=0x30FA | 0x30FC)
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_sorted(list: &str) -> bool {
        let lines: Vec<&str> = list.lines().collect();
        lines.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes())
    }

    #[test]
    fn colour_names_are_found_as_when_the_words_were_joined() {
        let words = [
            "Rose",
            "ROSE",
            "rose",
            "Gold",
            "Navy",
            "Blue",
            "Sky",
            "Earl",
            "Grey",
            "Gray",
            "Ruby",
            "Red",
            "Jet",
            "Black",
            "Maria",
            "Garcia",
            "Sterling",
            "Silver",
            "Ådne",
            "Ölçer",
            "O’Brien",
            "Rose’",
            "",
        ];
        let mut seen = 0;
        for a in words {
            for b in words {
                let joined = COLOUR_NAMES.contains(&lower(&[a, b].join(" ")).as_str());
                assert_eq!(colour_name(a, b), joined, "{a} {b}");
                seen += usize::from(joined);
            }
        }
        assert!(seen >= 8, "{seen}");
        for c in COLOUR_NAMES {
            let (a, b) = c.split_once(' ').unwrap_or_default();
            assert!(colour_name(&a.to_uppercase(), b), "{c}");
        }
    }

    #[test]
    fn the_lists_are_sorted_unique_and_lower_case() {
        for list in [GIVEN, SURNAMES, CJK_SURNAMES] {
            assert!(lines_sorted(list));
            assert!(list.ends_with('\n'));
            assert!(list.lines().all(|l| !l.is_empty() && lower(l) == l));
        }
        // Every line is found by the search, and a word between two lines is not.
        for list in [GIVEN, SURNAMES, CJK_SURNAMES] {
            for l in list.lines() {
                assert!(listed(list, l), "{l}");
                assert!(!listed(list, &format!("{l}\u{1}")), "{l}");
            }
        }
        // A word between two lines, before the first or after the last is not; a line's
        // prefix only when it is a line too.
        for list in [GIVEN, SURNAMES, CJK_SURNAMES] {
            let lines: std::collections::HashSet<&str> = list.lines().collect();
            for l in list.lines() {
                let cut = l.char_indices().last().map_or(0, |(i, _)| i);
                assert_eq!(listed(list, &l[..cut]), lines.contains(&l[..cut]), "{l}");
            }
            for w in [
                "",
                "\u{1}",
                "a",
                "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                "\u{10FFFF}",
            ] {
                assert_eq!(listed(list, w), lines.contains(w), "{w:?}");
            }
        }
    }

    /// A word set holds its words and nothing else: each word, each cut short or lengthened,
    /// the words of the other sets and of the name lists' first lines.
    #[test]
    fn a_word_set_holds_its_words_only() {
        let sets = [
            &FIRST_STOP,
            &LAST_STOP,
            &KNOWN_STOP,
            &WEAK_PLACE,
            &PLACE_BEFORE,
            &PARTICLES,
            &STRONG_PLACE,
        ];
        let mut probes: Vec<String> = Vec::new();
        for set in sets {
            for w in set.iter() {
                probes.push(w.to_string());
                probes.push(format!("{w}s"));
                probes.push(w.chars().skip(1).collect());
                probes.push(w.to_uppercase());
            }
        }
        probes.extend(GIVEN.lines().take(3000).map(String::from));
        probes.extend(["", " ", "\u{0}", "é"].map(String::from));
        for set in sets {
            let words: Vec<&str> = set.iter().collect();
            assert_eq!(set.slots.iter().filter(|&&k| k != 0).count(), words.len());
            for p in &probes {
                assert_eq!(set.contains(p), words.contains(&p.as_str()), "{p:?}");
            }
        }
    }

    /// Looking words up by their lower-cased bytes answers as looking up the lower-cased
    /// string did: listed words in every case, hyphenated pairs (listed or not on either
    /// side), words beyond ASCII and words longer than the stack copy.
    #[test]
    fn a_lookup_by_lower_cased_bytes_answers_as_by_the_string() {
        fn listed_reference(list: &NameList, word: &str) -> bool {
            let w = lower(word);
            listed(list.text, &w)
                || w.split_once('-')
                    .is_some_and(|(a, b)| listed(list.text, a) && listed(list.text, b))
        }
        let mut next = crate::detect::tests::xorshift(0xB17E5);
        let lines: Vec<&str> = GIVEN.lines().chain(SURNAMES.lines()).collect();
        let mut pick = || lines[(next() % lines.len() as u64) as usize];
        let mut words: Vec<String> = Vec::new();
        for k in 0..20_000 {
            let (a, b) = (pick(), pick());
            let cap = |w: &str| {
                let mut c = w.chars();
                c.next()
                    .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
            };
            words.push(match k % 8 {
                0 => a.to_string(),
                1 => cap(a),
                2 => a.to_uppercase(),
                3 => format!("{}-{}", cap(a), cap(b)),
                4 => format!("{}-Xqzv", cap(a)),
                5 => format!("Xqzv-{}", cap(b)),
                6 => format!("{}{}{}", cap(a), a, b),
                _ => format!("{a}’{b}"),
            });
        }
        words.extend(
            [
                "",
                "-",
                "Ada-",
                "-Ada",
                "Ada--Lee",
                "ÉLODIE",
                "Jean-Luc",
                "O’Brien",
                "İlkay",
            ]
            .map(String::from),
        );
        // The stop and place words themselves, in three cases each.
        for set in [
            &FIRST_STOP,
            &LAST_STOP,
            &KNOWN_STOP,
            &PLACE_BEFORE,
            &STRONG_PLACE,
        ] {
            for w in set.words {
                words.extend([w.to_string(), w.to_uppercase(), format!("{w}s")]);
            }
        }
        for w in &words {
            for list in [&GIVEN_LIST, &SURNAME_LIST] {
                assert_eq!(listed_word(list, w), listed_reference(list, w), "{w:?}");
            }
            for set in [
                &FIRST_STOP,
                &LAST_STOP,
                &KNOWN_STOP,
                &PLACE_BEFORE,
                &STRONG_PLACE,
            ] {
                assert_eq!(
                    one_of(set, w),
                    set.words.contains(&lower(w).as_str()),
                    "{w:?}"
                );
            }
        }
    }

    /// A word's bytes are capitalised as the old `capitalised` of their string said (its code
    /// copied here), and never when not UTF-8: every byte string of up to three bytes from a
    /// set of letters, marks, separators and broken sequences, and random longer ones.
    #[test]
    fn capitalised_bytes_are_the_capitalised_string() {
        fn capitalised_before(word: &str) -> bool {
            if let [first, .., last] = word.as_bytes() {
                if word.is_ascii() {
                    return first.is_ascii_uppercase()
                        && last.is_ascii_lowercase()
                        && word
                            .bytes()
                            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'\'' | b'-'));
                }
            }
            let mut cs = word.chars();
            cs.next().is_some_and(char::is_uppercase)
                && word.chars().count() >= 2
                && word.chars().last().is_some_and(char::is_lowercase)
                && word
                    .chars()
                    .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’' | '-'))
        }
        let reference = |w: &[u8]| std::str::from_utf8(w).is_ok_and(capitalised_before);
        let set: &[u8] = b"Aa'-Zz \xC3\x89\xA9\xE2\x80\x99\xFF_1";
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..3 {
            let longer: Vec<Vec<u8>> = words
                .iter()
                .flat_map(|w| set.iter().map(move |&b| [w.as_slice(), &[b]].concat()))
                .collect();
            words.extend(longer);
        }
        let mut next = crate::detect::tests::xorshift(0xCA91);
        for _ in 0..20_000 {
            let n = (next() % 12) as usize;
            words.push(
                (0..n)
                    .map(|_| set[(next() % set.len() as u64) as usize])
                    .collect(),
            );
        }
        words.extend(["Ada", "O'Brien", "Élodie", "O’Brien", "API", "Ab-"].map(|w| w.into()));
        for w in &words {
            assert_eq!(capitalised_bytes(w), reference(w), "{w:?}");
            if let Ok(text) = std::str::from_utf8(w) {
                assert_eq!(capitalised(text), capitalised_before(text), "{text:?}");
            }
        }
    }

    /// The hash table finds what the search of the sorted list finds: every line, each line
    /// cut short or lengthened, two lines with the break between them, random words; and no
    /// lookup probes more than a few slots.
    #[test]
    fn the_hash_table_of_a_list_equals_the_search_of_the_list() {
        let mut next = crate::detect::tests::xorshift(0x0115_7ED0_FA11);
        for list in [&GIVEN_LIST, &SURNAME_LIST] {
            let lines: Vec<&str> = list.text.lines().collect();
            let filled = list.slots.iter().filter(|&&e| e != 0).count();
            assert_eq!(filled, lines.len());
            let longest = list.longest();
            assert!(longest <= 40, "{longest} probes");
            for pair in lines.windows(2).take(2000) {
                let joined = format!("{}\n{}", pair[0], pair[1]);
                assert!(
                    !list.has(joined.as_bytes()) && !listed(list.text, &joined),
                    "{joined:?}"
                );
            }
            let mut words: Vec<String> = Vec::new();
            for l in &lines {
                words.push(l.to_string());
                words.push(format!("{l}a"));
                words.push(format!("{l}{{"));
                let cut = l.char_indices().last().map_or(0, |(i, _)| i);
                words.push(l[..cut].to_string());
            }
            const BYTES: &[u8] = b"aabeilnorsyz{-'`";
            for _ in 0..50_000 {
                let n = (next() % 7) as usize;
                words.push(
                    (0..n)
                        .map(|_| char::from(BYTES[(next() % BYTES.len() as u64) as usize]))
                        .collect(),
                );
            }
            words.extend(["", "a", "z", "zz", "zzz", "a-", "é", "{a"].map(String::from));
            for w in &words {
                assert_eq!(list.has(w.as_bytes()), listed(list.text, w), "{w:?}");
            }
        }
    }

    #[test]
    fn the_capital_search_and_the_word_split_equal_the_plain_loops() {
        // Every byte value at every offset of a chunk, and random texts.
        let mut next = crate::detect::tests::xorshift(0x9E37_79B9_7F4A_7C15);
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut t = vec![b'a'; 20];
                t[at] = b;
                texts.push(t);
            }
        }
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            texts.push((0..len).map(|_| next() as u8).collect());
        }
        for t in &texts {
            for from in 0..=t.len() {
                let plain = (from..t.len())
                    .find(|&k| may_start_name(t[k]))
                    .unwrap_or(t.len());
                assert_eq!(next_capital(t, from), plain, "{t:?} from {from}");
            }
        }
        // `©` and `€` start as a no-break space and a narrow one do, and are not separators.
        let alphabet = [
            "Ada", "de", " ", "\u{a0}", "\u{202f}", "L.", "x", "é", "-", "©", "€",
        ];
        let (names, seps) = (
            ["Ada", "de", "L.", "Élan", "x"],
            [" ", "\u{a0}", "\u{202f}", "©", "€"],
        );
        for round in 0..10_000 {
            let n = (next() % 9) as usize;
            // Half of them words and separators in turn, most of them names.
            let text: String = (0..n)
                .map(|k| match (round % 2, k % 2) {
                    (0, 0) => names[(next() % names.len() as u64) as usize],
                    (0, _) => seps[(next() % seps.len() as u64) as usize],
                    _ => alphabet[(next() % alphabet.len() as u64) as usize],
                })
                .collect();
            // What `words` did before it held them without allocating.
            let split: Vec<&str> = text.split([' ', '\u{a0}', '\u{202f}']).collect();
            let n = split.len();
            let valid = (1..=MAX_RUN).contains(&n)
                && split.iter().enumerate().all(|(i, w)| {
                    let edge = i == 0 || i + 1 == n;
                    let initial =
                        w.len() == 2 && w.as_bytes()[0].is_ascii_uppercase() && w.ends_with('.');
                    capitalised(w) || (!edge && (PARTICLES.contains(w) || initial))
                });
            let got = words(text.as_bytes()).map(|w| w.to_vec());
            assert_eq!(got, valid.then_some(split), "{text:?}");
        }
    }

    fn given_surname_in(text: &str, name: &str) -> bool {
        let s = text.find(name).expect("name in text");
        given_surname(text.as_bytes(), s, s + name.len())
    }

    #[test]
    fn names_of_every_country_are_listed() {
        for (g, f) in [
            ("Maria", "Garcia"),
            ("Jan", "Kowalski"),
            ("Pieter", "Vries"),
            ("Hans", "Müller"),
            ("François", "Dubois"),
            ("Giulia", "Rossi"),
            ("Sven", "Andersson"),
            ("Oliver", "Smith"),
            ("Priya", "Sharma"),
            ("João", "Silva"),
            ("Chloé", "Lefèvre"),
        ] {
            assert!(is_given(g), "{g}");
            assert!(is_surname(f), "{f}");
        }
        assert!(is_surname("Müller-Lüdenscheidt") || is_surname("Müller"));
    }

    #[test]
    fn a_given_name_and_a_surname_are_a_name_unless_they_name_a_place() {
        assert!(given_surname_in(
            "assigned to Maria Garcia today",
            "Maria Garcia"
        ));
        assert!(given_surname_in(
            "From: Pieter de Vries <p@x.nl>",
            "Pieter de Vries"
        ));
        assert!(given_surname_in(
            "Anna Maria Schmidt wrote",
            "Anna Maria Schmidt"
        ));
        assert!(given_surname_in(
            "\"Hans-Peter Kobelt\"",
            "Hans-Peter Kobelt"
        ));
        assert!(!given_surname_in("Saint Auguste", "Saint Auguste"));
        assert!(!given_surname_in("12 Maria Garcia Street", "Maria Garcia"));
        assert!(!given_surname_in("Rue Victor Hugo 3", "Victor Hugo"));
        assert!(!given_surname_in("the May Update", "May Update"));
        assert!(!given_surname_in("Customer Service", "Customer Service"));
        assert!(!given_surname_in("MARIA GARCIA", "MARIA GARCIA"));
        assert!(!given_surname_in("maria garcia", "maria garcia"));
        assert!(!given_surname_in("Maria de", "Maria de"));
    }

    fn candidates(text: &str) -> Vec<&str> {
        let mut all = Vec::new();
        name_candidates(text.as_bytes(), false, |s, e, _, _| {
            all.push(&text[s..e]);
            false
        });
        all
    }

    /// With `given_surname_only`, a candidate is asked only when its first word is a given
    /// name and its last a surname: what `given_surname` accepts is the same, candidate for
    /// candidate, as when every candidate is asked. Random texts of listed and unlisted words,
    /// places, title words, particles, initials, separators and glue, runs longer than
    /// `MAX_RUN` among them.
    #[test]
    fn asking_only_given_name_and_surname_pairs_accepts_the_same_candidates() {
        const PIECES: &[&str] = &[
            "Maria",
            "Garcia",
            "Anna",
            "Schmidt",
            "Hans",
            "Peter",
            "Stiebitz",
            "José",
            "Müller",
            "O'Brien",
            "Hans-Peter",
            "Jenkins",
            "Zoë",
            "Rose",
            "Gold",
            "May",
            "Update",
            "Victor",
            "Hugo",
            "Street",
            "Rue",
            "San",
            "Customer",
            "Service",
            "Team",
            "Nnamdi",
            "James",
            "Smith",
            "de",
            "van",
            "D.",
            "API",
            "the",
            " ",
            " ",
            " ",
            " ",
            "\u{a0}",
            ",",
            ".",
            "@",
            "7",
            "_",
            "-",
        ];
        // And any listed name, capitalised (accents, hyphens, apostrophes as listed).
        let capital = |w: &str| -> String {
            let mut cs = w.chars();
            cs.next()
                .map(|c| c.to_uppercase().chain(cs).collect())
                .unwrap_or_default()
        };
        let given: Vec<String> = GIVEN.lines().map(capital).collect();
        let surnames: Vec<String> = SURNAMES.lines().map(capital).collect();
        let mut next = crate::detect::tests::xorshift(0x6769_7665_6e5f_736e);
        let (mut asked, mut accepted) = (0, 0);
        for _ in 0..50_000 {
            let n = (next() % 12) as usize;
            let text: String = (0..n)
                .map(|_| {
                    let piece = match next() % 4 {
                        0 => &given[(next() % given.len() as u64) as usize],
                        1 => &surnames[(next() % surnames.len() as u64) as usize],
                        _ => PIECES[(next() % PIECES.len() as u64) as usize],
                    };
                    if next().checked_rem(3) != Some(0) {
                        format!("{piece} ")
                    } else {
                        piece.to_string()
                    }
                })
                .collect();
            let t = text.as_bytes();
            let run = |only: bool| {
                let mut found = Vec::new();
                name_candidates(t, only, |s, e, rs, re| {
                    let ok = given_surname(t, s, e);
                    if ok {
                        found.push((s, e, rs, re));
                    }
                    ok
                });
                found
            };
            let all = run(false);
            assert_eq!(run(true), all, "{text:?}");
            asked += 1;
            accepted += usize::from(!all.is_empty());
        }
        assert!(accepted > 2_000, "{accepted} of {asked}");
    }

    /// A text that fails `may_hold_pair` has no candidate: random texts of name words, particles,
    /// initials, separators (` `, `\u{a0}`, `\u{202f}`), apostrophes,
    /// words ending beyond ASCII, capitals, digits and glue.
    #[test]
    fn a_text_without_a_separator_after_a_lower_case_letter_has_no_candidate() {
        const PIECES: &[&str] = &[
            "Maria",
            "José",
            "Garcia",
            "Müller",
            "Łukasz",
            "ÉLODIE",
            "Zoë",
            "O'Brien",
            "O’Neil",
            "Hans-Peter",
            "de",
            "van",
            "D.",
            "API",
            "x",
            "é",
            "ß",
            "山田",
            " ",
            " ",
            " ",
            "\u{a0}",
            "\u{202f}",
            "'",
            "’",
            "-",
            ".",
            ",",
            "_",
            "@",
            "7",
            "\n",
            "A",
            "a",
        ];
        let mut next = crate::detect::tests::xorshift(0x4e61_6d65_5061_6972);
        let (mut with_candidates, mut skipped) = (0, 0);
        for _ in 0..100_000 {
            let n = (next() % 8) as usize;
            // Half the pieces a word and a space, so that runs of words are common.
            let text: String = (0..n)
                .map(|_| {
                    let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                    if next() & 1 == 0 {
                        format!("{piece} ")
                    } else {
                        piece.to_string()
                    }
                })
                .collect();
            let mut any = false;
            every_run(text.as_bytes(), false, |_, _, _, _| {
                any = true;
                false
            });
            if !may_hold_pair(text.as_bytes()) {
                assert!(!any, "{text:?}");
                skipped += 1;
            }
            with_candidates += usize::from(any);
        }
        // Both kinds of text were made, many times.
        assert!(
            with_candidates > 5_000 && skipped > 5_000,
            "{with_candidates} {skipped}"
        );
        for text in [
            "José Garcia",
            "Zoë\u{a0}Müller",
            "Łukasz\u{202f}Nowak",
            "Maria de Vries",
        ] {
            assert!(may_hold_pair(text.as_bytes()), "{text:?}");
            assert!(!candidates(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn candidates_are_runs_of_capitalised_words_longest_first() {
        assert_eq!(
            candidates("to Maria Garcia Lopez. Pieter de Vries, O'Brien Smith"),
            vec![
                "Maria Garcia Lopez",
                "Maria Garcia",
                "Garcia Lopez",
                "Pieter de Vries",
                "O'Brien Smith"
            ]
        );
        assert_eq!(candidates("Hans-Peter Kobelt"), vec!["Hans-Peter Kobelt"]);
        assert_eq!(candidates("Élodie Martin"), vec!["Élodie Martin"]);
        assert!(candidates("maria garcia, MARIA GARCIA, xMaria Garcia").is_empty());
        assert_eq!(candidates("A B Cd Ef"), vec!["Cd Ef"]);
        // An accepted candidate is skipped whole.
        let mut seen = Vec::new();
        name_candidates(b"Anna Maria Schmidt", false, |s, e, _, _| {
            seen.push((s, e));
            true
        });
        assert_eq!(seen, vec![(0, 18)]);
        // A shorter name reports the whole run.
        let mut seen = Vec::new();
        name_candidates(b"Hans Peter Stiebitz", false, |s, e, _, run| {
            seen.push((s, e, run));
            e == 10
        });
        assert_eq!(seen, vec![(0, 19, 19), (0, 10, 19)]);
        // Names padded into a long run are still candidates (the rest of the run, five words
        // or fewer, is then a run of its own and its finding).
        let text = "Xx Yy Maria Garcia Zz Ww Vv";
        let mut seen = Vec::new();
        name_candidates(text.as_bytes(), false, |s, e, rs, re| {
            let hit = &text[s..e] == "Maria Garcia";
            if hit {
                seen.push((&text[s..e], &text[rs..re]));
            }
            hit
        });
        assert_eq!(seen, vec![("Maria Garcia", "Maria Garcia Zz Ww Vv")]);
    }

    #[test]
    fn han_names_start_with_a_surname() {
        assert!(cjk_name("山田太郎".as_bytes()));
        assert!(cjk_name("佐藤".as_bytes()));
        assert!(cjk_name("王小明".as_bytes()));
        assert!(!cjk_name("担当者".as_bytes()));
        assert!(!cjk_name("会員".as_bytes()));
        assert!(!cjk_name("山".as_bytes()));
        assert!(!cjk_name("やまだ".as_bytes()));
        assert!(cjk_name("清水 あすか".as_bytes()));
    }
}
