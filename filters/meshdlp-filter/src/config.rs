//! The plugin configuration: a pure function from bytes to a compiled configuration, so it is
//! tested natively (`cargo test -p meshdlp-filter`) and not only in Envoy.

use meshdlp::manifest::Manifest;
use meshdlp::{Policy, PolicyError};
use serde::Deserialize;

/// The plugin configuration as written in Envoy's `PluginConfig.configuration`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    /// The policy manifest. Absent: the built-in default policy.
    #[serde(default)]
    policy: Option<serde_json::Value>,
    #[serde(default)]
    scopes: Option<RawScopes>,
    #[serde(default)]
    request_id_header: Option<String>,
    /// Whether Envoy holds headers while the body is inspected
    /// (`allow_on_headers_stop_iteration: true` in the `PluginConfig`). Default true.
    #[serde(default)]
    hold_headers: Option<bool>,
    /// Largest body the filter buffers and inspects (default 1 MiB, Envoy's default buffer).
    #[serde(default)]
    max_body_bytes: Option<usize>,
    /// Largest decompressed body (default 8 MiB).
    #[serde(default)]
    max_decoded_bytes: Option<usize>,
    /// Remove `accept-encoding` from requests whose responses are inspected (default true).
    #[serde(default)]
    strip_accept_encoding: Option<bool>,
    /// Emit one JSON audit line per request with findings (default true).
    #[serde(default)]
    audit_log: Option<bool>,
    /// What to do with protocols whose bodies cannot be inspected as one HTTP body.
    #[serde(default)]
    protocols: Option<RawProtocols>,
    /// Bodies larger than `maxBodyBytes`: inspected chunk by chunk.
    #[serde(default)]
    streaming: Option<RawStreaming>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawStreaming {
    /// Stream bodies past `maxBodyBytes` (default true); false: they fail per `onError`.
    #[serde(default)]
    enabled: Option<bool>,
    /// Largest record held whole (an NDJSON line, an array element). Default 256 KiB.
    #[serde(default)]
    max_record_bytes: Option<usize>,
    /// Text kept back after each chunk so a value cut by a chunk boundary is seen whole.
    /// Default 8 KiB.
    #[serde(default)]
    window_bytes: Option<usize>,
    /// Streams inspected chunk by chunk at once per VM (the memory budget). Default 64.
    #[serde(default)]
    max_streams: Option<usize>,
}

/// Streaming inspection settings, compiled.
#[derive(Debug, Clone, Copy)]
pub struct Streaming {
    pub enabled: bool,
    pub limits: meshdlp::StreamLimits,
    pub max_streams: usize,
}

/// Per protocol: `onError` (default: the route's `onError` decides - `block` refuses, `allow`
/// passes uninspected with a metric and an audit line), `refuse`, or `pass`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProtocols {
    /// `Upgrade` requests (WebSocket, h2c upgrade): frames after the upgrade are not HTTP bodies.
    #[serde(default)]
    upgrade: Option<ProtocolAction>,
    /// `CONNECT` tunnels.
    #[serde(default)]
    connect: Option<ProtocolAction>,
    /// gRPC (`application/grpc*`): length-prefixed messages, often never-ending streams.
    #[serde(default)]
    grpc: Option<ProtocolAction>,
    /// Server-sent events (`text/event-stream`): a response that may never end.
    #[serde(default)]
    event_stream: Option<ProtocolAction>,
}

/// What to do with a protocol meshdlp does not inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProtocolAction {
    /// The route's `onError`: `block` refuses, `allow` passes.
    #[default]
    OnError,
    /// Refused with a problem document (`protocol.*` reason), counted.
    Refuse,
    /// Passed uninspected, counted and audited.
    Pass,
}

/// The protocol settings, compiled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protocols {
    pub upgrade: ProtocolAction,
    pub connect: ProtocolAction,
    pub grpc: ProtocolAction,
    pub event_stream: ProtocolAction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawScopes {
    /// Request header with the caller's scopes (space or comma separated), set by a trusted
    /// filter in front of this one (e.g. `jwt_authn` `claim_to_headers`).
    #[serde(default)]
    header: Option<String>,
    /// Read the header (true) or only strip it (false, the default: a client could forge it
    /// unless the Envoy configuration removes client copies before the trusted filter sets it).
    #[serde(default)]
    trust_header: bool,
    /// Dynamic metadata holding the verified JWT payload (`jwt_authn` `payload_in_metadata`):
    /// filter name, key, and claim (default `scope`, also `scp`).
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMetadata {
    #[serde(default = "default_jwt_filter")]
    filter: String,
    key: String,
    #[serde(default = "default_claim")]
    claim: String,
}

fn default_jwt_filter() -> String {
    "envoy.filters.http.jwt_authn".to_string()
}
fn default_claim() -> String {
    "scope".to_string()
}

/// The compiled configuration shared by every stream of a plugin.
#[derive(Debug)]
pub struct Config {
    pub policy: Policy,
    pub scope_header: Option<String>,
    pub trust_scope_header: bool,
    /// Serialized property paths (NUL-separated) of the scope claim in dynamic metadata.
    pub scope_properties: Vec<String>,
    pub request_id_header: String,
    pub hold_headers: bool,
    pub max_body_bytes: usize,
    pub max_decoded_bytes: usize,
    pub strip_accept_encoding: bool,
    pub audit_log: bool,
    pub protocols: Protocols,
    pub streaming: Streaming,
}

/// A configuration error, phrased for the Envoy log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn located(prefix: &str, e: PolicyError) -> ConfigError {
    if e.location().is_empty() {
        ConfigError(format!("{prefix}: {}", e.message()))
    } else {
        ConfigError(format!("{prefix}.{}: {}", e.location(), e.message()))
    }
}

/// Parses and compiles the plugin configuration. Empty configuration: the built-in default.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    let raw: Raw = if bytes.iter().all(u8::is_ascii_whitespace) {
        Raw::default()
    } else {
        // Through a `Value`, as the policy is: the configuration's types are deserialized
        // from one kind of input in the module (less code for V8 to compile in every sidecar).
        // A key given twice is refused (`json_value`), as it is where the policy is checked
        // offline (`meshdlp compile`).
        let value =
            meshdlp::json_value(bytes).map_err(|e| ConfigError(format!("configuration: {e}")))?;
        meshdlp::deserialize_located(value).map_err(|e| located("configuration", e))?
    };
    // The built-in default is read as a configured policy is, from a `serde_json::Value`:
    // one instantiation of the manifest's deserializers in the module, not two (each is
    // ~120 KB of Wasm code, and V8 compiles all of it in every sidecar: BENCHMARKS, session 31).
    let (what, value) = match raw.policy {
        None => (
            "builtin policy",
            meshdlp::json_value(meshdlp::BUILTIN_DEFAULT_POLICY.as_bytes())
                .map_err(|e| ConfigError(format!("builtin policy: {e}")))?,
        ),
        Some(v) => ("policy", v),
    };
    let manifest: Manifest = meshdlp::deserialize_located(value).map_err(|e| located(what, e))?;
    let policy = Policy::compile(&manifest).map_err(|e| located(what, e))?;
    // A VM builds every lazily compiled matcher a search can use now, at configuration, so no
    // request pays for a first use. Search caches (the lazy DFAs' states) are still made on a
    // matcher's first search and grow up to their capacity; the soak checks RSS is flat after
    // warm-up.
    policy.prepare();
    let scopes = raw.scopes.unwrap_or_default();
    let scope_header = scopes.header.map(|h| h.to_ascii_lowercase());
    if let Some(h) = &scope_header {
        if h.is_empty()
            || h.starts_with(':')
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError(format!(
                "configuration.scopes.header: `{h}` is not a valid header name"
            )));
        }
    }
    // Property paths, serialized once (NUL-separated) for every request to use. `scp` is the
    // other common claim name for scopes, so a `scope` claim also looks there.
    let scope_properties = scopes
        .metadata
        .map(|m| {
            let prefix = [
                "metadata",
                "filter_metadata",
                m.filter.as_str(),
                m.key.as_str(),
            ]
            .join("\0");
            let mut claims = vec![m.claim.clone()];
            if m.claim == "scope" {
                claims.push("scp".to_string());
            }
            claims
                .into_iter()
                .map(|c| format!("{prefix}\0{c}"))
                .collect()
        })
        .unwrap_or_default();
    let max_body_bytes = raw.max_body_bytes.unwrap_or(1 << 20);
    if max_body_bytes == 0 {
        return Err(ConfigError(
            "configuration.maxBodyBytes: must be positive".into(),
        ));
    }
    let raw_streaming = raw.streaming.unwrap_or_default();
    let streaming = Streaming {
        enabled: raw_streaming.enabled.unwrap_or(true),
        limits: meshdlp::StreamLimits {
            max_record_bytes: raw_streaming.max_record_bytes.unwrap_or(256 << 10),
            window_bytes: raw_streaming.window_bytes.unwrap_or(8 << 10),
            max_findings: 100,
        },
        max_streams: raw_streaming.max_streams.unwrap_or(64),
    };
    if streaming.limits.max_record_bytes == 0 || streaming.max_streams == 0 {
        return Err(ConfigError(
            "configuration.streaming: maxRecordBytes and maxStreams must be positive".into(),
        ));
    }
    Ok(Config {
        streaming,
        policy,
        scope_header,
        trust_scope_header: scopes.trust_header,
        scope_properties,
        request_id_header: raw
            .request_id_header
            .unwrap_or_else(|| "x-request-id".to_string())
            .to_ascii_lowercase(),
        hold_headers: raw.hold_headers.unwrap_or(true),
        max_body_bytes,
        max_decoded_bytes: raw.max_decoded_bytes.unwrap_or(8 << 20).max(max_body_bytes),
        strip_accept_encoding: raw.strip_accept_encoding.unwrap_or(true),
        audit_log: raw.audit_log.unwrap_or(true),
        protocols: raw
            .protocols
            .map(|p| Protocols {
                upgrade: p.upgrade.unwrap_or_default(),
                connect: p.connect.unwrap_or_default(),
                grpc: p.grpc.unwrap_or_default(),
                event_stream: p.event_stream.unwrap_or_default(),
            })
            .unwrap_or_default(),
    })
}

/// Splits a scope header or claim value: OAuth's space-separated `scope`, or comma-separated.
pub fn split_scopes(value: &str, out: &mut Vec<String>) {
    for s in value
        .split([' ', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
}

/// Reads a metadata property value as scopes. Envoy returns a string leaf as its bytes, and a
/// list (`scp: [...]`) in the proxy-wasm pairs encoding (each element a key with an empty
/// value) or as a serialized `google.protobuf.ListValue`; strings are collected from any.
pub fn scopes_from_property(bytes: &[u8], out: &mut Vec<String>) {
    if let Some(keys) = pairs_keys(bytes) {
        for k in keys {
            split_scopes(k, out);
        }
        return;
    }
    if let Some(strings) = protobuf_strings(bytes, 0) {
        if !strings.is_empty() {
            for s in strings {
                split_scopes(&s, out);
            }
            return;
        }
    }
    split_scopes(&String::from_utf8_lossy(bytes), out);
}

/// The keys of a proxy-wasm pairs encoding (`u32` count, then `u32` key and value sizes per
/// pair, then each key and value followed by a NUL; little-endian), when `bytes` is exactly
/// one: a text cannot be mistaken for it, its sizes must add up to the length.
fn pairs_keys(bytes: &[u8]) -> Option<Vec<&str>> {
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = word(0)?;
    if count == 0 || count > bytes.len() / 8 {
        return None;
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut keys = Vec::with_capacity(count);
    for i in 0..count {
        let (k, v) = (word(4 + 8 * i)?, word(8 + 8 * i)?);
        let key = bytes.get(at..at.checked_add(k)?)?;
        at = at.checked_add(k)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?.checked_add(v)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at += 1;
        keys.push(std::str::from_utf8(key).ok()?);
    }
    (at == bytes.len()).then_some(keys)
}

/// Collects the string values of a serialized ListValue/Value (`values` = field 1, `string_value`
/// = field 3). Returns `None` if the bytes are not such a message.
fn protobuf_strings(bytes: &[u8], depth: usize) -> Option<Vec<String>> {
    if depth > 4 {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (tag, n) = varint(&bytes[i..])?;
        i += n;
        let (field, wire) = (tag >> 3, tag & 7);
        if wire != 2 {
            return None;
        }
        let (len, n) = varint(&bytes[i..])?;
        i += n;
        let end = i.checked_add(usize::try_from(len).ok()?)?;
        let payload = bytes.get(i..end)?;
        match field {
            1 => out.extend(protobuf_strings(payload, depth + 1)?),
            3 => out.push(std::str::from_utf8(payload).ok()?.to_string()),
            _ => return None,
        }
        i = end;
    }
    Some(out)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_configuration_is_the_builtin_default() {
        let Ok(c) = parse(b"") else {
            panic!("the empty configuration must load")
        };
        assert!(c.hold_headers);
        assert_eq!(c.max_body_bytes, 1 << 20);
    }

    #[test]
    fn errors_name_the_location() {
        let e = parse(br#"{"policy": {"routes": [{"name": "a", "match": {"regex": "("}}]}}"#)
            .unwrap_err();
        assert!(
            e.0.starts_with("policy.routes[0].match.regex: invalid regex"),
            "{e}"
        );
        let e = parse(br#"{"polcy": {}}"#).unwrap_err();
        assert!(e.0.contains("unknown field `polcy`"), "{e}");
        let e = parse(br#"{"policy": {"routes": [{"name": "a", "match": {}, "response": {"detect": ["nope"]}}]}}"#).unwrap_err();
        assert!(
            e.0.starts_with("policy.routes[0].response.detect[0]: unknown class `nope`"),
            "{e}"
        );
        let e = parse(b"{\"policy\": {}\n,,}").unwrap_err();
        assert!(
            e.0.starts_with("configuration: ") && e.0.ends_with("line 2 column 2"),
            "{e}"
        );
        let e = parse(br#"{"scopes": {"header": 7}}"#).unwrap_err();
        assert!(
            e.0.starts_with("configuration.scopes.header: invalid type"),
            "{e}"
        );
    }

    /// A key given twice is an error with its line and column, at the top, in `scopes` and
    /// inside the policy (a `Value` would keep the last copy: `auditLog` off without a word);
    /// bytes after the document are an error too.
    #[test]
    fn a_key_given_twice_or_bytes_after_the_document_are_refused() {
        for (config, key) in [
            (&br#"{"auditLog": true, "auditLog": false}"#[..], "auditLog"),
            (br#"{"scopes": {"header": "x-a", "header": "x-b"}}"#, "header"),
            (
                br#"{"policy": {"defaultRoute": {"response": {"detect": ["email"], "detect": []}}}}"#,
                "detect",
            ),
        ] {
            let e = parse(config).unwrap_err();
            assert!(
                e.0.starts_with(&format!("configuration: duplicate key `{key}` at line 1 column")),
                "{e}"
            );
        }
        // The same key in two objects is two keys.
        let two =
            br#"{"policy": {"routes": [{"name": "a", "match": {}}, {"name": "b", "match": {}}]}}"#;
        assert!(parse(two).is_ok());
        for config in [&br#"{"auditLog": true} xyz"#[..], br#"{} {}"#] {
            let e = parse(config).unwrap_err();
            assert!(e.0.contains("trailing characters at line 1"), "{e}");
        }
        let e = meshdlp::parse_manifest_json(br#"{"defaultRoute": {}} {}"#).unwrap_err();
        assert!(e.to_string().contains("trailing characters"), "{e}");
        // A map's key given twice: deserialized alone, the last copy would win.
        let actions =
            br#"{"defaultRoute": {"response": {"actions": {"email": "mask", "email": "allow"}}}}"#;
        let once = br#"{"defaultRoute": {"response": {"actions": {"email": "mask"}}}}"#;
        assert!(meshdlp::parse_manifest_json(once).is_ok());
        for e in [
            parse(
                format!(
                    r#"{{"policy": {}}}"#,
                    std::str::from_utf8(actions).unwrap_or("")
                )
                .as_bytes(),
            )
            .unwrap_err()
            .0,
            meshdlp::parse_manifest_json(actions)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(e.contains("duplicate key `email` at line 1 column"), "{e}");
        }
    }

    /// A configuration nested past the JSON reader's depth limit is an error, not a stack
    /// overflow (a trap in the VM): the duplicate-refusing reader recurses as the plain one.
    #[test]
    fn a_configuration_nested_too_deep_is_refused() {
        for open in ["[", "{\"a\":"] {
            let deep = format!("{{\"policy\": {}", open.repeat(100_000));
            let e = parse(deep.as_bytes()).unwrap_err();
            assert!(e.0.contains("recursion limit exceeded"), "{e}");
        }
    }

    /// The built-in default is deserialized as a configured policy is (from a `Value`): the
    /// same policy either way.
    #[test]
    fn the_builtin_default_is_the_default_written_out() {
        let written = format!(r#"{{"policy": {}}}"#, meshdlp::BUILTIN_DEFAULT_POLICY);
        let (Ok(a), Ok(b)) = (parse(b""), parse(written.as_bytes())) else {
            panic!("both must load")
        };
        assert_eq!(a.policy.classes(), b.policy.classes());
        let body = br#"{"email": "ana@example.com", "card": "4111 1111 1111 1111"}"#;
        let inspect = |p: &Policy| {
            let ex = meshdlp::Exchange {
                route: p.route("GET", "/", "svc"),
                direction: meshdlp::Direction::Response,
                content_type: Some("application/json"),
                scopes: &[],
                body,
            };
            format!("{:?}", p.inspect(&ex).findings)
        };
        assert_eq!(inspect(&a.policy), inspect(&b.policy));
    }

    #[test]
    fn scope_claims_become_property_paths_once() {
        let Ok(c) = parse(br#"{"scopes": {"metadata": {"key": "jwt_payload"}}}"#) else {
            panic!("config")
        };
        assert_eq!(
            c.scope_properties,
            [
                "metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload\0scope",
                "metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload\0scp",
            ]
        );
    }

    #[test]
    fn scopes_from_strings_and_list_values() {
        let mut s = Vec::new();
        scopes_from_property(b"users:read users:pii", &mut s);
        assert_eq!(s, ["users:read", "users:pii"]);
        // ListValue { values: [Value{string_value:"a:b"}, Value{string_value:"c"}] }
        let list = [
            0x0a, 0x05, 0x1a, 0x03, b'a', b':', b'b', 0x0a, 0x03, 0x1a, 0x01, b'c',
        ];
        let mut s = Vec::new();
        scopes_from_property(&list, &mut s);
        assert_eq!(s, ["a:b", "c"]);
        // Pairs: ["users:read", "users:pii"] as keys with empty values.
        let mut pairs = 2u32.to_le_bytes().to_vec();
        for k in ["users:read", "users:pii"] {
            pairs.extend((k.len() as u32).to_le_bytes());
            pairs.extend(0u32.to_le_bytes());
        }
        for k in ["users:read", "users:pii"] {
            pairs.extend(k.as_bytes());
            pairs.extend([0, 0]);
        }
        let mut s = Vec::new();
        scopes_from_property(&pairs, &mut s);
        assert_eq!(s, ["users:read", "users:pii"]);
        // One byte short or long: not pairs (and no panic).
        for bad in [
            &pairs[..pairs.len() - 1],
            &[pairs.as_slice(), &[0]].concat()[..],
        ] {
            assert!(pairs_keys(bad).is_none());
        }
    }
}
