//! # meshdlp: data-loss prevention for service meshes
//!
//! The engine behind the meshdlp proxy-wasm filter and CLI. It is plain Rust with no proxy
//! dependency, so the same code runs in Envoy (as `wasm32-wasip1`), in the CLI and in tests.
//!
//! The pipeline, as in ripgrep's split between settings and engine:
//!
//! * [`Manifest`] - the policy as people write it (serde; JSON or YAML). The Kubernetes CRD is
//!   generated from these types.
//! * [`Policy`] - validated and compiled once (detectors, prefilter, routes, keys). Immutable,
//!   `Send + Sync`, cloned by reference count.
//! * [`Policy::stream`] - the same for a body too large to buffer: a [`StreamInspector`] fed chunk
//!   by chunk, in bounded memory.
//! * [`Policy::inspect`] - one body in, an [`Inspection`] out: a [`Decision`] (allow, rewrite with
//!   a new body, block with a status and a stable reason code) and the [`Finding`]s, which carry
//!   class, path, span, detector and confidence, never the value.
//!
//! Detection finds spans; transformation only rewrites the spans it is given (Presidio's split).
//! Bodies are rewritten by splicing raw bytes, so a rewritten JSON body is byte-identical to the
//! original outside the replaced values.

mod bytes;
mod detect;
mod error;
mod inspect;
mod json;
mod jsonpath;
mod matcher;
mod policy;
mod route;
mod stream;
mod transform;

pub mod codec;
#[cfg(feature = "k8s")]
pub mod k8s;
pub mod manifest;

pub use detect::catalog::{catalog, ClassInfo, DetectorInfo};
pub use detect::BUILTIN_PACK;
pub use error::PolicyError;
pub use inspect::{Block, Decision, Exchange, Finding, Inspection, Reason, MAX_REPORTED_FINDINGS};
pub use manifest::{ActionKind, BodyKind, Manifest, Mode};
pub use policy::{
    deserialize_located, json_value, parse_manifest_json, Direction, Policy, RouteId,
    BUILTIN_DEFAULT_POLICY,
};
pub use stream::{StreamInspector, StreamLimits, StreamVerdict};
pub use transform::{Detokenizer, TransformError, Warning};
