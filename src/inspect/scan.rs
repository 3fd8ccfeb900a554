//! Walkers per body kind (JSON, NDJSON, form, text): they collect candidates - detector hits
//! and field-rule matches with their raw byte spans - and decide nothing.
//!
//! Whatever a walker cannot decode is still scanned as it is: a string with an invalid escape
//! is decoded leniently, a key is scanned like a value, a percent-encoded text is scanned again
//! decoded, and JSON held in a JSON string (escaped once per level) is walked again, up to
//! [`MAX_LAYERS`] decodings deep. Every decoding keeps an offset map, so a span found in the
//! innermost text maps back, through every layer, to the raw bytes of the body.

use std::cell::Cell;
use std::sync::Arc;

use crate::detect::{emptied, ClassId, Hit, KeyCtx, KeywordHit, KeywordHits, Scratch, Wanted};
use crate::json::{self, Kind, PathStack, Value};
use crate::jsonpath::{self, Step};
use crate::manifest::BodyKind;
use crate::policy::{Plan, Policy};
use crate::transform::Action;

use super::resolve::prune_overlapping_hits;

/// At most this many decodings (JSON string escapes, percent-encoding, JSON inside a string) are
/// stacked on one text: a message envelope inside a queue event inside an API response is three.
pub(crate) const MAX_LAYERS: u8 = 8;

/// Paths are rendered for at most this many candidates per body; later ones share an elided
/// path. Reported findings are capped below this (see `MAX_REPORTED_FINDINGS`).
const MAX_RENDERED_PATHS: usize = 2 * super::MAX_REPORTED_FINDINGS;

/// How a finding's replacement is written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Site {
    /// Inside a JSON string: replacement is JSON-escaped.
    JsonString,
    /// An object key: JSON-escaped, and made unique (see `Policy::decide`).
    JsonKey,
    /// A whole JSON number, literal or container: replacement becomes a JSON string.
    JsonWhole,
    /// Plain text: replacement written as is.
    Text,
    /// A form value: replacement percent-encoded.
    Form,
}

/// A finding before resolution and actions.
#[derive(Debug)]
pub(super) struct Candidate {
    pub(super) class: ClassId,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) confidence: f32,
    /// Detector index, or field rule index (with `from_field`).
    pub(super) source: usize,
    pub(super) from_field: bool,
    /// Field rule whose action overrides (rules without a class).
    pub(super) rule_action: Option<usize>,
    pub(super) site: Site,
    /// JSON string layers around the site beyond its own (JSON nested in JSON strings): the
    /// replacement is JSON-escaped once more for each.
    pub(super) levels: u8,
    /// Decoded value when it differs from the raw bytes (escapes, percent-encoding, numbers).
    pub(super) decoded: Option<Vec<u8>>,
    /// Rendered once per value with findings, shared by its candidates.
    pub(super) path: Option<Arc<str>>,
    /// For `drop`: where the JSON member starts and its value ends, and whether the value is
    /// the document itself (then it becomes `null`). `None` in text and form bodies.
    pub(super) member: Option<(usize, usize, bool)>,
}

impl Candidate {
    /// A detector hit at `start..end` of the body.
    fn from_hit(h: &Hit, start: usize, end: usize, site: Site) -> Candidate {
        Candidate {
            class: h.class,
            start,
            end,
            confidence: h.confidence,
            source: usize::from(h.detector),
            from_field: false,
            rule_action: None,
            site,
            levels: 0,
            decoded: None,
            path: None,
            member: None,
        }
    }

    /// A whole value that field rule `rule` declares to be of `class`.
    fn from_rule(rule: usize, class: ClassId, start: usize, end: usize, site: Site) -> Candidate {
        Candidate {
            class,
            start,
            end,
            confidence: 1.0,
            source: rule,
            from_field: true,
            rule_action: None,
            site,
            levels: 0,
            decoded: None,
            path: None,
            member: None,
        }
    }
}

/// Where a text being scanned comes from: how its offsets map back to the body, and what its
/// findings inherit.
#[derive(Clone, Copy)]
struct Origin<'a> {
    /// Text offset -> offset in the parent text (before `shift`), when the text was decoded.
    map: Option<&'a [usize]>,
    /// Offset of the text (or of the raw text `map` refers to) in the parent.
    shift: usize,
    parent: Option<&'a Origin<'a>>,
    /// JSON string layers around this text (0 for a body, 1 for a string of the body, ...).
    json_levels: u8,
    /// Decodings so far.
    layers: u8,
    /// The rendered path of the string holding a nested document.
    prefix: Option<&'a str>,
    /// A field rule's action inherited from an enclosing value.
    rule_action: Option<usize>,
}

impl<'a> Origin<'a> {
    fn body(shift: usize) -> Origin<'static> {
        Origin {
            map: None,
            shift,
            parent: None,
            json_levels: 0,
            layers: 0,
            prefix: None,
            rule_action: None,
        }
    }

    /// A text at `shift` of this one, as it is (`map: None`) or decoded.
    fn child(&'a self, shift: usize, map: Option<&'a [usize]>) -> Origin<'a> {
        Origin {
            map,
            shift,
            parent: Some(self),
            layers: self.layers + u8::from(map.is_some()),
            ..*self
        }
    }

    fn body_offset(&self, p: usize) -> usize {
        let q = match self.map {
            Some(m) => m.get(p).or(m.last()).copied().unwrap_or(0),
            None => p,
        } + self.shift;
        match self.parent {
            Some(o) => o.body_offset(q),
            None => q,
        }
    }

    /// The body itself: no parent, no decoding, no enclosing string or field rule.
    fn is_body(&self) -> bool {
        self.parent.is_none()
            && self.map.is_none()
            && self.json_levels == 0
            && self.layers == 0
            && self.rule_action.is_none()
    }

    fn decoded(&self) -> bool {
        self.map.is_some() || self.parent.is_some_and(Origin::decoded)
    }
}

/// A value's path, rendered on first use.
struct LazyPath<'a> {
    stack: Option<(&'a PathStack, &'a [u8])>,
    prefix: Option<&'a str>,
    rendered: Option<Arc<str>>,
}

impl LazyPath<'_> {
    const NONE: LazyPath<'static> = LazyPath {
        stack: None,
        prefix: None,
        rendered: None,
    };
}

/// Runs the plan's detectors over one text into `hits` (cleared first).
fn detect(
    policy: &Policy,
    plan: &Plan,
    text: &[u8],
    ctx: KeyCtx<'_>,
    keywords: Option<crate::detect::DetectorMask>,
    scratch: &mut Scratch,
    hits: &mut Vec<Hit>,
) {
    hits.clear();
    policy.inner.detectors.scan(
        text,
        ctx,
        Wanted {
            enabled: plan.enabled,
            keywords,
            min_confidence: policy.inner.min_confidence,
        },
        scratch,
        hits,
    );
}

pub(super) fn sniff(body: &[u8]) -> BodyKind {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => BodyKind::Json,
        _ => BodyKind::Text,
    }
}

/// Walks a body and collects candidates.
pub(super) struct Scanner<'p, 'b> {
    policy: &'p Policy,
    plan: &'p Plan,
    body: &'b [u8],
    pub(super) candidates: Vec<Candidate>,
    pub(super) records: u64,
    hits: Vec<Hit>,
    /// The detectors' working memory, reused from text to text.
    scratch: Scratch,
    /// Keyword positions from one prefilter pass over the whole body.
    keywords: KeywordHits,
    /// Keyword positions in the JSON document nested in a string being walked (one pass over
    /// it, not one per string in it), with the `layers` of its strings' origin.
    nested_keywords: Option<(u8, KeywordHits)>,
    paths_rendered: usize,
    /// The path shared by candidates past [`MAX_RENDERED_PATHS`], made when first needed.
    elided: Option<Arc<str>>,
    /// Where paths are rendered before they are shared (one buffer for the body).
    path_buf: String,
    /// Path stacks for the documents walked (one per level of JSON nested in a string),
    /// reused: a stack grows its segments and their key buffers once, not once a body.
    paths: Vec<PathStack>,
}

/// A scan's working buffers, kept per thread (a Wasm VM has one) when the scan ends and
/// reused, emptied, by the next one: most bodies then grow none of them from nothing. A
/// buffer a large body grew past [`KEPT_CAPACITY`] entries ([`KEPT_CANDIDATES`] for the
/// candidates) is freed instead of kept.
#[derive(Default)]
struct Spare {
    candidates: Vec<Candidate>,
    hits: Vec<Hit>,
    scratch: Scratch,
    keyword_hits: Vec<KeywordHit>,
    path_buf: String,
    paths: Vec<PathStack>,
}

/// The most entries a kept buffer may hold room for (~225 KiB in all: the text byte classes,
/// 56 bytes an entry, added 56 KiB in session 28).
const KEPT_CAPACITY: usize = 1024;

/// The most candidates a kept buffer may hold room for (~35 KiB more, a candidate being ~136
/// bytes): most bodies have fewer findings, and each grew its list from nothing (0.5% of the
/// corpus's instructions).
const KEPT_CANDIDATES: usize = 256;

/// The most path stacks kept (documents nested in strings in documents, a few levels deep),
/// and the most levels a kept one may have: a body nested thousands deep does not leave its
/// stack behind.
const KEPT_PATHS: usize = 4;
const KEPT_PATH_DEPTH: usize = 64;

thread_local! {
    static SPARE: Cell<Option<Spare>> = const { Cell::new(None) };
}

impl Drop for Scanner<'_, '_> {
    fn drop(&mut self) {
        let keyword_hits = std::mem::take(&mut self.keywords).into_buffer();
        let path_buf = emptied(
            std::mem::take(&mut self.path_buf).into_bytes(),
            KEPT_CAPACITY,
        );
        let mut spare = Spare {
            candidates: emptied(std::mem::take(&mut self.candidates), KEPT_CANDIDATES),
            hits: emptied(std::mem::take(&mut self.hits), KEPT_CAPACITY),
            scratch: std::mem::take(&mut self.scratch),
            keyword_hits: emptied(keyword_hits, KEPT_CAPACITY),
            // Empty: valid UTF-8.
            path_buf: String::from_utf8(path_buf).unwrap_or_default(),
            paths: std::mem::take(&mut self.paths),
        };
        spare.scratch.trim(KEPT_CAPACITY);
        SPARE.with(|s| s.set(Some(spare)));
    }
}

/// What field rules say about a value.
enum RuleVerdict {
    /// No rule: detect with the plan's actions.
    None,
    /// Detect inside, but the rule's action applies.
    Override(usize),
    /// The whole value is a finding of the rule's class.
    Whole(usize),
    /// Do not look inside (allowed, or covered by a whole-value rule above).
    Skip,
}

impl<'p, 'b> Scanner<'p, 'b> {
    pub(super) fn new(policy: &'p Policy, plan: &'p Plan, body: &'b [u8], kind: BodyKind) -> Self {
        let spare = SPARE.with(Cell::take).unwrap_or_default();
        Scanner {
            policy,
            plan,
            body,
            candidates: spare.candidates,
            records: 0,
            hits: spare.hits,
            scratch: spare.scratch,
            keywords: match kind {
                BodyKind::Json | BodyKind::Ndjson => {
                    policy
                        .inner
                        .detectors
                        .keyword_hits_into(body, plan.enabled, spare.keyword_hits)
                }
                _ => KeywordHits::none_in(spare.keyword_hits),
            },
            nested_keywords: None,
            paths_rendered: 0,
            elided: None,
            path_buf: spare.path_buf,
            paths: spare.paths,
        }
    }

    fn rule_for(&self, steps: &[Step<'_>]) -> RuleVerdict {
        for (i, r) in self.plan.fields.iter().enumerate() {
            if r.class.is_some() {
                if r.path.matches(steps) {
                    return RuleVerdict::Whole(i);
                }
                if r.path.matches_within(steps) {
                    return RuleVerdict::Skip;
                }
            } else if r.path.matches_within(steps) {
                return if matches!(r.action, Action::Allow) {
                    RuleVerdict::Skip
                } else {
                    RuleVerdict::Override(i)
                };
            }
        }
        RuleVerdict::None
    }

    fn path(&mut self, lazy: &mut LazyPath<'_>) -> Option<Arc<str>> {
        if let Some(p) = &lazy.rendered {
            return Some(p.clone());
        }
        let (stack, doc) = lazy.stack?;
        self.paths_rendered += 1;
        let p: Arc<str> = if self.paths_rendered > MAX_RENDERED_PATHS {
            self.elided.get_or_insert_with(|| Arc::from("$…")).clone()
        } else {
            let s = &mut self.path_buf;
            s.clear();
            s.push_str(lazy.prefix.unwrap_or("$"));
            stack.render_into(doc, s);
            jsonpath::truncate_path(s);
            Arc::from(s.as_str())
        };
        lazy.rendered = Some(p.clone());
        Some(p)
    }

    /// Walks one JSON document of the body (`base`: where it starts).
    pub(super) fn json(&mut self, base: usize, doc: &[u8]) -> Result<(), String> {
        let origin = Origin::body(base);
        self.json_doc(doc, &origin)
            .map_err(|e| format!("malformed JSON at byte {}: {}", base + e.offset, e.message))
    }

    /// Walks a JSON document: the body's (records counted, field rules apply) or one nested in
    /// a string.
    fn json_doc(&mut self, doc: &[u8], origin: &Origin<'_>) -> Result<(), json::SyntaxError> {
        let plan = self.plan;
        // Kept stacks are emptied when kept (below): ready as they come.
        let mut path = self.paths.pop().unwrap_or_default();
        let top = origin.json_levels == 0;
        let has_rules = top && !plan.fields.is_empty();
        let records_path = plan
            .scope
            .as_ref()
            .and_then(|s| s.max_records.as_ref())
            .filter(|_| top)
            .map(|(p, _)| p);
        let mut records = 0u64;
        let nested = origin.parent.is_some() || origin.json_levels > 0;
        let outer_keywords = if nested {
            let hits = self.policy.inner.detectors.keyword_hits(doc, plan.enabled);
            self.nested_keywords.replace((origin.layers, hits))
        } else {
            None
        };
        let result = json::walk(doc, &mut path, |p, v| {
            if let (Some(rp), Kind::Array { len }) = (records_path, v.kind) {
                if rp.matches(&p.steps(doc)) {
                    records += len as u64;
                }
            }
            self.json_value(doc, origin, p, v, has_rules);
        });
        self.records += records;
        if nested {
            self.nested_keywords = outer_keywords;
        }
        if self.paths.len() < KEPT_PATHS && path.keepable(KEPT_PATH_DEPTH, KEPT_CAPACITY) {
            // Emptied when kept, as the other kept buffers are.
            path.reset();
            self.paths.push(path);
        }
        result
    }

    /// What the walk calls for every value: the values with nothing to do (containers without
    /// field rules, identifier-like keys) return here, inlined into the walk's callback, without
    /// the call of the large function that scans the others (a third of the calls).
    #[inline(always)]
    fn json_value(
        &mut self,
        doc: &[u8],
        origin: &Origin<'_>,
        p: &mut PathStack,
        v: &Value,
        has_rules: bool,
    ) {
        match v.kind {
            Kind::Key { escaped } => {
                let (s, e) = v.inner();
                let raw = &doc[s..e];
                // Identifier-like keys hold no value any detector finds: skip them cheaply.
                if escaped
                    || raw.len() > 32
                    || !raw.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_')
                {
                    self.json_key(doc, origin, p, v, escaped);
                }
            }
            Kind::String { escaped: false } if !has_rules && origin.is_body() => {
                self.json_body_string(doc, origin, p, v)
            }
            Kind::String { .. } | Kind::Number => self.json_scalar(doc, origin, p, v, has_rules),
            _ if has_rules => self.json_scalar(doc, origin, p, v, has_rules),
            // A container or literal without field rules: nothing to do.
            _ => {}
        }
    }

    /// A string of the body itself without escapes, when no field rule applies (most strings):
    /// what `json_scalar`, `json_string` and `text_layers` do for it, without building the
    /// origin, member span and path a finding needs until the detectors found one.
    #[inline(never)]
    fn json_body_string(&mut self, doc: &[u8], origin: &Origin<'_>, p: &mut PathStack, v: &Value) {
        let (s, e) = v.inner();
        let raw = &doc[s..e];
        if looks_like_json(raw) {
            // JSON inside: walked as a nested document.
            return self.json_scalar(doc, origin, p, v, false);
        }
        let ctx = KeyCtx {
            key: p.key(),
            parent: p.parent_key(),
        };
        let keywords = self
            .keywords
            .within(origin.body_offset(s), origin.body_offset(e));
        detect(
            self.policy,
            self.plan,
            raw,
            ctx,
            Some(keywords),
            &mut self.scratch,
            &mut self.hits,
        );
        if self.hits.is_empty() && !crate::bytes::has3(b'\\', b'%', b'&', raw) {
            return;
        }
        // The origin, member and path `json_scalar` and `json_string` would have built.
        let member = Some((
            origin.body_offset(v.member_start),
            origin.body_offset(v.outer_end),
            p.is_root(),
        ));
        let string_origin = Origin {
            json_levels: origin.json_levels + 1,
            ..*origin
        };
        let o = string_origin.child(s, None);
        let mut lazy = LazyPath {
            stack: Some((&*p, doc)),
            prefix: origin.prefix,
            rendered: None,
        };
        self.after_detect(raw, &o, ctx, &mut lazy, Site::JsonString, member);
    }

    /// A value with something to do: a string or number to scan, or any value when field rules
    /// may match it.
    #[inline(never)]
    fn json_scalar(
        &mut self,
        doc: &[u8],
        origin: &Origin<'_>,
        p: &mut PathStack,
        v: &Value,
        has_rules: bool,
    ) {
        let is_scannable = matches!(v.kind, Kind::String { .. } | Kind::Number);
        let verdict = if has_rules {
            self.rule_for(&p.steps(doc))
        } else {
            RuleVerdict::None
        };
        let member = (origin.json_levels == 0).then(|| {
            (
                origin.body_offset(v.member_start),
                origin.body_offset(v.outer_end),
                p.is_root(),
            )
        });
        let mut lazy = LazyPath {
            stack: Some((&*p, doc)),
            prefix: origin.prefix,
            rendered: None,
        };
        match verdict {
            RuleVerdict::Skip => {}
            RuleVerdict::Whole(rule) => {
                if v.kind == Kind::Literal && &doc[v.outer_start..v.outer_end] == b"null" {
                    return;
                }
                let (site, start, end, decoded) = match v.kind {
                    Kind::String { escaped } => {
                        let (s, e) = v.inner();
                        let decoded = escaped.then(|| {
                            let mut out = Vec::new();
                            json::decode_lossy(&doc[s..e], &mut out, None);
                            out
                        });
                        (Site::JsonString, s, e, decoded)
                    }
                    _ => (Site::JsonWhole, v.outer_start, v.outer_end, None),
                };
                let class = self.plan.fields[rule].class.unwrap_or_default();
                let path = self.path(&mut lazy);
                self.candidates.push(Candidate {
                    decoded,
                    path,
                    member,
                    ..Candidate::from_rule(
                        rule,
                        class,
                        origin.body_offset(start),
                        origin.body_offset(end),
                        site,
                    )
                });
            }
            RuleVerdict::None | RuleVerdict::Override(_) => {
                // A number shorter than 8 characters holds no card, SSN, phone or date.
                if !is_scannable || (v.kind == Kind::Number && v.outer_end - v.outer_start < 8) {
                    return;
                }
                let rule_action = match verdict {
                    RuleVerdict::Override(r) => Some(r),
                    _ => origin.rule_action,
                };
                let ctx = KeyCtx {
                    key: p.key(),
                    parent: p.parent_key(),
                };
                let (s, e) = v.inner();
                match v.kind {
                    Kind::Number => {
                        detect(
                            self.policy,
                            self.plan,
                            &doc[s..e],
                            ctx,
                            None,
                            &mut self.scratch,
                            &mut self.hits,
                        );
                        if let Some(h) = best_hit(&self.hits) {
                            let path = self.path(&mut lazy);
                            let decoded = origin.decoded().then(|| doc[s..e].to_vec());
                            self.candidates.push(Candidate {
                                rule_action,
                                decoded,
                                path,
                                member,
                                levels: origin.json_levels,
                                ..Candidate::from_hit(
                                    &h,
                                    origin.body_offset(s),
                                    origin.body_offset(e),
                                    Site::JsonWhole,
                                )
                            });
                        }
                    }
                    Kind::String { escaped } => {
                        let origin = Origin {
                            rule_action,
                            ..*origin
                        };
                        self.json_string(
                            &doc[s..e],
                            s,
                            escaped,
                            ctx,
                            &origin,
                            &mut lazy,
                            Site::JsonString,
                            member,
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Object keys are scanned like values (a map keyed by email addresses), without a key hint;
    /// the identifier-like ones are passed over before this (see [`Scanner::json_value`]).
    #[inline(never)]
    fn json_key(
        &mut self,
        doc: &[u8],
        origin: &Origin<'_>,
        p: &mut PathStack,
        v: &Value,
        escaped: bool,
    ) {
        let (s, e) = v.inner();
        let raw = &doc[s..e];
        let mark = self.candidates.len();
        let ctx = KeyCtx {
            key: None,
            parent: p.parent_key(),
        };
        let mut lazy = LazyPath::NONE;
        self.json_string(raw, s, escaped, ctx, origin, &mut lazy, Site::JsonKey, None);
        if let Some(first) = self.candidates.get(mark) {
            // The key is a value: its path segment shows the class, never the key.
            let class = self
                .policy
                .inner
                .detectors
                .classes
                .name(first.class)
                .clone();
            p.label_key(class);
            let mut lazy = LazyPath {
                stack: Some((&*p, doc)),
                prefix: origin.prefix,
                rendered: None,
            };
            let path = self.path(&mut lazy);
            for c in &mut self.candidates[mark..] {
                c.path = path.clone();
            }
        }
    }

    /// Scans the raw contents of a JSON string (`at`: where they start in the document).
    #[allow(clippy::too_many_arguments)]
    fn json_string(
        &mut self,
        raw: &[u8],
        at: usize,
        escaped: bool,
        ctx: KeyCtx<'_>,
        origin: &Origin<'_>,
        lazy: &mut LazyPath<'_>,
        site: Site,
        member: Option<(usize, usize, bool)>,
    ) {
        let string_origin = Origin {
            json_levels: origin.json_levels + 1,
            ..*origin
        };
        let keywords = self.string_keywords(raw, at, escaped, origin);
        if escaped {
            let mut buf = Vec::with_capacity(raw.len());
            let mut map = Vec::with_capacity(raw.len() + 1);
            json::decode_lossy(raw, &mut buf, Some(&mut map));
            let o = string_origin.child(at, Some(map.as_slice()));
            self.text_layers(&buf, &o, ctx, lazy, site, member, keywords);
        } else {
            let o = string_origin.child(at, None);
            self.text_layers(raw, &o, ctx, lazy, site, member, keywords);
        }
    }

    /// The keyword-triggered detectors of a JSON string (raw contents `raw` at `at` in its
    /// document), from the search of the body or of the nested document being walked; `None`
    /// when the string must be searched on its own once decoded (its escapes may write a
    /// keyword: `\u0040`).
    fn string_keywords(
        &self,
        raw: &[u8],
        at: usize,
        escaped: bool,
        origin: &Origin<'_>,
    ) -> Option<crate::detect::DetectorMask> {
        let (hits, start, end) = if origin.parent.is_none() && origin.json_levels == 0 {
            let (s, e) = (origin.body_offset(at), origin.body_offset(at + raw.len()));
            (&self.keywords, s, e)
        } else {
            match &self.nested_keywords {
                // A string of the nested document being walked: offsets into that document.
                Some((layers, hits)) if *layers == origin.layers => (hits, at, at + raw.len()),
                _ => return None,
            }
        };
        if !escaped {
            return Some(hits.within(start, end));
        }
        let detectors = &self.policy.inner.detectors;
        if !detectors.keywords_survive_escapes(raw) {
            return None;
        }
        Some(hits.within_escaped(start, end, raw))
    }

    /// Scans a text, then what it may hide: JSON inside it, escapes left in it, percent-escapes.
    #[allow(clippy::too_many_arguments)]
    fn text_layers(
        &mut self,
        text: &[u8],
        origin: &Origin<'_>,
        ctx: KeyCtx<'_>,
        lazy: &mut LazyPath<'_>,
        site: Site,
        member: Option<(usize, usize, bool)>,
        keywords: Option<crate::detect::DetectorMask>,
    ) {
        let deeper = origin.layers < MAX_LAYERS;
        if deeper && site == Site::JsonString && looks_like_json(text) {
            // JSON in a JSON string: walk it, keys and all; if it does not parse, scan it as text.
            let mark = self.candidates.len();
            let prefix = self.path(lazy);
            let nested = Origin {
                prefix: prefix.as_deref(),
                layers: origin.layers + 1,
                ..*origin
            };
            if self.json_doc(text, &nested).is_ok() {
                return;
            }
            self.candidates.truncate(mark);
        }
        detect(
            self.policy,
            self.plan,
            text,
            ctx,
            keywords,
            &mut self.scratch,
            &mut self.hits,
        );
        self.after_detect(text, origin, ctx, lazy, site, member);
    }

    /// What [`Scanner::text_layers`] does after the detectors ran over `text` (their hits in
    /// `self.hits`): candidates from the hits, then the encodings the text may hide.
    fn after_detect(
        &mut self,
        text: &[u8],
        origin: &Origin<'_>,
        ctx: KeyCtx<'_>,
        lazy: &mut LazyPath<'_>,
        site: Site,
        member: Option<(usize, usize, bool)>,
    ) {
        if !self.hits.is_empty() {
            self.push_hits(text, origin, lazy, site, member);
        }
        let deeper = origin.layers < MAX_LAYERS;
        // One pass for the three encodings below; most texts hold none of their marks.
        if !deeper || !crate::bytes::has3(b'\\', b'%', b'&', text) {
            return;
        }
        if matches!(site, Site::JsonString | Site::JsonKey) && has_json_escape(text) {
            // Escaped once more than the document needs (a string serialised twice).
            let mut buf = Vec::with_capacity(text.len());
            let mut map = Vec::with_capacity(text.len() + 1);
            json::decode_lossy(text, &mut buf, Some(&mut map));
            let o = Origin {
                json_levels: origin.json_levels + 1,
                ..origin.child(0, Some(map.as_slice()))
            };
            self.text_layers(&buf, &o, ctx, lazy, site, member, None);
        } else if has_percent_escape(text) {
            let mut buf = Vec::with_capacity(text.len());
            let mut map = Vec::with_capacity(text.len() + 1);
            percent_decode(text, false, &mut buf, Some(&mut map));
            let o = origin.child(0, Some(map.as_slice()));
            self.text_layers(&buf, &o, ctx, lazy, site, member, None);
        } else if has_html_entity(text) {
            // `ada&#64;example.com`, `&commat;`: HTML and XML character references.
            let mut buf = Vec::with_capacity(text.len());
            let mut map = Vec::with_capacity(text.len() + 1);
            entity_decode(text, &mut buf, &mut map);
            let o = origin.child(0, Some(map.as_slice()));
            self.text_layers(&buf, &o, ctx, lazy, site, member, None);
        }
    }

    fn push_hits(
        &mut self,
        text: &[u8],
        origin: &Origin<'_>,
        lazy: &mut LazyPath<'_>,
        site: Site,
        member: Option<(usize, usize, bool)>,
    ) {
        let mut hits = std::mem::take(&mut self.hits);
        if hits.len() > 1 {
            // Several detectors often match the same digits (a card is also a run the phone
            // detectors look at): keep the best per overlap here, before any candidate is built.
            prune_overlapping_hits(&mut hits);
        }
        let path = self.path(lazy);
        let decoded = origin.decoded();
        let levels = match site {
            Site::JsonString | Site::JsonKey => origin.json_levels.saturating_sub(1),
            _ => origin.json_levels,
        };
        for h in &hits {
            let (start, end) = (origin.body_offset(h.start), origin.body_offset(h.end));
            if start >= end {
                continue;
            }
            self.candidates.push(Candidate {
                rule_action: origin.rule_action,
                decoded: decoded.then(|| text.get(h.start..h.end).unwrap_or_default().to_vec()),
                path: path.clone(),
                member,
                levels,
                ..Candidate::from_hit(h, start, end, site)
            });
        }
        self.hits = hits;
    }

    pub(super) fn ndjson(&mut self, lenient: bool) -> Result<Vec<usize>, String> {
        let body = self.body;
        let mut start = 0;
        let mut line_no = 0;
        let mut fallbacks = Vec::new();
        while start < body.len() {
            let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |p| start + p);
            line_no += 1;
            let line = &body[start..end];
            let trimmed_len = line
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(0, |p| p + 1);
            if line[..trimmed_len].iter().any(|b| !b.is_ascii_whitespace()) {
                self.records += 1;
                let saved = self.records;
                let mark = self.candidates.len();
                if let Err(e) = self.json(start, &line[..trimmed_len]) {
                    if !lenient {
                        return Err(format!("line {line_no}: {e}"));
                    }
                    // A line that is not JSON is scanned as text.
                    self.candidates.truncate(mark);
                    self.text(start, &line[..trimmed_len]);
                    fallbacks.push(line_no);
                }
                // Record-limit arrays inside lines are not records of an NDJSON stream.
                self.records = saved;
            }
            start = end + 1;
        }
        Ok(fallbacks)
    }

    /// Scans free text: detectors over the whole text (and its percent-decoding), plus the
    /// values of `key: value`, `key=value`, `"key": "value"`, `<key>value</key>` and
    /// `key="value"` shapes with their keys as hints.
    pub(super) fn text(&mut self, base: usize, text: &[u8]) {
        let origin = Origin::body(base);
        let mut lazy = LazyPath::NONE;
        self.text_layers(
            text,
            &origin,
            KeyCtx::default(),
            &mut lazy,
            Site::Text,
            None,
            None,
        );
        self.text_pairs(text, &origin);
    }

    fn text_pairs(&mut self, text: &[u8], origin: &Origin<'_>) {
        let mut key = Vec::new();
        let mut last_value_end = 0;
        for sep in memchr::memchr3_iter(b':', b'=', b'>', text) {
            if sep < last_value_end {
                continue;
            }
            let mut pairs: Vec<(&[u8], std::ops::Range<usize>)> =
                pair_at(text, sep).into_iter().collect();
            if text[sep] == b'>' {
                pairs.extend(html_pairs(text, sep));
            }
            for (k, value) in pairs {
                self.text_pair(text, origin, k, value, &mut key, &mut last_value_end);
            }
        }
    }

    /// One key/value shape of a text: the value is scanned with the key's hints.
    fn text_pair(
        &mut self,
        text: &[u8],
        origin: &Origin<'_>,
        k: &[u8],
        value: std::ops::Range<usize>,
        key: &mut Vec<u8>,
        last_value_end: &mut usize,
    ) {
        let detectors = &self.policy.inner.detectors;
        {
            let Ok(k) = std::str::from_utf8(k) else {
                return;
            };
            jsonpath::normalize_key(k, key);
            if !detectors.is_hinted_key(key) {
                return;
            }
            let ctx = KeyCtx {
                key: Some(key.as_slice()),
                parent: None,
            };
            detect(
                self.policy,
                self.plan,
                &text[value.clone()],
                ctx,
                None,
                &mut self.scratch,
                &mut self.hits,
            );
            if !self.hits.is_empty() {
                let o = origin.child(value.start, None);
                let mut lazy = LazyPath::NONE;
                self.push_hits(&text[value.clone()], &o, &mut lazy, Site::Text, None);
            }
            *last_value_end = (*last_value_end).max(value.end);
        }
    }

    pub(super) fn form(&mut self) {
        let body = self.body;
        let mut start = 0;
        let mut key_norm = Vec::new();
        let mut buf = Vec::new();
        let mut map = Vec::new();
        while start <= body.len() {
            let end = memchr::memchr(b'&', &body[start..]).map_or(body.len(), |p| start + p);
            let pair = &body[start..end];
            let (k, v_start) = match pair.iter().position(|b| *b == b'=') {
                Some(eq) => (&pair[..eq], start + eq + 1),
                None => (pair, end),
            };
            if !k.is_empty()
                && !k
                    .iter()
                    .all(|b| b.is_ascii_alphabetic() || b"_-.[]".contains(b))
            {
                // Keys carry values too (and a body that only claims to be a form is one key).
                let origin = Origin::body(start);
                let mut lazy = LazyPath::NONE;
                self.text_layers(
                    k,
                    &origin,
                    KeyCtx::default(),
                    &mut lazy,
                    Site::Form,
                    None,
                    None,
                );
                self.text_pairs(k, &origin);
            }
            let mut key = Vec::new();
            percent_decode(k, true, &mut key, None);
            let key = String::from_utf8_lossy(&key).into_owned();
            jsonpath::normalize_key(&key, &mut key_norm);
            let raw = &body[v_start..end];
            let steps = [Step::Key(key.as_str())];
            let verdict = if self.plan.fields.is_empty() {
                RuleVerdict::None
            } else {
                self.rule_for(&steps)
            };
            let path: Option<Arc<str>> = Some(Arc::from(jsonpath::render(&steps)));
            buf.clear();
            map.clear();
            percent_decode(raw, true, &mut buf, Some(&mut map));
            let decoded_differs = buf.as_slice() != raw;
            match verdict {
                RuleVerdict::Skip => {}
                RuleVerdict::Whole(rule) => {
                    if !raw.is_empty() {
                        let class = self.plan.fields[rule].class.unwrap_or_default();
                        self.candidates.push(Candidate {
                            decoded: decoded_differs.then(|| buf.clone()),
                            path,
                            ..Candidate::from_rule(rule, class, v_start, end, Site::Form)
                        });
                    }
                }
                RuleVerdict::None | RuleVerdict::Override(_) => {
                    let rule_action = if let RuleVerdict::Override(r) = verdict {
                        Some(r)
                    } else {
                        None
                    };
                    let ctx = KeyCtx {
                        key: Some(key_norm.as_slice()),
                        parent: None,
                    };
                    let body_origin = Origin::body(0);
                    let o = Origin {
                        rule_action,
                        ..body_origin.child(v_start, Some(map.as_slice()))
                    };
                    let mut lazy = LazyPath {
                        rendered: path,
                        ..LazyPath::NONE
                    };
                    let decoded = std::mem::take(&mut buf);
                    self.text_layers(&decoded, &o, ctx, &mut lazy, Site::Form, None, None);
                    buf = decoded;
                    if !decoded_differs {
                        for c in self.candidates.iter_mut().rev() {
                            if c.start < v_start {
                                break;
                            }
                            c.decoded = None;
                        }
                    }
                }
            }
            start = end + 1;
        }
    }
}

/// The best hit of a number (a number is replaced whole).
fn best_hit(hits: &[Hit]) -> Option<Hit> {
    hits.iter()
        .copied()
        .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
}

fn looks_like_json(text: &[u8]) -> bool {
    let first = text.iter().position(|b| !b.is_ascii_whitespace());
    let last = text.iter().rposition(|b| !b.is_ascii_whitespace());
    match (first, last) {
        (Some(f), Some(l)) => matches!((text[f], text[l]), (b'{', b'}') | (b'[', b']')),
        _ => false,
    }
}

/// A JSON escape that changes what a text says: `\"`, `\\`, `\/` or `\uXXXX`.
fn has_json_escape(text: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', text).any(|i| match text.get(i + 1) {
        Some(b'"' | b'\\' | b'/') => true,
        Some(b'u') => text
            .get(i + 2..i + 6)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
        _ => false,
    })
}

fn has_percent_escape(text: &[u8]) -> bool {
    memchr::memchr_iter(b'%', text).any(|i| {
        text.get(i + 1..i + 3)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Whether `text` holds an HTML/XML character reference (`&#64;`, `&#x40;`, `&commat;`).
fn has_html_entity(text: &[u8]) -> bool {
    memchr::memchr_iter(b'&', text).any(|i| entity_at(text, i).is_some())
}

/// The character a reference at `text[i]` (an `&`) stands for, and its length.
fn entity_at(text: &[u8], i: usize) -> Option<(char, usize)> {
    const MAX: usize = 12;
    let window = &text[i..text.len().min(i + MAX)];
    let semi = memchr::memchr(b';', window)?;
    let body = std::str::from_utf8(&window[1..semi]).ok()?;
    let c = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        char::from_u32(code)?
    } else {
        match body {
            "commat" => '@',
            "period" => '.',
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "plus" => '+',
            "hyphen" | "dash" => '-',
            "lpar" => '(',
            "rpar" => ')',
            "nbsp" => ' ',
            "colon" => ':',
            "sol" => '/',
            "num" => '#',
            "lowbar" => '_',
            _ => return None,
        }
    };
    Some((c, semi + 1))
}

/// Decodes character references, recording for each output byte the raw offset it came from
/// (like `percent_decode`).
fn entity_decode(raw: &[u8], out: &mut Vec<u8>, map: &mut Vec<usize>) {
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'&' {
            if let Some((c, len)) = entity_at(raw, i) {
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.push(b);
                    map.push(i);
                }
                i += len;
                continue;
            }
        }
        out.push(raw[i]);
        map.push(i);
        i += 1;
    }
    map.push(raw.len());
}

/// HTML shapes that name a value without being `key: value`: `<input name="dob"
/// value="...">`, `<td class="password">...</td>`, `<span itemprop="email">...</span>`. For the
/// start tag closed at `sep`, the names its attributes give and the span each names.
fn html_pairs(text: &[u8], sep: usize) -> Vec<(&[u8], std::ops::Range<usize>)> {
    const MAX_VALUE: usize = 1024;
    let mut out = Vec::new();
    let from = sep.saturating_sub(512);
    let Some(open) = memchr::memrchr(b'<', &text[from..sep]).map(|p| from + p) else {
        return out;
    };
    let tag = &text[open..sep];
    let attr = |name: &[u8]| -> Option<std::ops::Range<usize>> {
        let mut at = 0;
        while let Some(p) = memchr::memmem::find(&tag[at..], name) {
            let start = at + p;
            at = start + name.len();
            let before_ok = start > 0 && matches!(tag[start - 1], b' ' | b'\t' | b'\n' | b'\r');
            let rest = &tag[at..];
            if !before_ok || rest.first() != Some(&b'=') {
                continue;
            }
            let q = *rest.get(1)?;
            if q != b'"' && q != b'\'' {
                continue;
            }
            let s = at + 2;
            let e = memchr::memchr(q, &tag[s..]).map(|p| s + p)?;
            return Some(open + s..open + e);
        }
        None
    };
    let content = {
        let start = sep + 1;
        let limit = text.len().min(start + MAX_VALUE);
        let end = memchr::memchr(b'<', &text[start..limit]).map_or(limit, |p| start + p);
        start..end
    };
    let value = attr(b"value");
    for name in [
        &b"name"[..],
        b"id",
        b"class",
        b"for",
        b"itemprop",
        b"data-field",
    ] {
        if let Some(k) = attr(name) {
            let key = &text[k];
            if let Some(v) = value.clone() {
                out.push((key, v));
            }
            if !content.is_empty() {
                out.push((key, content.clone()));
            }
        }
    }
    out
}

/// The key and value span of a key/value shape whose separator (`:`, `=` or the `>` closing an
/// XML start tag) is at `sep`.
fn pair_at(text: &[u8], sep: usize) -> Option<(&[u8], std::ops::Range<usize>)> {
    const MAX_KEY: usize = 64;
    const MAX_VALUE: usize = 1024;
    let key_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    let (key, value_start, value_end) = if text[sep] == b'>' {
        // <key attr="...">value</key>
        let open = memchr::memrchr(b'<', &text[sep.saturating_sub(512)..sep])
            .map(|p| sep.saturating_sub(512) + p)?;
        let name_start = open + 1;
        let name_len = text[name_start..sep]
            .iter()
            .take_while(|b| key_byte(**b) || **b == b':')
            .count();
        if name_len == 0 || name_len > MAX_KEY || text[sep - 1] == b'/' {
            return None;
        }
        let key = &text[name_start..name_start + name_len];
        let start = sep + 1;
        let end = memchr::memchr(b'<', &text[start..text.len().min(start + MAX_VALUE)])
            .map_or(text.len().min(start + MAX_VALUE), |p| start + p);
        (key, start, end)
    } else {
        // key: value, key=value, "key": "value", key="value"
        let mut k_end = sep;
        while k_end > 0 && text[k_end - 1] == b' ' {
            k_end -= 1;
        }
        if k_end > 0 && matches!(text[k_end - 1], b'"' | b'\'') {
            k_end -= 1;
        }
        let mut k_start = k_end;
        while k_start > 0 && sep - k_start < MAX_KEY && key_byte(text[k_start - 1]) {
            k_start -= 1;
        }
        if k_start == k_end {
            return None;
        }
        let mut start = sep + 1;
        while text.get(start) == Some(&b' ') || text.get(start) == Some(&b'\t') {
            start += 1;
        }
        let limit = text.len().min(start + MAX_VALUE);
        let (start, end) = match text.get(start) {
            Some(&q @ (b'"' | b'\'')) => {
                let s = start + 1;
                let e = memchr::memchr(q, &text[s.min(limit)..limit]).map_or(limit, |p| s + p);
                (s, e)
            }
            _ => {
                let stop: &[u8] = if text[sep] == b'=' {
                    b"&;,\"'<> \t\r\n"
                } else {
                    b"&;,\"'<>\r\n"
                };
                let e = text[start.min(limit)..limit]
                    .iter()
                    .position(|b| stop.contains(b))
                    .map_or(limit, |p| start + p);
                (start, e)
            }
        };
        (&text[k_start..k_end], start, end)
    };
    let mut end = value_end;
    while end > value_start && text[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (end > value_start).then_some((key, value_start..end))
}

/// Decodes `%XX` (and with `plus`, `+` as a space: form encoding), recording raw offsets like
/// `json::decode_string`.
fn percent_decode(raw: &[u8], plus: bool, out: &mut Vec<u8>, mut map: Option<&mut Vec<usize>>) {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < raw.len() {
        let (byte, len) = match raw[i] {
            b'+' if plus => (b' ', 1),
            b'%' => match (
                raw.get(i + 1).and_then(|b| hex(*b)),
                raw.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(h), Some(l)) => ((h * 16 + l) as u8, 3),
                _ => (b'%', 1),
            },
            b => (b, 1),
        };
        out.push(byte);
        if let Some(m) = map.as_deref_mut() {
            m.push(i);
        }
        i += len;
    }
    if let Some(m) = map {
        m.push(raw.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Direction, Exchange, Inspection};

    /// The candidate buffer kept between bodies stays as small as its comment says.
    #[test]
    fn the_kept_candidate_buffer_is_bounded() {
        let size = std::mem::size_of::<Candidate>();
        assert!(
            KEPT_CANDIDATES * size <= 40 << 10,
            "{size} bytes a candidate"
        );
    }

    fn inspect(p: &Policy, body: &[u8]) -> Inspection {
        p.inspect(&Exchange {
            route: p.route("GET", "/", "api"),
            direction: Direction::Response,
            // JSON declared; a text body is sniffed as text.
            content_type: matches!(body.first(), Some(b'{' | b'[')).then_some("application/json"),
            scopes: &[],
            body,
        })
    }

    /// A scan reusing the buffers another left (a large body's, trimmed, a text body's or a small
    /// one's) finds what a scan on a new thread, with new buffers, finds; and no kept buffer holds
    /// room for more than `KEPT_CAPACITY` entries.
    #[test]
    fn a_scan_on_kept_buffers_finds_what_a_new_one_finds() {
        let p = Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy");
        let many: Vec<String> = (0..3000)
            .map(|i| {
                format!("ada{i}@example.com 4111 1111 1111 1111 id 12345 order 0x{i:x} dear Jan")
            })
            .collect();
        let large = serde_json::to_vec(&serde_json::json!({ "items": many })).expect("json");
        let one_text = serde_json::to_vec(&serde_json::json!({ "t": "a@b.co 4111 ".repeat(1500) }))
            .expect("json");
        let bodies: Vec<Vec<u8>> = vec![
            large.clone(),
            b"mail ada@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111".to_vec(),
            one_text,
            br#"{"user": {"email": "ada@example.com", "phone": "+44 20 7946 0958"}}"#.to_vec(),
            br#"{"note": "call 4111 1111 1111 1111 or mail grace@example.org", "n": 12345678}"#
                .to_vec(),
            br#"[{"assignee": "Katherine Harmon"}, {"ip": "88.63.200.174"}]"#.to_vec(),
            br#"{"status": "active"}"#.to_vec(),
            large,
            br#"{"text": "{\"inner\": \"ada@example.com\"}"}"#.to_vec(),
            // Paths: keys that are values, escaped and beyond ASCII, JSON in JSON in JSON, and
            // a document nested deeper than a kept path stack may be.
            br#"{"ada@example.com": {"card": "4111 1111 1111 1111"}, "k\u00e9y": "bob@example.com"}"#
                .to_vec(),
            r#"{"Clé_Été": [{"e-mail": "x@example.com"}], "a": {"b": [[{"ssn": "078-05-1120"}]]}}"#
                .as_bytes()
                .to_vec(),
            br#"{"t": "{\"u\": \"{\\\"v\\\": \\\"ada@example.com\\\"}\"}"}"#.to_vec(),
            format!("{}\"mail\": \"ada@example.com\"{}", "{\"a\": ".repeat(80), "}".repeat(80))
                .into_bytes(),
            // A long key after an escape normalizes to one byte, its decoded copy is long: it
            // must not stay in a kept stack.
            format!("{{\"\\n{}\": {{\"mail\": \"ada@example.com\"}}}}", "_".repeat(100_000))
                .into_bytes(),
            // Malformed: the walk stops three levels down, and the next body starts at the top.
            br#"{"a": {"b": [{"c": "ada@example.com", "d": "#.to_vec(),
            br#"{"status": "active", "mail": "grace@example.org"}"#.to_vec(),
        ];
        let fresh: Vec<String> = bodies
            .iter()
            .map(|b| {
                let (p, b) = (&p, b.clone());
                std::thread::scope(|s| {
                    s.spawn(move || format!("{:?}", inspect(p, &b)))
                        .join()
                        .expect("thread")
                })
            })
            .collect();
        for _ in 0..2 {
            for (b, want) in bodies.iter().zip(&fresh) {
                assert_eq!(&format!("{:?}", inspect(&p, b)), want);
                let kept = SPARE.with(Cell::take).expect("kept buffers");
                assert!(kept.hits.capacity() <= KEPT_CAPACITY);
                assert!(kept.keyword_hits.capacity() <= KEPT_CAPACITY);
                assert!(kept.path_buf.capacity() <= KEPT_CAPACITY);
                assert!(kept.scratch.capacity() <= KEPT_CAPACITY);
                assert!(kept.paths.len() <= KEPT_PATHS);
                assert!(kept
                    .paths
                    .iter()
                    .all(|p| p.keepable(KEPT_PATH_DEPTH, KEPT_CAPACITY) && p.holds_nothing()));
                SPARE.with(|s| s.set(Some(kept)));
            }
        }
    }
}
