//! Finding detector keywords in a whole body, fast, on every target.
//!
//! - Single-byte keywords (`@`, `+`) use `memchr`.
//! - On x86_64 and aarch64, the others go to Aho-Corasick automata of at most 60 patterns,
//!   searched leftmost-longest: that keeps the SIMD (Teddy) prefilter, which takes at most 64
//!   patterns (measured here: 63 patterns ~11 GB/s, 66 patterns ~0.7 GB/s).
//! - In WebAssembly there is no Teddy, and the automaton alone walks every byte (measured in
//!   Envoy: ~45% of the filter's time on a 64 KB body). There a trigram filter is used: a
//!   65,536-bit table of hashed first three bytes of every keyword, one table probe per body
//!   byte, and a byte comparison only where a probe hits.
//!
//! Keywords of detectors whose patterns ignore case (`apiKey`, `X-Api-Key`, `DoB`) match in any
//! ASCII case. Listing case variants explicitly cannot cover them (`apikey` alone has 64), and a
//! case-insensitive automaton loses the SIMD prefilter; so they have their own automata of
//! lower-case keywords, searched over lower-cased copies of the text, a 4 KiB window at a time
//! (folding is vectorised; the window stays in the cache). The trigram filter hashes lower-cased
//! bytes and compares case-insensitively where a keyword asks for it.
//!
//! Both find every keyword occurrence the detectors need; the tests check they agree.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::DetectorMask;

/// Bytes of text lower-cased and searched at a time by the any-case automata.
const FOLD_WINDOW: usize = 4096;

pub(crate) struct KeywordSearch {
    bytes: Vec<(u8, DetectorMask)>,
    /// Two-byte keywords (`SK`): `memmem` looks for both bytes at once, where an automaton's
    /// prefilter would stop at every `S`.
    pairs: Vec<(memchr::memmem::Finder<'static>, DetectorMask)>,
    automata: Vec<(AhoCorasick, Vec<DetectorMask>)>,
    /// Automata of lower-case keywords that match in any case, and their longest keyword.
    folded: Vec<(AhoCorasick, Vec<DetectorMask>)>,
    longest_folded: usize,
    trigram: Trigram,
    use_trigram: bool,
}

impl std::fmt::Debug for KeywordSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordSearch")
            .field("keywords", &self.trigram.keywords.len())
            .finish_non_exhaustive()
    }
}

impl KeywordSearch {
    /// `keywords[i]` triggers the detectors in `owners[i]`; it matches in any ASCII case when
    /// `any_case[i]`.
    pub(crate) fn build(
        keywords: &[String],
        owners: &[DetectorMask],
        any_case: &[bool],
        absorbable: DetectorMask,
    ) -> Result<KeywordSearch, String> {
        let mut bytes: Vec<(u8, DetectorMask)> = Vec::new();
        let mut exact: Vec<String> = Vec::new();
        let mut exact_owner: Vec<DetectorMask> = Vec::new();
        let mut folded: Vec<String> = Vec::new();
        let mut folded_owner: Vec<DetectorMask> = Vec::new();
        let add =
            |list: &mut Vec<String>, owner_list: &mut Vec<DetectorMask>, k: String, o| match list
                .iter()
                .position(|x| *x == k)
            {
                Some(p) => owner_list[p] |= o,
                None => {
                    list.push(k);
                    owner_list.push(o);
                }
            };
        for ((k, &owner), &fold) in keywords.iter().zip(owners).zip(any_case) {
            match k.as_bytes() {
                [] => {}
                [b] => {
                    let cases = if fold {
                        vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                    } else {
                        vec![*b]
                    };
                    for c in cases {
                        match bytes.iter_mut().find(|(x, _)| *x == c) {
                            Some(entry) => entry.1 |= owner,
                            None => bytes.push((c, owner)),
                        }
                    }
                }
                _ if fold => add(
                    &mut folded,
                    &mut folded_owner,
                    k.to_ascii_lowercase(),
                    owner,
                ),
                _ => add(&mut exact, &mut exact_owner, k.clone(), owner),
            }
        }
        absorb_superstrings(&mut folded, &mut folded_owner, absorbable);
        absorb_superstrings(&mut exact, &mut exact_owner, absorbable);
        let (mut longer, mut longer_owner) = (Vec::new(), Vec::new());
        let mut pairs = Vec::new();
        for (k, &owner) in exact.iter().zip(&exact_owner) {
            if k.len() == 2 {
                pairs.push((
                    memchr::memmem::Finder::new(k.as_bytes()).into_owned(),
                    owner,
                ));
            } else {
                longer.push(k.clone());
                longer_owner.push(owner);
            }
        }
        let exact_automata = automata(&longer, &longer_owner)?;
        let folded_automata = automata(&folded, &folded_owner)?;
        let mut trigram_keywords: Vec<(&str, bool)> =
            exact.iter().map(|k| (k.as_str(), false)).collect();
        trigram_keywords.extend(folded.iter().map(|k| (k.as_str(), true)));
        let mut trigram_owners = exact_owner.clone();
        trigram_owners.extend(&folded_owner);
        Ok(KeywordSearch {
            bytes,
            pairs,
            automata: exact_automata,
            folded: folded_automata,
            longest_folded: folded.iter().map(String::len).max().unwrap_or(0),
            trigram: Trigram::build(&trigram_keywords, &trigram_owners),
            use_trigram: cfg!(target_arch = "wasm32"),
        })
    }

    /// Calls `f(start, end, detectors)` for keyword occurrences in `text` (in no particular
    /// order); stops early when `f` returns false. Searches only for keywords that can
    /// trigger a detector in `wanted` (others may still be reported).
    pub(crate) fn for_each(
        &self,
        text: &[u8],
        wanted: DetectorMask,
        mut f: impl FnMut(usize, usize, DetectorMask) -> bool,
    ) {
        let wants = |owners: &[DetectorMask]| owners.iter().any(|o| o.meets(wanted));
        for &(byte, owner) in &self.bytes {
            if !owner.meets(wanted) {
                continue;
            }
            for p in memchr::memchr_iter(byte, text) {
                if !f(p, p + 1, owner) {
                    return;
                }
            }
        }
        if !self.use_trigram {
            for (finder, owner) in &self.pairs {
                if !owner.meets(wanted) {
                    continue;
                }
                for p in finder.find_iter(text) {
                    if !f(p, p + 2, *owner) {
                        return;
                    }
                }
            }
        }
        if self.use_trigram {
            if wants(&self.trigram.owners) {
                self.trigram.for_each(text, f);
            }
            return;
        }
        for (ac, owners) in &self.automata {
            if !wants(owners) {
                continue;
            }
            for m in ac.find_iter(text) {
                if !f(m.start(), m.end(), owners[m.pattern().as_usize()]) {
                    return;
                }
            }
        }
        if !self.folded.iter().any(|(_, owners)| wants(owners)) {
            return;
        }
        // Windows overlap by the longest keyword less one byte; a match is reported by the
        // window it starts in.
        let overlap = self.longest_folded.saturating_sub(1);
        let mut window = vec![0u8; text.len().min(FOLD_WINDOW) + overlap];
        let mut at = 0;
        while at < text.len() {
            let own_end = (at + FOLD_WINDOW).min(text.len());
            let end = (own_end + overlap).min(text.len());
            let w = &mut window[..end - at];
            w.copy_from_slice(&text[at..end]);
            w.make_ascii_lowercase();
            for (ac, owners) in &self.folded {
                for m in ac.find_iter(&*w) {
                    if at + m.start() >= own_end {
                        break;
                    }
                    if !f(at + m.start(), at + m.end(), owners[m.pattern().as_usize()]) {
                        return;
                    }
                }
            }
            at = own_end;
        }
    }

    #[cfg(test)]
    fn with_trigram(mut self, yes: bool) -> KeywordSearch {
        self.use_trigram = yes;
        self
    }
}

/// Aho-Corasick automata of at most 60 keywords each (see the module comment).
fn automata(
    multi: &[String],
    multi_owner: &[DetectorMask],
) -> Result<Vec<(AhoCorasick, Vec<DetectorMask>)>, String> {
    // Leftmost-longest search reports non-overlapping matches, so a match can hide another
    // keyword. A keyword therefore also triggers the owners of every keyword it contains
    // ("secret_access_key" -> "secret") and of every keyword that could start inside it and
    // run on (" Ave" -> "Avenue"): a superset, never a miss.
    let overlaps = |a: &str, b: &str| {
        a.contains(b) || (1..a.len()).any(|i| a.is_char_boundary(i) && b.starts_with(&a[i..]))
    };
    let implied: Vec<DetectorMask> = (0..multi.len())
        .map(|a| {
            (0..multi.len())
                .filter(|b| overlaps(&multi[a], &multi[*b]))
                .fold(DetectorMask::EMPTY, |m, b| m | multi_owner[b])
        })
        .collect();
    // Teddy fingerprints each pattern by as many leading bytes (up to three) as its shortest
    // pattern has: one two-byte keyword in a set makes every keyword's fingerprint two bytes,
    // and two-byte prefixes ("do", "si", "nt") occur everywhere in text. Keywords are therefore
    // grouped by length (2, 3, longer) before chunking.
    let mut automata = Vec::new();
    for lengths in [2..3, 3..4, 4..usize::MAX] {
        let group: Vec<usize> = (0..multi.len())
            .filter(|&k| lengths.contains(&multi[k].len()))
            .collect();
        for chunk in group.chunks(60) {
            let patterns: Vec<&str> = chunk.iter().map(|&k| multi[k].as_str()).collect();
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .map_err(|e| format!("keyword prefilter: {e}"))?;
            automata.push((ac, chunk.iter().map(|&k| implied[k]).collect()));
        }
    }
    Ok(automata)
}

/// A hashed-trigram filter over keywords of two bytes or more.
struct Trigram {
    /// 65,536 bits: indexing by `hash >> 6` needs no bounds check.
    bits: Box<[u64; 1024]>,
    /// (hash, keyword index), sorted.
    index: Vec<(u16, u16)>,
    /// (keyword, matches in any case)
    keywords: Vec<(Vec<u8>, bool)>,
    owners: Vec<DetectorMask>,
}

/// Shifts and xors only: this runs once per body byte. Hashes lower-cased bytes (`| 0x20` on
/// letters), so one probe serves every case of a keyword.
fn hash3(a: u8, b: u8, c: u8) -> u16 {
    let (a, b, c) = (fold(a), fold(b), fold(c));
    (u16::from(a) << 8 | u16::from(c)) ^ (u16::from(b) << 4) ^ (u16::from(b) >> 4)
}

fn fold(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

impl Trigram {
    fn build(keywords: &[(&str, bool)], owners: &[DetectorMask]) -> Trigram {
        let mut bits = Box::new([0u64; 1024]);
        let mut index = Vec::new();
        for (i, (k, _)) in keywords.iter().enumerate() {
            let k = k.as_bytes();
            let mut add = |h: u16| {
                bits[usize::from(h) / 64] |= 1 << (h % 64);
                index.push((h, i as u16));
            };
            if k.len() >= 3 {
                add(hash3(k[0], k[1], k[2]));
            } else {
                // Two-byte keywords match whatever follows, including nothing (0).
                for c in 0..=255u8 {
                    add(hash3(k[0], k[1], c));
                }
            }
        }
        index.sort_unstable();
        index.dedup();
        Trigram {
            bits,
            index,
            keywords: keywords
                .iter()
                .map(|(k, any_case)| (k.as_bytes().to_vec(), *any_case))
                .collect(),
            owners: owners.to_vec(),
        }
    }

    fn for_each(&self, text: &[u8], mut f: impl FnMut(usize, usize, DetectorMask) -> bool) {
        let n = text.len();
        let mut probe = |i: usize, h: u16| -> bool {
            let first = self.index.partition_point(|e| e.0 < h);
            for &(eh, k) in &self.index[first..] {
                if eh != h {
                    break;
                }
                let (kw, any_case) = &self.keywords[usize::from(k)];
                let found = match text.get(i..i + kw.len()) {
                    Some(t) if *any_case => t.eq_ignore_ascii_case(kw),
                    Some(t) => t == kw.as_slice(),
                    None => false,
                };
                if found && !f(i, i + kw.len(), self.owners[usize::from(k)]) {
                    return false;
                }
            }
            true
        };
        let bits = &*self.bits;
        let hit = |h: u16| bits[usize::from(h >> 6)] & (1 << (h & 63)) != 0;
        for (i, w) in text.windows(3).enumerate() {
            let h = hash3(w[0], w[1], w[2]);
            if hit(h) && !probe(i, h) {
                return;
            }
        }
        if n >= 2 {
            let h = hash3(text[n - 2], text[n - 1], 0);
            if hit(h) {
                let _ = probe(n - 2, h);
            }
        }
    }
}

/// Drops every keyword that contains another one of the list (`passport` beside `pass`), its
/// detectors now triggered by the shorter: wherever the longer occurs, the shorter does, in the
/// same text. Only keywords whose detectors are all in `absorbable` (the built-in ones: each
/// keyword is a literal its pattern requires, or a context word `accept` checks again), so
/// findings do not change; a custom class's keywords are a gate of the user's and stay exact.
/// The automata get fewer patterns, and a list that fits one automaton fewer is searched one
/// pass fewer. The price: a short keyword opens more gates (`tel`, inside "hotel", now also
/// opens those `fahrgestellnummer` opened): more detector runs, the same findings.
fn absorb_superstrings(
    list: &mut Vec<String>,
    owners: &mut Vec<DetectorMask>,
    absorbable: DetectorMask,
) {
    let mut keep = vec![true; list.len()];
    for i in 0..list.len() {
        if (owners[i] & !absorbable).any() {
            continue;
        }
        // The shortest keyword inside list[i] (ties: the first), if any.
        let inner = (0..list.len())
            .filter(|&j| j != i && list[j].len() < list[i].len() && list[i].contains(&list[j]))
            .min_by_key(|&j| list[j].len());
        if let Some(j) = inner {
            let o = owners[i];
            owners[j] |= o;
            keep[i] = false;
        }
    }
    let mut k = keep.iter();
    list.retain(|_| *k.next().unwrap_or(&true));
    let mut k = keep.iter();
    owners.retain(|_| *k.next().unwrap_or(&true));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrences(search: &KeywordSearch, text: &[u8]) -> Vec<(usize, usize, DetectorMask)> {
        let mut v = Vec::new();
        search.for_each(text, DetectorMask::ALL, |s, e, m| {
            v.push((s, e, m));
            true
        });
        v.sort_unstable();
        v
    }

    fn within(hits: &[(usize, usize, DetectorMask)], s: usize, e: usize) -> DetectorMask {
        hits.iter()
            .filter(|h| h.0 >= s && h.1 <= e)
            .fold(DetectorMask::EMPTY, |m, h| m | h.2)
    }

    #[test]
    fn a_keyword_inside_another_triggers_the_longer_ones_detectors_too() {
        let kw: Vec<String> = ["pass", "passport", "Passport no", "port", "ssn"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(DetectorMask::bit).collect();
        let any_case = vec![true, true, true, false, true];
        let search =
            KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL).expect("keywords");
        // `passport` and `passport no` (any case) are absorbed by `pass`; `port` is exact.
        assert_eq!(
            search
                .folded
                .iter()
                .map(|(a, _)| a.patterns_len())
                .sum::<usize>(),
            2
        );
        for trigram in [false, true] {
            let search = KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL)
                .expect("keywords")
                .with_trigram(trigram);
            let hits = occurrences(&search, br#""PASSPORT No 1","report","ssn""#);
            let first = within(&hits, 0, 15);
            for i in [0, 1, 2] {
                assert!(
                    first.has(i),
                    "{i} triggered by PASSPORT No (trigram {trigram})"
                );
            }
            assert!(within(&hits, 16, 24).has(3));
            assert!(within(&hits, 25, 30).has(4));
        }
    }

    #[test]
    fn trigram_finds_every_occurrence_and_automata_never_trigger_less() {
        let kw: Vec<String> = [
            "@",
            "secret",
            "secret_access_key",
            " Ave",
            "Avenue",
            "eyJ",
            "Dr",
            "AKIA",
            "+",
            "apikey",
            "dob",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(DetectorMask::bit).collect();
        // "secret", "apikey" and "dob" ignore case, as the patterns that own them do.
        let any_case: Vec<bool> = kw
            .iter()
            .map(|k| matches!(k.as_str(), "secret" | "apikey" | "dob"))
            .collect();
        // Values are separated by quotes, which no keyword contains (as in JSON).
        let mut long = vec![b'x'; FOLD_WINDOW - 3];
        long.extend_from_slice(b"SeCrEt apiKEY");
        long.extend(vec![b'y'; FOLD_WINDOW]);
        long.extend_from_slice(b"DOB");
        let texts: [&[u8]; 9] = [
            br#""my secret","secret_access_key is AKIAXXXX","mail a@b.io""#,
            br#""X-ApiKey: 1","apiKey=2","APIKEY","DoB: 12/03/1985","SECRET Secret sEcReT""#,
            br#""akia is not AKIA","eyj is not eyJ","dr is not Dr""#,
            &long,
            br#""1600 Pennsylvania Avenue","5th Ave","Dr""#,
            br#""eyJhbGciOi.eyJzdWIi +1 415""#,
            b"Dr",
            b"D",
            b"",
        ];
        let ac = KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL)
            .unwrap()
            .with_trigram(false);
        let tri = KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL)
            .unwrap()
            .with_trigram(true);
        for t in texts {
            let mut naive = Vec::new();
            for ((k, &o), &fold) in kw.iter().zip(&owners).zip(&any_case) {
                let k = k.as_bytes();
                for s in 0..t.len() {
                    let at = &t[s..t.len().min(s + k.len())];
                    if at.len() == k.len() && (at == k || (fold && at.eq_ignore_ascii_case(k))) {
                        naive.push((s, s + k.len(), o));
                    }
                }
            }
            naive.sort_unstable();
            assert_eq!(
                occurrences(&tri, t),
                naive,
                "{}",
                String::from_utf8_lossy(t)
            );
            let a = occurrences(&ac, t);
            let mut start = 0;
            for end in (0..=t.len()).filter(|&i| i == t.len() || t[i] == b'"') {
                let want = within(&naive, start, end);
                assert_eq!(
                    within(&a, start, end) & want,
                    want,
                    "value {start}..{end} of {}",
                    String::from_utf8_lossy(t)
                );
                start = end + 1;
            }
        }
    }
}
