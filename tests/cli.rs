//! The `meshdlp` binary, run as users run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn meshdlp(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshdlp"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn meshdlp");
    // Written from a thread: a large input would otherwise fill the pipe while the child blocks
    // on a full stdout that nobody reads yet.
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    // A child that exits before reading all of its input closes the pipe: not an error here,
    // the caller judges the output.
    let _ = writer.join();
    out
}

fn temp_file(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("meshdlp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

/// The example policy reads its hash/tokenize key from MESHDLP_KEY.
const KEY: &[(&str, &str)] = &[("MESHDLP_KEY", "a-test-secret-of-enough-length")];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_example_and_rejects_with_a_location() {
    let ok = meshdlp(&["check", "examples/policy.yaml"], b"", &[]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let bad = temp_file("bad.yaml", "routes:\n  - name: a\n    match: {prefix: /}\n    response:\n      fields:\n        - {path: \"$.items[*]]\", action: redact}\n");
    let out = meshdlp(&["check", &bad], b"", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("routes[0].response.fields[0].path: unexpected ']' at column 11"),
        "{}",
        text(&out.stderr)
    );
    let typo = temp_file(
        "typo.yaml",
        "mode: enforce\nroutes:\n  - name: a\n    match: {prefix: /}\n    respnse: {}\n",
    );
    let out = meshdlp(&["check", &typo], b"", &[]);
    assert!(
        text(&out.stderr).contains("routes[0]: unknown field `respnse`"),
        "{}",
        text(&out.stderr)
    );
    // A map's key given twice is refused in YAML and JSON: read into the manifest alone, the
    // last copy would win (`email: allow` undoing `email: mask`).
    for (name, policy, want) in [
        (
            "dup.yaml",
            "defaultRoute:\n  response:\n    actions:\n      email: mask\n      email: allow\n",
            "duplicate entry with key \"email\" at line 4",
        ),
        (
            "dup.json",
            r#"{"defaultRoute": {"response": {"actions": {"email": "mask", "email": "allow"}}}}"#,
            "duplicate key `email` at line 1",
        ),
    ] {
        let out = meshdlp(&["check", &temp_file(name, policy)], b"", &[]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    }
}

#[test]
fn redact_prints_the_body_and_exits_3_on_block() {
    let out = meshdlp(
        &[
            "redact",
            "--policy",
            "examples/policy.yaml",
            "--route-path",
            "/orders/1",
            "--content-type",
            "application/json",
            "--explain",
        ],
        br#"{"note":"mail ada@example.com"}"#,
        KEY,
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), r#"{"note":"mail [REDACTED:email]"}"#);
    assert!(text(&out.stderr).contains("class=email path=$.note"));
    assert!(
        !text(&out.stderr).contains("ada@example.com"),
        "explain never prints values"
    );
    let blocked = meshdlp(
        &[
            "redact",
            "--policy",
            "examples/policy.yaml",
            "--route-path",
            "/users/7",
        ],
        br#"{"ssn":"536-22-1234"}"#,
        KEY,
    );
    assert_eq!(blocked.status.code(), Some(3));
    assert!(text(&blocked.stdout).contains("scope.class_not_allowed"));
    let granted = meshdlp(
        &[
            "redact",
            "--policy",
            "examples/policy.yaml",
            "--route-path",
            "/users/7",
            "--scopes",
            "users:read users:pii",
        ],
        br#"{"ssn":"536-22-1234"}"#,
        KEY,
    );
    assert_eq!(granted.status.code(), Some(0));
}

#[test]
fn scan_jsonl_reports_byte_offsets_into_the_body_as_given() {
    let input = concat!(
        r#"{"id": "a", "body": "{\"e\": \"ada\\u0040example.com\"}", "content_type": "application/json"}"#,
        "\n",
        r#"{"id": 2, "body": "call +44 20 7946 0958 now"}"#,
        "\n",
        r#"{"id": "c", "body": "nothing here 550e8400-e29b-41d4-a716-446655440000"}"#,
        "\n",
    );
    let out = meshdlp(&["scan", "--jsonl"], input.as_bytes(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let body0 = r#"{"e": "ada\u0040example.com"}"#;
    let f = &lines[0]["findings"][0];
    assert_eq!(f["class"], "email");
    assert_eq!(f["path"], "$.e");
    let (s, e) = (
        f["start"].as_u64().unwrap() as usize,
        f["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&body0[s..e], r"ada\u0040example.com");
    assert_eq!(lines[1]["id"], 2);
    let f = &lines[1]["findings"][0];
    assert_eq!(
        (
            f["class"].as_str().unwrap(),
            f["start"].as_u64().unwrap(),
            f["end"].as_u64().unwrap()
        ),
        ("phone", 5, 21)
    );
    assert_eq!(lines[2]["findings"], serde_json::json!([]));

    // A bad line gets an error line and does not stop the batch.
    let out = meshdlp(
        &["scan", "--jsonl"],
        b"not json\n{\"id\": 1, \"body\": \"a@example.com\"}\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[1]["findings"][0]["class"], "email");
}

#[test]
fn detokenize_reverses_tokens_with_the_key() {
    let policy = temp_file("tok.yaml", "keys: [{id: k1, env: MESHDLP_TEST_KEY}]\ndefaultRoute:\n  response:\n    actions: {credit_card: tokenize}\n");
    let key = [("MESHDLP_TEST_KEY", "a-test-secret-of-enough-length")];
    let out = meshdlp(
        &["redact", "--policy", &policy],
        br#"{"card":"4111 1111 1111 1111"}"#,
        &key,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tokenized = text(&out.stdout);
    assert!(tokenized.contains("tok:k1:") && !tokenized.contains("4111"));
    let back = meshdlp(
        &["detokenize", "--key-env", "MESHDLP_TEST_KEY"],
        tokenized.as_bytes(),
        &key,
    );
    assert_eq!(text(&back.stdout), r#"{"card":"4111 1111 1111 1111"}"#);
    let wrong = meshdlp(
        &["detokenize", "--key-env", "W"],
        tokenized.as_bytes(),
        &[("W", "another-secret-entirely-0000")],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(!text(&wrong.stdout).contains("4111"));
}

#[test]
fn test_command_runs_cases_and_fails_on_a_wrong_expectation() {
    let ok = meshdlp(&["test", "tests/policies/example.yaml"], b"", &[]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains(" passed, 0 failed"));
    let failing = temp_file("fail.yaml", "manifest: {defaultRoute: {response: {}}}\ncases:\n  - name: wrong\n    json: {\"e\": \"ada@example.com\"}\n    expect: {decision: allow}\n");
    let out = meshdlp(&["test", &failing], b"", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAIL")
            && text(&out.stdout).contains("decision: expected allow, got rewrite")
    );
}

#[test]
fn schema_describes_the_manifest() {
    let out = meshdlp(&["schema"], b"", &[]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["properties"]["routes"].is_object());
    assert!(schema["properties"]["mode"].is_object());
}

/// Findings on the realistic corpus must not change by accident: every optimisation of the scan
/// path keeps them byte-identical. The checksum is of `meshdlp scan --jsonl` over
/// tests/data/corpus/api-bodies.jsonl; after a change to detection made on purpose, run
/// `make corpus-findings` to record the new one (and say why in the commit).
#[test]
fn corpus_findings_are_unchanged() {
    use sha2::{Digest, Sha256};
    let root = env!("CARGO_MANIFEST_DIR");
    let corpus = std::fs::read(format!("{root}/tests/data/corpus/api-bodies.jsonl")).unwrap();
    let expected =
        std::fs::read_to_string(format!("{root}/tests/data/corpus/findings.sha256")).unwrap();
    let expected = expected.split_whitespace().next().unwrap_or_default();
    let out = meshdlp(&["scan", "--jsonl"], &corpus, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: String = Sha256::digest(&out.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != expected {
        let keep = std::env::temp_dir().join("meshdlp-corpus-findings.jsonl");
        std::fs::write(&keep, &out.stdout).unwrap();
        panic!(
            "findings on the corpus changed: sha256 {got}, expected {expected}.\n\
             The new output is in {}; compare it with `make corpus-findings` on the previous \
             commit. If the change is on purpose, run `make corpus-findings` and commit \
             tests/data/corpus/findings.sha256.",
            keep.display()
        );
    }
}

/// k8s/crd/datapolicies.meshdlp.io.yaml is `meshdlp crd`'s output; regenerate with `make crd`.
#[test]
fn crd_is_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = "k8s/crd/datapolicies.meshdlp.io.yaml";
    let out = meshdlp(&["crd"], b"", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_default();
    assert!(
        committed == text(&out.stdout),
        "{path} is stale: run `make crd` and commit it"
    );
    // The YAML says exactly what the JSON says.
    let json = meshdlp(&["crd", "--json"], b"", &[]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let yaml: serde_json::Value = serde_yaml_ng::from_str(&committed).unwrap();
    assert_eq!(json, yaml);
    assert_eq!(yaml["metadata"]["name"], "datapolicies.meshdlp.io");
}

/// docs/CLASSES.md is generated from the pack; regenerate with `make classes-doc`.
#[test]
fn classes_doc_is_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = meshdlp(&["classes", "--markdown"], b"", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc = std::fs::read_to_string(format!("{root}/docs/CLASSES.md")).unwrap_or_default();
    assert!(
        doc == text(&out.stdout),
        "docs/CLASSES.md is stale: run `make classes-doc` and commit it"
    );
    let json = meshdlp(&["classes", "--json"], b"", &[]);
    let classes: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = classes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"email") && names.contains(&"us_ssn"),
        "{names:?}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_cli_quietly() {
    // `meshdlp scan < body | head -1`: the pipe closes while the CLI still writes.
    let mut body = String::from("[");
    for i in 0..4000 {
        body.push_str(&format!("\"user{i}@example.com\","));
    }
    body.push_str("\"end\"]");
    closed_early(&["scan"], body.clone());
    // `scan --jsonl` writes through serde_json, which wraps the io error.
    let mut lines = String::new();
    for _ in 0..3000 {
        lines.push_str(&format!(
            "{{\"id\": \"x\", \"body\": {}}}\n",
            serde_json::to_string(&body[..200]).expect("json")
        ));
    }
    closed_early(&["scan", "--jsonl"], lines);
}

/// Runs the CLI on `input`, reads 16 bytes of its output and closes the pipe: it must end with
/// 141 (as if stopped by SIGPIPE), without a panic or an error message.
fn closed_early(args: &[&str], input: String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshdlp"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // From a thread: the CLI may stop reading once the pipe closes.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    assert_eq!(
        out.status.code(),
        Some(141),
        "{args:?}: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).is_empty(),
        "{args:?}: {}",
        text(&out.stderr)
    );
}
