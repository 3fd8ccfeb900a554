//! The built-in detector pack is written in TOML (`src/detect/builtin.toml`, for people) and
//! converted here to JSON, which the engine already parses: no TOML parser in the filter
//! module, and a policy compile does not parse TOML in every VM.

fn main() {
    let path = "src/detect/builtin.toml";
    println!("cargo:rerun-if-changed={path}");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let pack: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json = serde_json::to_string(&pack).unwrap_or_else(|e| panic!("{path}: {e}"));
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("builtin.json");
    std::fs::write(&out, json).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
