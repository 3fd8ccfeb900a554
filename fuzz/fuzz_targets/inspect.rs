//! Fuzzes the whole body pipeline: any bytes, any content type, several policies.
//! Invariants: no panic; a rewritten JSON body is valid JSON whenever the input was.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshdlp::{Decision, Direction, Exchange, Policy};
use std::sync::OnceLock;

const POLICIES: &[&str] = &[
    r#"{"defaultRoute": {"response": {}, "request": {}}}"#,
    r#"{"keys": [{"id": "k", "inline": "fuzz-secret-0123456789"}], "defaultRoute": {"response": {"defaultAction": "drop",
        "actions": {"email": "hash", "credit_card": "tokenize", "phone": {"type": "mask", "keepLast": 2, "keepSeparators": true}},
        "fields": [{"path": "$..a", "action": "drop", "class": "person_name"}, {"path": "$.b[*]", "action": "allow"}]}}}"#,
    r#"{"defaultRoute": {"response": {"scope": {"allow": ["email"], "maxRecords": {"path": "$..items", "max": 3}}, "onViolation": "redact"}}}"#,
];
const TYPES: &[Option<&str>] = &[
    Some("application/json"), Some("application/x-ndjson"), Some("application/x-www-form-urlencoded"), Some("text/plain"), None,
];

fn policies() -> &'static Vec<Policy> {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| POLICIES.iter().map(|p| Policy::from_json(p.as_bytes()).expect("fuzz policy")).collect())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let policy = &policies()[usize::from(selector % 3)];
    let content_type = TYPES[usize::from(selector / 3) % TYPES.len()];
    let route = policy.route("GET", "/", "fuzz");
    let inspection = policy.inspect(&Exchange { route, direction: Direction::Response, content_type, scopes: &[], body });
    if let Decision::Rewrite(out) = &inspection.decision {
        if content_type == Some("application/json") && serde_json::from_slice::<serde_json::Value>(body).is_ok() {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(out) {
                panic!("valid JSON in, invalid JSON out ({e}): {:?} -> {:?}", String::from_utf8_lossy(body), String::from_utf8_lossy(out));
            }
        }
    }
});
