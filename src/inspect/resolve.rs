//! Overlapping candidates are resolved once, before any action runs.

use crate::detect::Hit;

use super::scan::Candidate;

/// Drops hits that overlap a better one (higher confidence, then longer, then earlier).
pub(super) fn prune_overlapping_hits(hits: &mut Vec<Hit>) {
    hits.sort_unstable_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits.drain(..) {
        if kept.iter().all(|k| h.end <= k.start || h.start >= k.end) {
            kept.push(h);
        }
    }
    kept.sort_unstable_by_key(|h| h.start);
    *hits = kept;
}

/// Keeps the best of overlapping candidates: field rules first, then higher confidence, then
/// the longer span.
pub(super) fn resolve_overlaps(c: Vec<Candidate>) -> Vec<Candidate> {
    if c.len() < 2 {
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
            let mut taken: Vec<(usize, usize)> = Vec::new();
            for k in cluster {
                if taken.iter().all(|&(s, e)| c[k].end <= s || c[k].start >= e) {
                    taken.push((c[k].start, c[k].end));
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
