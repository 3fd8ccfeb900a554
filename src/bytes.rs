//! Byte searches sized for the short texts most JSON values are (ids, enums, names). Below a
//! vector's width `memchr` pays its dispatch and setup (~100 instructions a call) to look at a
//! handful of bytes; a plain loop over them costs a few instructions a byte.

/// Texts shorter than this are searched byte by byte: `memchr`'s SSE2 search starts at 16
/// bytes and its AVX2 one at 32, and below that it loops over the bytes itself.
const SHORT: usize = 16;

/// Whether `text` holds `a`, `b` or `c` (as `memchr::memchr3(a, b, c, text).is_some()`).
#[inline]
pub(crate) fn has3(a: u8, b: u8, c: u8, text: &[u8]) -> bool {
    if text.len() < SHORT {
        text.iter().any(|&x| (x == a) | (x == b) | (x == c))
    } else {
        memchr::memchr3(a, b, c, text).is_some()
    }
}

/// Whether `f` holds at some position of `a`, `b` or `c` in `text`, asked in order (as
/// `memchr::memchr3_iter(a, b, c, text).any(f)`).
#[inline]
pub(crate) fn any3(a: u8, b: u8, c: u8, text: &[u8], mut f: impl FnMut(usize) -> bool) -> bool {
    if text.len() < SHORT {
        (0..text.len()).any(|p| {
            let x = text[p];
            ((x == a) | (x == b) | (x == c)) && f(p)
        })
    } else {
        memchr::memchr3_iter(a, b, c, text).any(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 50,000 random texts of up to 40 bytes over a small alphabet holding the needles (so
    /// short and long texts, needles anywhere or nowhere), against `memchr` itself.
    #[test]
    fn the_short_searches_answer_as_memchr() {
        let alphabet = [b'a', b'b', b'c', b'x', 0, 0xFF];
        let mut next = crate::detect::tests::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..50_000 {
            let len = (next() % 41) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let (a, b, c) = (b'a', b'b', b'c');
            assert_eq!(
                has3(a, b, c, &text),
                memchr::memchr3(a, b, c, &text).is_some(),
                "{text:?}"
            );
            // Every position asked, in order, until one answers yes.
            let stop = (next() % 8) as usize;
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            let found = any3(a, b, c, &text, |p| {
                ours.push(p);
                ours.len() > stop
            });
            let expected = memchr::memchr3_iter(a, b, c, &text).any(|p| {
                theirs.push(p);
                theirs.len() > stop
            });
            assert_eq!((found, &ours), (expected, &theirs), "{text:?}");
        }
    }
}
