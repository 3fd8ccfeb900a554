//! meshdlp as a proxy-wasm HTTP filter: glue only.
//!
//! * [`abi`] - the proxy-wasm entry points and a dispatcher that survives re-entrant host
//!   callbacks (the SDK's does not: see its module docs);
//! * [`host`] - the seam: every call into Envoy goes through the [`host::Host`] trait, so the
//!   stream logic runs natively against a recording fake ([`fake`]) as well as in Envoy;
//! * [`stream`] - one HTTP stream: hold, buffer, inspect, apply the verdict;
//! * [`config`] - the plugin configuration, a pure function from bytes;
//! * [`telemetry`] - metrics and audit lines, never a value.
//!
//! Nothing here may panic: a panic traps the VM and fails every stream on it.

pub mod abi;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod fake;
pub mod host;
pub mod stream;
mod telemetry;

use std::cell::Cell;
use std::rc::Rc;

use crate::config::Config;
use crate::host::{Host, Level};
use crate::telemetry::Telemetry;

/// What every stream of a plugin shares.
pub struct Shared {
    pub config: Config,
    telemetry: Telemetry,
    /// Streams being inspected chunk by chunk now (bounded by `streaming.maxStreams`).
    streams_active: Cell<usize>,
}

/// Compiles a plugin configuration, logging the outcome. `None` rejects it.
pub fn configure(host: &dyn Host, bytes: &[u8]) -> Option<Rc<Shared>> {
    match config::parse(bytes) {
        Ok(config) => {
            for w in config.policy.warnings() {
                host.log(Level::Warn, &format!("meshdlp: policy warning: {w}"));
            }
            host.log(
                Level::Info,
                &format!(
                    "meshdlp: policy loaded ({} classes)",
                    config.policy.classes().len()
                ),
            );
            Some(Rc::new(Shared {
                config,
                telemetry: Telemetry::default(),
                streams_active: Cell::new(0),
            }))
        }
        Err(e) => {
            host.log(
                Level::Error,
                &format!("meshdlp: rejected configuration: {e}"),
            );
            None
        }
    }
}
