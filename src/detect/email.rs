//! The built-in email pattern's search, written out: the leftmost-first match the regex finds,
//! from the `@` out, without the lazy DFA's forward and reverse passes (the email detector
//! runs in most texts holding an `@`, which are short: the searches' set-up was most of its
//! cost). A test compares it with the regex on random and hostile texts.

/// The pattern this search is: `local@label(.label)*.tld`.
pub(crate) const PATTERN: &str = r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,63})@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}))*\.[A-Za-z]{2,24}";

/// A byte of a local part (`[A-Za-z0-9._%+\-]`).
fn local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// A byte of a domain label after its first (`[A-Za-z0-9\-]`).
fn label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The leftmost-first match of [`PATTERN`] in `hay` starting at or after `at`, as
/// `(start, end)`.
///
/// Neither `@` nor `.` is a byte of a label, and `@` is not one of a local part, so:
/// - the match's `@` is the first one after `at` that starts a domain and ends a local part;
///   its start is the first alphanumeric byte of the local part's bytes before the `@`, at
///   most 64 back;
/// - every label but the last part is a whole run of label bytes (1 to 63, the first
///   alphanumeric) followed by a `.`. The repetition is greedy: the match takes the most
///   labels after which a `.` and two letters follow, and then up to 24 letters.
pub(crate) fn find(hay: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut from = at;
    while let Some(p) = memchr::memchr(b'@', hay.get(from..)?) {
        let r = from + p;
        from = r + 1;
        let Some(end) = domain_end(hay, r + 1) else {
            continue;
        };
        let lowest = r.saturating_sub(64).max(at);
        let mut s = r;
        while s > lowest && local(hay[s - 1]) {
            s -= 1;
        }
        while s < r && !hay[s].is_ascii_alphanumeric() {
            s += 1;
        }
        if s < r {
            return Some((s, end));
        }
    }
    None
}

/// Where the domain starting at `d` ends (see [`find`]), if one does.
fn domain_end(hay: &[u8], d: usize) -> Option<usize> {
    // The `.` after each label the repetition may take, the first label's first.
    let mut dot = label_end(hay, d)?;
    let mut best = None;
    loop {
        if hay.get(dot) != Some(&b'.') {
            break;
        }
        // The last part from this `.`: two to 24 letters (the ones after them do not matter).
        let letters = hay[dot + 1..]
            .iter()
            .take(24)
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        if letters >= 2 {
            best = Some(dot + 1 + letters);
        }
        // One more label, if a whole one follows.
        match label_end(hay, dot + 1) {
            Some(next) => dot = next,
            None => break,
        }
    }
    best
}

/// The end of the label at `i`: an alphanumeric byte, then label bytes, 63 at most in all;
/// `None` when there is none or it is longer (it cannot be followed by its `.`).
fn label_end(hay: &[u8], i: usize) -> Option<usize> {
    if !hay.get(i)?.is_ascii_alphanumeric() {
        return None;
    }
    let run = hay[i + 1..]
        .iter()
        .take(63)
        .take_while(|&&b| label(b))
        .count();
    (run < 63).then_some(i + 1 + run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{xorshift, Oracle};

    fn regex() -> Oracle {
        Oracle::new(PATTERN, find)
    }

    #[test]
    fn finds_what_the_regex_finds() {
        let re = regex();
        let parts: [&[u8]; 20] = [
            b"a",
            b"Z",
            b"7",
            b"ab",
            b"com",
            b"c",
            b"@",
            b".",
            b"..",
            b"-",
            b"_",
            b"%",
            b"+",
            b" ",
            b"\xc3\xa9",
            b":",
            b"x1",
            b"DE",
            b"@@",
            b"a.b",
        ];
        let mut rng = xorshift(0xe4a1_5eed);
        for _ in 0..60_000 {
            let mut hay = Vec::new();
            for _ in 0..rng() % 14 {
                hay.extend_from_slice(parts[(rng() % parts.len() as u64) as usize]);
            }
            re.check(&hay);
        }
    }

    #[test]
    fn bounds_are_the_regexs() {
        let re = regex();
        let long = |c: u8, n: usize| vec![c; n];
        for n in [1, 2, 23, 24, 25, 62, 63, 64, 65, 66, 130] {
            let local = long(b'a', n);
            let dlabel = long(b'b', n);
            let tld = long(b'c', n);
            for hay in [
                [&local[..], b"@x.com"].concat(),
                [b"_.", &local[..], b"@x.com"].concat(),
                [b"a@", &dlabel[..], b".com"].concat(),
                [b"a@x.", &dlabel[..], b".com"].concat(),
                [b"a@x.", &tld[..]].concat(),
                [b"a@x.", &tld[..], b"1.d"].concat(),
                [b"a@x.", &dlabel[..], b"1.", &tld[..]].concat(),
                [&b"x@y.z ".repeat(n)[..], b"a@b.cd"].concat(),
                [&b"a@".repeat(n)[..], b"b.cd"].concat(),
                [&b"a@b.".repeat(n)[..], b"c"].concat(),
            ] {
                re.check(&hay);
            }
        }
    }
}
