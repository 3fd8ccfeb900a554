//! Metrics and audit lines. Neither ever contains a raw value.
//!
//! Metric names carry their labels as `.<label>.<value>` pairs, e.g.
//! `meshdlp_findings.route.users.direction.response.class.email.action.redact`; the Envoy
//! `stats_tags` in `envoy/stats-tags.yaml` turn the pairs into Prometheus labels:
//! `meshdlp_findings{route="users",direction="response",class="email",action="redact"}`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use meshdlp::{Decision, Direction, Finding, Inspection, Mode, Reason, StreamInspector};
use serde::Serialize;

use crate::host::{Host, MetricKind};

/// At most this many findings are itemised per direction in an audit line (all are counted in
/// `classes`); the rest are reported as `findingsOmitted`.
pub const MAX_AUDIT_FINDINGS: usize = 100;

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
    fn metric(&self, host: &dyn Host, kind: MetricKind, name: String) -> Option<u32> {
        if let Some(id) = self.ids.try_borrow().ok()?.get(&name) {
            return Some(*id);
        }
        let id = host.define_metric(kind, &name).ok()?;
        if let Ok(mut ids) = self.ids.try_borrow_mut() {
            ids.insert(name, id);
        }
        Some(id)
    }

    fn count(&self, host: &dyn Host, name: String, by: u64) {
        if let Some(id) = self.metric(host, MetricKind::Counter, name) {
            let _ = host.increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }

    /// A counter labelled by route and direction, e.g. `meshdlp_range_stripped`.
    pub fn count_event(&self, host: &dyn Host, metric: &str, route: &str, d: Direction) {
        let route = label(route);
        let dir = d.as_str();
        self.count(host, format!("{metric}.route.{route}.direction.{dir}"), 1);
    }

    /// A protocol meshdlp does not inspect, refused (`block`) or passed (`pass`).
    pub fn protocol(
        &self,
        host: &dyn Host,
        route: &str,
        d: Direction,
        code: &str,
        decision: &str,
        mode: Mode,
    ) {
        let route = label(route);
        let dir = d.as_str();
        let mode = mode_name(mode);
        let code = label(code);
        self.count(
            host,
            format!("meshdlp_protocols.route.{route}.direction.{dir}.protocol.{code}.decision.{decision}.mode.{mode}"),
            1,
        );
        if decision == "block" {
            self.count(
                host,
                format!("meshdlp_blocks.route.{route}.direction.{dir}.reason.{code}.mode.{mode}"),
                1,
            );
        }
    }

    pub fn inspection(
        &self,
        host: &dyn Host,
        route: &str,
        insp: &Inspection,
        bytes: usize,
        micros: u64,
    ) {
        let route = label(route);
        let dir = insp.direction.as_str();
        let mode = mode_name(insp.mode);
        let decision = if insp.error.is_some() && matches!(insp.decision, Decision::Allow) {
            "error"
        } else {
            insp.decision.name()
        };
        self.count(
            host,
            format!("meshdlp_bodies.route.{route}.direction.{dir}.decision.{decision}.mode.{mode}"),
            1,
        );
        self.count(host, format!("meshdlp_bytes.direction.{dir}"), bytes as u64);
        if let Some(id) = self.metric(
            host,
            MetricKind::Histogram,
            format!("meshdlp_inspect_us.direction.{dir}"),
        ) {
            let _ = host.record_metric(id, micros);
        }
        for ((class, action), n) in per_class(&insp.findings) {
            self.count(host, format!("meshdlp_findings.route.{route}.direction.{dir}.class.{}.action.{action}.mode.{mode}", label(class)), n);
        }
        if let Decision::Block(b) = &insp.decision {
            self.count(
                host,
                format!(
                    "meshdlp_blocks.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(b.reason.code())
                ),
                1,
            );
        }
        if insp.findings_truncated > 0 {
            // More values than findings reported (all of them still redacted).
            self.count(
                host,
                format!("meshdlp_findings_truncated.route.{route}.direction.{dir}"),
                1,
            );
        }
        if let Some(fallback) = insp.fallback {
            // Scanned in a way other than declared (a BOM, an anti-XSSI prefix, text).
            self.count(
                host,
                format!(
                    "meshdlp_fallbacks.route.{route}.direction.{dir}.kind.{}",
                    label(fallback)
                ),
                1,
            );
        }
        if let Some(reason) = insp.error_reason {
            self.count(
                host,
                format!(
                    "meshdlp_errors.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(reason.code())
                ),
                1,
            );
        }
    }

    /// A body inspected chunk by chunk.
    pub fn streamed(
        &self,
        host: &dyn Host,
        route: &str,
        d: Direction,
        insp: &StreamInspector,
        micros: u64,
    ) {
        let route = label(route);
        let dir = d.as_str();
        let mode = mode_name(insp.mode());
        let block = insp.would_block();
        let decision = match (block, insp.findings_total()) {
            (Some(_), _) => "block",
            (None, 0) => "allow",
            (None, _) => "rewrite",
        };
        self.count(
            host,
            format!("meshdlp_bodies.route.{route}.direction.{dir}.decision.{decision}.mode.{mode}"),
            1,
        );
        self.count(
            host,
            format!("meshdlp_streamed.route.{route}.direction.{dir}.decision.{decision}"),
            1,
        );
        self.count(
            host,
            format!("meshdlp_bytes.direction.{dir}"),
            insp.bytes_in(),
        );
        if let Some(id) = self.metric(
            host,
            MetricKind::Histogram,
            format!("meshdlp_inspect_us.direction.{dir}"),
        ) {
            let _ = host.record_metric(id, micros);
        }
        for ((class, action), n) in per_class(insp.findings()) {
            self.count(host, format!("meshdlp_findings.route.{route}.direction.{dir}.class.{}.action.{action}.mode.{mode}", label(class)), n);
        }
        if let Some(b) = block {
            self.count(
                host,
                format!(
                    "meshdlp_blocks.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(b.reason.code())
                ),
                1,
            );
        }
    }

    pub fn body_error(
        &self,
        host: &dyn Host,
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
            host,
            format!(
                "meshdlp_errors.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                label(reason.code())
            ),
            1,
        );
        self.count(
            host,
            format!("meshdlp_bodies.route.{route}.direction.{dir}.decision.{decision}.mode.{mode}"),
            1,
        );
        if decision == "block" {
            self.count(
                host,
                format!(
                    "meshdlp_blocks.route.{route}.direction.{dir}.reason.{}.mode.{mode}",
                    label(reason.code())
                ),
                1,
            );
        }
    }
}

/// Findings counted per (class, action).
fn per_class(findings: &[Finding]) -> BTreeMap<(&str, &'static str), u64> {
    let mut per: BTreeMap<(&str, &'static str), u64> = BTreeMap::new();
    for f in findings {
        *per.entry((f.class.as_ref(), f.action.name())).or_default() += 1;
    }
    per
}

/// Microseconds on the host clock.
pub fn now_micros(host: &dyn Host) -> u64 {
    host.now_nanos() / 1000
}

/// A client-chosen request id as it may appear in logs and replies: 8 to 128 characters of
/// `[A-Za-z0-9._:-]` with at least one letter and one digit (UUIDs, trace ids). Anything else -
/// newlines, quotes, a card number, an SSN or a name someone put there - is repeated nowhere.
pub fn request_id(v: &str) -> Option<String> {
    let ok = (8..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && v.bytes().any(|b| b.is_ascii_digit());
    ok.then(|| v.to_string())
}

/// A request method as it may appear in an audit line: a token of at most 16 upper-case
/// letters, else `OTHER`.
pub fn method(v: &str) -> String {
    if (1..=16).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_uppercase()) {
        v.to_string()
    } else {
        "OTHER".to_string()
    }
}

#[derive(Serialize)]
struct AuditFinding {
    class: Arc<str>,
    path: Option<String>,
    detector: Arc<str>,
    action: &'static str,
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

fn audit_finding(f: &Finding) -> AuditFinding {
    AuditFinding {
        class: Arc::clone(&f.class),
        path: f.path.as_deref().map(audit_path),
        detector: Arc::clone(&f.detector),
        action: f.action.name(),
        confidence: (f.confidence * 100.0).round() / 100.0,
        out_of_scope: f.out_of_scope,
    }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'static str>,
    /// Inspected chunk by chunk.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    streamed: bool,
    classes: BTreeMap<Arc<str>, u32>,
    findings: Vec<AuditFinding>,
    #[serde(rename = "findingsOmitted", skip_serializing_if = "is_zero")]
    findings_omitted: usize,
    /// Values redacted beyond the engine's cap of reported findings.
    #[serde(rename = "findingsTruncated", skip_serializing_if = "is_zero")]
    findings_truncated: usize,
    /// How the body was read when not as declared (`json.bom`, `json.as_text`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'static str>,
    bytes: usize,
    micros: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl AuditEntry {
    pub fn from_inspection(insp: &Inspection, bytes: usize, micros: u64) -> AuditEntry {
        let mut classes = BTreeMap::new();
        for f in &insp.findings {
            *classes.entry(Arc::clone(&f.class)).or_insert(0) += 1;
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
            protocol: None,
            streamed: false,
            findings_omitted: insp.findings.len().saturating_sub(MAX_AUDIT_FINDINGS),
            findings_truncated: usize::try_from(insp.findings_truncated).unwrap_or(usize::MAX),
            fallback: insp.fallback,
            findings: insp
                .findings
                .iter()
                .take(MAX_AUDIT_FINDINGS)
                .map(audit_finding)
                .collect(),
            bytes,
            micros,
        }
    }

    /// A streamed body, when there is anything to say (findings, a block or an error).
    pub fn from_stream(d: Direction, insp: &StreamInspector, micros: u64) -> Option<AuditEntry> {
        let block = insp.would_block();
        if insp.findings_total() == 0 && block.is_none() && insp.error().is_none() {
            return None;
        }
        let mut classes = BTreeMap::new();
        for f in insp.findings() {
            *classes.entry(Arc::clone(&f.class)).or_insert(0) += 1;
        }
        let kept = insp.findings().len();
        Some(AuditEntry {
            direction: d.as_str(),
            decision: match block {
                Some(_) => "block",
                None => "rewrite",
            },
            mode: mode_name(insp.mode()),
            reason: block.map(|b| b.reason.code()),
            error: insp.error().map(str::to_string),
            protocol: None,
            streamed: true,
            classes,
            findings_truncated: 0,
            fallback: None,
            findings_omitted: usize::try_from(insp.findings_total())
                .unwrap_or(usize::MAX)
                .saturating_sub(kept.min(MAX_AUDIT_FINDINGS)),
            findings: insp
                .findings()
                .iter()
                .take(MAX_AUDIT_FINDINGS)
                .map(audit_finding)
                .collect(),
            bytes: usize::try_from(insp.bytes_in()).unwrap_or(usize::MAX),
            micros,
        })
    }

    pub fn error(d: Direction, reason: Reason, mode: Mode, decision: &'static str) -> AuditEntry {
        AuditEntry {
            direction: d.as_str(),
            decision,
            mode: mode_name(mode),
            reason: Some(reason.code()),
            error: None,
            protocol: None,
            streamed: false,
            classes: BTreeMap::new(),
            findings: Vec::new(),
            findings_omitted: 0,
            findings_truncated: 0,
            fallback: None,
            bytes: 0,
            micros: 0,
        }
    }

    /// A protocol that was not inspected: refused (`block`) or passed (`pass`).
    pub fn protocol(
        d: Direction,
        code: &'static str,
        mode: Mode,
        decision: &'static str,
    ) -> AuditEntry {
        AuditEntry {
            protocol: Some(code),
            reason: (decision == "block").then_some(code),
            ..AuditEntry::error(d, Reason::UndecodableBody, mode, decision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::audit_path;

    #[test]
    fn only_plain_request_ids_and_methods_are_repeated() {
        use super::{method, request_id};
        assert!(request_id("550e8400-e29b-41d4-a716-446655440000").is_some());
        for bad in [
            "4111111111111111",
            "536-22-1234",
            "ada.lovelace",
            "a\nb12345",
            "x1",
            &"a1".repeat(100),
        ] {
            assert_eq!(request_id(bad), None, "{bad}");
        }
        assert_eq!(method("GET"), "GET");
        assert_eq!(method("get\r\nX"), "OTHER");
    }

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

/// The log message of a request's audit: `meshdlp.audit ` and its JSON line, written in one
/// buffer (a 30-finding line is ~3.6 KB: not copied again to add the prefix).
pub fn audit_message(
    request_id: Option<&str>,
    route: &str,
    method: &str,
    entries: &[AuditEntry],
) -> String {
    let mut out =
        Vec::with_capacity(256 + 128 * entries.iter().map(|e| e.findings.len()).sum::<usize>());
    out.extend_from_slice(b"meshdlp.audit ");
    let line = AuditLine {
        request_id,
        route,
        method,
        entries,
    };
    if serde_json::to_writer(&mut out, &line).is_err() {
        return String::new();
    }
    // serde_json writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}
