//! Walkers per body kind (JSON, NDJSON, form, text): they collect candidates - detector hits
//! and field-rule matches with their raw byte spans - and decide nothing.

use crate::detect::{ClassId, DetectorMask, Hit, KeyCtx, KeywordHits};
use crate::json::{self, Kind, PathStack, Value};
use crate::jsonpath::{self, Step};
use crate::manifest::BodyKind;
use crate::policy::{Plan, Policy};
use crate::transform::Action;

use super::resolve::prune_overlapping_hits;

/// How a finding's replacement is written into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Site {
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
    /// Decoded value when it differs from the raw bytes (escapes, percent-encoding, numbers).
    pub(super) decoded: Option<Vec<u8>>,
    pub(super) path: Option<String>,
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

impl<'p, 'b> Scanner<'p, 'b> {
    pub(super) fn new(policy: &'p Policy, plan: &'p Plan, body: &'b [u8], kind: BodyKind) -> Self {
        Scanner {
            policy,
            plan,
            body,
            candidates: Vec::new(),
            records: 0,
            hits: Vec::new(),
            buf: Vec::new(),
            map: Vec::new(),
            keywords: match kind {
                BodyKind::Json | BodyKind::Ndjson => {
                    policy.inner.detectors.keyword_hits(body, plan.enabled)
                }
                _ => KeywordHits::default(),
            },
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

    pub(super) fn json(&mut self, base: usize, doc: &[u8]) -> Result<(), String> {
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

    pub(super) fn ndjson(&mut self) -> Result<(), String> {
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

    pub(super) fn text(&mut self, base: usize, text: &[u8]) {
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

    pub(super) fn form(&mut self) {
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
