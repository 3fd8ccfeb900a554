//! Finding detector keywords in a whole body: one pass, the same on every target.
//!
//! - Single-byte keywords (`@`, `+`) use `memchr`; two-byte keywords that match in one case
//!   only (`SK`, `Mr`) use `memmem`, which looks for both bytes at once.
//! - Every other keyword is in one Aho-Corasick DFA that matches in any ASCII case, searched
//!   for overlapping matches, so it reports every occurrence of every keyword. Keywords of
//!   detectors whose patterns ignore case (`apiKey`, `X-Api-Key`, `DoB`) match in any case
//!   (listing case variants cannot cover them: `apikey` alone has 64); the others are compared
//!   again byte for byte where the DFA matched them.
//!
//! Measured on the corpus (docs/BENCHMARKS.md, session 11): the DFA is one table lookup per
//! byte, and beat both earlier designs on realistic bodies, natively and in V8. The SIMD
//! (Teddy) automata of at most 60 keywords each took eight passes over a body for the
//! pack's ~430 keywords, with lower-cased copies for the any-case ones, and prose made their
//! fingerprints verify often; the hashed-trigram filter used in wasm probed a table at every
//! byte.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::DetectorMask;

pub(crate) struct KeywordSearch {
    bytes: Vec<(u8, DetectorMask)>,
    /// Two-byte keywords of one case (`SK`).
    pairs: Vec<(memchr::memmem::Finder<'static>, DetectorMask)>,
    /// The other keywords, matched in any ASCII case; `None` when there are none.
    dfa: Option<AhoCorasick>,
    /// Per DFA pattern: its detectors, and the bytes to compare when it matches in one case
    /// only.
    patterns: Vec<(DetectorMask, Option<Box<[u8]>>)>,
    /// The detectors any DFA pattern triggers.
    dfa_owners: DetectorMask,
}

impl std::fmt::Debug for KeywordSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordSearch")
            .field("bytes", &self.bytes.len())
            .field("pairs", &self.pairs.len())
            .field("patterns", &self.patterns.len())
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
        let mut pairs = Vec::new();
        let mut dfa_keywords: Vec<&str> = Vec::new();
        let mut patterns = Vec::new();
        for (k, &owner) in exact.iter().zip(&exact_owner) {
            if k.len() == 2 {
                pairs.push((
                    memchr::memmem::Finder::new(k.as_bytes()).into_owned(),
                    owner,
                ));
            } else {
                dfa_keywords.push(k);
                patterns.push((owner, Some(k.as_bytes().into())));
            }
        }
        for (k, &owner) in folded.iter().zip(&folded_owner) {
            dfa_keywords.push(k);
            patterns.push((owner, None));
        }
        let dfa = if dfa_keywords.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .kind(Some(AhoCorasickKind::DFA))
                    .match_kind(MatchKind::Standard)
                    .ascii_case_insensitive(true)
                    // A prefilter of rare or start bytes finds nothing to skip over ~400
                    // keywords in any case; measured: no faster.
                    .prefilter(false)
                    .build(&dfa_keywords)
                    .map_err(|e| format!("keyword prefilter: {e}"))?,
            )
        };
        let dfa_owners = patterns
            .iter()
            .fold(DetectorMask::EMPTY, |m, (o, _)| m | *o);
        Ok(KeywordSearch {
            bytes,
            pairs,
            dfa,
            patterns,
            dfa_owners,
        })
    }

    /// Heap bytes of the DFA.
    pub(crate) fn memory_usage(&self) -> usize {
        self.dfa.as_ref().map_or(0, AhoCorasick::memory_usage)
    }

    /// Calls `f(start, end, detectors)` for every keyword occurrence in `text` (in no
    /// particular order); stops early when `f` returns false. Searches only for keywords that
    /// can trigger a detector in `wanted` (others may still be reported).
    pub(crate) fn for_each(
        &self,
        text: &[u8],
        wanted: DetectorMask,
        mut f: impl FnMut(usize, usize, DetectorMask) -> bool,
    ) {
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
        let Some(dfa) = self.dfa.as_ref().filter(|_| self.dfa_owners.meets(wanted)) else {
            return;
        };
        for m in dfa.find_overlapping_iter(text) {
            let (owner, exact) = &self.patterns[m.pattern().as_usize()];
            let (s, e) = (m.start(), m.end());
            if exact.as_deref().is_some_and(|k| &text[s..e] != k) {
                continue;
            }
            if !f(s, e, *owner) {
                return;
            }
        }
    }
}

/// Drops every keyword that contains another one of the list (`passport` beside `pass`), its
/// detectors now triggered by the shorter: wherever the longer occurs, the shorter does, in the
/// same text. Only keywords whose detectors are all in `absorbable` (the built-in ones: each
/// keyword is a literal its pattern requires, or a context word `accept` checks again), so
/// findings do not change; a custom class's keywords are a gate of the user's and stay exact.
/// The DFA gets fewer patterns and states. The price: a short keyword opens more gates (`tel`, inside "hotel", now also
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

    /// The detectors triggered by keywords within `text[start..end]`.
    fn within(hits: &[(usize, usize, DetectorMask)], start: usize, end: usize) -> DetectorMask {
        hits.iter()
            .filter(|h| h.0 >= start && h.1 <= end)
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
        assert_eq!(search.patterns.len(), 3);
        let hits = occurrences(&search, br#""PASSPORT No 1","report","ssn""#);
        let first = within(&hits, 0, 15);
        for i in [0, 1, 2] {
            assert!(first.has(i), "{i} triggered by PASSPORT No");
        }
        assert!(!first.has(3), "`port` matches in its case only");
        assert!(within(&hits, 16, 24).has(3));
        assert!(within(&hits, 25, 30).has(4));
    }

    #[test]
    fn every_occurrence_of_every_keyword_is_found_in_its_case() {
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
            "ob:",
            "Ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(DetectorMask::bit).collect();
        // "secret", "apikey", "dob" and "ob:" ignore case, as the patterns that own them do.
        let any_case: Vec<bool> = kw
            .iter()
            .map(|k| matches!(k.as_str(), "secret" | "apikey" | "dob" | "ob:"))
            .collect();
        let mut long = vec![b'x'; 5000];
        long.extend_from_slice(b"SeCrEt apiKEY");
        long.extend(vec![b'y'; 5000]);
        long.extend_from_slice(b"DOB");
        let texts: [&[u8]; 10] = [
            br#""my secret","secret_access_key is AKIAXXXX","mail a@b.io""#,
            br#""X-ApiKey: 1","apiKey=2","APIKEY","DoB: 12/03/1985","SECRET Secret sEcReT""#,
            br#""akia is not AKIA","eyj is not eyJ","dr is not Dr","ms, MS, Ms""#,
            &long,
            br#""1600 Pennsylvania Avenue","5th Ave","5th AVE","Dr""#,
            br#""eyJhbGciOi.eyJzdWIi +1 415""#,
            b"Dr",
            b"D",
            b"",
            b"dobob: DOB:",
        ];
        let search = KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL).unwrap();
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
                occurrences(&search, t),
                naive,
                "{}",
                String::from_utf8_lossy(t)
            );
        }
    }
}
