//! `make bench`: engine throughput next to a naive baseline, measured side by side in one run.
//!
//! The baseline is what a reasonable first implementation does: parse the body into a
//! serde_json DOM, walk every string, run one regex per class over it, replace matches, and
//! serialise the DOM again. Numbers are medians of repeated runs on one core; record them in
//! docs/BENCHMARKS.md with the command.

use std::hint::black_box;
use std::time::{Duration, Instant};

use meshdlp::{Direction, Exchange, Policy};
use regex::Regex;
use serde_json::Value;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `f` repeatedly for about `budget`, in batches; returns the median seconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    // warm-up
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < budget / 10 || calls < 3 {
        f();
        calls += 1;
    }
    let per_batch = (calls / 3).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / f64::from(per_batch));
    }
    median(samples)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "order",
    "shipped",
    "pending",
    "widget",
    "premium",
    "blue",
    "large",
    "delivery",
    "warehouse",
    "returned",
    "standard",
    "express",
    "gift",
    "wrap",
    "note",
];

fn clean_record(r: &mut Rng, i: usize) -> Value {
    serde_json::json!({
        "id": i,
        "uuid": format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", r.next() as u32, r.next() as u16, r.next() % 4096, r.next() % 4096, r.next() % (1 << 48)),
        "created": format!("2024-{:02}-{:02}T{:02}:{:02}:{:02}Z", r.next() % 12 + 1, r.next() % 28 + 1, r.next() % 24, r.next() % 60, r.next() % 60),
        "status": r.pick(&["shipped", "pending", "cancelled"]),
        "total": (r.next() % 100_000) as f64 / 100.0,
        "items": [{"sku": format!("SKU-{}-XL", r.next() % 100_000), "qty": r.next() % 5 + 1}],
        "description": (0..8).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" "),
        "version": format!("{}.{}.{}", r.next() % 10, r.next() % 20, r.next() % 100),
    })
}

fn pii_record(r: &mut Rng, i: usize) -> Value {
    const CARDS: &[&str] = &[
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
        "378282246310005",
        "6011111111111117",
    ];
    serde_json::json!({
        "id": i,
        "name": "Ada Lovelace",
        "email": format!("user{}@example.com", r.next() % 100_000),
        "phone": format!("+1 415 555 {:04}", r.next() % 10_000),
        "card": r.pick(CARDS),
        "ssn": format!("536-{:02}-{:04}", r.next() % 98 + 1, r.next() % 9998 + 1),
        "ip": format!("10.{}.{}.{}", r.next() % 256, r.next() % 256, r.next() % 254 + 1),
        "note": format!("call me at (212) 555-{:04} or mail ops{}@example.org", r.next() % 10_000, r.next() % 1000),
    })
}

fn body_of(target: usize, mut make: impl FnMut(&mut Rng, usize) -> Value) -> Vec<u8> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut items = Vec::new();
    let mut size = 20;
    while size < target {
        let v = make(&mut r, items.len());
        size += serde_json::to_vec(&v).map_or(0, |b| b.len()) + 1;
        items.push(v);
    }
    serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap_or_default()
}

fn ndjson_of(target: usize) -> Vec<u8> {
    let mut r = Rng(7);
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < target {
        let v = if i % 4 == 0 {
            pii_record(&mut r, i)
        } else {
            clean_record(&mut r, i)
        };
        out.extend(serde_json::to_vec(&v).unwrap_or_default());
        out.push(b'\n');
        i += 1;
    }
    out
}

/// The naive baseline: DOM + one regex per class + re-serialise.
struct Naive {
    rules: Vec<(Regex, &'static str)>,
}

impl Naive {
    fn new() -> Naive {
        let rules = [
            (
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                "[REDACTED:email]",
            ),
            (r"\b(?:\d[ \-]?){12,18}\d\b", "[REDACTED:credit_card]"),
            (r"\b\d{3}-\d{2}-\d{4}\b", "[REDACTED:us_ssn]"),
            (r"\+[1-9][0-9 ()\-]{7,16}[0-9]", "[REDACTED:phone]"),
            (
                r"\(?\b[2-9]\d{2}\)?[ .\-]?[2-9]\d{2}[ .\-]\d{4}\b",
                "[REDACTED:phone]",
            ),
            (r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[REDACTED:ip_address]"),
            (r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b", "[REDACTED:iban]"),
            (r"\bAKIA[A-Z0-9]{16}\b", "[REDACTED:aws_access_key]"),
            (r"\beyJ[\w-]+\.eyJ[\w-]+\.[\w-]*", "[REDACTED:jwt]"),
        ];
        Naive {
            rules: rules
                .iter()
                .map(|(p, r)| (Regex::new(p).expect("baseline regex"), *r))
                .collect(),
        }
    }

    fn walk(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                for (re, rep) in &self.rules {
                    if re.is_match(s) {
                        *s = re.replace_all(s, *rep).into_owned();
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.walk(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.walk(x)),
            _ => {}
        }
    }

    fn redact(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut v: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
            self.walk(&mut v);
            out.extend(serde_json::to_vec(&v).unwrap_or_default());
            out.push(b'\n');
        }
        out
    }
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1500),
    );
    println!("meshdlp engine benchmark (one core, medians; budget {budget:?} per cell)\n");

    // What a new VM pays once: the first compile and prepare in a process also inflate the
    // built-in DFAs and initialise what is shared (one run: noisy).
    let first = if std::env::var("BENCH_ONLY").is_ok_and(|o| o != "compile") {
        f64::NAN
    } else {
        let started = Instant::now();
        let p = Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy");
        p.prepare();
        black_box(p);
        started.elapsed().as_secs_f64()
    };
    let compile = if std::env::var("BENCH_ONLY").is_ok_and(|o| o != "compile") {
        f64::NAN
    } else {
        time_per_call(budget, || {
            black_box(Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy"));
        })
    };
    let prepare = if std::env::var("BENCH_ONLY").is_ok_and(|o| o != "compile") {
        f64::NAN
    } else {
        time_per_call(budget, || {
            let p = Policy::from_json(br#"{"defaultRoute": {"response": {}}}"#).expect("policy");
            p.prepare();
            black_box(p);
        })
    };
    println!(
        "policy compile (built-in pack, every class): {:.2} ms   (target <= 20 ms)\n\
         compile + prepare (every matcher built, as a filter VM does): {:.2} ms\n\
         the first compile + prepare in this process (a new VM's, one run): {:.2} ms\n",
        compile * 1e3,
        prepare * 1e3,
        first * 1e3
    );

    let policy_json = std::env::var("BENCH_POLICY")
        .unwrap_or_else(|_| r#"{"defaultRoute": {"response": {}}}"#.to_string());
    let policy = Policy::from_json(policy_json.as_bytes()).expect("policy");
    let route = policy.route("GET", "/", "bench");
    let naive = Naive::new();
    let cases: Vec<(&str, Vec<u8>, &str, f64)> = vec![
        (
            "4 KB JSON, no PII",
            body_of(4 << 10, clean_record),
            "application/json",
            1000.0,
        ),
        (
            "64 KB JSON, no PII",
            body_of(64 << 10, clean_record),
            "application/json",
            1000.0,
        ),
        (
            "64 KB JSON, dense PII",
            body_of(64 << 10, pii_record),
            "application/json",
            250.0,
        ),
        (
            "1 MB NDJSON, 1/4 PII",
            ndjson_of(1 << 20),
            "application/x-ndjson",
            0.0,
        ),
    ];
    println!(
        "{:<24} {:>9} {:>12} {:>12} {:>8} {:>9}  findings",
        "body", "bytes", "meshdlp MB/s", "naive MB/s", "ratio", "target"
    );
    let mut cases = cases;
    if let Ok(files) = std::env::var("BENCH_FILES") {
        // Extra bodies, e.g. the ones `make bench-envoy` serves (.work/bench/*.json).
        for f in files.split(',') {
            let body = std::fs::read(f).expect("BENCH_FILES entry");
            let name: &'static str = Box::leak(
                f.rsplit('/')
                    .next()
                    .unwrap_or(f)
                    .to_string()
                    .into_boxed_str(),
            );
            cases.push((name, body, "application/json", 0.0));
        }
    }
    let only = std::env::var("BENCH_ONLY").ok();
    for (name, body, ct, target) in &cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let ex = Exchange {
            route,
            direction: Direction::Response,
            content_type: Some(ct),
            scopes: &[],
            body,
        };
        let findings = policy.inspect(&ex).findings.len();
        let t_engine = time_per_call(budget, || {
            black_box(policy.inspect(black_box(&ex)));
        });
        let t_naive = if std::env::var("BENCH_NO_NAIVE").is_ok() {
            f64::NAN
        } else {
            time_per_call(budget, || {
                black_box(naive.redact(black_box(body)));
            })
        };
        let mbps = |t: f64| body.len() as f64 / t / 1e6;
        let target_s = if *target > 0.0 {
            format!(">= {target:.0}")
        } else {
            "-".to_string()
        };
        println!(
            "{:<24} {:>9} {:>12.0} {:>12.0} {:>7.1}x {:>9}  {}",
            name,
            body.len(),
            mbps(t_engine),
            mbps(t_naive),
            t_naive / t_engine,
            target_s,
            findings
        );
    }
    if only.is_none() || only.as_deref() == Some("corpus") {
        corpus(&policy, route, &naive, budget);
    }
    let streaming_too = only.is_none() && std::env::var_os("BENCH_NO_STREAMING").is_none();
    if streaming_too || only.as_deref() == Some("streaming") {
        streaming(&policy, route);
    }
}

/// The realistic workload: every body of `tests/data/corpus/api-bodies.jsonl` (2,000 API bodies,
/// dense with personal data and look-alikes), inspected one by one as the filter would.
/// Throughput is the median of whole passes; latency is each body's median over `REPS` runs,
/// then p50/p99 over the bodies.
fn corpus(policy: &Policy, route: meshdlp::RouteId, naive: &Naive, budget: Duration) {
    const REPS: usize = 5;
    let path = std::env::var("BENCH_CORPUS")
        .unwrap_or_else(|_| "tests/data/corpus/api-bodies.jsonl".to_string());
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("\nrealistic corpus: {path} not found (run from the repository root)");
        return;
    };
    let bodies: Vec<Vec<u8>> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            v.get("body")
                .and_then(Value::as_str)
                .map(|b| b.as_bytes().to_vec())
        })
        .collect();
    let total: usize = bodies.iter().map(Vec::len).sum();
    let run = |b: &[u8]| {
        policy.inspect(&Exchange {
            route,
            direction: Direction::Response,
            content_type: Some("application/json"),
            scopes: &[],
            body: b,
        })
    };
    let findings: usize = bodies.iter().map(|b| run(b).findings.len()).sum();
    if let Some(passes) = std::env::var("BENCH_PASSES")
        .ok()
        .and_then(|p| p.parse::<usize>().ok())
    {
        // A fixed amount of work, for `perf stat -e instructions,cycles` on a shared machine
        // (counts that other processes barely move), instead of timed rounds.
        for _ in 0..passes {
            for b in &bodies {
                black_box(run(black_box(b)));
            }
        }
        println!("{passes} corpus passes, {findings} findings each");
        return;
    }
    #[cfg(feature = "profile")]
    {
        // One pass over the corpus, per detector (make profile-detectors).
        let _ = policy.detector_profile(true);
        for b in &bodies {
            black_box(run(b));
        }
        let rows = policy.detector_profile(true);
        let all: u64 = rows.iter().map(|r| r.2).sum();
        println!(
            "\ndetectors, one corpus pass: {:.1} ms in patterns",
            all as f64 / 1e6
        );
        println!(
            "  {:<28} {:>9} {:>9} {:>8}",
            "detector", "runs", "ms", "hits"
        );
        for (id, runs, nanos, hits) in rows.iter().take(30) {
            println!(
                "  {id:<28} {runs:>9} {:>9.1} {hits:>8}",
                *nanos as f64 / 1e6
            );
        }
    }
    let t_pass = time_per_call(budget, || {
        for b in &bodies {
            black_box(run(black_box(b)));
        }
    });
    let t_naive = if std::env::var("BENCH_NO_NAIVE").is_ok() {
        f64::NAN
    } else {
        time_per_call(budget, || {
            for b in &bodies {
                black_box(naive.redact(black_box(b)));
            }
        })
    };
    let timed: Vec<f64> = bodies
        .iter()
        .map(|b| {
            median(
                (0..REPS)
                    .map(|_| {
                        let t = Instant::now();
                        black_box(run(black_box(b)));
                        t.elapsed().as_secs_f64()
                    })
                    .collect(),
            )
        })
        .collect();
    if let Some(top) = std::env::var("BENCH_TOP")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        // Where the corpus time concentrates: the slowest bodies, and the share of the time
        // the slowest tenth takes.
        let sum: f64 = timed.iter().sum();
        let mut order: Vec<usize> = (0..timed.len()).collect();
        order.sort_by(|&a, &b| timed[b].total_cmp(&timed[a]));
        let tenth: f64 = order[..order.len() / 10].iter().map(|&i| timed[i]).sum();
        println!(
            "\nslowest bodies (the slowest tenth takes {:.0}% of the time)",
            100.0 * tenth / sum
        );
        println!("  {:>5} {:>9} {:>9} {:>8}", "body", "bytes", "ms", "MB/s");
        for &i in order.iter().take(top) {
            println!(
                "  {i:>5} {:>9} {:>9.3} {:>8.1}",
                bodies[i].len(),
                timed[i] * 1e3,
                bodies[i].len() as f64 / timed[i] / 1e6
            );
        }
    }
    let mut per_body = timed;
    per_body.sort_by(f64::total_cmp);
    let pct = |p: f64| per_body[((per_body.len() - 1) as f64 * p).round() as usize] * 1e3;
    println!(
        "\nrealistic corpus ({}): {} bodies, {} bytes, {} findings",
        path,
        bodies.len(),
        total,
        findings
    );
    println!(
        "  meshdlp {:>7.1} MB/s   naive {:>7.1} MB/s   ratio {:>5.1}x   (target >= 200 MB/s)",
        total as f64 / t_pass / 1e6,
        total as f64 / t_naive / 1e6,
        t_naive / t_pass
    );
    println!(
        "  per body: p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms   (target p99 <= 0.5 ms)",
        pct(0.5),
        pct(0.99),
        per_body.last().copied().unwrap_or(0.0) * 1e3
    );
}

/// Streaming inspection (bodies past the filter's buffer): throughput and the memory one stream
/// holds between chunks, with the filter's default limits, for an 8 MiB NDJSON export and an
/// 8 MiB JSON array pushed in 16 KiB chunks (Envoy's usual chunk size).
fn streaming(policy: &Policy, route: meshdlp::RouteId) {
    let limits = meshdlp::StreamLimits {
        max_record_bytes: 256 << 10,
        window_bytes: 8 << 10,
        max_findings: 100,
    };
    let ndjson = ndjson_of(8 << 20);
    let mut array = b"[".to_vec();
    for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if array.len() > 1 {
            array.push(b',');
        }
        array.extend_from_slice(line);
    }
    array.push(b']');
    println!(
        "\nstreaming, 16 KiB chunks    bytes    MB/s  max held bytes (bound {})",
        limits.max_held_bytes()
    );
    for (name, body, ct) in [
        ("8 MiB NDJSON", &ndjson, "application/x-ndjson"),
        ("8 MiB JSON array", &array, "application/json"),
        ("8 MiB NDJSON as text", &ndjson, "text/plain"),
    ] {
        let started = std::time::Instant::now();
        let mut s = policy.stream(route, Direction::Response, Some(ct), &[], limits);
        let mut out = Vec::with_capacity(16 << 10);
        let mut held = 0;
        for chunk in body.chunks(16 << 10) {
            out.clear();
            black_box(s.push(chunk, &mut out));
            held = held.max(s.held_bytes());
        }
        out.clear();
        black_box(s.finish(&mut out));
        let t = started.elapsed().as_secs_f64();
        println!(
            "{:<24} {:>9} {:>7.0}  {:>9}",
            name,
            body.len(),
            body.len() as f64 / t / 1e6,
            held
        );
    }
}
