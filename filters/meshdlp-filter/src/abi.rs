//! The proxy-wasm ABI (0.2.1) entry points, and a dispatcher that survives re-entrant calls.
//!
//! Why not the SDK's dispatcher: a host call may call back into the module before it returns.
//! Measured in Envoy 1.40: replacing a body with more bytes than the connection's buffer limit
//! makes Envoy end the stream from inside `proxy_set_buffer_bytes`, which calls `proxy_on_log`
//! while the SDK's dispatcher still holds the `RefCell` borrow of every HTTP context - the SDK
//! panics, the VM traps, and Envoy then died with SIGSEGV. Here no borrow is held while a
//! stream runs: the stream is taken out of the registry for the call and put back afterwards. A
//! callback that arrives for a stream that is running is remembered (`log`, `delete`) and
//! carried out when the outer call returns, or answered safely (`Continue`, the chunk emptied).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use meshdlp::Direction;

use crate::host::{Host, Level};
use crate::stream::{Action, Stream};
use crate::Shared;

enum Slot {
    Idle(Box<Stream>),
    /// The stream is inside a callback; what arrived meanwhile.
    Busy {
        log: bool,
        deleted: bool,
    },
}

#[derive(Default)]
struct Registry {
    /// Root contexts (one per plugin configuration) and their compiled configuration.
    roots: HashMap<u32, Option<Rc<Shared>>>,
    streams: HashMap<u32, Slot>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> Option<R> {
    REGISTRY.with(|r| r.try_borrow_mut().ok().map(|mut r| f(&mut r)))
}

pub fn context_create(context_id: u32, root_context_id: u32) {
    with_registry(|r| {
        if root_context_id == 0 {
            r.roots.insert(context_id, None);
        } else if let Some(Some(shared)) = r.roots.get(&root_context_id) {
            let stream = Stream::new(Rc::clone(shared));
            r.streams.insert(context_id, Slot::Idle(Box::new(stream)));
        }
    });
}

pub fn configure(host: &dyn Host, context_id: u32, size: usize) -> bool {
    let bytes = match host.plugin_configuration(size) {
        Ok(b) => b,
        Err(status) => {
            host.log(
                Level::Error,
                &format!("meshdlp: cannot read the plugin configuration (status {status})"),
            );
            return false;
        }
    };
    match crate::configure(host, &bytes) {
        Some(shared) => with_registry(|r| {
            r.roots.insert(context_id, Some(shared));
        })
        .is_some(),
        None => false,
    }
}

/// Runs `f` on a stream with no borrow held; `fallback` answers a stream that is unknown or
/// already running.
fn on_stream<R>(
    host: &dyn Host,
    context_id: u32,
    fallback: impl FnOnce() -> R,
    f: impl FnOnce(&mut Stream) -> R,
) -> R {
    let taken = with_registry(|r| match r.streams.get_mut(&context_id) {
        Some(slot @ Slot::Idle(_)) => match std::mem::replace(
            slot,
            Slot::Busy {
                log: false,
                deleted: false,
            },
        ) {
            Slot::Idle(s) => Some(Some(s)),
            Slot::Busy { .. } => Some(None),
        },
        Some(Slot::Busy { .. }) => Some(None),
        None => None,
    })
    .flatten();
    let busy = matches!(taken, Some(None));
    let Some(mut stream) = taken.flatten() else {
        if busy {
            // Logged outside the registry borrow: no host call is made while it is held.
            host.log(
                Level::Warn,
                &format!("meshdlp: re-entrant callback for stream {context_id} ignored"),
            );
        }
        return fallback();
    };
    let out = f(&mut stream);
    // The slot stays busy while a pending `on_log` runs, so that one is guarded too.
    let (log, deleted) = with_registry(|r| match r.streams.get(&context_id) {
        Some(Slot::Busy { log, deleted }) => (*log, *deleted),
        _ => (false, false),
    })
    .unwrap_or((false, false));
    if log {
        stream.on_log(host);
    }
    with_registry(|r| {
        if deleted {
            r.streams.remove(&context_id);
        } else {
            r.streams.insert(context_id, Slot::Idle(stream));
        }
    });
    out
}

pub fn request_headers(host: &dyn Host, id: u32, end_of_stream: bool) -> Action {
    on_stream(
        host,
        id,
        || Action::Continue,
        |s| s.on_request_headers(host, end_of_stream),
    )
}

pub fn request_body(host: &dyn Host, id: u32, size: usize, end_of_stream: bool) -> Action {
    on_stream(
        host,
        id,
        || busy_body(host, Direction::Request, size),
        |s| s.on_request_body(host, size, end_of_stream),
    )
}

pub fn request_trailers(host: &dyn Host, id: u32) -> Action {
    on_stream(
        host,
        id,
        || Action::Continue,
        |s| s.on_request_trailers(host),
    )
}

pub fn response_headers(host: &dyn Host, id: u32, end_of_stream: bool) -> Action {
    on_stream(
        host,
        id,
        || Action::Continue,
        |s| s.on_response_headers(host, end_of_stream),
    )
}

pub fn response_body(host: &dyn Host, id: u32, size: usize, end_of_stream: bool) -> Action {
    on_stream(
        host,
        id,
        || busy_body(host, Direction::Response, size),
        |s| s.on_response_body(host, size, end_of_stream),
    )
}

pub fn response_trailers(host: &dyn Host, id: u32) -> Action {
    on_stream(
        host,
        id,
        || Action::Continue,
        |s| s.on_response_trailers(host),
    )
}

/// A body chunk for a stream that is unknown or inside another callback is not inspected
/// here: it is emptied rather than forwarded.
fn busy_body(host: &dyn Host, d: Direction, size: usize) -> Action {
    if size > 0 {
        let _ = host.set_body(d, 0, size, b"");
    }
    Action::Continue
}

pub fn log(host: &dyn Host, id: u32) {
    let running = with_registry(|r| match r.streams.get_mut(&id) {
        Some(Slot::Busy { log, .. }) => {
            *log = true;
            true
        }
        _ => false,
    })
    .unwrap_or(true);
    if !running {
        on_stream(host, id, || (), |s| s.on_log(host));
    }
}

pub fn delete(id: u32) {
    with_registry(|r| {
        match r.streams.get_mut(&id) {
            Some(Slot::Busy { deleted, .. }) => *deleted = true,
            Some(Slot::Idle(_)) => {
                r.streams.remove(&id);
            }
            None => {
                r.roots.remove(&id);
            }
        };
    });
}

/// Live stream contexts (tests and the memory budget).
pub fn live_streams() -> usize {
    with_registry(|r| r.streams.len()).unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
mod exports {
    //! The functions Envoy calls. Booleans arrive as integers; anything but 0 is true.
    #![allow(unsafe_code)]

    use crate::host::WasmHost;

    #[cfg(target_os = "wasi")]
    extern "C" {
        fn __wasm_call_ctors();
    }

    #[no_mangle]
    pub extern "C" fn _initialize() {
        #[cfg(target_os = "wasi")]
        unsafe {
            __wasm_call_ctors();
        }
    }

    #[no_mangle]
    pub extern "C" fn proxy_abi_version_0_2_1() {}

    /// Memory the host fills for us (header values, bodies, configuration); taken back as a
    /// `Vec<u8>` of exactly this capacity by `host::take`.
    #[no_mangle]
    pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
        let mut v: Vec<u8> = Vec::with_capacity(size);
        let ptr = v.as_mut_ptr();
        std::mem::forget(v);
        ptr
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
        super::context_create(context_id, root_context_id);
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_vm_start(_context_id: u32, _size: usize) -> u32 {
        1
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_configure(context_id: u32, size: usize) -> u32 {
        u32::from(super::configure(&WasmHost, context_id, size))
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_headers(id: u32, _headers: usize, eos: u32) -> u32 {
        super::request_headers(&WasmHost, id, eos != 0) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_body(id: u32, size: usize, eos: u32) -> u32 {
        super::request_body(&WasmHost, id, size, eos != 0) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_trailers(id: u32, _trailers: usize) -> u32 {
        super::request_trailers(&WasmHost, id) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_response_headers(id: u32, _headers: usize, eos: u32) -> u32 {
        super::response_headers(&WasmHost, id, eos != 0) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_response_body(id: u32, size: usize, eos: u32) -> u32 {
        super::response_body(&WasmHost, id, size, eos != 0) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_response_trailers(id: u32, _trailers: usize) -> u32 {
        super::response_trailers(&WasmHost, id) as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_log(id: u32) {
        super::log(&WasmHost, id);
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_done(_id: u32) -> u32 {
        1
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_delete(id: u32) {
        super::delete(id);
    }
}
