//! Detectors: the built-in pack (data in `builtin.toml`) and custom classes, compiled once.
//!
//! Scanning one text is three cheap gates before any regex runs:
//! 1. key hints: a JSON/form key such as `email` or `dob` selects the value detectors for it;
//! 2. an Aho-Corasick prefilter over every detector keyword (`@`, `AKIA`, `eyJ`, ...), run once
//!    per text, tells which keyword-gated detectors can match at all;
//! 3. a digit count gates the digit-shaped detectors (cards need 13 digits, SSNs 9, ...).
//!
//! Only the detectors that pass run their regex; each match then passes a boundary check, a
//! validator (Luhn, mod-97, SSN rules, ...) and a confidence threshold that key hints and nearby
//! context words can raise.

mod byte_masks;
pub(crate) mod catalog;
#[cfg(test)]
mod dfa_build;
mod email;
mod eth;
mod jwt;
mod keywords;
mod mask;
mod names;
mod national;
mod pem;
mod phone;
#[cfg(feature = "profile")]
pub(crate) mod profile;
mod span_shape;
pub(crate) mod validate;
mod vat;

use keywords::KeywordSearch;

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use crate::matcher::{self, Matcher};
use regex_automata::dfa::Automaton;

/// A built-in dense DFA, read from the bytes `build.rs` determinised (see [`builtin_dfa`]).
type DenseDfa = regex_automata::dfa::dense::DFA<&'static [u32]>;
use serde::Deserialize;

use crate::error::PolicyError;
pub(crate) use crate::jsonpath::normalize_key;
use crate::manifest::{ClassSpec, Validator};

/// The built-in detector pack, embedded at build time.
pub const BUILTIN_PACK: &str = include_str!("builtin.toml");

/// The same pack converted to JSON at build time (`build.rs`).
const BUILTIN_PACK_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/builtin.json"));

/// The built-in pack, as its types.
pub(crate) fn builtin_pack() -> Result<PackFile, PolicyError> {
    serde_json::from_slice(BUILTIN_PACK_JSON.as_bytes())
        .map_err(|e| PolicyError::new("<builtin pack>", e.to_string()))
}

pub(crate) use mask::{DetectorMask, MAX_DETECTORS};

pub(crate) type ClassId = u16;

/// How a match must be separated from its surroundings.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Boundary {
    None,
    #[default]
    Word,
    Token,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PackFile {
    detector: Vec<PackDetector>,
    class: Vec<PackClass>,
}

/// A built-in class: its group and what it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackClass {
    name: String,
    group: String,
    description: String,
}

/// The group of custom classes (`custom.*`).
pub(crate) const CUSTOM_GROUP: &str = "custom";

/// One detector as written in the pack file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PackDetector {
    id: String,
    class: String,
    pattern: Option<String>,
    group: usize,
    keywords: Vec<String>,
    min_digits: usize,
    validator: Option<Validator>,
    boundary: Boundary,
    confidence: f32,
    hint_boost: Option<f32>,
    context_boost: Option<f32>,
    key_hints: Vec<String>,
    negative_key_hints: Vec<String>,
    context: Vec<String>,
    value_pattern: Option<String>,
    parent_hints: Vec<String>,
    allow: Vec<String>,
    negative_context: Vec<String>,
    joiners: Option<String>,
    match_digits: Option<[usize; 2]>,
    shrink: bool,
    min_run: usize,
    gate: Option<Gate>,
    finder: Option<Finder>,
    keywords_any_case: bool,
    example: Option<String>,
    glued_suffix: Vec<String>,
    not_after_number: bool,
    /// How far before a match a context word counts, in bytes (default 48).
    context_window: Option<usize>,
}

/// Candidate finders written in code, for candidates a regex cannot propose: a run of
/// capitalised words is asked as every sub-run and reported whole (a detector has a `pattern`
/// or a `finder`, not both).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Finder {
    /// Runs of capitalised words ([`names::name_candidates`]).
    NamePairs,
}

/// Structural gates too specific for keywords.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Gate {
    /// At least 3 dots.
    Ipv4,
    /// `::` or at least 7 colons.
    Ipv6,
    /// Two capital letters followed by two digits (a country code and check digits).
    Iban,
    /// Five of `:`/`-` three bytes apart, or two dots five apart ([`mac_separators`]).
    Mac,
}

/// A compiled detector.
#[derive(Debug)]
pub(crate) struct Detector {
    pub(crate) id: Arc<str>,
    pub(crate) class: ClassId,
    regex: PatternRegex,
    /// When every match of `regex` is made of [`NUMERIC`] bytes (digits and the separators of
    /// numbers) and has no look-around: the shortest match. The pattern then runs only inside
    /// the text's numeric spans that are at least this long, instead of over the whole text.
    numeric_min_len: Option<usize>,
    /// The shortest match of the pattern, in bytes: a shorter text cannot hold one.
    min_len: usize,
    /// When every match of `regex` is made of ASCII letters and digits, the detector is
    /// word-bounded and the pattern looks around for ASCII word boundaries at most: the
    /// shortest and longest match (`usize::MAX`: unbounded). A match it accepts is then a whole
    /// alphanumeric word of the text of that length, so it runs on such words only ([`WordRun`]).
    word_len: Option<(usize, usize)>,
    /// The pattern is a built-in one searched by code written for it rather than by its regex.
    hand: Option<Hand>,
    /// For a numeric detector: the fewest digits a numeric span must hold to contain a match
    /// this detector accepts (from the pattern, `match_digits` and the validator). Spans with
    /// fewer are not searched: most numeric spans are dates, times, versions and counts.
    span_min_digits: usize,
    /// For a numeric detector whose every match starts with one of a few literals (`00`,
    /// `756`, `(`): those literals. A span holding none of them is not searched.
    span_prefixes: Vec<memchr::memmem::Finder<'static>>,
    /// Literals one of which every match of `regex` contains, when a run of the pattern's
    /// parts is one of a few selective literals (`2A`/`2B` in a Corsican NIR): a text holding
    /// none of them is not searched ([`required_infixes`]). Empty: no check.
    infixes: Vec<memchr::memmem::Finder<'static>>,
    /// A small dense DFA of `regex` (built-in detectors without keywords: digit- and
    /// gate-shaped ones), searching several times faster than the regex does. With its reverse
    /// DFA (a [`SmallDfa::Regex`]) and no group wanted, it finds the match itself in one
    /// search; otherwise it answers "is there any match at or after here?", and only a yes runs
    /// the regex for the match and its groups.
    dfa: DfaSlot,
    group: usize,
    min_digits: usize,
    validator: Option<Validator>,
    boundary: Boundary,
    confidence: f32,
    hint_boost: f32,
    context_boost: f32,
    key_hints: HashSet<Vec<u8>, FxBuild>,
    negative_key_hints: HashSet<Vec<u8>, FxBuild>,
    context: Vec<Vec<u8>>,
    value_regex: Option<Matcher>,
    parent_hints: HashSet<Vec<u8>, FxBuild>,
    /// Values that are not findings, lower case (compared with the match in ASCII lower case).
    allow: HashSet<Vec<u8>, FxBuild>,
    /// The longest of `allow`: a longer match is not in it.
    allow_longest: usize,
    negative_context: Vec<Vec<u8>>,
    joiners: Vec<u8>,
    match_digits: [usize; 2],
    shrink: bool,
    min_run: usize,
    finder: Option<Finder>,
    gate: Option<Gate>,
    glued_suffix: Vec<Vec<u8>>,
    /// Not a finding when a number group stands right before the match (`7354 0049 3079
    /// 2558` is one 16-digit number, not a phone number from its second group on).
    not_after_number: bool,
    /// How far before a match a context word counts, in bytes.
    context_window: usize,
}

/// Where a text sits: the normalized JSON/form key and the key of its parent object.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyCtx<'a> {
    /// Normalized ([`normalize_key`]), UTF-8.
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) parent: Option<&'a [u8]>,
}

/// What a text's normalized key is a hint for (see [`Detectors::key_masks`]).
#[derive(Debug, Clone, Copy, Default)]
struct KeyMasks {
    /// Value detectors: the key's whole value is checked (`scan_value`).
    value: DetectorMask,
    /// `support_gated` detectors the key opens as a context word would.
    support: DetectorMask,
    /// Detectors whose confidence it raises (`key_hints`).
    hint: DetectorMask,
    /// Detectors whose confidence it lowers (`negative_key_hints`).
    negative: DetectorMask,
}

/// A detector match in a scanned text (offsets into that text).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Hit {
    pub(crate) detector: u16,
    pub(crate) class: ClassId,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) confidence: f32,
}

/// Class names, interned.
#[derive(Debug, Default)]
pub(crate) struct ClassTable {
    names: Vec<Arc<str>>,
    /// Each class's group (`pii`, `national_id.us`, `custom`).
    groups: Vec<Arc<str>>,
    index: HashMap<String, ClassId>,
}

impl ClassTable {
    pub(crate) fn id(&self, name: &str) -> Option<ClassId> {
        self.index.get(name).copied()
    }
    pub(crate) fn name(&self, id: ClassId) -> &Arc<str> {
        &self.names[usize::from(id)]
    }
    pub(crate) fn count(&self) -> usize {
        self.names.len()
    }
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| n.as_ref())
    }
    fn intern(&mut self, name: &str, group: &str) -> ClassId {
        if let Some(id) = self.index.get(name) {
            return *id;
        }
        let id = self.names.len() as ClassId;
        self.names.push(Arc::from(name));
        self.groups.push(Arc::from(group));
        self.index.insert(name.to_string(), id);
        id
    }

    /// The classes a policy means by `selector`: a class name (`email`); a qualified name
    /// (`pii.email`); a group (`secrets`, `national_id.us`: its classes and those of its
    /// subgroups); or a group with `.*` (`secrets.*`, the same). `None` when it names nothing.
    pub(crate) fn select(&self, selector: &str) -> Option<Vec<ClassId>> {
        if let Some(id) = self.id(selector) {
            // A class name wins over a group of the same name (a custom class `pii`).
            return Some(vec![id]);
        }
        let group = selector.strip_suffix(".*").unwrap_or(selector);
        let ids: Vec<ClassId> = (0..self.names.len())
            .filter(|&i| {
                let g = &*self.groups[i];
                let in_group = g == group
                    || (g.len() > group.len()
                        && g.starts_with(group)
                        && g.as_bytes()[group.len()] == b'.');
                let qualified = !selector.ends_with(".*")
                    && selector.len() == g.len() + 1 + self.names[i].len()
                    && selector.starts_with(g)
                    && selector.as_bytes()[g.len()] == b'.'
                    && selector.ends_with(&*self.names[i]);
                in_group || qualified
            })
            .map(|i| i as ClassId)
            .collect();
        (!ids.is_empty()).then_some(ids)
    }

    /// Every group (sorted), for error messages.
    pub(crate) fn group_names(&self) -> Vec<&str> {
        let mut g: Vec<&str> = self.groups.iter().map(|g| &**g).collect();
        g.sort_unstable();
        g.dedup();
        g
    }
}

/// All detectors of a policy, with their shared prefilter.
#[derive(Debug)]
pub(crate) struct Detectors {
    pub(crate) list: Vec<Detector>,
    pub(crate) classes: ClassTable,
    /// Where the detector keywords are.
    keywords: KeywordSearch,
    /// The keywords as listed (for [`Detectors::restrict_keywords`]): text, detectors, any
    /// case; and which detectors' keywords may be merged (the built-in ones).
    keyword_list: (Vec<String>, Vec<DetectorMask>, Vec<bool>, DetectorMask),
    /// Searches of the keywords of fewer detectors, for the routes that enable only those
    /// (a policy detecting secrets does not search for greetings): (the detectors the route
    /// enables that keywords gate, the search).
    restricted: Vec<(DetectorMask, KeywordSearch)>,
    keyword_gated: DetectorMask,
    /// The JSON escapes that may write a byte of a keyword (`\/` for `://`), and `\u`, which
    /// writes any: a string without them has the keywords its raw bytes have (see
    /// [`KeywordHits::within_escaped`]). `None`: every such string is searched on its own.
    keyword_escapes: Option<Vec<[u8; 2]>>,
    /// Detectors below the policy's confidence threshold on their own (bare digit runs that
    /// are a phone number, an SSN or a PESEL only by their key or a word before them): they
    /// run only in a text whose key is one of their hints or that holds one of their context
    /// words (searched with the keywords), since elsewhere nothing they find can be reported.
    support_gated: DetectorMask,
    /// The keyword-triggered detectors whose keywords count only where they start a word
    /// ([`glued`]): the support-gated ones (a context word counts there only) and those whose
    /// every match starts with a keyword after a word boundary
    /// ([`keyword_starts_every_match`]).
    word_start: DetectorMask,
    pattern_detectors: DetectorMask,
    /// Normalized key -> the detectors it is a hint of each kind for: one lookup per text
    /// answers every question a text's key is asked (it was one per question, and two more
    /// per candidate `accept` checked).
    key_masks: HashMap<Vec<u8>, KeyMasks, FxBuild>,
    /// Longest key of `key_masks`: longer keys need no lookup.
    longest_hint: usize,
    /// Every normalized key any detector takes as a hint (value or confidence).
    hinted_keys: HashSet<Vec<u8>, FxBuild>,
    /// Pattern detectors that need no digits.
    digit_free: DetectorMask,
    /// Detectors whose patterns match inside numeric spans only (`numeric_min_len`).
    numeric: DetectorMask,
    /// Gates as masks, so a text drops whole groups of detectors at once. `[n]`: the
    /// detectors needing more than `n` digits in the text; `run[n]`: more than `n` in one chain
    /// (see [`Shape::max_run`]); `span_len[n]`, `span_digits[n]`: the numeric detectors whose
    /// match needs a numeric span longer than `n` bytes / with more than `n` digits. Indexes
    /// past the end need nothing.
    need_digits: Vec<DetectorMask>,
    need_run: Vec<DetectorMask>,
    /// `need_len[n]`: the pattern detectors whose shortest match is longer than `n` bytes (a
    /// Bitcoin address, a CURP, a VIN cannot be in the short strings most bodies are made of).
    need_len: Vec<DetectorMask>,
    need_span_len: Vec<DetectorMask>,
    need_span_digits: Vec<DetectorMask>,
    /// The least span length any numeric detector needs, and the fewest digits any needs
    /// (each the minimum over all numeric detectors, possibly of different ones): a span with
    /// less of either (a date's parts, a UUID's) can match none, and is passed over without a
    /// mask operation.
    span_least: (usize, usize),
    /// Detectors with a structural [`Gate`].
    gated: DetectorMask,
    /// Detectors with `infixes`.
    infixed: DetectorMask,
    /// Detectors with a `word_len`, and `word_fit[min(n, last)]`: those whose range holds a
    /// word of `n` bytes.
    wordy: DetectorMask,
    word_fit: Vec<DetectorMask>,
    /// By a word's first byte: every detector but the word-bounded ones no match of which
    /// starts with that byte (a match they accept is a whole word: it starts where the word
    /// does). 256 entries.
    word_first: Vec<DetectorMask>,
    /// Numeric-span shape -> the numeric detectors that can match a span of it.
    shapes: span_shape::ShapeCache,
}

/// `table[n]`: the detectors whose `need` is more than `n`; its last entry is 0.
fn need_table(list: &[Detector], need: impl Fn(&Detector) -> usize) -> Vec<DetectorMask> {
    let most = list.iter().map(&need).max().unwrap_or(0);
    (0..=most)
        .map(|n| {
            list.iter()
                .enumerate()
                .filter(|(_, d)| need(d) > n)
                .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i))
        })
        .collect()
}

/// Adds `bit` to the detectors keyword `k` triggers (matched in any ASCII case or exactly),
/// listing the keyword if it is new.
fn add_keyword(
    (keywords, owners, any_case): &mut (Vec<String>, Vec<DetectorMask>, Vec<bool>),
    k: String,
    case: bool,
    bit: DetectorMask,
) {
    match (0..keywords.len()).find(|&p| keywords[p] == k && any_case[p] == case) {
        Some(pos) => owners[pos] |= bit,
        None => {
            keywords.push(k);
            owners.push(bit);
            any_case.push(case);
        }
    }
}

/// The JSON escapes that write a byte one of `keywords` holds (`\/` for `://`), and `\u`
/// (any character); `None` when a keyword holds a backslash (a backslash of the raw string
/// may be half of an escape inside it).
fn json_escapes_writing(keywords: &[String]) -> Option<Vec<[u8; 2]>> {
    if keywords.iter().any(|k| k.contains('\\')) {
        return None;
    }
    let mut escapes = vec![*b"\\u"];
    for letter in 0..=u8::MAX {
        let Some(byte) = crate::json::escape_byte(letter) else {
            continue;
        };
        if keywords.iter().any(|k| k.as_bytes().contains(&byte)) {
            escapes.push([b'\\', letter]);
        }
    }
    Some(escapes)
}

/// The detectors of `table` (see [`need_table`]) that need more than `n`.
fn needing_more(table: &[DetectorMask], n: usize) -> DetectorMask {
    table.get(n).copied().unwrap_or(DetectorMask::EMPTY)
}

/// FxHash (rustc's hasher): key lookups happen for every scanned value, and SipHash's
/// DoS resistance buys nothing for a table built from the policy.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words without a copy (in wasm a copy is a call to memcpy).
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        for &b in chunks.remainder() {
            self.write_u8(b);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// At most this many keyword positions are kept per body (32 bytes each). In a body with more
/// (8 MiB of `@`, a JSON-RPC log of 100,000 `0x` values) the detectors of the keywords past
/// the limit saturate: they run on every value, which costs time but never misses. The others
/// still wait for their keywords.
const MAX_KEYWORD_HITS: usize = 1 << 16;

/// A keyword occurrence: start, end, the detectors it triggers, and whether it is glued to a
/// word before it ([`glued`]).
pub(crate) type KeywordHit = (usize, usize, DetectorMask, bool);

/// Whether the keyword occurrence at `s` in `text` does not start a word: it starts with an
/// ASCII letter or digit and follows one. A context word there is none (`has_context_word`):
/// "iva" in "PRIVATE", "vat" in base64, so it triggers no support-gated detector.
fn glued(text: &[u8], s: usize) -> bool {
    s > 0 && text[s].is_ascii_alphanumeric() && text[s - 1].is_ascii_alphanumeric()
}

/// Keyword occurrences found by one prefilter pass over a whole body.
#[derive(Debug, Default)]
pub(crate) struct KeywordHits {
    /// Sorted by start.
    hits: Vec<KeywordHit>,
    /// The detectors of the keyword occurrences past [`MAX_KEYWORD_HITS`]: every text must
    /// run them.
    saturated: DetectorMask,
    /// The detectors a glued occurrence does not trigger (the support-gated ones).
    word_start: DetectorMask,
    /// Where the last [`KeywordHits::within`] stopped (the first hit at or past its end):
    /// the texts of a body are asked in order, so the next one's hits start there (checked,
    /// else searched for).
    cursor: Cell<usize>,
}

impl KeywordHits {
    /// No hits, in `buf` (emptied) for a later [`Detectors::keyword_hits_into`] to reuse.
    pub(crate) fn none_in(mut buf: Vec<KeywordHit>) -> KeywordHits {
        buf.clear();
        KeywordHits {
            hits: buf,
            saturated: DetectorMask::EMPTY,
            word_start: DetectorMask::EMPTY,
            cursor: Cell::new(0),
        }
    }

    /// The vector the hits were in, to reuse.
    pub(crate) fn into_buffer(self) -> Vec<KeywordHit> {
        self.hits
    }

    /// The detectors triggered by keywords lying wholly inside `start..end`.
    pub(crate) fn within(&self, start: usize, end: usize) -> DetectorMask {
        // The partition point of `start`, where the last call left it when it is that.
        let c = self.cursor.get();
        let first = if c <= self.hits.len()
            && (c == 0 || self.hits[c - 1].0 < start)
            && self.hits.get(c).is_none_or(|h| h.0 >= start)
        {
            c
        } else {
            self.hits.partition_point(|h| h.0 < start)
        };
        let mut past = first;
        let mut mask = self.saturated;
        for h in &self.hits[first..] {
            if h.0 >= end {
                break;
            }
            past += 1;
            if h.1 <= end {
                mask |= self.triggered(h.2, h.3);
            }
        }
        self.cursor.set(past);
        mask
    }

    /// What an occurrence owned by `owner` triggers, `glued` to a word before it or not.
    fn triggered(&self, owner: DetectorMask, glued: bool) -> DetectorMask {
        if glued {
            owner & !self.word_start
        } else {
            owner
        }
    }

    /// The detectors triggered by the keywords of a JSON string written with escapes, from
    /// the hits in its raw bytes `raw` (at `start..end` of the searched text): what a search
    /// of the decoded string finds, when no keyword holds a byte an escape writes
    /// ([`Detectors::keywords_survive_escapes`]: none of `raw`'s escapes writes a byte of a
    /// keyword).
    ///
    /// Then every keyword in the decoded string is made of bytes copied as they are, so it is
    /// in `raw` too, without a backslash inside, and the body's pass reported it (the pass
    /// reports every occurrence, overlapping ones too: the `ff` after the escape in `\fff`);
    /// and a hit in `raw` is in the decoded string
    /// unless it starts with the letter of an escape (`\name:` decodes to a newline and
    /// `ame:`). A backslash before a byte that does not make an escape stays a backslash and
    /// the byte is decoded on its own (`\hello` keeps its `hello`), as `json::decode_lossy`
    /// does. A hit glued in `raw` starts a word in the decoded string when the letter before
    /// it is an escape's (`\nvat` decodes to a newline and `vat`); one that is not glued in
    /// `raw` is not glued decoded (an escape writes a letter or digit only with `\u`).
    pub(crate) fn within_escaped(&self, start: usize, end: usize, raw: &[u8]) -> DetectorMask {
        let first = self.hits.partition_point(|h| h.0 < start);
        let mut mask = self.saturated;
        // Hits sorted by start: the backslashes before one start are counted once, so the
        // counting is linear in `raw` however many keywords start there.
        let mut last: Option<(usize, bool, bool)> = None;
        for &(s, e, owner, glued) in self.hits[first..].iter().take_while(|h| h.0 < end) {
            if e > end {
                continue;
            }
            let p = s - start;
            let odd_run_before =
                |i: usize| raw[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1;
            let (escaped, after_escape) = match last {
                Some((q, escaped, after)) if q == p => (escaped, after),
                _ => {
                    let escaped = raw
                        .get(p)
                        .is_some_and(|&b| b == b'u' || crate::json::escape_byte(b).is_some())
                        && odd_run_before(p);
                    // A glued hit after an escape: `p - 1` is an escape's letter after an odd
                    // run of backslashes (the hits at `p` are all glued or none; the run ends
                    // at `p - 2` and `raw[p - 1]` is a letter, so the runs of two positions do
                    // not overlap).
                    let after = glued
                        && p >= 2
                        && crate::json::escape_byte(raw[p - 1]).is_some()
                        && odd_run_before(p - 1);
                    last = Some((p, escaped, after));
                    (escaped, after)
                }
            };
            let glued = glued && !after_escape;
            if !escaped {
                mask |= self.triggered(owner, glued);
            }
        }
        mask
    }
}

/// The forms of a word that match it in any case. ASCII letters are folded where words are
/// compared (the keyword DFA, `has_context_word`), so the word is listed in ASCII lower case;
/// letters beyond ASCII are compared as written, so a word with such letters is also listed
/// in lower case, in upper case and with a capital first (`ΑΦΜ`, `αφμ`, `Αφμ`; `DIČ`, `dič`,
/// `Dič` is `dič` folded). Other mixes (`ΑφΜ`) are not matched.
fn case_variants(word: &str) -> Vec<String> {
    let mut forms = vec![word.to_ascii_lowercase()];
    if !word.is_ascii() {
        let lower = word.to_lowercase();
        let mut chars = lower.chars();
        let title: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        for form in [lower, word.to_uppercase(), title] {
            let form = form.to_ascii_lowercase();
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
    }
    forms
}

fn normalized(key: &str) -> Vec<u8> {
    let mut s = Vec::new();
    normalize_key(key, &mut s);
    s
}

fn compile_regex(pattern: &str, anchored: bool) -> Result<Matcher, String> {
    let p = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    Matcher::new(&p, matcher::Options::bytes(4 << 20, 8 << 20)).map_err(|e| match e {
        matcher::Error::TooBig(limit) => {
            format!("regex is too large (compiled size exceeds {limit} bytes)")
        }
        other => format!("invalid regex: {}", other.to_string().replace('\n', " ")),
    })
}

impl Detectors {
    /// Compiles the built-in pack plus the manifest's custom classes.
    /// Compiles the built-in pack and `custom` classes for a policy whose findings need at
    /// least `min_confidence`.
    pub(crate) fn compile(
        custom: &[ClassSpec],
        min_confidence: f32,
    ) -> Result<Detectors, PolicyError> {
        let pack = builtin_pack()?;
        let mut classes = ClassTable::default();
        let mut specs = Vec::with_capacity(pack.detector.len() + custom.len());
        for d in pack.detector {
            let loc = format!("<builtin pack>.detector[{}]", d.id);
            specs.push((loc, d));
        }
        for c in &pack_classes_sorted(&specs) {
            let Some(spec) = pack.class.iter().find(|p| &p.name == c) else {
                return Err(PolicyError::new(
                    "<builtin pack>",
                    format!("class `{c}` has no [[class]] entry"),
                ));
            };
            classes.intern(c, &spec.group);
        }
        for (i, c) in custom.iter().enumerate() {
            let loc = format!("classes[{i}]");
            if classes.id(&c.name).is_some() {
                return Err(PolicyError::new(
                    format!("{loc}.name"),
                    format!(
                        "class `{}` is already defined (built-in or earlier)",
                        c.name
                    ),
                ));
            }
            if !valid_class_name(&c.name) {
                return Err(PolicyError::new(
                    format!("{loc}.name"),
                    format!(
                        "`{}` is not a valid class name ([a-z][a-z0-9_]*, at most 64)",
                        c.name
                    ),
                ));
            }
            classes.intern(&c.name, CUSTOM_GROUP);
            specs.push((loc, custom_to_pack(c)?));
        }
        if specs.len() > MAX_DETECTORS {
            let builtin = specs.len() - custom.len();
            return Err(PolicyError::new(
                "classes",
                format!(
                    "too many custom classes ({}; at most {} beside the {builtin} built-in detectors)",
                    custom.len(),
                    MAX_DETECTORS - builtin
                ),
            ));
        }
        let mut list = Vec::with_capacity(specs.len());
        // Keywords, the detectors each triggers, and whether it matches in any ASCII case.
        let mut keyword_table: (Vec<String>, Vec<DetectorMask>, Vec<bool>) = Default::default();
        let mut hinted_keys: HashSet<Vec<u8>, FxBuild> = HashSet::default();
        let mut keyword_gated = DetectorMask::EMPTY;
        let mut support_gated = DetectorMask::EMPTY;
        // See `Detectors::word_first`.
        let mut word_first = vec![DetectorMask::ALL; 256];
        let mut word_start = DetectorMask::EMPTY;
        let mut support_hints: HashMap<Vec<u8>, DetectorMask, FxBuild> = HashMap::default();
        let mut pattern_detectors = DetectorMask::EMPTY;
        let mut value_hints: HashMap<Vec<u8>, DetectorMask, FxBuild> = HashMap::default();
        for (i, (loc, d)) in specs.into_iter().enumerate() {
            let bit = DetectorMask::bit(i);
            let class = classes.id(&d.class).unwrap_or_default();
            // Built-in patterns are compiled on first use (a test compiles every one of them):
            // most are keyword-gated and never run on a given service's traffic, and compiling
            // all of them would cost more than the 20 ms a policy compile may take. Custom
            // patterns are compiled here, so a bad one is rejected with its location.
            let builtin = !loc.starts_with("classes[");
            let regex = match d.pattern.as_deref() {
                None => PatternRegex::None,
                Some(p) if builtin => PatternRegex::lazy(p),
                Some(p) => {
                    let r = compile_regex(p, false)
                        .map_err(|m| PolicyError::new(format!("{loc}.pattern"), m))?;
                    if d.group >= r.groups() {
                        return Err(PolicyError::new(
                            format!("{loc}.group"),
                            format!("the pattern has no capture group {}", d.group),
                        ));
                    }
                    PatternRegex::Ready(r)
                }
            };
            if d.pattern.is_some() && d.finder.is_some() {
                return Err(PolicyError::new(
                    format!("{loc}.finder"),
                    "a detector has a pattern or a finder, not both",
                ));
            }
            if d.pattern.is_some() || d.finder.is_some() {
                pattern_detectors |= bit;
            }
            let value_regex = d
                .value_pattern
                .as_deref()
                .map(|p| compile_regex(p, true))
                .transpose()
                .map_err(|m| PolicyError::new(format!("{loc}.value_pattern"), m))?;
            if value_regex.is_some() {
                for h in &d.key_hints {
                    *value_hints.entry(normalized(h)).or_default() |= bit;
                }
            }
            hinted_keys.extend(d.key_hints.iter().map(|h| normalized(h)));
            // Parsed once for every analysis below (parsing was a third of a compile when each
            // analysis parsed the pattern again).
            let hir = d.pattern.as_deref().and_then(parse_hir);
            let hir = hir.as_ref();
            if d.pattern.is_some() && !d.keywords.is_empty() {
                keyword_gated |= bit;
                let any_case = d.keywords_any_case;
                // `accept`'s boundary at the value's start, when the value is the match.
                let bounded = d.group == 0 && d.boundary != Boundary::None;
                if hir
                    .is_some_and(|h| keyword_starts_every_match(h, &d.keywords, any_case, bounded))
                {
                    word_start |= bit;
                }
                let listed: Vec<String> = if any_case {
                    d.keywords.iter().flat_map(|k| case_variants(k)).collect()
                } else {
                    d.keywords.clone()
                };
                for k in listed {
                    add_keyword(&mut keyword_table, k, any_case, bit);
                }
            }
            if d.pattern.is_some() && d.keywords.is_empty() && d.confidence < min_confidence {
                support_gated |= bit;
                word_start |= bit;
                for k in d.context.iter().flat_map(|w| case_variants(w)) {
                    // Lower-cased as `accept` compares context words; matched in any ASCII
                    // case, as there (see `case_variants` for the other letters).
                    add_keyword(&mut keyword_table, k, true, bit);
                }
                for h in &d.key_hints {
                    *support_hints.entry(normalized(h)).or_default() |= bit;
                }
            }
            let numeric_min_len = hir.and_then(numeric_min_len);
            let min_len = pattern_min_len(hir);
            let word_len = match (numeric_min_len, d.boundary, hir) {
                (None, Boundary::Word | Boundary::Token, Some(h)) => word_len_range(h),
                _ => None,
            };
            if let Some(first) = hir.filter(|_| word_len.is_some()).and_then(first_bytes) {
                for (b, entry) in word_first.iter_mut().enumerate() {
                    if !first[b] {
                        entry.remove(i);
                    }
                }
            }
            let span_min_digits = match (numeric_min_len, hir) {
                (Some(_), Some(h)) => pattern_min_digits(h)
                    .max(d.match_digits.map_or(0, |[lo, _]| lo))
                    .max(d.validator.map_or(0, validate::min_digits)),
                _ => 0,
            };
            // Searchers built once here: a one-shot `memmem::find` builds one per call.
            let finders = |list: Vec<Vec<u8>>| {
                list.iter()
                    .map(|l| memchr::memmem::Finder::new(l).into_owned())
                    .collect::<Vec<_>>()
            };
            let span_prefixes = match (numeric_min_len, hir) {
                (Some(_), Some(h)) => finders(selective_prefixes(h)),
                _ => Vec::new(),
            };
            // A detector without keywords waits for a literal its pattern requires (`0x`, `2A`):
            // found as a keyword of its own, in the same pass over the body as the listed ones
            // (a `memmem` per text and detector cost ~2% of the corpus), unless it is
            // support-gated (its keyword bit stands for a context word there) or a literal is
            // not UTF-8.
            let required = match hir {
                Some(h) if d.keywords.is_empty() => required_infixes(h),
                _ => Vec::new(),
            };
            let as_keywords: Option<Vec<String>> = required
                .iter()
                .map(|l| String::from_utf8(l.clone()).ok())
                .collect();
            let infixes = match as_keywords {
                Some(list) if !list.is_empty() && !support_gated.has(i) => {
                    keyword_gated |= bit;
                    for k in list {
                        add_keyword(&mut keyword_table, k, false, bit);
                    }
                    Vec::new()
                }
                _ => finders(required),
            };
            let dfa = match d.pattern.as_deref() {
                Some(p) if builtin && d.keywords.is_empty() => DfaSlot::lazy(p),
                _ => DfaSlot::default(),
            };
            list.push(Detector {
                id: Arc::from(d.id.as_str()),
                class,
                regex,
                numeric_min_len,
                min_len,
                word_len,
                span_prefixes,
                infixes,
                span_min_digits,
                dfa,
                group: d.group,
                min_digits: d.min_digits,
                validator: d.validator,
                boundary: d.boundary,
                confidence: d.confidence,
                hint_boost: d.hint_boost.unwrap_or(0.1),
                context_boost: d.context_boost.unwrap_or(0.1),
                key_hints: d.key_hints.iter().map(|h| normalized(h)).collect(),
                negative_key_hints: d.negative_key_hints.iter().map(|h| normalized(h)).collect(),
                context: d
                    .context
                    .iter()
                    .flat_map(|w| case_variants(w))
                    .map(String::into_bytes)
                    .collect(),
                value_regex,
                parent_hints: d
                    .parent_hints
                    .iter()
                    .map(|h| {
                        if h == "$root" {
                            h.clone().into_bytes()
                        } else {
                            normalized(h)
                        }
                    })
                    .collect(),
                allow: d
                    .allow
                    .iter()
                    .map(|a| a.to_lowercase().into_bytes())
                    .collect(),
                allow_longest: d
                    .allow
                    .iter()
                    .map(|a| a.to_lowercase().len())
                    .max()
                    .unwrap_or(0),
                negative_context: d
                    .negative_context
                    .iter()
                    .map(|w| w.to_lowercase().into_bytes())
                    .collect(),
                joiners: d
                    .joiners
                    .map_or_else(|| b"-._".to_vec(), String::into_bytes),
                match_digits: d.match_digits.unwrap_or([0, usize::MAX]),
                shrink: d.shrink,
                min_run: d.min_run,
                gate: d.gate,
                finder: d.finder,
                hand: Hand::of(d.pattern.as_deref()).filter(|_| d.group == 0),
                glued_suffix: d.glued_suffix.into_iter().map(String::into_bytes).collect(),
                not_after_number: d.not_after_number,
                context_window: d.context_window.unwrap_or(48),
            });
        }
        // The built-in detectors come first in `list`; custom ones after.
        let builtin_count = list.len() - custom.len();
        let absorbable = DetectorMask::first(builtin_count);
        let (keywords, keyword_owner, keyword_any_case) = keyword_table;
        let keyword_escapes = json_escapes_writing(&keywords);
        let keyword_list = (keywords, keyword_owner, keyword_any_case, absorbable);
        let keywords = KeywordSearch::build(
            &keyword_list.0,
            &keyword_list.1,
            &keyword_list.2,
            absorbable,
            word_start,
        )
        .map_err(|m| PolicyError::new("classes", m))?;
        let mut key_masks: HashMap<Vec<u8>, KeyMasks, FxBuild> = HashMap::default();
        for (k, m) in value_hints {
            key_masks.entry(k).or_default().value |= m;
        }
        for (k, m) in support_hints {
            key_masks.entry(k).or_default().support |= m;
        }
        for (i, d) in list.iter().enumerate() {
            for k in &d.key_hints {
                key_masks.entry(k.clone()).or_default().hint.insert(i);
            }
            for k in &d.negative_key_hints {
                key_masks.entry(k.clone()).or_default().negative.insert(i);
            }
        }
        let longest_hint = key_masks.keys().map(Vec::len).max().unwrap_or(0);
        let digit_free = list
            .iter()
            .enumerate()
            .filter(|(_, d)| d.min_digits == 0 && d.min_run == 0)
            .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i));
        let numeric = list
            .iter()
            .enumerate()
            .filter(|(_, d)| d.numeric_min_len.is_some())
            .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i));
        let need_digits = need_table(&list, |d| d.min_digits.max(d.min_run));
        let need_run = need_table(&list, |d| d.min_run);
        let need_len = need_table(&list, |d| d.min_len);
        let need_span_len = need_table(&list, |d| d.numeric_min_len.unwrap_or(0));
        let need_span_digits = need_table(&list, |d| {
            if d.numeric_min_len.is_some() {
                d.span_min_digits
            } else {
                0
            }
        });
        let span_least = list
            .iter()
            .filter_map(|d| Some((d.numeric_min_len?, d.span_min_digits)))
            .fold((usize::MAX, usize::MAX), |(l, g), (len, digits)| {
                (l.min(len), g.min(digits))
            });
        let gated = list
            .iter()
            .enumerate()
            .filter(|(_, d)| d.gate.is_some())
            .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i));
        let infixed = list
            .iter()
            .enumerate()
            .filter(|(_, d)| !d.infixes.is_empty())
            .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i));
        let (wordy, word_fit) = word_fit_table(&list);
        Ok(Detectors {
            wordy,
            word_fit,
            word_first,
            need_len,
            need_digits,
            need_run,
            need_span_len,
            need_span_digits,
            span_least,
            gated,
            infixed,
            shapes: span_shape::ShapeCache::default(),
            numeric,
            list,
            classes,
            keywords,
            keyword_list,
            restricted: Vec::new(),
            keyword_gated,
            keyword_escapes,
            support_gated,
            word_start,
            pattern_detectors,
            key_masks,
            longest_hint,
            hinted_keys,
            digit_free,
        })
    }

    /// Builds a keyword search for each distinct set of keyword-gated detectors the routes
    /// enable, when it holds at most three quarters of the keywords: the pass over a body then
    /// walks a smaller automaton that stays in the cache (measured, session 11). Each is built
    /// at compile time (~1 ms); at most eight, and no more once they hold 4 MiB (the whole
    /// pack's table is ~1 MB).
    pub(crate) fn restrict_keywords(&mut self, enabled: &[DetectorMask]) -> Result<(), String> {
        const MAX_RESTRICTED: usize = 8;
        const MAX_BYTES: usize = 4 << 20;
        let gated = self.keyword_gated | self.support_gated;
        let (words, owners, any_case, absorbable) = &self.keyword_list;
        for &mask in enabled {
            let mask = mask & gated;
            let held: usize = self.restricted.iter().map(|(_, k)| k.memory_usage()).sum();
            if self.restricted.len() == MAX_RESTRICTED
                || held >= MAX_BYTES
                || mask.is_empty()
                || self.restricted.iter().any(|(m, _)| *m == mask)
            {
                continue;
            }
            let keep: Vec<usize> = (0..words.len())
                .filter(|&i| owners[i].meets(mask))
                .collect();
            if keep.len() * 4 > words.len() * 3 {
                continue;
            }
            let search = KeywordSearch::build(
                &keep.iter().map(|&i| words[i].clone()).collect::<Vec<_>>(),
                &keep.iter().map(|&i| owners[i] & mask).collect::<Vec<_>>(),
                &keep.iter().map(|&i| any_case[i]).collect::<Vec<_>>(),
                *absorbable,
                self.word_start,
            )?;
            self.restricted.push((mask, search));
        }
        Ok(())
    }

    /// The keyword search for a route enabling `enabled`.
    fn keywords_for(&self, enabled: DetectorMask) -> &KeywordSearch {
        let mask = enabled & (self.keyword_gated | self.support_gated);
        self.restricted
            .iter()
            .find(|(m, _)| *m == mask)
            .map_or(&self.keywords, |(_, s)| s)
    }

    /// Builds every lazily built DFA, and the regexes that searches use. A detector whose
    /// searches never reach its regex ([`Detector::searches_skip_the_regex`]) does not build
    /// it, with its NFAs and engines (53 of the built-in 137;
    /// `prepare_builds_the_regexes_searches_use`).
    pub(crate) fn prepare(&self) {
        for d in &self.list {
            let _ = d.dfa.get();
            if !d.searches_skip_the_regex() {
                let _ = d.regex.get();
            }
        }
    }

    /// Of the numeric detectors in `needed`, those that may match in `text[start..end]` by its
    /// shape: all of them when the shape is not known and cannot be memoised (see
    /// [`span_shape`]).
    fn span_may_match(
        &self,
        text: &[u8],
        start: usize,
        end: usize,
        needed: DetectorMask,
    ) -> DetectorMask {
        let Some(key) = span_shape::shape_key(text, start, end) else {
            return needed;
        };
        self.shapes.may_match(&key, needed, |i, steps| {
            match self.list.get(i).and_then(|d| d.dfa.get()) {
                Some(dfa) => span_shape::may_match(dfa.forward(), &key, steps),
                None => Some(true),
            }
        })
    }

    /// Whether a normalized key is a hint for some detector (`dob`, `email`, `password`, ...).
    pub(crate) fn is_hinted_key(&self, key: &[u8]) -> bool {
        key.len() <= 64 && self.hinted_keys.contains(key)
    }

    /// Every detector.
    pub(crate) fn all(&self) -> DetectorMask {
        DetectorMask::first(self.list.len())
    }

    /// The detectors of the given classes.
    pub(crate) fn for_classes(&self, classes: &HashSet<ClassId>) -> DetectorMask {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, d)| classes.contains(&d.class))
            .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(i))
    }

    /// One prefilter pass over a whole body: where the keywords of the `enabled` detectors are.
    pub(crate) fn keyword_hits(&self, body: &[u8], enabled: DetectorMask) -> KeywordHits {
        self.keyword_hits_into(body, enabled, Vec::new())
    }

    /// [`Detectors::keyword_hits`] into `hits` (emptied first), a buffer to reuse.
    pub(crate) fn keyword_hits_into(
        &self,
        body: &[u8],
        enabled: DetectorMask,
        mut hits: Vec<KeywordHit>,
    ) -> KeywordHits {
        hits.clear();
        let mut saturated = DetectorMask::EMPTY;
        let gated = self.keyword_gated | self.support_gated;
        if enabled.meets(gated) {
            let wanted = enabled & gated;
            self.keywords_for(enabled)
                .for_each(body, wanted, |s, e, owner| {
                    if owner.meets(enabled) {
                        if hits.len() == MAX_KEYWORD_HITS {
                            saturated |= owner & enabled;
                            // Once every detector wanted is saturated, the rest of the
                            // pass cannot add one.
                            return (wanted & !saturated).any();
                        }
                        hits.push((s, e, owner & enabled, glued(body, s)));
                    }
                    true
                });
        }
        hits.sort_unstable_by_key(|h| h.0);
        KeywordHits {
            hits,
            saturated,
            word_start: self.word_start,
            cursor: Cell::new(0),
        }
    }

    /// Whether the keywords of the JSON string written `raw` (with escapes) are those of its
    /// raw bytes, less the ones [`KeywordHits::within_escaped`] drops: no escape in it may
    /// write a byte of a keyword.
    pub(crate) fn keywords_survive_escapes(&self, raw: &[u8]) -> bool {
        self.keyword_escapes.as_ref().is_some_and(|escapes| {
            !escapes
                .iter()
                .any(|e| memchr::memmem::find(raw, e).is_some())
        })
    }

    /// The keyword-gated detectors triggered in `text` (a prefilter pass over it alone).
    pub(crate) fn keyword_mask(&self, text: &[u8], enabled: DetectorMask) -> DetectorMask {
        let wanted = enabled & (self.keyword_gated | self.support_gated);
        let mut triggered = DetectorMask::EMPTY;
        if wanted.any() {
            self.keywords_for(enabled)
                .for_each(text, wanted, |s, _, owner| {
                    triggered |= if glued(text, s) {
                        owner & !self.word_start
                    } else {
                        owner
                    };
                    triggered & wanted != wanted
                });
        }
        triggered
    }

    /// Scans `text`, appending hits of the detectors `want` asks for to `out`.
    pub(crate) fn scan(
        &self,
        text: &[u8],
        ctx: KeyCtx<'_>,
        want: Wanted,
        scratch: &mut Scratch,
        out: &mut Vec<Hit>,
    ) {
        let Wanted {
            enabled,
            keywords,
            min_confidence,
        } = want;
        if text.is_empty() {
            return;
        }
        let km = ctx
            .key
            .filter(|k| k.len() <= self.longest_hint)
            .and_then(|k| self.key_masks.get(k))
            .copied()
            .unwrap_or_default();
        let m = km.value & enabled;
        if m.any() {
            self.scan_value(text, ctx, m, min_confidence, out);
        }
        let candidates = enabled & self.pattern_detectors;
        if candidates.is_empty() {
            return;
        }
        let triggered = match keywords {
            Some(k) => k,
            None => self.keyword_mask(text, candidates),
        };
        // Whole groups first: keyword-gated detectors without their keyword, digit-gated ones
        // in a text without digits.
        let Scratch {
            spans: span_buf,
            words: word_buf,
            blocks,
            hold,
        } = scratch;
        let mut m = candidates
            & !(self.keyword_gated & !triggered)
            & !needing_more(&self.need_len, text.len());
        if m.meets(self.support_gated) {
            m &= !(self.support_gated & !(triggered | km.support));
        }
        // Nothing left (a narrow policy's keyword-gated detectors, a short text): the text's
        // byte classes are not worked out.
        if m.is_empty() {
            return;
        }
        let shape = Shape::new(text, blocks);
        if shape.digits == 0 {
            m &= self.digit_free;
        }
        // Cheapest first: digit count, then structural gates, then the digit-run scan.
        m &= !needing_more(&self.need_digits, shape.digits);
        let gates = m & self.gated;
        for i in gates.ones_if_any() {
            if let Some(g) = self.list[i].gate {
                if !shape.passes(text, g) {
                    m.remove(i);
                }
            }
        }
        let infixed = m & self.infixed;
        for i in infixed.ones_if_any() {
            let holds = |l: &memchr::memmem::Finder| l.find(text).is_some();
            if !self.list[i].infixes.iter().any(holds) {
                m.remove(i);
            }
        }
        // Whether `span_buf` holds every numeric span of the text, found by `max_run`.
        let mut walked = false;
        if m.meets(self.need_run[0]) {
            let (run, kept) = shape.max_run_keeping(text, span_buf, *hold);
            m &= !needing_more(&self.need_run, run);
            walked = kept;
        }
        let mut passed = m;
        // The numeric spans, found once for every numeric detector (a text with more than
        // fit here has each detector find them as it goes, holding nothing). Found only for
        // a text that has numeric detectors left.
        let spans = if passed.meets(self.numeric) {
            let mut held = if walked {
                Some(span_buf.as_mut_slice())
            } else {
                held_numeric_spans(text, shape.blocks, span_buf, *hold)
            };
            if let Some(held) = held.as_deref_mut() {
                // A numeric detector without a span long enough, with digits enough, and of
                // a shape it can match, has nothing to search.
                let mut fit = DetectorMask::EMPTY;
                let (least_len, least_digits) = self.span_least;
                for sp in held.iter_mut() {
                    let (start, end) = (sp.start as usize, sp.end as usize);
                    if end - start < least_len || (sp.digits as usize) < least_digits {
                        sp.may = DetectorMask::EMPTY;
                        continue;
                    }
                    let sized = passed
                        & self.numeric
                        & !(needing_more(&self.need_span_len, end - start)
                            | needing_more(&self.need_span_digits, sp.digits as usize));
                    sp.may = if sized.is_empty() {
                        DetectorMask::EMPTY
                    } else {
                        self.span_may_match(text, start, end, sized)
                    };
                    fit |= sp.may;
                }
                passed &= !self.numeric | fit;
            }
            held.map(|h| &*h)
        } else {
            None
        };
        // The alphanumeric words the word-bounded detectors can match (see `word_len`).
        let words = if passed.meets(self.wordy) {
            let wanted = passed & self.wordy;
            let held = held_words(
                text,
                shape.blocks,
                (&self.word_fit, &self.word_first),
                wanted,
                self.shortest_word(wanted),
                word_buf,
                *hold,
            );
            if let Some(held) = held {
                let fit = held.iter().fold(DetectorMask::EMPTY, |m, w| m | w.fit);
                passed &= !self.wordy | fit;
            }
            held
        } else {
            None
        };
        let m = passed;
        for i in m.ones() {
            let d = &self.list[i];
            #[cfg(feature = "profile")]
            let (started, before) = (profile::start(), out.len());
            self.run_pattern(i, d, text, spans, words, &km, min_confidence, out);
            #[cfg(feature = "profile")]
            profile::record(i, started, out.len() - before);
        }
    }

    /// The shortest word a word-bounded detector of `wanted` matches (the others have no
    /// `word_len`): the first length `word_fit` holds one of them at (from the detectors
    /// wanted, a few, rather than a search of the table by length, 1% of the corpus's
    /// instructions).
    fn shortest_word(&self, wanted: DetectorMask) -> Option<usize> {
        wanted
            .ones()
            .filter_map(|i| self.list[i].word_len)
            .map(|(least, _)| least)
            .min()
    }

    #[allow(clippy::too_many_arguments)]
    fn run_pattern(
        &self,
        index: usize,
        d: &Detector,
        text: &[u8],
        spans: Option<&[NumericSpan]>,
        words: Option<&[WordRun]>,
        km: &KeyMasks,
        min_confidence: f32,
        out: &mut Vec<Hit>,
    ) {
        if let Some(finder) = d.finder {
            self.run_finder(index, d, finder, text, km, min_confidence, out);
            return;
        }
        if d.regex.is_none() {
            return;
        }
        // A word-bounded detector searches only the words of its length (all of them held).
        let words = words.filter(|_| d.word_len.is_some());
        let min_len = d
            .numeric_min_len
            .or(words.and(d.word_len.map(|w| w.0)))
            .unwrap_or(1);
        // The leftmost match at or after `at`, searched in `text[..end]` (the bytes past `end`
        // can only matter to a pattern that looks around, which numeric ones do not).
        let search = |at: usize, end: usize| {
            let hay = &text[..end];
            if let Some(hand) = d.hand {
                return hand.find(hay, at).map(|(s, e)| (s, e, s, e));
            }
            if let Some(dfa) = d.dfa.get() {
                let input = regex_automata::Input::new(hay).range(at..);
                match (dfa, d.group) {
                    // The match itself, from the DFAs (the regex would search again), in one
                    // forward search: a check for any match first scanned the text up to a
                    // match twice, and without one costs what this search costs.
                    (SmallDfa::Regex(dre), 0) => {
                        if let Ok(found) = dre.try_search(&input) {
                            return found.map(|m| (m.start(), m.end(), m.start(), m.end()));
                        }
                    }
                    _ => {
                        if let Ok(None) = dfa.forward().try_search_fwd(&input.earliest(true)) {
                            return None;
                        }
                    }
                }
            }
            // Built here, on first use, when the DFAs do not find the match
            // (`searches_skip_the_regex`; `prepare` has built it then).
            let re = d.regex.get()?;
            if d.group > 0 {
                return re
                    .captures_at(hay, at, d.group)
                    .map(|((ms, me), g)| match g {
                        Some((s, e)) => (ms, me, s, e),
                        None => (ms, me, me, me),
                    });
            }
            re.find_at(hay, at).map(|(s, e)| (s, e, s, e))
        };
        // For a numeric pattern: the span being searched, and where the next one is looked for.
        let numeric = d.numeric_min_len.is_some() || words.is_some();
        let mut span: Option<(usize, usize)> = None;
        let mut next_from = 0;
        let mut next_held = 0;
        // The next span long enough and with digits enough for this detector.
        let mut next_span = |next_from: &mut usize| -> Option<(usize, usize)> {
            let fits = |s: usize, e: usize, digits: usize| {
                e - s >= min_len
                    && digits >= d.span_min_digits
                    && (d.span_prefixes.is_empty()
                        || d.span_prefixes
                            .iter()
                            .any(|p| p.find(&text[s..e]).is_some()))
            };
            // The held words and spans are searched by `position` over the rest of the slice:
            // a tight loop (most are not this detector's), where stepping an index kept
            // across calls cost ~16 instructions a span (1% of the corpus's).
            if let Some(held) = words {
                let rest = held.get(next_held..).unwrap_or_default();
                let Some(k) = rest.iter().position(|w| w.fit.has(index)) else {
                    next_held = held.len();
                    return None;
                };
                next_held += k + 1;
                return Some((rest[k].start as usize, rest[k].end as usize));
            }
            match spans {
                Some(held) => {
                    let rest = held.get(next_held..).unwrap_or_default();
                    let k = rest.iter().position(|sp| {
                        sp.may.has(index)
                            && fits(sp.start as usize, sp.end as usize, sp.digits as usize)
                    });
                    let Some(k) = k else {
                        next_held = held.len();
                        return None;
                    };
                    next_held += k + 1;
                    Some((rest[k].start as usize, rest[k].end as usize))
                }
                None => {
                    while let Some((s, e)) = next_numeric_span(text, *next_from) {
                        *next_from = e;
                        if fits(s, e, count_digits(&text[s..e])) {
                            return Some((s, e));
                        }
                    }
                    None
                }
            }
        };
        let mut pos = 0;
        // Retrying after a rejected candidate rescans the text the candidate covered. Bounded,
        // so a hostile text of overlapping near-misses stays linear; past the budget a
        // rejected candidate is skipped whole.
        let mut retry_budget = 4 * text.len() + 4096;
        while pos <= text.len() {
            let found = if !numeric {
                search(pos, text.len())
            } else {
                // Every match lies inside one numeric span: search them in order.
                let mut found = None;
                loop {
                    let (s, e) = match span {
                        Some(current) => current,
                        None => match next_span(&mut next_from) {
                            Some(next) => {
                                span = Some(next);
                                next
                            }
                            None => break,
                        },
                    };
                    let at = s.max(pos);
                    // After a rejected candidate, the rest of the span must still hold the
                    // digits an accepted match needs (most retries are inside dates). Counted
                    // in short spans only, so a retry costs a bounded count.
                    if e >= at + min_len
                        && (at == s
                            || d.span_min_digits == 0
                            || e - at > 64
                            || count_digits(&text[at..e]) >= d.span_min_digits)
                    {
                        found = search(at, e);
                        if found.is_some() {
                            break;
                        }
                    }
                    span = None;
                }
                found
            };
            let Some((mstart, mend, vstart, vend)) = found else {
                break;
            };
            let mut accepted = if vend > vstart {
                self.accept(index, d, text, vstart, vend, km)
            } else {
                None
            };
            let mut vend = vend;
            let mut mend = mend;
            if accepted.is_none() && d.shrink {
                // A greedy match may run into the next token ("DE89 ... 00 ES91 ..."): try the
                // longest prefix that ends at a separator and validates.
                let seps = (vstart + 1..vend)
                    .rev()
                    .filter(|&p| matches!(text[p], b' ' | b'-'));
                for p in seps {
                    if let Some(c) = self.accept(index, d, text, vstart, p, km) {
                        accepted = Some(c);
                        vend = p;
                        mend = p;
                        break;
                    }
                }
            }
            match accepted {
                Some(confidence) if confidence >= min_confidence => {
                    out.push(Hit {
                        detector: index as u16,
                        class: d.class,
                        start: vstart,
                        end: vend,
                        confidence,
                    });
                    pos = if mend > mstart { mend } else { mend + 1 };
                }
                // A rejected candidate may hide a real one starting inside it (e.g. a card
                // number after an order number): retry from the next token.
                _ => {
                    let next = next_token_start(text, mstart);
                    let rescan = mend.saturating_sub(next);
                    if rescan <= retry_budget {
                        retry_budget -= rescan;
                        pos = next;
                    } else {
                        pos = next.max(mend);
                    }
                }
            }
        }
    }

    /// A detector whose candidates come from code: each candidate span is checked like a match.
    #[allow(clippy::too_many_arguments)]
    fn run_finder(
        &self,
        index: usize,
        d: &Detector,
        finder: Finder,
        text: &[u8],
        km: &KeyMasks,
        min_confidence: f32,
        out: &mut Vec<Hit>,
    ) {
        match finder {
            Finder::NamePairs => {
                let given_surname_only = d.validator == Some(Validator::GivenSurname);
                names::name_candidates(text, given_surname_only, |s, e, run_start, run_end| {
                    match self.accept(index, d, text, s, e, km) {
                        Some(confidence) if confidence >= min_confidence => {
                            out.push(Hit {
                                detector: index as u16,
                                class: d.class,
                                start: run_start,
                                end: run_end,
                                confidence,
                            });
                            true
                        }
                        _ => false,
                    }
                })
            }
        }
    }

    /// Checks a candidate match; returns its confidence when it is a finding.
    fn accept(
        &self,
        index: usize,
        d: &Detector,
        text: &[u8],
        s: usize,
        e: usize,
        km: &KeyMasks,
    ) -> Option<f32> {
        if !boundary_ok(text, s, e, d.boundary, &d.joiners) {
            return None;
        }
        if d.not_after_number
            && s >= 2
            && matches!(text[s - 1], b' ' | b'-' | b'.' | b'/')
            && text[s - 2].is_ascii_digit()
        {
            return None;
        }
        let value = &text[s..e];
        if d.glued_suffix.iter().any(|g| {
            text[e..].starts_with(g)
                && text.get(e + g.len()).is_some_and(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'/' | b'.' | b'-')
                })
        }) {
            return None;
        }
        if d.match_digits != [0, usize::MAX] {
            let n = count_digits(value);
            if n < d.match_digits[0] || n > d.match_digits[1] {
                return None;
            }
        }
        if let Some(v) = d.validator {
            if !validate::check_at(v, text, s, e) {
                return None;
            }
        }
        if d.allows(value) {
            return None;
        }
        let mut confidence = d.confidence;
        if km.hint.has(index) {
            confidence += d.hint_boost;
        }
        if km.negative.has(index) {
            confidence -= 0.5;
        }
        if !d.context.is_empty() {
            let from = s.saturating_sub(d.context_window);
            if d.context.iter().any(|w| has_context_word(text, from, s, w)) {
                confidence += d.context_boost;
            }
        }
        if !d.negative_context.is_empty() {
            let window = &text[s.saturating_sub(24)..s];
            if d.negative_context
                .iter()
                .any(|w| contains_ignore_case(window, w))
            {
                confidence -= 0.5;
            }
        }
        Some(confidence.min(1.0))
    }

    /// Value detectors: the whole (trimmed) value of a hinted key.
    fn scan_value(
        &self,
        text: &[u8],
        ctx: KeyCtx<'_>,
        mask: DetectorMask,
        min_confidence: f32,
        out: &mut Vec<Hit>,
    ) {
        let start = text
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(text.len());
        let end = text
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(start, |p| p + 1);
        if start >= end {
            return;
        }
        let value = &text[start..end];
        for i in mask.ones() {
            let d = &self.list[i];
            if !d.parent_hints.is_empty()
                && !d.parent_hints.contains(ctx.parent.unwrap_or(b"$root"))
            {
                continue;
            }
            let Some(re) = &d.value_regex else { continue };
            if !re.is_match(value) {
                continue;
            }
            if let Some(v) = d.validator {
                if !validate::check(v, value) {
                    continue;
                }
            }
            if d.allows(value) {
                continue;
            }
            if d.confidence >= min_confidence {
                out.push(Hit {
                    detector: i as u16,
                    class: d.class,
                    start,
                    end,
                    confidence: d.confidence,
                });
            }
        }
    }
}

impl Detector {
    /// Whether `value`, in ASCII lower case, is one of the `allow` values. A value of up to 64
    /// bytes is lower-cased on the stack; one longer than every allowed value is not looked up.
    fn allows(&self, value: &[u8]) -> bool {
        allowed(&self.allow, self.allow_longest, value)
    }

    /// Whether the searches of this detector never reach its regex: its pattern is searched by
    /// code written for it ([`Hand`]), or its pattern has forward and reverse DFAs ([`SmallDfa::Regex`]),
    /// which find the leftmost-first match the regex would, and the detector reports the whole
    /// match (no capture group). The regex is then built only if a DFA search fails, which
    /// these DFAs (no quit bytes, no Unicode word boundary) do not.
    fn searches_skip_the_regex(&self) -> bool {
        self.hand.is_some()
            || (self.group == 0 && matches!(self.dfa.get(), Some(SmallDfa::Regex(_))))
    }
}

/// A built-in pattern searched by code written for it: the leftmost-first match its regex
/// finds (each module's tests compare the two), without the regex's engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hand {
    /// [`email::PATTERN`]: from each `@` out.
    Email,
    /// [`jwt::PATTERN`]: one pass over each token.
    Jwt,
    /// [`pem::PATTERN`]: a PEM block's header, its footer, one UTF-8 check between.
    Pem,
}

impl Hand {
    /// The search written for `pattern`, if there is one.
    fn of(pattern: Option<&str>) -> Option<Hand> {
        match pattern? {
            email::PATTERN => Some(Hand::Email),
            jwt::PATTERN => Some(Hand::Jwt),
            pem::PATTERN => Some(Hand::Pem),
            _ => None,
        }
    }

    fn find(self, hay: &[u8], at: usize) -> Option<(usize, usize)> {
        match self {
            Hand::Email => email::find(hay, at),
            Hand::Jwt => jwt::find(hay, at),
            Hand::Pem => pem::find(hay, at),
        }
    }
}

/// A detector's regex: compiled (custom classes), or compiled on first use (built-in).
#[derive(Debug)]
enum PatternRegex {
    None,
    Ready(Matcher),
    Lazy(Box<(String, OnceLock<Option<Matcher>>)>),
}

impl PatternRegex {
    fn lazy(pattern: &str) -> PatternRegex {
        PatternRegex::Lazy(Box::new((pattern.to_string(), OnceLock::new())))
    }

    fn is_none(&self) -> bool {
        matches!(self, PatternRegex::None)
    }

    fn get(&self) -> Option<&Matcher> {
        match self {
            PatternRegex::None => None,
            PatternRegex::Ready(r) => Some(r),
            PatternRegex::Lazy(b) => b.1.get_or_init(|| compile_regex(&b.0, false).ok()).as_ref(),
        }
    }
}

/// A detector's DFAs, read on first use from the bytes `build.rs` determinised.
#[derive(Debug, Default)]
struct DfaSlot(Option<Box<(String, OnceLock<Option<SmallDfa>>)>>);

/// Dense DFAs of a detector's pattern: the forward one answers "is there any match at or after
/// here?" several times faster than the regex does (most searches of these detectors find
/// nothing); with the reverse one as well (a [`DfaRegex`]) it also finds the leftmost-first
/// match the regex would, without the regex's own search.
#[derive(Debug)]
enum SmallDfa {
    Forward(Box<DenseDfa>),
    Regex(Box<DfaRegex>),
}

type DfaRegex = regex_automata::dfa::regex::Regex<DenseDfa>;

impl SmallDfa {
    fn forward(&self) -> &DenseDfa {
        match self {
            SmallDfa::Forward(f) => f,
            SmallDfa::Regex(r) => r.forward(),
        }
    }
}

impl DfaSlot {
    fn lazy(pattern: &str) -> DfaSlot {
        DfaSlot(Some(Box::new((pattern.to_string(), OnceLock::new()))))
    }

    fn get(&self) -> Option<&SmallDfa> {
        let (pattern, cell) = &**self.0.as_ref()?;
        cell.get_or_init(|| builtin_dfa(pattern)).as_ref()
    }
}

/// Where a DFA's bytes are in [`builtin_dfa_bytes`].
type Span = (usize, usize);

// `BUILTIN_DFAS_LEN` and `BUILTIN_DFA_INDEX`, written by `build.rs`.
include!(concat!(env!("OUT_DIR"), "/builtin_dfas.rs"));

/// Every built-in DFA, deflated (`build.rs`).
static BUILTIN_DFAS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/builtin_dfas.bin"));

/// The built-in DFAs' bytes, inflated once per process (per VM in Envoy) at an address a DFA
/// can be read at (a multiple of 8). `None` if they do not inflate, which a test rules out.
fn builtin_dfa_bytes() -> Option<&'static [u8]> {
    use std::io::Read;
    static BYTES: OnceLock<Option<(Vec<u8>, usize)>> = OnceLock::new();
    let (buf, at) = BYTES
        .get_or_init(|| {
            let mut buf = vec![0u8; BUILTIN_DFAS_LEN + 7];
            let at = buf.as_ptr().align_offset(8);
            let mut z = flate2::bufread::ZlibDecoder::new(BUILTIN_DFAS);
            z.read_exact(buf.get_mut(at..at + BUILTIN_DFAS_LEN)?).ok()?;
            Some((buf, at))
        })
        .as_ref()?;
    buf.get(*at..*at + BUILTIN_DFAS_LEN)
}

/// The dense DFAs `build.rs` determinised for a built-in `pattern` without keywords, with the
/// regex crate's syntax (Unicode on, matching bytes), when they are small: their language is
/// the regex's, so "no match" from them is "no match" from the regex, and (leftmost-first,
/// like the regex) the match they find is the regex's. `None` for a pattern it has none of,
/// and if the bytes do not read back (another `regex-automata`: a test rules it out).
fn builtin_dfa(pattern: &str) -> Option<SmallDfa> {
    use regex_automata::dfa::dense::DFA;
    let (_, entry) = BUILTIN_DFA_INDEX.iter().find(|(p, _)| *p == pattern)?;
    let ((fs, fe), rev) = (*entry)?;
    let bytes = builtin_dfa_bytes()?;
    let read = |s: usize, e: usize| Some(DFA::from_bytes(bytes.get(s..e)?).ok()?.0);
    let forward = read(fs, fe)?;
    Some(match rev {
        Some((rs, re)) => SmallDfa::Regex(Box::new(
            DfaRegex::builder().build_from_dfas(forward, read(rs, re)?),
        )),
        None => SmallDfa::Forward(Box::new(forward)),
    })
}

/// The bytes numbers are written with: digits and `+ ( ) - . /` and space.
fn is_numeric_byte(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & NUMERIC_BYTE != 0
}

/// Classes of a byte for the tests the per-byte loops make (numeric spans, words): one load
/// and a mask, not a chain of range comparisons.
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if matches!(
            b,
            b'0'..=b'9' | b' ' | b'(' | b')' | b'+' | b'-' | b'.' | b'/'
        ) {
            table[i] |= NUMERIC_BYTE;
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            table[i] |= WORD_BYTE;
        }
        i += 1;
    }
    table
};
const NUMERIC_BYTE: u8 = 1;
const WORD_BYTE: u8 = 2;

/// The first maximal run of [`is_numeric_byte`] bytes at or after `from` that holds a digit,
/// as `(start, end)`; it starts no earlier than `from`.
#[inline(always)]
fn next_numeric_span(text: &[u8], from: usize) -> Option<(usize, usize)> {
    let d = memchr_digit(text, from)?;
    let mut s = d;
    while s > from && is_numeric_byte(text[s - 1]) {
        s -= 1;
    }
    let mut e = d + 1;
    while e < text.len() && is_numeric_byte(text[e]) {
        e += 1;
    }
    Some((s, e))
}

/// A numeric span of a text, its digit count, and the numeric detectors that may match in it
/// (sized for it and of a shape they can match: see [`span_shape`]).
#[derive(Debug, Clone, Copy, Default)]
struct NumericSpan {
    start: u32,
    end: u32,
    digits: u32,
    may: DetectorMask,
}

/// What [`Detectors::scan`] looks for in one text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wanted {
    /// The detectors to run.
    pub(crate) enabled: DetectorMask,
    /// The keyword-gated detectors triggered in this text (from [`Detectors::keyword_hits`]),
    /// or `None` to compute them in `scan`.
    pub(crate) keywords: Option<DetectorMask>,
    /// Hits below this confidence are dropped.
    pub(crate) min_confidence: f32,
}

/// Numeric spans, and words, held per text; a text with more is not held (see `scan`): each
/// detector then finds them again as it searches. Held, they are found once and sized and
/// shaped once for every detector; 64 left long texts (log lines, pretty-printed documents) to
/// the per-detector rescans, 3.7% of the corpus's instructions. 1,024 spans of 48 bytes and
/// as many words of 40 bound the scratch memory at ~90 KB per inspection.
const MAX_HELD: usize = 1024;

/// The working memory of [`Detectors::scan`], kept by its caller from text to text: the held
/// spans and words of a text (zeroing fresh arrays of them per text was 5% of the corpus).
#[derive(Debug)]
pub(crate) struct Scratch {
    spans: Vec<NumericSpan>,
    words: Vec<WordRun>,
    /// The byte classes of a text (see [`Shape`]): 56 bytes for each 64 of the text, so as
    /// large as the largest text less an eighth, until [`Scratch::trim`] frees it.
    blocks: Vec<byte_masks::Masks>,
    /// The most spans, and words, held per text ([`MAX_HELD`]; tests hold fewer, to compare
    /// the path of texts with more).
    hold: usize,
}

impl Scratch {
    /// The most entries a buffer holds room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.spans
            .capacity()
            .max(self.words.capacity())
            .max(self.blocks.capacity())
    }

    /// Empties the buffers, freeing one that holds room for more than `most` entries.
    pub(crate) fn trim(&mut self, most: usize) {
        self.spans = emptied(std::mem::take(&mut self.spans), most);
        self.words = emptied(std::mem::take(&mut self.words), most);
        self.blocks = emptied(std::mem::take(&mut self.blocks), most);
    }
}

/// `buf` emptied to be used again, or a new vector when it holds room for more than `most`
/// entries: a buffer kept between bodies keeps no more than that.
pub(crate) fn emptied<T>(mut buf: Vec<T>, most: usize) -> Vec<T> {
    buf.clear();
    if buf.capacity() > most {
        Vec::new()
    } else {
        buf
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch {
            spans: Vec::new(),
            words: Vec::new(),
            blocks: Vec::new(),
            hold: MAX_HELD,
        }
    }
}

/// Every numeric span of `text` in `buf` (`may` left for the caller), or `None` when there are
/// more than `hold` (or the text is too long for `u32` offsets).
fn held_numeric_spans<'b>(
    text: &[u8],
    blocks: &[byte_masks::Masks],
    buf: &'b mut Vec<NumericSpan>,
    hold: usize,
) -> Option<&'b mut [NumericSpan]> {
    buf.clear();
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    let mut all = true;
    byte_masks::numeric_spans(blocks, text.len(), |start, end, digits| {
        all = buf.len() < hold;
        // In range: the text's length fits a u32.
        buf.push(NumericSpan {
            start: start as u32,
            end: end as u32,
            digits: digits as u32,
            may: DetectorMask::EMPTY,
        });
        all
    });
    all.then_some(buf.as_mut_slice())
}

/// A maximal run of ASCII letters and digits in a text, between bytes that are not `_` or
/// alphanumeric, and the word-bounded detectors whose match length it has.
#[derive(Debug, Clone, Copy, Default)]
struct WordRun {
    start: u32,
    end: u32,
    fit: DetectorMask,
}

/// The words of `text` some detector of `wanted` may match (by `word_fit` for its length and
/// `word_first` for its first byte, the tables of [`Detectors`]; `shortest`: the first length
/// `word_fit` holds one of `wanted` at), or `None` when there are more than `hold` (or the text
/// is too long for `u32` offsets).
///
/// Words shorter than the shortest fit are skipped unread: only runs of word bytes that long
/// are found, from the text's byte classes (`blocks`, see [`Shape`]) by bit operations.
fn held_words<'b>(
    text: &[u8],
    blocks: &[byte_masks::Masks],
    (word_fit, word_first): (&[DetectorMask], &[DetectorMask]),
    wanted: DetectorMask,
    shortest: Option<usize>,
    buf: &'b mut Vec<WordRun>,
    hold: usize,
) -> Option<&'b [WordRun]> {
    buf.clear();
    if u32::try_from(text.len()).is_err() {
        return None;
    }
    let Some(shortest) = shortest else {
        return Some(&buf[..0]);
    };
    let last = word_fit.len() - 1;
    let mut all = true;
    // In range: 1..=64.
    let least = shortest.clamp(1, 64) as u32;
    byte_masks::words_of_at_least(blocks, text.len(), least, |start, end| {
        let word = &text[start..end];
        let fit = if memchr::memchr(b'_', word).is_some() {
            DetectorMask::EMPTY
        } else {
            word_fit[word.len().min(last)] & wanted & word_first[usize::from(word[0])]
        };
        if fit.any() {
            if buf.len() >= hold {
                all = false;
                return false;
            }
            // In range: the text's length fits a u32.
            buf.push(WordRun {
                start: start as u32,
                end: end as u32,
                fit,
            });
        }
        true
    });
    all.then_some(buf.as_slice())
}

/// The bytes a match of `hir` can start with; `None` when there are too many to list (the
/// extractor lists at most 256 one-byte prefixes) or a match may be empty.
fn first_bytes(hir: &regex_syntax::hir::Hir) -> Option<[bool; 256]> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_class(256)
        .limit_repeat(1)
        .limit_literal_len(1)
        .limit_total(256)
        .extract(hir);
    let mut first = [false; 256];
    for l in seq.literals()? {
        first[usize::from(*l.as_bytes().first()?)] = true;
    }
    Some(first)
}

/// The word-bounded detectors (`word_len`), and for each word length up to the longest bound
/// the ones it fits; the last entry stands for every longer word.
fn word_fit_table(list: &[Detector]) -> (DetectorMask, Vec<DetectorMask>) {
    let ranges: Vec<(usize, (usize, usize))> = list
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.word_len.map(|r| (i, r)))
        .collect();
    let wordy = ranges
        .iter()
        .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(*i));
    let last = ranges
        .iter()
        .map(|(_, (lo, hi))| if *hi == usize::MAX { *lo } else { *hi + 1 })
        .max()
        .unwrap_or(0);
    let fit = (0..=last)
        .map(|n| {
            ranges
                .iter()
                .filter(|(_, (lo, hi))| (*lo..=*hi).contains(&n))
                .fold(DetectorMask::EMPTY, |m, (i, _)| m | DetectorMask::bit(*i))
        })
        .collect();
    (wordy, fit)
}

/// For a pattern whose every match is made of ASCII letters and digits, with no look-around
/// but ASCII word boundaries (whose answer at a word's edge is the same in the word alone and
/// in the whole text): its shortest and longest match (`usize::MAX`: unbounded).
fn word_len_range(hir: &regex_syntax::hir::Hir) -> Option<(usize, usize)> {
    use regex_syntax::hir::Look;
    let min = hir.properties().minimum_len()?;
    let max = hir.properties().maximum_len().unwrap_or(usize::MAX);
    let word_look = |l: Look| {
        matches!(
            l,
            Look::WordAscii
                | Look::WordAsciiNegate
                | Look::WordStartAscii
                | Look::WordEndAscii
                | Look::WordStartHalfAscii
                | Look::WordEndHalfAscii
        )
    };
    (min > 0 && consumes_only(hir, &|b| b.is_ascii_alphanumeric(), &word_look))
        .then_some((min, max))
}

/// Whether every match of `hir` starts with one of `keywords` (compared in any ASCII case
/// when `any_case`, as the keyword search finds them) right after a word boundary: one the
/// pattern asks for first (`\b`, ASCII or Unicode, or a word start: `\b(?:Mr|Mrs|Ms)` with
/// `Mr` and `Ms`), or, when `bounded`, the one `accept` asks of a value that is the whole
/// match (a `word` or `token` boundary rejects a value glued to a letter or digit before it).
/// A keyword glued to a letter or digit before it ([`glued`]: `Mr` in base64) then starts no
/// match that is kept, and triggers nothing. Prefixes the extractor cuts short of a keyword
/// answer no.
fn keyword_starts_every_match(
    hir: &regex_syntax::hir::Hir,
    keywords: &[String],
    any_case: bool,
    bounded: bool,
) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::{Hir, HirKind, Look};
    let after_look = match hir.kind() {
        HirKind::Concat(parts) => parts.split_first().and_then(|(first, rest)| {
            matches!(
                first.kind(),
                HirKind::Look(
                    Look::WordAscii
                        | Look::WordUnicode
                        | Look::WordStartAscii
                        | Look::WordStartUnicode
                        | Look::WordStartHalfAscii
                        | Look::WordStartHalfUnicode
                )
            )
            .then(|| Hir::concat(rest.to_vec()))
        }),
        _ => None,
    };
    let rest = match after_look {
        Some(rest) => rest,
        None if bounded => hir.clone(),
        None => return false,
    };
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(&rest);
    let starts = |l: &[u8], k: &[u8]| {
        l.len() >= k.len()
            && if any_case {
                l[..k.len()].eq_ignore_ascii_case(k)
            } else {
                l[..k.len()] == *k
            }
    };
    seq.literals().is_some_and(|literals| {
        !literals.is_empty()
            && literals
                .iter()
                .all(|l| keywords.iter().any(|k| starts(l.as_bytes(), k.as_bytes())))
    })
}

/// `pattern` parsed as the regex crate parses it (bytes, not only UTF-8).
fn parse_hir(pattern: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// Whether every byte a match of `h` can consume passes `byte` (a Unicode class only when all
/// its characters are ASCII) and every look-around in it passes `look`.
fn consumes_only(
    h: &regex_syntax::hir::Hir,
    byte: &dyn Fn(u8) -> bool,
    look: &dyn Fn(regex_syntax::hir::Look) -> bool,
) -> bool {
    use regex_syntax::hir::{Class, HirKind};
    match h.kind() {
        HirKind::Empty => true,
        HirKind::Literal(l) => l.0.iter().all(|b| byte(*b)),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .all(|r| (r.start()..=r.end()).all(|ch| ch.is_ascii() && byte(ch as u8))),
        HirKind::Class(Class::Bytes(c)) => {
            c.ranges().iter().all(|r| (r.start()..=r.end()).all(byte))
        }
        HirKind::Look(l) => look(*l),
        HirKind::Repetition(r) => consumes_only(&r.sub, byte, look),
        HirKind::Capture(c) => consumes_only(&c.sub, byte, look),
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            hs.iter().all(|h| consumes_only(h, byte, look))
        }
    }
}

/// The fewest bytes any match of `pattern` (the regex crate's syntax) holds; 0 when unknown.
fn pattern_min_len(hir: Option<&regex_syntax::hir::Hir>) -> usize {
    hir.and_then(|h| h.properties().minimum_len()).unwrap_or(0)
}

/// The fewest digits any match of `pattern` holds.
fn pattern_min_digits(hir: &regex_syntax::hir::Hir) -> usize {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn min(h: &Hir) -> usize {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => 0,
            HirKind::Literal(l) => l.0.iter().filter(|b| b.is_ascii_digit()).count(),
            HirKind::Class(Class::Unicode(c)) => usize::from(
                c.ranges()
                    .iter()
                    .all(|r| r.start().is_ascii_digit() && r.end().is_ascii_digit()),
            ),
            HirKind::Class(Class::Bytes(c)) => usize::from(
                c.ranges()
                    .iter()
                    .all(|r| r.start().is_ascii_digit() && r.end().is_ascii_digit()),
            ),
            HirKind::Repetition(r) => (r.min as usize).saturating_mul(min(&r.sub)),
            HirKind::Capture(c) => min(&c.sub),
            HirKind::Concat(hs) => hs.iter().map(min).sum(),
            HirKind::Alternation(hs) => hs.iter().map(min).min().unwrap_or(0),
        }
    }
    min(hir)
}

/// The first ASCII digit at or after `from`, eight bytes at a time.
fn memchr_digit(text: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut k = from;
    while k + 8 <= text.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&text[k..k + 8]);
        // Digits become 0..=9; a byte with its high bit set was not a digit. For the others
        // (below 0x80) adding 0x80 - 10 sets the high bit exactly where the byte is >= 10: no
        // carry crosses bytes, so every flag is exact.
        let t = u64::from_le_bytes(w) ^ (LO * u64::from(b'0'));
        let ge10 = ((t & !HI) + LO * (0x80 - 10)) & HI;
        let digit = !(ge10 | t) & HI;
        if digit != 0 {
            return Some(k + (digit.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    text[k.min(text.len())..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| p + k)
}

/// For a pattern whose every match is made of [`is_numeric_byte`] bytes and which has no
/// look-around assertions (so a search confined to a numeric span finds exactly what a search
/// of the whole text finds there): the length of its shortest match.
fn numeric_min_len(hir: &regex_syntax::hir::Hir) -> Option<usize> {
    let min = hir.properties().minimum_len()?;
    (min > 0 && consumes_only(hir, &is_numeric_byte, &|_| false)).then_some(min)
}

/// The literals every match of `pattern` starts with, when they are few and selective in a
/// numeric span: none a single digit (most spans hold every digit), at most eight. Empty
/// otherwise (no check).
fn selective_prefixes(hir: &regex_syntax::hir::Hir) -> Vec<Vec<u8>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    // Classes are not expanded: `00[1-9]` gives `00`, not nine literals.
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_class(1)
        .extract(hir);
    let Some(literals) = seq.literals() else {
        return Vec::new();
    };
    // A literal that starts with another one adds nothing to "the span holds one of them".
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut all: Vec<&[u8]> = literals.iter().map(|l| l.as_bytes()).collect();
    all.sort_by_key(|l| l.len());
    for l in all {
        if !kept.iter().any(|k| l.starts_with(k)) {
            kept.push(l.to_vec());
        }
    }
    let selective = |l: &[u8]| l.len() >= 2 || l.first().is_some_and(|b| !b.is_ascii_digit());
    if kept.is_empty() || kept.len() > 8 || !kept.iter().all(|l| selective(l)) {
        return Vec::new();
    }
    kept
}

/// Literals one of which every match of `pattern` contains: the most selective run of
/// consecutive parts of its top-level sequence that matches exactly one of at most eight
/// literals, each at least two bytes long and holding a byte that is neither a digit nor a
/// separator numbers are written with (a digit pair is in most texts that reach a detector).
/// Empty when there is none (no check).
fn required_infixes(hir: &regex_syntax::hir::Hir) -> Vec<Vec<u8>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::{Hir, HirKind};
    let mut top = hir;
    while let HirKind::Capture(c) = top.kind() {
        top = &c.sub;
    }
    let parts: &[Hir] = match top.kind() {
        HirKind::Concat(hs) => hs,
        _ => std::slice::from_ref(top),
    };
    let selective = |l: &[u8]| {
        l.len() >= 2
            && l.iter()
                .any(|b| !b.is_ascii_digit() && !matches!(b, b' ' | b'-' | b'.' | b',' | b'/'))
    };
    let mut best: Vec<Vec<u8>> = Vec::new();
    let mut best_len = 0;
    for i in 0..parts.len() {
        // A run starting with a part that may match nothing (`\b`, `x?`) is never more
        // selective than the one starting after it. Runs are at most `MAX_RUN` parts long, so
        // a long pattern of a policy costs a linear number of small extractions (a custom
        // pattern of 800 `\b`s took seconds to compile when every run was tried).
        if parts[i].properties().minimum_len().unwrap_or(0) == 0 {
            continue;
        }
        const MAX_RUN: usize = 8;
        for j in i + 1..=parts.len().min(i + MAX_RUN) {
            let run = Hir::concat(parts[i..j].to_vec());
            let seq = Extractor::new()
                .kind(ExtractKind::Prefix)
                .limit_class(4)
                .limit_total(64)
                .extract(&run);
            // Exact: every literal is a whole match of the run, and the run matches nothing
            // else; longer runs of this start are not exact either.
            let Some(literals) = seq.literals().filter(|_| seq.is_exact()) else {
                break;
            };
            if literals.is_empty() || literals.len() > 8 {
                break;
            }
            // A literal holding another one adds nothing to "the text holds one of them".
            let mut kept: Vec<Vec<u8>> = Vec::new();
            let mut all: Vec<&[u8]> = literals.iter().map(|l| l.as_bytes()).collect();
            all.sort_by_key(|l| l.len());
            for l in all {
                if !kept.iter().any(|k| memchr::memmem::find(l, k).is_some()) {
                    kept.push(l.to_vec());
                }
            }
            let shortest = kept.iter().map(Vec::len).min().unwrap_or(0);
            if shortest > best_len && kept.iter().all(|l| selective(l)) {
                best_len = shortest;
                best = kept;
            }
        }
    }
    best
}

fn pack_classes_sorted(specs: &[(String, PackDetector)]) -> Vec<String> {
    let mut seen = Vec::new();
    for (_, d) in specs {
        if !seen.contains(&d.class) {
            seen.push(d.class.clone());
        }
    }
    seen
}

pub(crate) fn valid_class_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Keywords of one custom class: at most this many, each of at most this many characters. They
/// are literals a match needs, not word lists; bounded so the keyword table (states by byte
/// classes) and the matches each state reports stay small whatever a policy lists.
pub(crate) const MAX_CLASS_KEYWORDS: usize = 64;

fn custom_to_pack(c: &ClassSpec) -> Result<PackDetector, PolicyError> {
    let confidence = c.confidence.unwrap_or(0.8);
    let at = || format!("classes[{}].keywords", c.name);
    if c.keywords.len() > MAX_CLASS_KEYWORDS {
        return Err(PolicyError::new(
            at(),
            format!(
                "{} keywords; at most {MAX_CLASS_KEYWORDS} per class",
                c.keywords.len()
            ),
        ));
    }
    if let Some(k) = c
        .keywords
        .iter()
        .find(|k| k.is_empty() || k.chars().count() > MAX_CLASS_KEYWORDS)
    {
        return Err(PolicyError::new(
            at(),
            format!(
                "a keyword of {} characters; each needs 1 to {MAX_CLASS_KEYWORDS}",
                k.chars().count()
            ),
        ));
    }
    if c.pattern.is_none() && c.key_hints.is_empty() {
        return Err(PolicyError::new(
            format!("classes[{}]", c.name),
            "a class needs a `pattern`, `keyHints`, or both",
        ));
    }
    Ok(PackDetector {
        id: format!("custom.{}", c.name),
        class: c.name.clone(),
        pattern: c.pattern.clone(),
        keywords: c.keywords.clone(),
        keywords_any_case: true,
        validator: c.validator,
        boundary: Boundary::None,
        confidence,
        key_hints: c.key_hints.clone(),
        context: c.context_words.clone(),
        // With a pattern, key hints raise confidence; without, the hinted value is the finding.
        value_pattern: if c.pattern.is_none() {
            Some("(?s:.+)".to_string())
        } else {
            None
        },
        allow: c.allow.clone(),
        ..PackDetector::default()
    })
}

/// [`Detector::allows`]: whether `value` in ASCII lower case is in `allow`, whose longest value
/// has `longest` bytes.
fn allowed(allow: &HashSet<Vec<u8>, FxBuild>, longest: usize, value: &[u8]) -> bool {
    if allow.is_empty() || value.len() > longest {
        return false;
    }
    let mut buf = [0u8; 64];
    match buf.get_mut(..value.len()) {
        Some(lower) => {
            lower.copy_from_slice(value);
            lower.make_ascii_lowercase();
            allow.contains(&*lower)
        }
        None => allow.contains(&value.to_ascii_lowercase()),
    }
}

fn count_digits(text: &[u8]) -> usize {
    // Written to auto-vectorise: no early exit, no branches, and byte-wide sums (a chunk of
    // 255 bytes cannot overflow one), 16 bytes to a step in SSE2 and Wasm SIMD.
    text.chunks(255)
        .map(|c| {
            let n = c
                .iter()
                .fold(0u8, |n, b| n + u8::from(b.wrapping_sub(b'0') < 10));
            usize::from(n)
        })
        .sum()
}

/// Cheap facts about a text, from its byte classes as bit masks made in one SIMD pass
/// ([`byte_masks`]): its digit count, and on demand its counts of other classes, its numeric
/// spans and its structural gates.
struct Shape<'b> {
    digits: usize,
    blocks: &'b [byte_masks::Masks],
}

impl<'b> Shape<'b> {
    fn new(text: &[u8], blocks: &'b mut Vec<byte_masks::Masks>) -> Shape<'b> {
        byte_masks::fill(text, blocks);
        let digits = blocks.iter().map(|m| m.digit.count_ones() as usize).sum();
        Shape { digits, blocks }
    }

    /// How many bytes of the text are in `class`.
    fn count(&self, class: impl Fn(&byte_masks::Masks) -> u64) -> usize {
        self.blocks
            .iter()
            .map(|m| class(m).count_ones() as usize)
            .sum()
    }

    /// Counts of `:`, `-`, `.` and of capital ASCII letters.
    #[cfg(test)]
    fn counts(&self) -> [usize; 4] {
        [
            self.count(|m| m.colon),
            self.count(|m| m.dash),
            self.count(|m| m.dot),
            self.count(|m| m.upper),
        ]
    }

    /// The longest chain of digits in "numeric" segments. Segments are split by spaces, `/`,
    /// `(`, `)` and `+` (`-` and `.` join within a segment); up to three separators in a row keep
    /// the chain going. A segment with a letter or `_` is part of a word-like token (a UUID, SKU,
    /// timestamp, version tag) and breaks the chain: token-bounded detectors cannot match there.
    ///
    /// A chain lies inside one numeric span (any other byte ends it), so only the spans are
    /// walked, and only those longer than the best chain so far.
    ///
    /// The spans walked are kept in `spans` as [`held_numeric_spans`] holds them: `true` when
    /// all of them are there (at most `hold`, and offsets fit a `u32`), so the numeric
    /// detectors need not walk the text for them again.
    fn max_run_keeping(
        &self,
        text: &[u8],
        spans: &mut Vec<NumericSpan>,
        hold: usize,
    ) -> (usize, bool) {
        spans.clear();
        let mut kept = u32::try_from(text.len()).is_ok();
        if self.digits == 0 {
            return (0, kept);
        }
        let glued = |b: u8| b.is_ascii_alphabetic() || b == b'_';
        let mut best = 0;
        byte_masks::numeric_spans(self.blocks, text.len(), |s, e, digits| {
            if kept && spans.len() < hold {
                // In range: the text's length fits a u32.
                spans.push(NumericSpan {
                    start: s as u32,
                    end: e as u32,
                    digits: digits as u32,
                    may: DetectorMask::EMPTY,
                });
            } else {
                kept = false;
            }
            // A chain counts digits: a span with no more digits than the best has no longer one.
            if digits > best {
                let left = s > 0 && glued(text[s - 1]);
                let right = text.get(e).is_some_and(|&b| glued(b));
                best = best.max(span_run(&text[s..e], left, right));
            }
            true
        });
        (best, kept)
    }

    #[cfg(test)]
    fn max_run(&self, text: &[u8]) -> usize {
        self.max_run_keeping(text, &mut Vec::new(), MAX_HELD).0
    }

    fn passes(&self, text: &[u8], gate: Gate) -> bool {
        let blocks = self.blocks;
        match gate {
            Gate::Ipv4 => self.count(|m| m.dot) >= 3,
            // Two capitals first: every IBAN starts with its country's.
            Gate::Iban => self.count(|m| m.upper) >= 2 && iban_start(blocks),
            Gate::Ipv6 => {
                let colons = self.count(|m| m.colon);
                colons >= 7
                    || (colons >= 2
                        && byte_masks::any_pair(blocks, |p| {
                            p.at(|m| m.colon, 0) & p.at(|m| m.colon, 1)
                        }))
            }
            // The separators' counts first: `mac_separators` needs two dots or five of `:`/`-`.
            Gate::Mac => {
                text.len() >= 14 && {
                    let dots = self.count(|m| m.dot);
                    (dots >= 2 || self.count(|m| m.colon | m.dash) >= 5) && mac_separators(blocks)
                }
            }
        }
    }
}

/// Whether the text of `blocks` has two upper-case letters then two digits (`DE89`), as
/// every IBAN starts.
fn iban_start(blocks: &[byte_masks::Masks]) -> bool {
    let upper = |m: &byte_masks::Masks| m.upper;
    let digit = |m: &byte_masks::Masks| m.digit;
    byte_masks::any_pair(blocks, |p| {
        p.at(upper, 0) & p.at(upper, 1) & p.at(digit, 2) & p.at(digit, 3)
    })
}

/// Whether the text of `blocks` has the separators of a MAC address where a MAC has them:
/// five of `:`/`-` three bytes apart (`00:1a:2b:3c:4d:5e`), or two dots five bytes apart
/// (`001a.2b3c.4d5e`). Counting them instead let most prose through (any text with two dots).
fn mac_separators(blocks: &[byte_masks::Masks]) -> bool {
    let dot = |m: &byte_masks::Masks| m.dot;
    let sep = |m: &byte_masks::Masks| m.colon | m.dash;
    byte_masks::any_pair(blocks, |p| p.at(dot, 0) & p.at(dot, 5))
        || byte_masks::any_pair(blocks, |p| {
            p.at(sep, 0) & p.at(sep, 3) & p.at(sep, 6) & p.at(sep, 9) & p.at(sep, 12)
        })
}

/// The longest chain (see [`Shape::max_run`]) in one numeric span; `glued_left`/`glued_right`:
/// a letter or `_` touches its first/last segment, which then does not count.
fn span_run(span: &[u8], glued_left: bool, glued_right: bool) -> usize {
    let (mut best, mut chain, mut seg, mut clean, mut seps) = (0, 0, 0, !glued_left, 0);
    let close = |best: &mut usize, chain: &mut usize, seg: &mut usize, clean: &mut bool| {
        if *clean {
            *chain += *seg;
            *best = (*best).max(*chain);
        } else {
            *chain = 0;
        }
        *seg = 0;
        *clean = true;
    };
    for &b in span {
        match b {
            b'0'..=b'9' => {
                seg += 1;
                seps = 0;
            }
            b'-' | b'.' => {
                seps += 1;
                if seps > 3 {
                    close(&mut best, &mut chain, &mut seg, &mut clean);
                    chain = 0;
                }
            }
            // ` /()+`: the other numeric bytes.
            _ => {
                close(&mut best, &mut chain, &mut seg, &mut clean);
                seps += 1;
                if seps > 3 {
                    chain = 0;
                }
            }
        }
    }
    if !glued_right {
        close(&mut best, &mut chain, &mut seg, &mut clean);
    }
    best
}

/// ASCII letters and digits, and `_`.
fn is_word(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & WORD_BYTE != 0
}

fn boundary_ok(text: &[u8], s: usize, e: usize, boundary: Boundary, joiners: &[u8]) -> bool {
    let before = s.checked_sub(1).map(|i| text[i]);
    let after = text.get(e).copied();
    match boundary {
        Boundary::None => true,
        Boundary::Word => !before.is_some_and(is_word) && !after.is_some_and(is_word),
        Boundary::Token => {
            let joins = |b: Option<u8>, beyond: Option<u8>| {
                b.is_some_and(is_word)
                    || (b.is_some_and(|c| joiners.contains(&c))
                        && beyond.is_some_and(|c| c.is_ascii_alphanumeric()))
            };
            let before2 = s.checked_sub(2).map(|i| text[i]);
            let after2 = text.get(e + 1).copied();
            !joins(before, before2) && !joins(after, after2)
        }
    }
}

/// The position after the alphanumeric run that starts at `from` (at least `from + 1`).
fn next_token_start(text: &[u8], from: usize) -> usize {
    let mut p = from + 1;
    while p < text.len() && text[p].is_ascii_alphanumeric() && text[p - 1].is_ascii_alphanumeric() {
        p += 1;
    }
    p
}

/// Whether context word `word` (lower case) occurs in `text[from..to]`, ignoring ASCII case,
/// starting a word: "itin" in "awaiting" or "nir" in "souvenir" is no context.
///
/// Only the places holding the word's first byte (in either ASCII case) are compared.
fn has_context_word(text: &[u8], from: usize, to: usize, word: &[u8]) -> bool {
    let Some(&first) = word.first() else {
        return false;
    };
    if to.saturating_sub(from) < word.len() {
        return false;
    }
    let starts = &text[from..=to - word.len()];
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, starts).any(|k| {
        let i = from + k;
        text[i..i + word.len()].eq_ignore_ascii_case(word)
            && !(i > 0 && first.is_ascii_alphanumeric() && text[i - 1].is_ascii_alphanumeric())
    })
}

/// Whether `haystack` contains `needle` (given in lower case), ignoring ASCII case.
fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return false;
    };
    let Some(last_start) = haystack.len().checked_sub(needle.len()) else {
        return false;
    };
    // Compared only where its first letter is, in either case (a window per byte was 0.7%
    // of the corpus's instructions).
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, &haystack[..=last_start])
        .any(|i| haystack[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // The analyses take a parsed pattern; the tests write patterns.
    fn hir(p: &str) -> regex_syntax::hir::Hir {
        parse_hir(p).unwrap_or_else(|| panic!("pattern {p}"))
    }
    fn required_infixes(p: &str) -> Vec<Vec<u8>> {
        super::required_infixes(&hir(p))
    }
    fn selective_prefixes(p: &str) -> Vec<Vec<u8>> {
        super::selective_prefixes(&hir(p))
    }
    fn pattern_min_len(p: &str) -> usize {
        super::pattern_min_len(parse_hir(p).as_ref())
    }

    /// The context-word search looks only where the word's first byte is; the allow-list lookup
    /// lower-cases on the stack and skips values longer than every allowed one. Both are
    /// compared with the plain scans they replaced, on random texts of letters in both cases,
    /// digits, separators and bytes beyond ASCII, around 64 bytes and the longest allowed value.
    #[test]
    fn context_words_and_allowed_values_are_found_as_by_the_plain_scans() {
        fn context_reference(text: &[u8], from: usize, to: usize, word: &[u8]) -> bool {
            !word.is_empty()
                && to.saturating_sub(from) >= word.len()
                && (from..=to - word.len()).any(|i| {
                    text[i..i + word.len()].eq_ignore_ascii_case(word)
                        && !(i > 0
                            && word[0].is_ascii_alphanumeric()
                            && text[i - 1].is_ascii_alphanumeric())
                })
        }
        const ALPHABET: &[u8] = b"aAbBcCzZ09 -:#_\xc3\xa9\xc3\x89";
        const WORDS: &[&[u8]] = &[
            b"a",
            b"ab",
            b"tel",
            b"bca",
            b"#",
            b"9a",
            b"-",
            b"\xc3\xa9",
            b"\xc3\x89b",
            b"zz",
            b"",
        ];
        let allow: HashSet<Vec<u8>, FxBuild> = [&b"ab"[..], b"tel", b"\xc3\xa9a", &[b'b'; 70]]
            .iter()
            .map(|a| a.to_vec())
            .collect();
        let longest = allow.iter().map(Vec::len).max().unwrap_or(0);
        let mut next = xorshift(0xC0_47E7_7A11_0E5D);
        let (mut found, mut allowed_seen) = (0, 0);
        for round in 0..100_000 {
            let len = (next() % 80) as usize;
            let mut text: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if round % 7 == 0 {
                // A long run of one letter, in either case: allowed at 70 bytes only.
                text = vec![if round % 2 == 0 { b'b' } else { b'B' }; 60 + (next() % 15) as usize];
            }
            let word = WORDS[(next() % WORDS.len() as u64) as usize];
            let to = (next() as usize) % (text.len() + 1);
            let from = (next() as usize) % (to + 1);
            let want = context_reference(&text, from, to, word);
            assert_eq!(
                has_context_word(&text, from, to, word),
                want,
                "{text:?} {word:?}"
            );
            found += usize::from(want);
            // A slice of the text, or an allowed value (or one byte short or over) in some case.
            let variants: [&[u8]; 6] = [b"AB", b"tEl", b"TE", b"\xc3\xa9A", b"\xc3\x89a", b"abc"];
            let value = match round % 3 {
                0 => &text[from..to],
                1 => variants[(next() % 6) as usize],
                _ => &text[..text.len().min(69 + (next() % 3) as usize)],
            };
            let want = allow.contains(&value.to_ascii_lowercase());
            assert_eq!(allowed(&allow, longest, value), want, "{value:?}");
            assert!(!allowed(&HashSet::default(), 0, value));
            allowed_seen += usize::from(want);
        }
        assert!(
            found > 5_000 && allowed_seen > 5_000,
            "{found} {allowed_seen}"
        );
    }

    /// The digit and punctuation counts, and the IBAN and MAC window gates, are branch-free
    /// loops in blocks (of 255 bytes, of 64 windows): each equals the plain search it replaced
    /// on random texts of the pieces they look for, from empty to past three blocks.
    #[test]
    fn shape_counts_and_window_gates_equal_the_plain_searches() {
        let old_punct = |text: &[u8]| {
            let mut c = [0; 4];
            for i in memchr::memchr3_iter(b':', b'-', b'.', text) {
                c[match text[i] {
                    b':' => 0,
                    b'-' => 1,
                    _ => 2,
                }] += 1;
            }
            c[3] = text.iter().filter(|b| b.is_ascii_uppercase()).count();
            c
        };
        let old_mac = |text: &[u8]| {
            let sep_at = |i: usize| matches!(text.get(i), Some(b':' | b'-'));
            memchr::memchr3_iter(b':', b'-', b'.', text).any(|p| {
                if text[p] == b'.' {
                    text.get(p + 5) == Some(&b'.')
                } else {
                    (1..5).all(|k| sep_at(p + 3 * k))
                }
            })
        };
        let old_iban = |text: &[u8]| {
            text.windows(4).any(|w| {
                w[0].is_ascii_uppercase()
                    && w[1].is_ascii_uppercase()
                    && w[2].is_ascii_digit()
                    && w[3].is_ascii_digit()
            })
        };
        let old_digits = |text: &[u8]| text.iter().filter(|b| b.is_ascii_digit()).count();
        let mut next = xorshift(0xC0FF_EE12_3456_789B);
        let pieces: [&[u8]; 15] = [
            b"00:1a:2b:3c:4d:5e",
            b"001a.2b3c.4d5e",
            b"fe80::1",
            b"10.0.0.1",
            b"-",
            b":",
            b".",
            b"ab",
            b"\xff",
            b"DE8",
            b"9",
            b"Z",
            b"@[/",
            b"0123456789",
            b"                                                  ",
        ];
        let (mut macs, mut ibans) = ([0usize; 2], [0usize; 2]);
        for round in 0..40_000 {
            let mut t = Vec::new();
            let want = match round % 50 {
                // Long texts of digits, past a byte-wide sum's 255.
                0 => 600 + (next() % 200) as usize,
                _ => (next() % 200) as usize,
            };
            while t.len() < want {
                t.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            t.truncate(want);
            let mut blocks = Vec::new();
            let shape = Shape::new(&t, &mut blocks);
            assert_eq!(shape.digits, old_digits(&t), "{t:?}");
            assert_eq!(shape.counts(), old_punct(&t), "{t:?}");
            assert_eq!(mac_separators(shape.blocks), old_mac(&t), "{t:?}");
            assert_eq!(iban_start(shape.blocks), old_iban(&t), "{t:?}");
            // The gates, counts checked first, pass where the plain searches find.
            assert_eq!(shape.passes(&t, Gate::Iban), old_iban(&t), "{t:?}");
            let colons = old_punct(&t)[0];
            assert_eq!(
                shape.passes(&t, Gate::Ipv6),
                colons >= 7 || (colons >= 2 && t.windows(2).any(|w| w == b"::")),
                "{t:?}"
            );
            assert_eq!(shape.passes(&t, Gate::Ipv4), old_punct(&t)[2] >= 3);
            assert_eq!(
                shape.passes(&t, Gate::Mac),
                t.len() >= 14 && old_mac(&t),
                "{t:?}"
            );
            // Texts of one block of windows and of more both hold MACs and IBAN starts.
            macs[usize::from(t.len() <= 64)] += usize::from(old_mac(&t));
            ibans[usize::from(t.len() <= 64)] += usize::from(old_iban(&t));
        }
        assert!(
            macs.iter().chain(&ibans).all(|&n| n > 100),
            "{macs:?} {ibans:?}"
        );
        for n in [255, 256, 511, 100_000] {
            assert_eq!(count_digits(&vec![b'7'; n]), n);
            let mut blocks = Vec::new();
            assert_eq!(
                Shape::new(&vec![b'.'; n], &mut blocks).counts(),
                [0, 0, n, 0]
            );
            assert_eq!(
                Shape::new(&vec![b'Z'; n], &mut blocks).counts(),
                [0, 0, 0, n]
            );
            assert_eq!(Shape::new(&vec![b'7'; n], &mut blocks).digits, n);
        }
    }

    /// `eu_vat.near` is `eu_vat` for the four states whose label must be right before the
    /// number: the same hints, words and confidence, kept in step by hand in the pack.
    #[test]
    fn the_near_vat_detector_is_the_vat_detector_but_for_its_window() {
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let get = |id: &str| pack.detector.iter().find(|d| d.id == id).expect(id);
        let (far, near) = (get("eu_vat"), get("eu_vat.near"));
        assert_eq!(far.key_hints, near.key_hints);
        assert_eq!(far.context, near.context);
        assert_eq!(far.class, near.class);
        assert_eq!(
            (
                far.confidence,
                far.hint_boost,
                far.context_boost,
                far.validator,
                far.boundary
            ),
            (
                near.confidence,
                near.hint_boost,
                near.context_boost,
                near.validator,
                near.boundary
            )
        );
        assert_eq!((far.context_window, near.context_window), (None, Some(16)));
        for state in ["BG", "HU", "RO", "SI"] {
            let p = |d: &PackDetector| d.pattern.as_deref().unwrap_or("").contains(state);
            assert!(p(near) && !p(far), "{state}");
        }
    }

    #[test]
    fn words_beyond_ascii_are_listed_in_their_cases() {
        let forms = |w: &str| {
            let mut v = case_variants(w);
            v.sort();
            v
        };
        assert_eq!(forms("VAT"), ["vat"]);
        assert_eq!(forms("ΑΦΜ"), ["ΑΦΜ", "Αφμ", "αφμ"]);
        // `Dič` is `dič` with ASCII folded; `DIČ` keeps its Č.
        assert_eq!(forms("dič"), ["diČ", "dič"]);
        // `ÜBERWEISUNG` folds to `Überweisung` (ASCII letters fold where words are compared).
        assert_eq!(forms("ÜBERWEISUNG"), ["Überweisung", "überweisung"]);
    }

    /// Texts with more numeric spans or words than a scan holds ([`MAX_HELD`]) take another
    /// path: each detector finds them as it searches. Both paths must find the same hits: every
    /// string of a seventh of the corpus, each whole body as one text (up to thousands of spans),
    /// and the examples run together, scanned holding all, a few, and none.
    #[test]
    fn scans_holding_spans_and_words_or_not_find_the_same() {
        let d = Detectors::compile(&[], 0.0).expect("compile");
        let corpus = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/corpus/api-bodies.jsonl"
        ))
        .expect("corpus");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let examples: Vec<u8> = pack
            .detector
            .iter()
            .filter_map(|p| p.example.as_deref())
            .collect::<Vec<_>>()
            .join(" ; ")
            .into_bytes();
        let mut texts: Vec<Vec<u8>> = vec![examples];
        for line in corpus.lines().step_by(7) {
            let rec: serde_json::Value = serde_json::from_str(line).expect("jsonl");
            let body = rec["body"].as_str().expect("body");
            texts.push(body.as_bytes().to_vec());
            if let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) {
                let mut stack = vec![&doc];
                while let Some(v) = stack.pop() {
                    match v {
                        serde_json::Value::String(t) => texts.push(t.as_bytes().to_vec()),
                        serde_json::Value::Array(a) => stack.extend(a),
                        serde_json::Value::Object(o) => stack.extend(o.values()),
                        _ => {}
                    }
                }
            }
        }
        let want = Wanted {
            enabled: d.all(),
            keywords: None,
            min_confidence: 0.0,
        };
        let scan = |text: &[u8], hold: usize| {
            let mut scratch = Scratch {
                hold,
                ..Scratch::default()
            };
            let mut hits = Vec::new();
            d.scan(text, KeyCtx::default(), want, &mut scratch, &mut hits);
            hits
        };
        let (mut found, mut over) = (0, 0);
        for text in &texts {
            let all = scan(text, MAX_HELD);
            for hold in [0, 3] {
                assert_eq!(
                    scan(text, hold),
                    all,
                    "holding {hold}: {:.200}",
                    String::from_utf8_lossy(text)
                );
            }
            found += all.len();
            over += usize::from(next_numeric_span(text, 0).is_some());
        }
        assert!(
            found > 1000 && over > 1000,
            "{found} hits, {over} texts with spans"
        );
    }

    #[test]
    fn a_span_exactly_as_long_as_the_least_any_detector_needs_is_searched() {
        // A custom three-digit class sets the least span length and digit count (the built-ins
        // need more); a span of exactly three bytes and digits (held, and not) is its finding,
        // one digit fewer is nothing.
        let spec: ClassSpec =
            serde_json::from_str(r#"{"name": "pin", "pattern": "[0-9]{3}"}"#).expect("spec");
        let d = Detectors::compile(&[spec], 0.0).expect("compile");
        assert_eq!(d.span_least, (3, 3));
        let builtins = Detectors::compile(&[], 0.0).expect("compile");
        assert!(builtins.span_least.0 > 3 && builtins.span_least.1 > 3);
        let pin = d.classes.id("pin").expect("pin");
        let want = Wanted {
            enabled: d.all(),
            keywords: None,
            min_confidence: 0.0,
        };
        for (text, found) in [(&b"123"[..], 1), (b"door 123 open", 1), (b"12", 0)] {
            for hold in [0, MAX_HELD] {
                let mut scratch = Scratch {
                    hold,
                    ..Scratch::default()
                };
                let mut hits = Vec::new();
                d.scan(text, KeyCtx::default(), want, &mut scratch, &mut hits);
                let pins = hits.iter().filter(|h| h.class == pin).count();
                assert_eq!(
                    pins,
                    found,
                    "{:?} holding {hold}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    /// A keyword starts every match after a boundary the pattern asks for, or, when the
    /// value is the whole match and `accept` asks for a boundary, after that one; a match that
    /// may start elsewhere, or with a byte before the keyword, answers no.
    #[test]
    fn a_keyword_starts_every_match_after_a_boundary() {
        let starts = |pattern: &str, keywords: &[&str], any_case: bool, bounded: bool| {
            let keywords: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
            let hir = parse_hir(pattern).expect("pattern");
            keyword_starts_every_match(&hir, &keywords, any_case, bounded)
        };
        assert!(starts(r"\b(?:Mr|Ms)\.? [A-Z]", &["Mr", "Ms"], false, false));
        assert!(!starts(r"ghp_[a-z]{4}", &["ghp_"], false, false));
        assert!(starts(r"ghp_[a-z]{4}", &["ghp_"], false, true));
        assert!(starts(r"(?i:GHP_)[a-z]{4}", &["ghp_"], true, true));
        assert!(!starts(r"(?i:GHP_)[a-z]{4}", &["ghp_"], false, true));
        assert!(!starts(r"(?:ghp|xyz)_[a-z]{4}", &["ghp_"], false, true));
        assert!(!starts(r"[a-z]?ghp_[a-z]{4}", &["ghp_"], false, true));
        assert!(!starts(r"[a-z]+", &["ghp_"], false, true));
    }

    #[test]
    fn first_bytes_are_the_bytes_a_match_starts_with() {
        let listed = |p: &str| {
            first_bytes(&hir(p)).map(|f| {
                (0..=255u8)
                    .filter(|&b| f[usize::from(b)])
                    .map(char::from)
                    .collect::<String>()
            })
        };
        assert_eq!(
            listed("[13][1-9A-HJ-NP-Za-km-z]{25,34}").as_deref(),
            Some("13")
        );
        assert_eq!(listed(r"(?i)\bab[0-9]").as_deref(), Some("Aa"));
        assert_eq!(listed("x?[0-9]y").as_deref(), Some("0123456789x"));
        assert_eq!(listed("[A-Z]{2}|[a-z0-9]").map(|s| s.len()), Some(62));
        // More than the extractor lists, or an empty match: no answer.
        assert_eq!(listed(r"\w+"), None);
        assert_eq!(listed("a?"), None);
    }

    /// The shortest word from the detectors wanted is the first length the fit table holds one
    /// of them at (the search it replaced), for sets of the built-in detectors of every size.
    #[test]
    fn the_shortest_word_is_the_fit_tables_first_length() {
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let wordy: Vec<usize> = detectors.wordy.ones().collect();
        assert!(wordy.len() > 3, "{wordy:?}");
        let mut next = xorshift(0x5eed_0f5e_5407);
        for _ in 0..5_000 {
            let mut wanted = DetectorMask::EMPTY;
            for _ in 0..next() % 6 {
                wanted.insert((next() % detectors.list.len() as u64) as usize);
            }
            if next() & 1 == 0 {
                wanted.insert(wordy[(next() % wordy.len() as u64) as usize]);
            }
            let want = detectors
                .word_fit
                .iter()
                .position(|f| f.meets(wanted & detectors.wordy));
            assert_eq!(detectors.shortest_word(wanted), want, "{wanted:?}");
        }
    }

    #[test]
    fn held_words_are_every_fitting_word_of_the_text() {
        // The probing walk against a plain split of the text into maximal word runs.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let fit = &detectors.word_fit;
        let mut next = xorshift(0x0ddb_a11c_afe0);
        let alphabet = b"ab1Z3_ -.\xc3";
        for round in 0..20_000 {
            // Past two 64-byte blocks at times: words across a block's end.
            let len = (next() % if round % 4 == 0 { 300 } else { 120 }) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    // Long words most of the time: the fitting lengths start near 8.
                    let k = if next().is_multiple_of(8) {
                        alphabet.len()
                    } else {
                        4
                    };
                    alphabet[(next() % k as u64) as usize]
                })
                .collect();
            let wanted = if round % 2 == 0 {
                detectors.wordy
            } else {
                detectors.wordy & random_mask(next())
            };
            let mut expected = Vec::new();
            for (start, end) in maximal_word_runs(&text) {
                let word = &text[start..end];
                let f = if word.contains(&b'_') {
                    DetectorMask::EMPTY
                } else {
                    fit[word.len().min(fit.len() - 1)]
                        & wanted
                        & detectors.word_first[usize::from(word[0])]
                };
                if f.any() {
                    expected.push((start as u32, end as u32, f));
                }
            }
            let mut buf = Vec::new();
            // Few held, so texts with more fitting words take the other branch.
            let tables = (fit.as_slice(), detectors.word_first.as_slice());
            let blocks = masks_of(&text);
            let shortest = fit.iter().position(|f| f.meets(wanted));
            let got = held_words(&text, &blocks, tables, wanted, shortest, &mut buf, 8).map(|w| {
                w.iter()
                    .map(|w| (w.start, w.end, w.fit))
                    .collect::<Vec<_>>()
            });
            if expected.len() <= 8 {
                assert_eq!(got, Some(expected), "{:?}", String::from_utf8_lossy(&text));
            } else {
                assert_eq!(got, None);
            }
        }
    }

    #[test]
    fn a_word_bounded_detector_on_its_words_finds_what_it_finds_in_the_whole_text() {
        // Texts made of each word-bounded detector's own example, its mutations, random
        // alphanumeric words of every length, `_`/`-`/`.` joins and non-ASCII neighbours: the
        // search confined to the held words must report exactly the whole-text search's hits.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let wordy: Vec<&str> = detectors
            .list
            .iter()
            .filter(|d| d.word_len.is_some())
            .map(|d| &*d.id)
            .collect();
        for id in ["btc_address", "mx_curp", "vin", "aws_access_key"] {
            assert!(wordy.contains(&id), "{id} not word-bounded: {wordy:?}");
        }
        let examples: HashMap<String, String> = catalog::catalog()
            .expect("catalog")
            .into_iter()
            .flat_map(|c| c.detectors)
            .filter_map(|d| Some((d.id, d.example?)))
            .collect();
        let mut next = xorshift(0x5eed_0fa1_a2b3_b4c5);
        let alnum = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let seps: [&[u8]; 9] = [
            b" ",
            b" ",
            b"-",
            b"_",
            b".",
            b"/",
            "\u{e9}".as_bytes(),
            b"\n",
            b": ",
        ];
        let (mut hits, mut compared) = (0, 0);
        for (i, d) in detectors.list.iter().enumerate() {
            if d.word_len.is_none() {
                continue;
            }
            let example = examples.get(&*d.id).map(String::as_bytes).unwrap_or(b"x");
            for _ in 0..1_500 {
                let mut text = Vec::new();
                for _ in 0..(next() % 6 + 1) {
                    match next() % 4 {
                        0 => text.extend_from_slice(example),
                        1 => {
                            let mut e = example.to_vec();
                            let k = (next() % e.len() as u64) as usize;
                            e[k] = alnum[(next() % alnum.len() as u64) as usize];
                            text.extend_from_slice(&e);
                        }
                        _ => {
                            let len = (next() % 40) as usize;
                            text.extend((0..len).map(|_| alnum[(next() % 62) as usize]));
                        }
                    }
                    text.extend_from_slice(seps[(next() % seps.len() as u64) as usize]);
                }
                let mut buf = Vec::new();
                let blocks = masks_of(&text);
                let Some(words) = held_words(
                    &text,
                    &blocks,
                    (&detectors.word_fit, &detectors.word_first),
                    DetectorMask::bit(i),
                    detectors.shortest_word(DetectorMask::bit(i)),
                    &mut buf,
                    MAX_HELD,
                ) else {
                    continue;
                };
                let km = KeyMasks::default();
                let (mut whole, mut worded) = (Vec::new(), Vec::new());
                detectors.run_pattern(i, d, &text, None, None, &km, 0.0, &mut whole);
                detectors.run_pattern(i, d, &text, None, Some(words), &km, 0.0, &mut worded);
                let key = |h: &Hit| (h.start, h.end, h.confidence.to_bits());
                assert_eq!(
                    whole.iter().map(key).collect::<Vec<_>>(),
                    worded.iter().map(key).collect::<Vec<_>>(),
                    "{} in {:?}",
                    d.id,
                    String::from_utf8_lossy(&text)
                );
                if !whole.is_empty() && words.iter().all(|w| !w.fit.has(i)) {
                    panic!("{}: a hit with no fitting word", d.id);
                }
                hits += whole.len();
                compared += 1;
            }
        }
        assert!(
            compared > 10_000 && hits > 1_000,
            "{compared} texts, {hits} hits"
        );
    }

    /// The detectors whose indices are the set bits of `bits` (the first 64).
    fn random_mask(bits: u64) -> DetectorMask {
        (0..64)
            .filter(|b| bits >> b & 1 == 1)
            .fold(DetectorMask::EMPTY, |m, b| m | DetectorMask::bit(b))
    }

    /// A search's signature: the leftmost-first match at or after an offset.
    type Search = fn(&[u8], usize) -> Option<(usize, usize)>;

    /// A search written for a built-in pattern ([`Hand`]) and the `regex` crate's search of the
    /// pattern: the comparison of its module's tests.
    pub(crate) struct Oracle {
        pub(crate) re: regex::bytes::Regex,
        find: Search,
    }

    impl Oracle {
        pub(crate) fn new(pattern: &str, find: Search) -> Oracle {
            Oracle {
                re: regex::bytes::Regex::new(pattern).expect("pattern"),
                find,
            }
        }

        /// The same leftmost-first match from every offset of `hay`.
        pub(crate) fn check(&self, hay: &[u8]) {
            for at in 0..=hay.len() {
                let want = self.re.find_at(hay, at).map(|m| (m.start(), m.end()));
                assert_eq!(
                    (self.find)(hay, at),
                    want,
                    "{:?} at {at}",
                    String::from_utf8_lossy(hay)
                );
            }
        }
    }

    /// Each search written for a built-in pattern serves the detector of that pattern.
    #[test]
    fn each_hand_written_search_serves_its_builtin_detector() {
        let d = Detectors::compile(&[], 0.5).expect("compile");
        let hands: Vec<(Hand, &str)> = d
            .list
            .iter()
            .filter_map(|d| d.hand.map(|h| (h, &*d.id)))
            .collect();
        assert_eq!(
            hands,
            [
                (Hand::Email, "email"),
                (Hand::Jwt, "jwt"),
                (Hand::Pem, "private_key")
            ]
        );
    }

    /// A deterministic xorshift64 stream for the differential tests (of `detect` and its
    /// modules).
    pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The texts of the detector table (`tests/data/detectors.toml`) and the built-in pack's
    /// examples.
    fn table_and_examples() -> Vec<String> {
        #[derive(Deserialize)]
        struct Row {
            text: String,
        }
        #[derive(Deserialize)]
        struct Table {
            case: Vec<Row>,
        }
        let table: Table =
            toml::from_str(include_str!("../../tests/data/detectors.toml")).expect("table");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let mut texts: Vec<String> = table.case.into_iter().map(|r| r.text).collect();
        texts.extend(pack.detector.iter().filter_map(|d| d.example.clone()));
        texts
    }

    /// Every built-in pattern searches as the `regex` crate searched it before [`Matcher`]
    /// replaced it: the same match and group from every offset of the detector table's texts,
    /// the examples, and random texts of the bytes numbers and words are written with, hostile
    /// ones included (digits of other scripts, Unicode spaces, accented letters next to word
    /// boundaries, invalid UTF-8), with an example spliced in.
    #[test]
    fn matchers_search_as_the_regex_crate_did() {
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let fixed: Vec<Vec<u8>> = table_and_examples()
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let hostile: [&[u8]; 9] = [
            "\u{0663}".as_bytes(),
            "\u{FF13}".as_bytes(),
            "\u{00A0}".as_bytes(),
            "\u{200B}".as_bytes(),
            "\u{00E9}".as_bytes(),
            "\u{00DF}".as_bytes(),
            b"\xFF",
            b"\xC3",
            b"\x80",
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut searches = 0usize;
        for spec in &pack.detector {
            let Some(pattern) = spec.pattern.as_deref() else {
                continue;
            };
            let (m, re) = (
                compile_regex(pattern, false).expect("compiles"),
                crate::matcher::tests::oracle(pattern),
            );
            assert_eq!(m.groups(), re.captures_len(), "{}", spec.id);
            let mut locs = re.capture_locations();
            let example = spec.example.clone().unwrap_or_default().into_bytes();
            let mut alphabet: Vec<&[u8]> = b"0123456789 -./()+:@aZ_x\n".chunks(1).collect();
            alphabet.extend(example.chunks(1));
            alphabet.extend(hostile);
            let mut texts: Vec<Vec<u8>> = (0..40)
                .map(|_| {
                    let len = (next() % 40) as usize;
                    let mut t: Vec<u8> = (0..len)
                        .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                        .copied()
                        .collect();
                    let mut e = example.clone();
                    if !e.is_empty() && next().is_multiple_of(2) {
                        let i = (next() as usize) % e.len();
                        e.splice(
                            i..=i,
                            hostile[(next() % hostile.len() as u64) as usize]
                                .iter()
                                .copied(),
                        );
                    }
                    let at = (next() as usize) % (t.len() + 1);
                    t.splice(at..at, e);
                    t
                })
                .collect();
            texts.extend(fixed.iter().filter(|t| re.is_match(t)).cloned());
            for text in &texts {
                assert_eq!(m.is_match(text), re.is_match(text), "{}: {text:?}", spec.id);
                for at in 0..=text.len() {
                    let want = re
                        .captures_read_at(&mut locs, text, at)
                        .map(|x| ((x.start(), x.end()), locs.get(spec.group)));
                    let got = m.captures_at(text, at, spec.group);
                    assert_eq!(
                        got,
                        want,
                        "{} at {at} in {:?}",
                        spec.id,
                        String::from_utf8_lossy(text)
                    );
                    assert_eq!(m.find_at(text, at), want.map(|w| w.0), "{}", spec.id);
                    searches += 1;
                }
            }
        }
        assert!(searches > 100_000, "{searches}");
    }

    /// The byte-at-a-time `max_run` the span walk replaced: the reference it is tested against.
    fn max_run_reference(text: &[u8]) -> usize {
        let (mut best, mut chain, mut seg, mut clean, mut seps) =
            (0usize, 0usize, 0usize, true, 0usize);
        let close = |best: &mut usize, chain: &mut usize, seg: &mut usize, clean: &mut bool| {
            if *clean {
                *chain += *seg;
                *best = (*best).max(*chain);
            } else {
                *chain = 0;
            }
            *seg = 0;
            *clean = true;
        };
        for &b in text {
            match b {
                b'0'..=b'9' => {
                    seg += 1;
                    seps = 0;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    clean = false;
                    seps = 0;
                }
                b'-' | b'.' => {
                    seps += 1;
                    if seps > 3 {
                        close(&mut best, &mut chain, &mut seg, &mut clean);
                        chain = 0;
                    }
                }
                b' ' | b'/' | b'(' | b')' | b'+' => {
                    close(&mut best, &mut chain, &mut seg, &mut clean);
                    seps += 1;
                    if seps > 3 {
                        chain = 0;
                    }
                }
                _ => {
                    close(&mut best, &mut chain, &mut seg, &mut clean);
                    chain = 0;
                    seps = 0;
                }
            }
        }
        close(&mut best, &mut chain, &mut seg, &mut clean);
        best
    }

    /// The byte classes of `text`, block by block.
    fn masks_of(text: &[u8]) -> Vec<byte_masks::Masks> {
        let mut blocks = Vec::new();
        byte_masks::fill(text, &mut blocks);
        blocks
    }

    /// The byte-class table answers as the range comparisons it replaced, for every byte.
    #[test]
    fn the_byte_class_table_is_the_comparisons() {
        for b in 0..=255u8 {
            let numeric = matches!(
                b,
                b'0'..=b'9' | b' ' | b'(' | b')' | b'+' | b'-' | b'.' | b'/'
            );
            assert_eq!(is_numeric_byte(b), numeric, "{b}");
            assert_eq!(is_word(b), b.is_ascii_alphanumeric() || b == b'_', "{b}");
        }
    }

    /// Every maximal run of word bytes of `text`, as `(start, end)`, by a plain byte split.
    fn maximal_word_runs(text: &[u8]) -> Vec<(usize, usize)> {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let start = i;
            while i < text.len() && is_word(text[i]) {
                i += 1;
            }
            if i > start {
                runs.push((start, i));
            }
            i = i.max(start + 1);
        }
        runs
    }

    /// A text of `len` bytes made of runs of one byte each, the byte `byte(kind, value)` of two
    /// random numbers; one run in four is up to `long` bytes, the others up to `short`, so
    /// runs cross 64-byte blocks.
    fn text_of_runs(
        next: &mut impl FnMut() -> u64,
        len: usize,
        (short, long): (u64, u64),
        byte: impl Fn(u64, u64) -> u8,
    ) -> Vec<u8> {
        let mut text = Vec::with_capacity(len);
        while text.len() < len {
            let run = 1 + (next() % if next() & 3 == 0 { long } else { short }) as usize;
            let b = byte(next(), next());
            text.extend(std::iter::repeat_n(b, run.min(len - text.len())));
        }
        text
    }

    /// The numeric spans found from bit masks are the byte walk's, with its digit counts, in
    /// texts long enough to cross 64-byte blocks: runs over a block's end, blocks that are
    /// digits throughout, a text that ends in a run, and a stop when the caller says so.
    #[test]
    fn numeric_spans_from_bit_masks_are_the_byte_walks() {
        let mut next = xorshift(0x51de_b10c_ca11_ab1e);
        for round in 0..100_000 {
            // Runs of one kind of byte, long ones often, so spans cross blocks.
            let len = (next() % 261) as usize;
            let text = text_of_runs(&mut next, len, (6, 150), |kind, v| match kind % 8 {
                0..=2 => b'0' + (v % 10) as u8,
                3 => b" -./()+"[(v % 7) as usize],
                4 => b"*,:"[(v % 3) as usize],
                5 => b'a' + (v % 26) as u8,
                6 => 0x80 | (v % 128) as u8,
                _ => v as u8,
            });
            let mut want = Vec::new();
            let mut from = 0;
            while let Some((s, e)) = next_numeric_span(&text, from) {
                want.push((s, e, count_digits(&text[s..e])));
                from = e;
            }
            // Stop after the `stop`-th span (none when it is past the last).
            let stop = (next() % (want.len() as u64 + 2)) as usize;
            let mut got = Vec::new();
            let mut blocks = Vec::new();
            byte_masks::fill(&text, &mut blocks);
            byte_masks::numeric_spans(&blocks, text.len(), |s, e, d| {
                got.push((s, e, d));
                got.len() != stop
            });
            let expect = if stop == 0 {
                &want[..]
            } else {
                &want[..stop.min(want.len())]
            };
            assert_eq!(
                got,
                expect,
                "round {round}: {:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    /// The runs of word bytes of at least a length, found from bit masks, are the maximal
    /// runs a byte walk finds, for every length the masks take (1 to 64), in texts whose runs
    /// cross 64-byte blocks (a shorter run may be reported too, never a part of one).
    #[test]
    fn word_runs_from_bit_masks_are_the_byte_walks() {
        let mut next = xorshift(0x3c6e_f372_fe94_f82b);
        for round in 0..50_000 {
            let len = (next() % 300) as usize;
            let text = text_of_runs(&mut next, len, (12, 140), |kind, v| match kind % 6 {
                0 => b'0' + (v % 10) as u8,
                1 => b'a' + (v % 26) as u8,
                2 => b"_AZ"[(v % 3) as usize],
                3 => b" -.@"[(v % 4) as usize],
                4 => 0x80 | (v % 128) as u8,
                _ => v as u8,
            });
            let least = 1 + (next() % 64) as usize;
            // Every maximal run; those of `least` bytes or more must be reported, and only
            // maximal runs may be.
            let every = maximal_word_runs(&text);
            let mut got = Vec::new();
            byte_masks::words_of_at_least(&masks_of(&text), text.len(), least as u32, |s, e| {
                got.push((s, e));
                true
            });
            let shown = String::from_utf8_lossy(&text);
            assert!(
                got.iter().all(|r| every.contains(r)),
                "{round}, {least}: {shown:?}"
            );
            assert!(got.windows(2).all(|w| w[0].1 < w[1].0), "{round}: in order");
            let long = |v: &[(usize, usize)]| {
                v.iter()
                    .copied()
                    .filter(|(s, e)| e - s >= least)
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                long(&got),
                long(&every),
                "round {round}, {least}: {shown:?}"
            );
        }
    }

    /// The SIMD masks are the byte tests, for every byte value at every position of a block.
    #[test]
    fn the_masks_are_the_byte_tests() {
        let mut next = xorshift(0x0b17_5e75_0f0b_1e55);
        for b in 0..=255u8 {
            for at in 0..64 {
                let mut block = [0u8; 64];
                for x in block.iter_mut() {
                    *x = (next() % 256) as u8;
                }
                block[at] = b;
                let got = byte_masks::masks(&block, 4);
                assert_eq!(got, byte_masks::scalar_masks(&block), "{b} at {at}");
                // Fewer chunks: the bytes after them are in no class.
                let chunks = 1 + at / 16 + (next() % (4 - at as u64 / 16)) as usize;
                let mut head = [0u8; 64];
                head[..16 * chunks].copy_from_slice(&block[..16 * chunks]);
                let fewer = byte_masks::masks(&block, chunks);
                assert_eq!(
                    fewer,
                    byte_masks::scalar_masks(&head),
                    "{b} at {at}, {chunks}"
                );
                assert_eq!(
                    got.numeric >> at & 1 == 1,
                    is_numeric_byte(b),
                    "{b} at {at}"
                );
                assert_eq!(got.digit >> at & 1 == 1, b.is_ascii_digit(), "{b} at {at}");
            }
        }
    }

    /// The search for a lower-case word at its first letter finds what comparing every window
    /// ignoring ASCII case finds (the check it replaced), short haystacks and empty words included.
    #[test]
    fn case_blind_search_is_the_window_comparison() {
        const ALPHABET: &[u8] = b"aAbBcC -.\xc3\xb3";
        let mut next = xorshift(0x0c0f_fee0_dd15_ea5e);
        for _ in 0..100_000 {
            let hay: Vec<u8> = (0..next() % 30)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let needle: Vec<u8> = (0..next() % 4)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize].to_ascii_lowercase())
                .collect();
            let want = !needle.is_empty()
                && hay
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(&needle));
            assert_eq!(
                contains_ignore_case(&hay, &needle),
                want,
                "{hay:?} {needle:?}"
            );
        }
    }

    #[test]
    fn span_walk_max_run_and_swar_digit_search_equal_the_byte_loops() {
        // Texts over an alphabet that exercises every branch: digits, letters, `_`, the
        // numeric separators, other punctuation, and bytes above 0x80.
        const ALPHABET: &[u8] = b"0123456789012345aZ_ -./()+:,\xc3\x80\xff";
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let mut blocks = Vec::new();
            let shape = Shape::new(&text, &mut blocks);
            assert_eq!(
                shape.max_run(&text),
                max_run_reference(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            // The spans it keeps are the ones the numeric detectors hold, when they all fit.
            let hold = (next() % 6) as usize;
            let (mut kept, mut held) = (Vec::new(), Vec::new());
            let (_, all) = shape.max_run_keeping(&text, &mut kept, hold);
            let want = held_numeric_spans(&text, shape.blocks, &mut held, hold);
            assert_eq!(all, want.is_some(), "{text:?} {hold}");
            if let Some(want) = want {
                let ends = |v: &[NumericSpan]| {
                    v.iter()
                        .map(|s| (s.start, s.end, s.digits))
                        .collect::<Vec<_>>()
                };
                assert_eq!(ends(&kept), ends(want), "{text:?}");
            }
            for from in 0..=text.len() {
                assert_eq!(
                    memchr_digit(&text, from),
                    text[from..]
                        .iter()
                        .position(u8::is_ascii_digit)
                        .map(|p| p + from)
                );
            }
        }
    }

    /// Built-in patterns are compiled lazily: every one must compile, and hold its group.
    #[test]
    fn every_builtin_pattern_compiles() {
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        for d in &pack.detector {
            if let Some(p) = &d.pattern {
                let r = compile_regex(p, false).unwrap_or_else(|e| panic!("{}: {e}", d.id));
                assert!(d.group < r.groups(), "{}: no group {}", d.id, d.group);
            }
        }
        let policy = Detectors::compile(&[], 0.5).expect("compile");
        assert!(policy.list.iter().all(|d| match &d.regex {
            PatternRegex::Lazy(_) | PatternRegex::None => true,
            PatternRegex::Ready(_) => false,
        }));
    }

    /// `prepare` builds a regex only where a search can reach it: not for a detector whose
    /// DFAs find the whole match, nor for the email detector. 53 of the 137 built-in detectors
    /// are such (a floor of 51, so a change that makes VMs build them all again fails here),
    /// and the others get theirs.
    #[test]
    fn prepare_builds_the_regexes_searches_use() {
        let policy = Detectors::compile(&[], 0.5).expect("compile");
        policy.prepare();
        let built = |d: &Detector| match &d.regex {
            PatternRegex::Lazy(b) => b.1.get().is_some(),
            PatternRegex::Ready(_) => true,
            PatternRegex::None => false,
        };
        let mut skipped = 0;
        for d in &policy.list {
            if d.searches_skip_the_regex() {
                assert!(!built(d), "{}: regex built", d.id);
                skipped += 1;
            } else if !d.regex.is_none() {
                assert!(built(d), "{}: regex not built", d.id);
            }
        }
        assert!(skipped >= 51, "{skipped} of {}", policy.list.len());
    }

    /// A keyword-gated detector runs only where one of its keywords is: a way its pattern can
    /// start that holds none of them is a match never searched for (`geehrter` under the
    /// keyword `geehrte `, `BC1` under `bc1`: session 11's review). Every literal a match can
    /// start with (case-insensitive groups read in lower case) must contain a keyword, in the
    /// case the keyword is matched in. Patterns that start with a class have no literal start
    /// and are skipped; the test counts those it checks.
    #[test]
    fn every_literal_start_of_a_keyword_gated_pattern_holds_a_keyword() {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let (mut checked, mut missing) = (0, Vec::new());
        for d in &pack.detector {
            let (Some(p), false) = (&d.pattern, d.keywords.is_empty()) else {
                continue;
            };
            // Read `(?i:...)` groups in lower case: their other cases fold like the keywords.
            let lowered = p.replace("(?i:", "(?:").replace("(?i)", "");
            let Some(hir) = parse_hir(&lowered) else {
                continue;
            };
            let seq = Extractor::new()
                .kind(ExtractKind::Prefix)
                .limit_class(8)
                .limit_repeat(4)
                .limit_literal_len(64)
                .limit_total(2000)
                .extract(&hir);
            let Some(literals) = seq.literals() else {
                continue;
            };
            if literals.iter().any(|l| l.as_bytes().is_empty()) {
                continue;
            }
            let any_case = d.keywords_any_case || p.starts_with("(?i)");
            // A literal and the keywords in the case they are compared in.
            let fold = |w: &str| {
                if any_case {
                    w.to_lowercase()
                } else {
                    w.to_string()
                }
            };
            let literal = |l: &regex_syntax::hir::literal::Literal| {
                fold(&String::from_utf8_lossy(l.as_bytes()))
            };
            let holds = |l: &regex_syntax::hir::literal::Literal| {
                let l = literal(l);
                d.keywords.iter().any(|k| l.contains(&fold(k)))
            };
            // A literal start is cut where the pattern's first class is: a keyword that comes
            // later in every match (`sig=` of an Azure SAS token) is in none of them, and such
            // a pattern cannot be checked this way. One whose keywords start its matches has
            // them in some literal: then in every one.
            if !literals.iter().any(holds) {
                continue;
            }
            checked += 1;
            // A literal cut short inside a keyword (`xox` of `xoxb-`) cannot be checked.
            let inside = |l: &regex_syntax::hir::literal::Literal| {
                let l = literal(l);
                d.keywords.iter().any(|k| fold(k).starts_with(&l))
            };
            for l in literals
                .iter()
                .filter(|l| !holds(l) && (l.is_exact() || !inside(l)))
            {
                missing.push(format!(
                    "{}: {:?}",
                    d.id,
                    String::from_utf8_lossy(l.as_bytes())
                ));
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
        assert!(checked >= 20, "only {checked} patterns checked");
        eprintln!("{checked} keyword-gated patterns checked");
    }

    /// Support-gated detectors run only in a text holding one of their context words where it
    /// starts a word, as `accept` counts one (`has_context_word`), and so do the keyword-gated
    /// ones whose matches start with a keyword after a boundary: random texts of context words and
    /// keywords (in both cases, glued to a letter, a digit or `_`, after an escape) and the
    /// tokens of the detectors' examples find, with the text's own keyword pass and with a JSON
    /// body's, what they find with every gate open.
    #[test]
    fn a_word_start_gate_opens_where_its_word_starts_a_word() {
        let d = Detectors::compile(&[], 0.5).expect("compile");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        // The keyword-gated ones whose every match starts with a keyword after a boundary
        // (the pattern's `\b`, or `accept`'s when the value is the match).
        let keyword_gated: Vec<&str> = (d.word_start & d.keyword_gated)
            .ones()
            .map(|i| &*d.list[i].id)
            .collect();
        assert_eq!(
            keyword_gated,
            [
                "phone.e164",
                "aws_access_key",
                "jwt",
                "github_token",
                "google_api_key",
                "stripe_key",
                "person_name.honorific",
                "anthropic_api_key",
                "gitlab_token",
                "npm_token",
                "pypi_token",
                "huggingface_token",
                "twilio_api_key",
                "sendgrid_api_key",
                "mailgun_api_key",
                "shopify_token",
                "vault_token",
                "digitalocean_token",
                "heroku_api_key",
                "atlassian_api_token",
                "linear_api_key",
                "notion_token",
                "postman_api_key",
                "newrelic_key",
                "sentry_token",
                "grafana_token",
                "doppler_token",
                "pulumi_token",
                "databricks_token",
                "age_secret_key",
                "alibaba_access_key",
                "square_token",
                "supabase_token",
                "btc_address.bech32",
            ]
        );
        let mut pieces: Vec<String> = Vec::new();
        for i in d.word_start.ones() {
            let det = &d.list[i];
            pieces.extend(
                det.context
                    .iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned()),
            );
            let example = pack.detector.iter().find(|p| p.id == *det.id);
            pieces.extend(example.iter().flat_map(|p| p.keywords.iter().cloned()));
            if let Some(e) = example.and_then(|p| p.example.as_deref()) {
                pieces.extend(e.split(' ').map(String::from));
                pieces.extend([e.to_string(), e.to_string(), e.to_string()]);
                // The example from each keyword on, to be glued to what comes before it.
                for k in example.iter().flat_map(|p| &p.keywords) {
                    pieces.extend(e.find(k.as_str()).map(|at| e[at..].to_string()));
                }
            }
        }
        let glue = [
            " ", " ", " ", "a", "Z", "7", "_", "\n", "\t", ":", "é", "-", "PRIVATE",
        ];
        let enabled = d.all();
        let gated = d.keyword_gated | d.support_gated;
        let scan = |text: &[u8], keywords: Option<DetectorMask>| {
            let want = Wanted {
                enabled,
                keywords,
                min_confidence: 0.5,
            };
            let mut hits = Vec::new();
            d.scan(
                text,
                KeyCtx::default(),
                want,
                &mut Scratch::default(),
                &mut hits,
            );
            hits
        };
        let mut rng = xorshift(0x600d_5747);
        let (mut found, mut glued_only) = (0, 0);
        for _ in 0..6_000 {
            let mut text = String::new();
            for _ in 0..2 + rng() % 6 {
                let piece = if rng().is_multiple_of(3) {
                    glue[(rng() % glue.len() as u64) as usize]
                } else {
                    &pieces[(rng() % pieces.len() as u64) as usize]
                };
                if rng().is_multiple_of(4) {
                    text.push_str(&piece.to_uppercase());
                } else {
                    text.push_str(piece);
                }
            }
            let bytes = text.as_bytes();
            let open = scan(bytes, Some(gated));
            assert_eq!(scan(bytes, None), open, "{text:?}");
            // The same text as a JSON string: the body's keyword pass.
            let json = serde_json::to_string(&text).expect("json");
            let raw = &json[1..json.len() - 1];
            let body = format!("{{\"k\":{json}}}");
            let hits = d.keyword_hits(body.as_bytes(), enabled);
            let (start, end) = (6, 6 + raw.len());
            let from_body = if !raw.contains('\\') {
                Some(hits.within(start, end))
            } else if d.keywords_survive_escapes(raw.as_bytes()) {
                Some(hits.within_escaped(start, end, raw.as_bytes()))
            } else {
                None
            };
            if let Some(mask) = from_body {
                assert_eq!(scan(bytes, Some(mask)), open, "{raw:?}");
            }
            found += open
                .iter()
                .filter(|h| d.word_start.has(usize::from(h.detector)))
                .count();
            let mut anywhere = DetectorMask::EMPTY;
            d.keywords.for_each(bytes, gated, |_, _, o| {
                anywhere |= o;
                true
            });
            let at_word_start = d.keyword_mask(bytes, enabled);
            glued_only += usize::from((anywhere & !at_word_start).meets(d.word_start));
        }
        // The examples are found, and glued context words are skipped, so the test can fail.
        assert!(
            found > 300 && glued_only > 300,
            "{found} found, {glued_only} glued only"
        );
    }

    /// Random JSON strings of keywords (in both cases, and without their first letters),
    /// escapes (valid ones, their letters, and backslashes that make none: `\h` keeps its `h`)
    /// and filler: the detectors the body's hits trigger in the raw string are those a search
    /// of the decoded string triggers.
    #[test]
    fn the_keywords_of_an_escaped_string_are_the_decoded_strings() {
        // With custom classes whose literals are an escape's letter twice (exact two-byte
        // keywords, searched apart from the others: `\fff` holds an `ff` the escape does not
        // start), and one whose keyword has an escaped byte (`/`).
        let specs: Vec<ClassSpec> = ["ff", "nn", "tt", "bb", "rr"]
            .iter()
            .enumerate()
            .map(|(i, l)| format!(r#"{{"name": "c{i}", "pattern": "{l}[0-9]{{3}}"}}"#))
            .chain([r#"{"name": "s", "pattern": "[0-9]{4}", "keywords": ["emp/id"]}"#.into()])
            .map(|j| serde_json::from_str(&j).expect("spec"))
            .collect();
        let d = Detectors::compile(&specs, 0.5).expect("compile");
        let enabled = DetectorMask::first(d.list.len());
        let wanted = enabled & (d.keyword_gated | d.support_gated);
        let (words, _, _, _) = &d.keyword_list;
        let mut rng = xorshift(0x5eed_e5c4);
        let pieces: [&str; 22] = [
            "\\n", "\\t", "\\r", "\\b", "\\f", "\\\"", "\\\\", "\\/", "\\h", "\\x", "\\", " ", ":",
            "a", "é", ",", ":\\/\\/", "fff", "nn", "t", "emp\\/id", "emp/id",
        ];
        let (mut differing, mut escaped_hits, mut searched_alone) = (0, 0, 0);
        for _ in 0..20_000 {
            let mut raw = String::new();
            for _ in 0..1 + rng() % 8 {
                let w = &words[(rng() % words.len() as u64) as usize];
                match rng() % 5 {
                    0 | 1 => {
                        let k = if rng().is_multiple_of(2) {
                            w.to_ascii_uppercase()
                        } else {
                            w.clone()
                        };
                        raw.push_str(&k);
                    }
                    2 => raw.push_str(w.char_indices().nth(1).map_or("", |(i, _)| &w[i..])),
                    _ => raw.push_str(pieces[(rng() % pieces.len() as u64) as usize]),
                }
            }
            // A lone backslash ends as the escape of what follows; JSON has no `\u` here
            // (those strings are searched on their own), and a string ends at a bare quote.
            if raw.ends_with('\\') {
                continue;
            }
            if !d.keywords_survive_escapes(raw.as_bytes()) {
                searched_alone += 1;
                continue;
            }
            let body = format!("{{\"k\":\"{raw}\"}}");
            if crate::json::walk(body.as_bytes(), &mut Default::default(), |_, _| {}).is_err() {
                continue;
            }
            let hits = d.keyword_hits(body.as_bytes(), enabled);
            let fast = hits.within_escaped(6, 6 + raw.len(), raw.as_bytes()) & wanted;
            let mut decoded = Vec::new();
            crate::json::decode_lossy(raw.as_bytes(), &mut decoded, None);
            let reference = d.keyword_mask(&decoded, enabled) & wanted;
            assert_eq!(fast, reference, "{raw:?}");
            if hits.within(6, 6 + raw.len()) & wanted != reference {
                differing += 1;
            }
            escaped_hits += usize::from(raw.contains('\\') && reference.any());
        }
        // The raw hits alone would differ (`\name:`), so the test can fail.
        assert!(
            differing > 50 && escaped_hits > 1000 && searched_alone > 100,
            "{differing} {escaped_hits} {searched_alone}"
        );
    }

    /// A route that enables few classes gets a keyword search of their keywords alone; it
    /// must trigger exactly what the whole search triggers for those detectors.
    #[test]
    fn a_restricted_keyword_search_triggers_what_the_whole_one_does() {
        let mut d = Detectors::compile(&[], 0.5).expect("compile");
        let masks: Vec<DetectorMask> = ["secrets.*", "person_name", "eu_vat", "pii.*", "phone"]
            .iter()
            .map(|sel| {
                let ids: HashSet<ClassId> = d.classes.select(sel).expect(sel).into_iter().collect();
                d.for_classes(&ids)
            })
            .collect();
        d.restrict_keywords(&masks).expect("restrict");
        assert!(d.restricted.len() >= 3, "{}", d.restricted.len());
        let corpus = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/corpus/api-bodies.jsonl"
        ))
        .expect("corpus");
        let texts: Vec<&str> = corpus.lines().step_by(7).collect();
        let gated = d.keyword_gated | d.support_gated;
        let (words, owners, any_case, _) = &d.keyword_list;
        for &mask in &masks {
            for t in &texts {
                let text = t.as_bytes();
                let whole = {
                    let mut m = DetectorMask::EMPTY;
                    d.keywords.for_each(text, mask & gated, |_, _, o| {
                        m |= o;
                        true
                    });
                    m & mask & gated
                };
                // Every keyword as listed that is in the text (merging contained keywords only
                // widens what a search triggers); a word-start detector's where it starts a word.
                let listed = (0..words.len())
                    .filter(|&i| owners[i].meets(mask))
                    .flat_map(|i| {
                        let w = words[i].as_bytes();
                        text.windows(w.len().max(1))
                            .enumerate()
                            .filter(move |(_, x)| {
                                *x == w || (any_case[i] && x.eq_ignore_ascii_case(w))
                            })
                            .map(move |(p, _)| (i, p))
                    })
                    .fold(DetectorMask::EMPTY, |m, (i, p)| {
                        if glued(text, p) {
                            m | (owners[i] & !d.word_start)
                        } else {
                            m | owners[i]
                        }
                    })
                    & mask
                    & gated;
                let restricted = d.keyword_mask(text, mask);
                assert_eq!(restricted & listed, listed, "misses a keyword in {t:.80}");
                assert_eq!(
                    restricted & whole,
                    restricted,
                    "more than the whole in {t:.80}"
                );
            }
        }
    }

    #[test]
    fn required_infixes_of_a_long_pattern_cost_a_linear_number_of_runs() {
        // Hostile review: 800 zero-width parts before a literal took 30 s to compile.
        let pattern = format!("{}ab{}", r"\b".repeat(4000), "a\\b".repeat(2000));
        let got = required_infixes(&pattern);
        assert!(
            !got.is_empty() && got.iter().all(|l| l.windows(2).any(|w| w == b"ab")),
            "{got:?}"
        );
    }

    #[test]
    fn required_infixes_are_in_every_match() {
        assert_eq!(
            required_infixes("[1278] ?[0-9]{2} ?2[AB] ?[0-9]{3}"),
            vec![b"2A".to_vec(), b"2B".to_vec()]
        );
        assert_eq!(
            required_infixes("xox[bp]-[0-9]+"),
            vec![b"xoxb-".to_vec(), b"xoxp-".to_vec()]
        );
        // Digits and number separators only, a top-level alternation, optional parts: none.
        assert!(required_infixes("[0-9]{3}-[0-9]{2}-[0-9]{4}").is_empty());
        assert!(required_infixes("ab[0-9]|cd[0-9]").is_empty());
        assert!(required_infixes("(?:ab)?[0-9]+").is_empty());
        // Every text of the detector table and every example that a built-in detector's
        // pattern matches holds one of that detector's infixes; the detector waits for them,
        // as its own check or as keywords (then a text without them does not trigger it).
        let texts = table_and_examples();
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let (mut checked, mut as_keywords) = (0, 0);
        for (i, (d, spec)) in detectors.list.iter().zip(&pack.detector).enumerate() {
            assert_eq!(*d.id, spec.id);
            let Some(pattern) = spec.pattern.as_deref().filter(|_| spec.keywords.is_empty()) else {
                continue;
            };
            let infixes = required_infixes(pattern);
            if infixes.is_empty() {
                continue;
            }
            let holds = |t: &[u8]| infixes.iter().any(|l| memchr::memmem::find(t, l).is_some());
            if detectors.keyword_gated.has(i) {
                as_keywords += 1;
                assert!(d.infixes.is_empty(), "{}", d.id);
            } else {
                assert_eq!(d.infixes.len(), infixes.len(), "{}", d.id);
            }
            let re = d.regex.get().expect("regex");
            for t in &texts {
                if re.is_match(t.as_bytes()) {
                    checked += 1;
                    assert!(holds(t.as_bytes()), "{}: {t}", d.id);
                }
                let triggered = detectors.keyword_mask(t.as_bytes(), DetectorMask::bit(i));
                if detectors.keyword_gated.has(i) && !holds(t.as_bytes()) {
                    assert!(!triggered.has(i), "{}: {t}", d.id);
                }
            }
        }
        // `0x` (both eth_address detectors), `2A`/`2B` (fr_nir.corsica), `)9`/`) 9` (phone.br)
        // as keywords: at threshold 0, nothing is support-gated.
        assert!(checked >= 4 && as_keywords >= 4, "{checked} {as_keywords}");
        // At 0.5, eth_address.one_case (0.3) is: its keyword bit stands for its context words,
        // so it checks `0x` itself, and a context word without `0x` is not enough.
        let d = Detectors::compile(&[], 0.5).expect("compile");
        let one = d.list.iter().position(|x| &*x.id == "eth_address.one_case");
        let one = one.expect("eth_address.one_case");
        assert!(d.support_gated.has(one) && !d.keyword_gated.has(one));
        assert_eq!(d.list[one].infixes.len(), 1);
        let mut out = Vec::new();
        let want = Wanted {
            enabled: DetectorMask::bit(one),
            keywords: None,
            min_confidence: 0.5,
        };
        let hex = "de709f2102306220921060314715629080e2fb77";
        for (text, found) in [
            (format!("wallet 0x{hex}"), 1),
            (format!("wallet 1x{hex}"), 0),
        ] {
            out.clear();
            d.scan(
                text.as_bytes(),
                KeyCtx::default(),
                want,
                &mut Scratch::default(),
                &mut out,
            );
            assert_eq!(out.len(), found, "{text}");
        }
    }

    /// The keywords within a range are those of the plain search whatever ranges were asked
    /// before (the search starts where the last one stopped only when that is its start):
    /// ranges in order, backwards, overlapping, empty, past the end, and repeated.
    #[test]
    fn keywords_within_a_range_do_not_depend_on_the_ranges_asked_before() {
        let d = Detectors::compile(&[], 0.5).expect("compile");
        let all = DetectorMask::first(d.list.len());
        let body = "dear Jan, iban DE89 or +44 20 ssn: name: x0x1 email ada@example.com from: \
                    passport vat: dear Ana, to: 0xab iban iban";
        let hits = d.keyword_hits(body.as_bytes(), all);
        assert!(hits.hits.len() > 10, "{}", hits.hits.len());
        let reference = |start: usize, end: usize| {
            hits.hits
                .iter()
                .filter(|h| h.0 >= start && h.0 < end && h.1 <= end)
                .fold(hits.saturated, |m, h| m | hits.triggered(h.2, h.3))
        };
        let n = body.len();
        let mut ranges: Vec<(usize, usize)> =
            (0..n).step_by(3).map(|s| (s, (s + 7).min(n))).collect();
        ranges.extend((0..n).rev().step_by(5).map(|s| (s, (s + 11).min(n + 4))));
        ranges.extend([
            (0, n),
            (5, 5),
            (n, n),
            (n + 3, n + 9),
            (0, 0),
            (0, n),
            (12, 40),
            (12, 40),
        ]);
        let mut next = xorshift(7);
        for _ in 0..300 {
            let s = next() as usize % (n + 2);
            ranges.push((s, s + next() as usize % 30));
        }
        for (s, e) in ranges {
            assert_eq!(hits.within(s, e), reference(s, e), "{s}..{e}");
        }
    }

    /// Past `MAX_KEYWORD_HITS`, only the detectors of the keywords reported after the limit
    /// run on every text: a flood of `0x` saturates `eth_address` (and the detectors of any
    /// keyword the DFA reports after the limit; which ones depends on where the DFA's four
    /// lanes are when it is reached, so it is not asserted), while `email`, whose `@` the
    /// pass reports first, still waits for one. No occurrence is lost either way: its
    /// detectors are recorded or saturated.
    #[test]
    fn a_keyword_flood_saturates_only_its_own_detectors() {
        let d = Detectors::compile(&[], 0.5).expect("compile");
        let id = |name: &str| d.list.iter().position(|x| &*x.id == name).expect(name);
        let (eth, email, name) = (id("eth_address"), id("email"), id("person_name.context"));
        let all = DetectorMask::first(d.list.len());
        let flood = "0x1 ".repeat(MAX_KEYWORD_HITS + 10);
        let body = format!("ada@example.com, dear Jan {flood} the end");
        let hits = d.keyword_hits(body.as_bytes(), all);
        let at = |text: &str| {
            let s = body.find(text).expect(text);
            hits.within(s, s + text.len())
        };
        assert!(at("0x1").has(eth));
        assert!(at("the end").has(eth), "saturated");
        assert!(!at("the end").has(email));
        assert!(at("ada@example.com").has(email));
        assert!(at("dear Jan").has(name) && !at("dear Jan").has(email));
        // A flood of every keyword's detectors stops the pass: all saturated.
        let hits = d.keyword_hits(flood.as_bytes(), DetectorMask::bit(eth));
        assert_eq!(hits.within(0, 0), DetectorMask::bit(eth));
        assert_eq!(hits.hits.len(), MAX_KEYWORD_HITS);
        // A buffer reused (the flood's, full) gives what a new one gives.
        let again = d.keyword_hits_into(body.as_bytes(), all, hits.into_buffer());
        let fresh = d.keyword_hits(body.as_bytes(), all);
        assert_eq!(again.hits, fresh.hits);
        assert_eq!(again.saturated, fresh.saturated);
    }

    /// A detector gated by a literal its pattern requires finds what it found when it searched
    /// for the literal itself: in a body's JSON string (the body's keyword pass), an escaped
    /// one and a nested document (a pass over the decoded text), and plain text.
    #[test]
    fn a_required_literal_gates_as_a_keyword_in_every_layer() {
        let policy = crate::Policy::builtin_default().expect("policy");
        let route = policy.route("POST", "/", "api");
        let address = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let escaped = address.replacen('x', "\\u0078", 1);
        for body in [
            format!(r#"{{"note": "refund to {address}"}}"#),
            format!(r#"{{"note": "refund to {escaped}"}}"#),
            format!(r#"{{"doc": "{{\"note\": \"refund to {address}\"}}"}}"#),
            format!("refund to {address} today"),
        ] {
            let ct = if body.starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            let seen = policy.inspect(&crate::Exchange {
                route,
                direction: crate::Direction::Response,
                content_type: Some(ct),
                scopes: &[],
                body: body.as_bytes(),
            });
            let found: Vec<&str> = seen.findings.iter().map(|f| &*f.detector).collect();
            assert!(found.contains(&"eth_address"), "{body}: {found:?}");
        }
    }

    #[test]
    fn span_prefixes_are_what_every_match_starts_with() {
        assert_eq!(
            selective_prefixes("00 ?[1-9][0-9]{3}"),
            vec![b"00".to_vec()]
        );
        assert_eq!(
            selective_prefixes(r"756\.?[0-9]{4}|756[0-9]{10}"),
            vec![b"756".to_vec()]
        );
        // A single digit, a class too wide, an optional start: no check.
        assert!(selective_prefixes("[0-9]{9}").is_empty());
        assert!(selective_prefixes("1?[0-9]{9}").is_empty());
        assert!(selective_prefixes("(?:19|20)?[0-9]{6}").is_empty());
        // Every built-in numeric detector's own example has one of its prefixes.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        for d in detectors
            .list
            .iter()
            .filter(|d| !d.span_prefixes.is_empty())
        {
            let spec = pack
                .detector
                .iter()
                .find(|p| *p.id == *d.id)
                .expect("in pack");
            let example = spec.example.as_deref().unwrap_or("").as_bytes();
            assert!(
                d.span_prefixes.iter().any(|p| p.find(example).is_some()),
                "{}",
                d.id
            );
        }
    }

    /// The DFAs embedded at build time are what `regex-automata` builds now for every built-in
    /// pattern without keywords (the same crate version: the bytes are equal), and every one
    /// reads back, so no built-in detector loses its DFA to a version or alignment mismatch.
    #[test]
    fn embedded_dfas_are_the_ones_regex_automata_builds() {
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let bytes = builtin_dfa_bytes().expect("the embedded DFAs inflate");
        let (mut checked, mut patterns) = (0, HashSet::new());
        for d in &pack.detector {
            let Some(pattern) = d.pattern.as_deref().filter(|_| d.keywords.is_empty()) else {
                continue;
            };
            patterns.insert(pattern);
            let (_, entry) = BUILTIN_DFA_INDEX
                .iter()
                .find(|(p, _)| *p == pattern)
                .unwrap_or_else(|| panic!("{}: not embedded", d.id));
            let built = dfa_build::dfas(pattern);
            let embedded = entry.map(|((fs, fe), rev)| {
                (
                    bytes[fs..fe].to_vec(),
                    rev.map(|(rs, re)| bytes[rs..re].to_vec()),
                )
            });
            assert!(built == embedded, "{}: embedded DFAs differ", d.id);
            let read = builtin_dfa(pattern);
            match &built {
                None => assert!(read.is_none(), "{}", d.id),
                Some((_, None)) => assert!(matches!(read, Some(SmallDfa::Forward(_))), "{}", d.id),
                Some((_, Some(_))) => assert!(matches!(read, Some(SmallDfa::Regex(_))), "{}", d.id),
            }
            checked += usize::from(built.is_some());
        }
        assert_eq!(
            BUILTIN_DFA_INDEX.len(),
            patterns.len(),
            "one entry per pattern"
        );
        // Exactly: a `regex-automata` update that pushes a DFA over its size limit drops it
        // from the build and from this test's build alike; here it shows.
        assert_eq!(
            checked, 52,
            "built-in detectors with DFAs (update on purpose)"
        );
    }

    #[test]
    fn dfa_matches_are_the_regex_matches() {
        // Every built-in detector whose match is taken from its DFAs (its regex is then never
        // built in a VM) finds, at every offset of texts made of its own examples' bytes, the
        // bytes numbers are written with and what a hostile body would put between them
        // (digits of other scripts, Unicode spaces and joiners, invalid UTF-8), exactly the
        // match its regex finds.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let pack: PackFile = toml::from_str(BUILTIN_PACK).expect("pack");
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for d in &detectors.list {
            let (Some(SmallDfa::Regex(dre)), false, 0) = (d.dfa.get(), d.regex.is_none(), d.group)
            else {
                continue;
            };
            checked += 1;
            let spec = pack
                .detector
                .iter()
                .find(|p| *p.id == *d.id)
                .expect("in pack");
            // The reference: the `regex` crate's search of the pattern (a VM builds neither).
            let re = crate::matcher::tests::oracle(spec.pattern.as_deref().expect("pattern"));
            let mut alphabet: Vec<&[u8]> = b"0123456789 -./()+:aZ_"
                .chunks(1)
                .chain(spec.example.as_deref().unwrap_or("").as_bytes().chunks(1))
                .collect();
            let hostile: [&[u8]; 8] = [
                "\u{0663}".as_bytes(), // Arabic-Indic three
                "\u{FF13}".as_bytes(), // fullwidth three
                "\u{00A0}".as_bytes(), // no-break space
                "\u{200B}".as_bytes(), // zero-width space
                "\u{00E9}".as_bytes(), // a letter outside ASCII
                b"\xFF",               // never UTF-8
                b"\xC3",               // a lead byte without its continuation
                b"\x80",               // a continuation byte alone
            ];
            alphabet.extend(hostile);
            let example = spec.example.clone().unwrap_or_default().into_bytes();
            for _ in 0..3_000 {
                let len = (next() % 48) as usize;
                let mut text: Vec<u8> = (0..len)
                    .flat_map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .copied()
                    .collect();
                if next().is_multiple_of(3) {
                    // Its example somewhere in the text: whole, or with one byte replaced by a
                    // hostile one (a digit of another script where an ASCII digit was).
                    let mut example = example.clone();
                    if !example.is_empty() && next().is_multiple_of(2) {
                        let i = (next() as usize) % example.len();
                        let with = hostile[(next() % hostile.len() as u64) as usize];
                        example.splice(i..=i, with.iter().copied());
                    }
                    let at = (next() as usize) % (text.len() + 1);
                    text.splice(at..at, example);
                }
                for at in 0..=text.len() {
                    let input = regex_automata::Input::new(&text).range(at..);
                    let got = dre.try_search(&input).expect("no quit bytes");
                    let want = re.find_at(&text, at);
                    assert_eq!(
                        got.map(|m| (m.start(), m.end())),
                        want.map(|m| (m.start(), m.end())),
                        "{} at {at} in {:?}",
                        d.id,
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
        assert!(
            checked >= 15,
            "only {checked} detectors take matches from DFAs"
        );
    }

    #[test]
    fn the_mac_gate_passes_every_text_the_mac_pattern_matches() {
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let mac = detectors
            .list
            .iter()
            .find(|d| &*d.id == "mac_address")
            .expect("mac");
        let re = mac.regex.get().expect("regex");
        let mut next = xorshift(0x1234_5678_9abc_def1);
        let alphabet = b"0123456789abcdefABCDEF:-. xZ";
        let (mut matched, mut gated_out) = (0, 0);
        for _ in 0..100_000 {
            let len = (next() % 24) as usize;
            let mut text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            // A MAC in either form, most of the time, with one byte changed now and then.
            if !next().is_multiple_of(4) {
                let mut mac = Vec::new();
                if next().is_multiple_of(3) {
                    for g in 0..3 {
                        if g > 0 {
                            mac.push(b'.');
                        }
                        mac.extend((0..4).map(|_| b"0123456789abcdef"[(next() % 16) as usize]));
                    }
                } else {
                    for g in 0..6 {
                        if g > 0 {
                            mac.push(b":-"[(next() % 2) as usize]);
                        }
                        mac.extend((0..2).map(|_| b"0123456789ABCDEF"[(next() % 16) as usize]));
                    }
                }
                if next().is_multiple_of(2) {
                    let i = (next() % mac.len() as u64) as usize;
                    mac[i] = alphabet[(next() % alphabet.len() as u64) as usize];
                }
                let at = (next() % (text.len() as u64 + 1)) as usize;
                text.splice(at..at, mac);
            }
            let passes = text.len() >= 14 && mac_separators(&masks_of(&text));
            if re.is_match(&text) {
                matched += 1;
                assert!(passes, "{:?}", String::from_utf8_lossy(&text));
            } else if !passes {
                gated_out += 1;
            }
        }
        assert!(
            matched > 30_000 && gated_out > 10_000,
            "{matched} {gated_out}"
        );
        assert!(mac_separators(&masks_of(b"mac 001a.2b3c.4d5e")));
        assert!(!mac_separators(&masks_of(
            b"Version 1.2.3 - see docs. Thanks - bye."
        )));
    }

    #[test]
    fn a_text_shorter_than_a_patterns_shortest_match_skips_it() {
        assert_eq!(pattern_min_len("[13][1-9A-HJ-NP-Za-km-z]{25,34}"), 26);
        assert_eq!(pattern_min_len("(?:bc1|BC1)[0-9a-z]{11,71}"), 14);
        assert_eq!(pattern_min_len("a|"), 0);
        assert_eq!(pattern_min_len("(unclosed"), 0);
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let btc = detectors
            .list
            .iter()
            .position(|d| &*d.id == "btc_address")
            .expect("btc");
        assert!(needing_more(&detectors.need_len, 25).has(btc));
        assert!(!needing_more(&detectors.need_len, 26).has(btc));
    }

    #[test]
    fn a_shape_ruled_out_holds_no_dfa_match() {
        // Every numeric detector, random numeric spans (with the bytes before them a pattern's
        // look-behind can see): where the span's shape says "cannot match", the DFA search the
        // scan would have run there finds nothing, from every offset.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let separators = b" -./()+";
        let befores: [&[u8]; 6] = [b"", b"a", b":", b"\n", b"\"", b"\xc3"];
        let (mut ruled_out, mut searched) = (0, 0);
        for _ in 0..4_000 {
            let len = 1 + (next() % span_shape::MAX_SHAPE_LEN as u64) as usize;
            let span: Vec<u8> = (0..len)
                .map(|_| match next() % 3 {
                    0 => separators[(next() % separators.len() as u64) as usize],
                    _ => b'0' + (next() % 10) as u8,
                })
                .collect();
            let before = befores[(next() % befores.len() as u64) as usize];
            let text = [before, &span].concat();
            let (start, end) = (before.len(), text.len());
            let key = span_shape::shape_key(&text, start, end).expect("short");
            for (i, d) in detectors.list.iter().enumerate() {
                let Some(dfa) = d.dfa.get().filter(|_| detectors.numeric.has(i)) else {
                    continue;
                };
                if span_shape::may_match(dfa.forward(), &key, &mut u64::MAX.clone()) != Some(false)
                {
                    continue;
                }
                ruled_out += 1;
                for at in start..end {
                    searched += 1;
                    let input = regex_automata::Input::new(&text[..end]).range(at..);
                    assert_eq!(
                        dfa.forward().try_search_fwd(&input).expect("no quit"),
                        None,
                        "{} ruled out {:?} after {:?}",
                        d.id,
                        String::from_utf8_lossy(&span),
                        before
                    );
                }
            }
        }
        assert!(
            ruled_out > 50_000 && searched > 500_000,
            "{ruled_out} {searched}"
        );
    }

    #[test]
    fn the_shape_memo_is_bounded_and_answers_for_every_detector_past_it() {
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let all = detectors.numeric;
        let date = b"on 2024-05-12";
        let may = detectors.span_may_match(date, 3, date.len(), all);
        assert_ne!(may, all, "a date rules some detectors out");
        // A detector decided alone answers as when decided with the others.
        let first = DetectorMask::bit(all.ones().next().expect("a numeric detector"));
        let fresh = Detectors::compile(&[], 0.0).expect("compile");
        assert_eq!(
            fresh.span_may_match(date, 3, date.len(), first),
            may & first
        );
        for i in 0..span_shape::MAX_SHAPES + 100 {
            // A distinct shape each (i's bits as digits and dashes), one detector decided.
            let bits: String = (0..14)
                .map(|b| if i >> b & 1 == 1 { '-' } else { '5' })
                .collect();
            let text = format!("x9{bits}");
            detectors.span_may_match(text.as_bytes(), 1, text.len(), first);
        }
        let (shapes, _) = detectors.shapes.stats();
        assert_eq!(shapes, span_shape::MAX_SHAPES);
        // Known shapes still answer; new ones get every numeric detector asked for.
        assert_eq!(detectors.span_may_match(date, 3, date.len(), all), may);
        let new = b"x(9)9(9)9(9)9(9)";
        assert_eq!(detectors.span_may_match(new, 1, new.len(), all), all);
        // Too long to memoise: every numeric detector asked for.
        let long = [b'7'; span_shape::MAX_SHAPE_LEN + 1];
        assert_eq!(detectors.span_may_match(&long, 0, long.len(), all), all);
    }

    #[test]
    fn the_shape_memo_stops_at_its_step_budget_or_size() {
        // Long random shapes (the most a shape costs), until the memo takes no more: past
        // that, shapes decided before still answer and new ones get every detector.
        let detectors = Detectors::compile(&[], 0.0).expect("compile");
        let all = detectors.numeric;
        let date = b"on 2024-05-12";
        let may = detectors.span_may_match(date, 3, date.len(), all);
        detectors.prepare();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let t0 = std::time::Instant::now();
        loop {
            let (shapes, left) = detectors.shapes.stats();
            if left == 0 || shapes == span_shape::MAX_SHAPES {
                eprintln!(
                    "memo full: {shapes} shapes, {left} steps left, {:?}",
                    t0.elapsed()
                );
                break;
            }
            let text: Vec<u8> = (0..span_shape::MAX_SHAPE_LEN)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [b'1', b'2', b' ', b'-', b'.', b'(', b'+'][(seed % 7) as usize]
                })
                .collect();
            detectors.span_may_match(&text, 0, text.len(), all);
        }
        assert_eq!(detectors.span_may_match(date, 3, date.len(), all), may);
        let new = b"x(9)9(9)9(9)9(9)";
        assert_eq!(detectors.span_may_match(new, 1, new.len(), all), all);
    }

    #[test]
    fn the_corpus_shapes_take_a_fraction_of_the_memo_budget() {
        // Realistic traffic must not run the memo dry: every body of the corpus, inspected,
        // takes under half of the step budget and a quarter of the map.
        let policy = crate::Policy::builtin_default().expect("policy");
        let corpus = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/corpus/api-bodies.jsonl"
        ))
        .expect("corpus");
        let route = policy.route("POST", "/", "api");
        for line in corpus.lines() {
            let rec: serde_json::Value = serde_json::from_str(line).expect("jsonl");
            let body = rec["body"].as_str().expect("body");
            let ct = rec["content_type"].as_str().unwrap_or("application/json");
            policy.inspect(&crate::Exchange {
                route,
                direction: crate::Direction::Response,
                content_type: Some(ct),
                scopes: &[],
                body: body.as_bytes(),
            });
        }
        let (shapes, left) = policy.inner.detectors.shapes.stats();
        let used = span_shape::SHAPE_STEPS - left;
        assert!(shapes > 100, "{shapes} shapes");
        assert!(
            shapes < span_shape::MAX_SHAPES / 4 && used < span_shape::SHAPE_STEPS / 2,
            "{shapes} shapes, {used} steps"
        );
        eprintln!("corpus: {shapes} shapes, {used} steps");
    }
}
