"""`meshdlp render` on the real API server (issue 8, M3): the Istio objects rendered from the
DataPolicy fixtures of tests/data/k8s (the same as tests/k8s_render.rs's golden files) are accepted
by server-side apply under Istio's own CRDs and read back as rendered; a DataPolicy read back from
the server (with its uid) renders with an owner reference; and a DataPolicy the schema and CEL
accept but the engine refuses passes `kubectl apply --dry-run=server` while `meshdlp check` reports
the located error - the split the controller's Compiled condition covers (M6)."""

import json
import os
import subprocess

import pytest
import yaml

import cluster as cluster_mod

ROOT = cluster_mod.ROOT
DATA = os.path.join(ROOT, "tests", "data", "k8s")
CRD_FILE = os.path.join(ROOT, "k8s", "crd", "datapolicies.meshdlp.io.yaml")
# Not a real registry: the API server never fetches the image (istio-agent does, M5).
IMAGE = "oci://registry.example/meshdlp/meshdlp-filter@sha256:" \
        "4f1d0c4b9a6e0d7c2b8a5f3e1d9c7b5a3f1e0d2c4b6a8f0e2d4c6b8a0f1e3d5c"
MANAGER = "meshdlp-render-test"
RENDERED_LABEL = "meshdlp.io/datapolicy"


@pytest.fixture(scope="module")
def cli():
    """The release CLI the Makefile builds (`make cli`, target/release/meshdlp; CARGO_TARGET_DIR
    moves it, as it moves cargo's output). Built here so a stale binary is never tested."""
    env = dict(os.environ)
    subprocess.run(["nice", "-n", "10", "make", "-s", "-C", ROOT, "cli"], check=True, timeout=1800, env=env,
                   stdout=subprocess.DEVNULL)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    path = os.path.join(target if os.path.isabs(target) else os.path.join(ROOT, target), "release", "meshdlp")
    assert os.access(path, os.X_OK), path
    return path


@pytest.fixture(scope="module")
def crd(cluster, istio_crds):
    cluster.kubectl(["apply", "--server-side", "--field-manager", MANAGER, "-f", CRD_FILE], check=True)
    cluster.wait_established(["datapolicies.meshdlp.io"])
    yield
    # What this module wrote (the smoke test's EnvoyFilter has no meshdlp.io/datapolicy label).
    for ns in ("shop", "istio-system"):
        cluster.kubectl(["delete", "envoyfilters,wasmplugins", "-n", ns, "-l", RENDERED_LABEL, "--ignore-not-found"])
    cluster.kubectl(["delete", "datapolicy", "orders", "-n", "shop", "--ignore-not-found"])


def meshdlp(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def render(cli, *args):
    r = meshdlp(cli, "render", "--image", IMAGE, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def apply_and_read_back(cluster, text):
    """Server-side apply of a render as printed (comment block and all); returns (rendered, stored)
    pairs."""
    r = cluster.kubectl(["apply", "--server-side", "--field-manager", MANAGER, "-f", "-"], input=text)
    assert r.returncode == 0, r.stderr
    pairs = []
    for doc in documents(text):
        kind, meta = doc["kind"].lower() + "s", doc["metadata"]
        pairs.append((doc, cluster.kubectl_json(["get", kind, meta["name"], "-n", meta["namespace"],
                                                 "--show-managed-fields"])))
    return pairs


CASES = {
    "orders": (["-f", "tests/data/k8s/orders.yaml"], "orders.yaml"),
    "mesh": (["-f", "tests/data/k8s/mesh.yaml"], "mesh.yaml"),
    "merged": (["-f", "tests/data/k8s/orders.yaml", "--mesh-policy", "tests/data/k8s/mesh.yaml"], "orders-merged.yaml"),
    "wasmplugin": (["-f", "tests/data/k8s/payments-wasm.yaml"], "payments-wasm.yaml"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_accepted_under_istio_crds(cluster, crd, cli, case):
    args, golden = CASES[case]
    text = render(cli, *args)
    with open(os.path.join(DATA, "golden", golden)) as f:
        assert text == f.read(), "the CLI differs from tests/data/k8s/golden/%s (cargo test --test k8s_render)" % golden
    for doc, got in apply_and_read_back(cluster, text):
        assert got["spec"] == doc["spec"], case  # nothing pruned or defaulted by Istio's schema
        assert got["metadata"]["labels"] == doc["metadata"]["labels"]
        assert got["metadata"].get("ownerReferences") == doc["metadata"].get("ownerReferences")
        # No key material and no Secret name in the object itself.
        assert "secretRef" not in json.dumps(got["spec"])
        fields = {m["manager"] for m in got["metadata"]["managedFields"]}
        assert fields == {MANAGER}, fields


def test_envoyfilter_patch_values_are_opaque_to_the_server(cluster, crd, cli):
    """The server checks only the EnvoyFilter envelope (patch.value preserves unknown fields), so
    a typo inside the Wasm config would pass it: the render's field names are pinned by the golden
    files and checked by Envoy in M5. A bad envelope is refused."""
    doc = documents(render(cli, "-f", "tests/data/k8s/orders.yaml"))[0]
    doc["metadata"]["name"] = "meshdlp-envelope"
    doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["not_a_field"] = 1
    r = cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(doc))
    assert r.returncode == 0, r.stderr
    doc["spec"]["configPatches"][0]["applyTo"] = "WASM_FILTER"
    r = cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(doc))
    assert r.returncode != 0 and 'spec.configPatches[0].applyTo: Unsupported value: "WASM_FILTER"' in r.stderr, r.stderr


def test_render_from_the_stored_datapolicy_has_an_owner_reference(cluster, crd, cli, tmp_path):
    """What the controller does: read the DataPolicy from the server (metadata.uid, resourceVersion,
    managedFields...) and render it. The objects point at it as their controller."""
    with open(os.path.join(DATA, "orders.yaml")) as f:
        dp = yaml.safe_load(f)
    cluster.kubectl(["apply", "--server-side", "--field-manager", MANAGER, "-f", "-"], input=json.dumps(dp), check=True)
    stored = cluster.kubectl_json(["get", "datapolicy", "orders", "-n", "shop"])
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(stored))
    text = render(cli, "-f", str(path))
    # The same objects as from the file, plus the owner reference.
    plain = documents(render(cli, "-f", "tests/data/k8s/orders.yaml"))[0]
    doc, got = apply_and_read_back(cluster, text)[0]
    assert doc["spec"] == plain["spec"]
    assert got["metadata"]["ownerReferences"] == [{
        "apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "name": "orders",
        "uid": stored["metadata"]["uid"], "controller": True}]
    assert got["spec"] == doc["spec"]


def test_schema_accepts_what_only_the_engine_refuses(cluster, crd, cli):
    """The split between the API server (schema + CEL) and the engine: a JSONPath with an open
    bracket is a valid string to the server, and an error with its location to `meshdlp check`."""
    path = os.path.join(DATA, "bad-fieldpath.yaml")
    r = cluster.kubectl(["apply", "--dry-run=server", "--server-side", "--field-manager", MANAGER, "-f", path])
    assert r.returncode == 0, r.stderr
    assert "serverside-applied (server dry run)" in r.stdout, r.stdout
    got = cluster.kubectl(["get", "datapolicy", "bad-fieldpath", "-n", "shop", "--ignore-not-found", "-o", "name"],
                          check=True)
    assert got.stdout.strip() == "", "a dry run stores nothing"
    r = meshdlp(cli, "check", path)
    assert r.returncode == 1
    assert r.stderr == ("error: %s: spec.routes[2].response.fields[0].path: unexpected end of path at column 9\n" % path)
    r = meshdlp(cli, "render", "--image", IMAGE, "-f", path)
    assert r.returncode == 1 and r.stdout == "" and "spec.routes[2].response.fields[0].path" in r.stderr


def test_cel_and_check_agree_on_inline_keys(cluster, crd, cli, tmp_path):
    """An `inline` key is refused by both: the server's CEL rule and `meshdlp check`/`render`
    (offline, for CI); neither echoes the secret."""
    secret = "inline-secret-value-5d2b"
    dp = {"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
          "metadata": {"name": "inline-key", "namespace": "shop"},
          "spec": {"keys": [{"id": "k1", "inline": secret}]}}
    r = cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(dp))
    assert r.returncode != 0 and "`inline` keys (the secret in the object) are not allowed" in r.stderr, r.stderr
    assert secret not in r.stderr
    path = tmp_path / "inline.json"
    path.write_text(json.dumps(dp))
    for args in (["check", str(path)], ["render", "--image", IMAGE, "-f", str(path)]):
        r = meshdlp(cli, *args)
        assert r.returncode == 1, args
        assert "spec.keys[0].inline: `inline` keys (the secret in the object) are not allowed" in r.stderr, r.stderr
        assert secret not in r.stderr + r.stdout


def enforced_mesh():
    """tests/data/k8s/mesh.yaml with `enforced: true` (a monitor-mode mesh policy: its floor is
    its default route, which blocks private keys and redacts the rest)."""
    with open(os.path.join(DATA, "mesh.yaml")) as f:
        mesh = yaml.safe_load(f)
    mesh["spec"]["enforced"] = True
    mesh["spec"]["mode"] = "enforce"
    return mesh


def test_enforced_mesh_policy_is_a_floor(cluster, crd, cli, tmp_path):
    """Issue 8: an enforced mesh policy. The attacks a namespace owner has on the mesh rules each
    make `meshdlp render --mesh-policy` fail at the location of the attack (what the controller
    reports as Compiled=False, MeshMergeFailed); the API server stores all of them (only the merge
    can tell). A namespace policy at least as strict renders, with the mesh routes first, and its
    objects are accepted under Istio's CRDs."""
    mesh_path = tmp_path / "mesh.json"
    mesh_path.write_text(json.dumps(enforced_mesh()))
    r = cluster.kubectl(["create", "--dry-run=server", "-f", str(mesh_path)])
    assert r.returncode == 0, r.stderr

    def ns_policy(spec):
        return {"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
                "metadata": {"name": "render-floor", "namespace": "shop"},
                "spec": dict({"selector": {"matchLabels": {"app": "weak"}}}, **spec)}

    floor = {"actions": {"private_key": "block"}, "defaultAction": "redact"}
    attacks = {
        "monitor mode": (
            {"mode": "monitor", "routes": [{"name": "all", "match": {"prefix": "/"}, "response": floor}]},
            "spec.mode"),
        "monitor catch-all route": (
            {"routes": [{"name": "all", "match": {"prefix": "/"}, "mode": "monitor", "response": floor}]},
            "spec.routes[0].mode"),
        "higher minConfidence": ({"minConfidence": 0.95}, "spec.minConfidence"),
        "catch-all allow": (
            {"routes": [{"name": "all", "match": {"prefix": "/"}, "response": {"defaultAction": "allow"}}]},
            "spec.routes[0].response.defaultAction"),
        "private keys let through": (
            {"routes": [{"name": "all", "match": {"prefix": "/"},
                         "response": {"actions": {"private_key": "redact"}, "defaultAction": "redact"}}]},
            "spec.routes[0].response.actions.private_key"),
        "fewer classes": (
            {"defaultRoute": {"response": dict(floor, detect=["email"])}}, "spec.defaultRoute.response.detect"),
        "fail open": (
            {"defaultRoute": {"response": dict(floor, onError="allow")}}, "spec.defaultRoute.response.onError"),
        "forgeable scopes": (
            {"scopes": {"header": "x-scopes", "trustHeader": True}}, "spec.scopes"),
    }
    for what, (spec, loc) in attacks.items():
        path = tmp_path / "weak.json"
        path.write_text(json.dumps(ns_policy(spec)))
        r = cluster.kubectl(["create", "--dry-run=server", "-f", str(path)])
        assert r.returncode == 0, (what, r.stderr)
        # Alone it renders: only the mesh floor refuses it.
        r = meshdlp(cli, "render", "--image", IMAGE, "-f", str(path))
        assert r.returncode == 0, (what, r.stderr)
        r = meshdlp(cli, "render", "--image", IMAGE, "-f", str(path), "--mesh-policy", str(mesh_path))
        assert r.returncode == 1 and r.stdout == "", (what, r.stdout)
        assert ("%s: below the floor of the enforced mesh policy istio-system/mesh-defaults: " % loc) in r.stderr, \
            (what, r.stderr)
    # Stricter: accepted, mesh routes first, programmed under Istio's CRDs.
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(ns_policy({
        "minConfidence": 0.6,
        "routes": [{"name": "all", "match": {"prefix": "/"}, "request": {"defaultAction": "redact"},
                    "response": {"actions": {"private_key": "block"}, "defaultAction": "block"}}]})))
    text = render(cli, "-f", str(path), "--mesh-policy", str(mesh_path))
    policy = None
    for doc, got in apply_and_read_back(cluster, text):
        assert got["spec"] == doc["spec"]
        value = doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["config"]["configuration"]["value"]
        policy = json.loads(value)["policy"]
    assert [r["name"] for r in policy["routes"]] == ["exports", "health", "all"]
    assert policy["minConfidence"] == 0.6
    # `enforced` on a namespace policy: the server stores it, render refuses it.
    path.write_text(json.dumps(ns_policy({"enforced": True})))
    r = meshdlp(cli, "render", "--image", IMAGE, "-f", str(path))
    assert r.returncode == 1 and "spec.enforced: only the mesh policy" in r.stderr, r.stderr
