//! meshdlp as a proxy-wasm HTTP filter: glue only.
//!
//! `on_configure` compiles the policy once per VM and shares it (`Rc`) with every stream. A
//! stream copies what it needs from the request headers (method, path, authority, request id,
//! caller scopes), buffers the bodies the route inspects, asks the engine for a verdict at the
//! end of each body (or at the trailers), and applies it: forward, rewrite (with a correct
//! `content-length`), or block with a local `application/problem+json` reply.
//!
//! Every host call goes through [`host`], which never panics: a panic would trap the VM and fail
//! every stream on it.

pub mod config;
mod host;
mod telemetry;

use std::rc::Rc;

use meshdlp::{Decision, Direction, Exchange, Inspection, Mode, Reason, RouteId};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::config::Config;
use crate::telemetry::{AuditEntry, Telemetry};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

/// What every stream of a plugin shares.
struct Shared {
    config: Config,
    telemetry: Telemetry,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match host::buffer(host::PLUGIN_CONFIGURATION, 0, size) {
            Ok(b) => b,
            Err(status) => {
                log::error!("meshdlp: cannot read the plugin configuration (status {status})");
                return false;
            }
        };
        match config::parse(&bytes) {
            Ok(config) => {
                for w in config.policy.warnings() {
                    log::warn!("meshdlp: policy warning: {w}");
                }
                log::info!(
                    "meshdlp: policy loaded ({} classes)",
                    config.policy.classes().len()
                );
                self.shared = Some(Rc::new(Shared {
                    config,
                    telemetry: Telemetry::default(),
                }));
                true
            }
            Err(e) => {
                log::error!("meshdlp: rejected configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        Some(Box::new(Stream::new(shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-direction state of a stream.
#[derive(Default)]
struct Side {
    /// The route inspects this direction and there is a body to inspect.
    inspect: bool,
    /// Headers are held (paused) until the body is inspected.
    held: bool,
    /// Inspection finished (at end of stream or trailers).
    done: bool,
    content_type: Option<String>,
    content_encoding: Option<String>,
    /// `content-encoding` was removed already in the headers callback (degraded mode).
    encoding_removed: bool,
    /// Blocked after the headers left (degraded mode): later chunks are emptied.
    blocked: bool,
}

struct Stream {
    shared: Rc<Shared>,
    route: Option<RouteId>,
    mode: Mode,
    method: String,
    request_id: Option<String>,
    scopes: Vec<String>,
    request: Side,
    response: Side,
    /// A local reply was sent: its response is ours, not inspected.
    replied: bool,
    audit: Vec<AuditEntry>,
}

impl Stream {
    fn new(shared: Rc<Shared>) -> Stream {
        Stream {
            shared,
            route: None,
            mode: Mode::Enforce,
            method: String::new(),
            request_id: None,
            scopes: Vec::new(),
            request: Side::default(),
            response: Side::default(),
            replied: false,
            audit: Vec::new(),
        }
    }

    fn side(&mut self, d: Direction) -> &mut Side {
        match d {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    fn read_scopes(&mut self) {
        let cfg = &self.shared.config;
        if let Some(name) = &cfg.scope_header {
            if cfg.trust_scope_header {
                if let Ok(Some(v)) = host::header(host::REQUEST_HEADERS, name) {
                    config::split_scopes(&v, &mut self.scopes);
                }
            }
            // Internal header: never forwarded upstream.
            let _ = host::remove_header(host::REQUEST_HEADERS, name);
        }
        for path in &cfg.scope_properties {
            if let Ok(Some(bytes)) = host::property(path) {
                config::scopes_from_property(&bytes, &mut self.scopes);
            }
        }
    }

    /// Decides, in a headers callback, whether to inspect this direction and how to hold.
    fn on_headers(&mut self, d: Direction, end_of_stream: bool) -> Action {
        let map = headers_of(d);
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let inspects = self.shared.config.policy.inspects(route, d);
        if !inspects || end_of_stream || self.replied {
            return Action::Continue;
        }
        let content_type = host::header(map, "content-type").ok().flatten();
        let content_encoding = host::header(map, "content-encoding")
            .ok()
            .flatten()
            .filter(|e| !e.trim().eq_ignore_ascii_case("identity") && !e.trim().is_empty());
        let hold = self.shared.config.hold_headers && self.mode == Mode::Enforce;
        let mut encoding_removed = false;
        if !hold && self.mode == Mode::Enforce {
            // Degraded mode: headers leave before the body is inspected. The body length may
            // change, so let Envoy frame it (chunked / END_STREAM) instead of a stale length; a
            // compressed body will be forwarded decoded.
            let _ = host::remove_header(map, "content-length");
            if content_encoding.as_deref().is_some_and(decodable) {
                let _ = host::remove_header(map, "content-encoding");
                encoding_removed = true;
            }
        }
        *self.side(d) = Side {
            inspect: true,
            held: hold,
            done: false,
            content_type,
            content_encoding,
            encoding_removed,
            blocked: false,
        };
        if hold {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_body(&mut self, d: Direction, size: usize, end_of_stream: bool) -> Action {
        let side = self.side(d);
        if side.blocked {
            let _ = host::set_buffer(body_of(d), 0, size, b"");
            return Action::Continue;
        }
        if !side.inspect || side.done {
            return Action::Continue;
        }
        if size > self.shared.config.max_body_bytes {
            return self.finish_with_error(
                d,
                Reason::BodyTooLarge,
                format!("body exceeds {} bytes", self.shared.config.max_body_bytes),
            );
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish(d, size)
    }

    fn on_trailers(&mut self, d: Direction) -> Action {
        let side = self.side(d);
        if !side.inspect || side.done {
            return Action::Continue;
        }
        // The stream ends in trailers: no end_of_stream body callback comes. Inspect what was
        // buffered now.
        self.finish(d, usize::MAX)
    }

    fn finish(&mut self, d: Direction, size: usize) -> Action {
        self.side(d).done = true;
        let buffer = body_of(d);
        let raw = match host::buffer(buffer, 0, size) {
            Ok(b) => b,
            Err(status) => {
                return self.finish_with_error(
                    d,
                    Reason::UndecodableBody,
                    format!("cannot read the body (status {status})"),
                )
            }
        };
        let size = raw.len();
        if size > self.shared.config.max_body_bytes {
            return self.finish_with_error(
                d,
                Reason::BodyTooLarge,
                format!("body exceeds {} bytes", self.shared.config.max_body_bytes),
            );
        }
        let side = self.side(d);
        let encoding = side.content_encoding.clone();
        let encoding_removed = side.encoding_removed;
        let decoded = match encoding.as_deref() {
            Some(e) => {
                match meshdlp::codec::decode(e, &raw, self.shared.config.max_decoded_bytes) {
                    Ok(decoded) => decoded,
                    Err(err) => {
                        return self.finish_with_error(d, Reason::UndecodableBody, err.to_string())
                    }
                }
            }
            None => None,
        };
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let content_type = self.side(d).content_type.clone();
        let body = decoded.as_deref().unwrap_or(&raw);
        let started = telemetry::now_micros();
        let insp = self.shared.config.policy.inspect(&Exchange {
            route,
            direction: d,
            content_type: content_type.as_deref(),
            scopes: &self.scopes,
            body,
        });
        let micros = telemetry::now_micros().saturating_sub(started);
        self.record(&insp, body.len(), micros);
        match insp.effective() {
            Decision::Allow => {
                if let (Some(decoded), true) = (&decoded, encoding_removed) {
                    // Headers already announced an identity body.
                    if let Err(s) = host::set_buffer(buffer, 0, size, decoded) {
                        return self.fail_closed(d, s);
                    }
                }
                Action::Continue
            }
            Decision::Rewrite(new_body) => {
                if let Err(s) = host::set_buffer(buffer, 0, size, new_body) {
                    return self.fail_closed(d, s);
                }
                if self.side(d).held {
                    let map = headers_of(d);
                    let _ = host::set_header(map, "content-length", &new_body.len().to_string());
                    if decoded.is_some() {
                        let _ = host::remove_header(map, "content-encoding");
                    }
                }
                Action::Continue
            }
            Decision::Block(block) => {
                let status = block.status;
                let reason = block.reason;
                self.block(d, status, reason)
            }
        }
    }

    /// A body error: counted, logged, then the route's `onError` (fail closed by default).
    fn finish_with_error(&mut self, d: Direction, reason: Reason, message: String) -> Action {
        self.side(d).done = true;
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let policy = &self.shared.config.policy;
        let fail_closed = policy.on_error(route, d) == meshdlp::manifest::ErrorAction::Block;
        let decision = if fail_closed { "block" } else { "allow" };
        self.shared
            .telemetry
            .body_error(policy.route_name(route), d, reason, self.mode, decision);
        log::warn!(
            "meshdlp: {} {} body error on route {}: {message} ({})",
            self.request_id.as_deref().unwrap_or("-"),
            d.as_str(),
            policy.route_name(route),
            reason.code()
        );
        self.audit
            .push(AuditEntry::error(d, reason, self.mode, decision));
        if fail_closed && self.mode == Mode::Enforce {
            let status = reason.status(d);
            return self.block(d, status, reason);
        }
        Action::Continue
    }

    /// A host call failed while applying a verdict: never forward what was not inspected.
    fn fail_closed(&mut self, d: Direction, status: host::Status) -> Action {
        log::error!(
            "meshdlp: host call failed while applying the verdict (status {status}); blocking"
        );
        let code = Reason::TransformFailed.status(d);
        self.block(d, code, Reason::TransformFailed)
    }

    fn block(&mut self, d: Direction, status: u16, reason: Reason) -> Action {
        let problem = meshdlp::Block { status, reason }.problem_json(self.request_id.as_deref());
        let held = self.side(d).held;
        if d == Direction::Request || held {
            self.replied = true;
            let headers = [
                ("content-type", "application/problem+json"),
                ("x-meshdlp-reason", reason.code()),
                ("cache-control", "no-store"),
            ];
            match host::send_response(
                u32::from(status),
                &format!("meshdlp_{}", reason.code().replace('.', "_")),
                &headers,
                &problem,
            ) {
                Ok(()) => return Action::Pause,
                Err(s) => log::error!("meshdlp: cannot send the block reply (status {s})"),
            }
        }
        // Response headers already left (degraded mode): the status cannot change. Replace the
        // body with the problem document so no unredacted byte reaches the client, and empty
        // any chunk that still follows.
        self.side(d).blocked = true;
        let current = host::buffer(host::RESPONSE_BODY, 0, usize::MAX).map_or(0, |b| b.len());
        if host::set_buffer(host::RESPONSE_BODY, 0, current, &problem).is_err() {
            log::error!("meshdlp: cannot replace a blocked response body");
        }
        Action::Continue
    }

    fn record(&mut self, insp: &Inspection, bytes: usize, micros: u64) {
        let Some(route) = self.route else { return };
        let policy = &self.shared.config.policy;
        let route_name = policy.route_name(route);
        self.shared
            .telemetry
            .inspection(route_name, insp, bytes, micros);
        if !insp.findings.is_empty()
            || insp.error.is_some()
            || !matches!(insp.decision, Decision::Allow)
        {
            self.audit
                .push(AuditEntry::from_inspection(insp, bytes, micros));
        }
    }
}

fn headers_of(d: Direction) -> u32 {
    match d {
        Direction::Request => host::REQUEST_HEADERS,
        Direction::Response => host::RESPONSE_HEADERS,
    }
}

fn body_of(d: Direction) -> u32 {
    match d {
        Direction::Request => host::REQUEST_BODY,
        Direction::Response => host::RESPONSE_BODY,
    }
}

fn decodable(encoding: &str) -> bool {
    encoding
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .all(|e| matches!(e.as_str(), "gzip" | "x-gzip" | "deflate" | "identity" | ""))
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let get = |name: &str| host::header(host::REQUEST_HEADERS, name).ok().flatten();
        let method = get(":method").unwrap_or_default();
        let path = get(":path").unwrap_or_default();
        let authority = get(":authority")
            .or_else(|| get("host"))
            .unwrap_or_default();
        self.request_id = get(&self.shared.config.request_id_header);
        self.read_scopes();
        let policy = &self.shared.config.policy;
        let route = policy.route(&method, &path, &authority);
        self.mode = policy.mode(route);
        self.method = method;
        self.route = Some(route);
        if self.mode == Mode::Enforce
            && self.shared.config.strip_accept_encoding
            && policy.inspects(route, Direction::Response)
        {
            // Ask the upstream for an identity body; compressed answers are still decoded.
            let _ = host::remove_header(host::REQUEST_HEADERS, "accept-encoding");
        }
        self.on_headers(Direction::Request, end_of_stream)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.on_body(Direction::Request, body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.on_trailers(Direction::Request)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.on_headers(Direction::Response, end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.on_body(Direction::Response, body_size, end_of_stream)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.on_trailers(Direction::Response)
    }

    fn on_log(&mut self) {
        if !self.shared.config.audit_log || self.audit.is_empty() {
            return;
        }
        let route = self
            .route
            .map_or("default", |r| self.shared.config.policy.route_name(r));
        let line =
            telemetry::audit_line(self.request_id.as_deref(), route, &self.method, &self.audit);
        log::info!("meshdlp.audit {line}");
    }
}
