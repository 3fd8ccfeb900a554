//! Host calls that return errors instead of panicking.
//!
//! The SDK's `hostcalls::*` wrappers `panic!` on statuses they do not expect (for example
//! `BadArgument` when a header map is touched outside its callback). Under `panic = "abort"` that
//! traps the VM and fails every stream sharing it, so the calls this filter makes go through
//! these wrappers, which only ever return `Err(status)`.

#![allow(unsafe_code)]

use std::ptr::null_mut;

/// A proxy-wasm status code other than Ok.
pub type Status = u32;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;
pub const REQUEST_BODY: u32 = 0;
pub const RESPONSE_BODY: u32 = 1;
pub const PLUGIN_CONFIGURATION: u32 = 7;

pub const COUNTER: u32 = 0;
pub const HISTOGRAM: u32 = 2;

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
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
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, out_id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
}

// Native builds (unit tests of the glue) have no host: every call reports NOT_FOUND.
#[cfg(not(target_arch = "wasm32"))]
mod native {
    pub unsafe fn proxy_get_header_map_value(
        _: u32,
        _: *const u8,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
    ) -> u32 {
        1
    }
    pub unsafe fn proxy_replace_header_map_value(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
    ) -> u32 {
        1
    }
    pub unsafe fn proxy_remove_header_map_value(_: u32, _: *const u8, _: usize) -> u32 {
        1
    }
    pub unsafe fn proxy_get_buffer_bytes(
        _: u32,
        _: usize,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
    ) -> u32 {
        1
    }
    pub unsafe fn proxy_set_buffer_bytes(
        _: u32,
        _: usize,
        _: usize,
        _: *const u8,
        _: usize,
    ) -> u32 {
        1
    }
    pub unsafe fn proxy_get_property(
        _: *const u8,
        _: usize,
        _: *mut *mut u8,
        _: *mut usize,
    ) -> u32 {
        1
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn proxy_send_local_response(
        _: u32,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: *const u8,
        _: usize,
        _: i32,
    ) -> u32 {
        1
    }
    pub unsafe fn proxy_define_metric(_: u32, _: *const u8, _: usize, _: *mut u32) -> u32 {
        1
    }
    pub unsafe fn proxy_increment_metric(_: u32, _: i64) -> u32 {
        1
    }
    pub unsafe fn proxy_record_metric(_: u32, _: u64) -> u32 {
        1
    }
    pub unsafe fn proxy_get_current_time_nanoseconds(_: *mut u64) -> u32 {
        1
    }
}
#[cfg(not(target_arch = "wasm32"))]
use native::*;

fn status(code: u32) -> Result<(), Status> {
    if code == OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// Takes ownership of a host-allocated buffer (allocated through the SDK's exported allocator,
/// i.e. the Rust global allocator).
unsafe fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(ptr, size, size)
    }
}

pub fn header(map: u32, name: &str) -> Result<Option<String>, Status> {
    let mut ptr = null_mut();
    let mut size = 0;
    let code =
        unsafe { proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut ptr, &mut size) };
    match code {
        OK => {
            let bytes = unsafe { take(ptr, size) };
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        }
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

pub fn set_header(map: u32, name: &str, value: &str) -> Result<(), Status> {
    status(unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: u32, name: &str) -> Result<(), Status> {
    match unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) } {
        OK | NOT_FOUND => Ok(()),
        other => Err(other),
    }
}

pub fn buffer(kind: u32, start: usize, max: usize) -> Result<Vec<u8>, Status> {
    let mut ptr = null_mut();
    let mut size = 0;
    match unsafe { proxy_get_buffer_bytes(kind, start, max, &mut ptr, &mut size) } {
        OK => Ok(unsafe { take(ptr, size) }),
        NOT_FOUND => Ok(Vec::new()),
        other => Err(other),
    }
}

pub fn set_buffer(kind: u32, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
    status(unsafe { proxy_set_buffer_bytes(kind, start, size, data.as_ptr(), data.len()) })
}

/// Reads a property; `path` is already serialized (segments separated by NUL bytes).
pub fn property(path: &str) -> Result<Option<Vec<u8>>, Status> {
    let mut ptr = null_mut();
    let mut size = 0;
    match unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut ptr, &mut size) } {
        OK => Ok(Some(unsafe { take(ptr, size) })),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Serializes headers in the proxy-wasm map format: count, (key len, value len)*, then each key
/// and value NUL-terminated.
fn serialize_map(map: &[(&str, &str)]) -> Vec<u8> {
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

pub fn send_response(
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

pub fn define_metric(kind: u32, name: &str) -> Result<u32, Status> {
    let mut id = 0;
    status(unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) }).map(|_| id)
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    status(unsafe { proxy_increment_metric(id, by) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    status(unsafe { proxy_record_metric(id, value) })
}

/// Host wall-clock time in nanoseconds (0 if unavailable).
pub fn now_nanos() -> u64 {
    let mut t = 0;
    match unsafe { proxy_get_current_time_nanoseconds(&mut t) } {
        OK => t,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_map_serialization() {
        let m = super::serialize_map(&[("a", "bc")]);
        assert_eq!(
            m,
            [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
    }
}
