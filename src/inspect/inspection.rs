//! The result types of an inspection: what goes in ([`Exchange`]) and what comes out
//! ([`Inspection`], its [`Decision`] and [`Finding`]s). No value is ever held here.

use std::borrow::Cow;
use std::sync::Arc;

use crate::manifest::{ActionKind, BodyKind, Mode};
use crate::policy::{Direction, RouteId};

/// What to inspect.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    pub route: RouteId,
    pub direction: Direction,
    /// The `content-type` header, if any.
    pub content_type: Option<&'a str>,
    /// The caller's granted scopes (for scope grants).
    pub scopes: &'a [String],
    /// The (decoded) body.
    pub body: &'a [u8],
}

/// One detected value. Never holds the value itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub class: Arc<str>,
    /// JSON path of the value (`$.users[0].email`), or `None` in free text. A key that holds a
    /// value shows as `[<class>]` (or `[<key>]` when it merely looks like one); at most 256
    /// bytes, then `…`.
    pub path: Option<Arc<str>>,
    /// Byte span in the body as given (for escaped JSON strings: the raw escaped text).
    pub start: usize,
    pub end: usize,
    /// Detector id (`credit_card`, `phone.e164`, `field:<path>` for field rules).
    pub detector: Arc<str>,
    pub confidence: f32,
    /// The action applied (or that would be, in monitor mode).
    pub action: ActionKind,
    /// The class is outside the declared scope for this caller.
    pub out_of_scope: bool,
}

/// Why a body is blocked. The codes are stable: dashboards and clients may rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A class the route (or caller) may not return.
    ClassNotAllowed,
    /// More records than declared.
    TooManyRecords,
    /// Body larger than `maxBodyBytes`, or than the proxy can buffer.
    BodyTooLarge,
    /// A class whose action is `block`.
    BlockedClass,
    /// Malformed where a format was declared (e.g. invalid JSON).
    MalformedBody,
    /// Could not be decoded (unknown or corrupt content-encoding).
    UndecodableBody,
    /// A transformation failed.
    TransformFailed,
}

impl Reason {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::ClassNotAllowed => "scope.class_not_allowed",
            Reason::TooManyRecords => "scope.too_many_records",
            Reason::BodyTooLarge => "limit.body_bytes",
            Reason::BlockedClass => "policy.blocked_class",
            Reason::MalformedBody => "body.malformed",
            Reason::UndecodableBody => "body.undecodable",
            Reason::TransformFailed => "transform.failed",
        }
    }

    /// The HTTP status for a block.
    pub fn status(self, direction: Direction) -> u16 {
        match (self, direction) {
            (Reason::BodyTooLarge, _) => 413,
            (Reason::MalformedBody | Reason::UndecodableBody, Direction::Request) => 400,
            (
                Reason::MalformedBody | Reason::UndecodableBody | Reason::TransformFailed,
                Direction::Response,
            ) => 502,
            (Reason::TransformFailed, Direction::Request) => 500,
            _ => 403,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Reason::ClassNotAllowed => "The payload contains data outside the declared scope",
            Reason::TooManyRecords => "The payload contains more records than declared",
            Reason::BodyTooLarge => "The payload is larger than allowed",
            Reason::BlockedClass => "The payload contains data that may not pass",
            Reason::MalformedBody => "The payload could not be parsed",
            Reason::UndecodableBody => "The payload could not be decoded",
            Reason::TransformFailed => "The payload could not be de-identified",
        }
    }
}

/// A block decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub status: u16,
    pub reason: Reason,
}

impl Block {
    pub fn new(reason: Reason, direction: Direction) -> Block {
        Block {
            status: reason.status(direction),
            reason,
        }
    }

    /// An `application/problem+json` body (RFC 9457): reason code and request id, never a value.
    pub fn problem_json(&self, request_id: Option<&str>) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "type": format!("urn:meshdlp:problem:{}", self.reason.code()),
            "title": self.reason.title(),
            "status": self.status,
            "reason": self.reason.code(),
        });
        if let Some(id) = request_id.filter(|id| !id.is_empty() && id.len() <= 128) {
            doc["requestId"] = serde_json::Value::String(id.to_string());
        }
        serde_json::to_vec(&doc).unwrap_or_default()
    }
}

/// What enforce mode does with the body.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    Rewrite(Vec<u8>),
    Block(Block),
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Rewrite(_) => "rewrite",
            Decision::Block(_) => "block",
        }
    }
}

/// The result of inspecting one body.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The decision enforce mode takes (in monitor mode: what it would take).
    pub decision: Decision,
    /// Monitor mode changes nothing: use [`Inspection::effective`].
    pub mode: Mode,
    pub findings: Vec<Finding>,
    /// Records counted for `maxRecords` (JSON arrays at the path, NDJSON lines).
    pub records: Option<u64>,
    pub body_kind: BodyKind,
    /// A body error (malformed, undecodable, oversize), described without values.
    pub error: Option<String>,
    /// The kind of body error, when there is one.
    pub error_reason: Option<Reason>,
    pub route: RouteId,
    pub direction: Direction,
    /// Findings not listed in `findings` because of `MAX_REPORTED_FINDINGS`; their values
    /// were acted on all the same. For a metric and an audit field.
    pub findings_truncated: u64,
    /// Set when the body was not read exactly as declared, for a metric: `json.bom` or
    /// `json.xssi_prefix` (a prefix skipped, the JSON after it walked), `json.as_text` (declared
    /// JSON that does not parse, scanned and redacted as text), `ndjson.lines_as_text` (lines
    /// that are not JSON, scanned as text).
    pub fallback: Option<&'static str>,
}

impl Inspection {
    /// The decision to apply: the real one in enforce mode, `Allow` in monitor mode.
    pub fn effective(&self) -> &Decision {
        match self.mode {
            Mode::Enforce => &self.decision,
            Mode::Monitor => &Decision::Allow,
        }
    }

    /// The body to forward (enforced decision), or `original` if unchanged. `None` on block.
    pub fn body_or<'b>(&'b self, original: &'b [u8]) -> Cow<'b, [u8]> {
        match self.effective() {
            Decision::Rewrite(b) => Cow::Borrowed(b.as_slice()),
            _ => Cow::Borrowed(original),
        }
    }
}
