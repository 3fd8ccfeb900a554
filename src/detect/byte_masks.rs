//! A text's byte classes as bit masks, 64 bytes to a block, made once per text with a mask
//! compare per 16 bytes where SIMD is there (SSE2 natively, SIMD128 in Wasm, as Envoy's V8
//! runs it); then the per-text gates are bit operations: the counts by popcount, the numeric
//! spans per span rather than per byte, the structural gates as shifted masks.
//!
//! A numeric span is a maximal run of numeric bytes (digits and `+ ( ) - . /` and space) that
//! holds a digit (see `next_numeric_span`, the byte walk these are tested against).

/// The classes of the bytes of one 64-byte block, bit `i` for byte `i`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    /// Digits and `+ ( ) - . /` and space.
    pub(super) numeric: u64,
    pub(super) digit: u64,
    pub(super) colon: u64,
    pub(super) dash: u64,
    pub(super) dot: u64,
    /// `A` to `Z`.
    pub(super) upper: u64,
    /// ASCII letters and digits, and `_`.
    pub(super) word: u64,
}

/// The masks of every block of `text` in `blocks` (emptied first); bytes past the text's end
/// are in no class.
#[inline(always)]
pub(super) fn fill(text: &[u8], blocks: &mut Vec<Masks>) {
    blocks.clear();
    let mut chunks = text.chunks_exact(64);
    for chunk in &mut chunks {
        if let Some(block) = chunk.first_chunk::<64>() {
            blocks.push(masks(block, 4));
        }
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut block = [0u8; 64];
        block[..tail.len()].copy_from_slice(tail);
        blocks.push(masks(&block, tail.len().div_ceil(16)));
    }
}

/// The bits below bit `n` (`n < 64`).
#[inline(always)]
fn below(n: u32) -> u64 {
    (1u64 << n) - 1
}

/// Calls `f(start, end, digits)` for each numeric span of the text of `n` bytes whose masks
/// are `blocks` (see [`fill`]) in order, while it returns `true`.
#[inline(always)]
pub(super) fn numeric_spans(
    blocks: &[Masks],
    n: usize,
    f: impl FnMut(usize, usize, usize) -> bool,
) {
    runs(
        blocks,
        n,
        |m| m.numeric,
        |k| blocks[k].digit,
        |m| m.digit,
        f,
    );
}

/// Calls `f(start, end)` for each maximal run of word bytes (ASCII letters and digits, `_`)
/// of at least `len` bytes (`1..=64`) of the text of `n` bytes whose masks are `blocks`, in
/// order, while it returns `true`; and for some shorter ones (those that reach a block's end).
#[inline(always)]
pub(super) fn words_of_at_least(
    blocks: &[Masks],
    n: usize,
    len: u32,
    mut f: impl FnMut(usize, usize) -> bool,
) {
    // Past 64 the shifts below would reach a word's width.
    let len = len.clamp(1, 64);
    // A bit of each run of `len` bytes or more (and of some shorter ones): in block `k`, where
    // `len` word bytes start inside the block (doubling shifts), and where the run that
    // reaches the block's end starts, as it may go on into the next block. In 64-bit words
    // only: Wasm has no 128-bit shifts.
    let starts = |k: usize| {
        let word = blocks[k].word;
        let mut x = word;
        let mut have = 1;
        while have * 2 <= len {
            x &= x >> have;
            have *= 2;
        }
        if have < len {
            x &= x >> (len - have);
        }
        let top = word.leading_ones();
        x | if top == 0 { 0 } else { 1 << ((64 - top) % 64) }
    };
    runs(blocks, n, |m| m.word, starts, |_| 0, |s, e, _| f(s, e));
}

/// Calls `f(start, end, count)` for each maximal run of bytes in `class` that holds a bit of
/// `seed` (bits of `class` only; `seed(k)` for block `k`), with its count of `counted` bytes,
/// in order, while it returns `true`.
#[inline(always)]
fn runs(
    blocks: &[Masks],
    n: usize,
    class: impl Fn(&Masks) -> u64,
    seed: impl Fn(usize) -> u64,
    counted: impl Fn(&Masks) -> u64,
    mut f: impl FnMut(usize, usize, usize) -> bool,
) {
    let mut base = 0;
    // Where the run that reaches `base` from before it starts (`base` when none does). Such a
    // run holds no seed before `base`: it would have been reported, and passed.
    let mut lead = 0;
    // The bits of the block at `base` that lie in runs already reported.
    let mut done = 0u64;
    'blocks: while base < n {
        let m = &blocks[base / 64];
        let non = !class(m);
        let mut pending = seed(base / 64) & !done;
        while pending != 0 {
            let d = pending.trailing_zeros();
            let left = non & below(d);
            let start = if left != 0 {
                base + 64 - left.leading_zeros() as usize
            } else {
                lead
            };
            // Byte `d` is in the class, so `non` has no bit `d`.
            let right = non & !below(d);
            if right != 0 {
                let e = right.trailing_zeros();
                let count = (counted(m) & below(e) & !below(d)).count_ones() as usize;
                if !f(start, base + e as usize, count) {
                    return;
                }
                pending &= !below(e);
                continue;
            }
            // The run goes on past this block: follow it to its end, and go on from there.
            let mut count = (counted(m) & !below(d)).count_ones() as usize;
            let mut at = base + 64;
            loop {
                if at >= n {
                    f(start, n, count);
                    return;
                }
                let next = &blocks[at / 64];
                let non = !class(next);
                if non != 0 {
                    let e = non.trailing_zeros();
                    count += (counted(next) & below(e)).count_ones() as usize;
                    if !f(start, at + e as usize, count) {
                        return;
                    }
                    // Byte `e` of the block at `at` is not in the class: no run after it
                    // starts before it, so `lead` is not read for that block.
                    base = at;
                    done = below(e);
                    continue 'blocks;
                }
                count += counted(next).count_ones() as usize;
                at += 64;
            }
        }
        if non != 0 {
            lead = base + 64 - non.leading_zeros() as usize;
        }
        base += 64;
        done = 0;
    }
}

/// The masks of the first `chunks` 16-byte chunks of `block` (`1..=4`; the rest are in no
/// class): SSE2 compares, 16 bytes a step.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64], chunks: usize) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    for (i, chunk) in block.chunks_exact(16).take(chunks).enumerate() {
        // SAFETY: SSE2 is enabled for this target (the `cfg` above), and the load reads the
        // 16 bytes of `chunk` (`loadu`: no alignment needed).
        let bits = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let splat = |b: u8| _mm_set1_epi8(b as i8);
            let eq = |b: u8| _mm_cmpeq_epi8(v, splat(b));
            // `x - lo <= hi - lo`, unsigned: bytes below `lo` wrap to above.
            let within = |lo: u8, hi: u8| {
                let t = _mm_sub_epi8(v, splat(lo));
                _mm_cmpeq_epi8(_mm_min_epu8(t, splat(hi - lo)), t)
            };
            // `( ) * + , - . / 0-9` but `*` and `,`, and space.
            let numeric = _mm_or_si128(
                _mm_andnot_si128(_mm_or_si128(eq(b'*'), eq(b',')), within(b'(', b'9')),
                eq(b' '),
            );
            let (digit, upper) = (within(b'0', b'9'), within(b'A', b'Z'));
            let word = _mm_or_si128(
                _mm_or_si128(digit, upper),
                _mm_or_si128(within(b'a', b'z'), eq(b'_')),
            );
            [numeric, digit, eq(b':'), eq(b'-'), eq(b'.'), upper, word]
                .map(|c| _mm_movemask_epi8(c) as u16)
        };
        m.or_chunk(i, bits);
    }
    m
}

/// The masks of the first `chunks` 16-byte chunks of `block` (`1..=4`; the rest are in no
/// class): SIMD128 compares, 16 bytes a step.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64], chunks: usize) -> Masks {
    use core::arch::wasm32::*;
    let mut m = Masks::default();
    for (i, chunk) in block.chunks_exact(16).take(chunks).enumerate() {
        // SAFETY: the load reads the 16 bytes of `chunk` (Wasm loads need no alignment).
        let v = unsafe { v128_load(chunk.as_ptr().cast()) };
        let eq = |b: u8| u8x16_eq(v, u8x16_splat(b));
        let within = |lo: u8, hi: u8| {
            let t = u8x16_sub(v, u8x16_splat(lo));
            u8x16_eq(u8x16_min(t, u8x16_splat(hi - lo)), t)
        };
        let numeric = v128_or(
            v128_andnot(within(b'(', b'9'), v128_or(eq(b'*'), eq(b','))),
            eq(b' '),
        );
        let (digit, upper) = (within(b'0', b'9'), within(b'A', b'Z'));
        let word = v128_or(v128_or(digit, upper), v128_or(within(b'a', b'z'), eq(b'_')));
        let bits =
            [numeric, digit, eq(b':'), eq(b'-'), eq(b'.'), upper, word].map(|c| u8x16_bitmask(c));
        m.or_chunk(i, bits);
    }
    m
}

/// The masks of `block`, a byte at a time (targets without the SIMD above).
#[cfg(not(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub(super) fn masks(block: &[u8; 64], chunks: usize) -> Masks {
    let mut tail = [0u8; 64];
    tail[..16 * chunks].copy_from_slice(&block[..16 * chunks]);
    scalar_masks(&tail)
}

impl Masks {
    /// Sets the bits of 16-byte chunk `i` from the bit masks of its classes, in field order.
    #[inline(always)]
    fn or_chunk(&mut self, i: usize, [numeric, digit, colon, dash, dot, upper, word]: [u16; 7]) {
        let at = |bits: u16| u64::from(bits) << (16 * i);
        self.numeric |= at(numeric);
        self.digit |= at(digit);
        self.colon |= at(colon);
        self.dash |= at(dash);
        self.dot |= at(dot);
        self.upper |= at(upper);
        self.word |= at(word);
    }
}

/// The masks from the byte tests the rest of the crate makes.
#[cfg_attr(
    any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "wasm32", target_feature = "simd128")
    ),
    allow(dead_code)
)]
pub(super) fn scalar_masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (i, &b) in block.iter().enumerate() {
        let bit = |yes: bool| u64::from(yes) << i;
        m.numeric |= bit(super::is_numeric_byte(b));
        m.digit |= bit(b.is_ascii_digit());
        m.colon |= bit(b == b':');
        m.dash |= bit(b == b'-');
        m.dot |= bit(b == b'.');
        m.upper |= bit(b.is_ascii_uppercase());
        m.word |= bit(super::is_word(b));
    }
    m
}

/// A block's masks and the next block's, for tests of bytes a few apart.
pub(super) struct Pair<'a> {
    here: &'a Masks,
    next: &'a Masks,
}

impl Pair<'_> {
    /// The bits of `class` from `by` bytes on (`by < 64`): bit `i` for byte `i + by` of the
    /// block, which may be in the next one.
    #[inline(always)]
    pub(super) fn at(&self, class: impl Fn(&Masks) -> u64, by: u32) -> u64 {
        let both = u128::from(class(self.here)) | u128::from(class(self.next)) << 64;
        (both >> by) as u64
    }
}

/// Whether `test` of some block and the next (see [`Pair::at`]) has a bit set. Past the
/// text's end bytes are in no class, so a test that needs a class at each byte it looks at
/// holds only inside the text.
#[inline(always)]
pub(super) fn any_pair(blocks: &[Masks], test: impl Fn(&Pair<'_>) -> u64) -> bool {
    let none = Masks::default();
    blocks.iter().enumerate().any(|(k, here)| {
        let next = blocks.get(k + 1).unwrap_or(&none);
        test(&Pair { here, next }) != 0
    })
}
