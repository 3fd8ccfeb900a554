//! A validating JSON walker that reports every value with its raw byte span and path.
//!
//! No DOM is built and nothing is re-serialised: the inspector rewrites bodies by splicing raw
//! bytes, so the output is byte-identical outside the replaced spans. The walker is iterative (an
//! explicit stack), so deep nesting cannot overflow the call stack; depth is capped anyway.

use std::cell::RefCell;
use std::sync::Arc;

use crate::jsonpath::{self, normalize_ascii_key, normalize_key, Step};

/// Nesting deeper than this is rejected as malformed.
pub(crate) const MAX_DEPTH: usize = 256;

/// What a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string; `escaped` when it contains backslash escapes.
    String {
        escaped: bool,
    },
    Number,
    Literal,
    Object,
    Array {
        len: usize,
    },
    /// An object key (visited before its value, with its own segment on the path); the spans
    /// are those of a string.
    Key {
        escaped: bool,
    },
}

/// A value and where it is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) kind: Kind,
    /// Start of the whole value (the opening quote / brace / first digit).
    pub(crate) outer_start: usize,
    /// End of the whole value (after the closing quote / brace / last digit).
    pub(crate) outer_end: usize,
    /// Where the member starts: the key's opening quote for object members, else `outer_start`.
    pub(crate) member_start: usize,
}

impl Value {
    /// The content span: inside the quotes for strings, the whole value otherwise.
    pub(crate) fn inner(&self) -> (usize, usize) {
        match self.kind {
            Kind::String { .. } | Kind::Key { .. } => (self.outer_start + 1, self.outer_end - 1),
            _ => (self.outer_start, self.outer_end),
        }
    }
}

/// A malformed document: byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
    pub(crate) message: &'static str,
}

#[derive(Debug, Default)]
struct Segment {
    is_key: bool,
    index: usize,
    key_start: usize,
    key_end: usize,
    /// The decoded key when it contains escapes.
    decoded: Option<String>,
    /// The key normalized for hint lookups (UTF-8).
    normalized: Vec<u8>,
    /// Index of the nearest key segment below this one (its parent member), if any.
    parent: Option<usize>,
    /// Shown instead of the key in rendered paths (the key is itself a value).
    label: Option<Arc<str>>,
}

impl Segment {
    /// Appends this segment of a rendered path to `out`.
    fn render(&self, body: &[u8], out: &mut String) {
        if !self.is_key {
            jsonpath::push_index(out, self.index);
        } else {
            let key = match &self.decoded {
                Some(d) => d.as_str(),
                None => std::str::from_utf8(&body[self.key_start..self.key_end]).unwrap_or(""),
            };
            jsonpath::push_key(out, key, self.label.as_deref());
        }
    }
}

/// The path of the current value. Segments are reused between members to avoid allocating.
#[derive(Debug, Default)]
pub(crate) struct PathStack {
    segments: Vec<Segment>,
    depth: usize,
    /// The segments rendered last time, kept until a segment below them changes: the
    /// findings of one object or array share all but their last segment or two.
    rendered: RefCell<Rendered>,
}

/// The rendering of the first `ends.len()` segments of a [`PathStack`] (`ends[k]`: its
/// length after segment `k`); never much longer than a rendered path may be.
#[derive(Debug, Default)]
struct Rendered {
    text: String,
    ends: Vec<usize>,
}

impl Rendered {
    /// Forgets the segments from `depth` on (they changed).
    fn forget_from(&mut self, depth: usize) {
        if depth < self.ends.len() {
            self.ends.truncate(depth);
            self.text.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }
}

impl PathStack {
    /// Whether this stack is small enough to keep for the next document ([`PathStack::reset`]):
    /// at most `segments` levels and `bytes` of kept rendering.
    pub(crate) fn keepable(&self, segments: usize, bytes: usize) -> bool {
        self.segments.len() <= segments
            && self
                .segments
                .iter()
                .all(|s| s.normalized.capacity() <= bytes)
            && self.rendered.borrow().text.capacity() <= bytes
    }

    /// Whether [`PathStack::reset`] left nothing of a document in it.
    #[cfg(test)]
    pub(crate) fn holds_nothing(&self) -> bool {
        let r = self.rendered.borrow();
        self.depth == 0
            && r.text.is_empty()
            && r.ends.is_empty()
            && self
                .segments
                .iter()
                .all(|s| s.normalized.is_empty() && s.decoded.is_none() && s.label.is_none())
    }

    /// Empty again, for another document, keeping what it allocated: the segments and their
    /// key buffers. Nothing of the last document is left in them (a key may be a value: a map
    /// keyed by email addresses), though every field of a segment is set again when it is
    /// pushed.
    pub(crate) fn reset(&mut self) {
        self.depth = 0;
        for s in &mut self.segments {
            s.normalized.clear();
            s.decoded = None;
            s.label = None;
        }
        let r = self.rendered.get_mut();
        r.text.clear();
        r.ends.clear();
    }

    fn push_key(&mut self, body: &[u8], start: usize, end: usize, escaped: bool) {
        self.rendered.get_mut().forget_from(self.depth);
        if self.depth == self.segments.len() {
            self.segments.push(Segment::default());
        }
        let parent = self.segments[..self.depth].iter().rposition(|s| s.is_key);
        let seg = &mut self.segments[self.depth];
        self.depth += 1;
        seg.parent = parent;
        seg.is_key = true;
        seg.key_start = start;
        seg.key_end = end;
        seg.decoded = None;
        seg.label = None;
        let raw = &body[start..end];
        // Keys are decoded leniently (an invalid escape stays as written, invalid UTF-8 becomes
        // U+FFFD): a key must never make a document uninspectable.
        if escaped {
            let mut out = Vec::new();
            decode_lossy(raw, &mut out, None);
            let s = String::from_utf8_lossy(&out).into_owned();
            normalize_key(&s, &mut seg.normalized);
            seg.decoded = Some(s);
        } else if raw.is_ascii() {
            normalize_ascii_key(raw, &mut seg.normalized);
        } else {
            match std::str::from_utf8(raw) {
                Ok(s) => normalize_key(s, &mut seg.normalized),
                Err(_) => {
                    let s = String::from_utf8_lossy(raw).into_owned();
                    normalize_key(&s, &mut seg.normalized);
                    seg.decoded = Some(s);
                }
            }
        }
    }

    fn push_index(&mut self, index: usize) {
        self.rendered.get_mut().forget_from(self.depth);
        if self.depth == self.segments.len() {
            self.segments.push(Segment::default());
        }
        let seg = &mut self.segments[self.depth];
        self.depth += 1;
        seg.is_key = false;
        seg.index = index;
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }

    fn set_index(&mut self, index: usize) {
        if let Some(d) = self.depth.checked_sub(1) {
            self.rendered.get_mut().forget_from(d);
            self.segments[d].index = index;
        }
    }

    /// Whether the current value is the document itself.
    pub(crate) fn is_root(&self) -> bool {
        self.depth == 0
    }

    /// The normalized key of the current value, if it is an object member.
    pub(crate) fn key(&self) -> Option<&[u8]> {
        let seg = &self.segments[..self.depth].last()?;
        seg.is_key.then_some(seg.normalized.as_slice())
    }

    /// The normalized key of the nearest enclosing member above the current value.
    pub(crate) fn parent_key(&self) -> Option<&[u8]> {
        let last = self.segments[..self.depth].last()?;
        let parent = if last.is_key {
            last.parent
        } else {
            self.segments[..self.depth - 1]
                .iter()
                .rposition(|s| s.is_key)
        };
        parent.map(|p| self.segments[p].normalized.as_slice())
    }

    /// Renders the key of the current value as `[<label>]` in paths: the key is a value.
    pub(crate) fn label_key(&mut self, label: Arc<str>) {
        if let Some(d) = self.depth.checked_sub(1) {
            self.rendered.get_mut().forget_from(d);
        }
        if let Some(seg) = self.segments[..self.depth].last_mut() {
            if seg.is_key {
                seg.label = Some(label);
            }
        }
    }

    /// Appends the rendered path (without the leading `$`) to `out`, stopping once it is
    /// longer than a rendered path may be.
    ///
    /// The segments rendered for the last call and unchanged since are not rendered again.
    pub(crate) fn render_into(&self, body: &[u8], out: &mut String) {
        let mut guard = self.rendered.borrow_mut();
        let r = &mut *guard;
        r.forget_from(self.depth);
        let mut k = r.ends.len();
        while k < self.depth && r.text.len() <= jsonpath::MAX_RENDERED_PATH {
            self.segments[k].render(body, &mut r.text);
            r.ends.push(r.text.len());
            k += 1;
        }
        // As rendering into `out` segment by segment would: up to the first segment that
        // makes it longer than a path may be.
        let base = out.len();
        let upto = r
            .ends
            .iter()
            .find(|&&e| base + e > jsonpath::MAX_RENDERED_PATH)
            .or(r.ends.last())
            .copied()
            .unwrap_or(0);
        out.push_str(&r.text[..upto]);
    }

    /// [`PathStack::render_into`] without the kept rendering: the reference of its test.
    #[cfg(test)]
    fn render_plain(&self, body: &[u8], out: &mut String) {
        for s in &self.segments[..self.depth] {
            s.render(body, out);
            if out.len() > jsonpath::MAX_RENDERED_PATH {
                break;
            }
        }
    }

    /// The concrete path, for matching patterns and rendering.
    pub(crate) fn steps<'s>(&'s self, body: &'s [u8]) -> Vec<Step<'s>> {
        self.segments[..self.depth]
            .iter()
            .map(|s| {
                if !s.is_key {
                    Step::Index(s.index)
                } else if let Some(d) = &s.decoded {
                    Step::Key(d.as_str())
                } else {
                    // Validated as UTF-8 when pushed.
                    Step::Key(std::str::from_utf8(&body[s.key_start..s.key_end]).unwrap_or(""))
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    Object {
        start: usize,
        member_start: usize,
    },
    Array {
        start: usize,
        member_start: usize,
        count: usize,
    },
}

/// Walks `body`, calling `visit` for every value (containers after their children).
pub(crate) fn walk<F>(body: &[u8], path: &mut PathStack, mut visit: F) -> Result<(), SyntaxError>
where
    F: FnMut(&mut PathStack, &Value),
{
    let err = |offset: usize, message: &'static str| SyntaxError { offset, message };
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = skip_ws(body, 0);
    let mut member_start = i;
    'value: loop {
        // Parse one value at `i`.
        let Some(&c) = body.get(i) else {
            return Err(err(i, "unexpected end of input, expected a value"));
        };
        let value = match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(i, "nesting too deep"));
                }
                let start = i;
                i = skip_ws(body, i + 1);
                if c == b'{' {
                    stack.push(Frame::Object {
                        start,
                        member_start,
                    });
                    if body.get(i) == Some(&b'}') {
                        i += 1;
                        stack.pop();
                        Value {
                            kind: Kind::Object,
                            outer_start: start,
                            outer_end: i,
                            member_start,
                        }
                    } else {
                        member_start = i;
                        let key = parse_key(body, i, member_start, path)?;
                        visit(path, &key.0);
                        i = key.1;
                        continue 'value;
                    }
                } else {
                    stack.push(Frame::Array {
                        start,
                        member_start,
                        count: 0,
                    });
                    if body.get(i) == Some(&b']') {
                        i += 1;
                        stack.pop();
                        Value {
                            kind: Kind::Array { len: 0 },
                            outer_start: start,
                            outer_end: i,
                            member_start,
                        }
                    } else {
                        path.push_index(0);
                        member_start = i;
                        continue 'value;
                    }
                }
            }
            b'"' => {
                let (end, escaped) = scan_string(body, i)?;
                let v = Value {
                    kind: Kind::String { escaped },
                    outer_start: i,
                    outer_end: end,
                    member_start,
                };
                i = end;
                v
            }
            b'-' | b'0'..=b'9' => {
                let end = scan_number(body, i)?;
                let v = Value {
                    kind: Kind::Number,
                    outer_start: i,
                    outer_end: end,
                    member_start,
                };
                i = end;
                v
            }
            b't' | b'f' | b'n' => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !body[i..].starts_with(lit) {
                    return Err(err(i, "invalid literal"));
                }
                let v = Value {
                    kind: Kind::Literal,
                    outer_start: i,
                    outer_end: i + lit.len(),
                    member_start,
                };
                i += lit.len();
                v
            }
            _ => return Err(err(i, "unexpected character, expected a value")),
        };
        visit(path, &value);
        // After a value: close containers as far as they end here, or move to the next member.
        loop {
            i = skip_ws(body, i);
            let Some(frame) = stack.last_mut() else {
                return if i == body.len() {
                    Ok(())
                } else {
                    Err(err(i, "trailing characters after the document"))
                };
            };
            match frame {
                Frame::Object {
                    start,
                    member_start: ms,
                } => {
                    path.pop();
                    match body.get(i) {
                        Some(b',') => {
                            i = skip_ws(body, i + 1);
                            member_start = i;
                            let key = parse_key(body, i, member_start, path)?;
                            visit(path, &key.0);
                            i = key.1;
                            continue 'value;
                        }
                        Some(b'}') => {
                            i += 1;
                            let v = Value {
                                kind: Kind::Object,
                                outer_start: *start,
                                outer_end: i,
                                member_start: *ms,
                            };
                            stack.pop();
                            visit(path, &v);
                        }
                        _ => return Err(err(i, "expected ',' or '}'")),
                    }
                }
                Frame::Array {
                    start,
                    member_start: ms,
                    count,
                } => {
                    *count += 1;
                    match body.get(i) {
                        Some(b',') => {
                            path.set_index(*count);
                            i = skip_ws(body, i + 1);
                            member_start = i;
                            continue 'value;
                        }
                        Some(b']') => {
                            path.pop();
                            i += 1;
                            let v = Value {
                                kind: Kind::Array { len: *count },
                                outer_start: *start,
                                outer_end: i,
                                member_start: *ms,
                            };
                            stack.pop();
                            visit(path, &v);
                        }
                        _ => return Err(err(i, "expected ',' or ']'")),
                    }
                }
            }
        }
    }
}

/// Parses `"key" :` at `i`, pushes the key, returns the key and the position of the member's
/// value.
fn parse_key(
    body: &[u8],
    i: usize,
    member_start: usize,
    path: &mut PathStack,
) -> Result<(Value, usize), SyntaxError> {
    if body.get(i) != Some(&b'"') {
        return Err(SyntaxError {
            offset: i,
            message: "expected a string key",
        });
    }
    let (end, escaped) = scan_string(body, i)?;
    path.push_key(body, i + 1, end - 1, escaped);
    let j = skip_ws(body, end);
    if body.get(j) != Some(&b':') {
        return Err(SyntaxError {
            offset: j,
            message: "expected ':'",
        });
    }
    let key = Value {
        kind: Kind::Key { escaped },
        outer_start: i,
        outer_end: end,
        member_start,
    };
    Ok((key, skip_ws(body, j + 1)))
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = body.get(i) {
        i += 1;
    }
    i
}

/// Finds the end of the string starting at the quote at `i`; returns (end after the closing
/// quote, whether it has escapes).
///
/// Eight bytes at a time (SWAR, the same code natively and in WebAssembly): most strings are
/// short, where a `memchr` call costs more than it saves, and this finds the quote, a
/// backslash and a raw control character in one pass instead of two.
fn scan_string(body: &[u8], i: usize) -> Result<(usize, bool), SyntaxError> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        let Some(off) = next_special(&body[j.min(body.len())..]) else {
            return Err(SyntaxError {
                offset: i,
                message: "unterminated string",
            });
        };
        j += off;
        match body[j] {
            b'"' => return Ok((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                match body.get(j + 1) {
                    None => {
                        return Err(SyntaxError {
                            offset: j,
                            message: "unterminated string",
                        })
                    }
                    Some(&b) if b < 0x20 => {
                        return Err(SyntaxError {
                            offset: j + 1,
                            message: "control character in string",
                        })
                    }
                    Some(_) => j += 2,
                }
            }
            _ => {
                // A string that never ends is reported as such, wherever its control
                // characters are.
                let ends = memchr::memchr2(b'"', b'\\', &body[j..]).is_some();
                return Err(SyntaxError {
                    offset: if ends { j } else { i },
                    message: if ends {
                        "control character in string"
                    } else {
                        "unterminated string"
                    },
                });
            }
        }
    }
}

/// The offset of the first `"`, `\` or byte below 0x20 in `s`.
fn next_special(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut k = 0;
    while k + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[k..k + 8]);
        let x = u64::from_le_bytes(w);
        // A byte's high bit is set where it equals the quote, the backslash, or is below 0x20
        // (the lowest flagged byte is exact; borrows can only flag bytes above it).
        let q = x ^ (LO * u64::from(b'"'));
        let b = x ^ (LO * u64::from(b'\\'));
        let hit =
            (q.wrapping_sub(LO) & !q | b.wrapping_sub(LO) & !b | x.wrapping_sub(LO * 0x20) & !x)
                & HI;
        if hit != 0 {
            return Some(k + (hit.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    s[k..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| k + p)
}

fn scan_number(body: &[u8], i: usize) -> Result<usize, SyntaxError> {
    let bad = |o| SyntaxError {
        offset: o,
        message: "invalid number",
    };
    let mut j = i;
    if body.get(j) == Some(&b'-') {
        j += 1;
    }
    match body.get(j) {
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => {
            while body.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        _ => return Err(bad(j)),
    }
    if body.get(j) == Some(&b'.') {
        j += 1;
        let s = j;
        while body.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == s {
            return Err(bad(j));
        }
    }
    if let Some(b'e' | b'E') = body.get(j) {
        j += 1;
        if let Some(b'+' | b'-') = body.get(j) {
            j += 1;
        }
        let s = j;
        while body.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j == s {
            return Err(bad(j));
        }
    }
    Ok(j)
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let h = raw.get(at..at + 4)?;
    // Four hex digits exactly (`from_str_radix` would take a sign: "\u+123").
    h.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

/// Decodes the contents of a JSON string (without quotes). With `map`, records for every decoded
/// byte the raw offset of the escape or byte it came from, plus a final entry for the end.
/// Returns the offset of a bad escape on error.
#[cfg(test)]
pub(crate) fn decode_string(
    raw: &[u8],
    out: &mut Vec<u8>,
    map: Option<&mut Vec<usize>>,
) -> Result<(), usize> {
    decode(raw, out, map, false)
}

/// The byte a two-byte JSON escape writes, by the letter after its backslash (`n`: a
/// newline); `None` for `u` (four hex digits follow) and for a byte that makes no escape. The
/// decoder's table, and the one `detect` checks keywords against (`KeywordHits::within_escaped`).
pub(crate) fn escape_byte(letter: u8) -> Option<u8> {
    Some(match letter {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0C,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        _ => return None,
    })
}

/// Like `decode_string`, but never fails: an invalid escape (`C:\Users`) is kept as written
/// (the backslash is decoded as itself), so what follows it is still scanned. Returns whether
/// an invalid escape was met.
pub(crate) fn decode_lossy(raw: &[u8], out: &mut Vec<u8>, map: Option<&mut Vec<usize>>) -> bool {
    decode(raw, out, map, true).is_err()
}

fn decode(
    raw: &[u8],
    out: &mut Vec<u8>,
    mut map: Option<&mut Vec<usize>>,
    lossy: bool,
) -> Result<(), usize> {
    let mut invalid = None;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            // A run without escapes is copied whole.
            let end = memchr::memchr(b'\\', &raw[i..]).map_or(raw.len(), |p| i + p);
            out.extend_from_slice(&raw[i..end]);
            if let Some(m) = map.as_deref_mut() {
                m.extend(i..end);
            }
            i = end;
            continue;
        }
        let start = i;
        let esc = raw.get(i + 1).copied();
        let mut utf8 = [0u8; 4];
        let mut one = [0u8; 1];
        let unit: Option<u32> = if esc == Some(b'u') {
            hex4(raw, i + 2)
        } else {
            None
        };
        let bytes: &[u8] = match (esc, esc.and_then(escape_byte)) {
            (_, Some(b)) => {
                one[0] = b;
                &one
            }
            (None | Some(b'u'), _) if unit.is_none() => {
                // A bad escape: keep the backslash as a literal byte and go on.
                if !lossy {
                    return Err(i);
                }
                invalid.get_or_insert(i);
                b"\\"
            }
            (Some(b'u'), _) => {
                let hi = unit.unwrap_or(0xFFFD);
                let (cp, len) = if (0xD800..0xDC00).contains(&hi) {
                    // A surrogate pair: "\uD83D\uDE00".
                    let lo = (raw.get(i + 6..i + 8) == Some(b"\\u"))
                        .then(|| hex4(raw, i + 8))
                        .flatten();
                    match lo {
                        Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                            (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                        }
                        _ => (0xFFFD, 6), // lone surrogate: decoded as U+FFFD, as browsers do
                    }
                } else if (0xDC00..0xE000).contains(&hi) {
                    (0xFFFD, 6)
                } else {
                    (hi, 6)
                };
                let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                i += len;
                let s = ch.encode_utf8(&mut utf8);
                let n = s.len();
                out.extend_from_slice(&utf8[..n]);
                if let Some(m) = map.as_deref_mut() {
                    m.extend(std::iter::repeat_n(start, n));
                }
                continue;
            }
            _ => {
                if !lossy {
                    return Err(i);
                }
                invalid.get_or_insert(i);
                b"\\"
            }
        };
        out.extend_from_slice(bytes);
        if let Some(m) = map.as_deref_mut() {
            m.push(start);
        }
        // A kept backslash consumes only itself: the byte after it is decoded on its own.
        i += if bytes == b"\\" && esc != Some(b'\\') {
            1
        } else {
            2
        };
    }
    if let Some(m) = map {
        m.push(raw.len());
    }
    invalid.map_or(Ok(()), Err)
}

/// Escapes `s` for use inside a JSON string: `"`, `\\` and control characters escaped (`\\n`,
/// `\\u001f`), everything else copied in runs (bytes from 0x80 up only occur inside the
/// characters of `s`, which stay as they are).
pub(crate) fn escape_into(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    // The start of the bytes not yet written.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let control;
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                control = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ];
                &control
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escaped);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

#[cfg(test)]
mod tests {

    /// A random JSON document of nested objects and arrays: keys short and long (past a
    /// rendered path's length), escaped, odd (`a b`, `'`), looking like values (`ada@x.io`).
    fn random_doc(next: &mut impl FnMut() -> u64, depth: usize, out: &mut String) {
        const KEYS: [&str; 8] = [
            "id",
            "user_name",
            "a b",
            "it's",
            "ada@example.com",
            "caf\\u00e9",
            "k0123456789",
            "",
        ];
        match next() % if depth > 5 { 2 } else { 4 } {
            0 => out.push_str("\"v\""),
            1 => out.push_str("12"),
            2 => {
                out.push('{');
                for m in 0..next() % 4 {
                    if m > 0 {
                        out.push(',');
                    }
                    let key = match next() % 10 {
                        9 => "x".repeat(60 + (next() % 120) as usize),
                        k => KEYS[k as usize % KEYS.len()].to_string(),
                    };
                    out.push_str(&format!("\"{key}\":"));
                    random_doc(next, depth + 1, out);
                }
                out.push('}');
            }
            _ => {
                out.push('[');
                for m in 0..next() % 4 {
                    if m > 0 {
                        out.push(',');
                    }
                    random_doc(next, depth + 1, out);
                }
                out.push(']');
            }
        }
    }

    /// The kept rendering gives what rendering every segment gives, at every value of random
    /// documents, after any prefix (up to past a path's length), with keys labelled on the way.
    #[test]
    fn a_kept_rendering_equals_rendering_every_segment() {
        let mut next = crate::detect::tests::xorshift(0x9A7B_0000_0000_0003);
        let mut values = 0;
        for _ in 0..3000 {
            let mut doc = String::new();
            random_doc(&mut next, 0, &mut doc);
            let mut path = PathStack::default();
            walk(doc.as_bytes(), &mut path, |p, _| {
                if next().is_multiple_of(7) {
                    p.label_key(Arc::from("email"));
                }
                for _ in 0..2 {
                    let prefix = "$".repeat(
                        1 + (next() % 300) as usize * usize::from(next().is_multiple_of(4)),
                    );
                    let (mut kept, mut plain) = (prefix.clone(), prefix);
                    p.render_into(doc.as_bytes(), &mut kept);
                    p.render_plain(doc.as_bytes(), &mut plain);
                    assert_eq!(kept, plain, "{doc}");
                    values += 1;
                }
            })
            .expect("valid JSON");
        }
        assert!(values > 10_000, "{values}");
        // Deep documents: the kept rendering itself grows past a path's length (and stops),
        // then indices and labels change below and above where it stopped.
        for depth in [90, 150, 240] {
            let mut doc = String::new();
            for k in 0..depth {
                doc.push_str(if k % 2 == 0 { "{\"key\":" } else { "[1," });
            }
            doc.push_str("\"v\"");
            for k in (0..depth).rev() {
                doc.push_str(if k % 2 == 0 {
                    ",\"z\":2}"
                } else {
                    ",[3,{\"y\":4}]]"
                });
            }
            let mut path = PathStack::default();
            let mut long = 0;
            walk(doc.as_bytes(), &mut path, |p, _| {
                if next().is_multiple_of(5) {
                    p.label_key(Arc::from("email"));
                }
                let (mut kept, mut plain) = (String::from("$"), String::from("$"));
                p.render_into(doc.as_bytes(), &mut kept);
                p.render_plain(doc.as_bytes(), &mut plain);
                assert_eq!(kept, plain);
                long += usize::from(plain.len() > jsonpath::MAX_RENDERED_PATH);
            })
            .expect("valid JSON");
            assert!(long > 10, "{depth}: {long}");
        }
    }
    use super::*;

    /// `escape_into` as it was, a character at a time.
    fn escape_reference(s: &str, out: &mut Vec<u8>) {
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
    }

    /// Every character below 0x80 alone, and random strings of controls, quotes, backslashes,
    /// DEL and characters of two to four bytes (U+2028 too), appended to a buffer that already
    /// holds bytes: the same output as the character-at-a-time escaping.
    #[test]
    fn escaping_in_runs_equals_escaping_each_character() {
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        let chars: Vec<char> = (0u8..0x20)
            .map(char::from)
            .chain([
                '"', '\\', 'a', 'Z', ' ', '\u{7f}', 'é', '\u{2028}', '€', '😀',
            ])
            .collect();
        let mut next = crate::detect::tests::xorshift(0xE5CA_9E00_0000_0001);
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            texts.push(
                (0..n)
                    .map(|_| chars[(next() % chars.len() as u64) as usize])
                    .collect(),
            );
        }
        for t in &texts {
            let (mut got, mut want) = (b"x".to_vec(), b"x".to_vec());
            escape_into(t, &mut got);
            escape_reference(t, &mut want);
            assert_eq!(got, want, "{t:?}");
        }
    }

    /// The straightforward string scanner (memchr, then a second pass for control
    /// characters) that `scan_string` must agree with.
    fn scan_string_reference(body: &[u8], i: usize) -> Result<(usize, bool), SyntaxError> {
        let mut j = i + 1;
        let mut escaped = false;
        loop {
            let Some(off) = memchr::memchr2(b'"', b'\\', &body[j..]) else {
                return Err(SyntaxError {
                    offset: i,
                    message: "unterminated string",
                });
            };
            // Raw control characters are not allowed in JSON strings (checked branch-free).
            let segment = &body[j..j + off];
            if segment.iter().fold(false, |acc, &b| acc | (b < 0x20)) {
                let at = j + segment.iter().position(|&b| b < 0x20).unwrap_or(0);
                return Err(SyntaxError {
                    offset: at,
                    message: "control character in string",
                });
            }
            j += off;
            if body[j] == b'"' {
                return Ok((j + 1, escaped));
            }
            escaped = true;
            if j + 1 >= body.len() {
                return Err(SyntaxError {
                    offset: j,
                    message: "unterminated string",
                });
            }
            if body[j + 1] < 0x20 {
                return Err(SyntaxError {
                    offset: j + 1,
                    message: "control character in string",
                });
            }
            j += 2;
        }
    }

    fn collect(body: &str) -> Result<Vec<(String, Kind, String)>, SyntaxError> {
        let mut path = PathStack::default();
        let mut out = Vec::new();
        walk(body.as_bytes(), &mut path, |p, v| {
            if matches!(v.kind, Kind::Key { .. }) {
                return;
            }
            let steps = p.steps(body.as_bytes());
            out.push((
                crate::jsonpath::render(&steps),
                v.kind,
                body[v.outer_start..v.outer_end].to_string(),
            ));
        })?;
        Ok(out)
    }

    #[test]
    fn walks_paths_and_spans() {
        let v = collect(r#" {"a": [1, {"b\u0041": "x\"y"}], "c": true} "#).unwrap();
        let paths: Vec<&str> = v.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(paths, ["$.a[0]", "$.a[1].bA", "$.a[1]", "$.a", "$.c", "$"]);
        assert_eq!(v[1].2, r#""x\"y""#);
        assert_eq!(v[3].1, Kind::Array { len: 2 });
    }

    #[test]
    fn string_scanner_agrees_with_the_reference() {
        // Random strings over the bytes that matter (quote, backslash, control characters,
        // high bytes) at every length and alignment around the 8-byte words.
        let alphabet = [
            b'"', b'\\', 0x00, 0x1f, 0x20, b'a', 0x7f, 0x80, 0xff, b'u', b'0',
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let mut body = vec![b'"'];
            for _ in 0..len {
                let r = next();
                // Mostly plain letters, so strings run long enough to cross words.
                body.push(if r % 4 == 0 {
                    alphabet[(r >> 8) as usize % alphabet.len()]
                } else {
                    b'a' + (r >> 16) as u8 % 26
                });
            }
            let got = scan_string(&body, 0).map_err(|e| (e.offset, e.message));
            let want = scan_string_reference(&body, 0).map_err(|e| (e.offset, e.message));
            assert_eq!(got, want, "{body:?}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "\"abc",
            "[1] x",
            "{\"a\":1,}",
            "tru",
            "\"\u{1}\"",
        ] {
            assert!(collect(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(collect(&deep).unwrap_err().message, "nesting too deep");
    }

    #[test]
    fn lossy_decoding_keeps_bad_escapes_and_goes_on() {
        let mut out = Vec::new();
        let mut map = Vec::new();
        let bad = decode_lossy(
            br"SSN 536\u0020x C:\Users\ada \ud800 \u+123 \",
            &mut out,
            Some(&mut map),
        );
        assert!(bad);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SSN 536 x C:\\Users\\ada \u{FFFD} \\u+123 \\"
        );
        assert_eq!(
            map.len(),
            "SSN 536 x C:\\Users\\ada \u{FFFD} \\u+123 \\".len() + 1
        );
        assert!(decode_string(br"C:\Users", &mut Vec::new(), None).is_err());
    }

    #[test]
    fn decodes_with_offsets() {
        let mut out = Vec::new();
        let mut map = Vec::new();
        decode_string(br"a\u0040b\n\uD83D\uDE00", &mut out, Some(&mut map)).unwrap();
        assert_eq!(std::str::from_utf8(&out).unwrap(), "a@b\n\u{1F600}");
        assert_eq!(&map[..4], &[0, 1, 7, 8]);
        assert_eq!(*map.last().unwrap(), 22);
    }
}
