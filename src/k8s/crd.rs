//! The `DataPolicy` CustomResourceDefinition, generated from the manifest types.
//!
//! Steps: the schemars schema of [`Manifest`] with OpenAPI 3 settings, every subschema inlined;
//! then [`structural`] turns it into a *structural* schema the API server accepts (no
//! `additionalProperties: false`, no defaults, no `nullable`, no formats, string enums as one
//! `type: string` + `enum`, a node mixing types becomes `x-kubernetes-preserve-unknown-fields`);
//! then [`annotate`] adds what only Kubernetes knows: list-map keys, patterns, ranges, `maxItems`
//! and CEL rules (`x-kubernetes-validations`). Nothing here is written by hand as a schema file.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::manifest::Manifest;

use super::spec::{Scopes, MAX_SCOPES_NAME};

/// API group.
pub const GROUP: &str = "meshdlp.io";
/// The only version.
pub const VERSION: &str = "v1alpha1";
/// Kind.
pub const KIND: &str = "DataPolicy";
/// Plural (the resource).
pub const PLURAL: &str = "datapolicies";
/// Short name for kubectl.
pub const SHORT_NAME: &str = "dp";
/// The CRD's name: `<plural>.<group>`.
pub const CRD_NAME: &str = "datapolicies.meshdlp.io";

/// Most routes in one DataPolicy (bounds CEL's cost estimate; the engine has no limit).
pub const MAX_ROUTES: u64 = 256;
/// Most custom classes in one DataPolicy: what the engine compiles beside the built-in pack
/// (each class is one detector; a test keeps the sum within the engine's limit).
pub const MAX_CLASSES: u64 = 100;
/// Most keys in one DataPolicy.
pub const MAX_KEYS: u64 = 32;
/// Longest `metadata.name` (a label value).
pub const MAX_NAME: usize = 63;
/// Longest label value (`selector.matchLabels`).
pub const MAX_LABEL_VALUE: usize = 63;
/// A label value as the API server checks it (empty, or alphanumeric at both ends with `-`, `_`
/// and `.` between).
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// HTTP methods the engine knows (src/route.rs), any case.
const METHODS_PATTERN: &str = "^(?i:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|CONNECT)$";

/// The schemars schema of [`Manifest`] with OpenAPI 3 settings, every subschema inlined.
pub fn manifest_openapi_schema() -> Value {
    openapi_schema_for::<Manifest>()
}

fn openapi_schema_for<T: schemars::JsonSchema>() -> Value {
    SchemaSettings::openapi3()
        .with(|s| {
            s.meta_schema = None;
            s.inline_subschemas = true;
        })
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The structural schema of a `DataPolicy`'s `spec`: the manifest's fields plus `selector` and
/// `delivery`, with the API server's checks.
pub fn spec_schema() -> Value {
    let mut s = manifest_openapi_schema();
    structural(&mut s);
    let obj = s.as_object_mut().expect("object schema");
    obj.remove("title");
    obj.insert(
        "description".into(),
        json!("A meshdlp policy (the fields of a policy manifest, see docs/POLICY.md) and where it applies."),
    );
    let props = obj["properties"].as_object_mut().expect("properties");
    props.insert(
        "selector".into(),
        json!({
            "type": "object",
            "description": "Workloads the policy applies to, by pod labels. Absent or empty: every workload of the namespace (mesh-wide in the mesh root namespace).",
            "properties": {
                "matchLabels": {
                    "type": "object",
                    "description": "Labels a workload must have (all of them).",
                    // A label value: at most 63 characters, alphanumeric at both ends (the API
                    // server's own check for labels; Istio's selector is refused otherwise).
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": MAX_LABEL_VALUE,
                        "pattern": LABEL_VALUE_PATTERN
                    },
                    "maxProperties": 64
                }
            }
        }),
    );
    props.insert(
        "delivery".into(),
        json!({
            "type": "object",
            "description": "How the filter reaches the sidecars.",
            "properties": {
                "mode": {
                    "type": "string",
                    "enum": ["EnvoyFilter", "WasmPlugin"],
                    "description": "`EnvoyFilter` (the default): an EnvoyFilter with the filter as an ECDS extension config that holds headers until the body is inspected. `WasmPlugin`: an Istio WasmPlugin, degraded (headers are sent before the body is inspected, so a block after them can only reset the stream)."
                }
            }
        }),
    );
    props.insert(
        "enforced".into(),
        json!({
            "type": "boolean",
            "description": "On the mesh policy (the DataPolicy in the mesh root namespace) only: its rules are a floor. Its routes come before a namespace policy's, and a namespace policy that would go below it (monitor where it enforces, a higher minConfidence, fewer classes detected, weaker actions, a wider scope or larger limits, fail-open onError, other scopes or routing, ...) is refused with the location (Compiled=False, MeshMergeFailed). Refused on any other DataPolicy. See docs/ISTIO.md, \"The mesh policy as a floor\"."
        }),
    );
    // `scopes`: the filter's own setting, typed (generated from [`Scopes`]).
    let mut scopes = openapi_schema_for::<Scopes>();
    structural(&mut scopes);
    if let Some(o) = scopes.as_object_mut() {
        o.remove("title");
    }
    props.insert("scopes".into(), scopes);
    annotate(&mut s);
    s
}

/// The status subresource's schema.
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "What the controller made of the policy.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The metadata.generation the conditions describe."
            },
            "conditions": {
                "type": "array",
                "description": "`Accepted` (no conflict with other policies), `Compiled` (the engine compiled the policy; on False the message has the location, e.g. `spec.routes[2].response.fields[0].path: ...`), `Programmed` (the Istio objects written); `Overlapping` (present only while another programmed policy of the namespace may select a pod this one selects - a selector that requires no label with a different value: such a pod gets both filters; reason `SelectorOverlap`, the message names the policies and the labels).",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "required": ["type", "status", "lastTransitionTime", "reason", "message"],
                    "properties": {
                        "type": {"type": "string", "maxLength": 316, "description": "Accepted, Compiled, Programmed or Overlapping."},
                        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                        "reason": {"type": "string", "maxLength": 1024, "description": "A CamelCase reason."},
                        "message": {"type": "string", "maxLength": 32768, "description": "Human-readable details."},
                        "lastTransitionTime": {"type": "string", "format": "date-time"},
                        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0}
                    }
                }
            }
        }
    })
}

/// The `DataPolicy` CustomResourceDefinition (`apiextensions.k8s.io/v1`).
pub fn crd() -> Value {
    let condition = |t: &str| format!(".status.conditions[?(@.type==\"{t}\")].status");
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "meshdlp", "app.kubernetes.io/part-of": "meshdlp"}
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": format!("{KIND}List"),
                "plural": PLURAL,
                "singular": KIND.to_ascii_lowercase(),
                "shortNames": [SHORT_NAME],
                "categories": ["meshdlp"]
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "enforce (default) or monitor"},
                    {"name": "Delivery", "type": "string", "jsonPath": ".spec.delivery.mode", "description": "EnvoyFilter (default) or WasmPlugin"},
                    {"name": "Compiled", "type": "string", "jsonPath": condition("Compiled")},
                    {"name": "Programmed", "type": "string", "jsonPath": condition("Programmed")},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "DataPolicy: a meshdlp data-loss-prevention policy for the workloads of a namespace (or, in the mesh root namespace, the whole mesh).",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        // The name goes into the owned objects' names (`meshdlp-<name>`) and is
                        // the value of the `meshdlp.io/datapolicy` label: 63 characters at most.
                        // The root schema may restrict `metadata.name` (and nothing else of
                        // metadata); a `maxLength` is checked with the other schema errors, where
                        // a root CEL rule would run only once they pass (and its `fieldPath`
                        // cannot name metadata).
                        "metadata": {
                            "type": "object",
                            "properties": {"name": {"type": "string", "maxLength": MAX_NAME}}
                        },
                        "spec": spec_schema(),
                        "status": status_schema()
                    }
                }}
            }]
        }
    })
}

/// Makes a schemars OpenAPI schema structural (recursively).
fn structural(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        obj.remove("additionalProperties");
    }
    // Stored objects stay as written; the engine applies its defaults. Nulls are pruned by the
    // server when a node is not nullable, which the engine reads as absent.
    for k in [
        "default", "nullable", "format", "title", "examples", "example", "$schema",
    ] {
        obj.remove(k);
    }
    // Doc comments keep their line breaks; `kubectl explain` wraps by itself.
    if let Some(Value::String(d)) = obj.get_mut("description") {
        *d = unwrap_lines(d);
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if let Some(Value::Array(types)) = obj.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        obj.insert(
            "type".into(),
            kept.into_iter().next().unwrap_or(Value::Null),
        );
    }
    for key in ["oneOf", "anyOf"] {
        let Some(Value::Array(variants)) = obj.remove(key) else {
            continue;
        };
        let variants: Vec<Value> = variants
            .into_iter()
            .filter(|v| !is_null_schema(v))
            .collect();
        if let Some(values) = string_enum(&variants) {
            // Documented enums (`oneOf` of `const`s) become one `type: string` + `enum`; the
            // values' own descriptions are appended to the node's.
            let mut docs: Vec<String> = Vec::new();
            for v in &variants {
                if let (Some(d), Some(Value::Array(e))) = (v.get("description"), v.get("enum")) {
                    if e.len() == 1 {
                        let d = d.as_str().unwrap_or("").trim_end_matches('.');
                        docs.push(format!("`{}`: {d}", e[0].as_str().unwrap_or("")));
                    }
                }
            }
            if !docs.is_empty() {
                let base = obj
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let sep = if base.is_empty() { "" } else { " " };
                let text = format!("{base}{sep}{}.", docs.join("; "));
                obj.insert("description".into(), json!(unwrap_lines(&text)));
            }
            obj.insert("type".into(), json!("string"));
            obj.insert("enum".into(), Value::Array(values));
        } else if variants.len() == 1 {
            // `Option<T>`: T, keeping the field's description.
            let mut inner = variants.into_iter().next().unwrap_or_default();
            if let (Some(d), Some(i)) = (obj.get("description").cloned(), inner.as_object_mut()) {
                i.insert("description".into(), d);
            }
            if let Value::Object(i) = inner {
                obj.extend(i);
            }
            structural(node);
            return;
        } else {
            // Mixed types (an action: a name or an object). Structural schemas cannot say that;
            // the engine validates the value when the controller compiles the policy. The
            // description says what the forms are (for `kubectl explain`).
            let mut forms = Vec::new();
            for v in &variants {
                let mut v = v.clone();
                structural(&mut v);
                if let Some(Value::Array(names)) = v.get("enum") {
                    let names: Vec<String> = names
                        .iter()
                        .map(|n| format!("`{}`", n.as_str().unwrap_or("")))
                        .collect();
                    forms.push(format!("a name ({})", names.join(", ")));
                } else if let Some(Value::Object(props)) = v.get("properties") {
                    let keys: Vec<String> = props.keys().map(|k| format!("`{k}`")).collect();
                    forms.push(format!("an object ({})", keys.join(", ")));
                }
            }
            let base = obj
                .remove("description")
                .and_then(|d| d.as_str().map(str::to_string));
            obj.clear();
            let mut description = base.unwrap_or_default();
            if !forms.is_empty() {
                let sep = if description.is_empty() { "" } else { " " };
                description = format!("{description}{sep}Either {}.", forms.join(" or "));
            }
            if !description.is_empty() {
                obj.insert("description".into(), json!(description));
            }
            obj.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            bound_depth(obj);
            return;
        }
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for v in props.values_mut() {
            structural(v);
        }
    }
    for k in ["items", "additionalProperties"] {
        if let Some(v) = obj.get_mut(k) {
            structural(v);
        }
    }
}

/// Bounds an untyped node (an action: a name or an object) to a scalar or an object of scalars.
///
/// A node that keeps unknown fields would otherwise store JSON of any depth, and clients that
/// decode with serde_json stop at 128 levels: one policy nested 130 levels deep made the
/// controller's DataPolicy watch fail for every namespace (review of session 7). CEL cannot see
/// an untyped node (not even from its typed parent), and a `type` would refuse the bare name; but
/// value validations apply to untyped nodes: `maxItems: 0` (no array but `[]`) and
/// `additionalProperties` (the schema of every member of an object) with `maxProperties: 0` and
/// `maxItems: 0` (members are scalars, `{}` or `[]`). Verified on the API server
/// (tests/k8s/test_crd.py): a deeper action is a 422.
fn bound_depth(obj: &mut Map<String, Value>) {
    obj.insert("maxItems".into(), json!(0));
    obj.insert(
        "additionalProperties".into(),
        json!({
            "description": "An option of the action: a string, number or boolean.",
            "x-kubernetes-preserve-unknown-fields": true,
            "maxProperties": 0,
            "maxItems": 0
        }),
    );
}

/// Single line breaks become spaces; paragraph breaks stay.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `{type: null}` or `{enum: [null]}`: the `None` of an `Option`.
fn is_null_schema(v: &Value) -> bool {
    v.get("type") == Some(&json!("null")) || v.get("enum") == Some(&json!([null]))
}

/// The values when every variant is a string `enum`/`const`.
fn string_enum(variants: &[Value]) -> Option<Vec<Value>> {
    let mut values = Vec::new();
    for v in variants {
        let t = v.get("type");
        if t.is_some() && t != Some(&json!("string")) {
            return None;
        }
        if let Some(Value::Array(e)) = v.get("enum") {
            if !e.iter().all(Value::is_string) {
                return None;
            }
            values.extend(e.iter().cloned());
        } else if let Some(c @ Value::String(_)) = v.get("const") {
            values.push(c.clone());
        } else {
            return None;
        }
    }
    (!values.is_empty()).then_some(values)
}

/// The node at `path` (property names; `[]` = the items of an array).
fn at<'a>(root: &'a mut Value, path: &str) -> &'a mut Map<String, Value> {
    let mut node = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        node = if part == "[]" {
            node.get_mut("items")
        } else {
            node.get_mut("properties").and_then(|p| p.get_mut(part))
        }
        .unwrap_or_else(|| {
            panic!("CRD schema: no `{part}` in `{path}` (did the manifest change?)")
        });
    }
    node.as_object_mut().expect("schema object")
}

fn set(root: &mut Value, path: &str, extra: Value) {
    let node = at(root, path);
    if let Value::Object(extra) = extra {
        node.extend(extra);
    }
}

fn rule(rule: &str, message: &str) -> Value {
    json!({"rule": rule, "message": message})
}

/// What Kubernetes can check beyond the types: list-map keys (unique names/ids), patterns,
/// ranges, `maxItems` where CEL iterates, and CEL rules. Mirrors the engine's own checks
/// (src/policy.rs, src/route.rs, src/transform.rs), which remain the reference.
fn annotate(spec: &mut Value) {
    // Confidence ranges (Policy::compile_with_env).
    set(spec, "minConfidence", json!({"minimum": 0, "maximum": 1}));
    set(
        spec,
        "classes.[].confidence",
        json!({"minimum": 0, "maximum": 1}),
    );

    // Custom classes: unique names (a list-map keyed by name), the id pattern of the engine.
    set(
        spec,
        "classes",
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "maxItems": MAX_CLASSES}),
    );
    set(
        spec,
        "classes.[].name",
        json!({"pattern": "^[a-z][a-z0-9_]*$", "minLength": 1, "maxLength": 64}),
    );
    // Keywords: bounded as the engine bounds them (custom_to_pack).
    set(spec, "classes.[].keywords", json!({"maxItems": 64}));
    set(
        spec,
        "classes.[].keywords.[]",
        json!({"minLength": 1, "maxLength": 64}),
    );

    // Keys: unique ids; in a cluster the secret comes from a Secret or the environment, never
    // from the object (KeyRing::compile).
    set(
        spec,
        "keys",
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"], "maxItems": MAX_KEYS}),
    );
    set(
        spec,
        "keys.[].id",
        json!({"pattern": "^[A-Za-z0-9-]{1,32}$", "maxLength": 32}),
    );
    set(
        spec,
        "keys.[]",
        json!({"x-kubernetes-validations": [
            rule("!has(self.inline)",
                 "`inline` keys (the secret in the object) are not allowed in a DataPolicy: use `secretRef`"),
            rule("has(self.env) != has(self.secretRef)", "a key needs exactly one of `env` or `secretRef`"),
            // Whoever may write a DataPolicy must not turn any variable of the sidecar (a
            // credential of the proxy) into a hashing key: a MAC oracle over it, and "not set"
            // errors that tell which variables exist.
            rule("!has(self.env) || self.env == 'MESHDLP_KEY' || self.env.matches('^MESHDLP_KEY_[A-Z0-9_]+$')",
                 "`env` must be `MESHDLP_KEY` or `MESHDLP_KEY_` and capitals, digits or `_` (other variables of the sidecar are not keys)"),
        ]}),
    );
    // Bounded, so the CEL regex above has a cost the API server accepts.
    set(spec, "keys.[].env", json!({"maxLength": 128}));
    // A Secret's name (DNS subdomain) and data key, as the API server checks them.
    set(
        spec,
        "keys.[].secretRef.name",
        json!({"minLength": 1, "maxLength": 253,
               "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}),
    );
    set(
        spec,
        "keys.[].secretRef.key",
        json!({"minLength": 1, "maxLength": 253, "pattern": "^[-._a-zA-Z0-9]+$"}),
    );

    // Routes: unique names (list-map), the metric-label pattern, `default` reserved, one path
    // matcher at most (RouteMatcher::compile), paths starting with '/'.
    set(
        spec,
        "routes",
        json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "maxItems": MAX_ROUTES}),
    );
    set(
        spec,
        "routes.[].name",
        json!({
            "pattern": "^[A-Za-z0-9_-]+$", "minLength": 1, "maxLength": 64,
            "x-kubernetes-validations": [rule("self != 'default'", "route name `default` is reserved for the default route")]
        }),
    );
    set(
        spec,
        "routes.[].match",
        json!({"x-kubernetes-validations": [rule(
            "(has(self.path) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.regex) ? 1 : 0) <= 1",
            "use one of `path`, `prefix`, `template` or `regex`",
        )]}),
    );
    for field in ["path", "prefix", "template"] {
        set(
            spec,
            &format!("routes.[].match.{field}"),
            json!({"pattern": "^/"}),
        );
    }
    set(
        spec,
        "routes.[].match.methods.[]",
        json!({"pattern": METHODS_PATTERN, "maxLength": 7}),
    );

    // Scopes: a header name as the filter takes it; a trusted header needs a header; metadata
    // names without NUL (the filter joins them into a property path with NUL).
    set(
        spec,
        "scopes",
        json!({"x-kubernetes-validations": [rule(
            "!has(self.trustHeader) || !self.trustHeader || has(self.header)",
            "`trustHeader: true` needs `header`",
        )]}),
    );
    set(
        spec,
        "scopes.header",
        json!({"pattern": "^[A-Za-z0-9_-]+$", "minLength": 1, "maxLength": MAX_SCOPES_NAME}),
    );
    for field in ["filter", "key", "claim"] {
        set(
            spec,
            &format!("scopes.metadata.{field}"),
            json!({"pattern": "^[^\\x00]+$", "minLength": 1, "maxLength": MAX_SCOPES_NAME}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_admits_no_more_custom_classes_than_the_engine_compiles() {
        let builtin = crate::BUILTIN_PACK.matches("[[detector]]").count();
        assert!(
            builtin + MAX_CLASSES as usize <= crate::detect::MAX_DETECTORS,
            "{builtin} built-in detectors + {MAX_CLASSES} classes"
        );
    }

    fn walk<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
        if let Some(o) = v.as_object() {
            out.push((path.clone(), o));
            if let Some(Value::Object(p)) = o.get("properties") {
                for (k, c) in p {
                    walk(c, format!("{path}.{k}"), out);
                }
            }
            if let Some(c) = o.get("items") {
                walk(c, format!("{path}[]"), out);
            }
            if let Some(c @ Value::Object(_)) = o.get("additionalProperties") {
                walk(c, format!("{path}{{}}"), out);
            }
        }
    }

    #[test]
    fn spec_schema_is_structural() {
        let spec = spec_schema();
        let mut nodes = Vec::new();
        walk(&spec, "spec".into(), &mut nodes);
        let mut preserved = Vec::new();
        for (path, node) in &nodes {
            for k in [
                "oneOf", "anyOf", "allOf", "default", "nullable", "$ref", "const", "title",
            ] {
                assert!(!node.contains_key(k), "{path} has `{k}`");
            }
            assert_ne!(
                node.get("additionalProperties"),
                Some(&json!(false)),
                "{path}"
            );
            if node.contains_key("x-kubernetes-preserve-unknown-fields") {
                preserved.push(path.as_str());
            } else {
                let t = node.get("type").and_then(Value::as_str);
                assert!(
                    matches!(
                        t,
                        Some("object" | "array" | "string" | "integer" | "number" | "boolean")
                    ),
                    "{path}: type {t:?}"
                );
            }
            if let Some(Value::Array(e)) = node.get("enum") {
                assert_eq!(node["type"], "string", "{path}");
                assert!(!e.is_empty());
            }
        }
        // Only actions mix types (a name or an object); their members keep unknown fields too
        // (bounded to scalars: `untyped_nodes_are_bounded_to_one_level_of_scalars`).
        let actions = preserved.iter().filter(|p| is_action(p)).count();
        for p in &preserved {
            let member = p.strip_suffix("{}").is_some_and(is_action);
            assert!(is_action(p) || member, "{p} preserves unknown fields");
        }
        // actions{}, defaultAction, fields[].action x request/response x routes[]/defaultRoute
        assert_eq!(actions, 12, "{preserved:?}");
        assert_eq!(preserved.len(), 24, "{preserved:?}");
    }

    fn is_action(path: &str) -> bool {
        path.ends_with(".actions{}")
            || path.ends_with(".defaultAction")
            || path.ends_with(".fields[].action")
    }

    /// Regression (review of session 7): an untyped node stored JSON of any depth.
    #[test]
    fn untyped_nodes_are_bounded_to_one_level_of_scalars() {
        let spec = spec_schema();
        let mut nodes = Vec::new();
        walk(&spec, "spec".into(), &mut nodes);
        let mut checked = 0;
        for (path, node) in &nodes {
            if !node.contains_key("x-kubernetes-preserve-unknown-fields") {
                continue;
            }
            // an action's members, or a member itself: scalars, `{}` or `[]`
            let members = if is_action(path) {
                node["additionalProperties"].clone()
            } else {
                Value::Object((*node).clone())
            };
            assert_eq!(node.get("maxItems"), Some(&json!(0)), "{path}");
            assert_eq!(members["maxProperties"], 0, "{path}");
            assert_eq!(members["maxItems"], 0, "{path}");
            checked += 1;
        }
        assert_eq!(checked, 24);
    }

    #[test]
    fn scopes_are_typed_and_checked() {
        let spec = spec_schema();
        let s = &spec["properties"]["scopes"];
        assert_eq!(s["type"], "object");
        assert_eq!(s["properties"]["header"]["type"], "string");
        assert_eq!(s["properties"]["header"]["pattern"], "^[A-Za-z0-9_-]+$");
        assert_eq!(s["properties"]["trustHeader"]["type"], "boolean");
        let m = &s["properties"]["metadata"];
        assert_eq!(m["type"], "object");
        assert_eq!(m["required"], json!(["key"]));
        for f in ["filter", "key", "claim"] {
            assert_eq!(m["properties"][f]["type"], "string", "{f}");
            assert_eq!(m["properties"][f]["minLength"], 1, "{f}");
        }
        assert_eq!(
            s["x-kubernetes-validations"][0]["message"],
            "`trustHeader: true` needs `header`"
        );
        assert!(s["description"]
            .as_str()
            .unwrap()
            .contains("payload_in_metadata"));
    }

    #[test]
    fn selector_label_values_are_bounded() {
        let spec = spec_schema();
        let v =
            &spec["properties"]["selector"]["properties"]["matchLabels"]["additionalProperties"];
        assert_eq!(v["type"], "string");
        assert_eq!(v["maxLength"], 63);
        let re = regex::Regex::new(v["pattern"].as_str().unwrap()).unwrap();
        for ok in ["", "a", "orders", "v1.2_3-x", &"a".repeat(63)] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["-a", "a-", ".a", "a b", "a/b", "*"] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn enforced_is_a_boolean() {
        let spec = spec_schema();
        assert_eq!(spec["properties"]["enforced"]["type"], "boolean");
        assert!(spec["properties"]["enforced"]["description"]
            .as_str()
            .unwrap()
            .contains("floor"));
    }

    #[test]
    fn metadata_name_is_bounded() {
        let c = crd();
        let root = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(
            root["properties"]["metadata"]["properties"]["name"]["maxLength"],
            63
        );
    }

    #[test]
    fn enums_and_documented_values() {
        let spec = spec_schema();
        let v = &spec["properties"]["classes"]["items"]["properties"]["validator"];
        assert_eq!(v["type"], "string");
        let values = v["enum"].as_array().unwrap();
        assert!(values.contains(&json!("luhn")) && values.contains(&json!("phone_intl")));
        assert!(v["description"]
            .as_str()
            .unwrap()
            .contains("`phone_intl`: An international number"));
        assert_eq!(
            spec["properties"]["mode"]["enum"],
            json!(["enforce", "monitor"])
        );
        assert!(spec["properties"]["mode"].get("default").is_none());
    }

    #[test]
    fn crd_names_and_printer_columns() {
        let c = crd();
        assert_eq!(c["metadata"]["name"], format!("{PLURAL}.{GROUP}"));
        let v = &c["spec"]["versions"][0];
        let cols: Vec<&str> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(cols, ["Mode", "Delivery", "Compiled", "Programmed", "Age"]);
        assert_eq!(v["subresources"], json!({"status": {}}));
    }
}
