//! The DataPolicy status: `observedGeneration` and the conditions Accepted, Compiled and
//! Programmed. A condition keeps its `lastTransitionTime` while its status stays the same, and
//! no patch is sent when nothing changed (a status write would wake the watch for nothing).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::{json, Value};

/// One condition as the controller decides it.
#[derive(Debug, Clone)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let mut message = message.into();
        // The CRD caps a condition message at 32 KiB and an engine error can quote a whole
        // custom pattern: a longer message would make every status write fail (a 422 loop).
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" ... (truncated)");
        }
        Condition {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// Longest condition message written, in bytes (before the truncation marker).
pub const MAX_MESSAGE: usize = 4096;

fn status_word(status: bool) -> &'static str {
    if status {
        "True"
    } else {
        "False"
    }
}

/// The current conditions of `obj` (`status.conditions`), by type.
pub fn current<'a>(obj: &'a DynamicObject, type_: &str) -> Option<&'a Value> {
    obj.data
        .get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// The `status` to write for `conditions` decided at `generation` (the spec they were computed
/// from), or None when `obj` already has it. Also returns the types whose status changed (for
/// events).
pub fn patch(
    obj: &DynamicObject,
    generation: Option<i64>,
    conditions: &[Condition],
) -> (Option<Value>, Vec<&'static str>) {
    let now = serde_json::to_value(Time(Timestamp::now())).unwrap_or(Value::Null);
    let mut changed = Vec::new();
    let mut same = obj
        .data
        .get("status")
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64)
        == generation;
    let mut out = Vec::new();
    for c in conditions {
        let old = current(obj, c.type_);
        let field = |name: &str| old.and_then(|o| o.get(name)).and_then(Value::as_str);
        let transition = field("status") != Some(status_word(c.status));
        if transition {
            changed.push(c.type_);
        }
        let unchanged = !transition
            && field("reason") == Some(c.reason)
            && field("message") == Some(c.message.as_str())
            && old
                .and_then(|o| o.get("observedGeneration"))
                .and_then(Value::as_i64)
                == generation;
        same &= unchanged;
        let since = match old.and_then(|o| o.get("lastTransitionTime")) {
            Some(t) if !transition => t.clone(),
            _ => now.clone(),
        };
        let mut cond = json!({
            "type": c.type_,
            "status": status_word(c.status),
            "reason": c.reason,
            "message": c.message,
            "lastTransitionTime": since,
        });
        if let Some(g) = generation {
            cond["observedGeneration"] = json!(g);
        }
        out.push(cond);
    }
    let count = obj
        .data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if same && count == conditions.len() {
        return (None, changed);
    }
    let mut status = json!({"conditions": out});
    if let Some(g) = generation {
        status["observedGeneration"] = json!(g);
    }
    (Some(json!({"status": status})), changed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_message_is_cut_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let c = super::Condition::new("Compiled", false, "InvalidPolicy", long);
        assert!(c.message.len() <= super::MAX_MESSAGE + 20);
        assert!(c.message.ends_with("(truncated)"));
        let short = super::Condition::new("Compiled", false, "InvalidPolicy", "spec.x: bad");
        assert_eq!(short.message, "spec.x: bad");
    }

    use super::*;

    fn object(status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
            "metadata": {"name": "orders", "namespace": "shop", "generation": 2},
            "status": status,
        }))
        .unwrap()
    }

    fn good() -> Vec<Condition> {
        vec![
            Condition::new("Compiled", true, "Compiled", "ok"),
            Condition::new(
                "Programmed",
                true,
                "Programmed",
                "EnvoyFilter shop/meshdlp-orders",
            ),
        ]
    }

    #[test]
    fn no_patch_when_the_status_is_already_there() {
        let (first, changed) = patch(&object(json!({})), Some(2), &good());
        assert_eq!(changed, ["Compiled", "Programmed"]);
        let first = first.unwrap();
        let obj = object(first["status"].clone());
        assert_eq!(patch(&obj, Some(2), &good()), (None, vec![]));
        // a newer generation is written even with the same conditions
        let (again, changed) = patch(&obj, Some(3), &good());
        assert_eq!(again.unwrap()["status"]["observedGeneration"], 3);
        assert!(changed.is_empty());
    }

    #[test]
    fn transition_time_kept_unless_the_status_flips() {
        let t0 = "2026-01-01T00:00:00Z";
        let obj = object(json!({"observedGeneration": 1, "conditions": [
            {"type": "Compiled", "status": "True", "reason": "Compiled", "message": "ok",
             "observedGeneration": 1, "lastTransitionTime": t0},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "x",
             "observedGeneration": 1, "lastTransitionTime": t0}]}));
        let conds = vec![
            Condition::new("Compiled", false, "InvalidPolicy", "spec.routes[0]: bad"),
            Condition::new("Programmed", true, "Programmed", "x"),
        ];
        let (p, changed) = patch(&obj, Some(2), &conds);
        let p = p.unwrap();
        assert_eq!(changed, ["Compiled"]);
        let out = p["status"]["conditions"].as_array().unwrap();
        assert_ne!(out[0]["lastTransitionTime"], t0);
        assert_eq!(out[0]["message"], "spec.routes[0]: bad");
        assert_eq!(out[1]["lastTransitionTime"], t0);
        assert_eq!(out[1]["observedGeneration"], 2);
    }
}
