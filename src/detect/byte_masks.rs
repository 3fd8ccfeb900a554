//! A text's numeric bytes and digits as bit masks, 64 bytes to a block, and its numeric spans
//! found from them: a mask compare per 16 bytes where SIMD is there (SSE2 natively, SIMD128 in
//! Wasm, as Envoy's V8 runs it), then bit operations per span, not per byte.
//!
//! A numeric span is a maximal run of numeric bytes (digits and `+ ( ) - . /` and space) that
//! holds a digit (see `next_numeric_span`, the byte walk these are tested against).

/// The numeric bytes and the digits of one 64-byte block, bit `i` for byte `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Masks {
    pub(super) numeric: u64,
    pub(super) digit: u64,
}

/// The masks of the block of `text` at `base`; bytes past the text's end are neither numeric
/// nor digits.
#[inline(always)]
fn block_at(text: &[u8], base: usize) -> Masks {
    match text
        .get(base..base + 64)
        .and_then(|b| b.first_chunk::<64>())
    {
        Some(block) => masks(block),
        None => {
            let mut block = [0u8; 64];
            let tail = &text[base.min(text.len())..];
            block[..tail.len()].copy_from_slice(tail);
            masks(&block)
        }
    }
}

/// The bits below bit `n` (`n < 64`).
#[inline(always)]
fn below(n: u32) -> u64 {
    (1u64 << n) - 1
}

/// Calls `f(start, end, digits)` for each numeric span of `text` in order, while it returns
/// `true`.
#[inline(always)]
pub(super) fn numeric_spans(text: &[u8], mut f: impl FnMut(usize, usize, usize) -> bool) {
    let n = text.len();
    let mut base = 0;
    // Where the numeric run that reaches `base` from before it starts (`base` when none does).
    // Such a run holds no digit before `base`: it would have been reported, and passed.
    let mut lead = 0;
    // The bits of the block at `base` that lie in spans already reported.
    let mut done = 0u64;
    'blocks: while base < n {
        let m = block_at(text, base);
        let non = !m.numeric;
        let mut pending = m.digit & !done;
        while pending != 0 {
            let d = pending.trailing_zeros();
            let left = non & below(d);
            let start = if left != 0 {
                base + 64 - left.leading_zeros() as usize
            } else {
                lead
            };
            // Byte `d` is numeric, so `non` has no bit `d`.
            let right = non & !below(d);
            if right != 0 {
                let e = right.trailing_zeros();
                let digits = (m.digit & below(e) & !below(d)).count_ones() as usize;
                if !f(start, base + e as usize, digits) {
                    return;
                }
                pending &= !below(e);
                continue;
            }
            // The span runs on past this block: follow it to its end, and go on from there.
            let mut digits = (m.digit & !below(d)).count_ones() as usize;
            let mut at = base + 64;
            loop {
                if at >= n {
                    f(start, n, digits);
                    return;
                }
                let next = block_at(text, at);
                let non = !next.numeric;
                if non != 0 {
                    let e = non.trailing_zeros();
                    digits += (next.digit & below(e)).count_ones() as usize;
                    if !f(start, at + e as usize, digits) {
                        return;
                    }
                    // Byte `e` of the block at `at` is not numeric: no span after it starts
                    // before it, so `lead` is not read for that block.
                    base = at;
                    done = below(e);
                    continue 'blocks;
                }
                digits += next.digit.count_ones() as usize;
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

/// The masks of `block`: SSE2 compares, 16 bytes a step.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    use std::arch::x86_64::*;
    let (mut numeric, mut digit) = (0u64, 0u64);
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is enabled for this target (the `cfg` above), and the load reads the
        // 16 bytes of `chunk` (`loadu`: no alignment needed).
        let (n, d) = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let splat = |b: u8| _mm_set1_epi8(b as i8);
            // `x - lo <= hi - lo`, unsigned: bytes below `lo` wrap to above.
            let within = |lo: u8, hi: u8| {
                let t = _mm_sub_epi8(v, splat(lo));
                _mm_cmpeq_epi8(_mm_min_epu8(t, splat(hi - lo)), t)
            };
            let digit = within(b'0', b'9');
            // `( ) * + , - . / 0-9` but `*` and `,`, and space.
            let not = _mm_or_si128(
                _mm_cmpeq_epi8(v, splat(b'*')),
                _mm_cmpeq_epi8(v, splat(b',')),
            );
            let numeric = _mm_or_si128(
                _mm_andnot_si128(not, within(b'(', b'9')),
                _mm_cmpeq_epi8(v, splat(b' ')),
            );
            (_mm_movemask_epi8(numeric), _mm_movemask_epi8(digit))
        };
        // `movemask` sets the low 16 bits only.
        numeric |= u64::from(n as u16) << (16 * i);
        digit |= u64::from(d as u16) << (16 * i);
    }
    Masks { numeric, digit }
}

/// The masks of `block`: SIMD128 compares, 16 bytes a step.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    use core::arch::wasm32::*;
    let (mut numeric, mut digit) = (0u64, 0u64);
    for (i, chunk) in block.chunks_exact(16).enumerate() {
        // SAFETY: the load reads the 16 bytes of `chunk` (Wasm loads need no alignment).
        let v = unsafe { v128_load(chunk.as_ptr().cast()) };
        let within = |lo: u8, hi: u8| {
            let t = u8x16_sub(v, u8x16_splat(lo));
            u8x16_eq(u8x16_min(t, u8x16_splat(hi - lo)), t)
        };
        let digits = within(b'0', b'9');
        let not = v128_or(
            u8x16_eq(v, u8x16_splat(b'*')),
            u8x16_eq(v, u8x16_splat(b',')),
        );
        let numerics = v128_or(
            v128_andnot(within(b'(', b'9'), not),
            u8x16_eq(v, u8x16_splat(b' ')),
        );
        numeric |= u64::from(u8x16_bitmask(numerics)) << (16 * i);
        digit |= u64::from(u8x16_bitmask(digits)) << (16 * i);
    }
    Masks { numeric, digit }
}

/// The masks of `block`, a byte at a time (targets without the SIMD above).
#[cfg(not(any(
    all(target_arch = "x86_64", target_feature = "sse2"),
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub(super) fn masks(block: &[u8; 64]) -> Masks {
    scalar_masks(block)
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
    let (mut numeric, mut digit) = (0u64, 0u64);
    for (i, &b) in block.iter().enumerate() {
        numeric |= u64::from(super::is_numeric_byte(b)) << i;
        digit |= u64::from(b.is_ascii_digit()) << i;
    }
    Masks { numeric, digit }
}
