//! The built-in detector pack is written in TOML (`src/detect/builtin.toml`, for people) and
//! converted here to JSON, which the engine already parses: no TOML parser in the filter
//! module, and a policy compile does not parse TOML in every VM.
//!
//! The dense DFAs of the built-in detectors without keywords are determinised here too and
//! embedded, deflated, in the binary (`builtin_dfas.bin`, indexed by `builtin_dfas.rs`): a VM
//! only checks and uses them, so dense DFA construction is not in the filter module (code that
//! V8 compiles in every Envoy) and a VM's `prepare()` does not determinise them.

use std::fmt::Write as _;
use std::io::Write as _;

fn main() {
    let path = "src/detect/builtin.toml";
    println!("cargo:rerun-if-changed={path}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/detect/dfa_build.rs");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let pack: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json = serde_json::to_string(&pack).unwrap_or_else(|e| panic!("{path}: {e}"));
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    write(&out_dir.join("builtin.json"), json.as_bytes());
    builtin_dfas(&pack, &out_dir);
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// `dfas`, the DFAs of a pattern (shared with the test that reads them back).
include!("src/detect/dfa_build.rs");

/// Writes `builtin_dfas.bin` (every DFA, each at an offset that is a multiple of 8, deflated)
/// and `builtin_dfas.rs` (its length, and per pattern where its DFAs are).
fn builtin_dfas(pack: &toml::Value, out_dir: &std::path::Path) {
    let detectors = pack
        .get("detector")
        .and_then(toml::Value::as_array)
        .expect("[[detector]]");
    let mut blob: Vec<u8> = Vec::new();
    let mut index = String::from("&[\n");
    let mut seen = std::collections::HashSet::new();
    for d in detectors {
        let Some(pattern) = d.get("pattern").and_then(toml::Value::as_str) else {
            continue;
        };
        let keywords = d
            .get("keywords")
            .and_then(toml::Value::as_array)
            .is_some_and(|k| !k.is_empty());
        if keywords || !seen.insert(pattern.to_string()) {
            continue;
        }
        let mut place = |bytes: &[u8]| {
            blob.resize(blob.len().next_multiple_of(8), 0);
            let at = blob.len();
            blob.extend_from_slice(bytes);
            (at, at + bytes.len())
        };
        let entry = match dfas(pattern) {
            None => "None".to_string(),
            Some((fwd, rev)) => {
                let f = place(&fwd);
                let r = rev.map(|r| place(&r));
                format!("Some(({f:?}, {r:?}))")
            }
        };
        writeln!(index, "    ({pattern:?}, {entry}),").expect("string");
    }
    index.push(']');
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&blob).expect("deflate");
    let deflated = z.finish().expect("deflate");
    write(&out_dir.join("builtin_dfas.bin"), &deflated);
    let rs = format!(
        "/// Bytes of every DFA, inflated.\nconst BUILTIN_DFAS_LEN: usize = {};\n\
         /// Per built-in pattern without keywords: where its forward DFA is in the inflated \
         bytes, and its reverse one (`None`: not built, over the size limits).\n\
         #[allow(clippy::type_complexity)]\n\
         static BUILTIN_DFA_INDEX: &[(&str, Option<(Span, Option<Span>)>)] = {index};\n",
        blob.len()
    );
    write(&out_dir.join("builtin_dfas.rs"), rs.as_bytes());
}
