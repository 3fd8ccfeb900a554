//! Engine behaviour through the public API: splicing, actions, scopes, limits, errors, modes.

use meshdlp::{
    ActionKind, BodyKind, Decision, Direction, Exchange, Inspection, Mode, Policy, Reason,
};

fn policy(json: &str) -> Policy {
    let m = meshdlp::parse_manifest_json(json.as_bytes()).expect("manifest");
    Policy::compile_with_env(&m, &|_| Some("test-secret-0123456789abcdef".into())).expect("policy")
}

fn inspect_with(
    p: &Policy,
    path: &str,
    dir: Direction,
    ct: Option<&str>,
    scopes: &[&str],
    body: &[u8],
) -> Inspection {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let route = p.route("GET", path, "api");
    p.inspect(&Exchange {
        route,
        direction: dir,
        content_type: ct,
        scopes: &scopes,
        body,
    })
}

fn json(p: &Policy, body: &str) -> Inspection {
    inspect_with(
        p,
        "/",
        Direction::Response,
        Some("application/json"),
        &[],
        body.as_bytes(),
    )
}

fn out(i: &Inspection, original: &str) -> String {
    match &i.decision {
        Decision::Rewrite(b) => String::from_utf8(b.clone()).expect("utf-8"),
        Decision::Allow => original.to_string(),
        Decision::Block(b) => panic!("blocked: {:?}", b),
    }
}

fn all() -> Policy {
    policy(r#"{"defaultRoute": {"response": {}, "request": {}}}"#)
}

#[test]
fn escaped_strings_cannot_hide_values_and_spans_cover_the_raw_escape() {
    let p = all();
    let body = r#"{"a": "mail ada\u0040example.com now", "b": "x\"y"}"#;
    let i = json(&p, body);
    let f = &i.findings[0];
    assert_eq!(&*f.class, "email");
    assert_eq!(&body[f.start..f.end], r"ada\u0040example.com");
    assert_eq!(
        out(&i, body),
        r#"{"a": "mail [REDACTED:email] now", "b": "x\"y"}"#
    );
}

#[test]
fn bytes_outside_replaced_spans_are_identical() {
    let p = all();
    let body = "{\n  \"z\" : 1.0E+2 ,\"nested\":{\"deep\":[ {\"e\":\"ada@example.com\"} ]},\t\"k\":\"v\"\n}";
    let i = json(&p, body);
    assert_eq!(
        out(&i, body),
        body.replace("ada@example.com", "[REDACTED:email]")
    );
}

#[test]
fn numbers_holding_cards_become_strings() {
    let p = all();
    let body = r#"{"card": 4111111111111111, "n": 12}"#;
    let i = json(&p, body);
    assert_eq!(
        out(&i, body),
        r#"{"card": "[REDACTED:credit_card]", "n": 12}"#
    );
}

#[test]
fn replacement_text_is_escaped_inside_json_strings() {
    let p = policy(
        r#"{"defaultRoute": {"response": {"defaultAction": {"type": "redact", "placeholder": "<\"{class}\">"}}}}"#,
    );
    let body = r#"{"e": "ada@example.com"}"#;
    let i = json(&p, body);
    let o = out(&i, body);
    assert_eq!(o, r#"{"e": "<\"email\">"}"#);
    serde_json::from_str::<serde_json::Value>(&o).expect("valid JSON");
}

#[test]
fn drop_removes_members_and_elements_keeping_json_valid() {
    let p = policy(r#"{"defaultRoute": {"response": {"defaultAction": "drop"}}}"#);
    let cases = [
        (r#"{"e":"a@example.com","k":1}"#, r#"{"k":1}"#),
        (r#"{"k":1, "e":"a@example.com"}"#, r#"{"k":1}"#),
        (
            r#"{"k":1, "e":"a@example.com", "j":2}"#,
            r#"{"k":1, "j":2}"#,
        ),
        (r#"{"e":"a@example.com","f":"b@example.com"}"#, r#"{}"#),
        (
            r#"{"a":"a@example.com","b":"b@example.com","c":"c@example.com"}"#,
            r#"{}"#,
        ),
        (
            r#"{"a":"a@example.com","k":0,"c":"c@example.com"}"#,
            r#"{"k":0}"#,
        ),
        (r#"["a@example.com", 2, "b@example.com"]"#, r#"[2]"#),
        (r#""a@example.com""#, r#"null"#),
    ];
    for (input, want) in cases {
        let o = out(&json(&p, input), input);
        assert_eq!(o, want, "{input}");
        serde_json::from_str::<serde_json::Value>(&o).expect("valid JSON");
    }
}

#[test]
fn field_rules_by_path() {
    let p = policy(
        r#"{"defaultRoute": {"response": {
            "fields": [
                {"path": "$.items[*].card", "action": {"type": "mask", "keepLast": 4}, "class": "credit_card"},
                {"path": "$..support", "action": "allow"},
                {"path": "$.profile", "action": "redact", "class": "person_name"}
            ]}}}"#,
    );
    let body = r#"{"items":[{"card":"any text"},{"card":"1234"}],"support":"help@example.com","x":{"support":"ops@example.com"},"profile":{"name":"Ada","age":3}}"#;
    let i = json(&p, body);
    assert_eq!(
        out(&i, body),
        r#"{"items":[{"card":"****text"},{"card":"****"}],"support":"help@example.com","x":{"support":"ops@example.com"},"profile":"[REDACTED:person_name]"}"#
    );
    let paths: Vec<_> = i
        .findings
        .iter()
        .map(|f| f.path.as_deref().unwrap_or_default().to_string())
        .collect();
    assert_eq!(paths, ["$.items[0].card", "$.items[1].card", "$.profile"]);
}

#[test]
fn hash_and_tokenize_are_deterministic_and_keyed() {
    let p = policy(
        r#"{"keys": [{"id": "k1", "env": "K"}], "defaultRoute": {"response": {"actions": {"email": "hash", "credit_card": "tokenize"}}}}"#,
    );
    let body = r#"{"a":"ada@example.com","b":"ada@example.com","c":"4111111111111111"}"#;
    let o: serde_json::Value = serde_json::from_str(&out(&json(&p, body), body)).unwrap();
    assert_eq!(o["a"], o["b"]);
    assert!(o["a"].as_str().unwrap().starts_with("hmac:k1:"));
    let tok = o["c"].as_str().unwrap();
    let d = meshdlp::Detokenizer::new(b"test-secret-0123456789abcdef", None);
    assert_eq!(d.detokenize_one(tok).unwrap(), b"4111111111111111");
}

#[test]
fn scope_grants_and_violations() {
    let p = policy(
        r#"{"routes": [{"name": "u", "match": {"template": "/users/{id}"}, "response": {
            "scope": {"allow": ["email"], "grants": {"users:pii": ["us_ssn"]}}}},
           {"name": "r", "match": {"prefix": "/redact/"}, "response": {
            "scope": {"allow": ["email"]}, "onViolation": "redact"}}]}"#,
    );
    let body = br#"{"email":"ada@example.com","ssn":"536-22-1234"}"#;
    let blocked = inspect_with(
        &p,
        "/users/1",
        Direction::Response,
        Some("application/json"),
        &[],
        body,
    );
    assert_eq!(
        blocked.decision,
        Decision::Block(meshdlp::Block {
            status: 403,
            reason: Reason::ClassNotAllowed
        })
    );
    let ssn = blocked
        .findings
        .iter()
        .find(|f| &*f.class == "us_ssn")
        .unwrap();
    assert!(ssn.out_of_scope);
    let granted = inspect_with(
        &p,
        "/users/1",
        Direction::Response,
        Some("application/json"),
        &["users:pii"],
        body,
    );
    assert_eq!(granted.decision, Decision::Allow);
    let redacted = inspect_with(
        &p,
        "/redact/1",
        Direction::Response,
        Some("application/json"),
        &[],
        body,
    );
    assert_eq!(
        redacted.decision,
        Decision::Rewrite(br#"{"email":"ada@example.com","ssn":"[REDACTED:us_ssn]"}"#.to_vec())
    );
}

#[test]
fn limits_records_and_bytes() {
    let p = policy(
        r#"{"defaultRoute": {"response": {"scope": {"allow": [], "maxBodyBytes": 40, "maxRecords": {"path": "$.items", "max": 2}}}}}"#,
    );
    let ok = json(&p, r#"{"items":[1,2]}"#);
    assert_eq!(ok.decision, Decision::Allow);
    assert_eq!(ok.records, Some(2));
    assert_eq!(
        json(&p, r#"{"items":[1,2,3]}"#).decision,
        Decision::Block(meshdlp::Block {
            status: 403,
            reason: Reason::TooManyRecords
        })
    );
    let big = json(
        &p,
        &format!(r#"{{"items":[1],"pad":"{}"}}"#, "x".repeat(64)),
    );
    assert_eq!(
        big.decision,
        Decision::Block(meshdlp::Block {
            status: 413,
            reason: Reason::BodyTooLarge
        })
    );
}

#[test]
fn ndjson_counts_lines_and_rewrites_each() {
    let p = policy(
        r#"{"defaultRoute": {"response": {"scope": {"allow": ["email"], "maxRecords": {"max": 2}}, "actions": {"email": "redact"}}}}"#,
    );
    let body = "{\"e\":\"a@example.com\"}\n\n{\"e\":\"b@example.com\"}\n";
    let i = inspect_with(
        &p,
        "/",
        Direction::Response,
        Some("application/x-ndjson"),
        &[],
        body.as_bytes(),
    );
    assert_eq!(i.records, Some(2));
    assert_eq!(
        out(&i, body),
        "{\"e\":\"[REDACTED:email]\"}\n\n{\"e\":\"[REDACTED:email]\"}\n"
    );
    let three = format!("{body}{{}}\n");
    let i = inspect_with(
        &p,
        "/",
        Direction::Response,
        Some("application/x-ndjson"),
        &[],
        three.as_bytes(),
    );
    assert!(matches!(i.decision, Decision::Block(b) if b.reason == Reason::TooManyRecords));
}

#[test]
fn form_bodies_use_keys_as_hints_and_stay_encoded() {
    let p = all();
    let body = "user=ada&password=hunter22&email=ada%40example.com&note=hi+there";
    let i = inspect_with(
        &p,
        "/",
        Direction::Request,
        Some("application/x-www-form-urlencoded"),
        &[],
        body.as_bytes(),
    );
    assert_eq!(out(&i, body), "user=ada&password=%5BREDACTED%3Ageneric_secret%5D&email=%5BREDACTED%3Aemail%5D&note=hi+there");
}

#[test]
fn text_and_unknown_types_are_scanned_never_skipped() {
    let p = all();
    for ct in [
        Some("text/plain"),
        Some("application/octet-stream"),
        Some("image/png"),
        None,
    ] {
        let body = b"hello ada@example.com \xff\xfe bye";
        let i = inspect_with(&p, "/", Direction::Response, ct, &[], body);
        assert_eq!(i.findings.len(), 1, "{ct:?}");
        assert_eq!(i.body_kind, BodyKind::Text);
    }
}

#[test]
fn malformed_declared_json_follows_on_error() {
    // Only a plan that needs the document's structure (field rules, record limits) cannot
    // inspect malformed JSON; other plans scan it as text (see the fallback tests).
    let strict = policy(
        r#"{"defaultRoute": {"response": {"fields": [{"path": "$.card", "action": "redact"}]},
            "request": {"scope": {"maxRecords": {"path": "$", "max": 10}}}}}"#,
    );
    for bad in [&b"{\"a\": "[..], b"[1,]", b"{\"card\": 4111111111111111,}"] {
        let i = inspect_with(
            &strict,
            "/",
            Direction::Response,
            Some("application/json"),
            &[],
            bad,
        );
        assert!(
            matches!(i.decision, Decision::Block(b) if b.reason == Reason::MalformedBody && b.status == 502)
        );
        let i = inspect_with(
            &strict,
            "/",
            Direction::Request,
            Some("application/json"),
            &[],
            bad,
        );
        assert!(matches!(i.decision, Decision::Block(b) if b.status == 400));
    }
    let open = policy(
        r#"{"defaultRoute": {"response": {"onError": "allow", "fields": [{"path": "$.a", "action": "drop"}]}}}"#,
    );
    let i = json(&open, "{\"a\": ");
    assert_eq!(i.decision, Decision::Allow);
    assert!(i.error.is_some());
    // Without field rules: scanned as text, redacted, forwarded.
    let i = json(&all(), "{\"a\": \"ada@example.com\"");
    assert!(matches!(i.decision, Decision::Rewrite(_)));
    assert_eq!(i.fallback, Some("json.as_text"));
}

#[test]
fn sniffed_json_falls_back_to_text() {
    let p = all();
    let i = inspect_with(
        &p,
        "/",
        Direction::Response,
        None,
        &[],
        b"{not json ada@example.com",
    );
    assert_eq!(i.body_kind, BodyKind::Text);
    assert_eq!(i.findings.len(), 1);
}

#[test]
fn monitor_mode_reports_what_enforce_would_do() {
    let p = policy(
        r#"{"mode": "monitor", "defaultRoute": {"response": {"actions": {"email": "block"}}}}"#,
    );
    let i = json(&p, r#"{"e":"ada@example.com"}"#);
    assert_eq!(i.mode, Mode::Monitor);
    assert!(matches!(i.decision, Decision::Block(_)));
    assert_eq!(i.effective(), &Decision::Allow);
    assert_eq!(i.findings[0].action, ActionKind::Block);
}

#[test]
fn routes_match_first_and_unmatched_routes_use_the_default() {
    let p = policy(
        r#"{"routes": [
            {"name": "a", "match": {"prefix": "/a/", "methods": ["GET"]}, "response": {"actions": {"email": "allow"}}},
            {"name": "b", "match": {"prefix": "/a/"}}],
            "defaultRoute": {}}"#,
    );
    assert_eq!(p.route_name(p.route("GET", "/a/x", "h")), "a");
    assert_eq!(p.route_name(p.route("POST", "/a/x", "h")), "b");
    assert_eq!(p.route_name(p.route("GET", "/z", "h")), "default");
    assert!(!p.inspects(p.route("POST", "/a/x", "h"), Direction::Response));
    assert!(!p.inspects(p.route("GET", "/z", "h"), Direction::Response));
}

#[test]
fn overlapping_findings_are_resolved_once() {
    // A card number is also a run of digits the phone and SSN detectors look at.
    let p = all();
    let body = r#"{"x": "4111 1111 1111 1111"}"#;
    let i = json(&p, body);
    assert_eq!(i.findings.len(), 1);
    assert_eq!(&*i.findings[0].class, "credit_card");
}

#[test]
fn big_bodies() {
    let p = all();
    let item = r#"{"id":1,"email":"ada@example.com","note":"nothing here"}"#;
    let body = format!("[{}]", vec![item; 20_000].join(","));
    let i = json(&p, &body);
    // Findings reported are capped; every value is still redacted.
    assert_eq!(i.findings.len(), meshdlp::MAX_REPORTED_FINDINGS);
    assert_eq!(
        i.findings_truncated,
        20_000 - meshdlp::MAX_REPORTED_FINDINGS as u64
    );
    let o = out(&i, &body);
    let v: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(v[19_999]["email"], "[REDACTED:email]");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let p = all();
    let body = "[".repeat(100_000);
    let i = json(&p, &body);
    // Too deep to walk: scanned as text (nothing to find), unless the plan needs the structure.
    assert_eq!(i.decision, Decision::Allow);
    assert_eq!(i.fallback, Some("json.as_text"));
    let fields = policy(
        r#"{"defaultRoute": {"response": {"fields": [{"path": "$.a", "action": "redact"}]}}}"#,
    );
    let i = json(&fields, &body);
    assert!(matches!(i.decision, Decision::Block(b) if b.reason == Reason::MalformedBody));
}

#[test]
fn problem_documents_hold_no_values() {
    let b = meshdlp::Block {
        status: 403,
        reason: Reason::ClassNotAllowed,
    };
    let doc: serde_json::Value = serde_json::from_slice(&b.problem_json(Some("req-1"))).unwrap();
    assert_eq!(doc["reason"], "scope.class_not_allowed");
    assert_eq!(doc["requestId"], "req-1");
    assert_eq!(doc["status"], 403);
}

// ---------------------------------------------------------------- issue 6: leaks, fallbacks

/// Every layer of JSON string escaping and percent-encoding decoded, for leak checks.
fn fully_decoded(text: &str) -> String {
    let mut s = text.to_string();
    for _ in 0..6 {
        let mut next = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek().copied()) {
                ('\\', Some('u')) => {
                    chars.next();
                    let hex: String = chars.by_ref().take(4).collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) => next.push(ch),
                        None => next.push('\u{FFFD}'),
                    }
                }
                ('\\', Some(e)) => {
                    chars.next();
                    next.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                ('%', _) => {
                    let hex: String = chars.clone().take(2).collect();
                    match u8::from_str_radix(&hex, 16) {
                        Ok(b) if hex.len() == 2 && b.is_ascii() => {
                            chars.next();
                            chars.next();
                            next.push(char::from(b));
                        }
                        _ => next.push('%'),
                    }
                }
                (c, _) => next.push(c),
            }
        }
        s = next;
    }
    s
}

fn assert_no_leak(output: &str, planted: &[&str]) {
    let decoded = fully_decoded(output);
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let flat = digits(&decoded.replace(char::is_whitespace, ""));
    for p in planted {
        assert!(!decoded.contains(p), "{p:?} leaked in {output}");
        if p.chars().filter(char::is_ascii_digit).count() >= 9 {
            assert!(
                !flat.contains(&digits(p)),
                "digits of {p:?} leaked in {output}"
            );
        }
    }
}

#[test]
fn an_invalid_escape_or_a_lone_surrogate_does_not_hide_a_string() {
    let p = all();
    let body = r#"{"a": "SSN 536-22-1234 card 4111 1111 1111 1111 C:\Users\ada", "b": "\ud800 ada@example.com \udc00"}"#;
    let i = json(&p, body);
    let classes: Vec<&str> = i.findings.iter().map(|f| &*f.class).collect();
    assert_eq!(classes, ["us_ssn", "credit_card", "email"]);
    let o = out(&i, body);
    assert_no_leak(
        &o,
        &["536-22-1234", "4111 1111 1111 1111", "ada@example.com"],
    );
    assert!(o.contains(r"C:\Users\ada"), "{o}");
}

#[test]
fn keys_are_scanned_redacted_in_place_and_never_rendered_in_paths() {
    let p = all();
    let body = r#"{"byEmail": {"ada@example.com": {"n": 1}, "bob@example.com": {"n": 2}},
        "4111 1111 1111 1111": "x", "536-22-1234": [1], "people": {"Ada Lovelace": {"mail": "ada@example.com"}},
        "esc": {"ada\u0040example.org": 1}}"#;
    let i = json(&p, body);
    let o = out(&i, body);
    assert_no_leak(
        &o,
        &[
            "ada@example.com",
            "bob@example.com",
            "ada@example.org",
            "4111 1111 1111 1111",
            "536-22-1234",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&o).expect("still JSON");
    // Two keys redacted alike stay two members.
    assert_eq!(v["byEmail"].as_object().unwrap().len(), 2, "{o}");
    assert_eq!(v.as_object().unwrap().len(), 5, "{o}");
    let paths: Vec<&str> = i
        .findings
        .iter()
        .filter_map(|f| f.path.as_deref())
        .collect();
    assert!(paths.contains(&"$.byEmail[<email>]"), "{paths:?}");
    // A key holding a name is itself a finding (the gazetteer knows "Ada Lovelace"); a key
    // above a finding is rendered by its class, never by its text.
    assert!(paths.contains(&"$.people[<person_name>].mail"), "{paths:?}");
    for path in &paths {
        assert_no_leak(path, &["ada", "bob", "4111", "536-22", "Lovelace"]);
    }
}

#[test]
fn percent_encoded_values_are_decoded_and_redacted() {
    let p = all();
    let body = r#"{"q": "to=ada%40example.com&tel=%2B44%2020%207946%200958", "c": "4111%201111%201111%201111"}"#;
    let i = json(&p, body);
    let o = out(&i, body);
    serde_json::from_str::<serde_json::Value>(&o).expect("still JSON");
    assert_no_leak(
        &o,
        &["ada@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"],
    );
    let text = "mail ada%40example.com or call %2B44%2020 7946 0958";
    let i = inspect_with(
        &p,
        "/",
        Direction::Response,
        Some("text/plain"),
        &[],
        text.as_bytes(),
    );
    assert_no_leak(&out(&i, text), &["ada@example.com", "+44 20 7946 0958"]);
}

#[test]
fn short_encoded_values_are_decoded_below_and_above_a_vector_width() {
    // Texts under 16 bytes are checked for a backslash, `%` and `&` by a byte loop, longer
    // ones by `memchr3` (src/bytes.rs): values of 14, 15 and 16 bytes in each encoding must
    // all be decoded and found.
    let p = all();
    let values = [
        ("abcd%40efgh.io", "abcd@efgh.io"),
        ("abcde%40efgh.io", "abcde@efgh.io"),
        ("abcdef%40efgh.io", "abcdef@efgh.io"),
        (r"abc\u0040cd.io", "abc@cd.io"),
        (r"abcd\u0040cd.io", "abcd@cd.io"),
        (r"abcde\u0040cd.io", "abcde@cd.io"),
        ("abcd&#64;cd.io", "abcd@cd.io"),
        ("abcde&#64;cd.io", "abcde@cd.io"),
        ("abcdef&#64;cd.io", "abcdef@cd.io"),
    ];
    for (raw, plain) in values {
        let body = format!(r#"{{"v": "{raw}"}}"#);
        let i = json(&p, &body);
        assert!(!i.findings.is_empty(), "{raw}: no finding");
        let o = out(&i, &body);
        serde_json::from_str::<serde_json::Value>(&o).expect("still JSON");
        assert_no_leak(&o, &[plain]);
    }
}

#[test]
fn json_nested_in_json_strings_is_walked_at_every_level() {
    let p = all();
    let inner = serde_json::json!({
        "email": "ada@example.com",
        "card": 4111111111111111u64,
        "dob": "1985-03-12",
        "note": "call +44 20 7946 0958"
    });
    // A message envelope inside a queue event inside an API response.
    let envelope = serde_json::json!({"message": inner.to_string()}).to_string();
    let event = serde_json::json!({"event": envelope, "id": 7}).to_string();
    let body = serde_json::json!({"data": event}).to_string();
    // The same with `@` escaped at the innermost level (`\\\\u0040` in the body).
    let hidden = serde_json::json!({"data": serde_json::json!({"event": r#"{"email":"bob\u0040example.com"}"#}).to_string()}).to_string();
    assert!(hidden.contains(r"\\\\u0040"), "{hidden}");
    for body in [body, hidden] {
        let i = json(&p, &body);
        let o = out(&i, &body);
        assert_no_leak(
            &o,
            &[
                "ada@example.com",
                "bob@example.com",
                "4111111111111111",
                "1985-03-12",
                "+44 20 7946 0958",
            ],
        );
        // Every level still parses.
        let mut v: serde_json::Value = serde_json::from_str(&o).expect("outer JSON");
        let mut depth = 0;
        while let Some(s) = v.as_object().and_then(|m| {
            m.values()
                .find_map(|x| x.as_str().filter(|s| s.starts_with('{')))
        }) {
            v = serde_json::from_str(s).unwrap_or_else(|e| panic!("level {depth}: {e}: {s}"));
            depth += 1;
        }
        assert!(depth >= 1, "{o}");
    }
}

#[test]
fn keywords_match_in_any_case() {
    let p = all();
    for (text, class) in [
        ("apiKey=Zx9fQ2LmP7vR4tY8wK3s", "generic_secret"),
        ("X-Api-Key: Zx9fQ2LmP7vR4tY8wK3s", "generic_secret"),
        ("API_Key: Zx9fQ2LmP7vR4tY8wK3s", "generic_secret"),
        ("PassWord=Zx9fQ2LmP7vR4tY8wK3s", "generic_secret"),
        ("DoB: 12/03/1985", "date_of_birth"),
        ("BIRTHDATE 1985-03-12", "date_of_birth"),
    ] {
        let i = inspect_with(
            &p,
            "/",
            Direction::Response,
            Some("text/plain"),
            &[],
            text.as_bytes(),
        );
        let classes: Vec<&str> = i.findings.iter().map(|f| &*f.class).collect();
        assert_eq!(classes, [class], "{text}");
    }
}

#[test]
fn key_value_shapes_in_text_feed_key_hints() {
    let p = all();
    for (ct, text, planted) in [
        (
            "text/plain",
            r#"record "dob": "1985-03-12", "full_name": "Ada Lovelace""#,
            &["1985-03-12", "Ada Lovelace"][..],
        ),
        (
            "text/html",
            "<p>dob: 1985-03-12</p><p>password=hunter2!x</p>",
            &["1985-03-12", "hunter2!x"],
        ),
        (
            "application/xml",
            "<user><dob>1985-03-12</dob><full_name>Ada Lovelace</full_name></user>",
            &["1985-03-12", "Ada Lovelace"],
        ),
        (
            "application/xml",
            r#"<user dob="1985-03-12" last_name='Lovelace'/>"#,
            &["1985-03-12", "Lovelace"],
        ),
        (
            "text/plain",
            "first_name=Ada&dob=1985-03-12",
            &["1985-03-12", "Ada"],
        ),
    ] {
        let i = inspect_with(&p, "/", Direction::Response, Some(ct), &[], text.as_bytes());
        assert_no_leak(&out(&i, text), planted);
    }
}

#[test]
fn json_with_a_prefix_bad_bytes_or_a_trailing_comma_is_inspected_not_refused() {
    let p = all();
    let cases: [(&[u8], Option<&str>, BodyKind); 5] = [
        (
            b"\xEF\xBB\xBF{\"e\": \"ada@example.com\"}",
            Some("json.bom"),
            BodyKind::Json,
        ),
        (
            b")]}'\n{\"e\": \"ada@example.com\"}",
            Some("json.xssi_prefix"),
            BodyKind::Json,
        ),
        (
            b"{\"x\": \"\xff\xfe\", \"e\": \"ada@example.com\"}",
            None,
            BodyKind::Json,
        ),
        (
            b"{\"e\": \"ada@example.com\", \"dob\": \"1985-03-12\",}",
            Some("json.as_text"),
            BodyKind::Text,
        ),
        (
            b"[{\"e\": \"ada@example.com\"},]",
            Some("json.as_text"),
            BodyKind::Text,
        ),
    ];
    for (body, fallback, kind) in cases {
        let i = inspect_with(
            &p,
            "/",
            Direction::Response,
            Some("application/json"),
            &[],
            body,
        );
        assert!(
            matches!(i.decision, Decision::Rewrite(_)),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(i.fallback, fallback, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(i.body_kind, kind);
        let Decision::Rewrite(o) = &i.decision else {
            unreachable!()
        };
        assert_no_leak(
            &String::from_utf8_lossy(o),
            &["ada@example.com", "1985-03-12"],
        );
        assert!(o.starts_with(&body[..3]), "prefix kept");
    }
}

fn body_as(p: &Policy, ct: &str, body: &str) -> String {
    let i = inspect_with(p, "/", Direction::Response, Some(ct), &[], body.as_bytes());
    out(&i, body)
}

#[test]
fn html_character_references_cannot_hide_values() {
    let p = all();
    for body in [
        "<p>ada.lovelace&#64;example.com</p>",
        "<p>ada.lovelace&#x40;example.com</p>",
        "<p>ada.lovelace&commat;example.com</p>",
    ] {
        let o = body_as(&p, "text/html", body);
        assert!(!o.contains("lovelace"), "{body} -> {o}");
        assert!(o.starts_with("<p>") && o.ends_with("</p>"), "{o}");
    }
}

#[test]
fn html_attributes_name_the_values_they_hold() {
    let p = all();
    let body = r#"<input name="dob" value="1985-03-12"><td class="password">Tr0ub4dor-horse-battery</td><span itemprop="name">Augusta Byron</span>"#;
    let o = body_as(&p, "text/html", body);
    for v in ["1985-03-12", "Tr0ub4dor", "Augusta Byron"] {
        assert!(!o.contains(v), "{v} in {o}");
    }
    assert!(o.contains(r#"<input name="dob" value=""#), "{o}");
}

#[test]
fn a_body_that_only_claims_to_be_a_form_is_still_scanned() {
    let p = all();
    let body = r#"{"email": "ada.lovelace@example.com", "ssn": "536-22-1234"}"#;
    let o = body_as(&p, "application/x-www-form-urlencoded", body);
    assert!(!o.contains("lovelace") && !o.contains("536-22-1234"), "{o}");
}

/// Classes are selected by name, qualified name, group or `group.*`; in `actions` the most
/// specific key wins whatever the order.
#[test]
fn class_groups_select_classes() {
    const BODY: &str = r#"{"mail": "ada@example.com", "ssn": "536-22-1234", "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "gh": "ghp_R8kLm2Qx9TzV4nWp7YcB3dFh6JsA1uEo5iGk"}"#;
    let classes = |detect: &str| {
        let p = policy(&format!(
            r#"{{"defaultRoute": {{"response": {{"detect": {detect}}}}}}}"#
        ));
        let mut c: Vec<String> = json(&p, BODY)
            .findings
            .iter()
            .map(|f| f.class.to_string())
            .collect();
        c.sort();
        c
    };
    assert_eq!(classes(r#"["secrets.*"]"#), ["github_token", "jwt"]);
    assert_eq!(classes(r#"["secrets"]"#), ["github_token", "jwt"]);
    assert_eq!(classes(r#"["national_id.us"]"#), ["us_ssn"]);
    assert_eq!(classes(r#"["national_id.*"]"#), ["us_ssn"]);
    assert_eq!(classes(r#"["pii.email", "jwt"]"#), ["email", "jwt"]);
    assert_eq!(classes(r#"["pii.*"]"#), ["email"]);

    let p = policy(
        r#"{"defaultRoute": {"response": {"actions": {"jwt": "mask", "secrets.*": "hash", "pii": "drop"}}}, "keys": [{"id": "k", "env": "K"}]}"#,
    );
    let actions: Vec<(String, ActionKind)> = json(&p, BODY)
        .findings
        .iter()
        .map(|f| (f.class.to_string(), f.action))
        .collect();
    assert!(
        actions.contains(&("jwt".into(), ActionKind::Mask)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("github_token".into(), ActionKind::Hash)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("email".into(), ActionKind::Drop)),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("us_ssn".into(), ActionKind::Redact)),
        "{actions:?}"
    );

    let err = meshdlp::parse_manifest_json(
        br#"{"defaultRoute": {"response": {"detect": ["secret.*"]}}}"#,
    )
    .map_err(|e| e.to_string())
    .and_then(|m| Policy::compile(&m).map_err(|e| e.to_string()))
    .err()
    .unwrap_or_default();
    assert!(
        err.starts_with("defaultRoute.response.detect[0]: unknown class or group `secret.*`")
            && err.contains("secrets"),
        "{err}"
    );
}

/// `n` custom classes `internal_<i>`, each matching `INT<i, three digits>-<six digits>`, as
/// the JSON list a manifest's `classes` holds (without its brackets).
fn internal_classes(n: usize) -> String {
    let classes: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"name": "internal_{i}", "pattern": "INT{i:03}-[0-9]{{6}}"}}"#))
        .collect();
    classes.join(",")
}

#[test]
fn a_policy_holds_a_hundred_custom_classes_and_each_one_finds_its_own() {
    // Detector sets were 128-bit masks and the built-in pack took 123 of them: a sixth custom
    // class made the policy fail to compile.
    let classes = internal_classes(100);
    let p = policy(&format!(
        r#"{{"classes": [{}], "defaultRoute": {{"response": {{"detect": ["custom.*", "email"]}}}}}}"#,
        classes
    ));
    let body: Vec<String> = (0..100).map(|i| format!(r#""INT{i:03}-123456""#)).collect();
    let insp = json(&p, &format!(r#"[{}, "ada@example.com"]"#, body.join(",")));
    let mut found: Vec<String> = insp.findings.iter().map(|f| f.class.to_string()).collect();
    found.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("internal_{i}")).collect();
    want.push("email".into());
    want.sort();
    assert_eq!(found, want);

    // Past the limit: a clear error at `classes`, saying how many fit.
    let classes = internal_classes(300);
    let err = meshdlp::parse_manifest_json(format!(r#"{{"classes": [{}]}}"#, classes).as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|m| Policy::compile(&m).map_err(|e| e.to_string()))
        .err()
        .unwrap_or_default();
    assert!(
        err.starts_with("classes: too many custom classes (300; at most "),
        "{err}"
    );
}

#[test]
fn a_custom_keyword_stays_a_gate_beside_a_shorter_builtin_one() {
    // `token` is a built-in keyword; a custom class gated on `emp_token` must not run where
    // only `token` occurs (keywords inside others are merged for built-in detectors only).
    let p = policy(
        r#"{"classes": [{"name": "emp_id", "pattern": "[0-9]{6}", "keywords": ["emp_token"]}],
            "defaultRoute": {"response": {"detect": ["emp_id"]}}}"#,
    );
    let none = json(&p, r#"{"note": "token 123456"}"#);
    assert!(none.findings.is_empty(), "{:?}", none.findings);
    let found = json(&p, r#"{"note": "emp_token 123456"}"#);
    assert_eq!(found.findings.len(), 1, "{:?}", found.findings);
}

#[test]
fn a_keyword_an_escape_writes_is_found_in_the_decoded_string() {
    // Keywords of escaped strings come from the body's search when no keyword holds a byte
    // an escape writes; a custom keyword with `/` (written `\/` in JSON) must still gate in.
    let p = policy(
        r#"{"classes": [{"name": "emp_id", "pattern": "[0-9]{6}", "keywords": ["emp/id"]}],
            "defaultRoute": {"response": {"detect": ["emp_id"]}}}"#,
    );
    for body in [
        r#"{"note": "emp\/id 123456"}"#,
        r#"{"note": "emp/id 123456 \n"}"#,
        r#"{"note": "emp\u002fid 123456"}"#,
    ] {
        let found = json(&p, body);
        assert_eq!(found.findings.len(), 1, "{body}: {:?}", found.findings);
    }
    let none = json(&p, r#"{"note": "emp id 123456 \n"}"#);
    assert!(none.findings.is_empty(), "{:?}", none.findings);
}

#[test]
fn a_doubled_escape_letter_literal_is_found_after_its_escape() {
    // Hostile review: a pattern's required literal `ff` is a keyword of its own; in `\fff...`
    // the body's pass must report the `ff` after the escape's `f`, overlapping the one it
    // starts (the decoded string is a form feed and `ff...`).
    for letter in ["b", "f", "n", "r", "t"] {
        let pattern = format!("{letter}{letter}[0-9]{{6}}");
        let p = policy(&format!(
            r#"{{"classes": [{{"name": "emp_id", "pattern": "{pattern}"}}],
                "defaultRoute": {{"response": {{"detect": ["emp_id"]}}}}}}"#
        ));
        for body in [
            format!(r#"{{"note": "\{letter}{letter}{letter}123456"}}"#),
            format!(r#"{{"note": "x\\\{letter}{letter}{letter}123456"}}"#),
            format!(r#"{{"note": "{letter}{letter}123456"}}"#),
        ] {
            let found = json(&p, &body);
            assert_eq!(found.findings.len(), 1, "{body}: {:?}", found.findings);
        }
    }
}

#[test]
fn a_context_word_counts_where_it_starts_a_word_in_every_layer() {
    // A VAT number is reported only after a context word that starts a word (`VAT`, not the
    // end of `PRIVAT`): the keyword gate of such detectors asks the same of the word, in a
    // plain string, after an escape (`\n` is written `\` `n`, a letter, before `VAT`), in a
    // nested document and in plain text.
    let p = all();
    let found = |body: &str, ct: &str| {
        let i = inspect_with(&p, "/", Direction::Response, Some(ct), &[], body.as_bytes());
        i.findings.iter().any(|f| &*f.detector == "eu_vat")
    };
    let json = "application/json";
    for (body, ct) in [
        (r#"{"note": "VAT DE136695976"}"#, json),
        (r#"{"note": "paid.\nVAT DE136695976"}"#, json),
        (r#"{"note": "paid\tVAT DE136695976"}"#, json),
        (r#"{"doc": "{\"note\": \"x\\nVAT DE136695976\"}"}"#, json),
        ("paid.\nVAT DE136695976", "text/plain"),
    ] {
        assert!(found(body, ct), "{body}");
    }
    for (body, ct) in [
        (r#"{"note": "PRIVAT DE136695976"}"#, json),
        (r#"{"note": "x\\nVAT DE136695976"}"#, json),
        ("PRIVAT DE136695976", "text/plain"),
    ] {
        assert!(!found(body, ct), "{body}");
    }
}

#[test]
fn a_token_keyword_counts_where_it_starts_a_word_once_decoded() {
    // A GitHub token is reported only where nothing alphanumeric is glued before it, and its
    // keyword gate asks the same of `ghp_` in the decoded string: an escape that writes a space
    // (`\u0020`) or a line break (`\n`) before it un-glues it, one that writes a letter
    // (`\u0078`) or a backslash's `n` (`\\n`) glues it.
    let p = all();
    let found = |body: &str, ct: &str| {
        let i = inspect_with(&p, "/", Direction::Response, Some(ct), &[], body.as_bytes());
        i.findings.iter().any(|f| &*f.detector == "github_token")
    };
    let token = "ghp_R8kLm2Qx9TzV4nWp7YcB3dFh6JsA1uEo5iGk";
    let json = "application/json";
    for (body, ct) in [
        (format!(r#"{{"t": "{token}"}}"#), json),
        (format!(r#"{{"t": "x\u0020{token}"}}"#), json),
        (format!(r#"{{"t": "x\n{token}"}}"#), json),
        (format!(r#"{{"doc": "{{\"t\": \"x\\n{token}\"}}"}}"#), json),
        (format!("x {token}"), "text/plain"),
    ] {
        assert!(found(&body, ct), "{body}");
    }
    for (body, ct) in [
        (format!(r#"{{"t": "x{token}"}}"#), json),
        (format!(r#"{{"t": "\u0078{token}"}}"#), json),
        (format!(r#"{{"t": "x\\n{token}"}}"#), json),
        (format!("x{token}"), "text/plain"),
    ] {
        assert!(!found(&body, ct), "{body}");
    }
}

#[test]
fn a_keyword_glued_to_a_word_opens_the_gate_of_a_pattern_that_does_not_start_at_a_boundary() {
    // `EMP` glued to `x` may start a match of `EMP[0-9]{6}`, not one of `\bEMQ[0-9]{6}`: only
    // the second gate asks for a keyword that starts a word.
    let p = policy(
        r#"{"classes": [
              {"name": "emp", "pattern": "EMP[0-9]{6}", "keywords": ["EMP"]},
              {"name": "emq", "pattern": "\\bEMQ[0-9]{6}", "keywords": ["EMQ"]}],
            "defaultRoute": {"response": {"detect": ["emp", "emq"]}}}"#,
    );
    let classes = |body: &str| {
        let mut c: Vec<String> = json(&p, body)
            .findings
            .iter()
            .map(|f| f.class.to_string())
            .collect();
        c.sort();
        c
    };
    assert_eq!(classes(r#"{"a": "xEMP123456 xEMQ123456"}"#), ["emp"]);
    assert_eq!(classes(r#"{"a": "xEMP123456 EMQ123456"}"#), ["emp", "emq"]);
    assert_eq!(classes(r#"{"a": "id:EMQ123456"}"#), ["emq"]);
}

/// Redactions are made once per action, class, site and nesting and reused: findings that
/// alternate between classes, between a JSON string and a whole JSON value, and between a
/// document and one nested in a string each get their own text, escaped for where it goes.
#[test]
fn reused_redactions_keep_their_class_site_and_escaping() {
    // A placeholder with a quote: escaped once in a string, twice in a nested document's.
    let p = policy(
        r#"{"defaultRoute": {"response": {"defaultAction": {"type": "redact", "placeholder": "<\"{class}\">"}}}}"#,
    );
    let body = r#"{"a":"ada@example.com","b":"card 4111 1111 1111 1111","c":"{\"e\":\"bob@example.org\"}","d":"grace@example.net","n":4111111111111111,"f":"4012888888881881 \"q\"","g":"{\"h\":\"5555 5555 5555 4444\"}"}"#;
    let i = json(&p, body);
    assert_eq!(
        out(&i, body),
        r#"{"a":"<\"email\">","b":"card <\"credit_card\">","c":"{\"e\":\"<\\\"email\\\">\"}","d":"<\"email\">","n":"<\"credit_card\">","f":"<\"credit_card\"> \"q\"","g":"{\"h\":\"<\\\"credit_card\\\">\"}"}"#
    );
    assert_eq!(i.findings.len(), 7, "{:?}", i.findings);
}

/// Past the redactions kept for reuse (32 per body): a hundred classes, each found twice in
/// turn, each value gets its own class's text, never a kept one of another class.
#[test]
fn more_redaction_texts_than_are_kept_each_stay_their_own() {
    let classes = internal_classes(100);
    let p = policy(&format!(
        r#"{{"classes": [{}], "defaultRoute": {{"response": {{"detect": ["custom.*"]}}}}}}"#,
        classes
    ));
    let order: Vec<usize> = (0..100).chain((0..100).rev()).collect();
    let body: Vec<String> = order
        .iter()
        .map(|i| format!(r#""INT{i:03}-123456""#))
        .collect();
    let body = format!("[{}]", body.join(","));
    let want: Vec<String> = order
        .iter()
        .map(|i| format!(r#""[REDACTED:internal_{i}]""#))
        .collect();
    assert_eq!(
        out(&json(&p, &body), &body),
        format!("[{}]", want.join(","))
    );
}
