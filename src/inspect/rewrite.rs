//! Byte-exact splicing: everything outside a replaced span is left as it was.

use std::rc::Rc;

use crate::json;

use super::scan::Site;

/// The replacement as written at its site, JSON-escaped `levels` more times for the JSON strings
/// around it (a value of a document nested in a JSON string).
pub(super) fn encode(text: &str, site: Site, levels: u8) -> Vec<u8> {
    let mut out = encode_site(text, site);
    for _ in 0..levels {
        let mut escaped = Vec::with_capacity(out.len() + 8);
        json::escape_into(&String::from_utf8_lossy(&out), &mut escaped);
        out = escaped;
    }
    out
}

fn encode_site(text: &str, site: Site) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    match site {
        Site::JsonString | Site::JsonKey => json::escape_into(text, &mut out),
        Site::JsonWhole => {
            out.push(b'"');
            json::escape_into(text, &mut out);
            out.push(b'"');
        }
        Site::Text => out.extend_from_slice(text.as_bytes()),
        Site::Form => {
            for b in text.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b);
                } else {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
        }
    }
    out
}

#[derive(Debug)]
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Shared: a million values redacted alike need one replacement, not a million.
    pub(super) text: Rc<[u8]>,
    pub(super) drop: bool,
}

impl Edit {
    /// Removes a JSON member (or array element) and one adjacent comma.
    pub(super) fn drop(body: &[u8], member_start: usize, value_end: usize) -> Edit {
        let ws = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
        let mut after = value_end;
        while after < body.len() && ws(body[after]) {
            after += 1;
        }
        if body.get(after) == Some(&b',') {
            let mut end = after + 1;
            while end < body.len() && ws(body[end]) {
                end += 1;
            }
            return Edit {
                start: member_start,
                end,
                text: Rc::from(&[][..]),
                drop: true,
            };
        }
        let mut before = member_start;
        while before > 0 && ws(body[before - 1]) {
            before -= 1;
        }
        if before > 0 && body[before - 1] == b',' {
            return Edit {
                start: before - 1,
                end: value_end,
                text: Rc::from(&[][..]),
                drop: true,
            };
        }
        Edit {
            start: member_start,
            end: value_end,
            text: Rc::from(&[][..]),
            drop: true,
        }
    }
}

/// Splices edits into the body. An edit inside another (a replacement inside a dropped member,
/// a drop inside a replaced object) goes with the outer one; overlapping drops merge, which
/// keeps the commas of a JSON container consistent.
pub(super) fn apply_edits(body: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_unstable_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.drop.cmp(&a.drop))
            .then(b.end.cmp(&a.end))
    });
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for e in edits {
        if let Some(last) = merged.last_mut() {
            let touches = e.start < last.end || (e.drop && last.drop && e.start == last.end);
            if touches {
                // Adjacent or overlapping drops (one comma each) merge into one removal.
                // Otherwise the first edit stands: anything inside a dropped member goes with
                // it, anything inside a replaced value is replaced with it, and overlaps between
                // replacements were resolved before actions ran.
                if last.drop && e.drop {
                    last.end = last.end.max(e.end);
                }
                continue;
            }
        }
        merged.push(e);
    }
    let added: usize = merged.iter().map(|e| e.text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + added);
    let mut pos = 0;
    for e in merged {
        out.extend_from_slice(&body[pos..e.start]);
        out.extend_from_slice(&e.text);
        pos = e.end;
    }
    out.extend_from_slice(&body[pos..]);
    out
}
