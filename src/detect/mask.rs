//! Sets of detectors: one bit per detector index, fixed width so that the per-text gates are a
//! few word operations and a set is `Copy`.

use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

/// At most this many detectors (built-in and custom) per policy.
pub(crate) const MAX_DETECTORS: usize = 256;

const WORDS: usize = MAX_DETECTORS / 64;

/// A set of detector indices (below [`MAX_DETECTORS`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DetectorMask([u64; WORDS]);

impl DetectorMask {
    pub(crate) const EMPTY: DetectorMask = DetectorMask([0; WORDS]);
    pub(crate) const ALL: DetectorMask = DetectorMask([u64::MAX; WORDS]);

    /// The set of detector `i` alone.
    #[inline]
    pub(crate) fn bit(i: usize) -> DetectorMask {
        let mut m = DetectorMask::EMPTY;
        m.0[i / 64] = 1 << (i % 64);
        m
    }

    /// Detectors `0..n`.
    pub(crate) fn first(n: usize) -> DetectorMask {
        let mut m = DetectorMask::EMPTY;
        for (w, word) in m.0.iter_mut().enumerate() {
            let lo = w * 64;
            *word = match n.saturating_sub(lo) {
                0 => 0,
                k if k >= 64 => u64::MAX,
                k => (1 << k) - 1,
            };
        }
        m
    }

    #[inline]
    pub(crate) fn is_empty(self) -> bool {
        self.0.iter().fold(0, |a, w| a | w) == 0
    }

    #[inline]
    pub(crate) fn any(self) -> bool {
        !self.is_empty()
    }

    /// Whether it holds detector `i`.
    #[inline]
    pub(crate) fn has(self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    /// Whether the two sets share a detector.
    #[inline]
    pub(crate) fn meets(self, other: DetectorMask) -> bool {
        (self & other).any()
    }

    #[inline]
    pub(crate) fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    #[inline]
    pub(crate) fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    #[cfg(test)]
    pub(crate) fn len(self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The detector indices in the set, lowest first.
    #[inline]
    pub(crate) fn ones(self) -> Ones {
        Ones {
            mask: self,
            word: 0,
        }
    }

    /// As [`ones`](DetectorMask::ones), starting past the last word when the set is empty: one
    /// test of all its words instead of a step over each. For the per-text loops whose set is
    /// most often empty (elsewhere the test costs more than it saves: measured).
    #[inline]
    pub(crate) fn ones_if_any(self) -> Ones {
        Ones {
            mask: self,
            word: if self.is_empty() { WORDS } else { 0 },
        }
    }
}

impl std::fmt::Debug for DetectorMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.ones()).finish()
    }
}

/// The indices of a [`DetectorMask`], lowest first.
pub(crate) struct Ones {
    mask: DetectorMask,
    word: usize,
}

impl Iterator for Ones {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.word < WORDS {
            let w = &mut self.mask.0[self.word];
            if *w != 0 {
                let i = w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(self.word * 64 + i);
            }
            self.word += 1;
        }
        None
    }
}

impl BitAnd for DetectorMask {
    type Output = DetectorMask;
    #[inline]
    fn bitand(mut self, rhs: DetectorMask) -> DetectorMask {
        self &= rhs;
        self
    }
}

impl BitOr for DetectorMask {
    type Output = DetectorMask;
    #[inline]
    fn bitor(mut self, rhs: DetectorMask) -> DetectorMask {
        self |= rhs;
        self
    }
}

impl BitAndAssign for DetectorMask {
    #[inline]
    fn bitand_assign(&mut self, rhs: DetectorMask) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a &= b;
        }
    }
}

impl BitOrAssign for DetectorMask {
    #[inline]
    fn bitor_assign(&mut self, rhs: DetectorMask) {
        for (a, b) in self.0.iter_mut().zip(rhs.0) {
            *a |= b;
        }
    }
}

impl Not for DetectorMask {
    type Output = DetectorMask;
    #[inline]
    fn not(mut self) -> DetectorMask {
        for a in &mut self.0 {
            *a = !*a;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_is_the_set_of_its_bits() {
        for n in [0, 1, 63, 64, 65, 127, 128, 200, 255, 256] {
            let m = DetectorMask::first(n);
            assert_eq!(m.len(), n);
            assert_eq!(m.ones().collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        }
        let mut m = DetectorMask::bit(3) | DetectorMask::bit(130) | DetectorMask::bit(255);
        assert_eq!(m.ones().collect::<Vec<_>>(), vec![3, 130, 255]);
        assert!(m.has(130) && !m.has(129));
        m.remove(130);
        m.insert(64);
        assert_eq!(m.ones().collect::<Vec<_>>(), vec![3, 64, 255]);
        assert_eq!((!m).len(), MAX_DETECTORS - 3);
        assert!((m & !m).is_empty());
        assert!(m.meets(DetectorMask::bit(64)) && !m.meets(DetectorMask::bit(65)));
        assert_eq!(DetectorMask::first(MAX_DETECTORS), DetectorMask::ALL);
    }
}
