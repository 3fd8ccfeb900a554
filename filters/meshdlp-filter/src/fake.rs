//! A recording host for native tests of the stream logic (like coraza-proxy-wasm's
//! `proxytest`): header maps and bodies you set up, every reply, reset, log line and metric the
//! filter produces, calls that fail on demand, and Envoy's buffer limit with a hook that runs
//! when a body larger than the limit is handed back (Envoy ends the stream from inside that
//! call and re-enters the module).

#![allow(clippy::missing_panics_doc)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};

use meshdlp::Direction;

use crate::host::{Host, Level, Map, MetricKind, Status};

/// A local reply the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

type Hook = Box<dyn Fn(&FakeHost)>;

#[derive(Default)]
pub struct FakeHost {
    headers: RefCell<HashMap<Map, Vec<(String, String)>>>,
    bodies: RefCell<HashMap<bool, Vec<u8>>>,
    pub properties: RefCell<HashMap<String, Vec<u8>>>,
    pub configuration: RefCell<Vec<u8>>,
    pub replies: RefCell<Vec<Reply>>,
    pub resets: RefCell<Vec<Direction>>,
    pub logs: RefCell<Vec<(Level, String)>>,
    metric_names: RefCell<Vec<String>>,
    pub metrics: RefCell<BTreeMap<String, i64>>,
    /// Names of host calls that fail with status 2 (`BadArgument`).
    pub failing: RefCell<HashSet<&'static str>>,
    /// Envoy's `per_connection_buffer_limit_bytes`: `set_body` past it runs `on_overflow`.
    pub buffer_limit: Cell<Option<usize>>,
    pub on_overflow: RefCell<Option<Hook>>,
    /// Largest body handed back through `set_body`.
    pub largest_set_body: Cell<usize>,
}

fn is_response(d: Direction) -> bool {
    d == Direction::Response
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost::default()
    }

    pub fn set_headers(&self, map: Map, headers: &[(&str, &str)]) {
        self.headers.borrow_mut().insert(
            map,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }

    pub fn headers(&self, map: Map) -> Vec<(String, String)> {
        self.headers.borrow().get(&map).cloned().unwrap_or_default()
    }

    pub fn get_header(&self, map: Map, name: &str) -> Option<String> {
        self.header(map, name).ok().flatten()
    }

    pub fn set_body_bytes(&self, d: Direction, body: &[u8]) {
        self.bodies
            .borrow_mut()
            .insert(is_response(d), body.to_vec());
    }

    pub fn body_bytes(&self, d: Direction) -> Vec<u8> {
        self.bodies
            .borrow()
            .get(&is_response(d))
            .cloned()
            .unwrap_or_default()
    }

    /// Every log line, joined (for "no value in the logs" checks).
    pub fn log_text(&self) -> String {
        self.logs
            .borrow()
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The sum of every counter whose name starts with `prefix`.
    pub fn counter(&self, prefix: &str) -> i64 {
        self.metrics
            .borrow()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum()
    }

    fn fails(&self, call: &'static str) -> Result<(), Status> {
        if self.failing.borrow().contains(call) {
            Err(2)
        } else {
            Ok(())
        }
    }
}

impl Host for FakeHost {
    fn header(&self, map: Map, name: &str) -> Result<Option<String>, Status> {
        self.fails("header")?;
        Ok(self.headers.borrow().get(&map).and_then(|h| {
            h.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        }))
    }

    fn header_values(&self, map: Map, name: &str) -> Result<Vec<String>, Status> {
        self.fails("header")?;
        Ok(self
            .headers
            .borrow()
            .get(&map)
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn set_header(&self, map: Map, name: &str, value: &str) -> Result<(), Status> {
        self.fails("set_header")?;
        let mut all = self.headers.borrow_mut();
        let h = all.entry(map).or_default();
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        h.push((name.to_string(), value.to_string()));
        Ok(())
    }

    fn remove_header(&self, map: Map, name: &str) -> Result<(), Status> {
        self.fails("remove_header")?;
        if let Some(h) = self.headers.borrow_mut().get_mut(&map) {
            h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        }
        Ok(())
    }

    fn body(&self, d: Direction, start: usize, max: usize) -> Result<Vec<u8>, Status> {
        self.fails("body")?;
        let b = self.body_bytes(d);
        let start = start.min(b.len());
        let end = start.saturating_add(max).min(b.len());
        Ok(b[start..end].to_vec())
    }

    fn set_body(&self, d: Direction, start: usize, size: usize, data: &[u8]) -> Result<(), Status> {
        self.fails("set_body")?;
        {
            let mut all = self.bodies.borrow_mut();
            let b = all.entry(is_response(d)).or_default();
            let start = start.min(b.len());
            let end = start.saturating_add(size).min(b.len());
            b.splice(start..end, data.iter().copied());
        }
        self.largest_set_body
            .set(self.largest_set_body.get().max(data.len()));
        let over = self
            .buffer_limit
            .get()
            .is_some_and(|limit| self.body_bytes(d).len() > limit);
        if over {
            if let Some(hook) = self.on_overflow.borrow().as_ref() {
                hook(self);
            }
        }
        Ok(())
    }

    fn plugin_configuration(&self, _size: usize) -> Result<Vec<u8>, Status> {
        self.fails("plugin_configuration")?;
        Ok(self.configuration.borrow().clone())
    }

    fn property(&self, path: &str) -> Result<Option<Vec<u8>>, Status> {
        self.fails("property")?;
        Ok(self.properties.borrow().get(path).cloned())
    }

    fn send_response(
        &self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        self.fails("send_response")?;
        self.replies.borrow_mut().push(Reply {
            status,
            details: details.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn reset_stream(&self, d: Direction) -> Result<(), Status> {
        self.fails("reset_stream")?;
        self.resets.borrow_mut().push(d);
        Ok(())
    }

    fn define_metric(&self, _kind: MetricKind, name: &str) -> Result<u32, Status> {
        self.fails("define_metric")?;
        let mut names = self.metric_names.borrow_mut();
        names.push(name.to_string());
        Ok(u32::try_from(names.len() - 1).unwrap_or(u32::MAX))
    }

    fn increment_metric(&self, id: u32, by: i64) -> Result<(), Status> {
        self.fails("increment_metric")?;
        let name = self
            .metric_names
            .borrow()
            .get(id as usize)
            .cloned()
            .ok_or(2u32)?;
        *self.metrics.borrow_mut().entry(name).or_default() += by;
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), Status> {
        self.increment_metric(id, i64::try_from(value).unwrap_or(i64::MAX))
    }

    fn now_nanos(&self) -> u64 {
        0
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}
