//! One HTTP stream: copy what is needed from the request headers, hold and buffer the bodies the
//! route inspects, ask the engine for a verdict at the end of each body (or at the trailers),
//! and apply it. Every host call goes through [`Host`], so this logic is tested natively with a
//! recording fake (`crate::fake`), and nothing here can panic.
//!
//! Limits (the memory budget, see docs/SECURITY.md): a body is inspected whole only up to
//! `maxBodyBytes` (which must not exceed Envoy's `per_connection_buffer_limit_bytes`), a decoded
//! body up to `maxDecodedBytes`, and no body larger than `maxBodyBytes` is ever handed back to
//! Envoy: a larger buffer makes Envoy end the stream from inside the host call, and the
//! re-entrant callbacks that follow took Envoy 1.40 down with the SDK's dispatcher.

use std::io::Write;
use std::rc::Rc;

use meshdlp::{
    Decision, Direction, Exchange, Inspection, Mode, Reason, RouteId, StreamInspector,
    StreamVerdict,
};

use crate::config::ProtocolAction;
use crate::host::{Host, Level, Map};
use crate::telemetry::{self, AuditEntry};
use crate::Shared;

/// What a callback tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// Protocols whose bodies meshdlp does not inspect as one HTTP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Upgrade,
    Connect,
    Grpc,
    EventStream,
    /// A `206 Partial Content` answer: no value is whole in a byte range.
    PartialContent,
}

impl Protocol {
    pub fn code(self) -> &'static str {
        match self {
            Protocol::Upgrade => "protocol.upgrade",
            Protocol::Connect => "protocol.connect",
            Protocol::Grpc => "protocol.grpc",
            Protocol::EventStream => "protocol.event_stream",
            Protocol::PartialContent => "protocol.partial_content",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Protocol::PartialContent => "Partial responses are not served on inspected routes",
            _ => "This protocol is not served on inspected routes",
        }
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
    /// Inspected chunk by chunk (the body is larger than `maxBodyBytes`).
    stream: Option<Box<StreamInspector>>,
    /// The declared length is past `maxBodyBytes`: stream from the first chunk.
    stream_planned: bool,
    /// Streamed bytes (and with them the headers) have left: a block now resets the stream.
    released: bool,
    started_micros: u64,
}

pub struct Stream {
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
    /// A protocol passed uninspected at the request (its request side only): the response is
    /// passed too only when it is that protocol's answer (101 to an upgrade, 2xx to CONNECT,
    /// a gRPC response decided on its own).
    passed: Option<Protocol>,
    audit: Vec<AuditEntry>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // A stream torn down mid-body gives its streaming slot back.
        let live = usize::from(self.request.stream.is_some())
            + usize::from(self.response.stream.is_some());
        let active = &self.shared.streams_active;
        active.set(active.get().saturating_sub(live));
    }
}

impl Stream {
    pub fn new(shared: Rc<Shared>) -> Stream {
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
            passed: None,
            audit: Vec::new(),
        }
    }

    fn side(&mut self, d: Direction) -> &mut Side {
        match d {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    fn route_name(&self) -> &str {
        self.route
            .map_or("default", |r| self.shared.config.policy.route_name(r))
    }

    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let get = |name: &str| host.header(Map::RequestHeaders, name).ok().flatten();
        let method = get(":method").unwrap_or_default();
        let path = get(":path").unwrap_or_default();
        let authority = get(":authority")
            .or_else(|| get("host"))
            .unwrap_or_default();
        self.request_id = get(&self.shared.config.request_id_header)
            .as_deref()
            .and_then(telemetry::request_id);
        self.read_scopes(host);
        let shared = Rc::clone(&self.shared);
        let policy = &shared.config.policy;
        let route = policy.route(&method, &path, &authority);
        self.mode = policy.mode(route);
        self.method = telemetry::method(&method);
        self.route = Some(route);
        let inspects_request = policy.inspects(route, Direction::Request);
        let inspects_response = policy.inspects(route, Direction::Response);
        if !inspects_request && !inspects_response {
            return Action::Continue;
        }
        // Protocols whose bytes are not one HTTP body: decided before anything is held.
        let protocols = shared.config.protocols;
        let content_type = get("content-type").unwrap_or_default();
        let grpc = content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/grpc");
        let protocol = if self.method.eq_ignore_ascii_case("CONNECT") {
            Some((Protocol::Connect, protocols.connect))
        } else if get("upgrade").is_some() {
            Some((Protocol::Upgrade, protocols.upgrade))
        } else if grpc {
            Some((Protocol::Grpc, protocols.grpc))
        } else {
            None
        };
        if let Some((protocol, action)) = protocol {
            let d = if inspects_request {
                Direction::Request
            } else {
                Direction::Response
            };
            return self.uninspectable(host, d, protocol, action, true);
        }
        if self.mode == Mode::Enforce && inspects_response {
            // A client fetching byte ranges gets no value whole in any one response: ask for
            // the whole representation (a 206 that still comes is refused).
            if get("range").is_some() || get("if-range").is_some() {
                let _ = host.remove_header(Map::RequestHeaders, "range");
                let _ = host.remove_header(Map::RequestHeaders, "if-range");
                shared.telemetry.count_event(
                    host,
                    "meshdlp_range_stripped",
                    self.route_name(),
                    Direction::Response,
                );
            }
            if shared.config.strip_accept_encoding {
                // Ask the upstream for an identity body; compressed answers are still decoded.
                let _ = host.remove_header(Map::RequestHeaders, "accept-encoding");
            }
        }
        self.on_headers(host, Direction::Request, end_of_stream)
    }

    pub fn on_request_body(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Action {
        self.on_body(host, Direction::Request, size, end_of_stream)
    }

    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Action {
        self.on_trailers(host, Direction::Request)
    }

    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        if self.replied {
            return Action::Continue;
        }
        let Some(route) = self.route else {
            return Action::Continue;
        };
        if !self
            .shared
            .config
            .policy
            .inspects(route, Direction::Response)
        {
            return Action::Continue;
        }
        let get = |name: &str| host.header(Map::ResponseHeaders, name).ok().flatten();
        let status = get(":status").unwrap_or_default();
        let status = status.trim();
        match self.passed {
            // The tunnel the request side was passed for: its bytes are not HTTP bodies.
            Some(Protocol::Upgrade) if status == "101" => return Action::Continue,
            Some(Protocol::Connect) if status.starts_with('2') => return Action::Continue,
            _ => {}
        }
        if status == "206" {
            return self.uninspectable(
                host,
                Direction::Response,
                Protocol::PartialContent,
                ProtocolAction::Refuse,
                false,
            );
        }
        let content_type = get("content-type").unwrap_or_default().to_ascii_lowercase();
        if content_type.trim_start().starts_with("text/event-stream") {
            let action = self.shared.config.protocols.event_stream;
            return self.uninspectable(
                host,
                Direction::Response,
                Protocol::EventStream,
                action,
                false,
            );
        }
        if content_type.trim_start().starts_with("application/grpc") {
            let action = self.shared.config.protocols.grpc;
            return self.uninspectable(host, Direction::Response, Protocol::Grpc, action, false);
        }
        self.on_headers(host, Direction::Response, end_of_stream)
    }

    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        size: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.on_body(host, Direction::Response, size, end_of_stream)
    }

    pub fn on_response_trailers(&mut self, host: &dyn Host) -> Action {
        if self.replied {
            return Action::Continue;
        }
        self.on_trailers(host, Direction::Response)
    }

    pub fn on_log(&mut self, host: &dyn Host) {
        if !self.shared.config.audit_log || self.audit.is_empty() {
            return;
        }
        let line = telemetry::audit_message(
            self.request_id.as_deref(),
            self.route_name(),
            &self.method,
            &self.audit,
        );
        host.log(Level::Info, &line);
        self.audit.clear();
    }

    fn read_scopes(&mut self, host: &dyn Host) {
        let cfg = &self.shared.config;
        if let Some(name) = &cfg.scope_header {
            if cfg.trust_scope_header {
                if let Ok(Some(v)) = host.header(Map::RequestHeaders, name) {
                    crate::config::split_scopes(&v, &mut self.scopes);
                }
            }
            // Internal header: never forwarded upstream.
            let _ = host.remove_header(Map::RequestHeaders, name);
        }
        for path in &cfg.scope_properties {
            if let Ok(Some(bytes)) = host.property(path) {
                crate::config::scopes_from_property(&bytes, &mut self.scopes);
            }
        }
    }

    /// A protocol meshdlp does not inspect: refuse it, or pass it uninspected, counted and
    /// audited. Nothing is held either way, so a never-ending stream cannot fill a buffer.
    fn uninspectable(
        &mut self,
        host: &dyn Host,
        d: Direction,
        protocol: Protocol,
        action: ProtocolAction,
        at_request: bool,
    ) -> Action {
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let refuse = match action {
            ProtocolAction::Refuse => true,
            ProtocolAction::Pass => false,
            ProtocolAction::OnError => {
                self.shared.config.policy.on_error(route, d)
                    == meshdlp::manifest::ErrorAction::Block
            }
        } && self.mode == Mode::Enforce;
        // The direction decided here is settled: nothing of it is held or inspected. At the
        // request that is the request side; the response is decided when it comes.
        let settled = if at_request {
            Direction::Request
        } else {
            Direction::Response
        };
        self.end_stream(host, settled);
        *self.side(settled) = Side {
            done: true,
            ..Side::default()
        };
        let decision = if refuse { "block" } else { "pass" };
        self.shared.telemetry.protocol(
            host,
            self.route_name(),
            d,
            protocol.code(),
            decision,
            self.mode,
        );
        host.log(
            Level::Info,
            &format!(
                "meshdlp: {} {} {} on route {}: {decision}",
                self.request_id.as_deref().unwrap_or("-"),
                d.as_str(),
                protocol.code(),
                self.route_name(),
            ),
        );
        self.audit.push(AuditEntry::protocol(
            d,
            protocol.code(),
            self.mode,
            decision,
        ));
        if !refuse {
            if at_request {
                self.passed = Some(protocol);
            }
            return Action::Continue;
        }
        // Refused at the request: the client asked for what is not served (403). Refused at
        // the response: the upstream answered what cannot be inspected (502).
        let status = if at_request { 403 } else { 502 };
        let body = problem(
            status,
            protocol.code(),
            protocol.title(),
            self.request_id.as_deref(),
        );
        // Decided in a headers callback: nothing of this direction has left yet.
        self.reply(host, settled, status, protocol.code(), &body, false)
    }

    /// Decides, in a headers callback, whether to inspect this direction and how to hold.
    fn on_headers(&mut self, host: &dyn Host, d: Direction, end_of_stream: bool) -> Action {
        let map = Map::headers(d);
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let inspects = self.shared.config.policy.inspects(route, d);
        if !inspects || end_of_stream || self.replied {
            return Action::Continue;
        }
        // Every value of a repeated header counts: `content-encoding: identity` followed by
        // `content-encoding: gzip` must not hide the gzip layer, and two different declared
        // types mean the body is sniffed, not believed.
        let (content_type, content_encoding) = match (
            host.header_values(map, "content-type"),
            host.header_values(map, "content-encoding"),
        ) {
            (Ok(types), Ok(encodings)) => {
                let content_type = match types.as_slice() {
                    [one] => Some(one.clone()),
                    [first, rest @ ..] if rest.iter().all(|t| t == first) => Some(first.clone()),
                    _ => None,
                };
                let encoding = encodings.join(", ");
                let identity = encoding
                    .split(',')
                    .all(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity"));
                (content_type, (!identity).then_some(encoding))
            }
            (Err(s), _) | (_, Err(s)) => {
                // Still in the headers callback: nothing has left, a real reply is possible.
                self.side(d).held = true;
                return self.finish_with_error(
                    host,
                    d,
                    Reason::UndecodableBody,
                    format!("cannot read the headers (status {s})"),
                );
            }
        };
        let hold = self.shared.config.hold_headers && self.mode == Mode::Enforce;
        *self.side(d) = Side {
            inspect: true,
            held: hold,
            content_type,
            content_encoding: content_encoding.clone(),
            ..Side::default()
        };
        // A declared length past the limit streams (or fails) from the first byte on.
        let declared = host
            .header(map, "content-length")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<u64>().ok());
        let max = self.shared.config.max_body_bytes;
        if let Some(n) = declared {
            let streams = self.can_stream(d);
            if n > max as u64 && !streams {
                return self.finish_with_error(
                    host,
                    d,
                    Reason::BodyTooLarge,
                    format!("declared content-length exceeds {max} bytes"),
                );
            }
            self.side(d).stream_planned = streams && n > whole_body_limit(max) as u64;
        }
        if !hold && self.mode == Mode::Enforce {
            // Degraded mode: headers leave before the body is inspected. The body length may
            // change, so let Envoy frame it (chunked / END_STREAM) instead of a stale length; a
            // compressed body will be forwarded decoded.
            let _ = host.remove_header(map, "content-length");
            if content_encoding
                .as_deref()
                .is_some_and(meshdlp::codec::decodable)
            {
                let _ = host.remove_header(map, "content-encoding");
                self.side(d).encoding_removed = true;
            }
        }
        if hold {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_body(
        &mut self,
        host: &dyn Host,
        d: Direction,
        size: usize,
        end_of_stream: bool,
    ) -> Action {
        let side = self.side(d);
        if side.blocked {
            let _ = host.set_body(d, 0, size, b"");
            return Action::Continue;
        }
        if side.stream.is_some() {
            return self.stream_chunk(host, d, size, end_of_stream);
        }
        if !side.inspect || side.done {
            return Action::Continue;
        }
        let planned = side.stream_planned;
        let max = self.shared.config.max_body_bytes;
        if planned || size > max || (size > whole_body_limit(max) && self.can_stream(d)) {
            return self.start_streaming(host, d, size, end_of_stream);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish(host, d, size)
    }

    fn on_trailers(&mut self, host: &dyn Host, d: Direction) -> Action {
        let side = self.side(d);
        if side.stream.is_some() {
            // Whatever the inspector still holds is released with the last body bytes.
            return self.stream_chunk(host, d, 0, true);
        }
        if !side.inspect || side.done {
            return Action::Continue;
        }
        // The stream ends in trailers: no end_of_stream body callback comes. Inspect what was
        // buffered now.
        self.finish(host, d, usize::MAX)
    }

    fn finish(&mut self, host: &dyn Host, d: Direction, size: usize) -> Action {
        self.side(d).done = true;
        let max = self.shared.config.max_body_bytes;
        // Read one byte past the limit: a larger buffer is refused without copying it all.
        let raw = match host.body(d, 0, size.min(max.saturating_add(1))) {
            Ok(b) => b,
            Err(status) => {
                return self.finish_with_error(
                    host,
                    d,
                    Reason::UndecodableBody,
                    format!("cannot read the body (status {status})"),
                )
            }
        };
        if raw.len() > max {
            return self.finish_with_error(
                host,
                d,
                Reason::BodyTooLarge,
                format!("body exceeds {max} bytes"),
            );
        }
        let side = self.side(d);
        let encoding = side.content_encoding.clone();
        let encoding_removed = side.encoding_removed;
        let held = side.held;
        let content_type = side.content_type.clone();
        let decoded = match encoding.as_deref() {
            Some(e) => {
                match meshdlp::codec::decode(e, &raw, self.shared.config.max_decoded_bytes) {
                    Ok(decoded) => decoded,
                    Err(err) => {
                        let reason = match err {
                            meshdlp::codec::DecodeError::TooLarge(_) => Reason::BodyTooLarge,
                            _ => Reason::UndecodableBody,
                        };
                        // Never the upstream's own words: a header value can carry anything.
                        let message = match err {
                            meshdlp::codec::DecodeError::Unsupported(_) => {
                                "unsupported content-encoding".to_string()
                            }
                            other => other.to_string(),
                        };
                        return self.finish_with_error(host, d, reason, message);
                    }
                }
            }
            None => None,
        };
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let body = decoded.as_deref().unwrap_or(&raw);
        let shared = Rc::clone(&self.shared);
        let started = telemetry::now_micros(host);
        let insp = shared.config.policy.inspect(&Exchange {
            route,
            direction: d,
            content_type: content_type.as_deref(),
            scopes: &self.scopes,
            body,
        });
        let micros = telemetry::now_micros(host).saturating_sub(started);
        self.record(host, &insp, body.len(), micros);
        let forward: Option<&[u8]> = match insp.effective() {
            Decision::Block(block) => {
                let (status, reason) = (block.status, block.reason);
                return self.block(host, d, status, reason);
            }
            Decision::Rewrite(new_body) => Some(new_body),
            // Headers already announced an identity body (degraded mode).
            Decision::Allow if encoding_removed => decoded.as_deref(),
            Decision::Allow => None,
        };
        let Some(new_body) = forward else {
            return Action::Continue;
        };
        self.replace_body(host, d, raw.len(), new_body, held, decoded.is_some())
    }

    /// Hands a rewritten (or decoded) body back to Envoy, never larger than `maxBodyBytes`: a
    /// compressed body whose decoded rewrite is larger goes back gzip-compressed (headers held),
    /// anything else that does not fit fails closed.
    fn replace_body(
        &mut self,
        host: &dyn Host,
        d: Direction,
        old_size: usize,
        new_body: &[u8],
        held: bool,
        was_encoded: bool,
    ) -> Action {
        let max = self.shared.config.max_body_bytes;
        let map = Map::headers(d);
        if new_body.len() <= max {
            if let Err(s) = host.set_body(d, 0, old_size, new_body) {
                return self.fail_closed(host, d, s);
            }
            if held {
                let _ = host.set_header(map, "content-length", &new_body.len().to_string());
                if was_encoded {
                    let _ = host.remove_header(map, "content-encoding");
                }
            }
            return Action::Continue;
        }
        if held && was_encoded {
            if let Some(gz) = gzip(new_body).filter(|gz| gz.len() <= max) {
                if let Err(s) = host.set_body(d, 0, old_size, &gz) {
                    return self.fail_closed(host, d, s);
                }
                let _ = host.set_header(map, "content-encoding", "gzip");
                let _ = host.set_header(map, "content-length", &gz.len().to_string());
                return Action::Continue;
            }
        }
        let message = format!(
            "the inspected body ({} bytes) exceeds maxBodyBytes {max}",
            new_body.len()
        );
        self.finish_with_error(host, d, Reason::BodyTooLarge, message)
    }

    /// A body error: counted, logged, then the route's `onError` (fail closed by default).
    fn finish_with_error(
        &mut self,
        host: &dyn Host,
        d: Direction,
        reason: Reason,
        message: String,
    ) -> Action {
        self.side(d).done = true;
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let shared = Rc::clone(&self.shared);
        let policy = &shared.config.policy;
        let fail_closed = policy.on_error(route, d) == meshdlp::manifest::ErrorAction::Block;
        let decision = if fail_closed { "block" } else { "allow" };
        shared.telemetry.body_error(
            host,
            policy.route_name(route),
            d,
            reason,
            self.mode,
            decision,
        );
        host.log(
            Level::Warn,
            &format!(
                "meshdlp: {} {} body error on route {}: {message} ({})",
                self.request_id.as_deref().unwrap_or("-"),
                d.as_str(),
                policy.route_name(route),
                reason.code()
            ),
        );
        self.audit
            .push(AuditEntry::error(d, reason, self.mode, decision));
        if fail_closed && self.mode == Mode::Enforce {
            let status = reason.status(d);
            return self.block(host, d, status, reason);
        }
        Action::Continue
    }

    /// A host call failed while applying a verdict: never forward what was not inspected.
    fn fail_closed(&mut self, host: &dyn Host, d: Direction, status: u32) -> Action {
        host.log(
            Level::Error,
            &format!(
                "meshdlp: host call failed while applying the verdict (status {status}); blocking"
            ),
        );
        if self.mode == Mode::Monitor {
            // Monitor mode changes nothing, not even on errors.
            return Action::Continue;
        }
        let code = Reason::TransformFailed.status(d);
        self.block(host, d, code, Reason::TransformFailed)
    }

    fn block(&mut self, host: &dyn Host, d: Direction, status: u16, reason: Reason) -> Action {
        let body = meshdlp::Block { status, reason }.problem_json(self.request_id.as_deref());
        let side = self.side(d);
        let headers_left = d == Direction::Response && !side.held;
        self.reply(
            host,
            d,
            u32::from(status),
            reason.code(),
            &body,
            headers_left,
        )
    }

    /// Sends a problem document instead of the stream's own answer. When the response headers
    /// already left (degraded mode) the status cannot change: the body is replaced with the
    /// problem document and every chunk that follows is emptied. When the reply cannot be sent,
    /// nothing more of `d` is forwarded and the stream is reset.
    fn reply(
        &mut self,
        host: &dyn Host,
        d: Direction,
        status: u32,
        code: &str,
        body: &[u8],
        headers_left: bool,
    ) -> Action {
        // The current chunk of `d`, emptied or replaced whatever happens below.
        let current = host.body(d, 0, usize::MAX).map_or(0, |b| b.len());
        if !headers_left {
            let headers = [
                ("content-type", "application/problem+json"),
                ("x-meshdlp-reason", code),
                ("cache-control", "no-store"),
            ];
            match host.send_response(
                status,
                &format!("meshdlp_{}", code.replace('.', "_")),
                &headers,
                body,
            ) {
                Ok(()) => {
                    self.replied = true;
                    return Action::Pause;
                }
                Err(s) => {
                    host.log(
                        Level::Error,
                        &format!("meshdlp: cannot send the block reply (status {s}); resetting"),
                    );
                    self.side(d).blocked = true;
                    let _ = host.set_body(d, 0, current, b"");
                    let _ = host.reset_stream(d);
                    return Action::Continue;
                }
            }
        }
        self.side(d).blocked = true;
        if host.set_body(d, 0, current, body).is_err() {
            host.log(
                Level::Error,
                "meshdlp: cannot replace a blocked body; resetting",
            );
            let _ = host.reset_stream(d);
        }
        Action::Continue
    }

    /// Whether a body of this direction may be inspected chunk by chunk: streaming is on, the
    /// body is not compressed (it would have to be decoded as a stream), and the VM's budget of
    /// streams inspected at once is not used up.
    fn can_stream(&mut self, d: Direction) -> bool {
        let streaming = self.shared.config.streaming;
        streaming.enabled
            && self.side(d).content_encoding.is_none()
            && self.shared.streams_active.get() < streaming.max_streams
    }

    fn start_streaming(&mut self, host: &dyn Host, d: Direction, size: usize, eos: bool) -> Action {
        let max = self.shared.config.max_body_bytes;
        if !self.can_stream(d) {
            let why = if self.side(d).content_encoding.is_some() {
                "a compressed body"
            } else {
                "streaming is off or at its limit of streams"
            };
            return self.finish_with_error(
                host,
                d,
                Reason::BodyTooLarge,
                format!("body exceeds {max} bytes and cannot be streamed ({why})"),
            );
        }
        let Some(route) = self.route else {
            return Action::Continue;
        };
        let shared = Rc::clone(&self.shared);
        let content_type = self.side(d).content_type.clone();
        let inspector = shared.config.policy.stream(
            route,
            d,
            content_type.as_deref(),
            &self.scopes,
            shared.config.streaming.limits,
        );
        shared.streams_active.set(shared.streams_active.get() + 1);
        let started = telemetry::now_micros(host);
        let side = self.side(d);
        side.stream = Some(Box::new(inspector));
        side.started_micros = started;
        if side.held {
            // The rewritten length is unknown: Envoy frames the body instead.
            let _ = host.remove_header(Map::headers(d), "content-length");
        }
        self.stream_chunk(host, d, size, eos)
    }

    /// Inspects the chunk Envoy holds now and replaces it with what may be forwarded.
    fn stream_chunk(&mut self, host: &dyn Host, d: Direction, size: usize, eos: bool) -> Action {
        let chunk = if size == 0 {
            Vec::new()
        } else {
            match host.body(d, 0, size) {
                Ok(b) => b,
                Err(s) => {
                    return self.stream_blocked(host, d, size, Reason::TransformFailed, Some(s))
                }
            }
        };
        let side = self.side(d);
        let Some(inspector) = side.stream.as_mut() else {
            return Action::Continue;
        };
        let mut out = Vec::with_capacity(chunk.len());
        let mut verdict = inspector.push(&chunk, &mut out);
        if eos && verdict == StreamVerdict::Continue {
            verdict = inspector.finish(&mut out);
        }
        if let StreamVerdict::Block(b) = verdict {
            return self.stream_blocked(host, d, chunk.len(), b.reason, None);
        }
        if (!out.is_empty() || !chunk.is_empty()) && out != chunk {
            if let Err(s) = host.set_body(d, 0, chunk.len(), &out) {
                return self.stream_blocked(host, d, chunk.len(), Reason::TransformFailed, Some(s));
            }
        }
        side.released = true;
        if eos {
            self.end_stream(host, d);
        }
        Action::Continue
    }

    /// A block decided while streaming. Before anything left: a real reply. After: the stream
    /// is reset and nothing more is forwarded (the bytes already released stay released).
    fn stream_blocked(
        &mut self,
        host: &dyn Host,
        d: Direction,
        size: usize,
        reason: Reason,
        status: Option<u32>,
    ) -> Action {
        if let Some(s) = status {
            host.log(
                Level::Error,
                &format!("meshdlp: host call failed while streaming (status {s}); blocking"),
            );
        }
        let released = self.side(d).released;
        self.end_stream(host, d);
        if self.mode == Mode::Monitor {
            return Action::Continue;
        }
        let code = reason.status(d);
        if !released || d == Direction::Request {
            return self.block(host, d, code, reason);
        }
        let _ = host.set_body(d, 0, size, b"");
        self.side(d).blocked = true;
        let _ = host.reset_stream(d);
        self.shared
            .telemetry
            .count_event(host, "meshdlp_stream_resets", self.route_name(), d);
        Action::Continue
    }

    /// The end of a streamed body (or its block): counted, audited, and its memory returned.
    fn end_stream(&mut self, host: &dyn Host, d: Direction) {
        let side = self.side(d);
        side.done = true;
        let Some(inspector) = side.stream.take() else {
            return;
        };
        let started = side.started_micros;
        self.shared
            .streams_active
            .set(self.shared.streams_active.get().saturating_sub(1));
        let Some(route) = self.route else { return };
        let micros = telemetry::now_micros(host).saturating_sub(started);
        let shared = Rc::clone(&self.shared);
        let route_name = shared.config.policy.route_name(route);
        shared
            .telemetry
            .streamed(host, route_name, d, &inspector, micros);
        if !shared.config.audit_log {
            return;
        }
        if let Some(entry) = AuditEntry::from_stream(d, &inspector, micros) {
            self.audit.push(entry);
        }
    }

    fn record(&mut self, host: &dyn Host, insp: &Inspection, bytes: usize, micros: u64) {
        let Some(route) = self.route else { return };
        let shared = Rc::clone(&self.shared);
        let route_name = shared.config.policy.route_name(route);
        shared
            .telemetry
            .inspection(host, route_name, insp, bytes, micros);
        // Audit entries are built only for a line that will be written.
        if shared.config.audit_log
            && (!insp.findings.is_empty()
                || insp.error.is_some()
                || insp.fallback.is_some()
                || !matches!(insp.decision, Decision::Allow))
        {
            self.audit
                .push(AuditEntry::from_inspection(insp, bytes, micros));
        }
    }
}

/// The largest body inspected whole: half of `maxBodyBytes`. Larger bodies stream, which keeps
/// half of Envoy's buffer as headroom for what arrives next while a chunked body is held (Envoy
/// reads as much as the upstream sends, and answers an overflow with a bare 413/500 before the
/// filter sees the data: with a quarter of headroom a 20 MiB export sent in 256 KiB chunks
/// overflowed on a loaded machine) and for a rewrite that grows (redaction markers are longer
/// than short values).
fn whole_body_limit(max_body_bytes: usize) -> usize {
    max_body_bytes / 2
}

/// A problem document (RFC 9457) for a filter-level refusal: code and request id, no value.
fn problem(status: u32, code: &str, title: &str, request_id: Option<&str>) -> Vec<u8> {
    let mut doc = serde_json::json!({
        "type": format!("urn:meshdlp:problem:{code}"),
        "title": title,
        "status": status,
        "reason": code,
    });
    if let Some(id) = request_id {
        doc["requestId"] = serde_json::Value::String(id.to_string());
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}
