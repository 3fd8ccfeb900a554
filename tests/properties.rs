//! Property tests: random JSON documents with PII inserted at random places.
//! The output must parse, every inserted value must be gone, and every byte outside the
//! replaced spans must be unchanged.

use meshdlp::{Decision, Direction, Exchange, Policy};
use proptest::prelude::*;
use serde_json::Value;

const PII: &[(&str, &str)] = &[
    ("email", "ada.lovelace@example.com"),
    ("credit_card", "4111 1111 1111 1111"),
    ("us_ssn", "536-22-1234"),
    ("phone", "+44 20 7946 0958"),
    ("iban", "DE89370400440532013000"),
    ("ip_address", "192.168.10.20"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::String),
        // strings that need escaping, including non-ASCII
        "[\"\\\\\n\té✓a-z]{0,8}".prop_map(Value::String),
        (0..PII.len(), "[a-z ]{0,6}", "[a-z ]{0,6}").prop_map(|(i, a, b)| Value::String(
            format!("{a} {} {b}", PII[i].1).trim().to_string()
        )),
        (0..PII.len()).prop_map(|i| Value::String(PII[i].1.to_string())),
    ]
}

/// Object keys: names, and now and then a value used as a key (a map keyed by email addresses).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,8}",
        1 => (0..PII.len()).prop_map(|i| PII[i].1.to_string()),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn policy() -> Policy {
    Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn redaction_is_complete_exact_and_valid(doc in document(), pretty in any::<bool>()) {
        let body = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { serde_json::to_string(&doc).unwrap() };
        let p = policy();
        let insp = p.inspect(&Exchange { route: p.route("GET", "/", "h"), direction: Direction::Response,
            content_type: Some("application/json"), scopes: &[], body: body.as_bytes() });
        let out = match &insp.decision {
            Decision::Rewrite(b) => String::from_utf8(b.clone()).unwrap(),
            Decision::Allow => body.clone(),
            Decision::Block(b) => panic!("unexpected block {b:?}"),
        };
        // 1. valid JSON
        serde_json::from_str::<Value>(&out).expect("output parses");
        // 2. every inserted value is gone
        for (class, value) in PII {
            prop_assert!(!out.contains(value), "{class} value survived in {out}");
        }
        // 3. the output is the input with exactly the finding spans replaced
        let mut expected = String::new();
        let mut pos = 0;
        let mut keys = 0;
        for f in &insp.findings {
            prop_assert!(f.start >= pos);
            expected.push_str(&body[pos..f.start]);
            // PII is only ever inserted inside strings, so replacements are written in place;
            // a redacted key carries its ordinal, so keys redacted alike stay distinct.
            if body[f.end..].starts_with("\":") {
                keys += 1;
                expected.push_str(&format!("[REDACTED:{}]#{keys}", f.class));
                let path = f.path.as_deref().unwrap_or("");
                prop_assert!(path.ends_with(&format!("[<{}>]", f.class)), "{}", path);
            } else {
                expected.push_str(&format!("[REDACTED:{}]", f.class));
            }
            pos = f.end;
        }
        expected.push_str(&body[pos..]);
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), ct in 0usize..6) {
        let p = policy();
        let cts = [Some("application/json"), Some("application/x-ndjson"), Some("application/x-www-form-urlencoded"), None, Some("text/plain"), Some("application/xml")];
        let _ = p.inspect(&Exchange { route: p.route("GET", "/", "h"), direction: Direction::Response,
            content_type: cts[ct], scopes: &[], body: &body });
    }
}
