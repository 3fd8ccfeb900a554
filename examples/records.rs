//! Inspects one JSON body `N` times with the built-in pack (every class, redact): under
//! callgrind, the instructions it takes, less a run with `N` = 1, are `N - 1` inspections
//! without the process's setup. `tests/bench_records.sh` runs it on bodies of 2,000 records
//! of one shape each (an enum, a timestamp, a UUID, words, an amount) to show what one record
//! costs: the fixed cost of a JSON value on the scan path, which the realistic corpus pays
//! ~79,000 times a pass.
//!
//!   cargo run --release -p meshdlp --example records -- BODY.json N

use std::hint::black_box;

use meshdlp::{Direction, Exchange, Policy};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: records BODY.json N");
        std::process::exit(2);
    };
    let body = std::fs::read(&path).expect("body file");
    let n: usize = n.parse().expect("N");
    let policy = Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy");
    let ex = Exchange {
        route: policy.route("GET", "/", "bench"),
        direction: Direction::Response,
        content_type: Some("application/json"),
        scopes: &[],
        body: &body,
    };
    let mut findings = 0;
    for _ in 0..n {
        findings = black_box(policy.inspect(black_box(&ex))).findings.len();
    }
    println!("{findings} findings");
}
