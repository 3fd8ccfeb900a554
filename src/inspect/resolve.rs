//! Overlapping candidates are resolved once, before any action runs.
//!
//! Both passes take spans in priority order and keep a span unless it overlaps one already
//! kept. The kept spans never overlap each other, so they sit in a `BTreeMap` by start and a
//! new span needs only its two neighbours checked: O(n log n), where checking every kept span
//! was quadratic on a hostile string with thousands of hits.

use std::collections::BTreeMap;

use crate::detect::Hit;

use super::scan::Candidate;

/// Non-overlapping spans, by start.
#[derive(Default)]
struct Taken(BTreeMap<usize, usize>);

impl Taken {
    /// Takes `start..end` unless it overlaps a span already taken.
    fn take(&mut self, start: usize, end: usize) -> bool {
        let before = self.0.range(..=start).next_back();
        if before.is_some_and(|(_, &e)| e > start) {
            return false;
        }
        let after = self.0.range(start..).next();
        if after.is_some_and(|(&s, _)| s < end || s == start) {
            return false;
        }
        self.0.insert(start, end.max(start));
        true
    }
}

/// Drops hits that overlap a better one (higher confidence, then longer, then earlier).
pub(super) fn prune_overlapping_hits(hits: &mut Vec<Hit>) {
    hits.sort_unstable_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut taken = Taken::default();
    hits.retain(|h| taken.take(h.start, h.end));
    hits.sort_unstable_by_key(|h| h.start);
}

/// Keeps the best of overlapping candidates: field rules first, then higher confidence, then
/// the longer span.
pub(super) fn resolve_overlaps(c: Vec<Candidate>) -> Vec<Candidate> {
    // Most bodies: candidates in order and apart. Nothing to resolve, and nothing to copy (a
    // body with a million findings would otherwise hold three copies of them).
    if c.windows(2).all(|w| w[0].end <= w[1].start) {
        return c;
    }
    let priority = |a: &Candidate, b: &Candidate| {
        b.from_field
            .cmp(&a.from_field)
            .then(b.confidence.total_cmp(&a.confidence))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    };
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_unstable_by_key(|&i| (c[i].start, c[i].end));
    let mut keep = vec![false; c.len()];
    // Sweep clusters of transitively overlapping candidates; most clusters have one member.
    let mut i = 0;
    while i < order.len() {
        let mut end = c[order[i]].end;
        let mut j = i + 1;
        while j < order.len() && c[order[j]].start < end {
            end = end.max(c[order[j]].end);
            j += 1;
        }
        if j == i + 1 {
            keep[order[i]] = true;
        } else {
            let mut cluster = order[i..j].to_vec();
            cluster.sort_by(|&a, &b| priority(&c[a], &c[b]));
            let mut taken = Taken::default();
            for k in cluster {
                if taken.take(c[k].start, c[k].end) {
                    keep[k] = true;
                }
            }
        }
        i = j;
    }
    let mut slots: Vec<Option<Candidate>> = c.into_iter().map(Some).collect();
    order
        .iter()
        .filter(|&&k| keep[k])
        .filter_map(|&k| slots[k].take())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_spans_never_overlap() {
        let mut t = Taken::default();
        assert!(t.take(10, 20));
        assert!(!t.take(15, 25));
        assert!(!t.take(5, 11));
        assert!(!t.take(10, 20));
        assert!(!t.take(12, 13));
        assert!(!t.take(0, 30));
        assert!(t.take(20, 30));
        assert!(t.take(0, 10));
    }

    #[test]
    fn pruning_is_not_quadratic() {
        // 200,000 overlapping hits of one string.
        let mut hits: Vec<Hit> = (0..200_000)
            .map(|i| Hit {
                detector: 0,
                class: 0,
                start: i,
                end: i + 3,
                confidence: 0.9,
            })
            .collect();
        let t = std::time::Instant::now();
        prune_overlapping_hits(&mut hits);
        assert!(t.elapsed().as_secs_f64() < 2.0);
        assert!(hits.windows(2).all(|w| w[0].end <= w[1].start));
    }
}
