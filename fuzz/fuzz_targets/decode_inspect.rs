//! Fuzzes the filter's body path as Envoy drives it: a compressed body under a declared
//! content-encoding and content-type is decoded (`meshdlp::codec::decode`, bounded) and the
//! result inspected.
//!
//! Input layout: byte 0 chooses the content-encoding header, byte 1 the content type and the
//! policy, the rest is the body as it arrives on the wire. Selector values past the table
//! compress the body here first (so the fuzzer also reaches the inspector through real
//! compressed streams, not only through the decoder's error paths).
//!
//! Invariants: no panic; decoding never yields more than the limit; a rewritten JSON body is
//! valid JSON whenever the decoded input was.

#![no_main]

use libfuzzer_sys::fuzz_target;
use meshdlp::{Decision, Direction, Exchange, Policy};
use std::io::Write;
use std::sync::OnceLock;

/// The filter's default `maxDecodedBytes` is 8 MiB; a smaller limit keeps runs fast and still
/// exercises the limit (bombs hit it).
const DECODE_LIMIT: usize = 1 << 20;

const ENCODINGS: &[&str] = &[
    "gzip",
    "deflate",
    "br",
    "zstd",
    "gzip, gzip",
    "deflate, gzip",
    "x-gzip",
    "GZIP",
    "identity",
    "",
    "compress",
    "gzip, br",
    " gzip ,identity",
    "zstd, gzip",
];

const POLICIES: &[&str] = &[
    r#"{"defaultRoute": {"response": {}, "request": {}}}"#,
    r#"{"keys": [{"id": "k", "inline": "fuzz-secret-0123456789"}], "defaultRoute": {"request": {"defaultAction": "hash",
        "actions": {"credit_card": "tokenize", "phone": {"type": "mask", "keepLast": 2, "keepSeparators": true}}}}}"#,
    r#"{"defaultRoute": {"response": {"scope": {"allow": ["email"], "maxRecords": {"path": "$", "max": 5}}, "onViolation": "redact"}}}"#,
];

const TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("text/plain"),
    Some("text/html; charset=utf-8"),
    Some("application/xml"),
    Some("application/x-www-form-urlencoded"),
    Some("image/png"),
    None,
];

fn policies() -> &'static Vec<Policy> {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        POLICIES
            .iter()
            .map(|p| Policy::from_json(p.as_bytes()).expect("fuzz policy"))
            .collect()
    })
}

/// Compresses `body` as `encoding` would have been applied by a server (only gzip and
/// deflate: the encoders this crate's fuzz build has).
fn compress(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    for coding in encoding.split(',').map(|c| c.trim().to_ascii_lowercase()) {
        out = match coding.as_str() {
            "gzip" | "x-gzip" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = e.write_all(&out);
                e.finish().unwrap_or_default()
            }
            "deflate" => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = e.write_all(&out);
                e.finish().unwrap_or_default()
            }
            _ => out,
        };
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [enc_sel, type_sel, body @ ..] = data else {
        return;
    };
    let encoding = ENCODINGS[usize::from(*enc_sel) % ENCODINGS.len()];
    // High selector values: the body is plain, compress it here.
    let wire = if *enc_sel as usize >= 128 {
        compress(encoding, body)
    } else {
        body.to_vec()
    };
    let policy = &policies()[usize::from(*type_sel / 16) % POLICIES.len()];
    let content_type = TYPES[usize::from(*type_sel) % TYPES.len()];
    let decoded = match meshdlp::codec::decode(encoding, &wire, DECODE_LIMIT) {
        Ok(Some(d)) => d,
        Ok(None) => wire,
        Err(_) => return, // the filter fails closed (onError): nothing to inspect
    };
    assert!(
        decoded.len() <= DECODE_LIMIT,
        "decoded {} bytes past the limit",
        decoded.len()
    );
    let route = policy.route("POST", "/", "fuzz");
    for direction in [Direction::Response, Direction::Request] {
        let inspection = policy.inspect(&Exchange {
            route,
            direction,
            content_type,
            scopes: &[],
            body: &decoded,
        });
        if let Decision::Rewrite(out) = &inspection.decision {
            if content_type == Some("application/json")
                && serde_json::from_slice::<serde_json::Value>(&decoded).is_ok()
            {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(out) {
                    panic!(
                        "valid JSON in, invalid JSON out ({e}): {:?} -> {:?}",
                        String::from_utf8_lossy(&decoded),
                        String::from_utf8_lossy(out)
                    );
                }
            }
        }
    }
});
