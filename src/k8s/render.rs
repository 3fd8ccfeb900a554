//! The Istio objects for a DataPolicy (docs/plans/issue8-kubernetes.md, section 3).
//!
//! `EnvoyFilter` delivery (the default): the filter as an ECDS extension config (so Envoy holds
//! headers while the body is inspected: `allow_on_headers_stop_iteration`), inserted before the
//! router of inbound sidecar listeners; a namespace policy also REMOVEs the mesh filter
//! (`meshdlp.mesh`), so a sidecar runs one VM. `WasmPlugin` delivery: an Istio WasmPlugin,
//! degraded (`holdHeaders: false`).
//!
//! Rendering is a pure function of the DataPolicy (and the mesh policy), the image and the mesh
//! root namespace: objects come out with sorted keys, identical for identical input. The policy
//! is compiled by the engine first; nothing is rendered from a policy the filter would refuse.
//! No key material is ever in the output: `secretRef` keys become `env: MESHDLP_KEY_<ID>` in the
//! rendered policy and `host_env_keys` of the VM; the value reaches the istio-proxy container
//! from the Secret (`secretKeyRef`, see [`Rendered::secret_env`]).

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::error::PolicyError;
use crate::manifest::{secret_ref_env, Manifest, SecretKeyRef};

use super::crd::KIND;
use super::merge::{merge, Merged};
use super::spec::{compile_placeholder, under, DataPolicy, DeliveryMode, Scopes, API_VERSION};

/// The default mesh root namespace (Istio's `meshConfig.rootNamespace`).
pub const DEFAULT_MESH_ROOT_NAMESPACE: &str = "istio-system";
/// The filter name of the mesh-wide policy; namespace policies REMOVE it.
pub const MESH_FILTER_NAME: &str = "meshdlp.mesh";
/// Labels on every rendered object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The DataPolicy an object was rendered from (its name; the namespace is the object's).
pub const DATAPOLICY_LABEL: &str = "meshdlp.io/datapolicy";

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const HCM: &str = "envoy.filters.network.http_connection_manager";

/// The filter's OCI image, pinned by digest: `oci://REGISTRY/REPOSITORY@sha256:<64 hex>`.
///
/// Only a digest: a tag can be moved under a running mesh, and Istio checks the `sha256` it is
/// given against the manifest digest of what it pulls.
///
/// ```
/// use meshdlp::k8s::ImageRef;
/// let hex = "ab".repeat(32);
/// let image: ImageRef = format!("oci://127.0.0.1:5000/meshdlp-filter@sha256:{hex}").parse().unwrap();
/// assert_eq!(image.sha256(), hex);
/// assert!("oci://registry.example/meshdlp-filter:latest".parse::<ImageRef>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    registry: String,
    repository: String,
    digest: String,
}

impl ImageRef {
    /// The URL (`oci://REGISTRY/REPOSITORY@sha256:HEX`).
    pub fn url(&self) -> String {
        format!(
            "oci://{}/{}@sha256:{}",
            self.registry, self.repository, self.digest
        )
    }

    /// The manifest digest, 64 lower-case hex digits.
    pub fn sha256(&self) -> &str {
        &self.digest
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url())
    }
}

const IMAGE_FORM: &str = "expected oci://REGISTRY/REPOSITORY@sha256:<64 lower-case hex digits> (pinned by digest; no tag)";

impl std::str::FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageRef, String> {
        let bad = |why: &str| Err(format!("image `{s}`: {why}; {IMAGE_FORM}"));
        let Some(rest) = s.strip_prefix("oci://") else {
            return bad("not an oci:// reference");
        };
        let Some((name, digest)) = rest.split_once("@sha256:") else {
            return bad("no @sha256: digest");
        };
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return bad("the digest is not 64 lower-case hex digits");
        }
        let Some((registry, repository)) = name.split_once('/') else {
            return bad("no registry");
        };
        let (host, port) = match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let port_ok = port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return bad("the registry is not HOST or HOST:PORT");
        }
        // OCI distribution: lower-case path components, separators inside only.
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
        };
        if repository.contains(':') {
            return bad("a tag is not allowed");
        }
        if !repository.split('/').all(component_ok) {
            return bad("the repository is not lower-case path components");
        }
        Ok(ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            digest: digest.to_string(),
        })
    }
}

/// Where a rendered policy runs.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The filter image.
    pub image: ImageRef,
    /// Istio's root namespace: a DataPolicy there is mesh-wide.
    pub mesh_root_namespace: String,
}

/// A variable the istio-proxy container needs from a Secret (a `secretRef` key).
#[derive(Debug, Clone, PartialEq)]
pub struct SecretEnv {
    /// The environment variable (`MESHDLP_KEY_K1`).
    pub name: String,
    /// The key id in the policy.
    pub key_id: String,
    /// The Secret and its data key (in the workloads' namespace).
    pub secret: SecretKeyRef,
}

/// The rendered objects and what a platform engineer must add by hand.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The Istio objects (one EnvoyFilter or one WasmPlugin), sorted keys.
    pub objects: Vec<Value>,
    /// The policy the filter runs (merged, `secretRef` keys as `env`).
    pub policy: Manifest,
    /// The filter (and extension config) name: `meshdlp.<namespace>.<name>` or `meshdlp.mesh`.
    pub filter_name: String,
    /// Variables the VM reads from the sidecar (`host_env_keys`), sorted.
    pub host_env_keys: Vec<String>,
    /// Variables from Secrets, for the istio-proxy container (`valueFrom.secretKeyRef`).
    pub secret_env: Vec<SecretEnv>,
    /// Where the filter finds the caller's verified scopes (merged with the mesh's).
    pub scopes: Option<Scopes>,
    /// `namespace/name` of the mesh policy merged in.
    pub merged_with: Option<String>,
    /// Whether this is the mesh-wide policy.
    pub mesh_wide: bool,
}

impl Rendered {
    /// The istio-proxy `env` entries for the `secretRef` keys.
    pub fn istio_proxy_env(&self) -> Value {
        Value::Array(
            self.secret_env
                .iter()
                .map(|e| {
                    json!({"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret.name, "key": e.secret.key}}})
                })
                .collect(),
        )
    }
}

/// The plugin configuration (filters/meshdlp-filter/src/config.rs), as JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FilterConfig<'a> {
    policy: &'a Manifest,
    /// `spec.scopes` (merged: the namespace's, else the mesh's), as the filter reads it.
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<&'a Scopes>,
    hold_headers: bool,
}

/// Renders the Istio objects for `dp`; `mesh` is the mesh-wide DataPolicy to merge into a
/// namespace policy (ignored for none). Errors are located in the object they come from.
pub fn render(
    dp: &DataPolicy,
    mesh: Option<&DataPolicy>,
    opts: &RenderOptions,
) -> Result<Rendered, PolicyError> {
    let Some(namespace) = dp.namespace.as_deref() else {
        return Err(PolicyError::new(
            "metadata.namespace",
            "missing: the rendered objects are named after the namespace",
        ));
    };
    // The fields are public: a DataPolicy built in code gets the same checks as a parsed one
    // (above all, no inline key material can reach the output).
    dp.check_cluster_rules()?;
    if let Some(m) = mesh {
        m.check_cluster_rules().map_err(|e| {
            PolicyError::new(
                e.location(),
                format!("(in the mesh policy {}) {}", m.id(), e.message()),
            )
        })?;
    }
    let root = opts.mesh_root_namespace.as_str();
    let mesh_wide = namespace == root;
    if dp.enforced && !mesh_wide {
        return Err(PolicyError::new(
            "spec.enforced",
            format!("only the mesh policy (in the mesh root namespace `{root}`) can be enforced: it makes the mesh rules a floor for the namespace policies"),
        ));
    }
    let merged: Option<Merged> = match mesh {
        None => None,
        Some(_) if mesh_wide => {
            return Err(PolicyError::new(
                "metadata.namespace",
                format!("{} is itself in the mesh root namespace `{root}`: it is the mesh policy, there is nothing to merge", dp.id()),
            ))
        }
        Some(m) => {
            if m.namespace.as_deref() != Some(root) {
                return Err(PolicyError::new(
                    "metadata.namespace",
                    format!(
                        "the mesh policy {} is not in the mesh root namespace `{root}`",
                        m.id()
                    ),
                ));
            }
            if dp.delivery != DeliveryMode::EnvoyFilter || m.delivery != DeliveryMode::EnvoyFilter
            {
                // A WasmPlugin cannot REMOVE the mesh filter, and the mesh WasmPlugin's filter is
                // not `meshdlp.mesh`: the sidecar would run both.
                return Err(PolicyError::new(
                    "spec.delivery.mode",
                    format!("UnsupportedCombination: a namespace policy ({}) and the mesh policy {} ({}) are merged only when both use EnvoyFilter delivery", dp.delivery.name(), m.id(), m.delivery.name()),
                ));
            }
            m.compile().map_err(|e| {
                PolicyError::new(
                    e.location(),
                    format!("(in the mesh policy {}) {}", m.id(), e.message()),
                )
            })?;
            Some(merge(dp, m)?)
        }
    };
    let relocate = |e: PolicyError| match &merged {
        Some(m) => m.relocate(e),
        None => under("spec", e),
    };
    let manifest = merged.as_ref().map_or(&dp.manifest, |m| &m.manifest);
    compile_placeholder(manifest).map_err(relocate)?;

    // secretRef keys read MESHDLP_KEY_<ID>; no other key may read that variable.
    let mut policy = manifest.clone();
    let mut secret_env = Vec::new();
    let mut host_env_keys = Vec::new();
    for (i, k) in manifest.keys.iter().enumerate() {
        let var = k.env_var().unwrap_or_default();
        if let Some(other) = manifest.keys[..i]
            .iter()
            .find(|o| o.env_var().as_deref() == Some(var.as_str()))
        {
            if k.secret_ref.is_some() || other.secret_ref.is_some() {
                return Err(relocate(PolicyError::new(
                    format!("keys[{i}]"),
                    format!(
                        "keys `{}` and `{}` would both read `{var}` (a `secretRef` key `{}` reads `{}`)",
                        other.id,
                        k.id,
                        if k.secret_ref.is_some() { &k.id } else { &other.id },
                        var
                    ),
                )));
            }
        }
        if let Some(r) = &k.secret_ref {
            secret_env.push(SecretEnv {
                name: var.clone(),
                key_id: k.id.clone(),
                secret: r.clone(),
            });
            policy.keys[i].secret_ref = None;
            policy.keys[i].env = Some(secret_ref_env(&k.id));
        }
        host_env_keys.push(var);
    }
    host_env_keys.sort();
    host_env_keys.dedup();

    let filter_name = if mesh_wide {
        MESH_FILTER_NAME.to_string()
    } else {
        format!("meshdlp.{namespace}.{}", dp.name)
    };
    let scopes = match &merged {
        Some(m) => m.scopes.clone(),
        None => dp.scopes.clone(),
    };
    let ctx = Ctx {
        dp,
        namespace,
        scopes: scopes.as_ref(),
        filter_name: &filter_name,
        image: &opts.image,
        host_env_keys: &host_env_keys,
    };
    let object = match dp.delivery {
        DeliveryMode::EnvoyFilter => ctx.envoy_filter(&policy, !mesh_wide)?,
        DeliveryMode::WasmPlugin => ctx.wasm_plugin(&policy)?,
    };
    Ok(Rendered {
        objects: vec![object],
        policy,
        filter_name,
        host_env_keys,
        secret_env,
        scopes,
        merged_with: merged.map(|m| m.mesh_id),
        mesh_wide,
    })
}

struct Ctx<'a> {
    dp: &'a DataPolicy,
    namespace: &'a str,
    scopes: Option<&'a Scopes>,
    filter_name: &'a str,
    image: &'a ImageRef,
    host_env_keys: &'a [String],
}

fn config_json(
    policy: &Manifest,
    scopes: Option<&Scopes>,
    hold_headers: bool,
) -> Result<String, PolicyError> {
    serde_json::to_string(&FilterConfig {
        policy,
        scopes,
        hold_headers,
    })
    .map_err(|e| PolicyError::new("spec", format!("cannot serialize the policy: {e}")))
}

/// `match` of an HTTP filter of inbound sidecar listeners, by its name.
fn inbound_http_filter(name: &str) -> Value {
    json!({
        "context": "SIDECAR_INBOUND",
        "listener": {"filterChain": {"filter": {"name": HCM, "subFilter": {"name": name}}}}
    })
}

impl Ctx<'_> {
    fn metadata(&self) -> Value {
        let mut meta = json!({
            "name": format!("meshdlp-{}", self.dp.name),
            "namespace": self.namespace,
            "labels": {MANAGED_BY_LABEL: "meshdlp", DATAPOLICY_LABEL: self.dp.name},
        });
        if let Some(uid) = &self.dp.uid {
            meta["ownerReferences"] = json!([{
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": self.dp.name,
                "uid": uid,
                "controller": true,
            }]);
        }
        meta
    }

    fn envoy_filter(&self, policy: &Manifest, remove_mesh: bool) -> Result<Value, PolicyError> {
        let name = self.filter_name;
        let mut env = json!({
            // Read and stripped by istio-agent when it fetches the module.
            "key_values": {"ISTIO_META_WASM_IMAGE_PULL_POLICY": "IfNotPresent"}
        });
        if !self.host_env_keys.is_empty() {
            env["host_env_keys"] = json!(self.host_env_keys);
        }
        let extension = json!({
            "applyTo": "EXTENSION_CONFIG",
            "patch": {"operation": "ADD", "value": {
                "name": name,
                "typed_config": {
                    "@type": WASM_TYPE,
                    "config": {
                        "name": name,
                        "root_id": "meshdlp",
                        "vm_config": {
                            "vm_id": name,
                            "runtime": "envoy.wasm.runtime.v8",
                            // As Istio's own buildDataSource: the agent rewrites it to a local file.
                            "code": {"remote": {
                                "http_uri": {"uri": self.image.url(), "cluster": "_", "timeout": "30s"},
                                "sha256": self.image.sha256()
                            }},
                            "environment_variables": env
                        },
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": config_json(policy, self.scopes, true)?
                        },
                        "allow_on_headers_stop_iteration": true,
                        "failure_policy": "FAIL_RELOAD"
                    }
                }
            }}
        });
        let mut patches = vec![extension];
        if remove_mesh {
            patches.push(json!({
                "applyTo": "HTTP_FILTER",
                "match": inbound_http_filter(MESH_FILTER_NAME),
                "patch": {"operation": "REMOVE"}
            }));
        }
        patches.push(json!({
            "applyTo": "HTTP_FILTER",
            "match": inbound_http_filter("envoy.filters.http.router"),
            "patch": {"operation": "INSERT_BEFORE", "value": {
                "name": name,
                "config_discovery": {
                    "config_source": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
                    // istio-agent substitutes an RBAC filter when the module cannot be fetched.
                    "type_urls": [WASM_TYPE, RBAC_TYPE]
                }
            }}
        }));
        let mut spec = Map::new();
        if !self.dp.selector.is_empty() {
            spec.insert(
                "workloadSelector".into(),
                json!({"labels": self.dp.selector}),
            );
        }
        spec.insert("configPatches".into(), Value::Array(patches));
        Ok(json!({
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "EnvoyFilter",
            "metadata": self.metadata(),
            "spec": spec
        }))
    }

    fn wasm_plugin(&self, policy: &Manifest) -> Result<Value, PolicyError> {
        let config: Value = serde_json::from_str(&config_json(policy, self.scopes, false)?)
            .map_err(|e| PolicyError::new("spec", format!("cannot serialize the policy: {e}")))?;
        let mut spec = json!({
            "url": self.image.url(),
            "sha256": self.image.sha256(),
            "imagePullPolicy": "IfNotPresent",
            // After Istio's authentication (jwt_authn), so the caller's scopes are known.
            "phase": "AUTHZ",
            "type": "HTTP",
            // Inbound only, as the EnvoyFilter's SIDECAR_INBOUND.
            "match": [{"mode": "SERVER"}],
            "failStrategy": "FAIL_RELOAD",
            "pluginName": "meshdlp",
            "pluginConfig": config,
        });
        if !self.dp.selector.is_empty() {
            spec["selector"] = json!({"matchLabels": self.dp.selector});
        }
        if !self.host_env_keys.is_empty() {
            spec["vmConfig"] = json!({"env": self
                .host_env_keys
                .iter()
                .map(|k| json!({"name": k, "valueFrom": "HOST"}))
                .collect::<Vec<_>>()});
        }
        Ok(json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": self.metadata(),
            "spec": spec
        }))
    }
}

/// Checks the constant names stay in step with the CRD.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_version_matches_crd() {
        use super::super::crd::{GROUP, VERSION};
        assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    }

    #[test]
    fn image_refs() {
        let hex = "0123456789abcdef".repeat(4);
        let ok = format!("oci://127.0.0.1:5000/meshdlp/filter@sha256:{hex}");
        let image: ImageRef = ok.parse().unwrap();
        assert_eq!(image.url(), ok);
        assert_eq!(image.sha256(), hex);
        for bad in [
            format!("127.0.0.1:5000/meshdlp-filter@sha256:{hex}"),
            format!("oci://127.0.0.1:5000/meshdlp-filter:v1@sha256:{hex}"),
            format!(
                "oci://127.0.0.1:5000/meshdlp-filter@sha256:{}",
                hex.to_uppercase()
            ),
            format!("oci://127.0.0.1:5000/meshdlp-filter@sha256:{}", &hex[1..]),
            format!("oci://meshdlp-filter@sha256:{hex}"),
            format!("oci://reg:port/meshdlp-filter@sha256:{hex}"),
            format!("oci://reg/Meshdlp@sha256:{hex}"),
            "oci://reg/meshdlp-filter:latest".to_string(),
        ] {
            let e = bad.parse::<ImageRef>().unwrap_err();
            assert!(
                e.contains("oci://REGISTRY/REPOSITORY@sha256:"),
                "{bad}: {e}"
            );
        }
    }
}
