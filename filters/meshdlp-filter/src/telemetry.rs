//! Metrics and audit lines. Neither ever contains a raw value.
//!
//! Metric names carry their labels as `.<label>.<value>` pairs, e.g.
//! `meshdlp_findings.route.users.direction.response.class.email.action.redact`; the Envoy
//! `stats_tags` in `envoy/stats-tags.yaml` turn the pairs into Prometheus labels:
//! `meshdlp_findings{route="users",direction="response",class="email",action="redact"}`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use meshdlp::{Decision, Direction, Inspection, Mode, Reason};
use serde::Serialize;

use crate::host;

#[derive(Default)]
pub struct Telemetry {
    ids: RefCell<HashMap<String, u32>>,
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    }
}

/// A label value safe inside a dotted metric name.
fn label(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Telemetry {
    fn metric(&self, kind: u32, name: String) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(&name) {
            return Some(*id);
        }
        let id = host::define_metric(kind, &name).ok()?;
        self.ids.borrow_mut().insert(name, id);
        Some(id)
    }

    fn count(&self, name: String, by: u64) {
        if let Some(id) = self.metric(host::COUNTER, name) {
            let _ = host::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }

    pub fn inspection(&self, route: &str, insp: &Inspection, bytes: usize, micros: u64) {
        let route = label(route);
        let dir = insp.direction.as_str();
        let mode = mode_name(insp.mode);
        let decision = if insp.error.is_some() && matches!(insp.decision, Decision::Allow) {
            "error"
        } else {
            insp.decision.name()
        };
        self.count(
            format!("meshdlp_bodies.route.{route}.direction.{dir}.decision.{decision}.mode.{mode}"),
            1,
        );
        self.count(format!("meshdlp_bytes.direction.{dir}"), bytes as u64);
        if let Some(id) = self.metric(
            host::HISTOGRAM,
            format!("meshdlp_inspect_us.direction.{dir}"),
        ) {
            let _ = host::record_metric(id, micros);
        }
        let mut per: BTreeMap<(&str, String), u64> = BTreeMap::new();
        for f in &insp.findings {
            let action = format!("{:?}", f.action).to_ascii_lowercase();
            *per.entry((f.class.as_ref(), action)).or_default() += 1;
        }
        for ((class, action), n) in per {
            self.count(format!("meshdlp_findings.route.{route}.direction.{dir}.class.{}.action.{action}.mode.{mode}", label(class)), n);
        }
        if let Decision::Block(b) = &insp.decision {
            self.count(
                format!(
                    "meshdlp_blocks.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(b.reason.code())
                ),
                1,
            );
        }
        if let Some(reason) = insp.error_reason {
            self.count(
                format!(
                    "meshdlp_errors.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(reason.code())
                ),
                1,
            );
        }
    }

    pub fn body_error(
        &self,
        route: &str,
        d: Direction,
        reason: Reason,
        mode: Mode,
        decision: &str,
    ) {
        let route = label(route);
        let dir = d.as_str();
        let mode = mode_name(mode);
        self.count(
            format!(
                "meshdlp_errors.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                label(reason.code())
            ),
            1,
        );
        self.count(
            format!("meshdlp_bodies.route.{route}.direction.{dir}.decision.{decision}.mode.{mode}"),
            1,
        );
        if decision == "block" {
            self.count(
                format!(
                    "meshdlp_blocks.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(reason.code())
                ),
                1,
            );
        }
    }
}

/// Microseconds on the host clock.
pub fn now_micros() -> u64 {
    host::now_nanos() / 1000
}

#[derive(Serialize)]
struct AuditFinding {
    class: String,
    path: Option<String>,
    detector: String,
    action: String,
    confidence: f32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    out_of_scope: bool,
}

/// A finding path for the audit log. JSON keys are not scanned, so a map keyed by personal data
/// (`{"ada@example.com": {...}}`) would put that key into the path: path segments that look like
/// values (an `@`, or six digits in a row) are written as `?`.
fn audit_path(path: &str) -> String {
    let looks_like_value = |seg: &str| {
        seg.contains('@')
            || seg
                .as_bytes()
                .windows(6)
                .any(|w| w.iter().all(u8::is_ascii_digit))
    };
    if !looks_like_value(path) {
        return path.to_string();
    }
    let mut out = String::from("$");
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        // A segment is `['quoted key']`, `[index]` or `.key`.
        let len = if rest.starts_with("['") {
            rest.find("']").map_or(rest.len(), |e| e + 2)
        } else if rest.starts_with('[') {
            rest.find(']').map_or(rest.len(), |e| e + 1)
        } else {
            let first = rest.chars().next().map_or(1, char::len_utf8);
            first + rest[first..].find(['.', '[']).unwrap_or(rest.len() - first)
        };
        let seg = &rest[..len];
        let is_index = seg.starts_with('[') && !seg.starts_with("['");
        out.push_str(if !is_index && looks_like_value(seg) {
            "['?']"
        } else {
            seg
        });
        rest = &rest[len..];
    }
    out
}

/// One direction's outcome, for the audit line.
#[derive(Serialize)]
pub struct AuditEntry {
    direction: &'static str,
    decision: &'static str,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    classes: BTreeMap<String, u32>,
    findings: Vec<AuditFinding>,
    bytes: usize,
    micros: u64,
}

impl AuditEntry {
    pub fn from_inspection(insp: &Inspection, bytes: usize, micros: u64) -> AuditEntry {
        let mut classes = BTreeMap::new();
        for f in &insp.findings {
            *classes.entry(f.class.to_string()).or_insert(0) += 1;
        }
        AuditEntry {
            direction: insp.direction.as_str(),
            decision: insp.decision.name(),
            mode: mode_name(insp.mode),
            reason: match &insp.decision {
                Decision::Block(b) => Some(b.reason.code()),
                _ => None,
            },
            // Engine errors describe positions and limits, never values.
            error: insp.error.clone(),
            classes,
            findings: insp
                .findings
                .iter()
                .map(|f| AuditFinding {
                    class: f.class.to_string(),
                    path: f.path.as_deref().map(audit_path),
                    detector: f.detector.to_string(),
                    action: format!("{:?}", f.action).to_ascii_lowercase(),
                    confidence: (f.confidence * 100.0).round() / 100.0,
                    out_of_scope: f.out_of_scope,
                })
                .collect(),
            bytes,
            micros,
        }
    }

    pub fn error(d: Direction, reason: Reason, mode: Mode, decision: &'static str) -> AuditEntry {
        AuditEntry {
            direction: d.as_str(),
            decision,
            mode: mode_name(mode),
            reason: Some(reason.code()),
            error: None,
            classes: BTreeMap::new(),
            findings: Vec::new(),
            bytes: 0,
            micros: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::audit_path;

    #[test]
    fn audit_paths_hide_keys_that_look_like_values() {
        assert_eq!(audit_path("$.users[3].email"), "$.users[3].email");
        assert_eq!(
            audit_path("$.byEmail['ada@example.com'].name"),
            "$.byEmail['?'].name"
        );
        assert_eq!(
            audit_path("$.accounts.4111111111111111.owner"),
            "$.accounts['?'].owner"
        );
        assert_eq!(audit_path("$.items[1234567]"), "$.items[1234567]");
    }
}

#[derive(Serialize)]
struct AuditLine<'a> {
    #[serde(rename = "requestId")]
    request_id: Option<&'a str>,
    route: &'a str,
    method: &'a str,
    entries: &'a [AuditEntry],
}

/// The JSON audit line for a request.
pub fn audit_line(
    request_id: Option<&str>,
    route: &str,
    method: &str,
    entries: &[AuditEntry],
) -> String {
    serde_json::to_string(&AuditLine {
        request_id,
        route,
        method,
        entries,
    })
    .unwrap_or_default()
}
