//! The host seam: every call the filter makes into Envoy goes through the [`Host`] trait.
//!
//! Two implementations: [`WasmHost`] calls the proxy-wasm ABI (and only exists in the wasm
//! build), and `fake::FakeHost` records calls for native tests of the stream logic, like
//! coraza-proxy-wasm's `proxytest`. Every method returns an error instead of panicking: the SDK's
//! `hostcalls::*` wrappers `panic!` on statuses they do not expect (for example `BadArgument` when
//! a header map is touched outside its callback), and under `panic = "abort"` a panic traps the VM
//! and fails every stream sharing it. Logging goes through the host too (the SDK's logger
//! unwraps).

use meshdlp::Direction;

/// A proxy-wasm status code other than Ok.
pub type Status = u32;

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;

/// The header maps of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Map {
    RequestHeaders,
    ResponseHeaders,
}

impl Map {
    pub fn headers(d: Direction) -> Map {
        match d {
            Direction::Request => Map::RequestHeaders,
            Direction::Response => Map::ResponseHeaders,
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn abi(self) -> u32 {
        match self {
            Map::RequestHeaders => 0,
            Map::ResponseHeaders => 2,
        }
    }
}

/// A metric type, as the ABI numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter = 0,
    Histogram = 2,
}

/// Log levels of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

/// What the filter needs from its proxy. Implementations never panic.
pub trait Host {
    /// The first value of a header (Envoy returns only the first of repeated headers).
    fn header(&self, map: Map, name: &str) -> Result<Option<String>, Status>;
    /// Every value of a header, in order (a repeated `content-encoding` must not hide a layer).
    fn header_values(&self, map: Map, name: &str) -> Result<Vec<String>, Status>;
    fn set_header(&self, map: Map, name: &str, value: &str) -> Result<(), Status>;
    fn remove_header(&self, map: Map, name: &str) -> Result<(), Status>;
    /// The buffered body of one direction (at most `max` bytes from `start`).
    fn body(&self, d: Direction, start: usize, max: usize) -> Result<Vec<u8>, Status>;
    /// Replaces `size` bytes of the buffered body from `start` with `data`.
    fn set_body(&self, d: Direction, start: usize, size: usize, data: &[u8]) -> Result<(), Status>;
    /// The plugin configuration bytes.
    fn plugin_configuration(&self, size: usize) -> Result<Vec<u8>, Status>;
    /// Reads a property; `path` is already serialized (segments separated by NUL bytes).
    fn property(&self, path: &str) -> Result<Option<Vec<u8>>, Status>;
    /// A local reply. Envoy sends it after the current callback returns.
    fn send_response(
        &self,
        code: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status>;
    /// Resets the stream (used when a block is decided after bytes have left).
    fn reset_stream(&self, d: Direction) -> Result<(), Status>;
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Status>;
    fn increment_metric(&self, id: u32, by: i64) -> Result<(), Status>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), Status>;
    /// Host wall-clock time in nanoseconds (0 if unavailable).
    fn now_nanos(&self) -> u64;
    fn log(&self, level: Level, message: &str);
}

/// Serializes headers in the proxy-wasm map format: count, (key len, value len)*, then each key
/// and value NUL-terminated.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn serialize_map(map: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (k, v) in map {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in map {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Reads a serialized header map (the format above) and returns the values of `name`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn values_in_map(bytes: &[u8], name: &str) -> Option<Vec<String>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = 4 + i.checked_mul(8)?;
        sizes.push((word(at)?, word(at + 4)?));
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = Vec::new();
    for (k, v) in sizes {
        let key = bytes.get(at..at.checked_add(k)?)?;
        at = at.checked_add(k)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(v)?)?;
        at = at.checked_add(v)?.checked_add(1)?;
        if key.eq_ignore_ascii_case(name.as_bytes()) {
            out.push(String::from_utf8_lossy(value).into_owned());
        }
    }
    Some(out)
}

#[cfg(target_arch = "wasm32")]
pub use wasm::WasmHost;

#[cfg(target_arch = "wasm32")]
mod wasm {
    #![allow(unsafe_code)]

    use std::ptr::null_mut;

    use meshdlp::Direction;

    use super::{
        serialize_map, values_in_map, Host, Level, Map, MetricKind, Status, NOT_FOUND, OK,
    };

    const REQUEST_BODY: u32 = 0;
    const RESPONSE_BODY: u32 = 1;
    const PLUGIN_CONFIGURATION: u32 = 7;
    const STREAM_HTTP_REQUEST: u32 = 0;
    const STREAM_HTTP_RESPONSE: u32 = 1;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_log(level: u32, message: *const u8, size: usize) -> u32;
        fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            out: *mut *mut u8,
            out_size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        fn proxy_get_header_map_pairs(map: u32, out: *mut *mut u8, out_size: *mut usize) -> u32;
        fn proxy_get_buffer_bytes(
            buffer: u32,
            start: usize,
            max: usize,
            out: *mut *mut u8,
            out_size: *mut usize,
        ) -> u32;
        fn proxy_set_buffer_bytes(
            buffer: u32,
            start: usize,
            size: usize,
            data: *const u8,
            data_size: usize,
        ) -> u32;
        fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            out: *mut *mut u8,
            out_size: *mut usize,
        ) -> u32;
        #[allow(clippy::too_many_arguments)]
        fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_close_stream(stream_type: u32) -> u32;
        fn proxy_define_metric(
            kind: u32,
            name: *const u8,
            name_size: usize,
            out_id: *mut u32,
        ) -> u32;
        fn proxy_increment_metric(id: u32, offset: i64) -> u32;
        fn proxy_record_metric(id: u32, value: u64) -> u32;
        fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
    }

    fn status(code: u32) -> Result<(), Status> {
        if code == OK {
            Ok(())
        } else {
            Err(code)
        }
    }

    /// Takes ownership of a host-allocated buffer (allocated through our exported
    /// `proxy_on_memory_allocate`, i.e. the Rust global allocator with the layout of a
    /// `Vec<u8>` of exactly that capacity).
    unsafe fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
        if ptr.is_null() || size == 0 {
            Vec::new()
        } else {
            Vec::from_raw_parts(ptr, size, size)
        }
    }

    fn body_buffer(d: Direction) -> u32 {
        match d {
            Direction::Request => REQUEST_BODY,
            Direction::Response => RESPONSE_BODY,
        }
    }

    /// The proxy-wasm ABI as seen from inside Envoy.
    pub struct WasmHost;

    impl WasmHost {
        fn bytes(&self, buffer: u32, start: usize, max: usize) -> Result<Vec<u8>, Status> {
            let mut ptr = null_mut();
            let mut size = 0;
            match unsafe { proxy_get_buffer_bytes(buffer, start, max, &mut ptr, &mut size) } {
                OK => Ok(unsafe { take(ptr, size) }),
                NOT_FOUND => Ok(Vec::new()),
                other => Err(other),
            }
        }
    }

    impl Host for WasmHost {
        fn header(&self, map: Map, name: &str) -> Result<Option<String>, Status> {
            let mut ptr = null_mut();
            let mut size = 0;
            let code = unsafe {
                proxy_get_header_map_value(
                    map.abi(),
                    name.as_ptr(),
                    name.len(),
                    &mut ptr,
                    &mut size,
                )
            };
            match code {
                OK => {
                    let bytes = unsafe { take(ptr, size) };
                    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
                }
                NOT_FOUND => Ok(None),
                other => Err(other),
            }
        }

        fn header_values(&self, map: Map, name: &str) -> Result<Vec<String>, Status> {
            let mut ptr = null_mut();
            let mut size = 0;
            match unsafe { proxy_get_header_map_pairs(map.abi(), &mut ptr, &mut size) } {
                OK => {
                    let bytes = unsafe { take(ptr, size) };
                    // A map we cannot read is an error, never "no such header".
                    values_in_map(&bytes, name).ok_or(2)
                }
                NOT_FOUND => Ok(Vec::new()),
                other => Err(other),
            }
        }

        fn set_header(&self, map: Map, name: &str, value: &str) -> Result<(), Status> {
            status(unsafe {
                proxy_replace_header_map_value(
                    map.abi(),
                    name.as_ptr(),
                    name.len(),
                    value.as_ptr(),
                    value.len(),
                )
            })
        }

        fn remove_header(&self, map: Map, name: &str) -> Result<(), Status> {
            match unsafe { proxy_remove_header_map_value(map.abi(), name.as_ptr(), name.len()) } {
                OK | NOT_FOUND => Ok(()),
                other => Err(other),
            }
        }

        fn body(&self, d: Direction, start: usize, max: usize) -> Result<Vec<u8>, Status> {
            self.bytes(body_buffer(d), start, max)
        }

        fn set_body(
            &self,
            d: Direction,
            start: usize,
            size: usize,
            data: &[u8],
        ) -> Result<(), Status> {
            status(unsafe {
                proxy_set_buffer_bytes(body_buffer(d), start, size, data.as_ptr(), data.len())
            })
        }

        fn plugin_configuration(&self, size: usize) -> Result<Vec<u8>, Status> {
            self.bytes(PLUGIN_CONFIGURATION, 0, size)
        }

        fn property(&self, path: &str) -> Result<Option<Vec<u8>>, Status> {
            let mut ptr = null_mut();
            let mut size = 0;
            match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut size) } {
                OK => Ok(Some(unsafe { take(ptr, size) })),
                NOT_FOUND => Ok(None),
                other => Err(other),
            }
        }

        fn send_response(
            &self,
            code: u32,
            details: &str,
            headers: &[(&str, &str)],
            body: &[u8],
        ) -> Result<(), Status> {
            let h = serialize_map(headers);
            status(unsafe {
                proxy_send_local_response(
                    code,
                    details.as_ptr(),
                    details.len(),
                    body.as_ptr(),
                    body.len(),
                    h.as_ptr(),
                    h.len(),
                    -1,
                )
            })
        }

        fn reset_stream(&self, d: Direction) -> Result<(), Status> {
            let stream = match d {
                Direction::Request => STREAM_HTTP_REQUEST,
                Direction::Response => STREAM_HTTP_RESPONSE,
            };
            status(unsafe { proxy_close_stream(stream) })
        }

        fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, Status> {
            let mut id = 0;
            status(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })
                .map(|_| id)
        }

        fn increment_metric(&self, id: u32, by: i64) -> Result<(), Status> {
            status(unsafe { proxy_increment_metric(id, by) })
        }

        fn record_metric(&self, id: u32, value: u64) -> Result<(), Status> {
            status(unsafe { proxy_record_metric(id, value) })
        }

        fn now_nanos(&self) -> u64 {
            let mut t = 0;
            match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
                OK => t,
                _ => 0,
            }
        }

        fn log(&self, level: Level, message: &str) {
            let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_maps_read_back_every_value() {
        let m = super::serialize_map(&[
            ("content-encoding", "identity"),
            ("x", "y"),
            ("Content-Encoding", "gzip"),
        ]);
        assert_eq!(
            super::values_in_map(&m, "content-encoding"),
            Some(vec!["identity".to_string(), "gzip".to_string()])
        );
        assert_eq!(super::values_in_map(&m[..m.len() - 3], "x"), None);
        assert_eq!(super::values_in_map(&[255, 255, 255, 255], "x"), None);
    }

    #[test]
    fn header_map_serialization() {
        let m = super::serialize_map(&[("a", "bc")]);
        assert_eq!(
            m,
            [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
    }
}
