//! Finding detector keywords in a whole body: one pass, the same on every target.
//!
//! - Single-byte keywords (`@`, `+`) use `memchr`.
//! - Every other keyword is in one Aho-Corasick DFA that matches in any ASCII case and reports
//!   every occurrence of every keyword (overlapping ones too). Keywords of
//!   detectors whose patterns ignore case (`apiKey`, `X-Api-Key`, `DoB`) match in any case
//!   (listing case variants cannot cover them: `apikey` alone has 64); the others are compared
//!   again byte for byte where the DFA matched them.
//!
//! Measured on the corpus (docs/BENCHMARKS.md, session 11): the DFA is one table lookup per
//! byte, and beat both earlier designs on realistic bodies, natively and in V8. The SIMD
//! (Teddy) automata of at most 60 keywords each took eight passes over a body for the
//! pack's ~430 keywords, with lower-cased copies for the any-case ones, and prose made their
//! fingerprints verify often; the hashed-trigram filter used in wasm probed a table at every
//! byte. The DFA is our own table over the crate's automaton ([`ByteDfa`]): the crate's DFA
//! walks one byte at a time, each step waiting for the table load before; ours walks four
//! segments of a long body at once (session 12: the pass 21.6 -> 7.3 ms per corpus pass).
//! Two-byte keywords of one case (`SK`, `0x`, `2A`) are in the DFA too, compared again where
//! it matched: a `memmem` pass over the body for each cost more than the DFA's extra reports
//! (session 33: 1% of a corpus pass).

use aho_corasick::automaton::Automaton;
use aho_corasick::nfa::noncontiguous;
use aho_corasick::{Anchored, MatchKind};

use super::DetectorMask;

pub(crate) struct KeywordSearch {
    bytes: Vec<(u8, DetectorMask)>,
    /// The other keywords, matched in any ASCII case; `None` when there are none.
    dfa: Option<ByteDfa>,
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
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl KeywordSearch {
    /// `keywords[i]` triggers the detectors in `owners[i]`; it matches in any ASCII case when
    /// `any_case[i]`. The keywords of the detectors in `word_start` count only where they
    /// start a word, so the occurrence reported for one starts where it does (see
    /// [`absorb_superstrings`]).
    pub(crate) fn build(
        keywords: &[String],
        owners: &[DetectorMask],
        any_case: &[bool],
        absorbable: DetectorMask,
        word_start: DetectorMask,
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
        absorb_superstrings(&mut folded, &mut folded_owner, absorbable, word_start);
        absorb_superstrings(&mut exact, &mut exact_owner, absorbable, word_start);
        let mut dfa_keywords: Vec<&str> = Vec::new();
        let mut patterns = Vec::new();
        for (k, &owner) in exact.iter().zip(&exact_owner) {
            dfa_keywords.push(k);
            patterns.push((owner, Some(k.as_bytes().into())));
        }
        for (k, &owner) in folded.iter().zip(&folded_owner) {
            dfa_keywords.push(k);
            patterns.push((owner, None));
        }
        let dfa = if dfa_keywords.is_empty() {
            None
        } else {
            Some(ByteDfa::build(&dfa_keywords)?)
        };
        let dfa_owners = patterns
            .iter()
            .fold(DetectorMask::EMPTY, |m, (o, _)| m | *o);
        Ok(KeywordSearch {
            bytes,
            dfa,
            patterns,
            dfa_owners,
        })
    }

    /// Heap bytes of the DFA.
    pub(crate) fn memory_usage(&self) -> usize {
        self.dfa.as_ref().map_or(0, ByteDfa::memory_usage)
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
        let Some(dfa) = self.dfa.as_ref().filter(|_| self.dfa_owners.meets(wanted)) else {
            return;
        };
        dfa.for_each(text, |pattern, s, e| {
            let (owner, exact) = &self.patterns[pattern];
            if exact.as_deref().is_some_and(|k| &text[s..e] != k) {
                return true;
            }
            f(s, e, *owner)
        });
    }
}

/// Every occurrence of a set of keywords, in any ASCII case: an Aho-Corasick automaton turned
/// into a dense table over byte classes.
///
/// The automaton is built by the `aho-corasick` crate (its trie and failure links); only the
/// table is ours. Its rows have one entry per byte class (a keyword byte in either case, or
/// any other byte), not a power-of-two stride: 0.97 MB for the built-in pack's keywords,
/// against 2.07 MB for the crate's DFA. Entries are premultiplied row offsets, and matching
/// states are numbered last, so a step is two loads and one comparison. (16-bit state numbers
/// halve the table again but add a multiplication to every step: 25% slower, measured.)
struct ByteDfa {
    /// Byte -> class.
    classes: [u8; 256],
    stride: usize,
    /// `next[row + class]` is the row of the next state (rows are `stride` entries).
    next: Vec<u32>,
    start: u32,
    /// Rows at or past this offset are states that end at least one keyword.
    first_match: u32,
    /// Per matching state (the rows from `first_match`): the range of `ends` it reports.
    match_at: Vec<(u32, u32)>,
    /// (keyword, keyword length) of each match, grouped by state.
    ends: Vec<(u32, u32)>,
    /// The longest keyword's length.
    longest: usize,
}

/// The largest keyword table built (64 MiB; the built-in pack's takes 242,000 entries). Custom
/// classes are bounded too (`MAX_CLASS_KEYWORDS`), so a policy meets this only by design.
const MAX_TABLE_ENTRIES: usize = 16 << 20;

impl ByteDfa {
    fn build(keywords: &[&str]) -> Result<ByteDfa, String> {
        let nfa = noncontiguous::Builder::new()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(keywords)
            .map_err(|e| format!("keyword prefilter: {e}"))?;
        // A class per byte a keyword holds (both ASCII cases in one), one for every other byte:
        // bytes of one class lead every state to the same state.
        let mut classes = [0u8; 256];
        let mut n_classes = 1usize;
        for k in keywords {
            for &b in k.as_bytes() {
                let lower = b.to_ascii_lowercase();
                if classes[usize::from(lower)] == 0 {
                    let c = u8::try_from(n_classes).map_err(|_| "too many keyword bytes")?;
                    classes[usize::from(lower)] = c;
                    classes[usize::from(lower.to_ascii_uppercase())] = c;
                    n_classes += 1;
                }
            }
        }
        let mut representative = vec![0u8; n_classes];
        for b in (0..=255u8).rev() {
            representative[usize::from(classes[usize::from(b)])] = b;
        }
        // Every state reachable from the start, breadth first.
        let unanchored = Anchored::No;
        let start = nfa
            .start_state(unanchored)
            .map_err(|e| format!("keyword prefilter: {e}"))?;
        // The automaton's state ids are small integers: `index[id]` is the state's place in
        // `order`, `usize::MAX` until it is reached.
        let mut order = vec![start];
        let mut index = vec![usize::MAX; start.as_usize() + 1];
        index[start.as_usize()] = 0;
        // The table, built in place: first each state's row of the states it goes to (as
        // places in `order`), in `order`; then the rows moved to their final places and the
        // entries turned into row offsets. One table-sized buffer during the build, not two:
        // the table is most of a policy compile's peak memory, and Wasm memory, once grown,
        // stays grown for the VM's life (BENCHMARKS, session 31).
        let mut next: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            // Checked as the states are found, before their rows are held.
            if order.len() * n_classes > MAX_TABLE_ENTRIES {
                return Err(format!(
                    "keyword prefilter: {} keywords make more than {} table entries",
                    keywords.len(),
                    MAX_TABLE_ENTRIES
                ));
            }
            let sid = order[i];
            for &b in &representative {
                let to = nfa.next_state(unanchored, sid, b);
                if to.as_usize() >= index.len() {
                    index.resize(to.as_usize() + 1, usize::MAX);
                }
                if index[to.as_usize()] == usize::MAX {
                    index[to.as_usize()] = order.len();
                    order.push(to);
                }
                // Below `MAX_TABLE_ENTRIES` (checked above), so it fits.
                next.push(index[to.as_usize()] as u32);
            }
            i += 1;
        }
        // Renumber: non-matching states first, then the matching ones.
        let (plain, matching): (Vec<usize>, Vec<usize>) =
            (0..order.len()).partition(|&s| !nfa.is_match(order[s]));
        let mut renumber = vec![0u32; order.len()];
        for (new, &old) in plain.iter().chain(&matching).enumerate() {
            renumber[old] = new as u32;
        }
        permute_rows(&mut next, n_classes, &renumber);
        for x in &mut next {
            *x = renumber[*x as usize] * n_classes as u32;
        }
        next.shrink_to_fit();
        let mut match_at = Vec::with_capacity(matching.len());
        let mut ends = Vec::new();
        for &old in &matching {
            let sid = order[old];
            let from = ends.len() as u32;
            for m in 0..nfa.match_len(sid) {
                let pid = nfa.match_pattern(sid, m);
                ends.push((pid.as_u32(), nfa.pattern_len(pid) as u32));
            }
            match_at.push((from, ends.len() as u32));
        }
        let dfa = ByteDfa {
            classes,
            stride: n_classes,
            next,
            start: renumber[0] * n_classes as u32,
            first_match: (plain.len() * n_classes) as u32,
            match_at,
            ends,
            longest: keywords.iter().map(|k| k.len()).max().unwrap_or(1),
        };
        dfa.check_rows()?;
        Ok(dfa)
    }

    /// What [`ByteDfa::step`]'s unchecked load relies on, checked once per table: every
    /// class is below `stride`, and the start and every entry of `next` is a row offset (a
    /// multiple of `stride`, its row inside `next`). Then `s + class` is inside `next` for
    /// every state a walk reaches. True by construction; a table that is not refuses the
    /// policy instead of reading out of bounds.
    fn check_rows(&self) -> Result<(), String> {
        let row = |s: u32| {
            let s = s as usize;
            // `s < len` first: the sum below cannot wrap (a 32-bit usize in Wasm).
            s < self.next.len()
                && s.checked_rem(self.stride) == Some(0)
                && self.next.len() - s >= self.stride
        };
        let classes_fit = self.classes.iter().all(|&c| usize::from(c) < self.stride);
        if classes_fit && row(self.start) && self.next.iter().all(|&s| row(s)) {
            Ok(())
        } else {
            Err("keyword prefilter: a table entry is not a row".to_string())
        }
    }

    fn memory_usage(&self) -> usize {
        self.next.len() * 4 + self.match_at.len() * 8 + self.ends.len() * 8 + 256
    }

    /// The state after `b` from state `s`.
    #[inline(always)]
    fn step(&self, s: u32, b: u8) -> u32 {
        let class = usize::from(self.classes[usize::from(b)]);
        debug_assert!((s as usize + class) < self.next.len());
        // SAFETY: `s` is `start` or an entry of `next` (a walk reaches no other state), so a
        // row offset, and `class` is below `stride`: `check_rows` verified both when the table
        // was built, and it is never changed after. The bounds check this skips was a third of
        // the keyword pass's instructions (11 M of ~770 M a corpus pass).
        unsafe { *self.next.get_unchecked(s as usize + class) }
    }

    /// Reports the matches of state `s` ending at `end`; false when `f` asked to stop.
    #[inline(never)]
    fn report(&self, s: u32, end: usize, f: &mut impl FnMut(usize, usize, usize) -> bool) -> bool {
        let (from, to) = self.match_at[(s - self.first_match) as usize / self.stride];
        for &(pattern, len) in &self.ends[from as usize..to as usize] {
            if !f(pattern as usize, end - len as usize, end) {
                return false;
            }
        }
        true
    }

    /// Walks `text[from..to]` from state `s`, reporting the matches that end there; the state
    /// after it, or `None` when `f` asked to stop.
    fn walk(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        mut s: u32,
        f: &mut impl FnMut(usize, usize, usize) -> bool,
    ) -> Option<u32> {
        for (i, &b) in text[from..to].iter().enumerate() {
            s = self.step(s, b);
            if s >= self.first_match && !self.report(s, from + i + 1, f) {
                return None;
            }
        }
        Some(s)
    }

    /// Calls `f(keyword, start, end)` for every occurrence, in no particular order; stops when
    /// `f` returns false.
    ///
    /// A DFA walk waits for each table load before the next, so a long text is walked as
    /// `LANES` interleaved segments: their loads overlap. Each segment's walk starts the
    /// longest keyword's length before it, so its state is the one a single walk would have
    /// there, and it reports only the matches that end inside it.
    fn for_each(&self, text: &[u8], mut f: impl FnMut(usize, usize, usize) -> bool) {
        const LANES: usize = 4;
        let lead = self.longest;
        if text.len() < 16 * lead.max(8) {
            self.walk(text, 0, text.len(), self.start, &mut f);
            return;
        }
        // Equal segments, the last taking the remainder (`k * len / LANES` would overflow a
        // 32-bit usize, in wasm, for a text of 1 GiB).
        let quarter = text.len() / LANES;
        let bounds: [usize; LANES + 1] =
            std::array::from_fn(|k| if k == LANES { text.len() } else { k * quarter });
        let mut state = [self.start; LANES];
        for k in 1..LANES {
            for &b in &text[bounds[k] - lead..bounds[k]] {
                state[k] = self.step(state[k], b);
            }
        }
        // In lockstep over the length of the shortest segment, then each one's rest alone.
        let shortest = (0..LANES)
            .map(|k| bounds[k + 1] - bounds[k])
            .min()
            .unwrap_or(0);
        // Four slices of one length and the states in locals: no bounds checks on the text,
        // and few enough live values to stay in registers. One comparison per four steps
        // tells whether any lane may be in a matching state (rare).
        let lane = |k: usize| &text[bounds[k]..][..shortest];
        let lanes = lane(0).iter().zip(lane(1)).zip(lane(2)).zip(lane(3));
        let [mut s0, mut s1, mut s2, mut s3] = state;
        for (j, (((&b0, &b1), &b2), &b3)) in lanes.enumerate() {
            s0 = self.step(s0, b0);
            s1 = self.step(s1, b1);
            s2 = self.step(s2, b2);
            s3 = self.step(s3, b3);
            // The states' OR is at least their maximum: below `first_match`, no lane matches
            // (three ORs where the maximum took nine instructions). States are numbered
            // breadth first, so the common ones are small and their OR rarely passes it.
            if s0 | s1 | s2 | s3 >= self.first_match {
                for (k, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                    if s >= self.first_match && !self.report(s, bounds[k] + j + 1, &mut f) {
                        return;
                    }
                }
            }
        }
        let state = [s0, s1, s2, s3];
        for k in 0..LANES {
            if self
                .walk(text, bounds[k] + shortest, bounds[k + 1], state[k], &mut f)
                .is_none()
            {
                return;
            }
        }
    }
}

/// Moves row `r` of `table` (rows of `stride` entries) to row `to[r]`, in place: `to` is a
/// permutation of the rows. Each cycle of it is followed once, carrying one row.
fn permute_rows(table: &mut [u32], stride: usize, to: &[u32]) {
    let mut moved = vec![false; to.len()];
    let mut carry = vec![0u32; stride];
    for first in 0..to.len() {
        if moved[first] {
            continue;
        }
        // A row not yet written over holds its own old row: `carry` takes row `first`, and
        // each step puts the carried row in its place and picks up the one that was there.
        carry.copy_from_slice(&table[first * stride..][..stride]);
        let mut at = first;
        while !moved[at] {
            moved[at] = true;
            let dest = to[at] as usize;
            table[dest * stride..][..stride].swap_with_slice(&mut carry);
            at = dest;
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
///
/// A keyword of a `word_start` detector is absorbed only by one it starts with (`cui` for
/// `cui:`): the occurrence reported for it starts where it does, and whether a word starts
/// there is asked of that occurrence.
fn absorb_superstrings(
    list: &mut Vec<String>,
    owners: &mut Vec<DetectorMask>,
    absorbable: DetectorMask,
    word_start: DetectorMask,
) {
    // The shortest keyword inside `list[i]` (ties: the first; a prefix when `at_start[i]`).
    let inner = |i: usize, at_start: bool| {
        (0..list.len())
            .filter(|&j| {
                j != i
                    && list[j].len() < list[i].len()
                    && if at_start {
                        list[i].starts_with(&list[j])
                    } else {
                        list[i].contains(&list[j])
                    }
            })
            .min_by_key(|&j| list[j].len())
    };
    // A keyword that absorbs a `word_start` one is held at its start too, so it is not
    // absorbed by one inside it (it has no shorter prefix: that would be a shorter prefix of
    // the one it absorbs).
    let mut at_start: Vec<bool> = owners.iter().map(|o| o.meets(word_start)).collect();
    for i in 0..list.len() {
        if at_start[i] && !(owners[i] & !absorbable).any() {
            if let Some(j) = inner(i, true) {
                at_start[j] = true;
            }
        }
    }
    let mut keep = vec![true; list.len()];
    for i in 0..list.len() {
        if (owners[i] & !absorbable).any() {
            continue;
        }
        if let Some(j) = inner(i, at_start[i]) {
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

    /// The search of `kw`, every keyword absorbable, none counted at word starts only.
    fn built(kw: &[String], owners: &[DetectorMask], any_case: &[bool]) -> KeywordSearch {
        KeywordSearch::build(kw, owners, any_case, DetectorMask::ALL, DetectorMask::EMPTY)
            .expect("keywords")
    }

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
    fn a_table_whose_entries_are_not_rows_is_refused() {
        // What the unchecked step relies on: built tables pass the check (the built-in pack's
        // with them, as every policy compile builds it), a damaged one does not.
        let mut dfa = ByteDfa::build(&["vat", "ssn", "@"]).expect("dfa");
        assert_eq!(dfa.check_rows(), Ok(()));
        let good = dfa.next.clone();
        let len = dfa.next.len() as u32;
        for bad in [len, len - 1, dfa.stride as u32 + 1, u32::MAX - 1] {
            dfa.next = good.clone();
            dfa.next[3] = bad;
            assert!(dfa.check_rows().is_err(), "entry {bad}");
        }
        dfa.next = good;
        dfa.start = 1;
        assert!(dfa.check_rows().is_err());
        dfa.start = 0;
        dfa.classes[usize::from(b'x')] = dfa.stride as u8;
        assert!(dfa.check_rows().is_err());
    }

    #[test]
    fn rows_move_where_the_permutation_sends_them() {
        // Every permutation of up to 6 rows, and random ones of up to 300: row `r` ends at
        // `to[r]`, as a copy into a second table puts it.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut perms: Vec<Vec<u32>> = Vec::new();
        fn all(prefix: &mut Vec<u32>, n: u32, out: &mut Vec<Vec<u32>>) {
            if prefix.len() == n as usize {
                out.push(prefix.clone());
                return;
            }
            for v in 0..n {
                if !prefix.contains(&v) {
                    prefix.push(v);
                    all(prefix, n, out);
                    prefix.pop();
                }
            }
        }
        for n in 1..=6 {
            all(&mut Vec::new(), n, &mut perms);
        }
        for _ in 0..200 {
            let n = 1 + rand(300);
            let mut p: Vec<u32> = (0..n as u32).collect();
            for i in (1..n).rev() {
                p.swap(i, rand(i + 1));
            }
            perms.push(p);
        }
        for to in &perms {
            for stride in [1, 3, 7] {
                let table: Vec<u32> = (0..(to.len() * stride) as u32).collect();
                let mut expected = vec![0u32; table.len()];
                for (r, &d) in to.iter().enumerate() {
                    let d = d as usize;
                    expected[d * stride..][..stride]
                        .copy_from_slice(&table[r * stride..][..stride]);
                }
                let mut moved = table.clone();
                permute_rows(&mut moved, stride, to);
                assert_eq!(moved, expected, "{to:?} stride {stride}");
            }
        }
    }

    #[test]
    fn the_interleaved_walk_finds_every_occurrence_a_naive_search_does() {
        // Texts long enough for the segments, over few letters, so keywords cross every
        // segment boundary; keywords of one to nine bytes in mixed case, some inside others.
        let mut rand = {
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            move |n: usize| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % n as u64) as usize
            }
        };
        let letters = b"abcAB -:";
        for round in 0..60 {
            let keywords: Vec<String> = (0..1 + rand(12))
                .map(|_| {
                    (0..1 + rand(9))
                        .map(|_| char::from(letters[rand(letters.len())]))
                        .collect()
                })
                .collect();
            let list: Vec<&str> = keywords.iter().map(String::as_str).collect();
            let dfa = ByteDfa::build(&list).expect("dfa");
            let len = [0, 1, 50, 143, 144, 145, 1000, 4099][round % 8] + rand(200);
            let mut text: Vec<u8> = (0..len).map(|_| letters[rand(letters.len())]).collect();
            // The longest keyword across each place the walk may cut a text (a quarter, a
            // half...), ending at the cut's first byte or on either side of it.
            let longest = list.iter().map(|w| w.len()).max().unwrap_or(1);
            let word = list.iter().find(|w| w.len() == longest).unwrap_or(&"a");
            let n = text.len();
            for cut in (1..8).map(|q| q * n / 8) {
                let end = cut + 1 + rand(3);
                if end > longest && end <= text.len() {
                    text[end - longest..end].copy_from_slice(word.as_bytes());
                }
            }
            let mut found = Vec::new();
            dfa.for_each(&text, |k, s, e| {
                found.push((s, e, k));
                true
            });
            found.sort_unstable();
            let mut naive = Vec::new();
            for (k, w) in list.iter().enumerate() {
                let w = w.as_bytes();
                for s in 0..=text.len().saturating_sub(w.len()) {
                    if text.len() >= w.len() && text[s..s + w.len()].eq_ignore_ascii_case(w) {
                        naive.push((s, s + w.len(), k));
                    }
                }
            }
            naive.sort_unstable();
            naive.dedup();
            assert_eq!(
                found,
                naive,
                "{list:?} in {}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn a_keyword_inside_another_triggers_the_longer_ones_detectors_too() {
        let kw: Vec<String> = ["pass", "passport", "Passport no", "port", "ssn"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(DetectorMask::bit).collect();
        let any_case = vec![true, true, true, false, true];
        let search = built(&kw, &owners, &any_case);
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

    /// A keyword of a detector that counts it only where it starts a word is absorbed only by
    /// a keyword it starts with, whose occurrence starts where it does; and one that absorbs
    /// it is itself kept, even where a shorter keyword lies inside it (`xay` holds `ay`, and
    /// comes first: absorbed before `xayb` was given to it, it would take `xayb` away).
    #[test]
    fn a_word_start_keyword_is_absorbed_only_by_its_prefix() {
        let kw: Vec<String> = ["xay", "ay", "xayb", "cui:", "ui", "cu"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let owners: Vec<DetectorMask> = (0..kw.len()).map(DetectorMask::bit).collect();
        let any_case = vec![true; kw.len()];
        let text = b"xayb cui:";
        // `xayb` (2) and `cui:` (3) count where they start a word.
        let word_start = DetectorMask::bit(2) | DetectorMask::bit(3);
        let search = KeywordSearch::build(&kw, &owners, &any_case, DetectorMask::ALL, word_start)
            .expect("keywords");
        let hits = occurrences(&search, text);
        let starting = |hits: &[(usize, usize, DetectorMask)], at: usize| {
            hits.iter()
                .filter(|h| h.0 == at)
                .fold(DetectorMask::EMPTY, |m, h| m | h.2)
        };
        // `xayb` is reported from 0 (by `xay`, kept), `cui:` from 5 (by `cu`, not `ui`).
        assert!(starting(&hits, 0).has(2), "{hits:?}");
        assert!(starting(&hits, 5).has(3), "{hits:?}");
        assert!(!starting(&hits, 6).has(3), "{hits:?}");
        // Otherwise both go to the shortest keyword inside them.
        let search = built(&kw, &owners, &any_case);
        let hits = occurrences(&search, text);
        assert!(starting(&hits, 1).has(2), "{hits:?}");
        assert!(starting(&hits, 6).has(3), "{hits:?}");
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
            // Two bytes of one case that overlap themselves, or each other.
            "ff",
            "0x",
            "x0",
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
        // Two-byte keywords all along, across the four lanes' seams too.
        for at in (1..long.len()).step_by(997).rev() {
            long.splice(at..at, b"x0ff0X0x".iter().copied());
        }
        let texts: [&[u8]; 11] = [
            br#""\fff0x0X0x0xfFfff", "FF ff 0X0x""#,
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
        let search = built(&kw, &owners, &any_case);
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
