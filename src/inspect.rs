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

mod inspection;
mod resolve;
mod rewrite;
mod scan;

pub use inspection::{Block, Decision, Exchange, Finding, Inspection, Reason};

use std::rc::Rc;
use std::sync::Arc;

use crate::detect::ClassId;
use crate::manifest::{ActionKind, BodyKind, ErrorAction, ViolationAction};
use crate::policy::{Plan, Policy};
use crate::transform::Action;

use resolve::resolve_overlaps;
use rewrite::{apply_edits, encode, Edit};
use scan::{sniff, Candidate, Scanner, Site};

/// A redaction written, kept for the body's other values alike: the same action (by address:
/// every action lives through `decide`), class, site and nesting get the same bytes.
struct Redaction {
    action: *const Action,
    class: ClassId,
    site: Site,
    levels: u8,
    text: Rc<[u8]>,
}

/// At most this many redactions are kept per body for reuse (a body's findings come in a few
/// classes and sites; past this many the rest are made per value, as before).
const KEPT_REDACTIONS: usize = 32;

/// At most this many findings are reported per body. The values beyond are still acted on
/// (redacted, blocked); [`Inspection::findings_truncated`] counts them. This bounds the finding
/// list and the audit line: 8 MiB of `a@b.co` lines are over a million findings.
pub const MAX_REPORTED_FINDINGS: usize = 1000;

/// A prefix before a JSON document: a UTF-8 byte-order mark, or an anti-XSSI line (`)]}'`,
/// `)]}',`, `while(1);`, `for(;;);`). Returns how many bytes to skip, and what was skipped.
fn json_prefix(body: &[u8]) -> (usize, Option<&'static str>) {
    let mut skip = 0;
    let mut what = None;
    if body.starts_with(b"\xEF\xBB\xBF") {
        skip = 3;
        what = Some("json.bom");
    }
    let rest = &body[skip..];
    for p in [&b")]}',"[..], b")]}'", b"while(1);", b"for(;;);"] {
        if rest.starts_with(p) {
            skip += p.len();
            what = Some("json.xssi_prefix");
            break;
        }
    }
    (skip, what)
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
            findings_truncated: 0,
            fallback: None,
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
        // A prefix some servers put before JSON (a byte-order mark, an anti-XSSI line) is
        // skipped, and the JSON after it walked.
        let (skip, prefix) = match kind {
            BodyKind::Json => json_prefix(ex.body),
            _ => (0, None),
        };
        out.fallback = prefix;
        let mut scan = Scanner::new(self, plan, ex.body, kind);
        // Field rules and record limits need the document's structure; without them, a body
        // that does not parse as declared is scanned as text (key/value shapes included) and
        // still redacted: refusing it would refuse ordinary traffic.
        let needs_structure =
            !plan.fields.is_empty() || plan.scope.as_ref().is_some_and(|s| s.max_records.is_some());
        let parsed = match kind {
            BodyKind::Json => match scan.json(skip, &ex.body[skip..]) {
                Err(e) if !sniffed && needs_structure => Err(e),
                Err(_) => {
                    scan.candidates.clear();
                    scan.records = 0;
                    out.body_kind = BodyKind::Text;
                    if !sniffed {
                        out.fallback = Some("json.as_text");
                    }
                    scan.text(0, ex.body);
                    Ok(())
                }
                Ok(()) => Ok(()),
            },
            BodyKind::Ndjson => scan.ndjson(!needs_structure).map(|lines| {
                if !lines.is_empty() {
                    out.fallback = Some("ndjson.lines_as_text");
                }
            }),
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
        let mut candidates = resolve_overlaps(std::mem::take(&mut scan.candidates));
        self.decide(plan, ex, kind, &mut candidates, &mut out);
        // Emptied, its room kept for the next body (see `Scanner`'s spare buffers).
        scan.candidates = candidates;
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
        candidates: &mut Vec<Candidate>,
        out: &mut Inspection,
    ) {
        let classes = &self.inner.detectors.classes;
        let redact = Action::redact();
        let allow = Action::Allow;
        let mut block: Option<Reason> = None;
        let mut edits: Vec<Edit> = Vec::with_capacity(candidates.len());
        out.findings
            .reserve(candidates.len().min(MAX_REPORTED_FINDINGS));
        let mut keys_replaced = 0usize;
        // The redactions written so far: one does not depend on the value, and a body's
        // findings alternate between a few classes (a card, then an email, then a card).
        let mut redactions: Vec<Redaction> = Vec::new();
        for c in candidates.drain(..) {
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
                            text: Rc::from(&b"null"[..]),
                            drop: false,
                        },
                        None => Edit {
                            start: c.start,
                            end: c.end,
                            text: Rc::from(encode(
                                &format!("[REDACTED:{}]", classes.name(c.class)),
                                c.site,
                                c.levels,
                            )),
                            drop: false,
                        },
                    });
                }
                _ => {
                    // A redaction does not depend on the value: reuse one written before
                    // its text is made again.
                    let same = action.kind() == ActionKind::Redact && c.site != Site::JsonKey;
                    let reused = redactions
                        .iter()
                        .filter(|_| same)
                        .find(|r| {
                            std::ptr::eq(r.action, action)
                                && r.class == c.class
                                && r.site == c.site
                                && r.levels == c.levels
                        })
                        .map(|r| r.text.clone());
                    let reusing = reused.is_some();
                    if let Some(text) = reused {
                        edits.push(Edit {
                            start: c.start,
                            end: c.end,
                            text,
                            drop: false,
                        });
                    }
                    let replacement = match action {
                        // Its edit is made: nothing to compute.
                        _ if reusing => Ok(None),
                        Action::Drop => {
                            Action::redact().replacement(class_name, value, &self.inner.keys)
                        }
                        a => a.replacement(class_name, value, &self.inner.keys),
                    };
                    match replacement {
                        Ok(Some(mut text)) => {
                            if c.site == Site::JsonKey
                                && matches!(action.kind(), ActionKind::Redact | ActionKind::Mask)
                            {
                                // Two keys of one object redacted alike would be duplicate
                                // keys, and parsers keep only one of their members: a redacted
                                // key carries its ordinal in the body. (Hashes and tokens are
                                // distinct per value already.)
                                keys_replaced += 1;
                                text = format!("{text}#{keys_replaced}");
                            }
                            let t: Rc<[u8]> = Rc::from(encode(&text, c.site, c.levels));
                            if same && redactions.len() < KEPT_REDACTIONS {
                                redactions.push(Redaction {
                                    action,
                                    class: c.class,
                                    site: c.site,
                                    levels: c.levels,
                                    text: t.clone(),
                                });
                            }
                            edits.push(Edit {
                                start: c.start,
                                end: c.end,
                                text: t,
                                drop: false,
                            })
                        }
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
            if out.findings.len() >= MAX_REPORTED_FINDINGS {
                out.findings_truncated += 1;
                continue;
            }
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
