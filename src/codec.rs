//! Content-encoding: compressed bodies are decoded before inspection, so compression is never a
//! way around the policy.
//!
//! Every decoder here is pure Rust (it builds for `wasm32-wasip1`) and writes into pieces of
//! output that never add up to more than `limit + 1` bytes: a compression bomb costs at most
//! that, plus the decoder's own window (deflate 32 KiB, brotli at most 16 MiB by its format, zstd
//! capped at [`ZSTD_MAX_WINDOW`]). A body that fits is joined into one buffer at the end. A
//! stream that ends early is `Corrupt`, never "ok with what we got": a
//! truncated body forwarded as complete would be a different document than the one inspected.

use std::io::Read;

/// The largest zstd window accepted. RFC 8878 (3.1.1.1.2) asks HTTP decoders to support 8 MB
/// and allows them to refuse more; the window is allocated up front, so a hostile frame header
/// must not choose it.
pub const ZSTD_MAX_WINDOW: u64 = 8 << 20;

/// Output is produced in steps of this size, so the buffer's capacity tracks what was decoded.
const STEP: usize = 64 << 10;

/// A body that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// An encoding meshdlp does not decode (e.g. `compress`).
    Unsupported(String),
    /// The bytes are not valid for the declared encoding, or the stream ends early.
    Corrupt(String),
    /// Decoded size exceeds the limit (a compression bomb or simply too large).
    TooLarge(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported(e) => write!(f, "unsupported content-encoding `{e}`"),
            DecodeError::Corrupt(e) => write!(f, "corrupt {e} body"),
            DecodeError::TooLarge(n) => write!(f, "decoded body exceeds {n} bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// One content coding meshdlp can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    fn parse(name: &str) -> Option<Coding> {
        match name {
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "deflate" => Some(Coding::Deflate),
            "br" => Some(Coding::Brotli),
            "zstd" => Some(Coding::Zstd),
            _ => None,
        }
    }
}

/// The codings of a `content-encoding` value in the order they were applied, without `identity`.
fn codings(content_encoding: &str) -> impl Iterator<Item = String> + '_ {
    content_encoding
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
}

/// Whether [`decode`] can undo every coding of this `content-encoding` value (`identity` and the
/// empty value included). The filter uses it to decide, before buffering, whether a body can be
/// inspected at all.
///
/// ```
/// assert!(meshdlp::codec::decodable("gzip, br"));
/// assert!(meshdlp::codec::decodable("ZSTD"));
/// assert!(meshdlp::codec::decodable(""));
/// assert!(!meshdlp::codec::decodable("gzip, compress"));
/// ```
pub fn decodable(content_encoding: &str) -> bool {
    codings(content_encoding).all(|c| Coding::parse(&c).is_some())
}

/// Decodes `body` per a `content-encoding` header value (a list, applied in order). `identity`
/// and empty values are no-ops (`Ok(None)`). At most `limit` decoded bytes are produced, at every
/// layer of a stacked encoding.
pub fn decode(
    content_encoding: &str,
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let mut layers = Vec::new();
    for name in codings(content_encoding) {
        // Check every name before decoding anything: an unknown layer fails fast.
        layers.push(Coding::parse(&name).ok_or(DecodeError::Unsupported(name))?);
    }
    let Some((last, inner)) = layers.split_last() else {
        return Ok(None);
    };
    // Codings are listed in the order they were applied: undo them in reverse.
    let mut data = decode_one(*last, body, limit)?;
    for coding in inner.iter().rev() {
        data = decode_one(*coding, &data, limit)?;
    }
    Ok(Some(data))
}

fn decode_one(coding: Coding, input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Output::new(limit);
    match coding {
        Coding::Gzip => gunzip(input, &mut out)?,
        Coding::Deflate => {
            // RFC 9110 deflate is zlib-wrapped; some servers send raw deflate. A raw stream whose
            // first bytes happen to look like a zlib header fails the zlib checks and is retried.
            let mut zlib_ok = false;
            if looks_like_zlib(input) {
                match inflate(input, true, &mut out, "deflate") {
                    Ok(used) => zlib_ok = used == input.len(),
                    Err(e @ DecodeError::TooLarge(_)) => return Err(e),
                    Err(_) => {}
                }
            }
            if !zlib_ok {
                out = Output::new(limit);
                let used = inflate(input, false, &mut out, "deflate")?;
                if used != input.len() {
                    return Err(DecodeError::Corrupt("deflate".into()));
                }
            }
        }
        Coding::Brotli => {
            // The reader reports a stream that ends early as an error (only once: we stop there).
            let reader = brotli_decompressor::Decompressor::new(input, 4096);
            read_limited(reader, &mut out, "br")?;
        }
        Coding::Zstd => zstd(input, &mut out)?,
    }
    Ok(out.into_vec())
}

/// Decoded output, kept in pieces of at most [`STEP`] bytes while it grows: a buffer that grows
/// by reallocation holds the old and the new copy at once, so a bomb would cost about twice the
/// limit. Pieces cost the limit + 1 byte at most; a body that fits is joined once at the end.
struct Output {
    pieces: Vec<Vec<u8>>,
    len: usize,
    limit: usize,
}

impl Output {
    fn new(limit: usize) -> Output {
        Output {
            pieces: Vec::new(),
            len: 0,
            limit,
        }
    }

    /// The piece to write into, with room for at least one byte. `TooLarge` once more than
    /// `limit` bytes were produced.
    fn tail(&mut self) -> Result<&mut Vec<u8>, DecodeError> {
        if self.len > self.limit {
            return Err(DecodeError::TooLarge(self.limit));
        }
        let full = self.pieces.last().is_none_or(|p| p.len() == p.capacity());
        if full {
            // Room for limit + 1 bytes in all: one byte over is how a bomb is recognised.
            let room = (self.limit - self.len).saturating_add(1);
            self.pieces.push(Vec::with_capacity(STEP.min(room)));
        }
        self.pieces
            .last_mut()
            .ok_or(DecodeError::TooLarge(self.limit))
    }

    /// Accounts for `n` bytes just written into the tail.
    fn wrote(&mut self, n: usize) -> Result<(), DecodeError> {
        self.len += n;
        if self.len > self.limit {
            return Err(DecodeError::TooLarge(self.limit));
        }
        Ok(())
    }

    /// The bytes from offset `start` on, piece by piece.
    fn since(&self, start: usize) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        self.pieces.iter().filter_map(move |p| {
            let (from, to) = (at, at + p.len());
            at = to;
            (to > start).then(|| &p[start.saturating_sub(from)..])
        })
    }

    fn into_vec(mut self) -> Vec<u8> {
        if self.pieces.len() == 1 {
            return self.pieces.pop().unwrap_or_default();
        }
        self.pieces.concat()
    }
}

/// Inflates one deflate stream (zlib-wrapped or raw) from the start of `input` into `out`;
/// returns the input bytes used. The stream must end (`StreamEnd`): running out of input first
/// is a truncation.
fn inflate(input: &[u8], zlib: bool, out: &mut Output, name: &str) -> Result<usize, DecodeError> {
    let corrupt = || DecodeError::Corrupt(name.to_string());
    let mut d = flate2::Decompress::new(zlib);
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let pos = usize::try_from(in_before).map_err(|_| corrupt())?;
        let rest = input.get(pos..).ok_or_else(corrupt)?;
        let tail = out.tail()?;
        let room = tail.capacity() - tail.len();
        let status = d
            .decompress_vec(rest, tail, flate2::FlushDecompress::None)
            .map_err(|_| corrupt())?;
        let wrote = usize::try_from(d.total_out() - out_before).map_err(|_| corrupt())?;
        out.wrote(wrote)?;
        if status == flate2::Status::StreamEnd {
            return usize::try_from(d.total_in()).map_err(|_| corrupt());
        }
        if d.total_in() == in_before && wrote == 0 && room > 0 {
            // Room to write and nothing moved: the input ended inside the stream.
            return Err(corrupt());
        }
    }
}

fn looks_like_zlib(input: &[u8]) -> bool {
    match input {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// RFC 1952, every member (concatenated members are one body), CRC and size checked.
fn gunzip(input: &[u8], out: &mut Output) -> Result<(), DecodeError> {
    let corrupt = || DecodeError::Corrupt("gzip".to_string());
    let mut rest = input;
    loop {
        let header = gzip_header_len(rest).ok_or_else(corrupt)?;
        let body = rest.get(header..).ok_or_else(corrupt)?;
        let start = out.len;
        let used = inflate(body, false, out, "gzip")?;
        let trailer = body.get(used..used + 8).ok_or_else(corrupt)?;
        let mut crc = flate2::Crc::new();
        for piece in out.since(start) {
            crc.update(piece);
        }
        let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let want_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc.sum() != want_crc || (out.len - start) as u32 != want_len {
            return Err(corrupt());
        }
        rest = body.get(used + 8..).unwrap_or_default();
        // Another member follows, or padding some servers add; anything else is not gzip.
        if rest.iter().all(|b| *b == 0) {
            return Ok(());
        }
    }
}

/// The length of a gzip member header, or `None` if it is not one.
fn gzip_header_len(b: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if b.len() < 10 || b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 || b[3] & 0xe0 != 0 {
        return None;
    }
    let flags = b[3];
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = usize::from(u16::from_le_bytes([*b.get(pos)?, *b.get(pos + 1)?]));
        pos += 2 + len;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            pos += b.get(pos..)?.iter().position(|c| *c == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    (pos <= b.len()).then_some(pos)
}

/// RFC 8878: one or more frames (skippable frames skipped), each window at most
/// [`ZSTD_MAX_WINDOW`], a frame that declares more content than `limit` refused before decoding.
fn zstd(input: &[u8], out: &mut Output) -> Result<(), DecodeError> {
    let corrupt = || DecodeError::Corrupt("zstd".to_string());
    let limit = out.limit;
    let mut rest = input;
    if rest.is_empty() {
        return Err(corrupt());
    }
    while !rest.is_empty() {
        match zstd_frame_header(rest).ok_or_else(corrupt)? {
            ZstdFrame::Skippable(len) => {
                rest = rest.get(len..).ok_or_else(corrupt)?;
                continue;
            }
            ZstdFrame::Data {
                window,
                content_size,
            } => {
                let room = limit.saturating_sub(out.len) as u64;
                if content_size.is_some_and(|n| n > room) {
                    // Decoding could only end in TooLarge: do not start.
                    return Err(DecodeError::TooLarge(limit));
                }
                if window > ZSTD_MAX_WINDOW {
                    return Err(corrupt());
                }
            }
        }
        let mut source = rest;
        let mut frame =
            ruzstd::decoding::StreamingDecoder::new(&mut source).map_err(|_| corrupt())?;
        read_limited(&mut frame, out, "zstd")?;
        if !frame.decoder.is_finished() {
            return Err(corrupt());
        }
        drop(frame);
        rest = source;
    }
    Ok(())
}

enum ZstdFrame {
    /// A skippable frame of this many bytes in all.
    Skippable(usize),
    /// A data frame: its window and, if declared, its content size.
    Data {
        window: u64,
        content_size: Option<u64>,
    },
}

/// RFC 8878 3.1.1.1: the frame header, read before the decoder allocates its window.
fn zstd_frame_header(b: &[u8]) -> Option<ZstdFrame> {
    let magic = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    if magic & 0xffff_fff0 == 0x184d_2a50 {
        let len = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        return Some(ZstdFrame::Skippable(8usize.checked_add(len as usize)?));
    }
    if magic != 0xfd2f_b528 {
        return None;
    }
    let desc = *b.get(4)?;
    let single_segment = desc & 0x20 != 0;
    if desc & 0x08 != 0 || desc & 0x03 != 0 {
        // The reserved bit, or a dictionary: HTTP content has no way to name one.
        return None;
    }
    let mut pos = 5;
    let mut window = None;
    if !single_segment {
        let wd = *b.get(pos)?;
        pos += 1;
        let base = 1u64 << (10 + u64::from(wd >> 3));
        window = Some(base + base / 8 * u64::from(wd & 7));
    }
    let fcs_len = match desc >> 6 {
        0 if single_segment => 1,
        0 => 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let content_size = if fcs_len == 0 {
        None
    } else {
        let mut v = [0u8; 8];
        v[..fcs_len].copy_from_slice(b.get(pos..pos + fcs_len)?);
        let n = u64::from_le_bytes(v);
        Some(if fcs_len == 2 { n + 256 } else { n })
    };
    Some(ZstdFrame::Data {
        window: window.or(content_size)?,
        content_size,
    })
}

/// Reads everything from `r` into `out`; more than the limit is `TooLarge`, a read error
/// (corrupt or truncated input) is `Corrupt`.
fn read_limited<R: Read>(mut r: R, out: &mut Output, name: &str) -> Result<(), DecodeError> {
    loop {
        let tail = out.tail()?;
        let len = tail.len();
        tail.resize(tail.capacity(), 0);
        let n = match r.read(&mut tail[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(_) => return Err(DecodeError::Corrupt(name.to_string())),
        };
        tail.truncate(len + n);
        out.wrote(n)?;
        if n == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const DOC: &[u8] = b"{\"email\":\"ada@example.com\",\"card\":\"4111 1111 1111 1111\"}";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn zst(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
        match coding {
            "gzip" => gzip(data),
            "deflate" => zlib(data),
            "raw-deflate" => raw_deflate(data),
            "br" => br(data),
            "zstd" => zst(data),
            _ => unreachable!(),
        }
    }

    /// (content-encoding header, how the body is encoded)
    const KINDS: &[(&str, &str)] = &[
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("deflate", "raw-deflate"),
        ("br", "br"),
        ("zstd", "zstd"),
    ];

    #[test]
    fn every_coding_round_trips() {
        for (header, kind) in KINDS {
            let body = encode(kind, DOC);
            assert_eq!(
                decode(header, &body, 1024).unwrap().as_deref(),
                Some(DOC),
                "{kind}"
            );
            assert_eq!(
                decode(header, &body, DOC.len()).unwrap().as_deref(),
                Some(DOC),
                "{kind}: exactly at the limit"
            );
            assert_eq!(
                decode(header, &body, DOC.len() - 1),
                Err(DecodeError::TooLarge(DOC.len() - 1)),
                "{kind}: one byte over"
            );
            assert!(decodable(header));
        }
        assert_eq!(decode("identity", b"x", 10).unwrap(), None);
        assert_eq!(decode("", b"x", 10).unwrap(), None);
    }

    #[test]
    fn truncated_streams_are_corrupt_never_partial() {
        let big: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        for (header, kind) in KINDS {
            let body = encode(kind, &big);
            for cut in [body.len() - 1, body.len() - 4, body.len() / 2, 3] {
                let r = decode(header, &body[..cut], 10 << 20);
                assert!(
                    matches!(r, Err(DecodeError::Corrupt(_))),
                    "{kind} cut at {cut}/{}: {:?}",
                    body.len(),
                    r.map(|b| b.map(|b| b.len()))
                );
            }
        }
    }

    #[test]
    fn corrupt_and_unknown() {
        for header in ["gzip", "deflate", "br", "zstd"] {
            assert!(
                matches!(
                    decode(header, b"not compressed at all", 100),
                    Err(DecodeError::Corrupt(_))
                ),
                "{header}"
            );
        }
        assert_eq!(
            decode("compress", b"x", 100),
            Err(DecodeError::Unsupported("compress".into()))
        );
        // An unknown layer anywhere in the list: nothing is decoded.
        assert_eq!(
            decode("gzip, x-custom", &gzip(DOC), 100),
            Err(DecodeError::Unsupported("x-custom".into()))
        );
        assert!(!decodable("gzip, x-custom"));
        // Flipped payload byte: the gzip CRC catches what inflate may not.
        let mut gz = gzip(DOC);
        let n = gz.len();
        gz[n - 9] ^= 0x01;
        assert!(decode("gzip", &gz, 1024).is_err());
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse() {
        // `gzip, br`: gzip applied first, then brotli.
        let body = br(&gzip(DOC));
        assert_eq!(
            decode("gzip, br", &body, 1024).unwrap().as_deref(),
            Some(DOC)
        );
        let body = gzip(&zst(DOC));
        assert_eq!(
            decode("zstd,gzip", &body, 1024).unwrap().as_deref(),
            Some(DOC)
        );
        assert!(decode("br, gzip", &br(&gzip(DOC)), 1024).is_err());
    }

    #[test]
    fn multi_member_gzip_and_multi_frame_zstd() {
        let mut gz = gzip(b"{\"a\":");
        gz.extend(gzip(b"1}"));
        assert_eq!(
            decode("gzip", &gz, 100).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        gz.extend([0, 0, 0]);
        assert_eq!(
            decode("gzip", &gz, 100).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        gz.extend(b"junk");
        assert!(decode("gzip", &gz, 100).is_err());

        let mut z = zst(b"{\"a\":");
        // A skippable frame between the two.
        z.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        z.extend(zst(b"1}"));
        assert_eq!(
            decode("zstd", &z, 100).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(decode("zstd", &z, 6), Err(DecodeError::TooLarge(6)));
    }

    #[test]
    fn zstd_window_over_the_cap_is_refused_before_allocation() {
        // Magic, descriptor without single-segment, window descriptor 0xff (a 3.75 TiB window).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xff, 0x01, 0x00, 0x00];
        assert!(matches!(
            decode("zstd", &frame, 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
        // Window 2^27 (128 MiB): a valid header, over the cap.
        let frame = [
            0x28,
            0xb5,
            0x2f,
            0xfd,
            0x00,
            (27 - 10) << 3,
            0x01,
            0x00,
            0x00,
        ];
        assert!(matches!(
            decode("zstd", &frame, 1 << 20),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        for (header, kind) in KINDS {
            let body = encode(kind, &zeros);
            let t = std::time::Instant::now();
            assert_eq!(
                decode(header, &body, 1 << 20),
                Err(DecodeError::TooLarge(1 << 20)),
                "{kind}"
            );
            assert!(t.elapsed().as_secs_f64() < 2.0, "{kind}: {:?}", t.elapsed());
        }
        // Stacked: a bomb inside a bomb stops at the first layer that crosses the limit.
        let body = gzip(&gzip(&zeros));
        assert_eq!(
            decode("gzip, gzip", &body, 1 << 20),
            Err(DecodeError::TooLarge(1 << 20))
        );
    }
}
