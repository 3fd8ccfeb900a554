//! The built-in JWT pattern's search, written out: the leftmost-first match the regex finds,
//! from each `eyJ` at a word's start, in one pass over the token's bytes instead of the lazy
//! DFA's forward and reverse passes over it (a token is hundreds of bytes, and the lazy DFA
//! costs several instructions a byte each way). A test compares it with the regex on random
//! and hostile texts.

/// The pattern this search is: `eyJ<part>.eyJ<part>.<part>`, the first two parts at least
/// four bytes after their `eyJ`.
pub(crate) const PATTERN: &str =
    r"(?-u:\b)eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*";

/// A byte of a part (`[A-Za-z0-9_\-]`).
fn part(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// The run of part bytes from `i`: where it ends.
fn run_end(hay: &[u8], i: usize) -> usize {
    let run = hay
        .get(i..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&b| part(b))
        .count();
    #[cfg(test)]
    tests::WALKED.with(|w| w.set(w.get() + run));
    i + run
}

/// The header or payload at `i`: `eyJ`, then four part bytes or more, then a `.`. `Ok`: the
/// position after the `.`; `Err`: where the run of part bytes after `eyJ` ended (the `eyJ`
/// missing: `i`).
fn segment(hay: &[u8], i: usize) -> Result<usize, usize> {
    if !hay.get(i..).is_some_and(|h| h.starts_with(b"eyJ")) {
        return Err(i);
    }
    let end = run_end(hay, i + 3);
    if end - (i + 3) >= 4 && hay.get(end) == Some(&b'.') {
        Ok(end + 1)
    } else {
        Err(end)
    }
}

/// The leftmost-first match of [`PATTERN`] in `hay` starting at or after `at`, as
/// `(start, end)` (the byte before `at` still decides the word boundary, as a regex search
/// from `at` sees it).
///
/// Neither `.` nor any byte outside a part is a part byte, so each repetition takes the whole
/// run of part bytes, and only a whole run can be followed by its `.`: a start gives one
/// match or none. A start that fails rules out the starts before where it failed (each of them
/// sits in the same run and meets the same byte, or the same payload), so the search goes on
/// from there: each byte is looked at a bounded number of times.
pub(crate) fn find(hay: &[u8], at: usize) -> Option<(usize, usize)> {
    let finder = memchr::memmem::Finder::new(b"eyJ");
    let mut from = at;
    while let Some(p) = finder.find(hay.get(from..)?) {
        let s = from + p;
        if s > 0 && super::is_word(hay[s - 1]) {
            from = s + 1;
            continue;
        }
        let payload = match segment(hay, s) {
            Ok(payload) => payload,
            Err(failed) => {
                from = failed.max(s + 1);
                continue;
            }
        };
        match segment(hay, payload) {
            Ok(signature) => return Some((s, run_end(hay, signature))),
            // A start up to where the payload failed is in the header's run, or meets the
            // same payload as a header and fails there.
            Err(failed) => from = failed.max(payload),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{xorshift, Oracle};

    thread_local! {
        /// Bytes of runs walked by this thread's searches.
        pub(super) static WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn regex() -> Oracle {
        Oracle::new(PATTERN, find)
    }

    #[test]
    fn finds_what_the_regex_finds() {
        let re = regex();
        let parts: [&[u8]; 18] = [
            b"eyJ",
            b"eyJ",
            b"eyJab",
            b"abcd",
            b"a",
            b"Z9",
            b".",
            b"..",
            b"-",
            b"_",
            b" ",
            b"e",
            b"y",
            b"J",
            b"\xc3\xa9",
            b":",
            b"eyJabcd.",
            b"=",
        ];
        let mut rng = xorshift(0x6a77_745f_5eed);
        for _ in 0..60_000 {
            let mut hay = Vec::new();
            for _ in 0..rng() % 16 {
                hay.extend_from_slice(parts[(rng() % parts.len() as u64) as usize]);
            }
            re.check(&hay);
        }
    }

    #[test]
    fn bounds_and_hostile_texts_are_the_regexs() {
        let re = regex();
        for n in [0, 1, 3, 4, 5, 64, 300] {
            let run = "x".repeat(n);
            for hay in [
                format!("eyJ{run}.eyJ{run}.{run}"),
                format!("eyJ{run}.eyJabcd.sig"),
                format!("a-eyJ{run}.eyJ{run}.s t"),
                format!("aeyJ{run}.eyJ{run}.s"),
                format!("eyJ{run}.eyJ{run}"),
                format!("eyJ{run}.eyJ{run}.eyJ{run}.eyJ{run}."),
                "-eyJ".repeat(n + 1),
                "eyJabcd.".repeat(n + 1),
                "eyJabcd.eyJab.".repeat(n + 1),
                format!("{}eyJabcd.eyJabcd.x", "eyJabcd.e".repeat(n)),
            ] {
                re.check(hay.as_bytes());
            }
        }
        // Starts that fail, 100,000 of them in one run and in a chain of headers: each byte
        // is walked at most twice (a search from each start again would walk ~10^10).
        for hay in ["-eyJ".repeat(100_000), "eyJabcd.eyJab.".repeat(100_000)] {
            WALKED.with(|w| w.set(0));
            assert_eq!(find(hay.as_bytes(), 0), None);
            let walked = WALKED.with(|w| w.get());
            assert!(walked <= 2 * hay.len(), "{walked} for {}", hay.len());
        }
    }
}
