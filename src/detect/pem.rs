//! The built-in private key pattern's search, written out: the leftmost-first match the regex
//! finds, a PEM block from its `-----BEGIN ... PRIVATE KEY-----` to the first `-----END ...
//! PRIVATE KEY-----` after it, found with `memmem` and one UTF-8 check of the block instead of
//! the lazy DFA's forward and reverse passes over it (a key is 1-3 KB). A test compares it with
//! the regex on random and hostile texts.

use memchr::memmem;

/// The pattern this search is. `(?s:.)` is Unicode's: any character, so the bytes between the
/// header and the footer must be UTF-8.
pub(crate) const PATTERN: &str = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";

/// Where `(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----` matching at `i` ends, if it does. A
/// word holds no `-` and the label ends in `-----`, so it ends at most one way: at the first
/// word that starts `PRIVATE KEY` followed by ` BLOCK-----` or `-----`; a word before it is
/// letters and digits followed by one space.
fn label_end(hay: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let rest = hay.get(i..)?;
        if let Some(after) = rest.strip_prefix(b"PRIVATE KEY".as_slice()) {
            if after.starts_with(b" BLOCK-----") {
                return Some(i + 11 + 11);
            }
            if after.starts_with(b"-----") {
                return Some(i + 11 + 5);
            }
        }
        let word = rest
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .count();
        if word == 0 || rest.get(word) != Some(&b' ') {
            return None;
        }
        i += word + 1;
    }
}

/// The leftmost-first match of [`PATTERN`] in `hay` starting at or after `at`, as
/// `(start, end)`.
///
/// A header that parses matches with the first footer after it that parses (the lazy `.*?`),
/// when the bytes between are UTF-8; else not at all (a later footer is behind the same
/// bytes). The first footer after a header is the first after any later header that ends
/// before it, and bytes that are not UTF-8 before it rule out every header that ends before
/// them, so each is found once: the search is linear.
pub(crate) fn find(hay: &[u8], at: usize) -> Option<(usize, usize)> {
    let begin = memmem::Finder::new(BEGIN);
    let end = memmem::Finder::new(END);
    // The first footer that parses after the end of the last header that did: (start, end).
    let mut footer: Option<(usize, usize)> = None;
    let mut from = at;
    while let Some(p) = begin.find(hay.get(from..)?) {
        let s = from + p;
        from = s + 1;
        let Some(h) = label_end(hay, s + BEGIN.len()) else {
            continue;
        };
        let (f, e) = match footer {
            Some((f, e)) if f >= h => (f, e),
            _ => {
                // No footer after this header: none after a later one.
                let found = first_footer(hay, &end, h)?;
                footer = Some(found);
                found
            }
        };
        let checked = std::str::from_utf8(&hay[h..f]);
        // The check stops at the first byte that is not UTF-8.
        #[cfg(test)]
        tests::WALKED.with(|w| {
            w.set(
                w.get()
                    + checked
                        .as_ref()
                        .map_or_else(|bad| bad.valid_up_to() + 1, |_| f - h),
            )
        });
        match checked {
            Ok(_) => return Some((s, e)),
            // A later header ending before the bad bytes meets them too.
            Err(bad) => from = from.max(h + bad.valid_up_to() + 1),
        }
    }
    None
}

/// The first footer at or after `q` that parses: (start, end).
fn first_footer(hay: &[u8], end: &memmem::Finder<'_>, mut q: usize) -> Option<(usize, usize)> {
    while let Some(k) = end.find(hay.get(q..)?) {
        let f = q + k;
        #[cfg(test)]
        tests::WALKED.with(|w| w.set(w.get() + (f + 1 - q)));
        if let Some(e) = label_end(hay, f + END.len()) {
            return Some((f, e));
        }
        q = f + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{xorshift, Oracle};

    thread_local! {
        /// Bytes searched for footers and checked as UTF-8 by this thread's searches.
        pub(super) static WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn regex() -> Oracle {
        Oracle::new(PATTERN, find)
    }

    #[test]
    fn finds_what_the_regex_finds() {
        let re = regex();
        let parts: [&[u8]; 24] = [
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"-----BEGIN PRIVATE KEY-----",
            b"-----BEGIN EC A1 PRIVATE KEY BLOCK-----",
            b"-----END RSA PRIVATE KEY-----",
            b"-----END PRIVATE KEY-----",
            b"-----END PRIVATE KEY BLOCK-----",
            b"-----BEGIN ",
            b"-----END ",
            b"PRIVATE KEY-----",
            b"PRIVATE KEY",
            b"RSA ",
            b"rsa ",
            b"BLOCK",
            b"-----",
            b"-",
            b" ",
            b"\n",
            b"MIIE",
            b"\xc3\xa9",
            b"\xff",
            b"\xc3",
            b"\xe2\x80",
            b"PRIVATE ",
            b"KEY ",
        ];
        let mut rng = xorshift(0x7065_6d5f_5eed);
        let mut matched = 0;
        for _ in 0..40_000 {
            let mut hay = Vec::new();
            for _ in 0..rng() % 14 {
                hay.extend_from_slice(parts[(rng() % parts.len() as u64) as usize]);
            }
            re.check(&hay);
            matched += usize::from(re.re.is_match(&hay));
        }
        // Texts with a block were made, many times.
        assert!(matched > 1_000, "{matched}");
    }

    #[test]
    fn blocks_and_hostile_texts_are_the_regexs() {
        let re = regex();
        let key =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\n-----END RSA PRIVATE KEY-----";
        let block =
            "-----BEGIN ENCRYPTED PRIVATE KEY BLOCK-----\\nAAAA\\n-----END PRIVATE KEY-----";
        for hay in [
            key.to_string(),
            block.to_string(),
            format!("x{key}y{key}"),
            format!("-----BEGIN PRIVATE KEY-----{key}"),
            key.replace("MIIE", "MI\u{e9}E"),
            "-----BEGIN PRIVATE KEY-----".repeat(20),
            "-----END PRIVATE KEY-----".repeat(20),
            format!(
                "{}-----END PRIVATE KEY-----",
                "-----BEGIN PRIVATE KEY-----".repeat(20)
            ),
        ] {
            re.check(hay.as_bytes());
        }
        let mut bad = key.as_bytes().to_vec();
        bad.insert(40, 0xff);
        re.check(&bad);
        re.check(&[&bad[..], key.as_bytes()].concat());
        re.check(&[key.as_bytes(), &[0xff], key.as_bytes()].concat());
        // 20,000 headers and one footer at the end after a byte that is not UTF-8, 20,000
        // headers without a footer, 20,000 headers each before a bad byte: found as the regex does, each byte searched or
        // checked at most twice (a search from each header again would take ~10^10 steps).
        let h = "-----BEGIN PRIVATE KEY-----".repeat(20_000);
        for hay in [
            [h.as_bytes(), b"\xff-----END PRIVATE KEY-----"].concat(),
            h.as_bytes().to_vec(),
            // A bad byte after each header: every header fails, each against the one footer.
            [
                &b"-----BEGIN PRIVATE KEY-----\xff".repeat(20_000)[..],
                b"-----END PRIVATE KEY-----",
            ]
            .concat(),
            [h.as_bytes(), b"-----END PRIVATE KEY-----"].concat(),
        ] {
            WALKED.with(|w| w.set(0));
            assert_eq!(
                find(&hay, 0),
                re.re.find(&hay).map(|m| (m.start(), m.end()))
            );
            let walked = WALKED.with(|w| w.get());
            assert!(walked <= 2 * hay.len(), "{walked} for {}", hay.len());
        }
    }
}
