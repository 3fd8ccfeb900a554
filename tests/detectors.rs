//! Runs the table in `tests/data/detectors.toml`: positives and hard negatives per class.

use meshdlp::{Direction, Exchange, Policy};
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    class: String,
    text: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    find: Vec<String>,
    #[serde(default)]
    clean: bool,
}

#[test]
fn detector_table() {
    let table: Table = toml::from_str(include_str!("data/detectors.toml")).expect("table parses");
    let policy = Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy");
    let route = policy.route("GET", "/", "test");
    let mut failures = Vec::new();
    for (i, c) in table.case.iter().enumerate() {
        let body = match &c.key {
            Some(k) => serde_json::to_string(&serde_json::json!({ k: c.text })).unwrap(),
            None => c.text.clone(),
        };
        let content_type = if c.key.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let insp = policy.inspect(&Exchange {
            route,
            direction: Direction::Response,
            content_type: Some(content_type),
            scopes: &[],
            body: body.as_bytes(),
        });
        let found: Vec<(String, String)> = insp
            .findings
            .iter()
            .map(|f| {
                let raw = &body[f.start..f.end];
                // Spans in JSON cover the escaped text; compare decoded.
                let text = if c.key.is_some() {
                    serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or(raw.to_string())
                } else {
                    raw.to_string()
                };
                (f.class.to_string(), text)
            })
            .collect();
        let of_class: Vec<&String> = found
            .iter()
            .filter(|(cl, _)| *cl == c.class)
            .map(|(_, t)| t)
            .collect();
        let want: Vec<&String> = c.find.iter().collect();
        if of_class != want {
            failures.push(format!(
                "case {i} [{}] {:?}: expected {:?}, found {:?} (all: {:?})",
                c.class, c.text, want, of_class, found
            ));
        }
        if c.clean && !found.is_empty() {
            failures.push(format!(
                "case {i} [{}] {:?}: expected nothing, found {:?}",
                c.class, c.text, found
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} detector case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
