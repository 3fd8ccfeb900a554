//! Which numeric detectors can match a numeric span, decided by the span's shape.
//!
//! Real payloads repeat a few shapes of numeric text thousands of times: ISO timestamps
//! (`2024-05-12 10`, `08.123456+00`), dates, versions, order numbers. Before this, every
//! numeric detector whose length and digit gates passed searched each of them, and found
//! nothing: on the corpus, two thirds of those searches could not match whatever the digits.
//!
//! A span's shape is its bytes with every digit replaced by "any digit". (The bytes around the
//! span do not matter: a numeric detector's pattern has no look-around, which is what makes it
//! numeric.) Whether a detector's forward DFA reaches a match on
//! *some* text of that shape is decided on the shape, once: the DFA is run on the set of its
//! states reachable through the shape (ten successors at a digit, one at a separator). If none
//! is a match state, no span of that shape can hold a match, whatever its digits, and the
//! detector skips it: its search there would have ended at the DFA's "no match", so findings
//! do not change (a differential test checks it against the DFA on random spans).
//!
//! The answers are memoised per policy in a bounded map: a shape costs one product walk per
//! numeric detector the first time, then one hash lookup. Past [`MAX_SHAPES`] shapes or
//! [`SHAPE_STEPS`] transitions (a hostile client can make arbitrarily many shapes), new shapes
//! are not computed: their spans are searched by every detector, as before. Spans longer than
//! [`MAX_SHAPE_LEN`] likewise. The map's hasher is seeded per policy: its keys come from
//! request bodies, so a fixed hash would let a client precompute colliding shapes.
//!
//! The hasher is foldhash's (what `hashbrown` uses by default), seeded through std's
//! `RandomState`, whose keys come from the operating system's randomness (WASI `random_get` in
//! a VM): foldhash's own seed is made of addresses and the clock, and addresses in a Wasm VM
//! are the same in every run. foldhash is not a keyed PRF like SipHash: it resists collisions
//! precomputed without the seed, not a client that probes the memo's timing to find some. The
//! memo's bounds hold either way: at most [`MAX_SHAPES`] keys, so a lookup compares at most
//! that many. SipHash cost ~9 M instructions per corpus pass for a 32-byte key.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, OnceLock};

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;

use regex_automata::dfa::Automaton;
use regex_automata::util::{primitives::StateID, start};
use regex_automata::Anchored;

use super::{DenseDfa, DetectorMask};

/// Longest span whose shape is memoised.
pub(crate) const MAX_SHAPE_LEN: usize = 32;
/// Most shapes memoised per policy (each ~80 bytes with the map's overhead: 0.7 MB at most).
pub(crate) const MAX_SHAPES: usize = 8192;

/// A shape: the span with digits as `D`, padded with zeros (a byte no span holds).
pub(crate) type ShapeKey = [u8; MAX_SHAPE_LEN];

/// The stand-in for "any digit" in a shape (not a numeric-span byte, so unambiguous).
const ANY_DIGIT: u8 = b'D';

/// The shape of `text[start..end]`, or `None` when the span is too long to memoise.
pub(crate) fn shape_key(text: &[u8], start: usize, end: usize) -> Option<ShapeKey> {
    let span = text.get(start..end)?;
    if span.len() > MAX_SHAPE_LEN {
        return None;
    }
    let mut key = [0u8; MAX_SHAPE_LEN];
    for (k, &b) in key.iter_mut().zip(span) {
        *k = if b.is_ascii_digit() { ANY_DIGIT } else { b };
    }
    Some(key)
}

/// The span's shape, back from a key.
fn shape(key: &ShapeKey) -> &[u8] {
    let len = key.iter().position(|&b| b == 0).unwrap_or(MAX_SHAPE_LEN);
    &key[..len]
}

/// Whether `dfa` (of a pattern without look-around), searching unanchored from the span's
/// start to the end of input after it, reaches a match on some text of the key's shape; `None`
/// when that takes more than `steps` transitions (each one taken is counted off).
/// Conservative: a quit state or a start state it cannot give answers yes.
pub(crate) fn may_match(dfa: &DenseDfa, key: &ShapeKey, steps: &mut u64) -> Option<bool> {
    let shape = shape(key);
    let config = start::Config::new().anchored(Anchored::No);
    let Ok(first) = dfa.start_state(&config) else {
        return Some(true);
    };
    // One digit per equivalence class of the DFA: the others take the same transitions.
    let classes = dfa.byte_classes();
    let mut digits = [0u8; 10];
    let mut n_digits = 0;
    for b in b'0'..=b'9' {
        if !digits[..n_digits]
            .iter()
            .any(|&d| classes.get(d) == classes.get(b))
        {
            digits[n_digits] = b;
            n_digits += 1;
        }
    }
    // The states reachable at the current position, and a mark per state index for the next
    // position's set (generation `pos + 1`), grown as indexes appear.
    let stride2 = dfa.stride2();
    let mut seen: Vec<u32> = Vec::new();
    let mut states: Vec<StateID> = vec![first];
    let mut next: Vec<StateID> = Vec::new();
    for (pos, &c) in shape.iter().enumerate() {
        next.clear();
        let generation = pos as u32 + 1;
        let bytes: &[u8] = if c == ANY_DIGIT {
            &digits[..n_digits]
        } else {
            std::slice::from_ref(&c)
        };
        for &state in &states {
            for &b in bytes {
                *steps = steps.checked_sub(1)?;
                let to = dfa.next_state(state, b);
                if dfa.is_match_state(to) || dfa.is_quit_state(to) {
                    return Some(true);
                }
                if dfa.is_dead_state(to) {
                    continue;
                }
                let index = to.as_usize() >> stride2;
                if index >= seen.len() {
                    seen.resize(index + 1, 0);
                }
                if seen[index] != generation {
                    seen[index] = generation;
                    next.push(to);
                }
            }
        }
        std::mem::swap(&mut states, &mut next);
        if states.is_empty() {
            return Some(false);
        }
    }
    Some(states.iter().any(|&state| {
        let to = dfa.next_eoi_state(state);
        dfa.is_match_state(to) || dfa.is_quit_state(to)
    }))
}

/// Transitions the memo may take per policy, all shapes together. The corpus's 1,035 shapes
/// take 2.7 million (a test keeps it under half). A hostile stream of new shapes costs a VM
/// this much once (~20 ns a transition natively: ~120 ms, about what two 1 MiB bodies cost),
/// then its new shapes are searched by every detector, as before the memo.
pub(crate) const SHAPE_STEPS: u64 = 6_000_000;

#[derive(Debug)]
struct Memo {
    /// Shape -> (the detectors decided for it, those of them that may match).
    map: HashMap<ShapeKey, (DetectorMask, DetectorMask), SeedableRandomState>,
    steps_left: u64,
}

/// Shape -> the numeric detectors that may match a span of it (bounded, see the module).
#[derive(Debug)]
pub(crate) struct ShapeCache {
    memo: Mutex<Memo>,
}

impl Default for ShapeCache {
    fn default() -> Self {
        ShapeCache {
            memo: Mutex::new(Memo {
                map: HashMap::with_hasher(seeded()),
                steps_left: SHAPE_STEPS,
            }),
        }
    }
}

/// 64 unpredictable bits from std's `RandomState`: SipHash of nothing, under keys drawn from
/// the operating system's randomness once per thread (each `RandomState` adds one to a key).
fn random_u64() -> u64 {
    std::hash::RandomState::new().build_hasher().finish()
}

/// foldhash's shared seed for every memo of the process, drawn once by [`random_u64`].
static SHARED: OnceLock<SharedSeed> = OnceLock::new();

/// A hasher with a seed of its own, over the process's shared seed.
fn seeded() -> SeedableRandomState {
    let shared = SHARED.get_or_init(|| SharedSeed::from_u64(random_u64()));
    SeedableRandomState::with_seed(random_u64(), shared)
}

impl ShapeCache {
    /// Of the detectors in `needed`, those that may match a span of shape `key`: decided by
    /// `decide(detector, steps)` (see [`may_match`]) the first time each is needed, while
    /// the map has room and the step budget lasts; undecided ones may match. A memo busy in
    /// another thread (natively; a VM has one) is not waited for: all of `needed` may match.
    pub(crate) fn may_match(
        &self,
        key: &ShapeKey,
        needed: DetectorMask,
        decide: impl Fn(usize, &mut u64) -> Option<bool>,
    ) -> DetectorMask {
        let Ok(mut memo) = self.memo.try_lock() else {
            return needed;
        };
        let memo = &mut *memo;
        let (mut known, mut may) = memo
            .map
            .get(key)
            .copied()
            .unwrap_or((DetectorMask::EMPTY, DetectorMask::EMPTY));
        let todo = needed & !known;
        if todo.any() && memo.steps_left > 0 && (known.any() || memo.map.len() < MAX_SHAPES) {
            for i in todo.ones() {
                match decide(i, &mut memo.steps_left) {
                    Some(possible) => {
                        known.insert(i);
                        if possible {
                            may.insert(i);
                        }
                    }
                    None => {
                        memo.steps_left = 0;
                        break;
                    }
                }
            }
            memo.map.insert(*key, (known, may));
        }
        needed & (may | !known)
    }

    /// How many shapes are memoised, and the transitions left.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> (usize, u64) {
        self.memo
            .lock()
            .map(|m| (m.map.len(), m.steps_left))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each memo's hasher has its own random seed: a shape hashes differently in two of them
    /// (a fixed seed, foldhash's `FixedState` or a seed of addresses in a Wasm VM, would hash
    /// it the same and let a client precompute collisions).
    #[test]
    fn each_memo_hashes_with_its_own_random_seed() {
        let key = shape_key(b"2024-05-12 10", 0, 13).expect("short");
        let hashes: Vec<u64> = (0..8).map(|_| seeded().hash_one(key)).collect();
        for (i, h) in hashes.iter().enumerate() {
            assert!(!hashes[..i].contains(h), "{hashes:x?}");
        }
        assert_ne!(random_u64(), random_u64());
        // The shared seed is not foldhash's fixed one.
        let fixed = SeedableRandomState::with_seed(1, SharedSeed::global_fixed());
        let ours = SeedableRandomState::with_seed(1, SHARED.get().expect("drawn"));
        assert_ne!(fixed.hash_one(key), ours.hash_one(key));
    }
}
