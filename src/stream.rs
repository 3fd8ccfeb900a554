//! Streaming inspection: bodies larger than the proxy's buffer, inspected chunk by chunk in
//! bounded memory.
//!
//! A [`StreamInspector`] is fed the body of one direction of one stream as it arrives and hands
//! back the bytes that are safe to forward. It cuts the body into units that
//! [`Policy::inspect`] can judge alone, so detection, actions, scopes and record limits are the
//! ones of the buffered path:
//!
//! * **NDJSON / JSON Lines**: one line at a time.
//! * **JSON with a record array** (a top-level array, or the array at the route's `maxRecords`
//!   path such as `{"items": [...]}`): the JSON before the array, each element, and the JSON
//!   after it. Each unit is inspected inside a synthetic document that restores its path
//!   (`{"items":[` element `]}`), so field rules such as `$.items[*].card` apply; the synthetic
//!   bytes are removed again from the result.
//! * **Everything else** (text, forms, JSON without a record array, a record too large with
//!   `onError: allow`): a sliding window. After each scan only the bytes up to `window_bytes`
//!   before the end are released, and never inside a finding, so a value cut by a chunk boundary
//!   is seen whole on the next scan. A little already-released text is kept in front as context
//!   (key names like `password=` or `DOB:` before a value).
//!
//! A block may come after bytes have left: the engine reports it ([`StreamVerdict::Block`]) and
//! from then on releases nothing; the filter resets the stream (see `docs/DESIGN.md`,
//! "Streaming").

use std::borrow::Cow;

use crate::inspect::{Block, Decision, Exchange, Finding, Inspection, Reason};
use crate::jsonpath::{self, Step};
use crate::manifest::{ActionKind, BodyKind, ErrorAction, Mode};
use crate::policy::{Direction, Plan, Policy, RouteId};

/// Memory and work limits of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The largest unit held whole: an NDJSON line, an array element, or the JSON before or after
    /// the record array. A larger record follows `onError` (block, or fall back to the window).
    pub max_record_bytes: usize,
    /// Text window: bytes kept back after each scan. Must exceed the longest value to be found
    /// across a chunk boundary (a PEM private key is about 3 KiB).
    pub window_bytes: usize,
    /// Findings kept for [`StreamInspector::findings`]; more are only counted.
    pub max_findings: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_record_bytes: 1 << 20,
            window_bytes: 8 << 10,
            max_findings: 1000,
        }
    }
}

impl StreamLimits {
    /// The most [`StreamInspector::held_bytes`] can reach with these limits.
    pub fn max_held_bytes(&self) -> usize {
        let w = self.window();
        self.max_record_bytes.max(3 * w).saturating_add(w)
    }

    fn window(&self) -> usize {
        self.window_bytes.max(MIN_WINDOW)
    }
}

/// What to do with the stream after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamVerdict {
    /// Forward what was appended to `out` and go on.
    Continue,
    /// Stop: forward nothing more (the bytes already released stay released). Sticky: every
    /// later call returns the same block.
    Block(Block),
}

/// Inspects one body direction chunk by chunk. Created by [`Policy::stream`].
#[derive(Debug)]
pub struct StreamInspector {
    policy: Policy,
    route: RouteId,
    direction: Direction,
    content_type: Option<String>,
    scopes: Vec<String>,
    limits: StreamLimits,
    mode: Mode,
    /// Whether the route inspects this direction at all.
    inspects: bool,
    on_error: ErrorAction,
    forced_kind: Option<BodyKind>,
    max_records: Option<u64>,
    max_body_bytes: Option<u64>,
    state: State,
    /// Bytes not yet released (plus, in text mode, `context` released bytes in front).
    held: Vec<u8>,
    /// Stream offset of `held[0]`.
    base: u64,
    bytes_in: u64,
    bytes_out: u64,
    records: u64,
    findings: Vec<Finding>,
    findings_total: u64,
    blocked: Option<Block>,
    would_block: Option<Block>,
    error: Option<String>,
    finished: bool,
}

#[derive(Debug)]
enum State {
    /// Undecided: waiting for the first non-blank byte of a body with no declared type.
    Sniff,
    Lines,
    Json(Box<JsonStream>),
    Text {
        context: usize,
    },
}

/// The smallest window: shorter values than this exist (emails, cards, keys).
const MIN_WINDOW: usize = 256;
/// Released text kept in front of the window for key names and context words.
const LOOKBEHIND: usize = 256;
/// The text cut prefers a whitespace this close before it.
const CUT_SLACK: usize = 128;
/// Deeper JSON is read as text (the walker refuses it anyway).
const MAX_DEPTH: usize = 256;
/// Longer keys above the record array make the document text.
const MAX_KEY: usize = 4096;

impl Policy {
    /// A streaming inspector for one direction of one stream (see [`StreamInspector`]).
    pub fn stream(
        &self,
        route: RouteId,
        direction: Direction,
        content_type: Option<&str>,
        scopes: &[String],
        limits: StreamLimits,
    ) -> StreamInspector {
        let plan: Option<&Plan> = self
            .inner
            .routes
            .get(route.0)
            .and_then(|r| r.plan(direction));
        let forced_kind = plan.and_then(|p| p.body_kind);
        let kind = forced_kind.or_else(|| content_type.map(BodyKind::from_content_type));
        let scope = plan.and_then(|p| p.scope.as_ref());
        StreamInspector {
            policy: self.clone(),
            route,
            direction,
            content_type: content_type.map(str::to_string),
            scopes: scopes.to_vec(),
            limits,
            mode: self.mode(route),
            inspects: plan.is_some(),
            on_error: plan.map_or(ErrorAction::Block, |p| p.on_error),
            forced_kind,
            max_records: scope.and_then(|s| s.max_records.as_ref()).map(|(_, m)| *m),
            max_body_bytes: scope.and_then(|s| s.max_body_bytes),
            state: match kind {
                None => State::Sniff,
                Some(BodyKind::Ndjson) => State::Lines,
                Some(BodyKind::Json) => State::Json(Box::default()),
                Some(BodyKind::Text | BodyKind::Form) => State::Text { context: 0 },
            },
            held: Vec::new(),
            base: 0,
            bytes_in: 0,
            bytes_out: 0,
            records: 0,
            findings: Vec::new(),
            findings_total: 0,
            blocked: None,
            would_block: None,
            error: None,
            finished: false,
        }
    }
}

impl StreamInspector {
    /// Inspects a chunk; appends to `out` the bytes that are safe to forward now (inspected and
    /// rewritten). Bytes that may still be part of a value stay held (see
    /// [`StreamLimits::max_held_bytes`]).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> StreamVerdict {
        if let Some(b) = self.blocked {
            return StreamVerdict::Block(b);
        }
        if self.finished {
            return StreamVerdict::Continue;
        }
        if !self.inspects {
            self.bytes_in += chunk.len() as u64;
            self.emit(chunk, out);
            return StreamVerdict::Continue;
        }
        // In slices, so what is held never exceeds a limit by more than one slice.
        for slice in chunk.chunks(self.limits.window()) {
            self.bytes_in += slice.len() as u64;
            if let Some(max) = self.max_body_bytes {
                if self.bytes_in > max {
                    self.fail(Reason::BodyTooLarge, "body exceeds maxBodyBytes".into());
                    if let Some(b) = self.blocked {
                        return StreamVerdict::Block(b);
                    }
                }
            }
            self.held.extend_from_slice(slice);
            if let Err(b) = self.step(out, false) {
                self.blocked = Some(b);
                self.held = Vec::new();
                return StreamVerdict::Block(b);
            }
        }
        StreamVerdict::Continue
    }

    /// End of stream: inspects and releases everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> StreamVerdict {
        if let Some(b) = self.blocked {
            return StreamVerdict::Block(b);
        }
        if self.finished {
            return StreamVerdict::Continue;
        }
        self.finished = true;
        if let Err(b) = self.step(out, true) {
            self.blocked = Some(b);
            self.held = Vec::new();
            return StreamVerdict::Block(b);
        }
        StreamVerdict::Continue
    }

    /// The first findings (at most `max_findings`), with spans as offsets in the stream.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Every finding, including those not kept.
    pub fn findings_total(&self) -> u64 {
        self.findings_total
    }

    /// Records seen (NDJSON lines, elements of the record array).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes pushed so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes released so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out
    }

    /// Bytes held now (for the memory budget).
    pub fn held_bytes(&self) -> usize {
        self.held.len()
            + match &self.state {
                State::Json(j) => j.stack.iter().map(|f| f.key.len()).sum(),
                _ => 0,
            }
    }

    /// The block enforce mode applied, if any.
    pub fn blocked(&self) -> Option<Block> {
        self.blocked
    }

    /// In monitor mode, the block enforce mode would have applied (the stream goes on).
    pub fn would_block(&self) -> Option<Block> {
        self.would_block.or(self.blocked)
    }

    /// The first body error (malformed, oversize record), described without values.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The route's mode: in monitor mode nothing is rewritten or blocked.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.bytes_out += bytes.len() as u64;
        out.extend_from_slice(bytes);
    }

    /// A body error: per `onError`, block (`Err`) or go on as text.
    fn fail(&mut self, reason: Reason, message: String) {
        self.error.get_or_insert(message);
        let block = Block::new(reason, self.direction);
        match (self.mode, reason) {
            (Mode::Monitor, _) => {
                self.would_block.get_or_insert(block);
            }
            // A size limit is a limit, whatever onError says.
            (Mode::Enforce, Reason::BodyTooLarge | Reason::TooManyRecords) => {
                self.blocked.get_or_insert(block);
            }
            (Mode::Enforce, _) if self.on_error == ErrorAction::Block => {
                self.blocked.get_or_insert(block);
            }
            _ => {}
        }
    }

    fn step(&mut self, out: &mut Vec<u8>, last: bool) -> Result<(), Block> {
        loop {
            let next = match &mut self.state {
                State::Sniff => match self.held.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'{' | b'[') => State::Json(Box::default()),
                    Some(_) => State::Text { context: 0 },
                    None if last => State::Text { context: 0 },
                    None => return Ok(()),
                },
                State::Lines => return self.lines(out, last),
                State::Json(_) => match self.json(out, last)? {
                    None => return Ok(()),
                    Some(next) => next,
                },
                State::Text { .. } => return self.text(out, last),
            };
            self.state = next;
        }
    }

    /// Inspects one unit; `Some(body)` if enforce mode rewrites it, `None` to release it as is.
    fn inspect(&mut self, body: &[u8], content_type: Option<&str>) -> Result<Inspection, Block> {
        let insp = self.policy.inspect(&Exchange {
            route: self.route,
            direction: self.direction,
            content_type,
            scopes: &self.scopes,
            body,
        });
        if let Some(e) = &insp.error {
            self.error.get_or_insert_with(|| e.clone());
        }
        if let Decision::Block(b) = insp.decision {
            match self.mode {
                Mode::Enforce => return Err(b),
                Mode::Monitor => {
                    self.would_block.get_or_insert(b);
                }
            }
        }
        Ok(insp)
    }

    fn keep_findings(
        &mut self,
        insp: &Inspection,
        skip_before: usize,
        offset: u64,
        index: Option<(&str, u64)>,
    ) {
        for f in &insp.findings {
            if f.start < skip_before {
                continue;
            }
            self.findings_total += 1;
            if self.findings.len() >= self.limits.max_findings {
                continue;
            }
            let mut f = f.clone();
            let shift = |p: usize| offset.saturating_add(p.saturating_sub(skip_before) as u64);
            f.start = usize::try_from(shift(f.start)).unwrap_or(usize::MAX);
            f.end = usize::try_from(shift(f.end)).unwrap_or(usize::MAX);
            if let (Some((prefix, i)), Some(path)) = (index, f.path.as_mut()) {
                // `$.items[0].card` in the synthetic document is `$.items[i].card`.
                if let Some(rest) = path.strip_prefix(prefix) {
                    let head = prefix.strip_suffix("[0]").unwrap_or(prefix);
                    *path = format!("{head}[{i}]{rest}").into();
                }
            }
            self.findings.push(f);
        }
    }

    fn count_record(&mut self) -> Result<(), Block> {
        self.records += 1;
        if self.max_records.is_some_and(|max| self.records > max) {
            self.fail(
                Reason::TooManyRecords,
                format!("more than {} records", self.records - 1),
            );
            if let Some(b) = self.blocked {
                return Err(b);
            }
        }
        Ok(())
    }

    /// A record over `max_record_bytes`: block per `onError`, or go on as text.
    fn oversize_record(&mut self) -> Result<(), Block> {
        let message = format!("a record exceeds {} bytes", self.limits.max_record_bytes);
        if self.on_error == ErrorAction::Block {
            self.fail(Reason::BodyTooLarge, message);
            if let Some(b) = self.blocked {
                return Err(b);
            }
        } else {
            self.error.get_or_insert(message);
        }
        // onError: allow (or monitor mode, where nothing blocks): the rest is read as text.
        self.state = State::Text { context: 0 };
        Ok(())
    }

    // ---- NDJSON -------------------------------------------------------------------------

    fn lines(&mut self, out: &mut Vec<u8>, last: bool) -> Result<(), Block> {
        let content_type = self.content_type.clone();
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &self.held[start..]) {
            let end = start + nl + 1;
            self.line(start, end, content_type.as_deref(), out)?;
            start = end;
        }
        if last && start < self.held.len() {
            let end = self.held.len();
            self.line(start, end, content_type.as_deref(), out)?;
            start = end;
        }
        self.held.drain(..start);
        self.base += start as u64;
        if self.held.len() > self.limits.max_record_bytes {
            self.oversize_record()?;
            return self.text(out, last);
        }
        Ok(())
    }

    fn line(
        &mut self,
        start: usize,
        end: usize,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<(), Block> {
        let line = std::mem::take(&mut self.held);
        let result = self.line_inner(&line[start..end], start, content_type, out);
        self.held = line;
        result
    }

    fn line_inner(
        &mut self,
        line: &[u8],
        start: usize,
        content_type: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<(), Block> {
        if line.iter().all(u8::is_ascii_whitespace) {
            self.emit(line, out);
            return Ok(());
        }
        self.count_record()?;
        // Without a declared type the stream was sniffed: say what it is.
        let ct = content_type.or(Some("application/x-ndjson"));
        let insp = self.inspect(line, ct)?;
        self.keep_findings(&insp, 0, self.base + start as u64, None);
        match insp.effective() {
            Decision::Rewrite(body) => {
                let body = body.clone();
                self.emit(&body, out);
            }
            _ => self.emit(line, out),
        }
        Ok(())
    }

    // ---- JSON ---------------------------------------------------------------------------

    /// Runs the JSON state machine over what is held; `Some(state)` to switch mode.
    fn json(&mut self, out: &mut Vec<u8>, last: bool) -> Result<Option<State>, Block> {
        let State::Json(j) = &mut self.state else {
            return Ok(None);
        };
        let mut j = std::mem::take(j);
        let result = self.json_inner(&mut j, out, last);
        if let State::Json(slot) = &mut self.state {
            *slot = j;
        }
        result
    }

    fn json_inner(
        &mut self,
        j: &mut JsonStream,
        out: &mut Vec<u8>,
        last: bool,
    ) -> Result<Option<State>, Block> {
        let max = self.limits.max_record_bytes;
        let mut i = j.scanned;
        while i < self.held.len() {
            let b = self.held[i];
            match j.lex(b, i, &self.held) {
                Lexed::Plain => {}
                Lexed::TooDeep => return Ok(Some(State::Text { context: 0 })),
                Lexed::OpenArray if j.phase == Phase::Prefix => {
                    let steps_owned = j.path_keys();
                    let steps: Vec<Step<'_>> = steps_owned
                        .iter()
                        .map(|s| match s {
                            PathKey::Key(k) => Step::Key(k),
                            PathKey::Index(n) => Step::Index(*n),
                        })
                        .collect();
                    let is_records = match self
                        .policy
                        .inner
                        .routes
                        .get(self.route.0)
                        .and_then(|r| r.plan(self.direction))
                        .and_then(|p| p.scope.as_ref())
                        .and_then(|s| s.max_records.as_ref())
                    {
                        Some((path, _)) => path.matches(&steps),
                        // No declared record path: a top-level array, or an array member of
                        // the top-level object (`{"data": [...]}`), whichever comes first.
                        None => matches!(steps.as_slice(), [] | [Step::Key(_)]),
                    };
                    if is_records {
                        // Release the JSON before the array (with the array's `[`).
                        let prefix_end = i + 1;
                        let mut closer = Vec::new();
                        j.closer(&mut closer);
                        let mut doc = self.held[..prefix_end].to_vec();
                        doc.extend_from_slice(&closer);
                        let released = self.synthetic(&doc, 0, closer.len(), self.base, None)?;
                        match released {
                            Some(body) => self.emit(&body, out),
                            None => {
                                let raw = self.held[..prefix_end].to_vec();
                                self.emit(&raw, out);
                            }
                        }
                        j.opener = j.opener_bytes();
                        j.closer = closer;
                        // The synthetic document puts every array's element at index 0.
                        let mut index_steps: Vec<Step<'_>> = steps
                            .iter()
                            .map(|s| match s {
                                Step::Index(_) => Step::Index(0),
                                key => *key,
                            })
                            .collect();
                        index_steps.push(Step::Index(0));
                        j.path_prefix = jsonpath::render(&index_steps);
                        j.record_depth = j.stack.len();
                        j.phase = Phase::Elements;
                        j.elem_start = None;
                        self.held.drain(..prefix_end);
                        self.base += prefix_end as u64;
                        i = 0;
                        continue;
                    }
                }
                Lexed::OpenArray => {}
                Lexed::ElementStart => j.elem_start = Some(i),
                Lexed::ElementEnd { closes_array } => {
                    if let Some(start) = j.elem_start.take() {
                        let end = start
                            + self.held[start..i]
                                .iter()
                                .rposition(|b| !b.is_ascii_whitespace())
                                .map_or(0, |p| p + 1);
                        self.element(j, start, end, out)?;
                        i -= end;
                    }
                    if closes_array {
                        j.phase = Phase::Suffix;
                    }
                }
                Lexed::KeyTooLong => return Ok(Some(State::Text { context: 0 })),
            }
            i += 1;
        }
        j.scanned = i;
        let unit = match (j.phase, j.elem_start) {
            (Phase::Elements, Some(start)) => self.held.len() - start,
            _ => self.held.len(),
        };
        if unit > max {
            match j.phase {
                // An element too large: onError.
                Phase::Elements => {
                    self.oversize_record()?;
                    return Ok(Some(State::Text { context: 0 }));
                }
                // No record array (yet): this JSON is read as text.
                Phase::Prefix | Phase::Suffix => return Ok(Some(State::Text { context: 0 })),
            }
        }
        if last {
            match j.phase {
                Phase::Prefix => {
                    // Small enough to be one document after all.
                    let held = std::mem::take(&mut self.held);
                    let ct = self.content_type.clone();
                    let insp = self.inspect(&held, ct.as_deref())?;
                    self.keep_findings(&insp, 0, self.base, None);
                    match insp.effective() {
                        Decision::Rewrite(body) => {
                            let body = body.clone();
                            self.emit(&body, out)
                        }
                        _ => self.emit(&held, out),
                    }
                    self.base += held.len() as u64;
                }
                Phase::Suffix => {
                    let mut doc = j.opener.clone();
                    doc.extend_from_slice(&self.held);
                    let skip = j.opener.len();
                    let released = self.synthetic(&doc, skip, 0, self.base, None)?;
                    let held = std::mem::take(&mut self.held);
                    self.emit(released.as_deref().unwrap_or(&held), out);
                    self.base += held.len() as u64;
                }
                Phase::Elements => {
                    // The body ended inside the array: truncated or malformed.
                    self.fail(
                        Reason::MalformedBody,
                        "JSON body ends inside its array".into(),
                    );
                    if let Some(b) = self.blocked {
                        return Err(b);
                    }
                    return Ok(Some(State::Text { context: 0 }));
                }
            }
        }
        Ok(None)
    }

    fn element(
        &mut self,
        j: &mut JsonStream,
        start: usize,
        end: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Block> {
        self.count_record()?;
        let mut doc = j.opener.clone();
        doc.extend_from_slice(&self.held[start..end]);
        doc.extend_from_slice(&j.closer);
        let index = self.records - 1;
        let prefix = j.path_prefix.clone();
        let released = self.synthetic(
            &doc,
            j.opener.len(),
            j.closer.len(),
            self.base + start as u64,
            Some((&prefix, index)),
        )?;
        let element: Cow<'_, [u8]> = match released {
            Some(body) => Cow::Owned(body),
            None => Cow::Borrowed(&self.held[start..end]),
        };
        let element = element.into_owned();
        if !element.iter().all(u8::is_ascii_whitespace) {
            let sep = &self.held[..start];
            let sep: Vec<u8> = if j.emitted_any {
                sep.to_vec()
            } else {
                // Elements before this one were dropped: their comma goes with them.
                match sep.iter().position(|b| *b == b',') {
                    Some(p) => [&sep[..p], &sep[p + 1..]].concat(),
                    None => sep.to_vec(),
                }
            };
            self.emit(&sep, out);
            self.emit(&element, out);
            j.emitted_any = true;
        }
        self.held.drain(..end);
        self.base += end as u64;
        Ok(())
    }

    /// Inspects `doc`, a unit wrapped in `skip` synthetic bytes before and `trim` after; returns
    /// the rewritten unit, or `None` to release it unchanged.
    fn synthetic(
        &mut self,
        doc: &[u8],
        skip: usize,
        trim: usize,
        offset: u64,
        index: Option<(&str, u64)>,
    ) -> Result<Option<Vec<u8>>, Block> {
        let insp = self.inspect(doc, Some("application/json"))?;
        if insp.error.is_some() && self.on_error == ErrorAction::Allow {
            // A malformed unit with onError: allow would pass unscanned: scan it as text.
            let unit = &doc[skip..doc.len() - trim];
            let insp = self.inspect(unit, Some("text/plain"))?;
            self.keep_findings(&insp, 0, offset, None);
            return Ok(match insp.effective() {
                Decision::Rewrite(body) => Some(body.clone()),
                _ => None,
            });
        }
        self.keep_findings(&insp, skip, offset, index);
        match insp.effective() {
            Decision::Rewrite(body) => {
                let (head, tail) = (&doc[..skip], &doc[doc.len() - trim..]);
                if body.len() >= skip + trim && body.starts_with(head) && body.ends_with(tail) {
                    Ok(Some(body[skip..body.len() - trim].to_vec()))
                } else {
                    // A rule rewrote the synthetic part (e.g. a drop of the whole array):
                    // the unit cannot be cut out of the result, so nothing is released.
                    self.error
                        .get_or_insert_with(|| "a rewrite reached outside a record".into());
                    Err(Block::new(Reason::TransformFailed, self.direction))
                }
            }
            _ => Ok(None),
        }
    }

    // ---- text window --------------------------------------------------------------------

    fn text(&mut self, out: &mut Vec<u8>, last: bool) -> Result<(), Block> {
        let w = self.limits.window();
        loop {
            let State::Text { context } = self.state else {
                return Ok(());
            };
            let pending = self.held.len() - context;
            if pending == 0 || (!last && pending < 2 * w) {
                return Ok(());
            }
            self.text_step(context, out, last)?;
            if last {
                return Ok(());
            }
        }
    }

    fn text_content_type(&self) -> Option<String> {
        match self.forced_kind {
            Some(BodyKind::Text | BodyKind::Form) => self.content_type.clone(),
            _ => match self
                .content_type
                .as_deref()
                .map(BodyKind::from_content_type)
            {
                Some(BodyKind::Form) => self.content_type.clone(),
                _ => Some("text/plain".to_string()),
            },
        }
    }

    fn text_step(&mut self, context: usize, out: &mut Vec<u8>, last: bool) -> Result<(), Block> {
        let w = self.limits.window();
        let ct = self.text_content_type();
        let held = std::mem::take(&mut self.held);
        let result = (|| {
            // Pass 1: where may the cut go?
            let first = self.inspect(&held, ct.as_deref())?;
            let mut cut = if last { held.len() } else { held.len() - w };
            if !last {
                let floor = cut.saturating_sub(CUT_SLACK).max(context);
                let slack = held.get(floor..cut).unwrap_or_default();
                if let Some(p) = slack.iter().rposition(u8::is_ascii_whitespace) {
                    cut = floor + p + 1;
                }
            }
            // Never inside a finding: before it, or after it when it starts in the context.
            for _ in 0..4 {
                let straddling = first.findings.iter().find(|f| f.start < cut && f.end > cut);
                match straddling {
                    Some(f) if f.start > context => cut = f.start,
                    Some(f) => cut = f.end,
                    None => break,
                }
            }
            cut = cut.clamp(context, held.len());
            // A value whose head was released already (only a value longer than the window,
            // or one recognised late, can do that): its tail must not follow unredacted.
            if first
                .findings
                .iter()
                .any(|f| f.start < context && f.end > context && f.action != ActionKind::Allow)
                && self.mode == Mode::Enforce
            {
                self.error
                    .get_or_insert_with(|| "a value straddles released text".into());
                return Err(Block::new(Reason::TransformFailed, self.direction));
            }
            // Context with findings would be rewritten again: start after the last one.
            let mut from = first
                .findings
                .iter()
                .filter(|f| f.start < context)
                .map(|f| f.end)
                .max()
                .unwrap_or(0)
                .min(context);
            // Pass 2: the released part, with its context.
            let mut second = None;
            for _ in 0..3 {
                let insp = self.inspect(&held[from..cut], ct.as_deref())?;
                let edits_context = insp
                    .findings
                    .iter()
                    .filter(|f| f.start < context - from && f.action != ActionKind::Allow)
                    .map(|f| f.end.min(context - from))
                    .max();
                match edits_context {
                    Some(end) if from + end > from => from += end,
                    _ => {
                        second = Some(insp);
                        break;
                    }
                }
            }
            let second = match second {
                Some(s) => s,
                None => {
                    from = context;
                    self.inspect(&held[from..cut], ct.as_deref())?
                }
            };
            let skip = context - from;
            self.keep_findings(&second, skip, self.base + context as u64, None);
            let released: Vec<u8> = match second.effective() {
                Decision::Rewrite(body) if body.starts_with(&held[from..context]) => {
                    body[skip..].to_vec()
                }
                Decision::Rewrite(_) => {
                    return Err(Block::new(Reason::TransformFailed, self.direction));
                }
                _ => held[context..cut].to_vec(),
            };
            self.emit(&released, out);
            Ok(cut)
        })();
        self.held = held;
        let cut = result?;
        // Keep a little released text as context for the next scan.
        let keep_from = cut.saturating_sub(LOOKBEHIND.min(w));
        self.held.drain(..keep_from);
        self.base += keep_from as u64;
        self.state = State::Text {
            context: cut - keep_from,
        };
        if last {
            self.held.clear();
            self.state = State::Text { context: 0 };
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Before the record array: held whole (up to `max_record_bytes`).
    #[default]
    Prefix,
    /// Inside the record array: one element at a time.
    Elements,
    /// After it: held whole.
    Suffix,
}

#[derive(Debug, Default)]
struct Frame {
    array: bool,
    /// Objects: the raw current key, with its quotes.
    key: Vec<u8>,
    /// Arrays: the index of the current element.
    index: usize,
}

enum PathKey {
    Key(String),
    Index(usize),
}

/// An incremental JSON lexer that knows just enough structure to cut records: containers,
/// strings (and escapes), keys, and element boundaries at the record array's depth. It does not
/// validate; each unit is validated by the inspection it goes through.
#[derive(Debug, Default)]
struct JsonStream {
    phase: Phase,
    stack: Vec<Frame>,
    in_string: bool,
    escape: bool,
    key_start: Option<usize>,
    expect_key: bool,
    /// Depth of the record array (stack length inside it).
    record_depth: usize,
    elem_start: Option<usize>,
    emitted_any: bool,
    opener: Vec<u8>,
    closer: Vec<u8>,
    path_prefix: String,
    /// How far `held` has been lexed.
    scanned: usize,
}

enum Lexed {
    Plain,
    OpenArray,
    ElementStart,
    ElementEnd { closes_array: bool },
    TooDeep,
    KeyTooLong,
}

impl JsonStream {
    fn in_records(&self) -> bool {
        self.phase == Phase::Elements && self.stack.len() == self.record_depth
    }

    fn lex(&mut self, b: u8, i: usize, held: &[u8]) -> Lexed {
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                if let Some(start) = self.key_start.take() {
                    if i + 1 - start > MAX_KEY {
                        return Lexed::KeyTooLong;
                    }
                    if let Some(top) = self.stack.last_mut() {
                        top.key.clear();
                        top.key.extend_from_slice(&held[start..=i]);
                    }
                }
            }
            return Lexed::Plain;
        }
        if b.is_ascii_whitespace() {
            return Lexed::Plain;
        }
        if self.in_records() {
            match b {
                b',' => {
                    if let Some(top) = self.stack.last_mut() {
                        top.index += 1;
                    }
                    return Lexed::ElementEnd {
                        closes_array: false,
                    };
                }
                b']' => {
                    self.stack.pop();
                    return Lexed::ElementEnd { closes_array: true };
                }
                _ if self.elem_start.is_none() => {
                    // The element's first byte; it opens a container or string as well.
                    return match self.structural(b, i) {
                        Lexed::TooDeep => Lexed::TooDeep,
                        _ => Lexed::ElementStart,
                    };
                }
                _ => {}
            }
        }
        self.structural(b, i)
    }

    fn structural(&mut self, b: u8, i: usize) -> Lexed {
        match b {
            b'"' => {
                self.in_string = true;
                if self.expect_key && self.stack.last().is_some_and(|f| !f.array) {
                    self.key_start = Some(i);
                }
            }
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Lexed::TooDeep;
                }
                let array = b == b'[';
                self.stack.push(Frame {
                    array,
                    ..Frame::default()
                });
                self.expect_key = !array;
                if array {
                    return Lexed::OpenArray;
                }
            }
            b'}' | b']' => {
                self.stack.pop();
                self.expect_key = false;
            }
            b',' => match self.stack.last_mut() {
                Some(f) if f.array => f.index += 1,
                Some(_) => self.expect_key = true,
                None => {}
            },
            b':' => self.expect_key = false,
            _ => {}
        }
        Lexed::Plain
    }

    /// The path of the innermost open container.
    fn path_keys(&self) -> Vec<PathKey> {
        let n = self.stack.len().saturating_sub(1);
        self.stack[..n]
            .iter()
            .map(|f| {
                if f.array {
                    PathKey::Index(f.index)
                } else {
                    let key = serde_json::from_slice::<String>(&f.key)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&f.key).into_owned());
                    PathKey::Key(key)
                }
            })
            .collect()
    }

    /// Synthetic JSON that opens every container down to the record array's `[`.
    fn opener_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.stack.len();
        for (d, f) in self.stack.iter().enumerate() {
            if f.array {
                out.push(b'[');
            } else {
                out.push(b'{');
                if d + 1 < n {
                    out.extend_from_slice(&f.key);
                    out.push(b':');
                }
            }
        }
        out
    }

    /// Synthetic JSON that closes every open container.
    fn closer(&self, out: &mut Vec<u8>) {
        for f in self.stack.iter().rev() {
            out.push(if f.array { b']' } else { b'}' });
        }
    }
}

#[cfg(test)]
mod tests;
