//! A compiled regular expression, assembled from `regex-automata`'s engines without its meta
//! regex (the `regex` crate is one): a lazy DFA forward and in reverse for the match, a bounded
//! backtracker or a PikeVM when the lazy DFA cannot answer and for capture groups.
//!
//! Why not the `regex` crate: its meta regex picks among many strategies, and the code that
//! builds them is most of what a Wasm module pays at load. Envoy's V8 compiles every function of
//! a module with TurboFan, and the freed compile memory stays in the sidecar. Measured on a
//! no-op proxy-wasm filter in Envoy 1.40 (docs/BENCHMARKS.md, "Session 16"): these engines add
//! 23 MB of RSS to it, the meta regex another 20 MB. Searches are the meta regex's, engine for
//! engine: leftmost-first, the same syntax and Unicode, the match from the lazy DFAs, and the
//! same fallbacks when the lazy DFA quits (a Unicode word boundary before a non-ASCII byte) or
//! gives up (its cache cleared too often). A test compares every search with the `regex`
//! crate's on the built-in pack and hostile texts.

use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::hybrid;
use regex_automata::nfa::thompson::{self, backtrack::BoundedBacktracker, pikevm::PikeVM};
use regex_automata::util::captures::Captures;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, Match, MatchKind, PatternID};

/// How a pattern is read and how large it may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Matches UTF-8 text only (a route's path), as `regex::Regex` does; otherwise any bytes,
    /// as `regex::bytes::Regex` does.
    pub(crate) utf8: bool,
    pub(crate) case_insensitive: bool,
    /// The largest NFA, in bytes (the `regex` crate's `size_limit`).
    pub(crate) size_limit: usize,
    /// The most memory each lazy DFA's cache may use (the `regex` crate's `dfa_size_limit`).
    pub(crate) cache_capacity: usize,
}

impl Options {
    /// A detector's pattern over a body's bytes.
    pub(crate) fn bytes(size_limit: usize, cache_capacity: usize) -> Options {
        Options {
            utf8: false,
            case_insensitive: false,
            size_limit,
            cache_capacity,
        }
    }
}

/// Why a pattern was refused; displayed as the `regex` crate displays its errors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Error {
    /// The pattern does not parse (the parser's message, with its position).
    Syntax(String),
    /// The compiled pattern would exceed the size limit, in bytes.
    TooBig(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(m) => f.write_str(m),
            Error::TooBig(limit) => {
                write!(f, "Compiled regex exceeds size limit of {limit} bytes.")
            }
        }
    }
}

type CacheFn = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// One search's mutable state. A pool hands one to each thread; a Wasm VM has one.
struct Cache {
    /// The forward and the reverse lazy DFA's.
    hybrid: Option<(hybrid::dfa::Cache, hybrid::dfa::Cache)>,
    pikevm: thompson::pikevm::Cache,
    backtrack: thompson::backtrack::Cache,
    captures: Captures,
    /// The split's lazy DFAs' ([`Split`]), and where the prefix's matches end.
    split: Option<(hybrid::dfa::Cache, hybrid::dfa::Cache)>,
    prefix_ends: Vec<usize>,
}

/// Where a match or a group is in the text searched: `start..end`.
pub(crate) type Span = (usize, usize);

/// A compiled pattern. Shared by every search of a policy; searches take a cache from its pool.
pub(crate) struct Matcher {
    /// Groups of the pattern, group 0 (the whole match) included.
    groups: usize,
    kind: Kind,
}

enum Kind {
    /// A pattern that is only an alternation of 3,000 literals or more (a list of codes, ids,
    /// words), searched as the meta regex searches it: by Aho-Corasick, leftmost-first, with no
    /// NFA (which could exceed the size limit, and whose lazy DFA would thrash).
    Literals(aho_corasick::AhoCorasick),
    Automata {
        engines: Box<Engines>,
        pool: Pool<Cache, CacheFn>,
    },
}

struct Engines {
    /// `None` when the lazy DFA could not be built (its cache capacity too small for the
    /// pattern): every search then runs the backtracker or the PikeVM.
    hybrid: Option<LazyDfas>,
    pikevm: PikeVM,
    backtrack: BoundedBacktracker,
    /// For a pattern that ends with its only group: where the group starts, without the
    /// backtracker, when the match splits only one way.
    split: Option<Split>,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match &self.kind {
            Kind::Literals(_) => "aho-corasick",
            Kind::Automata { engines, .. } if engines.hybrid.is_some() => "lazy dfa",
            Kind::Automata { .. } => "pikevm",
        };
        f.debug_struct("Matcher")
            .field("groups", &self.groups)
            .field("engine", &engine)
            .finish()
    }
}

impl Matcher {
    /// Compiles `pattern` (the `regex` crate's syntax).
    pub(crate) fn new(pattern: &str, o: Options) -> Result<Matcher, Error> {
        let syntax = syntax::Config::new()
            .utf8(o.utf8)
            .case_insensitive(o.case_insensitive);
        let hir = syntax::parse_with(pattern, &syntax).map_err(|e| Error::Syntax(e.to_string()))?;
        if let Some(literals) = alternation_literals(&hir) {
            let ac = aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(literals)
                .map_err(|e| Error::Syntax(e.to_string()))?;
            return Ok(Matcher {
                groups: 1,
                kind: Kind::Literals(ac),
            });
        }
        let nfa_error = |e: thompson::BuildError| match e.size_limit() {
            Some(limit) => Error::TooBig(limit),
            None => Error::Syntax(e.to_string()),
        };
        let base = thompson::Config::new()
            .utf8(o.utf8)
            .nfa_size_limit(Some(o.size_limit))
            .shrink(false);
        let nfa = thompson::Compiler::new()
            .configure(base.clone())
            .build_from_hir(&hir)
            .map_err(nfa_error)?;
        let nfarev = thompson::Compiler::new()
            .configure(
                base.clone()
                    .which_captures(thompson::WhichCaptures::None)
                    .reverse(true),
            )
            .build_from_hir(&hir)
            .map_err(nfa_error)?;
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::LeftmostFirst))
            .build_from_nfa(nfa.clone())
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let backtrack = BoundedBacktracker::builder()
            .build_from_nfa(nfa.clone())
            .map_err(|e| Error::Syntax(e.to_string()))?;
        let groups = nfa.group_info().group_len(PatternID::ZERO);
        let split = Split::new(&hir, base.clone(), o.cache_capacity);
        let dfa = hybrid::dfa::Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            // Quits at a non-ASCII byte next to a Unicode word boundary: the PikeVM answers.
            .unicode_word_boundary(true)
            .cache_capacity(o.cache_capacity)
            .skip_cache_capacity_check(false)
            // Gives up when its cache thrashes (a hostile text): the PikeVM answers.
            .minimum_cache_clear_count(Some(3))
            .minimum_bytes_per_state(Some(10));
        let fwd = hybrid::dfa::Builder::new()
            .configure(dfa.clone())
            .build_from_nfa(nfa);
        let rev = hybrid::dfa::Builder::new()
            .configure(dfa.match_kind(MatchKind::All))
            .build_from_nfa(nfarev);
        let hybrid = match (fwd, rev) {
            (Ok(fwd), Ok(rev)) => Some(LazyDfas { fwd, rev }),
            _ => None,
        };
        let create: CacheFn = {
            let (h, p, b) = (hybrid.clone(), pikevm.clone(), backtrack.clone());
            let s = split.clone();
            Box::new(move || Cache {
                hybrid: h
                    .as_ref()
                    .map(|h| (h.fwd.create_cache(), h.rev.create_cache())),
                pikevm: p.create_cache(),
                backtrack: b.create_cache(),
                captures: p.create_captures(),
                split: s
                    .as_ref()
                    .map(|s| (s.prefix.create_cache(), s.group.create_cache())),
                prefix_ends: Vec::new(),
            })
        };
        Ok(Matcher {
            groups,
            kind: Kind::Automata {
                engines: Box::new(Engines {
                    hybrid,
                    pikevm,
                    backtrack,
                    split,
                }),
                pool: Pool::new(create),
            },
        })
    }

    /// Groups of the pattern, the whole match (group 0) included: `captures_len` of `regex`.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// The leftmost-first match starting at or after `at` (bytes before `at` are context for
    /// look-behind, as in `regex`'s `find_at`).
    pub(crate) fn find_at(&self, hay: &[u8], at: usize) -> Option<Span> {
        match &self.kind {
            Kind::Literals(ac) => literal_find(ac, hay, at),
            Kind::Automata { engines, pool } => engines
                .find(&mut pool.get(), &Input::new(hay).range(at..))
                .map(|m| (m.start(), m.end())),
        }
    }

    /// The match as [`Matcher::find_at`] finds it, and where capture group `group` matched in
    /// it (`None`: the group did not take part).
    pub(crate) fn captures_at(
        &self,
        hay: &[u8],
        at: usize,
        group: usize,
    ) -> Option<(Span, Option<Span>)> {
        let (engines, pool) = match &self.kind {
            Kind::Literals(ac) => {
                let m = literal_find(ac, hay, at)?;
                return Some((m, (group == 0).then_some(m)));
            }
            Kind::Automata { engines, pool } => (engines, pool),
        };
        let input = Input::new(hay).range(at..);
        let mut cache = pool.get();
        let m = engines.find(&mut cache, &input)?;
        if group == 0 {
            return Some(((m.start(), m.end()), Some((m.start(), m.end()))));
        }
        let c = &mut *cache;
        if let (1, Some(split), Some(sc)) = (group, &engines.split, c.split.as_mut()) {
            if let Some(k) = split.group_start(sc, &mut c.prefix_ends, hay, m.start(), m.end()) {
                return Some(((m.start(), m.end()), Some((k, m.end()))));
            }
        }
        // The groups of that match, from an anchored search of its span (the meta regex's way:
        // the surrounding bytes still count for look-around).
        let span = input.span(m.start()..m.end()).anchored(Anchored::Yes);
        if !(engines.backtrack_fits(&span)
            && engines
                .backtrack
                .try_captures(&mut c.backtrack, span.clone(), &mut c.captures)
                .is_ok())
        {
            engines
                .pikevm
                .captures(&mut c.pikevm, span, &mut c.captures);
        }
        let g = c.captures.get_group(group).map(|s| (s.start, s.end));
        Some(((m.start(), m.end()), g))
    }

    /// Whether the pattern matches anywhere in `hay`.
    pub(crate) fn is_match(&self, hay: &[u8]) -> bool {
        let (engines, pool) = match &self.kind {
            Kind::Literals(ac) => return literal_find(ac, hay, 0).is_some(),
            Kind::Automata { engines, pool } => (engines, pool),
        };
        let input = Input::new(hay).earliest(true);
        let mut cache = pool.get();
        let c = &mut *cache;
        if let (Some(h), Some(hc)) = (&engines.hybrid, c.hybrid.as_mut()) {
            if let Ok(found) = h.fwd.try_search_fwd(&mut hc.0, &input) {
                return found.is_some();
            }
        }
        engines.find_nofail(c, &input).is_some()
    }
}

impl Engines {
    fn find(&self, c: &mut Cache, input: &Input<'_>) -> Option<Match> {
        if let (Some(h), Some(hc)) = (&self.hybrid, c.hybrid.as_mut()) {
            if let Ok(found) = h.try_search(hc, input) {
                return found;
            }
        }
        self.find_nofail(c, input)
    }

    /// The search engines that always answer: the backtracker on short texts, else the PikeVM.
    fn find_nofail(&self, c: &mut Cache, input: &Input<'_>) -> Option<Match> {
        if self.backtrack_fits(input) {
            if let Ok(found) = self.backtrack.try_find(&mut c.backtrack, input.clone()) {
                return found;
            }
        }
        self.pikevm.find(&mut c.pikevm, input.clone())
    }

    /// The meta regex's rule: the backtracker only where its visited set holds the search, and
    /// not for an earliest search of a long text (others stop sooner).
    fn backtrack_fits(&self, input: &Input<'_>) -> bool {
        !(input.get_earliest() && input.haystack().len() > 128)
            && input.get_span().len() <= self.backtrack.max_haystack_len()
    }
}

fn literal_find(ac: &aho_corasick::AhoCorasick, hay: &[u8], at: usize) -> Option<Span> {
    let input = aho_corasick::Input::new(hay).range(at..);
    ac.find(input).map(|m| (m.start(), m.end()))
}

/// The literals of a pattern that is an alternation of 3,000 or more plain literals, with no
/// look-around and no capture group: the meta regex's rule for searching it with Aho-Corasick.
fn alternation_literals(hir: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{HirKind, Literal};
    let props = hir.properties();
    if !props.look_set().is_empty()
        || props.explicit_captures_len() > 0
        || !props.is_alternation_literal()
    {
        return None;
    }
    let HirKind::Alternation(alts) = hir.kind() else {
        return None;
    };
    if alts.len() < 3000 {
        return None;
    }
    let mut literals = Vec::with_capacity(alts.len());
    for alt in alts {
        let mut literal = Vec::new();
        match alt.kind() {
            HirKind::Literal(Literal(bytes)) => literal.extend_from_slice(bytes),
            HirKind::Concat(parts) => {
                for part in parts {
                    let HirKind::Literal(Literal(bytes)) = part.kind() else {
                        return None;
                    };
                    literal.extend_from_slice(bytes);
                }
            }
            _ => return None,
        }
        literals.push(literal);
    }
    Some(literals)
}

/// A pattern `P(G)` whose only group ends it: where the group starts in a match, from two lazy
/// DFAs instead of the backtracker (~20,000 instructions a call for `person_name.context`'s
/// pattern, whose prefix is an alternation of a hundred words). `P` read forward from the
/// match's start gives every place a prefix can end; `G` read in reverse from the match's end,
/// every place the group can start. Where exactly one place is both, the leftmost-first match
/// the backtracker would choose splits there, since it is some split of the match: the group
/// starts there. Where there are several (`(a|ab)(b?c)` on `abc`), which one the pattern's
/// priorities choose is the backtracker's question, and it answers it.
///
/// Bounded: a match whose prefix can end in more than [`SPLIT_ENDS`] places goes to the
/// backtracker or the PikeVM as before (the ends are held, and `password:` then a megabyte of
/// spaces would hold a million), and each DFA's cache is at most [`SPLIT_CACHE`].
#[derive(Clone)]
struct Split {
    /// `P`, anchored, every match reported (`MatchKind::All`).
    prefix: hybrid::dfa::DFA,
    /// `G` in reverse, anchored, every match reported.
    group: hybrid::dfa::DFA,
}

impl Split {
    /// `None` unless the pattern is a concatenation ending with group 1, its only group; or
    /// when either DFA cannot be built.
    fn new(hir: &regex_syntax::hir::Hir, base: thompson::Config, capacity: usize) -> Option<Split> {
        use regex_syntax::hir::{Hir, HirKind};
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let (last, prefix) = parts.split_last()?;
        let HirKind::Capture(group) = last.kind() else {
            return None;
        };
        if group.index != 1 || hir.properties().explicit_captures_len() != 1 {
            return None;
        }
        let base = base.which_captures(thompson::WhichCaptures::None);
        let dfa = hybrid::dfa::Config::new()
            .match_kind(MatchKind::All)
            .unicode_word_boundary(true)
            .cache_capacity(capacity.min(SPLIT_CACHE))
            .skip_cache_capacity_check(false)
            .minimum_cache_clear_count(Some(3))
            .minimum_bytes_per_state(Some(10));
        let build = |hir: &Hir, reverse: bool| {
            let nfa = thompson::Compiler::new()
                .configure(base.clone().reverse(reverse))
                .build_from_hir(hir)
                .ok()?;
            hybrid::dfa::Builder::new()
                .configure(dfa.clone())
                .build_from_nfa(nfa)
                .ok()
        };
        Some(Split {
            prefix: build(&Hir::concat(prefix.to_vec()), false)?,
            group: build(&group.sub, true)?,
        })
    }

    /// Where group 1 starts in the match `ms..me` of `hay`, when only one split of the match
    /// is a prefix then a group; `None` when there are several (or none) or a DFA quits or
    /// gives up: the backtracker then answers.
    fn group_start(
        &self,
        (pc, gc): &mut (hybrid::dfa::Cache, hybrid::dfa::Cache),
        ends: &mut Vec<usize>,
        hay: &[u8],
        ms: usize,
        me: usize,
    ) -> Option<usize> {
        let input = Input::new(hay).span(ms..me).anchored(Anchored::Yes);
        // Where a prefix starting at `ms` ends, in increasing order. A lazy DFA reports a match
        // one byte late: the state after `hay[at]` says whether one ended at `at`.
        // The caches count the bytes searched (`search_update`): a lazy DFA gives up (`Err`)
        // when it has cleared its cache three times with fewer than 10 bytes per state.
        ends.clear();
        let p = &self.prefix;
        let mut sid = p.start_state_forward(pc, &input).ok()?;
        pc.search_start(ms);
        for at in ms..=me {
            pc.search_update(at);
            sid = match hay.get(at) {
                Some(&b) => p.next_state(pc, sid, b).ok()?,
                None => p.next_eoi_state(pc, sid).ok()?,
            };
            if sid.is_match() {
                if ends.len() == SPLIT_ENDS {
                    return None;
                }
                ends.push(at);
            } else if sid.is_dead() {
                break;
            } else if sid.is_quit() {
                return None;
            }
        }
        // Where a group ending at `me` starts, decreasing, checked against the prefix's ends:
        // none is left to meet below the first of them. The state after `hay[at - 1]` (or the
        // end of the text) says whether one starts at `at`.
        let first = *ends.first()?;
        pc.search_finish(me);
        let g = &self.group;
        let mut sid = g.start_state_reverse(gc, &input).ok()?;
        let mut found = None;
        gc.search_start(me);
        for at in (first..=me).rev() {
            gc.search_update(at);
            sid = match at.checked_sub(1) {
                Some(before) => g.next_state(gc, sid, hay[before]).ok()?,
                None => g.next_eoi_state(gc, sid).ok()?,
            };
            if sid.is_match() {
                if ends.binary_search(&at).is_ok() && found.replace(at).is_some() {
                    return None;
                }
            } else if sid.is_dead() {
                break;
            } else if sid.is_quit() {
                return None;
            }
        }
        gc.search_finish(first);
        found
    }
}

/// The most places a prefix may end for [`Split`] to look for the group.
const SPLIT_ENDS: usize = 64;
/// The most memory each of [`Split`]'s lazy DFAs' caches may use.
const SPLIT_CACHE: usize = 1 << 20;

/// A lazy DFA for the end of the leftmost-first match, and one in reverse for its start:
/// `hybrid::regex::Regex`'s search, with caches a pool can create.
#[derive(Clone)]
struct LazyDfas {
    fwd: hybrid::dfa::DFA,
    rev: hybrid::dfa::DFA,
}

impl LazyDfas {
    /// `Err` when either DFA quits or gives up: the caller asks an engine that always answers.
    fn try_search(
        &self,
        (fc, rc): &mut (hybrid::dfa::Cache, hybrid::dfa::Cache),
        input: &Input<'_>,
    ) -> Result<Option<Match>, ()> {
        let Some(end) = self.fwd.try_search_fwd(fc, input).map_err(drop)? else {
            return Ok(None);
        };
        let end = end.offset();
        if input.start() == end {
            return Ok(Some(Match::must(0, end..end)));
        }
        if input.get_anchored().is_anchored() || self.fwd.get_nfa().is_always_start_anchored() {
            return Ok(Some(Match::must(0, input.start()..end)));
        }
        // The longest match ending at `end` that starts inside the search: the reverse DFA runs
        // anchored at `end`, back to the search's start.
        let back = input
            .clone()
            .span(input.start()..end)
            .anchored(Anchored::Yes)
            .earliest(false);
        match self.rev.try_search_rev(rc, &back).map_err(drop)? {
            Some(start) => Ok(Some(Match::must(0, start.offset()..end))),
            None => Err(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `p` as the `regex` crate compiles it for bytes, with the limits detectors use: the
    /// reference a [`Matcher`]'s searches are compared with.
    pub(crate) fn oracle(p: &str) -> regex::bytes::Regex {
        regex::bytes::RegexBuilder::new(p)
            .size_limit(4 << 20)
            .dfa_size_limit(8 << 20)
            .build()
            .expect("pattern")
    }

    fn matcher(p: &str) -> Matcher {
        Matcher::new(p, Options::bytes(4 << 20, 8 << 20)).expect("pattern")
    }

    /// Every search at every offset agrees with the `regex` crate: matches, groups, is_match.
    fn agree(p: &str, texts: &[&[u8]]) {
        let (re, m) = (oracle(p), matcher(p));
        assert_eq!(m.groups(), re.captures_len(), "{p}");
        let mut locs = re.capture_locations();
        for text in texts {
            assert_eq!(m.is_match(text), re.is_match(text), "{p} is_match {text:?}");
            for at in 0..=text.len() {
                let want = re.find_at(text, at).map(|x| (x.start(), x.end()));
                assert_eq!(m.find_at(text, at), want, "{p} find_at {at} in {text:?}");
                for g in 0..re.captures_len() {
                    let want = re
                        .captures_read_at(&mut locs, text, at)
                        .map(|x| ((x.start(), x.end()), locs.get(g)));
                    assert_eq!(m.captures_at(text, at, g), want, "{p} group {g} at {at}");
                }
            }
        }
    }

    #[test]
    fn searches_are_the_regex_crates() {
        let texts: &[&[u8]] = &[
            b"",
            b"mail bob@example.com or ann@x.org",
            b"caf\xc3\xa9 4111 1111 1111 1111 \xff end",
            "Stra\u{df}e 12, M\u{fc}nchen \u{661}\u{662}\u{663}".as_bytes(),
            b"\xc3 lone \x80 bytes 123-45-6789",
        ];
        for p in [
            r"[a-z]+@[a-z]+\.[a-z]{2,}",
            r"\b\d{3}-\d{2}-\d{4}\b",
            r"\b(\w+)\s+(\d+)\b",
            r"(?i)m(ü|u)nchen",
            r"(\d{4})[ -]?(\d{4})[ -]?(\d{4})[ -]?(\d{4})",
            r"(a)|(b)|(\d)",
            r"\B\w{2}\B",
            r"^\S+",
            r"x*",
            r"(?-u:\xff)",
        ] {
            agree(p, texts);
        }
    }

    /// A pattern ending with its only group has the group's start from two lazy DFAs when the
    /// match splits one way, and from the backtracker when it splits several ways: the same
    /// groups as the `regex` crate's either way, at every offset.
    #[test]
    fn a_group_ending_the_pattern_starts_where_the_only_split_is() {
        let texts: &[&[u8]] = &[
            b"",
            b"abc xabcx ab abbc",
            b"123-45 12345 9-",
            b"to: Jan xto: Ann\tto:\t  Bo_b to:",
            "Dear \u{c9}mile, dear \u{df}x".as_bytes(),
            b"aaa b a",
            b"\xff\xc3to: Zo\xc3",
        ];
        let patterns = [
            // ambiguous: `a` then `bc`, or `ab` then `c` (the first, by priority)
            r"(?:a|ab)(b?c)",
            // one split (`123-` then `45`); `12345` splits five ways
            r"[0-9]+-?([0-9]*)",
            r"a*(a*)",
            r"(?-u:\b)(?:to|cc):\s*([A-Z]\w*)",
            r"(?i:dear) (\p{Lu}\w+)",
            r"ab()",
            r"a\b()",
            r"x?(\w+\b)",
            r"b(a)",
        ];
        for p in patterns {
            let m = matcher(p);
            let Kind::Automata { engines, .. } = &m.kind else {
                panic!("{p}");
            };
            assert!(engines.split.is_some(), "{p} ends with its only group");
            agree(p, texts);
        }
        for p in [r"(a)b", r"(a)(b)", r"(?:(a)|b)", r"x(a|(b))"] {
            let Kind::Automata { engines, .. } = &matcher(p).kind else {
                panic!("{p}");
            };
            assert!(engines.split.is_none(), "{p}");
        }
        // Which matches the DFAs split, and which they leave to the backtracker.
        let start = |p: &str, hay: &[u8]| {
            let m = matcher(p);
            let Kind::Automata { engines, pool } = &m.kind else {
                panic!("{p}");
            };
            let (s, e) = m.find_at(hay, 0).expect("a match");
            let c = &mut *pool.get();
            let split = engines.split.as_ref().expect("split");
            split.group_start(
                c.split.as_mut().expect("caches"),
                &mut c.prefix_ends,
                hay,
                s,
                e,
            )
        };
        assert_eq!(start(r"(?:a|ab)(b?c)", b"abc"), None);
        assert_eq!(start(r"(?:a|ab)(b?c)", b"abbc"), Some(2));
        assert_eq!(start(r"[0-9]+-?([0-9]*)", b"123-45"), Some(4));
        assert_eq!(start(r"[0-9]+-?([0-9]*)", b"12345"), None);
        assert_eq!(start(r"ab()", b"xab"), Some(3));
        assert_eq!(start(r"a\b()", b"xa a"), Some(2));
        assert_eq!(start(r"a\b()", b"ab a"), Some(4));
        // A prefix that can end in more than SPLIT_ENDS places leaves the match to the other
        // engines, with the same groups; a long group does not.
        let p = r"(?-u:\b)(?:to|cc):\s*([A-Z]\w*)";
        let long = format!("to:{}Jan", " ".repeat(SPLIT_ENDS));
        assert_eq!(start(p, long.as_bytes()), None);
        let short = format!("to:{}Jan", " ".repeat(SPLIT_ENDS - 1));
        assert_eq!(start(p, short.as_bytes()), Some(SPLIT_ENDS + 2));
        let token = format!("to: J{}", "a".repeat(100_000));
        assert_eq!(start(p, token.as_bytes()), Some(4));
        agree(p, &[long.as_bytes(), short.as_bytes()]);
        assert_eq!(start(r"x?(\w+\b)", b"ab cd"), Some(0));
        assert_eq!(
            start(r"(?-u:\b)(?:to|cc):\s*([A-Z]\w*)", b"cc: to: Jan"),
            Some(8)
        );
    }

    /// A text that makes the lazy DFA thrash gives up to the PikeVM, with the same answer.
    #[test]
    fn a_thrashing_lazy_dfa_falls_back() {
        let p = r"[01]*1[01]{12}";
        let mut state = 7u64;
        let text: Vec<u8> = (0..20_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'0' + (state & 1) as u8
            })
            .collect();
        let (re, m) = (
            oracle(p),
            Matcher::new(p, Options::bytes(4 << 20, 64 << 10)).expect("p"),
        );
        assert!(
            matches!(&m.kind, Kind::Automata { engines, .. } if engines.hybrid.is_some()),
            "the lazy DFA is built, and thrashes"
        );
        for at in [0, 1, 5000, 19_990] {
            assert_eq!(
                m.find_at(&text, at),
                re.find_at(&text, at).map(|x| (x.start(), x.end()))
            );
        }
        assert_eq!(m.is_match(&text), re.is_match(&text));
        let p = r"([01]*)1[01]{12}";
        let (re, m) = (
            oracle(p),
            Matcher::new(p, Options::bytes(4 << 20, 64 << 10)).expect("p"),
        );
        let mut locs = re.capture_locations();
        for at in [0, 7, 19_000] {
            let want = re
                .captures_read_at(&mut locs, &text, at)
                .map(|x| ((x.start(), x.end()), locs.get(1)));
            assert_eq!(m.captures_at(&text, at, 1), want);
        }
    }

    /// Routes match UTF-8 paths, case-insensitively when asked: as `regex::RegexBuilder` did,
    /// with Unicode case folding (`ß`, the Kelvin sign) and empty matches that never split a
    /// character.
    #[test]
    fn utf8_and_case_insensitive_searches_are_the_regex_crates() {
        let texts = [
            "",
            "Straße STRASSE strasse",
            "\u{212A}elvin kelvin K",
            "aé\u{661}x",
            "/V2/Orders/Ä",
        ];
        for (p, ci) in [
            (r"(?i)straße", false),
            ("k", true),
            (r"x*", false),
            (r"\w+", true),
            (r"^/v[0-9]+/orders/ä$", true),
            (r"(é|e)(\d)?", true),
        ] {
            let re = regex::RegexBuilder::new(p)
                .case_insensitive(ci)
                .size_limit(1 << 20)
                .build()
                .expect("pattern");
            let options = Options {
                utf8: true,
                case_insensitive: ci,
                ..Options::bytes(1 << 20, 2 << 20)
            };
            let m = Matcher::new(p, options).expect("pattern");
            let mut locs = re.capture_locations();
            for text in texts {
                assert_eq!(m.is_match(text.as_bytes()), re.is_match(text), "{p} {text}");
                for (at, _) in text.char_indices().chain([(text.len(), ' ')]) {
                    let want = re.find_at(text, at).map(|x| (x.start(), x.end()));
                    assert_eq!(
                        m.find_at(text.as_bytes(), at),
                        want,
                        "{p} at {at} in {text}"
                    );
                    for g in 0..re.captures_len() {
                        let want = re
                            .captures_read_at(&mut locs, text, at)
                            .map(|x| ((x.start(), x.end()), locs.get(g)));
                        assert_eq!(m.captures_at(text.as_bytes(), at, g), want, "{p} {g}");
                    }
                }
            }
        }
    }

    /// Long texts take the other engines: an earliest search past 128 bytes skips the
    /// backtracker, a Unicode word boundary before non-ASCII bytes makes the lazy DFA quit, and
    /// a match longer than the backtracker holds has its groups found by the PikeVM.
    #[test]
    fn long_texts_take_the_fallback_engines_with_the_same_answers() {
        let text = format!("{} 123-45-6789", "é".repeat(100));
        let p = r"\b\d{3}-\d{2}-\d{4}\b";
        let (re, m) = (oracle(p), matcher(p));
        assert_eq!(m.is_match(text.as_bytes()), re.is_match(text.as_bytes()));
        assert_eq!(
            m.find_at(text.as_bytes(), 3),
            re.find_at(text.as_bytes(), 3).map(|x| (x.start(), x.end()))
        );
        let mut long = b"x".to_vec();
        long.extend(std::iter::repeat_n(b'a', 200_000));
        long.extend(b"b tail");
        let p = r"(a+)(b)";
        let (re, m) = (oracle(p), matcher(p));
        let mut locs = re.capture_locations();
        for g in 0..3 {
            let want = re
                .captures_read_at(&mut locs, &long, 0)
                .map(|x| ((x.start(), x.end()), locs.get(g)));
            assert_eq!(m.captures_at(&long, 0, g), want, "group {g}");
        }
    }

    /// A custom class listing thousands of literals (ids, code names) compiles as it did with
    /// the `regex` crate, which searches it with Aho-Corasick and builds no NFA; with fewer
    /// than 3,000 it is an automaton as any pattern. Both search as the `regex` crate does.
    #[test]
    fn large_literal_alternations_compile_and_search_as_before() {
        let mut next = crate::detect::tests::xorshift(0x5eed);
        let mut word = || -> String {
            (0..8)
                .map(|_| (b'a' + (next() % 26) as u8) as char)
                .collect()
        };
        for n in [2_000, 12_561] {
            let words: Vec<String> = (0..n).map(|_| word()).collect();
            let p = words.join("|");
            let (re, m) = (oracle(&p), matcher(&p));
            assert_eq!(matches!(m.kind, Kind::Literals(_)), n >= 3000);
            assert_eq!(m.groups(), re.captures_len());
            let text = format!("id {} and {}{} end", words[7], words[n - 1], words[3]);
            for at in 0..=text.len() {
                let want = re
                    .find_at(text.as_bytes(), at)
                    .map(|x| (x.start(), x.end()));
                assert_eq!(m.find_at(text.as_bytes(), at), want, "{n} at {at}");
                let c = m.captures_at(text.as_bytes(), at, 0);
                assert_eq!(c.map(|c| c.0), want);
            }
            assert!(m.is_match(text.as_bytes()));
            assert!(!m.is_match(b"0123 none here"));
        }
    }

    #[test]
    fn errors_read_as_the_regex_crates() {
        let bad = String::from("(");
        let e = Matcher::new(&bad, Options::bytes(4 << 20, 8 << 20)).unwrap_err();
        match regex::bytes::Regex::new(&bad).unwrap_err() {
            regex::Error::Syntax(s) => assert_eq!(e.to_string(), s),
            other => panic!("{other:?}"),
        }
        let e = Matcher::new(r"\w{1000}", Options::bytes(1 << 16, 8 << 20)).unwrap_err();
        let want = regex::bytes::RegexBuilder::new(r"\w{1000}")
            .size_limit(1 << 16)
            .build()
            .unwrap_err();
        assert_eq!(e.to_string(), want.to_string());
        assert_eq!(e, Error::TooBig(1 << 16));
    }
}
