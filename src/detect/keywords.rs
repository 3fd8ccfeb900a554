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
//! Both find every keyword occurrence the detectors need; the tests check they agree.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::DetectorMask;

pub(crate) struct KeywordSearch {
    bytes: Vec<(u8, DetectorMask)>,
    automata: Vec<(AhoCorasick, Vec<DetectorMask>)>,
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
    /// `keywords[i]` triggers the detectors in `owners[i]`.
    pub(crate) fn build(
        keywords: &[String],
        owners: &[DetectorMask],
    ) -> Result<KeywordSearch, String> {
        let mut bytes: Vec<(u8, DetectorMask)> = Vec::new();
        let mut multi: Vec<&str> = Vec::new();
        let mut multi_owner: Vec<DetectorMask> = Vec::new();
        for (k, &owner) in keywords.iter().zip(owners) {
            match k.as_bytes() {
                [] => {}
                [b] => match bytes.iter_mut().find(|(x, _)| x == b) {
                    Some(entry) => entry.1 |= owner,
                    None => bytes.push((*b, owner)),
                },
                _ => {
                    multi.push(k);
                    multi_owner.push(owner);
                }
            }
        }
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
                    .filter(|b| overlaps(multi[a], multi[*b]))
                    .fold(0, |m, b| m | multi_owner[b])
            })
            .collect();
        let mut automata = Vec::new();
        for (chunk, owners) in multi.chunks(60).zip(implied.chunks(60)) {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(chunk)
                .map_err(|e| format!("keyword prefilter: {e}"))?;
            automata.push((ac, owners.to_vec()));
        }
        Ok(KeywordSearch {
            bytes,
            automata,
            trigram: Trigram::build(&multi, &multi_owner),
            use_trigram: cfg!(target_arch = "wasm32"),
        })
    }

    /// Calls `f(start, end, detectors)` for keyword occurrences in `text` (in no particular
    /// order); stops early when `f` returns false.
    pub(crate) fn for_each(
        &self,
        text: &[u8],
        mut f: impl FnMut(usize, usize, DetectorMask) -> bool,
    ) {
        for &(byte, owner) in &self.bytes {
            for p in memchr::memchr_iter(byte, text) {
                if !f(p, p + 1, owner) {
                    return;
                }
            }
        }
        if self.use_trigram {
            self.trigram.for_each(text, f);
            return;
        }
        for (ac, owners) in &self.automata {
            for m in ac.find_iter(text) {
                if !f(m.start(), m.end(), owners[m.pattern().as_usize()]) {
                    return;
                }
            }
        }
    }

    #[cfg(test)]
    fn with_trigram(mut self, yes: bool) -> KeywordSearch {
        self.use_trigram = yes;
        self
    }
}

/// A hashed-trigram filter over keywords of two bytes or more.
struct Trigram {
    /// 65,536 bits: indexing by `hash >> 6` needs no bounds check.
    bits: Box<[u64; 1024]>,
    /// (hash, keyword index), sorted.
    index: Vec<(u16, u16)>,
    keywords: Vec<Vec<u8>>,
    owners: Vec<DetectorMask>,
}

/// Shifts and xors only: this runs once per body byte.
fn hash3(a: u8, b: u8, c: u8) -> u16 {
    (u16::from(a) << 8 | u16::from(c)) ^ (u16::from(b) << 4) ^ (u16::from(b) >> 4)
}

impl Trigram {
    fn build(keywords: &[&str], owners: &[DetectorMask]) -> Trigram {
        let mut bits = Box::new([0u64; 1024]);
        let mut index = Vec::new();
        for (i, k) in keywords.iter().enumerate() {
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
            keywords: keywords.iter().map(|k| k.as_bytes().to_vec()).collect(),
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
                let kw = &self.keywords[usize::from(k)];
                if text[i..].starts_with(kw) && !f(i, i + kw.len(), self.owners[usize::from(k)]) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrences(search: &KeywordSearch, text: &[u8]) -> Vec<(usize, usize, DetectorMask)> {
        let mut v = Vec::new();
        search.for_each(text, |s, e, m| {
            v.push((s, e, m));
            true
        });
        v.sort_unstable();
        v
    }

    fn within(hits: &[(usize, usize, DetectorMask)], s: usize, e: usize) -> DetectorMask {
        hits.iter()
            .filter(|h| h.0 >= s && h.1 <= e)
            .fold(0, |m, h| m | h.2)
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(|i| 1 << i).collect();
        // Values are separated by quotes, which no keyword contains (as in JSON).
        let texts: [&[u8]; 6] = [
            br#""my secret","secret_access_key is AKIAXXXX","mail a@b.io""#,
            br#""1600 Pennsylvania Avenue","5th Ave","Dr""#,
            br#""eyJhbGciOi.eyJzdWIi +1 415""#,
            b"Dr",
            b"D",
            b"",
        ];
        let ac = KeywordSearch::build(&kw, &owners)
            .unwrap()
            .with_trigram(false);
        let tri = KeywordSearch::build(&kw, &owners)
            .unwrap()
            .with_trigram(true);
        for t in texts {
            let mut naive = Vec::new();
            for (k, &o) in kw.iter().zip(&owners) {
                let k = k.as_bytes();
                for s in 0..t.len() {
                    if t[s..].starts_with(k) {
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
