//! Inspection: one body in, a verdict out.
//!
//! 1. limits (`maxBodyBytes`) are checked before any parsing;
//! 2. the body is walked according to its kind (JSON, NDJSON, form, text); every string value (and
//!    number) is matched against field rules, then scanned by the enabled detectors (escaped JSON
//!    strings are decoded first so `\u0040` cannot hide an `@`; spans map back to raw bytes);
//! 3. overlapping findings are resolved once, before any action;
//! 4. each finding gets its action (field rule > class action > scope > default action);
//! 5. the verdict: block (scope violation, `block` action, record limit), rewrite (raw bytes
//!    spliced, so everything outside the replaced spans is byte-identical) or allow.

use std::borrow::Cow;
use std::sync::Arc;

use crate::detect::{ClassId, DetectorMask, Hit, KeyCtx, KeywordHits};
use crate::json::{self, Kind, PathStack, Value};
use crate::jsonpath::{self, Step};
use crate::manifest::{ActionKind, BodyKind, ErrorAction, Mode, ViolationAction};
use crate::policy::{Direction, Plan, Policy, RouteId};
use crate::transform::Action;

/// What to inspect.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub route: RouteId,
    pub direction: Direction,
    /// The `content-type` header, if any.
    pub content_type: Option<&'a str>,
    /// The caller's granted scopes (for scope grants).
    pub scopes: &'a [String],
    /// The (decoded) body.
    pub body: &'a [u8],
}

/// One detected value. Never holds the value itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub class: Arc<str>,
    /// JSON path of the value (`$.users[0].email`), or `None` in free text.
    pub path: Option<String>,
    /// Byte span in the body as given (for escaped JSON strings: the raw escaped text).
    pub start: usize,
    pub end: usize,
    /// Detector id (`credit_card`, `phone.e164`, `field:<path>` for field rules).
    pub detector: Arc<str>,
    pub confidence: f32,
    /// The action applied (or that would be, in monitor mode).
    pub action: ActionKind,
    /// The class is outside the declared scope for this caller.
    pub out_of_scope: bool,
}

/// Why a body is blocked. The codes are stable: dashboards and clients may rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A class the route (or caller) may not return.
    ClassNotAllowed,
    /// More records than declared.
    TooManyRecords,
    /// Body larger than `maxBodyBytes`, or than the proxy can buffer.
    BodyTooLarge,
    /// A class whose action is `block`.
    BlockedClass,
    /// Malformed where a format was declared (e.g. invalid JSON).
    MalformedBody,
    /// Could not be decoded (unknown or corrupt content-encoding).
    UndecodableBody,
    /// A transformation failed.
    TransformFailed,
}

impl Reason {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::ClassNotAllowed => "scope.class_not_allowed",
            Reason::TooManyRecords => "scope.too_many_records",
            Reason::BodyTooLarge => "limit.body_bytes",
            Reason::BlockedClass => "policy.blocked_class",
            Reason::MalformedBody => "body.malformed",
            Reason::UndecodableBody => "body.undecodable",
            Reason::TransformFailed => "transform.failed",
        }
    }

    /// The HTTP status for a block.
    pub fn status(self, direction: Direction) -> u16 {
        match (self, direction) {
            (Reason::BodyTooLarge, _) => 413,
            (Reason::MalformedBody | Reason::UndecodableBody, Direction::Request) => 400,
            (
                Reason::MalformedBody | Reason::UndecodableBody | Reason::TransformFailed,
                Direction::Response,
            ) => 502,
            (Reason::TransformFailed, Direction::Request) => 500,
            _ => 403,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Reason::ClassNotAllowed => "The payload contains data outside the declared scope",
            Reason::TooManyRecords => "The payload contains more records than declared",
            Reason::BodyTooLarge => "The payload is larger than allowed",
            Reason::BlockedClass => "The payload contains data that may not pass",
            Reason::MalformedBody => "The payload could not be parsed",
            Reason::UndecodableBody => "The payload could not be decoded",
            Reason::TransformFailed => "The payload could not be de-identified",
        }
    }
}

/// A block decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub status: u16,
    pub reason: Reason,
}

impl Block {
    pub fn new(reason: Reason, direction: Direction) -> Block {
        Block {
            status: reason.status(direction),
            reason,
        }
    }

    /// An `application/problem+json` body (RFC 9457): reason code and request id, never a value.
    pub fn problem_json(&self, request_id: Option<&str>) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "type": format!("urn:meshdlp:problem:{}", self.reason.code()),
            "title": self.reason.title(),
            "status": self.status,
            "reason": self.reason.code(),
        });
        if let Some(id) = request_id.filter(|id| !id.is_empty() && id.len() <= 128) {
            doc["requestId"] = serde_json::Value::String(id.to_string());
        }
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// What enforce mode does with the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    Rewrite(Vec<u8>),
    Block(Block),
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Rewrite(_) => "rewrite",
            Decision::Block(_) => "block",
        }
    }
}

/// The result of inspecting one body.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The decision enforce mode takes (in monitor mode: what it would take).
    pub decision: Decision,
    /// Monitor mode changes nothing: use [`Inspection::effective`].
    pub mode: Mode,
    pub findings: Vec<Finding>,
    /// Records counted for `maxRecords` (JSON arrays at the path, NDJSON lines).
    pub records: Option<u64>,
    pub body_kind: BodyKind,
    /// A body error (malformed, undecodable, oversize), described without values.
    pub error: Option<String>,
    /// The kind of body error, when there is one.
    pub error_reason: Option<Reason>,
    pub route: RouteId,
    pub direction: Direction,
}

impl Inspection {
    /// The decision to apply: the real one in enforce mode, `Allow` in monitor mode.
    pub fn effective(&self) -> &Decision {
        match self.mode {
            Mode::Enforce => &self.decision,
            Mode::Monitor => &Decision::Allow,
        }
    }

    /// The body to forward (enforced decision), or `original` if unchanged. `None` on block.
    pub fn body_or<'b>(&'b self, original: &'b [u8]) -> Cow<'b, [u8]> {
        match self.effective() {
            Decision::Rewrite(b) => Cow::Borrowed(b.as_slice()),
            _ => Cow::Borrowed(original),
        }
    }
}

/// How a finding's replacement is written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// Inside a JSON string: replacement is JSON-escaped.
    JsonString,
    /// A whole JSON number, literal or container: replacement becomes a JSON string.
    JsonWhole,
    /// Plain text: replacement written as is.
    Text,
    /// A form value: replacement percent-encoded.
    Form,
}

/// A finding before resolution and actions.
#[derive(Debug)]
struct Candidate {
    class: ClassId,
    start: usize,
    end: usize,
    confidence: f32,
    /// Detector index, or field rule index (with `from_field`).
    source: usize,
    from_field: bool,
    /// Field rule whose action overrides (rules without a class).
    rule_action: Option<usize>,
    site: Site,
    /// Decoded value when it differs from the raw bytes (escapes, percent-encoding, numbers).
    decoded: Option<Vec<u8>>,
    path: Option<String>,
    /// For `drop`: where the JSON member starts and its value ends, and whether the value is
    /// the document itself (then it becomes `null`). `None` in text and form bodies.
    member: Option<(usize, usize, bool)>,
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
            decoded: None,
            path: None,
            member: None,
        }
    }
}

/// Runs the plan's detectors over one text into `hits` (cleared first).
fn detect(
    policy: &Policy,
    plan: &Plan,
    text: &[u8],
    ctx: KeyCtx<'_>,
    keywords: Option<DetectorMask>,
    hits: &mut Vec<Hit>,
) {
    hits.clear();
    policy.inner.detectors.scan(
        text,
        ctx,
        plan.enabled,
        keywords,
        policy.inner.min_confidence,
        hits,
    );
}

impl Policy {
    /// Inspects one body. Never panics on any input; errors follow the route's `onError`.
    pub fn inspect(&self, ex: &Exchange<'_>) -> Inspection {
        let route = &self.inner.routes[ex.route.0.min(self.inner.routes.len() - 1)];
        let mut out = Inspection {
            decision: Decision::Allow,
            mode: route.mode,
            findings: Vec::new(),
            records: None,
            body_kind: BodyKind::Text,
            error: None,
            error_reason: None,
            route: ex.route,
            direction: ex.direction,
        };
        let Some(plan) = route.plan(ex.direction) else {
            return out;
        };
        // Without a declared type, a body that looks like JSON is read as JSON (key hints, paths)
        // and falls back to text if it is not; a declared type is held to.
        let declared = plan
            .body_kind
            .or_else(|| ex.content_type.map(BodyKind::from_content_type));
        let sniffed = declared.is_none();
        let kind = declared.unwrap_or_else(|| sniff(ex.body));
        out.body_kind = kind;
        if let Some(max) = plan.scope.as_ref().and_then(|s| s.max_body_bytes) {
            if ex.body.len() as u64 > max {
                out.error = Some(format!(
                    "body of {} bytes exceeds maxBodyBytes {max}",
                    ex.body.len()
                ));
                out.error_reason = Some(Reason::BodyTooLarge);
                out.decision = Decision::Block(Block::new(Reason::BodyTooLarge, ex.direction));
                return out;
            }
        }
        let mut scan = Scanner {
            policy: self,
            plan,
            body: ex.body,
            candidates: Vec::new(),
            records: 0,
            hits: Vec::new(),
            buf: Vec::new(),
            map: Vec::new(),
            keywords: match kind {
                BodyKind::Json | BodyKind::Ndjson => {
                    self.inner.detectors.keyword_hits(ex.body, plan.enabled)
                }
                _ => KeywordHits::default(),
            },
        };
        let parsed = match kind {
            BodyKind::Json if sniffed => {
                if scan.json(0, ex.body).is_err() {
                    scan.candidates.clear();
                    scan.records = 0;
                    out.body_kind = BodyKind::Text;
                    scan.text(0, ex.body);
                }
                Ok(())
            }
            BodyKind::Json => scan.json(0, ex.body),
            BodyKind::Ndjson => scan.ndjson(),
            BodyKind::Form => {
                scan.form();
                Ok(())
            }
            BodyKind::Text => {
                scan.text(0, ex.body);
                Ok(())
            }
        };
        if let Err(e) = parsed {
            out.error = Some(e);
            out.error_reason = Some(Reason::MalformedBody);
            if plan.on_error == ErrorAction::Block {
                out.decision = Decision::Block(Block::new(Reason::MalformedBody, ex.direction));
            }
            return out;
        }
        let records_limit = plan.scope.as_ref().and_then(|s| s.max_records.as_ref());
        if records_limit.is_some() || kind == BodyKind::Ndjson {
            out.records = Some(scan.records);
        }
        let candidates = resolve_overlaps(std::mem::take(&mut scan.candidates));
        self.decide(plan, ex, kind, candidates, &mut out);
        if let Some((_, max)) = records_limit {
            if scan.records > *max && !matches!(out.decision, Decision::Block(_)) {
                out.decision = Decision::Block(Block::new(Reason::TooManyRecords, ex.direction));
            }
        }
        out
    }

    fn decide(
        &self,
        plan: &Plan,
        ex: &Exchange<'_>,
        kind: BodyKind,
        candidates: Vec<Candidate>,
        out: &mut Inspection,
    ) {
        let classes = &self.inner.detectors.classes;
        let redact = Action::redact();
        let allow = Action::Allow;
        let mut block: Option<Reason> = None;
        let mut edits: Vec<Edit> = Vec::new();
        for c in candidates {
            let mut out_of_scope = false;
            let action: &Action = if let Some(rule) =
                c.rule_action
                    .or(if c.from_field { Some(c.source) } else { None })
            {
                &plan.fields[rule].action
            } else if let Some(a) = plan
                .class_actions
                .get(usize::from(c.class))
                .and_then(Option::as_ref)
            {
                a
            } else if let Some(scope) = &plan.scope {
                if scope.permits(c.class, ex.scopes) {
                    &allow
                } else {
                    out_of_scope = true;
                    match plan.on_violation {
                        ViolationAction::Block => {
                            block = Some(Reason::ClassNotAllowed);
                            &redact
                        }
                        ViolationAction::Redact => &redact,
                    }
                }
            } else {
                &plan.default_action
            };
            let class_name = classes.name(c.class);
            if matches!(action, Action::Block) {
                block.get_or_insert(Reason::BlockedClass);
            }
            let value: &[u8] = c.decoded.as_deref().unwrap_or(&ex.body[c.start..c.end]);
            match action {
                Action::Drop if kind == BodyKind::Json || kind == BodyKind::Ndjson => {
                    edits.push(match c.member {
                        Some((member_start, value_end, false)) => {
                            Edit::drop(ex.body, member_start, value_end)
                        }
                        Some((start, end, true)) => Edit {
                            start,
                            end,
                            text: b"null".to_vec(),
                            drop: false,
                        },
                        None => Edit {
                            start: c.start,
                            end: c.end,
                            text: encode(&format!("[REDACTED:{}]", classes.name(c.class)), c.site),
                            drop: false,
                        },
                    });
                }
                _ => {
                    let replacement = match action {
                        Action::Drop => {
                            Action::redact().replacement(class_name, value, &self.inner.keys)
                        }
                        a => a.replacement(class_name, value, &self.inner.keys),
                    };
                    match replacement {
                        Ok(Some(text)) => edits.push(Edit {
                            start: c.start,
                            end: c.end,
                            text: encode(&text, c.site),
                            drop: false,
                        }),
                        Ok(None) => {}
                        Err(_) => {
                            block.get_or_insert(Reason::TransformFailed);
                        }
                    }
                }
            }
            let detector = if c.from_field {
                Arc::from(format!("field:{}", plan.fields[c.source].path))
            } else {
                self.inner.detectors.list[c.source].id.clone()
            };
            out.findings.push(Finding {
                class: class_name.clone(),
                path: c.path,
                start: c.start,
                end: c.end,
                detector,
                confidence: c.confidence,
                action: if out_of_scope && plan.on_violation == ViolationAction::Block {
                    ActionKind::Block
                } else {
                    action.kind()
                },
                out_of_scope,
            });
        }
        out.decision = match block {
            Some(reason) => Decision::Block(Block::new(reason, ex.direction)),
            None if edits.is_empty() => Decision::Allow,
            None => Decision::Rewrite(apply_edits(ex.body, edits)),
        };
    }
}

fn sniff(body: &[u8]) -> BodyKind {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{' | b'[') => BodyKind::Json,
        _ => BodyKind::Text,
    }
}

fn encode(text: &str, site: Site) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    match site {
        Site::JsonString => json::escape_into(text, &mut out),
        Site::JsonWhole => {
            out.push(b'"');
            json::escape_into(text, &mut out);
            out.push(b'"');
        }
        Site::Text => out.extend_from_slice(text.as_bytes()),
        Site::Form => {
            for b in text.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b);
                } else {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
        }
    }
    out
}

/// Drops hits that overlap a better one (higher confidence, then longer, then earlier).
fn prune_overlapping_hits(hits: &mut Vec<Hit>) {
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
fn resolve_overlaps(c: Vec<Candidate>) -> Vec<Candidate> {
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

#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    text: Vec<u8>,
    drop: bool,
}

impl Edit {
    /// Removes a JSON member (or array element) and one adjacent comma.
    fn drop(body: &[u8], member_start: usize, value_end: usize) -> Edit {
        let ws = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
        let mut after = value_end;
        while after < body.len() && ws(body[after]) {
            after += 1;
        }
        if body.get(after) == Some(&b',') {
            let mut end = after + 1;
            while end < body.len() && ws(body[end]) {
                end += 1;
            }
            return Edit {
                start: member_start,
                end,
                text: Vec::new(),
                drop: true,
            };
        }
        let mut before = member_start;
        while before > 0 && ws(body[before - 1]) {
            before -= 1;
        }
        if before > 0 && body[before - 1] == b',' {
            return Edit {
                start: before - 1,
                end: value_end,
                text: Vec::new(),
                drop: true,
            };
        }
        Edit {
            start: member_start,
            end: value_end,
            text: Vec::new(),
            drop: true,
        }
    }
}

/// Splices edits into the body. An edit inside another (a replacement inside a dropped member,
/// a drop inside a replaced object) goes with the outer one; overlapping drops merge, which
/// keeps the commas of a JSON container consistent.
fn apply_edits(body: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_unstable_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.drop.cmp(&a.drop))
            .then(b.end.cmp(&a.end))
    });
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        if let Some(last) = merged.last_mut() {
            let touches = e.start < last.end || (e.drop && last.drop && e.start == last.end);
            if touches {
                // Adjacent or overlapping drops (one comma each) merge into one removal.
                // Otherwise the first edit stands: anything inside a dropped member goes with
                // it, anything inside a replaced value is replaced with it, and overlaps between
                // replacements were resolved before actions ran.
                if last.drop && e.drop {
                    last.end = last.end.max(e.end);
                }
                continue;
            }
        }
        merged.push(e);
    }
    let added: usize = merged.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + added);
    let mut pos = 0;
    for e in merged {
        out.extend_from_slice(&body[pos..e.start]);
        out.extend_from_slice(&e.text);
        pos = e.end;
    }
    out.extend_from_slice(&body[pos..]);
    out
}

/// Walks a body and collects candidates.
struct Scanner<'p, 'b> {
    policy: &'p Policy,
    plan: &'p Plan,
    body: &'b [u8],
    candidates: Vec<Candidate>,
    records: u64,
    hits: Vec<Hit>,
    buf: Vec<u8>,
    map: Vec<usize>,
    /// Keyword positions from one prefilter pass over the whole body.
    keywords: KeywordHits,
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

impl Scanner<'_, '_> {
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

    fn json(&mut self, base: usize, doc: &[u8]) -> Result<(), String> {
        if std::str::from_utf8(doc).is_err() {
            return Err("body is not valid UTF-8 JSON".to_string());
        }
        let plan = self.plan;
        let mut path = PathStack::default();
        let has_rules = !plan.fields.is_empty();
        let records_path = plan
            .scope
            .as_ref()
            .and_then(|s| s.max_records.as_ref())
            .map(|(p, _)| p);
        let mut records = 0u64;
        let result = json::walk(doc, &mut path, |p, v| {
            if let (Some(rp), Kind::Array { len }) = (records_path, v.kind) {
                if rp.matches(&p.steps(doc)) {
                    records += len as u64;
                }
            }
            self.json_value(base, doc, p, v, has_rules);
        });
        self.records += records;
        result.map_err(|e| format!("malformed JSON at byte {}: {}", base + e.offset, e.message))
    }

    fn json_value(&mut self, base: usize, doc: &[u8], p: &PathStack, v: &Value, has_rules: bool) {
        let is_scannable = matches!(v.kind, Kind::String { .. } | Kind::Number);
        if !has_rules && !is_scannable {
            return;
        }
        let steps_owned;
        let verdict = if has_rules {
            steps_owned = p.steps(doc);
            self.rule_for(&steps_owned)
        } else {
            steps_owned = Vec::new();
            RuleVerdict::None
        };
        let member = Some((base + v.member_start, base + v.outer_end, p.is_root()));
        let path_string = |_: &Self| -> Option<String> {
            Some(if has_rules {
                jsonpath::render(&steps_owned)
            } else {
                jsonpath::render(&p.steps(doc))
            })
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
                            let _ = json::decode_string(&doc[s..e], &mut out, None);
                            out
                        });
                        (Site::JsonString, s, e, decoded)
                    }
                    _ => (Site::JsonWhole, v.outer_start, v.outer_end, None),
                };
                let class = self.plan.fields[rule].class.unwrap_or_default();
                self.candidates.push(Candidate {
                    decoded,
                    path: path_string(self),
                    member,
                    ..Candidate::from_rule(rule, class, base + start, base + end, site)
                });
            }
            RuleVerdict::None | RuleVerdict::Override(_) => {
                // A number shorter than 8 characters holds no card, SSN, phone or date.
                if !is_scannable || (v.kind == Kind::Number && v.outer_end - v.outer_start < 8) {
                    return;
                }
                let rule_action = match verdict {
                    RuleVerdict::Override(r) => Some(r),
                    _ => None,
                };
                let ctx = KeyCtx {
                    key: p.key(),
                    parent: p.parent_key(),
                };
                let (s, e) = v.inner();
                let raw = &doc[s..e];
                let escaped = matches!(v.kind, Kind::String { escaped: true });
                if escaped {
                    self.buf.clear();
                    self.map.clear();
                    if json::decode_string(raw, &mut self.buf, Some(&mut self.map)).is_err() {
                        return;
                    }
                    detect(self.policy, self.plan, &self.buf, ctx, None, &mut self.hits);
                } else {
                    let keywords = self.keywords.within(base + s, base + e);
                    detect(
                        self.policy,
                        self.plan,
                        raw,
                        ctx,
                        Some(keywords),
                        &mut self.hits,
                    );
                }
                if self.hits.is_empty() {
                    return;
                }
                let path = path_string(self);
                let mut hits = std::mem::take(&mut self.hits);
                if hits.len() > 1 {
                    // Several detectors often match the same digits (a card is also a run the
                    // phone detectors look at): keep the best per overlap here, before any
                    // candidate is built.
                    prune_overlapping_hits(&mut hits);
                }
                for h in &hits {
                    let (start, end, site, decoded) = match v.kind {
                        Kind::Number => (v.outer_start, v.outer_end, Site::JsonWhole, None),
                        _ if escaped => (
                            s + self.map[h.start],
                            s + self.map[h.end.min(self.map.len() - 1)],
                            Site::JsonString,
                            Some(self.buf[h.start..h.end].to_vec()),
                        ),
                        _ => (s + h.start, s + h.end, Site::JsonString, None),
                    };
                    self.candidates.push(Candidate {
                        rule_action,
                        decoded,
                        path: path.clone(),
                        member,
                        ..Candidate::from_hit(h, base + start, base + end, site)
                    });
                }
                self.hits = hits;
            }
        }
    }

    fn ndjson(&mut self) -> Result<(), String> {
        let body = self.body;
        let mut start = 0;
        let mut line_no = 0;
        while start < body.len() {
            let end = body[start..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(body.len(), |p| start + p);
            line_no += 1;
            let line = &body[start..end];
            let trimmed_len = line
                .iter()
                .rposition(|b| !b.is_ascii_whitespace())
                .map_or(0, |p| p + 1);
            if line[..trimmed_len].iter().any(|b| !b.is_ascii_whitespace()) {
                self.records += 1;
                let saved = self.records;
                self.json(start, &line[..trimmed_len])
                    .map_err(|e| format!("line {line_no}: {e}"))?;
                // Record-limit arrays inside lines are not records of an NDJSON stream.
                self.records = saved;
            }
            start = end + 1;
        }
        Ok(())
    }

    fn text(&mut self, base: usize, text: &[u8]) {
        detect(
            self.policy,
            self.plan,
            text,
            KeyCtx::default(),
            None,
            &mut self.hits,
        );
        for h in &self.hits {
            self.candidates.push(Candidate::from_hit(
                h,
                base + h.start,
                base + h.end,
                Site::Text,
            ));
        }
    }

    fn form(&mut self) {
        let body = self.body;
        let mut start = 0;
        let mut key_norm = String::new();
        while start <= body.len() {
            let end = body[start..]
                .iter()
                .position(|b| *b == b'&')
                .map_or(body.len(), |p| start + p);
            let pair = &body[start..end];
            let (k, v_start) = match pair.iter().position(|b| *b == b'=') {
                Some(eq) => (&pair[..eq], start + eq + 1),
                None => (pair, end),
            };
            let mut key = Vec::new();
            percent_decode(k, &mut key, None);
            let key = String::from_utf8_lossy(&key).into_owned();
            crate::detect::normalize_key(&key, &mut key_norm);
            let raw = &body[v_start..end];
            let steps = [Step::Key(key.as_str())];
            let verdict = if self.plan.fields.is_empty() {
                RuleVerdict::None
            } else {
                self.rule_for(&steps)
            };
            let path = Some(jsonpath::render(&steps));
            self.buf.clear();
            self.map.clear();
            percent_decode(raw, &mut self.buf, Some(&mut self.map));
            let decoded_differs = self.buf.as_slice() != raw;
            match verdict {
                RuleVerdict::Skip => {}
                RuleVerdict::Whole(rule) => {
                    if !raw.is_empty() {
                        let class = self.plan.fields[rule].class.unwrap_or_default();
                        self.candidates.push(Candidate {
                            decoded: decoded_differs.then(|| self.buf.clone()),
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
                        key: Some(key_norm.as_str()),
                        parent: None,
                    };
                    detect(self.policy, self.plan, &self.buf, ctx, None, &mut self.hits);
                    for h in &self.hits {
                        let (start, end) = (
                            v_start + self.map[h.start],
                            v_start + self.map[h.end.min(self.map.len() - 1)],
                        );
                        self.candidates.push(Candidate {
                            rule_action,
                            decoded: decoded_differs.then(|| self.buf[h.start..h.end].to_vec()),
                            path: path.clone(),
                            ..Candidate::from_hit(h, start, end, Site::Form)
                        });
                    }
                }
            }
            start = end + 1;
        }
    }
}

/// Decodes `%XX` and `+` (form encoding), recording raw offsets like `json::decode_string`.
fn percent_decode(raw: &[u8], out: &mut Vec<u8>, mut map: Option<&mut Vec<usize>>) {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < raw.len() {
        let (byte, len) = match raw[i] {
            b'+' => (b' ', 1),
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
