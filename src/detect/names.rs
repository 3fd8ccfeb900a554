//! Person names in free text, without a model: a gazetteer of given names and surnames
//! (`names/*.txt`, built by `tools/names/` from census and registry lists; sources and
//! licences in `tools/names/SOURCES.md`) checked on capitalised words a pattern proposes.
//!
//! The lists are sorted text, searched as they are (no index is built: nothing to compile).
//! Three checks, from the weakest context to the strongest:
//! - [`given_surname`]: two to four capitalised words, anywhere; the first a given name, the
//!   last a surname ("assigned to Maria Garcia", "Maria Garcia called").
//! - [`known_name`]: the words after a greeting or a header (`Hi Jan,`, `From: Pieter de
//!   Vries`): the first word a given name or a surname.
//! - [`cjk_name`]: two to four Han characters before an honorific (`山田太郎様`) or after a
//!   label (`氏名：`), starting with a surname.
//!
//! The first two refuse a name that is part of a place ("Maria Street", "Rue Victor Hugo",
//! "San Jose"): [`in_place`].

static GIVEN: &str = include_str!("names/given.txt");
static SURNAMES: &str = include_str!("names/surnames.txt");
static CJK_SURNAMES: &str = include_str!("names/cjk_surnames.txt");

/// Given names that are also words capitalised in titles and UI text; as the first word of a
/// name found without context they are not taken ("May Update", "Will Call").
const FIRST_STOP: &[&str] = &[
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
];

/// Words that start sentences and are also listed as names (`My`, `Case`): after a greeting
/// or a header they are not taken as the first word of a name.
const KNOWN_STOP: &[&str] = &[
    "again", "all", "also", "an", "and", "any", "as", "case", "customer", "dear", "everyone",
    "for", "from", "good", "hello", "here", "hi", "his", "in", "is", "it", "madam", "my", "no",
    "not", "now", "of", "on", "our", "please", "sir", "so", "support", "team", "thanks", "the",
    "their", "there", "this", "to", "we", "you", "your",
];

/// Words after a name that make it a place, a building or an organisation ("Maria Street").
const PLACE_AFTER: &[&str] = &[
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
    "circle",
    "city",
    "clinic",
    "close",
    "co",
    "college",
    "company",
    "corp",
    "county",
    "court",
    "crescent",
    "ct",
    "damm",
    "district",
    "dr",
    "drive",
    "foundation",
    "garden",
    "gardens",
    "gasse",
    "gmbh",
    "gracht",
    "group",
    "grove",
    "hall",
    "heights",
    "highway",
    "hill",
    "hospital",
    "hotel",
    "inc",
    "institute",
    "island",
    "kade",
    "laan",
    "lake",
    "lane",
    "library",
    "llc",
    "ln",
    "ltd",
    "mall",
    "market",
    "memorial",
    "museum",
    "park",
    "parkway",
    "pl",
    "place",
    "platz",
    "plaza",
    "plein",
    "quay",
    "rd",
    "ring",
    "river",
    "road",
    "row",
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
    "town",
    "trail",
    "university",
    "valley",
    "village",
    "walk",
    "way",
    "weg",
    "wharf",
];

/// Words before a name that make it a place ("Rue Victor Hugo", "San Jose", "Via Roma").
const PLACE_BEFORE: &[&str] = &[
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
];

/// Lower-case words allowed between the words of a name ("Pieter de Vries", "Ludwig van der
/// Rohe", "Maria dos Santos").
const PARTICLES: &[&str] = &[
    "al", "bin", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du", "e",
    "la", "le", "ten", "ter", "van", "von", "y", "zu",
];

/// Whether `word` (lower case) is a line of `list` (sorted by bytes, one name per line).
fn listed(list: &str, word: &str) -> bool {
    let bytes = list.as_bytes();
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = memchr::memrchr(b'\n', &bytes[..mid]).map_or(0, |p| p + 1);
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |p| start + p);
        match bytes[start..end].cmp(word.as_bytes()) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = end + 1,
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    false
}

fn lower(word: &str) -> String {
    word.chars()
        .map(|c| if c == '’' { '\'' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `word`, lower-cased, is in `list`; a hyphenated word (`Hans-Peter`) when both
/// parts are. ASCII words (most) are lower-cased on the stack.
fn listed_word(list: &str, word: &str) -> bool {
    let find = |w: &str| {
        listed(list, w)
            || w.split_once('-')
                .is_some_and(|(a, b)| listed(list, a) && listed(list, b))
    };
    let mut buf = [0u8; 32];
    if word.is_ascii() && word.len() <= buf.len() {
        let b = &mut buf[..word.len()];
        b.copy_from_slice(word.as_bytes());
        b.make_ascii_lowercase();
        std::str::from_utf8(b).is_ok_and(find)
    } else {
        find(&lower(word))
    }
}

pub(crate) fn is_given(word: &str) -> bool {
    listed_word(GIVEN, word)
}

pub(crate) fn is_surname(word: &str) -> bool {
    listed_word(SURNAMES, word)
}

/// A word of a name: a capital, then letters, the last lower case (`Ada`, `McDonald`,
/// `O'Brien`, `Jean-Luc`); not a word in capitals (`API`).
fn capitalised(word: &str) -> bool {
    let mut cs = word.chars();
    cs.next().is_some_and(char::is_uppercase)
        && word.chars().count() >= 2
        && word.chars().last().is_some_and(char::is_lowercase)
        && word
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’' | '-'))
}

/// The words of a candidate name, or `None` when a word is neither capitalised nor a particle
/// (the first and the last must be capitalised).
fn words(value: &[u8]) -> Option<Vec<&str>> {
    let s = std::str::from_utf8(value).ok()?;
    let words: Vec<&str> = s.split(' ').collect();
    let n = words.len();
    if !(1..=5).contains(&n) {
        return None;
    }
    for (i, w) in words.iter().enumerate() {
        let edge = i == 0 || i + 1 == n;
        if !(capitalised(w) || (!edge && PARTICLES.contains(w))) {
            return None;
        }
    }
    Some(words)
}

/// The word that ends just before `s` (skipping one space or `,`) and the one that starts just
/// after `e`, lower-cased ASCII letters only (a place word is ASCII or Latin-1).
fn neighbours(text: &[u8], s: usize, e: usize) -> (String, String) {
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
    let norm = |w: &[u8]| lower(std::str::from_utf8(w).unwrap_or("").trim_end_matches('.'));
    (
        if b < s {
            norm(&text[bs..b])
        } else {
            String::new()
        },
        if a > e {
            norm(&text[a..ae])
        } else {
            String::new()
        },
    )
}

/// Whether the name at `text[s..e]` is part of a place, a building or an organisation.
pub(crate) fn in_place(text: &[u8], s: usize, e: usize) -> bool {
    let (before, after) = neighbours(text, s, e);
    PLACE_BEFORE.contains(&before.as_str()) || PLACE_AFTER.contains(&after.as_str())
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
        && !FIRST_STOP.contains(&lower(first).as_str())
        && !in_place(text, s, e)
}

/// One to five words, the first a given name or a surname, no place around them; or Han
/// characters starting with a surname ([`cjk_name`]).
pub(crate) fn known_name(text: &[u8], s: usize, e: usize) -> bool {
    if text.get(s).is_some_and(|b| *b >= 0xE3) {
        return cjk_name(&text[s..e]);
    }
    let Some(ws) = words(&text[s..e]) else {
        return false;
    };
    !KNOWN_STOP.contains(&lower(ws[0]).as_str())
        && (is_given(ws[0]) || is_surname(ws[0]))
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
    // Roles and groups addressed like people: 担当者様, 会員様, 管理者様, 関係者各位, 御社.
    if chars
        .last()
        .is_some_and(|c| "者員客社位方同皆".contains(*c))
    {
        return false;
    }
    (1..=chars.len().min(3)).any(|k| {
        let prefix: String = chars[..k].iter().collect();
        listed(CJK_SURNAMES, &prefix)
    })
}

/// Whether a byte starts a capitalised word: an ASCII capital, or the lead byte of a Latin-1
/// or Latin Extended-A letter (`É`, `Ł`: checked by the validator).
fn cap_start(b: u8) -> bool {
    b.is_ascii_uppercase() || matches!(b, 0xC3..=0xC5)
}

/// The byte after a word's first letter: a lower-case ASCII letter or part of a non-ASCII
/// character (`Jürgen`, the rest of `É`).
fn lower_next(b: u8) -> bool {
    b.is_ascii_lowercase() || b >= 0x80
}

/// Whether `text` holds two capitalised words separated by a space, maybe with particles
/// between (`Maria Garcia`, `Pieter de Vries`): the gate of `person_name.text`, which most
/// texts (ids, enums, lower-case prose) fail in one pass over their spaces. (Also asking for a
/// listed given name first cut the detector's runs by 15% and cost more than it saved.)
pub(crate) fn has_name_pair(text: &[u8]) -> bool {
    // `Maria`, `Élodie`, `O'Brien`.
    let capitalised_at = |p: usize| {
        text.get(p).is_some_and(|&b| cap_start(b))
            && text.get(p + 1).is_some_and(|&b| {
                lower_next(b) || (b == b'\'' && text.get(p + 2).is_some_and(|&c| cap_start(c)))
            })
    };
    // The start of the word that ends at `end` (exclusive).
    let word_start = |end: usize| {
        let mut k = end;
        while k > 0
            && (text[k - 1].is_ascii_alphabetic() || text[k - 1] >= 0x80 || text[k - 1] == b'-')
        {
            k -= 1;
        }
        k
    };
    for p in memchr::memchr_iter(b' ', text) {
        if p == 0 || !(text[p - 1].is_ascii_lowercase() || text[p - 1] >= 0x80) {
            continue;
        }
        if !capitalised_at(word_start(p)) {
            continue;
        }
        // Up to two particles (`de`, `van der`), then a capitalised word.
        let mut q = p + 1;
        for _ in 0..3 {
            if capitalised_at(q) {
                return true;
            }
            let mut r = q;
            while r < text.len() && r - q < 5 && text[r].is_ascii_lowercase() {
                r += 1;
            }
            if r == q || text.get(r) != Some(&b' ') {
                break;
            }
            q = r + 1;
        }
    }
    false
}

/// Whether byte `b` is part of a word of a name: an ASCII letter or a byte of a non-ASCII
/// character (which the validators check as characters).
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphabetic() || b >= 0x80
}

/// The end of the word starting at `i`: letters, with `'` or `-` inside (`O'Brien`,
/// `Hans-Peter`).
fn word_end(text: &[u8], i: usize) -> usize {
    let mut e = i;
    while e < text.len() {
        if word_byte(text[e]) {
            e += 1;
        } else if matches!(text[e], b'\'' | b'-') && text.get(e + 1).is_some_and(|&b| word_byte(b))
        {
            e += 2;
        } else {
            break;
        }
    }
    e
}

/// The candidates of `person_name.text`: runs of two to four capitalised words separated by
/// single spaces, with up to two particles between them (`Pieter de Vries`). For each run,
/// `found(start, end, run_end)` is asked from the longest candidate to the shortest (two
/// words); a shorter candidate that is a name makes the whole run the finding (`run_end`:
/// in `Hans Peter Stiebitz` the listed `Hans Peter` is a name and `Stiebitz` is its unlisted
/// surname, which must not be left out). After an accepted candidate the search goes on past
/// the run, else at the next word. One pass over the text, no regex: the regex this replaced
/// searched again after every rejected candidate, and title case is frequent in prose.
pub(crate) fn name_candidates(text: &[u8], mut found: impl FnMut(usize, usize, usize) -> bool) {
    let capitalised_word =
        |s: usize, e: usize| std::str::from_utf8(&text[s..e]).is_ok_and(capitalised);
    let mut i = 0;
    while i < text.len() {
        // The next word start: a capital after a byte that is not part of a word.
        if !cap_start(text[i]) || (i > 0 && (word_byte(text[i - 1]) || text[i - 1] == b'\'')) {
            i += 1;
            continue;
        }
        let first_end = word_end(text, i);
        if !capitalised_word(i, first_end) {
            i = first_end.max(i + 1);
            continue;
        }
        // The capitalised words after it: ends of the candidates, shortest first.
        let mut ends = [0usize; 3];
        let mut n = 0;
        let mut at = first_end;
        while n < ends.len() {
            let mut q = at;
            let mut particles = 0;
            let next = loop {
                if text.get(q) != Some(&b' ') {
                    break None;
                }
                let ws = q + 1;
                let we = word_end(text, ws);
                if we == ws {
                    break None;
                }
                if capitalised_word(ws, we) {
                    break Some(we);
                }
                let particle =
                    std::str::from_utf8(&text[ws..we]).is_ok_and(|w| PARTICLES.contains(&w));
                if particles < 2 && particle {
                    particles += 1;
                    q = we;
                    continue;
                }
                break None;
            };
            match next {
                Some(we) => {
                    ends[n] = we;
                    n += 1;
                    at = we;
                }
                None => break,
            }
        }
        let run_end = if n > 0 { ends[n - 1] } else { first_end };
        let accepted = ends[..n].iter().rev().any(|&e| found(i, e, run_end));
        i = if accepted { run_end } else { first_end }.max(i + 1);
    }
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
        assert!(!listed(GIVEN, ""));
        assert!(!listed(GIVEN, "\u{10FFFF}"));
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

    #[test]
    fn the_gate_passes_every_name_the_pattern_may_find() {
        for t in [
            "Maria Garcia",
            "to Maria Garcia.",
            "Pieter de Vries",
            "Élodie Martin",
            "José Álvarez",
            "Łukasz Żak",
            "Hans-Peter Kobelt",
            "x: Anna van der Berg",
            "Jürgen Ölz",
            "Ana de la Cruz",
            "Reece O'Brien",
        ] {
            assert!(has_name_pair(t.as_bytes()), "{t}");
        }
        for t in [
            "maria garcia",
            "MARIA GARCIA",
            "2024-01-15 10:00",
            "a-b c_d",
            "Maria",
            "",
        ] {
            assert!(!has_name_pair(t.as_bytes()), "{t}");
        }
    }

    fn candidates(text: &str) -> Vec<&str> {
        let mut all = Vec::new();
        name_candidates(text.as_bytes(), |s, e, _| {
            all.push(&text[s..e]);
            false
        });
        all
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
        name_candidates(b"Anna Maria Schmidt", |s, e, _| {
            seen.push((s, e));
            true
        });
        assert_eq!(seen, vec![(0, 18)]);
        // A shorter name reports the whole run.
        let mut seen = Vec::new();
        name_candidates(b"Hans Peter Stiebitz", |s, e, run| {
            seen.push((s, e, run));
            e == 10
        });
        assert_eq!(seen, vec![(0, 19, 19), (0, 10, 19)]);
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
