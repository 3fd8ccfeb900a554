//! Content-encoding: compressed bodies are decoded before inspection, so compression is never a
//! way around the policy.

use std::io::Read;

/// A body that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// An encoding meshdlp does not decode (e.g. `br`, `zstd`).
    Unsupported(String),
    /// The bytes are not valid for the declared encoding.
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

/// Decodes `body` per a `content-encoding` header value (a list, applied in order). `identity`
/// and empty values are no-ops. At most `limit` decoded bytes are produced.
pub fn decode(
    content_encoding: &str,
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    let codings: Vec<String> = content_encoding
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    if codings.is_empty() {
        return Ok(None);
    }
    let mut data = body.to_vec();
    // Codings are listed in the order they were applied: undo them in reverse.
    for coding in codings.iter().rev() {
        data = match coding.as_str() {
            "gzip" | "x-gzip" => read_limited(
                flate2::read::MultiGzDecoder::new(data.as_slice()),
                limit,
                "gzip",
            )?,
            "deflate" => {
                // RFC 9110 deflate is zlib-wrapped; some servers send raw deflate.
                match read_limited(
                    flate2::read::ZlibDecoder::new(data.as_slice()),
                    limit,
                    "deflate",
                ) {
                    Ok(d) => d,
                    Err(DecodeError::Corrupt(_)) => read_limited(
                        flate2::read::DeflateDecoder::new(data.as_slice()),
                        limit,
                        "deflate",
                    )?,
                    Err(e) => return Err(e),
                }
            }
            other => return Err(DecodeError::Unsupported(other.to_string())),
        };
    }
    Ok(Some(data))
}

fn read_limited<R: Read>(r: R, limit: usize, name: &str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut taken = r.take(limit as u64 + 1);
    taken
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt(name.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_round_trip_limit_and_errors() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"{\"email\":\"a@b.io\"}").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(
            decode("gzip", &gz, 1024).unwrap().unwrap(),
            b"{\"email\":\"a@b.io\"}"
        );
        assert_eq!(decode("identity", b"x", 10).unwrap(), None);
        assert_eq!(decode("gzip", &gz, 4), Err(DecodeError::TooLarge(4)));
        assert!(matches!(
            decode("gzip", b"not gzip", 100),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode("br", b"x", 100),
            Err(DecodeError::Unsupported(_))
        ));
    }
}
