//! `meshdlp render` / `meshdlp check` of DataPolicy objects (issue 8, M3), and the library's
//! merge and render behind them.
//!
//! The rendered YAML is compared with golden files in tests/data/k8s/golden/. After a change made
//! on purpose, regenerate them and review the diff:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test --test k8s_render
//! ```
//!
//! tests/k8s/test_render.py applies the same renders to a real API server under Istio's CRDs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use meshdlp::k8s::{self, DataPolicy, ImageRef, RenderOptions};
use serde_json::{json, Value};

/// The image every golden render uses (not a real registry: the server does not fetch it).
const IMAGE: &str = "oci://registry.example/meshdlp/meshdlp-filter@sha256:4f1d0c4b9a6e0d7c2b8a5f3e1d9c7b5a3f1e0d2c4b6a8f0e2d4c6b8a0f1e3d5c";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/k8s")
        .join(name)
}

fn meshdlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshdlp"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run meshdlp")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `meshdlp render` with the test image; panics unless it succeeds.
fn render_cli(extra: &[&str]) -> String {
    let mut args = vec!["render", "--image", IMAGE];
    args.extend_from_slice(extra);
    let o = meshdlp(&args);
    assert!(
        o.status.success(),
        "render {extra:?} failed: {}",
        stderr(&o)
    );
    stdout(&o)
}

/// Compares with tests/data/k8s/golden/<name>; UPDATE_GOLDEN=1 writes it instead.
fn golden(name: &str, actual: &str) {
    let path = data("golden").join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test k8s_render",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the render, first at line {}:\n  golden:   {:?}\n  rendered: {:?}\n\
             If the change is intended: UPDATE_GOLDEN=1 cargo test --test k8s_render, and review the diff.",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or("<end>"),
            actual.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

/// The YAML documents of a render (the comment block dropped).
fn documents(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .skip(1)
        .map(|d| serde_yaml_ng::from_str(d).expect("rendered YAML parses"))
        .collect()
}

fn load(name: &str) -> DataPolicy {
    let text = std::fs::read_to_string(data(name)).expect("fixture");
    DataPolicy::from_value(&k8s::parse_document(&text).expect("fixture parses")).expect("fixture")
}

fn opts() -> RenderOptions {
    RenderOptions {
        image: IMAGE.parse().expect("test image"),
        mesh_root_namespace: "istio-system".into(),
    }
}

/// The policy inside an EnvoyFilter's configuration StringValue.
fn envoy_filter_config(obj: &Value) -> Value {
    let value = obj["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]
        ["configuration"]["value"]
        .as_str()
        .expect("configuration StringValue");
    serde_json::from_str(value).expect("configuration is JSON")
}

#[test]
fn golden_namespace_policy() {
    let out = render_cli(&["-f", "tests/data/k8s/orders.yaml"]);
    golden("orders.yaml", &out);
    let docs = documents(&out);
    assert_eq!(docs.len(), 1);
    let ef = &docs[0];
    assert_eq!(ef["kind"], "EnvoyFilter");
    assert_eq!(ef["metadata"]["name"], "meshdlp-orders");
    assert_eq!(
        ef["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "meshdlp", "meshdlp.io/datapolicy": "orders"})
    );
    // No uid in the input: no owner reference.
    assert!(ef["metadata"].get("ownerReferences").is_none());
    assert_eq!(
        ef["spec"]["workloadSelector"],
        json!({"labels": {"app": "orders"}})
    );
    let patches = ef["spec"]["configPatches"].as_array().unwrap();
    let ops: Vec<(&str, &str)> = patches
        .iter()
        .map(|p| {
            (
                p["applyTo"].as_str().unwrap(),
                p["patch"]["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("EXTENSION_CONFIG", "ADD"),
            ("HTTP_FILTER", "REMOVE"),
            ("HTTP_FILTER", "INSERT_BEFORE")
        ]
    );
    let config = &patches[0]["patch"]["value"]["typed_config"]["config"];
    assert_eq!(config["name"], "meshdlp.shop.orders");
    assert_eq!(config["allow_on_headers_stop_iteration"], true);
    assert_eq!(config["failure_policy"], "FAIL_RELOAD");
    assert_eq!(
        patches[1]["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
        "meshdlp.mesh"
    );
    let ecds = &patches[2]["patch"]["value"];
    assert_eq!(ecds["name"], "meshdlp.shop.orders");
    assert_eq!(
        ecds["config_discovery"]["type_urls"],
        json!([
            "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
        ])
    );
    let filter_config = envoy_filter_config(ef);
    assert_eq!(filter_config["holdHeaders"], true);
    // The configuration is a policy the filter compiles.
    meshdlp::Policy::compile_with_env(
        &serde_json::from_value(filter_config["policy"].clone()).unwrap(),
        &|_| Some("x".repeat(32)),
    )
    .expect("the rendered policy compiles");
}

#[test]
fn golden_mesh_policy() {
    let out = render_cli(&["-f", "tests/data/k8s/mesh.yaml"]);
    golden("mesh.yaml", &out);
    let ef = &documents(&out)[0];
    assert_eq!(ef["metadata"]["namespace"], "istio-system");
    // Mesh-wide: the filter is `meshdlp.mesh`, nothing to REMOVE, no selector (every workload).
    let patches = ef["spec"]["configPatches"].as_array().unwrap();
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[0]["patch"]["value"]["name"], "meshdlp.mesh");
    assert_eq!(patches[1]["patch"]["value"]["name"], "meshdlp.mesh");
    assert!(ef["spec"].get("workloadSelector").is_none());
    // metadata.uid in the input: the controller's owner reference.
    assert_eq!(
        ef["metadata"]["ownerReferences"],
        json!([{"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "name": "mesh-defaults",
                "uid": "3f1c2a4e-8d6b-4b7e-9a51-0c2d7e6f5a10", "controller": true}])
    );
    // A mesh policy's Secrets are needed wherever it runs.
    assert!(out.contains("must exist in every namespace"), "{out}");
    assert_eq!(
        envoy_filter_config(ef)["scopes"],
        json!({"metadata": {"key": "https://issuer.example"}})
    );
}

#[test]
fn golden_merged_with_mesh_policy() {
    let out = render_cli(&[
        "-f",
        "tests/data/k8s/orders.yaml",
        "--mesh-policy",
        "tests/data/k8s/mesh.yaml",
    ]);
    golden("orders-merged.yaml", &out);
    assert!(out.starts_with(
        "# Rendered by `meshdlp render` from DataPolicy shop/orders merged with the mesh policy istio-system/mesh-defaults"
    ));
    let ef = &documents(&out)[0];
    let policy = &envoy_filter_config(ef)["policy"];
    let routes: Vec<&str> = policy["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // Namespace routes first, then the mesh routes.
    assert_eq!(routes, ["users", "orders", "exports", "health"]);
    let classes: Vec<&str> = policy["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["internal_note", "employee_id"]);
    assert_eq!(policy["minConfidence"], 0.7, "the namespace sets none");
    // The namespace has a defaultRoute: it wins.
    assert_eq!(
        policy["defaultRoute"],
        json!({"response": {"defaultAction": "redact"}})
    );
    // Both policies' Secrets, and every key variable for the VM.
    assert!(out.contains("name: MESHDLP_KEY_K1") && out.contains("name: MESHDLP_KEY_MESH"));
    let env = &ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]
        ["vm_config"]["environment_variables"];
    assert_eq!(
        env["host_env_keys"],
        json!(["MESHDLP_KEY_K1", "MESHDLP_KEY_MESH", "MESHDLP_KEY_OPS"])
    );
    // The namespace sets no `scopes`: the mesh's applies (its `grants` need it).
    assert_eq!(
        envoy_filter_config(ef)["scopes"],
        json!({"metadata": {"key": "https://issuer.example"}})
    );
}

#[test]
fn scopes_merge_namespace_setting_wins_whole() {
    let mesh = load("mesh.yaml");
    // Neither: no `scopes` in the plugin configuration (grants never apply).
    let alone = k8s::render(&load("orders.yaml"), None, &opts()).unwrap();
    assert!(alone.scopes.is_none());
    assert!(envoy_filter_config(&alone.objects[0])
        .get("scopes")
        .is_none());
    // The namespace's own setting replaces the mesh's as a whole (no field-wise merge).
    let ns = namespace_policy(json!({
        "scopes": {"header": "X-Verified-Scopes", "trustHeader": true},
        "routes": [{"name": "a", "match": {"path": "/a"}}]
    }));
    assert_eq!(
        k8s::merge(&ns, &mesh).unwrap().scopes,
        ns.scopes.clone(),
        "the namespace's"
    );
    let r = k8s::render(&ns, Some(&mesh), &opts()).unwrap();
    assert_eq!(
        envoy_filter_config(&r.objects[0])["scopes"],
        json!({"header": "X-Verified-Scopes", "trustHeader": true})
    );
    // A mesh policy without `scopes` leaves the namespace's as it is.
    let mut bare = mesh.clone();
    bare.scopes = None;
    assert_eq!(k8s::merge(&ns, &bare).unwrap().scopes, ns.scopes);
    let plain = namespace_policy(json!({"routes": [{"name": "a", "match": {"path": "/a"}}]}));
    assert_eq!(k8s::merge(&plain, &bare).unwrap().scopes, None);
}

#[test]
fn scopes_are_checked_like_the_filter_does() {
    // A header is read only with `trustHeader: true` (else only stripped); `trustHeader` alone is
    // refused, as is a header name the filter refuses.
    let dir = tempdir();
    for (scopes, loc) in [
        (json!({"trustHeader": true}), "spec.scopes.trustHeader"),
        (
            json!({"header": "x scopes", "trustHeader": true}),
            "spec.scopes.header",
        ),
        (
            json!({"metadata": {"claim": "scope"}}),
            "spec.scopes.metadata",
        ),
        (
            json!({"metadata": {"key": "k"}, "metdata": {}}),
            "spec.scopes",
        ),
    ] {
        let path = dir.join("bad-scopes.yaml");
        let doc = json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
                         "metadata": {"name": "bad", "namespace": "shop"},
                         "spec": {"scopes": scopes}});
        std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
        let o = meshdlp(&["check", path.to_str().unwrap()]);
        assert!(!o.status.success(), "{scopes}");
        let err = stderr(&o);
        assert!(err.contains(loc), "{scopes}: {err}");
        // A policy built in code gets the same check when rendered.
        let mut dp = namespace_policy(json!({}));
        if let Ok(s) = serde_json::from_value::<k8s::Scopes>(scopes.clone()) {
            dp.scopes = Some(s);
            let e = k8s::render(&dp, None, &opts()).unwrap_err();
            assert!(e.location().starts_with(loc), "{scopes}: {e}");
        }
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meshdlp-k8s-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn merged_mesh_parts_keep_their_meaning() {
    let ns = load("orders.yaml");
    let mesh = load("mesh.yaml");
    let merged = k8s::merge(&ns, &mesh).unwrap().manifest;
    let exports = &merged.routes[2];
    assert_eq!(exports.name, "exports");
    // The mesh document is in monitor mode, the namespace one enforces.
    assert_eq!(exports.mode, Some(meshdlp::Mode::Monitor));
    assert_eq!(merged.routes[0].mode, None);
    assert_eq!(merged.mode, meshdlp::Mode::Enforce);
    // `hash` without a key meant the mesh's first key; the merged first key is the namespace's.
    let action =
        serde_json::to_value(&exports.response.as_ref().unwrap().fields[0].action).unwrap();
    assert_eq!(action, json!({"type": "hash", "key": "mesh"}));
    // The namespace's own `hash` keeps its default (its first key, which stays first).
    let orders =
        serde_json::to_value(&merged.routes[1].response.as_ref().unwrap().fields[1].action)
            .unwrap();
    assert_eq!(orders, json!("hash"));
    assert_eq!(merged.keys[0].id, "k1");

    // Without a namespace defaultRoute, the mesh one applies (in the mesh's mode).
    let mut ns = ns;
    ns.manifest.default_route = None;
    let merged = k8s::merge(&ns, &mesh).unwrap().manifest;
    let d = merged.default_route.unwrap();
    assert_eq!(d.mode, Some(meshdlp::Mode::Monitor));
    assert_eq!(
        serde_json::to_value(&d.response.unwrap().actions["private_key"]).unwrap(),
        json!("block")
    );
}

/// A namespace DataPolicy with `spec` replaced by `spec`.
fn namespace_policy(spec: Value) -> DataPolicy {
    DataPolicy::from_value(&json!({
        "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
        "metadata": {"name": "dup", "namespace": "shop"}, "spec": spec
    }))
    .expect("valid DataPolicy")
}

#[test]
fn merge_duplicate_route_name_names_both() {
    let ns = namespace_policy(json!({"routes": [
        {"name": "a", "match": {"path": "/a"}},
        {"name": "health", "match": {"path": "/health"}}
    ]}));
    let e = k8s::merge(&ns, &load("mesh.yaml")).unwrap_err();
    assert_eq!(e.location(), "spec.routes[1].name");
    assert_eq!(
        e.message(),
        "route `health` is also defined by the mesh policy istio-system/mesh-defaults (spec.routes[1]): names must be unique across the merged policy"
    );
    // render reports the same (the controller's Compiled=False message).
    let e = k8s::render(&ns, Some(&load("mesh.yaml")), &opts()).unwrap_err();
    assert_eq!(e.location(), "spec.routes[1].name");
}

#[test]
fn merge_duplicate_class_names_both() {
    let ns = namespace_policy(json!({"classes": [{"name": "employee_id", "keyHints": ["emp"]}]}));
    let e = k8s::merge(&ns, &load("mesh.yaml")).unwrap_err();
    assert_eq!(e.location(), "spec.classes[0].name");
    assert!(
        e.message().starts_with("class `employee_id` is also defined by the mesh policy istio-system/mesh-defaults (spec.classes[0])"),
        "{e}"
    );
}

#[test]
fn merge_duplicate_key_id_names_both() {
    let ns = namespace_policy(json!({"keys": [
        {"id": "k1", "env": "MESHDLP_KEY_K1"},
        {"id": "mesh", "secretRef": {"name": "other", "key": "k"}}
    ]}));
    let e = k8s::merge(&ns, &load("mesh.yaml")).unwrap_err();
    assert_eq!(e.location(), "spec.keys[1].id");
    assert!(
        e.message().starts_with("key `mesh` is also defined by the mesh policy istio-system/mesh-defaults (spec.keys[0])"),
        "{e}"
    );
}

#[test]
fn merge_errors_through_the_cli() {
    let dir = std::env::temp_dir().join(format!("meshdlp-k8s-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dup.yaml");
    std::fs::write(
        &file,
        "apiVersion: meshdlp.io/v1alpha1\nkind: DataPolicy\nmetadata: {name: dup, namespace: shop}\n\
         spec:\n  routes:\n  - {name: exports, match: {path: /x}}\n",
    )
    .unwrap();
    let o = meshdlp(&[
        "render",
        "--image",
        IMAGE,
        "-f",
        file.to_str().unwrap(),
        "--mesh-policy",
        "tests/data/k8s/mesh.yaml",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(
        err.contains("dup.yaml: spec.routes[0].name: route `exports` is also defined by the mesh policy istio-system/mesh-defaults (spec.routes[0])"),
        "{err}"
    );
}

#[test]
fn merge_relocates_engine_errors_to_their_object() {
    // The namespace route detects a class only the mesh defines: fine once merged.
    let ns = namespace_policy(json!({"routes": [
        {"name": "staff", "match": {"path": "/staff"}, "response": {"detect": ["employee_id"]}}
    ]}));
    k8s::render(&ns, Some(&load("mesh.yaml")), &opts()).expect("merged policy compiles");
    // An engine error in the namespace part is located in the namespace object.
    let ns = namespace_policy(json!({"routes": [
        {"name": "staff", "match": {"path": "/staff"}, "response": {"detect": ["nope"]}}
    ]}));
    let e = k8s::render(&ns, Some(&load("mesh.yaml")), &opts()).unwrap_err();
    assert!(
        e.location().starts_with("spec.routes[0].response.detect"),
        "{e}"
    );
    // The mesh policy is checked on its own first, and its errors say so.
    let mut mesh = load("mesh.yaml");
    mesh.manifest.routes[1].matcher.regex = Some("(".into());
    mesh.manifest.routes[1].matcher.path = None;
    let e = k8s::render(&load("orders.yaml"), Some(&mesh), &opts()).unwrap_err();
    assert_eq!(e.location(), "spec.routes[1].match.regex", "{e}");
    assert!(
        e.message()
            .starts_with("(in the mesh policy istio-system/mesh-defaults)"),
        "{e}"
    );
}

#[test]
fn merge_needs_envoyfilter_delivery_on_both_sides() {
    let e = k8s::render(
        &load("payments-wasm.yaml"),
        Some(&load("mesh.yaml")),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.location(), "spec.delivery.mode");
    assert!(e.message().starts_with("UnsupportedCombination:"), "{e}");
    // The mesh policy must be in the mesh root namespace, and is not merged into itself.
    let e = k8s::render(&load("orders.yaml"), Some(&load("orders.yaml")), &opts()).unwrap_err();
    assert!(
        e.message()
            .contains("not in the mesh root namespace `istio-system`"),
        "{e}"
    );
    let e = k8s::render(&load("mesh.yaml"), Some(&load("mesh.yaml")), &opts()).unwrap_err();
    assert!(
        e.message().contains("is itself in the mesh root namespace"),
        "{e}"
    );
    // Another root namespace makes istio-system an ordinary namespace.
    let o = RenderOptions {
        mesh_root_namespace: "mesh-root".into(),
        ..opts()
    };
    let r = k8s::render(&load("mesh.yaml"), None, &o).unwrap();
    assert_eq!(r.filter_name, "meshdlp.istio-system.mesh-defaults");
}

#[test]
fn golden_wasmplugin_mode() {
    let out = render_cli(&["-f", "tests/data/k8s/payments-wasm.yaml"]);
    golden("payments-wasm.yaml", &out);
    let wp = &documents(&out)[0];
    assert_eq!(wp["kind"], "WasmPlugin");
    assert_eq!(wp["apiVersion"], "extensions.istio.io/v1alpha1");
    let spec = &wp["spec"];
    assert_eq!(spec["phase"], "AUTHZ");
    assert_eq!(spec["pluginConfig"]["holdHeaders"], false, "degraded mode");
    assert_eq!(
        spec["vmConfig"],
        json!({"env": [{"name": "MESHDLP_KEY_PAY_1", "valueFrom": "HOST"}]})
    );
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"app": "payments", "tier": "backend"}})
    );
    assert_eq!(spec["url"], IMAGE);
    assert_eq!(spec["sha256"], IMAGE.rsplit_once(':').unwrap().1);
    assert_eq!(
        spec["pluginConfig"]["policy"]["keys"],
        json!([{"id": "pay-1", "env": "MESHDLP_KEY_PAY_1"}])
    );
    // spec.scopes, as written (the filter applies its defaults).
    assert_eq!(
        spec["pluginConfig"]["scopes"],
        json!({"metadata": {"key": "https://pay-issuer.example", "claim": "scp"}})
    );
}

#[test]
fn secret_ref_becomes_host_env_key_and_no_secret_value_anywhere() {
    // A secret in the environment of `meshdlp render` (as on a CI runner) must not leak into
    // the output: rendering never reads key variables.
    const PLANTED: &str = "planted-secret-value-7c1e9f2a40d3";
    let o = Command::new(env!("CARGO_BIN_EXE_meshdlp"))
        .args([
            "render",
            "--image",
            IMAGE,
            "-f",
            "tests/data/k8s/orders.yaml",
            "--mesh-policy",
            "tests/data/k8s/mesh.yaml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("MESHDLP_KEY_K1", PLANTED)
        .env("MESHDLP_KEY_MESH", PLANTED)
        .env("MESHDLP_KEY_OPS", PLANTED)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains(PLANTED) && !stderr(&o).contains(PLANTED));
    let r = k8s::render(&load("orders.yaml"), None, &opts()).unwrap();
    assert_eq!(r.host_env_keys, ["MESHDLP_KEY_K1", "MESHDLP_KEY_OPS"]);
    assert_eq!(r.secret_env.len(), 1);
    assert_eq!(r.secret_env[0].name, "MESHDLP_KEY_K1");
    assert_eq!(
        r.istio_proxy_env(),
        json!([{"name": "MESHDLP_KEY_K1", "valueFrom": {"secretKeyRef": {"name": "meshdlp-keys", "key": "k1"}}}])
    );
    // In the rendered policy the key reads the variable; the Secret is not named there.
    let k1 = &r.policy.keys[0];
    assert_eq!(
        (k1.env.as_deref(), k1.secret_ref.is_none()),
        (Some("MESHDLP_KEY_K1"), true)
    );
    let object = serde_json::to_string(&r.objects).unwrap();
    assert!(!object.contains("secretRef") && !object.contains("meshdlp-keys"));
    // The env snippet in the comment block.
    assert!(out.contains(
        "#   - name: MESHDLP_KEY_K1\n#     valueFrom:\n#       secretKeyRef:\n#         key: k1\n#         name: meshdlp-keys\n"
    ), "{out}");
}

#[test]
fn inline_key_is_an_error_and_not_echoed() {
    let dir = std::env::temp_dir().join(format!("meshdlp-k8s-inline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("inline.yaml");
    std::fs::write(
        &file,
        "apiVersion: meshdlp.io/v1alpha1\nkind: DataPolicy\nmetadata: {name: inline, namespace: shop}\n\
         spec:\n  keys:\n  - {id: k1, inline: inline-secret-0123456789}\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let check = meshdlp(&["check", f]);
    let render = meshdlp(&["render", "--image", IMAGE, "-f", f]);
    std::fs::remove_dir_all(&dir).ok();
    for o in [check, render] {
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(err.contains("spec.keys[0].inline: `inline` keys (the secret in the object) are not allowed in a DataPolicy"), "{err}");
        assert!(!err.contains("inline-secret") && !stdout(&o).contains("inline-secret"));
    }
    // render checks a DataPolicy built in code too (its fields are public).
    let mut dp = load("orders.yaml");
    dp.manifest.keys[1].env = None;
    dp.manifest.keys[1].inline = Some("inline-secret-0123456789".into());
    let e = k8s::render(&dp, None, &opts()).unwrap_err();
    assert_eq!(e.location(), "spec.keys[1].inline");
    let e = k8s::render(
        &load("orders.yaml"),
        Some(&{
            let mut mesh = load("mesh.yaml");
            mesh.manifest.keys[0].inline = Some("inline-secret-0123456789".into());
            mesh
        }),
        &opts(),
    )
    .unwrap_err();
    assert_eq!(e.location(), "spec.keys[0].inline");
    assert!(e
        .message()
        .starts_with("(in the mesh policy istio-system/mesh-defaults)"));
    assert!(!e.to_string().contains("inline-secret"));
    // A key from any other sidecar variable is refused too (the CRD's CEL rule).
    let e = DataPolicy::from_value(&json!({
        "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "metadata": {"name": "x", "namespace": "shop"},
        "spec": {"keys": [{"id": "k", "env": "AWS_SECRET_ACCESS_KEY"}]}
    }))
    .unwrap_err();
    assert_eq!(e.location(), "spec.keys[0].env");
    // A line break in a variable name would end render's comment block: YAML injection into
    // whatever applies the output. Only capitals, digits and `_` after the prefix.
    for var in [
        "MESHDLP_KEY_X\n---\nkind: ClusterRoleBinding",
        "MESHDLP_KEY_",
        "MESHDLP_KEY_x",
        "MESHDLP_KEY_X Y",
    ] {
        let e = DataPolicy::from_value(&json!({
            "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "metadata": {"name": "x", "namespace": "shop"},
            "spec": {"keys": [{"id": "k", "env": var}]}
        }))
        .unwrap_err();
        assert_eq!(e.location(), "spec.keys[0].env", "{var:?}");
    }
    // A secretRef key and an env key reading the same variable.
    let ns = namespace_policy(json!({"keys": [
        {"id": "k1", "secretRef": {"name": "s", "key": "k"}},
        {"id": "k2", "env": "MESHDLP_KEY_K1"}
    ]}));
    let e = k8s::render(&ns, None, &opts()).unwrap_err();
    assert_eq!(e.location(), "spec.keys[1]");
    assert!(
        e.message().contains("would both read `MESHDLP_KEY_K1`"),
        "{e}"
    );
}

#[test]
fn bad_spec_gives_a_located_error() {
    for args in [
        vec!["check", "tests/data/k8s/bad-fieldpath.yaml"],
        vec![
            "render",
            "--image",
            IMAGE,
            "-f",
            "tests/data/k8s/bad-fieldpath.yaml",
        ],
    ] {
        let o = meshdlp(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert_eq!(
            stderr(&o),
            "error: tests/data/k8s/bad-fieldpath.yaml: spec.routes[2].response.fields[0].path: unexpected end of path at column 9\n",
            "{args:?}"
        );
    }
    // Parse errors (an unknown field), and the DataPolicy's own fields.
    let cases = [
        (
            json!({"routes": [{"name": "a", "match": {"path": "/a"}, "respnse": {}}]}),
            "spec.routes[0]",
        ),
        (
            json!({"selector": {"matchLabels": {"app": 3}}}),
            "spec.selector.matchLabels.app",
        ),
        (
            json!({"delivery": {"mode": "Sidecar"}}),
            "spec.delivery.mode",
        ),
        (
            json!({"routes": [{"name": "a", "match": {"regex": "("}}]}),
            "spec.routes[0].match.regex",
        ),
    ];
    for (spec, location) in cases {
        let doc = json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
                         "metadata": {"name": "x", "namespace": "shop"}, "spec": spec});
        let e = DataPolicy::from_value(&doc)
            .and_then(|dp| dp.compile().map(|_| ()))
            .unwrap_err();
        assert!(e.location().starts_with(location), "{location}: {e}");
    }
    for (doc, location) in [
        (
            json!({"apiVersion": "meshdlp.io/v1", "kind": "DataPolicy"}),
            "apiVersion",
        ),
        (
            json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "spec": {}}),
            "metadata",
        ),
        (
            json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "metadata": {"name": "Orders"}, "spec": {}}),
            "metadata.name",
        ),
        (
            json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "metadata": {"name": "o"}}),
            "spec",
        ),
    ] {
        let e = DataPolicy::from_value(&doc).unwrap_err();
        assert_eq!(e.location(), location, "{e}");
    }
    // render needs the namespace (check does not).
    let doc = json!({"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "metadata": {"name": "o"}, "spec": {}});
    let dp = DataPolicy::from_value(&doc).unwrap();
    assert_eq!(
        k8s::render(&dp, None, &opts()).unwrap_err().location(),
        "metadata.namespace"
    );
}

#[test]
fn check_accepts_a_data_policy_and_manifests_as_before() {
    let o = meshdlp(&["check", "tests/data/k8s/orders.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ok: tests/data/k8s/orders.yaml (DataPolicy shop/orders, "));
    // No warning about unset key variables: a DataPolicy's secrets live in the cluster.
    assert_eq!(stderr(&o), "");
    let o = meshdlp(&["check", "examples/policy.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("ok: examples/policy.yaml ("));
    // render refuses what is not a DataPolicy.
    let o = meshdlp(&["render", "--image", IMAGE, "-f", "examples/policy.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("examples/policy.yaml: not a DataPolicy"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn image_is_required_and_validated() {
    let o = meshdlp(&["render", "-f", "tests/data/k8s/orders.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(stderr(&o).contains("--image is required"), "{}", stderr(&o));
    let hex = IMAGE.rsplit_once(':').unwrap().1;
    for bad in [
        "registry.example/meshdlp-filter:latest".to_string(),
        "oci://registry.example/meshdlp-filter:latest".to_string(),
        format!("oci://registry.example/meshdlp-filter:v1@sha256:{hex}"),
        format!(
            "oci://registry.example/meshdlp-filter@sha256:{}",
            hex.to_uppercase()
        ),
        format!(
            "oci://registry.example/meshdlp-filter@sha256:{}",
            &hex[..63]
        ),
        format!("oci://registry.example/meshdlp-filter@sha512:{hex}{hex}"),
        format!("oci://meshdlp-filter@sha256:{hex}"),
    ] {
        let o = meshdlp(&[
            "render",
            "--image",
            &bad,
            "-f",
            "tests/data/k8s/orders.yaml",
        ]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        assert!(o.stdout.is_empty());
        let err = stderr(&o);
        assert!(
            err.starts_with("error: --image: image `")
                && err.contains(
                    "expected oci://REGISTRY/REPOSITORY@sha256:<64 lower-case hex digits>"
                ),
            "{bad}: {err}"
        );
    }
    let image: ImageRef = IMAGE.parse().unwrap();
    assert_eq!(image.sha256(), hex);
    assert_eq!(image.to_string(), IMAGE);
}

#[test]
fn rendering_is_deterministic() {
    let a = render_cli(&[
        "-f",
        "tests/data/k8s/orders.yaml",
        "--mesh-policy",
        "tests/data/k8s/mesh.yaml",
    ]);
    let b = render_cli(&[
        "-f",
        "tests/data/k8s/orders.yaml",
        "--mesh-policy",
        "tests/data/k8s/mesh.yaml",
    ]);
    assert_eq!(a, b);
    // The same object as JSON, its keys in another order (as the API server returns it, with
    // server-set metadata and a status): the same objects.
    let text = std::fs::read_to_string(data("orders.yaml")).unwrap();
    let mut doc = k8s::parse_document(&text).unwrap();
    doc["metadata"]["resourceVersion"] = json!("42");
    doc["metadata"]["generation"] = json!(3);
    doc["status"] = json!({"observedGeneration": 3});
    let reversed = reverse_keys(&doc);
    let dir = std::env::temp_dir().join(format!("meshdlp-k8s-det-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("orders.json");
    std::fs::write(&file, serde_json::to_string_pretty(&reversed).unwrap()).unwrap();
    let c = render_cli(&[
        "-f",
        file.to_str().unwrap(),
        "--mesh-policy",
        "tests/data/k8s/mesh.yaml",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(a, c);
    // The library: twice the same values.
    let (ns, mesh) = (load("orders.yaml"), load("mesh.yaml"));
    let r1 = k8s::render(&ns, Some(&mesh), &opts()).unwrap();
    let r2 = k8s::render(&ns, Some(&mesh), &opts()).unwrap();
    assert_eq!(
        serde_json::to_string(&r1.objects).unwrap(),
        serde_json::to_string(&r2.objects).unwrap()
    );
}

/// A JSON text with every object's keys written in reverse order.
fn reverse_keys(v: &Value) -> RawJson {
    match v {
        Value::Object(m) => RawJson::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reverse_keys(v)))
                .collect(),
        ),
        Value::Array(a) => RawJson::Array(a.iter().map(reverse_keys).collect()),
        other => RawJson::Leaf(other.clone()),
    }
}

/// JSON keeping the key order it is built with (serde_json's map sorts).
enum RawJson {
    Object(Vec<(String, RawJson)>),
    Array(Vec<RawJson>),
    Leaf(Value),
}

impl serde::Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            RawJson::Object(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            RawJson::Array(items) => {
                let mut q = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    q.serialize_element(i)?;
                }
                q.end()
            }
            RawJson::Leaf(v) => v.serialize(s),
        }
    }
}

#[test]
fn names_from_the_input_cannot_end_the_comment_block() {
    // Whatever the file holds, every line before the first document is a comment: a line break
    // (\n, \r, NEL, LS, PS) in a name must not start YAML of its own.
    let text = std::fs::read_to_string(data("orders.yaml")).expect("orders.yaml");
    for brk in ["\n", "\r", "\u{85}", "\u{2028}"] {
        let evil = text.replacen(
            "name: orders",
            &format!("name: \"orders{brk}kind: ClusterRoleBinding{brk}\""),
            1,
        );
        let dir = std::env::temp_dir().join(format!("meshdlp-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join("evil.yaml");
        std::fs::write(&path, &evil).expect("write");
        let o = meshdlp(&[
            "render",
            "--image",
            IMAGE,
            "-f",
            path.to_str().expect("utf-8"),
        ]);
        if !o.status.success() {
            continue; // refused as a name: nothing rendered
        }
        let out = stdout(&o);
        let header = out.split("---\n").next().unwrap_or_default();
        for line in header.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
            assert!(
                line.is_empty() || line.starts_with('#'),
                "{line:?} in {header:?}"
            );
        }
    }
}

#[test]
fn enforced_only_on_the_mesh_policy() {
    let ns = namespace_policy(json!({"enforced": true}));
    let e = k8s::render(&ns, None, &opts()).unwrap_err();
    assert_eq!(e.location(), "spec.enforced");
    assert!(e.message().starts_with("only the mesh policy"), "{e}");
    // The mesh policy itself renders with it (it changes nothing in its own objects).
    let mut mesh = load("mesh.yaml");
    let plain = k8s::render(&mesh, None, &opts()).unwrap();
    mesh.enforced = true;
    let enforced = k8s::render(&mesh, None, &opts()).unwrap();
    assert_eq!(plain.objects, enforced.objects);
}
