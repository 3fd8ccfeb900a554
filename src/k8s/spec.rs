//! A `DataPolicy` object as the controller and `meshdlp render` read it.
//!
//! The object is taken as a JSON value (YAML is read into the same value), so errors name the
//! field as `kubectl` shows it: `spec.routes[2].response.fields[0].path: ...`. `selector` and
//! `delivery` are split off the spec; the rest is a policy manifest, read with the engine's own
//! located parser and compiled by the engine. What a DataPolicy forbids beyond a manifest (key
//! material in the object, keys from arbitrary sidecar variables) is checked here too, so an
//! offline `meshdlp check` agrees with the API server's CEL rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::crd::{GROUP, KIND, VERSION};
use crate::error::PolicyError;
use crate::manifest::Manifest;
use crate::policy::{deserialize_located, Policy};

/// `apiVersion` of a DataPolicy.
pub const API_VERSION: &str = "meshdlp.io/v1alpha1";

/// The secret `check` and `render` compile keys with: the real one lives in the cluster.
const PLACEHOLDER_SECRET: &str = "placeholder-secret-for-validation";

/// How the filter reaches the sidecars (`spec.delivery.mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum DeliveryMode {
    /// An EnvoyFilter: ECDS extension config that holds headers while the body is inspected.
    #[default]
    EnvoyFilter,
    /// An Istio WasmPlugin (degraded: headers are not held).
    WasmPlugin,
}

impl DeliveryMode {
    /// The name as written in `spec.delivery.mode`.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryMode::EnvoyFilter => "EnvoyFilter",
            DeliveryMode::WasmPlugin => "WasmPlugin",
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectorSpec {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeliverySpec {
    #[serde(default)]
    mode: Option<DeliveryMode>,
}

/// Where the filter finds the caller's verified scopes, for `grants`: the filter's own `scopes`
/// setting, passed to it as written. Without it no caller has a scope and `grants` never apply.
/// A namespace policy without it gets the mesh policy's.
///
/// With Istio, a `RequestAuthentication` runs `jwt_authn` with `payload_in_metadata` set to the
/// JWT rule's issuer: `metadata: {key: <issuer>}` reads the verified claims from there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scopes {
    /// Request header with the caller's scopes (space or comma separated), set by a trusted
    /// filter in front of meshdlp (e.g. `jwt_authn` `claim_to_headers`). The filter always
    /// removes it before the request goes upstream, and reads it only with `trustHeader: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Read `header` (true) or only strip it (false, the default): a client can forge a plain
    /// header unless the proxy removes client copies before the trusted filter sets it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_header: bool,
    /// Dynamic metadata holding the verified JWT payload (`jwt_authn` `payload_in_metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ScopesMetadata>,
}

/// Where in dynamic metadata the verified JWT payload is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopesMetadata {
    /// The filter that wrote it (default `envoy.filters.http.jwt_authn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The `payload_in_metadata` key (Istio: the issuer of the `RequestAuthentication` rule).
    pub key: String,
    /// The claim with the scopes (default `scope`, which also reads `scp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// Longest header name, metadata filter, key or claim in `spec.scopes`.
pub const MAX_SCOPES_NAME: usize = 256;

impl Scopes {
    /// The checks of the filter's configuration parser (and the CRD's), located under `spec.scopes`.
    pub(crate) fn check(&self) -> Result<(), PolicyError> {
        if let Some(h) = &self.header {
            let ok = !h.is_empty()
                && h.len() <= MAX_SCOPES_NAME
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(PolicyError::new(
                    "spec.scopes.header",
                    format!("`{h}` is not a valid header name (letters, digits, `-` and `_`, at most {MAX_SCOPES_NAME})"),
                ));
            }
        } else if self.trust_header {
            return Err(PolicyError::new(
                "spec.scopes.trustHeader",
                "`trustHeader: true` needs `header`",
            ));
        }
        if let Some(m) = &self.metadata {
            for (field, value) in [
                ("filter", m.filter.as_deref()),
                ("key", Some(m.key.as_str())),
                ("claim", m.claim.as_deref()),
            ] {
                if let Some(v) = value {
                    if v.is_empty() || v.len() > MAX_SCOPES_NAME || v.contains('\0') {
                        return Err(PolicyError::new(
                            format!("spec.scopes.metadata.{field}"),
                            format!("must be 1 to {MAX_SCOPES_NAME} characters, without NUL"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A parsed `DataPolicy`: its identity, where it applies, and its policy manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPolicy {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (a file for `kubectl apply` may leave it out; rendering needs it).
    pub namespace: Option<String>,
    /// `metadata.uid`, set on objects read from the API server (the controller's input): the
    /// rendered objects then carry an owner reference.
    pub uid: Option<String>,
    /// `spec.selector.matchLabels`; empty = every workload of the namespace.
    pub selector: BTreeMap<String, String>,
    /// `spec.delivery.mode`.
    pub delivery: DeliveryMode,
    /// `spec.scopes`: where the filter finds the caller's verified scopes.
    pub scopes: Option<Scopes>,
    /// `spec.enforced`: on the mesh policy, its rules are a floor that namespace policies cannot
    /// go below ([`super::merge()`]); refused on any other policy ([`super::render()`]).
    pub enforced: bool,
    /// The rest of `spec`: a policy manifest.
    pub manifest: Manifest,
}

/// Whether a document is a DataPolicy (by `kind`), so `meshdlp check` can take either form.
pub fn is_data_policy(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some(KIND)
}

/// Reads a YAML or JSON document (one) into a value. YAML syntax errors carry line and column.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse_document(text: &str) -> Result<Value, PolicyError> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| PolicyError::new("", e.to_string()))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| PolicyError::new("", e.to_string()))
    }
}

/// `location` under `prefix`: `spec` + `routes[0].name` = `spec.routes[0].name`.
pub(crate) fn under(prefix: &str, e: PolicyError) -> PolicyError {
    let loc = e.location();
    let location = if loc.is_empty() {
        prefix.to_string()
    } else if prefix.is_empty() {
        loc.to_string()
    } else if loc.starts_with('[') {
        format!("{prefix}{loc}")
    } else {
        format!("{prefix}.{loc}")
    };
    PolicyError::new(location, e.message())
}

/// A DNS-1123 subdomain (object names), at most `max` bytes.
fn dns_subdomain(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn metadata_string(meta: &Map<String, Value>, field: &str) -> Result<Option<String>, PolicyError> {
    match meta.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PolicyError::new(
            format!("metadata.{field}"),
            "must be a string",
        )),
    }
}

impl DataPolicy {
    /// Parses a DataPolicy object (`apiVersion`, `kind`, `metadata`, `spec`; `status` and other
    /// metadata are ignored). Errors are located (`spec.routes[2].match.regex: ...`).
    pub fn from_value(doc: &Value) -> Result<DataPolicy, PolicyError> {
        let Some(obj) = doc.as_object() else {
            return Err(PolicyError::new(
                "",
                "a DataPolicy is a mapping with apiVersion, kind, metadata and spec",
            ));
        };
        match obj.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(PolicyError::new(
                    "apiVersion",
                    format!("`{other}` is not served: use `{GROUP}/{VERSION}`"),
                ))
            }
            None => {
                return Err(PolicyError::new(
                    "apiVersion",
                    format!("missing (`{API_VERSION}`)"),
                ))
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            Some(KIND) => {}
            other => {
                return Err(PolicyError::new(
                    "kind",
                    format!("`{}`: expected `{KIND}`", other.unwrap_or("")),
                ))
            }
        }
        let Some(meta) = obj.get("metadata").and_then(Value::as_object) else {
            return Err(PolicyError::new(
                "metadata",
                "missing (a mapping with `name`)",
            ));
        };
        let name = metadata_string(meta, "name")?
            .ok_or_else(|| PolicyError::new("metadata.name", "missing"))?;
        // The name becomes the value of the label meshdlp.io/datapolicy (at most 63 bytes).
        if !dns_subdomain(&name, 63) {
            return Err(PolicyError::new(
                "metadata.name",
                format!("`{name}`: expected lower-case letters, digits, `-` and `.`, at most 63 (it becomes a label value)"),
            ));
        }
        let namespace = metadata_string(meta, "namespace")?;
        if let Some(ns) = &namespace {
            if !dns_subdomain(ns, 63) || ns.contains('.') {
                return Err(PolicyError::new(
                    "metadata.namespace",
                    format!("`{ns}` is not a namespace name"),
                ));
            }
        }
        let uid = metadata_string(meta, "uid")?.filter(|u| !u.is_empty());
        let mut spec = match obj.get("spec") {
            Some(Value::Object(spec)) => spec.clone(),
            Some(_) => return Err(PolicyError::new("spec", "must be a mapping")),
            None => return Err(PolicyError::new("spec", "missing")),
        };
        let selector: SelectorSpec = match spec.remove("selector") {
            None | Some(Value::Null) => SelectorSpec::default(),
            Some(v) => deserialize_located(v).map_err(|e| under("spec.selector", e))?,
        };
        let delivery: DeliverySpec = match spec.remove("delivery") {
            None | Some(Value::Null) => DeliverySpec::default(),
            Some(v) => deserialize_located(v).map_err(|e| under("spec.delivery", e))?,
        };
        let scopes: Option<Scopes> = match spec.remove("scopes") {
            None | Some(Value::Null) => None,
            Some(v) => Some(deserialize_located(v).map_err(|e| under("spec.scopes", e))?),
        };
        let enforced = match spec.remove("enforced") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(PolicyError::new("spec.enforced", "must be a boolean")),
        };
        let manifest: Manifest =
            deserialize_located(Value::Object(spec)).map_err(|e| under("spec", e))?;
        let dp = DataPolicy {
            name,
            namespace,
            uid,
            selector: selector.match_labels.unwrap_or_default(),
            delivery: delivery.mode.unwrap_or_default(),
            scopes,
            enforced,
            manifest,
        };
        dp.check_cluster_rules()?;
        Ok(dp)
    }

    /// `namespace/name` (or the name alone when the namespace is not set).
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// What the API server's schema and CEL rules forbid and the engine would allow: key
    /// material in the object, keys from sidecar variables other than `MESHDLP_KEY*`, and label
    /// selectors Istio refuses.
    pub(crate) fn check_cluster_rules(&self) -> Result<(), PolicyError> {
        for (i, k) in self.manifest.keys.iter().enumerate() {
            let loc = format!("spec.keys[{i}]");
            if k.inline.is_some() {
                // Never echo the value.
                return Err(PolicyError::new(
                    format!("{loc}.inline"),
                    "`inline` keys (the secret in the object) are not allowed in a DataPolicy: use `secretRef`",
                ));
            }
            if let Some(var) = &k.env {
                let suffix_ok = var.strip_prefix("MESHDLP_KEY_").is_some_and(|s| {
                    !s.is_empty()
                        && s.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                });
                if var != "MESHDLP_KEY" && !suffix_ok {
                    return Err(PolicyError::new(
                        format!("{loc}.env"),
                        format!("{var:?}: must be `MESHDLP_KEY` or `MESHDLP_KEY_` and capitals, digits or `_` (other variables of the sidecar are not keys)"),
                    ));
                }
            }
        }
        if let Some(s) = &self.scopes {
            s.check()?;
        }
        for (k, v) in &self.selector {
            let loc = format!("spec.selector.matchLabels.{k}");
            if k.is_empty() || k.contains('*') || v.contains('*') {
                return Err(PolicyError::new(loc, "no wildcards and no empty keys"));
            }
            if v.len() > super::crd::MAX_LABEL_VALUE {
                return Err(PolicyError::new(
                    loc,
                    "a label value has at most 63 characters",
                ));
            }
            let b = v.as_bytes();
            let inner_ok = b
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            let ends_ok = b.first().is_none_or(u8::is_ascii_alphanumeric)
                && b.last().is_none_or(u8::is_ascii_alphanumeric);
            if !inner_ok || !ends_ok {
                return Err(PolicyError::new(
                    loc,
                    "a label value is letters, digits, `-`, `_` and `.`, alphanumeric at both ends",
                ));
            }
        }
        Ok(())
    }

    /// Compiles the manifest with the engine (keys get a placeholder secret: the real one is in
    /// the cluster). Errors are located under `spec`.
    pub fn compile(&self) -> Result<Policy, PolicyError> {
        compile_placeholder(&self.manifest).map_err(|e| under("spec", e))
    }
}

/// Compiles a manifest with a placeholder for every key's secret.
pub(crate) fn compile_placeholder(m: &Manifest) -> Result<Policy, PolicyError> {
    Policy::compile_with_env(m, &|_| Some(PLACEHOLDER_SECRET.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dp(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "DataPolicy",
               "metadata": {"name": "orders", "namespace": "shop"}, "spec": spec})
    }

    #[test]
    fn splits_selector_and_delivery() {
        let p = DataPolicy::from_value(&dp(json!({
            "mode": "monitor",
            "selector": {"matchLabels": {"app": "orders"}},
            "delivery": {"mode": "WasmPlugin"},
            "routes": [{"name": "a", "match": {"path": "/a"}}]
        })))
        .unwrap();
        assert_eq!(p.selector["app"], "orders");
        assert_eq!(p.delivery, DeliveryMode::WasmPlugin);
        assert_eq!(p.manifest.routes[0].name, "a");
        assert_eq!(p.id(), "shop/orders");
    }

    #[test]
    fn errors_are_located_under_spec() {
        let e = DataPolicy::from_value(&dp(json!({"routes": [
            {"name": "a", "match": {"path": "/a"}},
            {"name": "b", "match": {"path": "/b"}, "respnse": {}}
        ]})))
        .unwrap_err();
        assert!(e.location().starts_with("spec.routes[1]"), "{e}");
        let e = DataPolicy::from_value(&dp(json!({"delivery": {"mode": "Sidecar"}}))).unwrap_err();
        assert_eq!(e.location(), "spec.delivery.mode", "{e}");
        let e = DataPolicy::from_value(&dp(json!({"selector": {"labels": {}}}))).unwrap_err();
        assert!(e.location().starts_with("spec.selector"), "{e}");
    }

    #[test]
    fn scopes_are_split_off_and_checked() {
        let p = DataPolicy::from_value(&dp(json!({
            "scopes": {"metadata": {"key": "https://issuer.example"}},
            "routes": [{"name": "a", "match": {"path": "/a"}}]
        })))
        .unwrap();
        let s = p.scopes.as_ref().unwrap();
        assert_eq!(s.metadata.as_ref().unwrap().key, "https://issuer.example");
        assert!(!s.trust_header && s.header.is_none());
        // As written: the filter applies its own defaults.
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            json!({"metadata": {"key": "https://issuer.example"}})
        );
        let p = DataPolicy::from_value(&dp(
            json!({"scopes": {"header": "X-Scopes", "trustHeader": true}}),
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(p.scopes.unwrap()).unwrap(),
            json!({"header": "X-Scopes", "trustHeader": true})
        );
        for (spec, loc) in [
            (
                json!({"scopes": {"trustHeader": true}}),
                "spec.scopes.trustHeader",
            ),
            (
                json!({"scopes": {"header": "x scopes"}}),
                "spec.scopes.header",
            ),
            (
                json!({"scopes": {"header": ":authority", "trustHeader": true}}),
                "spec.scopes.header",
            ),
            (
                json!({"scopes": {"metadata": {"key": ""}}}),
                "spec.scopes.metadata.key",
            ),
            (
                json!({"scopes": {"metadata": {"key": "k", "claim": "a\u{0}b"}}}),
                "spec.scopes.metadata.claim",
            ),
        ] {
            let e = DataPolicy::from_value(&dp(spec.clone())).unwrap_err();
            assert_eq!(e.location(), loc, "{spec}: {e}");
        }
        for spec in [
            json!({"scopes": {"metadata": {}}}),
            json!({"scopes": {"headers": "x"}}),
            json!({"scopes": {"trustHeader": "yes"}}),
        ] {
            let e = DataPolicy::from_value(&dp(spec.clone())).unwrap_err();
            assert!(e.location().starts_with("spec.scopes"), "{spec}: {e}");
        }
    }

    #[test]
    fn enforced_is_split_off_and_label_values_are_checked() {
        let p = DataPolicy::from_value(&dp(json!({"enforced": true}))).unwrap();
        assert!(p.enforced);
        assert!(!DataPolicy::from_value(&dp(json!({}))).unwrap().enforced);
        let e = DataPolicy::from_value(&dp(json!({"enforced": "yes"}))).unwrap_err();
        assert_eq!(e.location(), "spec.enforced");
        for v in ["-orders", "orders-", "a b", "a/b", &"a".repeat(64)] {
            let e = DataPolicy::from_value(&dp(json!({"selector": {"matchLabels": {"app": v}}})))
                .unwrap_err();
            assert_eq!(e.location(), "spec.selector.matchLabels.app", "{v}");
        }
        for v in ["", "orders", "v1.2_x", &"a".repeat(63)] {
            DataPolicy::from_value(&dp(json!({"selector": {"matchLabels": {"app": v}}}))).unwrap();
        }
    }

    #[test]
    fn inline_keys_are_refused_without_echo() {
        let e = DataPolicy::from_value(&dp(
            json!({"keys": [{"id": "k1", "inline": "0123456789abcdef-secret"}]}),
        ))
        .unwrap_err();
        assert_eq!(e.location(), "spec.keys[0].inline");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }
}
