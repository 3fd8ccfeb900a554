//! The filter's stream logic, natively, through the recording fake host: held headers,
//! trailers, degraded mode, limits, protocols, errors while replying, and re-entrant callbacks.

use std::io::Write;

use meshdlp::Direction;
use meshdlp_filter::abi;
use meshdlp_filter::fake::FakeHost;
use meshdlp_filter::host::Map;
use meshdlp_filter::stream::Action;

const ROOT: u32 = 1;
const EMAIL: &str = "ada.lovelace@example.com";
const CARD: &str = "4111 1111 1111 1111";

/// A VM with one plugin configured, and a fresh stream id.
fn vm(config: &str) -> FakeHost {
    let host = FakeHost::new();
    *host.configuration.borrow_mut() = config.as_bytes().to_vec();
    abi::context_create(ROOT, 0);
    assert!(
        abi::configure(&host, ROOT, config.len()),
        "{}",
        host.log_text()
    );
    host
}

fn open(host: &FakeHost, id: u32, method: &str, path: &str, extra: &[(&str, &str)]) -> Action {
    abi::context_create(id, ROOT);
    let mut h = vec![
        (":method", method),
        (":path", path),
        (":authority", "api.test"),
        ("x-request-id", "req-1"),
    ];
    h.extend_from_slice(extra);
    host.set_headers(Map::RequestHeaders, &h);
    abi::request_headers(host, id, true)
}

fn respond(host: &FakeHost, id: u32, headers: &[(&str, &str)], body: &[u8]) -> (Action, Action) {
    host.set_headers(Map::ResponseHeaders, headers);
    let h = abi::response_headers(host, id, false);
    host.set_body_bytes(Direction::Response, body);
    let b = abi::response_body(host, id, body.len(), true);
    (h, b)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn json_ok() -> [(&'static str, &'static str); 2] {
    [(":status", "200"), ("content-type", "application/json")]
}

#[test]
fn held_response_is_rewritten_with_a_correct_length() {
    let host = vm("");
    assert_eq!(open(&host, 2, "GET", "/users/1", &[]), Action::Continue);
    let body = format!(r#"{{"email":"{EMAIL}","n":1}}"#);
    let (h, b) = respond(&host, 2, &json_ok(), body.as_bytes());
    assert_eq!((h, b), (Action::Pause, Action::Continue));
    let out = String::from_utf8(host.body_bytes(Direction::Response)).unwrap();
    assert!(!out.contains(EMAIL), "{out}");
    assert_eq!(
        host.get_header(Map::ResponseHeaders, "content-length"),
        Some(out.len().to_string())
    );
    abi::log(&host, 2);
    let logs = host.log_text();
    assert!(logs.contains("meshdlp.audit"), "{logs}");
    assert!(!logs.contains(EMAIL));
    abi::delete(2);
}

/// Issue 6, section 1: a ~100 KB gzip response that decodes to 6 MiB with a card and an email
/// in its last records. No body larger than the buffer limit may be handed back to Envoy.
#[test]
fn gzip_bomb_like_response_never_overflows_the_buffer() {
    let host = vm("");
    host.buffer_limit.set(Some(1 << 20));
    let mut doc = String::from("[");
    while doc.len() < 6 << 20 {
        doc.push_str(r#"{"id":"0000000000","status":"shipped","note":"nothing to see here"},"#);
    }
    doc.push_str(&format!(r#"{{"card":"{CARD}","email":"{EMAIL}"}}]"#));
    let gz = gzip(doc.as_bytes());
    assert!(gz.len() < 1 << 20);
    open(&host, 2, "GET", "/orders", &[]);
    let (h, b) = respond(
        &host,
        2,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("content-length", &gz.len().to_string()),
        ],
        &gz,
    );
    assert_eq!(h, Action::Pause);
    assert!(host.largest_set_body.get() <= 1 << 20);
    let replies = host.replies.borrow().clone();
    if replies.is_empty() {
        // Forwarded redacted, re-compressed so that it fits.
        assert_eq!(b, Action::Continue);
        assert_eq!(
            host.get_header(Map::ResponseHeaders, "content-encoding")
                .as_deref(),
            Some("gzip")
        );
        let out = host.body_bytes(Direction::Response);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&out[..]), &mut plain)
            .unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert!(!plain.contains(EMAIL) && !plain.contains(CARD));
        assert!(plain.contains("1111"), "card masked to its last four");
    } else {
        assert!(replies[0].status >= 400);
    }
}

fn email_list(size: usize) -> String {
    let mut doc = String::from("[");
    let mut i = 0;
    while doc.len() < size {
        doc.push_str(&format!("\"u{i}@b.co\","));
        i += 1;
    }
    doc.push_str("\"last@b.co\"]");
    doc
}

#[test]
fn a_rewrite_that_outgrows_the_limit_fails_closed() {
    // 500 KB of `a@b.co` is inspected whole; its redacted form is larger than 1 MiB.
    let host = vm("");
    open(&host, 2, "GET", "/list", &[]);
    let doc = format!("[{}\"a@b.co\"]", "\"a@b.co\",".repeat((500 << 10) / 9));
    let (_, b) = respond(&host, 2, &json_ok(), doc.as_bytes());
    assert_eq!(b, Action::Pause);
    let replies = host.replies.borrow();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0]
            .headers
            .iter()
            .find(|(k, _)| k == "x-meshdlp-reason")
            .map(|(_, v)| v.as_str()),
        Some("limit.body_bytes")
    );
    assert!(host.largest_set_body.get() <= 1 << 20);
}

#[test]
fn a_965_kb_email_list_streams_and_is_redacted() {
    // Past half of the limit the body streams, element by element: each chunk fits.
    let host = vm("");
    open(&host, 2, "GET", "/list", &[]);
    let doc = email_list(965 << 10);
    let (_, b) = respond(&host, 2, &json_ok(), doc.as_bytes());
    assert_eq!(b, Action::Continue);
    assert!(host.replies.borrow().is_empty());
    let out = String::from_utf8(host.body_bytes(Direction::Response)).unwrap();
    assert!(!out.contains("@b.co"));
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
}

/// Envoy ends the stream from inside `set_body` and calls `on_log` and `on_delete` before the
/// call returns: the SDK's dispatcher panicked there. Ours defers them.
#[test]
fn reentrant_log_and_delete_during_a_host_call_are_deferred() {
    let host = vm(r#"{"maxBodyBytes": 4096}"#);
    host.buffer_limit.set(Some(10));
    *host.on_overflow.borrow_mut() = Some(Box::new(|h: &FakeHost| {
        abi::log(h, 2);
        abi::delete(2);
        assert_eq!(abi::response_body(h, 2, 0, true), Action::Continue);
    }));
    open(&host, 2, "GET", "/x", &[]);
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    let (_, b) = respond(&host, 2, &json_ok(), body.as_bytes());
    assert_eq!(b, Action::Continue);
    let audits = host.log_text().matches("meshdlp.audit").count();
    assert_eq!(
        audits,
        1,
        "the deferred on_log ran once: {}",
        host.log_text()
    );
    assert_eq!(
        abi::live_streams(),
        0,
        "the deferred delete removed the stream"
    );
    // Callbacks for the deleted stream are harmless.
    abi::log(&host, 2);
    abi::delete(2);
}

#[test]
fn a_declared_compressed_length_past_the_limit_is_refused_before_buffering() {
    let host = vm(r#"{"maxBodyBytes": 1000}"#);
    open(&host, 2, "GET", "/x", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[
            (":status", "200"),
            ("content-length", "5000"),
            ("content-encoding", "gzip"),
        ],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    assert_eq!(host.replies.borrow()[0].status, 413);
}

#[test]
fn range_requests_are_stripped_and_partial_answers_refused() {
    let host = vm("");
    open(
        &host,
        2,
        "GET",
        "/files/1",
        &[("range", "bytes=0-99"), ("if-range", "\"e1\"")],
    );
    assert_eq!(host.get_header(Map::RequestHeaders, "range"), None);
    assert_eq!(host.get_header(Map::RequestHeaders, "if-range"), None);
    assert_eq!(host.counter("meshdlp_range_stripped"), 1);
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "206"), ("content-range", "bytes 0-99/1000")],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    let r = host.replies.borrow()[0].clone();
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("protocol.partial_content"));
}

#[test]
fn upgrade_and_connect_follow_on_error_unless_configured() {
    let host = vm("");
    // The default policy inspects responses and fails closed.
    open(
        &host,
        2,
        "GET",
        "/ws",
        &[("upgrade", "websocket"), ("connection", "upgrade")],
    );
    assert_eq!(host.replies.borrow()[0].status, 403);
    open(&host, 3, "CONNECT", "example.com:443", &[]);
    assert_eq!(host.replies.borrow()[1].status, 403);
    assert_eq!(host.counter("meshdlp_protocols"), 2);

    let host = vm(r#"{"protocols": {"upgrade": "pass"}}"#);
    assert_eq!(
        open(&host, 2, "GET", "/ws", &[("upgrade", "websocket")]),
        Action::Continue
    );
    assert!(host.replies.borrow().is_empty());
    host.set_headers(Map::ResponseHeaders, &[(":status", "101")]);
    assert_eq!(abi::response_headers(&host, 2, false), Action::Continue);
    assert_eq!(abi::response_body(&host, 2, 10, false), Action::Continue);
    abi::log(&host, 2);
    assert!(host.log_text().contains("protocol.upgrade"));
}

#[test]
fn grpc_and_event_streams_are_never_held() {
    let host = vm(r#"{"protocols": {"grpc": "pass", "eventStream": "pass"}}"#);
    open(
        &host,
        2,
        "POST",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc")],
    );
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "200"), ("content-type", "application/grpc")],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Continue);
    assert_eq!(abi::response_body(&host, 2, 100, false), Action::Continue);

    open(&host, 3, "GET", "/events", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "200"), ("content-type", "text/event-stream")],
    );
    assert_eq!(abi::response_headers(&host, 3, false), Action::Continue);
    assert_eq!(abi::response_body(&host, 3, 100, false), Action::Continue);

    let host = vm("");
    open(&host, 2, "GET", "/events", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", "text/event-stream; charset=utf-8"),
        ],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    assert_eq!(host.replies.borrow()[0].status, 502);
}

#[test]
fn hostile_request_ids_are_never_repeated() {
    let host = vm("");
    let id = format!("a\nb{}", "x".repeat(10_000));
    abi::context_create(2, ROOT);
    host.set_headers(
        Map::RequestHeaders,
        &[(":method", "GET"), (":path", "/u"), ("x-request-id", &id)],
    );
    abi::request_headers(&host, 2, true);
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    respond(&host, 2, &json_ok(), body.as_bytes());
    abi::log(&host, 2);
    let logs = host.log_text();
    assert!(logs.contains("meshdlp.audit"));
    assert!(
        !logs.contains("xxxxxxxxxx") && !logs.contains("a\nb"),
        "{logs}"
    );
}

#[test]
fn a_failing_host_call_while_applying_a_verdict_blocks() {
    let host = vm("");
    open(&host, 2, "GET", "/u", &[]);
    host.failing.borrow_mut().insert("set_body");
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    let (_, b) = respond(&host, 2, &json_ok(), body.as_bytes());
    assert_eq!(b, Action::Pause);
    assert_eq!(host.replies.borrow()[0].status, 502);
}

#[test]
fn trailers_end_the_stream_and_inspection_happens_there() {
    let host = vm("");
    open(&host, 2, "GET", "/u", &[]);
    host.set_headers(Map::ResponseHeaders, &json_ok());
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    host.set_body_bytes(Direction::Response, body.as_bytes());
    assert_eq!(
        abi::response_body(&host, 2, body.len(), false),
        Action::Pause
    );
    assert_eq!(abi::response_trailers(&host, 2), Action::Continue);
    assert!(!String::from_utf8_lossy(&host.body_bytes(Direction::Response)).contains(EMAIL));
}

#[test]
fn degraded_mode_block_replaces_the_body_and_empties_what_follows() {
    let host = vm(r#"{"holdHeaders": false}"#);
    open(&host, 2, "GET", "/u", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", "99"),
        ],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Continue);
    assert_eq!(
        host.get_header(Map::ResponseHeaders, "content-length"),
        None
    );
    let body = br#"{"k":"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7ZrE9x\n-----END RSA PRIVATE KEY-----"}"#;
    host.set_body_bytes(Direction::Response, body);
    assert_eq!(
        abi::response_body(&host, 2, body.len(), true),
        Action::Continue
    );
    let out = String::from_utf8_lossy(&host.body_bytes(Direction::Response)).into_owned();
    assert!(out.contains("policy.blocked_class"), "{out}");
    assert!(host.replies.borrow().is_empty());
}

/// Feeds a response body as Envoy does: a paused callback keeps its bytes buffered and the next
/// callback sees them plus the new chunk; a continued one forwards them. Returns what left.
fn feed_response(host: &FakeHost, id: u32, chunks: &[Vec<u8>]) -> (Vec<Action>, Vec<u8>) {
    let mut actions = Vec::new();
    let mut forwarded = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        buffered.extend_from_slice(c);
        host.set_body_bytes(Direction::Response, &buffered);
        let eos = i + 1 == chunks.len();
        let a = abi::response_body(host, id, buffered.len(), eos);
        actions.push(a);
        if a == Action::Continue {
            forwarded.extend(host.body_bytes(Direction::Response));
            buffered.clear();
        }
    }
    (actions, forwarded)
}

fn ndjson_chunks(total: usize, chunk: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < total {
        body.extend_from_slice(
            format!("{{\"id\":{i},\"email\":\"user{i}@example.com\",\"plan\":\"pro\"}}\n")
                .as_bytes(),
        );
        i += 1;
    }
    let chunks = body.chunks(chunk).map(<[u8]>::to_vec).collect();
    (body, chunks)
}

#[test]
fn a_large_ndjson_export_is_streamed_and_redacted() {
    let host = vm("");
    open(&host, 2, "GET", "/export", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "200"), ("content-type", "application/x-ndjson")],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    let (body, chunks) = ndjson_chunks(3 << 20, 64 << 10);
    let (actions, out) = feed_response(&host, 2, &chunks);
    assert!(
        host.replies.borrow().is_empty(),
        "{:?}",
        host.replies.borrow()
    );
    assert!(actions.contains(&Action::Continue));
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("@example.com"), "an email left");
    assert_eq!(out.lines().count(), body.split(|b| *b == b'\n').count() - 1);
    assert_eq!(
        host.get_header(Map::ResponseHeaders, "content-length"),
        None
    );
    assert!(host.counter("meshdlp_streamed") >= 1);
    abi::log(&host, 2);
    assert!(host.log_text().contains("\"streamed\":true"));
    abi::delete(2);
}

#[test]
fn a_declared_large_body_streams_from_the_first_chunk_and_holds_headers_until_then() {
    let host = vm("");
    open(&host, 2, "GET", "/export", &[]);
    let (body, chunks) = ndjson_chunks(2 << 20, 16 << 10);
    host.set_headers(
        Map::ResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", "application/x-ndjson"),
            ("content-length", &body.len().to_string()),
        ],
    );
    assert_eq!(abi::response_headers(&host, 2, false), Action::Pause);
    let (actions, out) = feed_response(&host, 2, &chunks);
    assert_eq!(
        actions[0],
        Action::Continue,
        "streaming starts at the first chunk"
    );
    assert!(!String::from_utf8_lossy(&out).contains("@example.com"));
    assert_eq!(
        host.get_header(Map::ResponseHeaders, "content-length"),
        None
    );
}

#[test]
fn a_block_after_bytes_left_resets_the_stream_and_forwards_nothing_more() {
    let host = vm("");
    open(&host, 2, "GET", "/export", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "200"), ("content-type", "text/plain")],
    );
    abi::response_headers(&host, 2, false);
    let mut chunks: Vec<Vec<u8>> = (0..40).map(|_| vec![b'x'; 64 << 10]).collect();
    chunks.push(
        b"\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAv7meshdlpTESTKEYv7meshdlpTESTKEY\n-----END RSA PRIVATE KEY-----\n"
            .to_vec(),
    );
    chunks.push(vec![b'y'; 1000]);
    let (_, out) = feed_response(&host, 2, &chunks);
    assert!(!String::from_utf8_lossy(&out).contains("PRIVATE KEY"));
    assert!(!out.contains(&b'y'), "nothing after the block is forwarded");
    assert_eq!(host.resets.borrow().as_slice(), &[Direction::Response]);
    assert_eq!(host.counter("meshdlp_stream_resets"), 1);
}

#[test]
fn a_large_compressed_body_fails_closed() {
    let host = vm(r#"{"maxBodyBytes": 1000}"#);
    open(&host, 2, "GET", "/x", &[]);
    host.set_headers(
        Map::ResponseHeaders,
        &[(":status", "200"), ("content-encoding", "gzip")],
    );
    abi::response_headers(&host, 2, false);
    let (actions, _) = feed_response(&host, 2, &[vec![0u8; 2000]]);
    assert_eq!(actions, [Action::Pause]);
    assert_eq!(host.replies.borrow()[0].status, 413);
}

/// Review finding: a response decided at its headers (206, SSE, gRPC) must not settle a request
/// that is still being inspected, nor leak its streaming slot.
#[test]
fn an_early_206_during_a_streamed_upload_leaves_the_request_inspected() {
    let host = vm(
        r#"{"policy": {"defaultRoute": {"request": {"defaultAction": "redact"}, "response": {"defaultAction": "redact"}}}}"#,
    );
    for id in 2..80u32 {
        abi::context_create(id, ROOT);
        host.set_headers(
            Map::RequestHeaders,
            &[
                (":method", "POST"),
                (":path", "/upload"),
                ("content-type", "text/plain"),
            ],
        );
        assert_eq!(abi::request_headers(&host, id, false), Action::Pause);
        let first = vec![b'a'; 900 << 10];
        host.set_body_bytes(Direction::Request, &first);
        assert_eq!(
            abi::request_body(&host, id, first.len(), false),
            Action::Continue
        );
        host.set_headers(Map::ResponseHeaders, &[(":status", "206")]);
        abi::response_headers(&host, id, false);
        let rest = format!("tail {EMAIL} tail");
        host.set_body_bytes(Direction::Request, rest.as_bytes());
        abi::request_body(&host, id, rest.len(), true);
        assert!(
            !String::from_utf8_lossy(&host.body_bytes(Direction::Request)).contains(EMAIL),
            "stream {id}: the rest of the upload went upstream uninspected"
        );
        abi::delete(id);
    }
    // Every one of the 78 streams got a streaming slot back: the 65th still streamed.
    assert_eq!(host.counter("meshdlp_errors"), 0, "{}", host.log_text());
}

/// Review finding: a client cannot switch response inspection off by calling a REST route
/// with a gRPC content type.
#[test]
fn a_grpc_content_type_on_a_rest_route_does_not_pass_the_response() {
    let host = vm(r#"{"protocols": {"grpc": "pass"}}"#);
    open(
        &host,
        2,
        "POST",
        "/users",
        &[("content-type", "application/grpc")],
    );
    let body = format!(r#"{{"email":"{EMAIL}"}}"#);
    let (h, _) = respond(&host, 2, &json_ok(), body.as_bytes());
    assert_eq!(h, Action::Pause, "the JSON answer is held and inspected");
    assert!(!String::from_utf8_lossy(&host.body_bytes(Direction::Response)).contains(EMAIL));
}

/// Review finding: Envoy returns only the first of repeated headers; a second
/// `content-encoding` must not hide a gzip layer.
#[test]
fn a_repeated_content_encoding_does_not_hide_a_layer() {
    let host = vm("");
    open(&host, 2, "GET", "/u", &[]);
    let gz = gzip(format!(r#"{{"email":"{EMAIL}"}}"#).as_bytes());
    let (_, b) = respond(
        &host,
        2,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
            ("content-encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(b, Action::Continue);
    let out = host.body_bytes(Direction::Response);
    assert!(!String::from_utf8_lossy(&out).contains(EMAIL));
    assert_ne!(out, gz, "the gzip body was decoded and rewritten");
}

/// Review finding: when the block reply cannot be sent, nothing of the body is forwarded.
#[test]
fn a_reply_that_cannot_be_sent_empties_the_body_and_resets() {
    let host =
        vm(r#"{"policy": {"defaultRoute": {"request": {"actions": {"private_key": "block"}}}}}"#);
    abi::context_create(2, ROOT);
    host.set_headers(Map::RequestHeaders, &[(":method", "POST"), (":path", "/x")]);
    abi::request_headers(&host, 2, false);
    host.failing.borrow_mut().insert("send_response");
    let body = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAv7meshdlpTESTKEYv7meshdlpTESTKEY\n-----END RSA PRIVATE KEY-----\n";
    host.set_body_bytes(Direction::Request, body);
    assert_eq!(
        abi::request_body(&host, 2, body.len(), true),
        Action::Continue
    );
    assert!(host.body_bytes(Direction::Request).is_empty());
    assert_eq!(host.resets.borrow().as_slice(), &[Direction::Request]);
}

#[test]
fn almost_json_is_scanned_and_the_fallback_counted_and_audited() {
    let host = vm("");
    open(&host, 2, "GET", "/u", &[]);
    let body = format!("\u{feff}{{\"email\":\"{EMAIL}\",}}");
    let (_, b) = respond(&host, 2, &json_ok(), body.as_bytes());
    assert_eq!(b, Action::Continue);
    assert!(!String::from_utf8_lossy(&host.body_bytes(Direction::Response)).contains(EMAIL));
    assert_eq!(host.counter("meshdlp_fallbacks"), 1);
    abi::log(&host, 2);
    assert!(
        host.log_text().contains("\"fallback\":"),
        "{}",
        host.log_text()
    );
}
