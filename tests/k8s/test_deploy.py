"""The deploy manifests (issue 8, M7): k8s/deploy/base and overlays/example render with the
project-local kubectl's kustomize; the RBAC is exactly the least-privilege set; the controller's
Deployment is locked down and carries the planned flags; the PDB keeps one replica.

What the test API server serves is applied for real (`kubectl apply --server-side
--dry-run=server`): the CRD and the example DataPolicies, which must be accepted under our CRD's
schema and CEL rules. It serves no Namespaces, RBAC, Deployments or PodDisruptionBudgets (see
k8s/testserver/main.go): those are checked here by structure only, and only a real cluster shows
that RBAC is enforced, that the pods start and that the PDB holds."""

import json
import os
import re
import subprocess
import time

import pytest
import yaml

import cluster as cluster_mod

ROOT = cluster_mod.ROOT
BASE = os.path.join(ROOT, "k8s", "deploy", "base")
OVERLAY = os.path.join(ROOT, "k8s", "deploy", "overlays", "example")
CRD_FILE = os.path.join(ROOT, "k8s", "crd", "datapolicies.meshdlp.io.yaml")
# cargo's output, moved by CARGO_TARGET_DIR as the Makefile's builds are.
MESHDLP = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target", "release", "meshdlp")

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
PLACEHOLDER_DIGEST = "@sha256:" + "0" * 64

# (apiGroup, resource) -> verbs: the whole of what the controller may do cluster-wide.
CLUSTER_RULES = {
    ("meshdlp.io", "datapolicies"): {"get", "list", "watch", "update", "patch"},
    ("meshdlp.io", "datapolicies/status"): {"update", "patch"},
    ("meshdlp.io", "datapolicies/finalizers"): {"update"},
    ("networking.istio.io", "envoyfilters"): {"get", "list", "watch", "create", "patch", "delete"},
    ("extensions.istio.io", "wasmplugins"): {"get", "list", "watch", "create", "patch", "delete"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
# ... and in its own namespace only.
NAMESPACE_RULES = {
    ("coordination.k8s.io", "leases"): {"get", "create", "update"},
}
ARGS = [
    "--image=$(MESHDLP_FILTER_IMAGE)",
    "--mesh-root-namespace=istio-system",
    "--leader-election=true",
    "--events=true",
]


def kustomize(path):
    proc = subprocess.run([cluster_mod.KUBECTL, "kustomize", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, "kubectl kustomize %s failed:\n%s" % (path, proc.stderr)
    return proc.stdout


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind):
    found = by_kind(objs, kind)
    assert len(found) == 1, "%d %s objects" % (len(found), kind)
    return found[0]


@pytest.fixture(scope="module")
def base():
    return docs(kustomize(BASE))


@pytest.fixture(scope="module")
def overlay_text():
    return kustomize(OVERLAY)


@pytest.fixture(scope="module")
def overlay(overlay_text):
    return docs(overlay_text)


def rule_table(rules):
    """RBAC rules as {(group, resource): verbs}; every rule is checked for wildcards and
    non-resource URLs on the way."""
    table = {}
    for r in rules:
        assert set(r) <= {"apiGroups", "resources", "verbs", "resourceNames"}, r  # no nonResourceURLs
        for field in ("apiGroups", "resources", "verbs"):
            assert r.get(field) and "*" not in r[field], "wildcard or empty %s: %s" % (field, r)
        for g in r["apiGroups"]:
            for res in r["resources"]:
                assert (g, res) not in table, "(%s, %s) listed twice" % (g, res)
                table[(g, res)] = set(r["verbs"])
    return table


# ------------------------------------------------------------------ rendering

def test_base_renders_exactly_the_planned_objects(base):
    kinds = sorted(o["kind"] for o in base)
    assert kinds == sorted(["CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                            "RoleBinding", "Deployment", "PodDisruptionBudget"]), kinds
    ns = one(base, "Deployment")["metadata"]["namespace"]
    assert ns == "meshdlp-system"
    for o in base:
        if o["kind"] in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert "namespace" not in o["metadata"], o["metadata"]
        else:
            assert o["metadata"]["namespace"] == ns, (o["kind"], o["metadata"])
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "meshdlp", o["metadata"]


def test_base_ships_the_committed_crd_unchanged(base):
    with open(CRD_FILE) as f:
        committed = yaml.safe_load(f)
    crd = one(base, "CustomResourceDefinition")
    assert crd["spec"] == committed["spec"]
    assert crd["metadata"] == committed["metadata"]  # kustomize's part-of label is already there


# ------------------------------------------------------------------ RBAC

def test_cluster_role_is_least_privilege(base):
    role = one(base, "ClusterRole")
    assert role["metadata"]["name"] == "meshdlp-controller" and "aggregationRule" not in role
    table = rule_table(role["rules"])
    assert table == CLUSTER_RULES
    resources = {res.split("/")[0] for _, res in table}
    for never in ("secrets", "pods", "configmaps", "namespaces", "serviceaccounts", "nodes"):
        assert never not in resources, never
    verbs = set().union(*table.values())
    assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}, verbs
    # writes to DataPolicies are status, finalizers and metadata (the finalizer), never create/delete
    assert not table[("meshdlp.io", "datapolicies")] & {"create", "delete"}


def test_leases_only_in_the_controllers_namespace(base):
    role = one(base, "Role")
    assert role["metadata"]["namespace"] == one(base, "Deployment")["metadata"]["namespace"]
    assert rule_table(role["rules"]) == NAMESPACE_RULES


def test_bindings_name_the_controllers_service_account(base):
    deploy = one(base, "Deployment")
    sa = one(base, "ServiceAccount")
    ns = deploy["metadata"]["namespace"]
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"] == "meshdlp-controller"
    assert sa["metadata"]["namespace"] == ns
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        b = one(base, kind)
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                "name": one(base, role_kind)["metadata"]["name"]}, b["roleRef"]
        # kustomize's `namespace:` does not rewrite subjects of other namespaces: pinned here
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "meshdlp-controller", "namespace": ns}], b


# ------------------------------------------------------------------ Deployment and PDB

def controller(objs):
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def test_deployment_security_context(base):
    spec = one(base, "Deployment")["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1 and not spec.get("initContainers")
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0 and pod["runAsGroup"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    c = controller(base)["securityContext"]
    assert c["runAsNonRoot"] is True and c["readOnlyRootFilesystem"] is True
    assert c["allowPrivilegeEscalation"] is False and c["privileged"] is False
    assert c["capabilities"] == {"drop": ["ALL"]}
    assert c["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), host
    assert not spec.get("volumes")  # nothing to write: the root filesystem is read-only
    assert spec.get("automountServiceAccountToken", True) is True  # it is an API client
    # no sidecar of its own, whatever the namespace's injection label says
    assert one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"


def test_deployment_args_probes_and_resources(base):
    deploy = one(base, "Deployment")
    assert deploy["spec"]["replicas"] == 2  # with leader election: one leads, one waits
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    c = controller(base)
    assert c["image"] == "meshdlp-controller"  # placeholder, pinned by an overlay's `images:`
    assert c["args"] == ARGS, c["args"]
    assert not c.get("command")
    env = {e["name"]: e for e in c["env"]}
    filter_image = env["MESHDLP_FILTER_IMAGE"]["value"]
    assert filter_image.startswith("oci://") and DIGEST.search(filter_image), filter_image
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["ports"] == [{"name": "http-health", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    res = c["resources"]
    assert set(res["requests"]) == {"cpu", "memory"} and "memory" in res["limits"]


def test_pdb_keeps_one_controller(base):
    pdb = one(base, "PodDisruptionBudget")
    deploy = one(base, "Deployment")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    sel = pdb["spec"]["selector"]["matchLabels"]
    assert sel == deploy["spec"]["selector"]["matchLabels"]
    assert sel.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    assert deploy["spec"]["replicas"] > pdb["spec"]["minAvailable"]  # a drain can still evict one


# ------------------------------------------------------------------ the example overlay

def test_overlay_pins_both_images_by_digest(base, overlay):
    c = controller(overlay)
    assert DIGEST.search(c["image"]) and not c["image"].startswith("meshdlp-controller"), c["image"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    image = env["MESHDLP_FILTER_IMAGE"]
    assert image.startswith("oci://") and DIGEST.search(image) and not image.endswith(PLACEHOLDER_DIGEST), image
    assert c["args"] == ARGS
    # the rest of the base comes through unchanged
    assert rule_table(one(overlay, "ClusterRole")["rules"]) == CLUSTER_RULES
    for kind in ("Role", "RoleBinding", "ClusterRoleBinding", "PodDisruptionBudget", "ServiceAccount"):
        assert one(overlay, kind) == one(base, kind), kind


def test_overlay_namespace_and_data_policies(overlay):
    ns = one(overlay, "Deployment")["metadata"]["namespace"]
    assert one(overlay, "Namespace")["metadata"]["name"] == ns
    dps = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in by_kind(overlay, "DataPolicy")}
    root = next(a.split("=", 1)[1] for a in controller(overlay)["args"] if a.startswith("--mesh-root-namespace="))
    assert root == "istio-system" and (root, "mesh") in dps, sorted(dps)
    assert "selector" not in dps[(root, "mesh")]["spec"]  # mesh-wide: every sidecar
    shop = [d for (n, _), d in dps.items() if n != root]
    assert len(shop) == 1 and shop[0]["spec"]["selector"]["matchLabels"], shop
    for d in dps.values():
        assert d["apiVersion"] == "meshdlp.io/v1alpha1"
        keys = d["spec"].get("keys", [])
        assert all("inline" not in k for k in keys)  # key material never in objects


def served_kinds(cluster):
    """{(group, kind)} the test server serves (discovery)."""
    out = cluster.kubectl(["api-resources", "-o", "wide", "--no-headers"], check=True).stdout
    kinds = set()
    for line in out.splitlines():
        cols = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...
        i = next(j for j, c in enumerate(cols) if c in ("true", "false"))
        group = cols[i - 1].rsplit("/", 1)[0] if "/" in cols[i - 1] else ""
        kinds.add((group, cols[i + 1]))
    return kinds


def group_of(obj):
    return obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""


def established(cluster, name, timeout=60):
    """Waits for the CRD's Established condition. (`kubectl wait` fails outright, instead of
    waiting, when it looks before the server has written any status.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = cluster.kubectl_json(["get", "crd", name])
        conds = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions") or []}
        if conds.get("Established") == "True":
            return
        time.sleep(0.1)
    raise AssertionError("%s not Established after %ss" % (name, timeout))


def isolated(obj):
    """A copy of a namespaced object in a namespace no other test uses."""
    obj = json.loads(json.dumps(obj))
    if "namespace" in obj["metadata"]:
        obj["metadata"]["namespace"] = "deploy-test-" + obj["metadata"]["namespace"]
    return obj


def dry_run(cluster, objs):
    doc = "\n---\n".join(json.dumps(o) for o in objs)
    return cluster.kubectl(["apply", "--server-side", "--dry-run=server", "--field-manager", "meshdlp-test",
                            "-f", "-"], input=doc)


def test_server_accepts_what_it_serves(cluster, overlay):
    """The rendered CRD and the example DataPolicies through the real API server. Everything else
    in the render is of a kind this server does not serve (asserted, so the split stays honest)."""
    crd = one(overlay, "CustomResourceDefinition")
    # A dry run does not create the CRD, and DataPolicies need it: apply it (as test_crd.py does).
    cluster.kubectl(["apply", "--server-side", "--field-manager", "meshdlp-test", "-f", "-"],
                    input=json.dumps(crd), check=True)
    established(cluster, crd["metadata"]["name"])
    served = served_kinds(cluster)
    applied = [o for o in overlay if (group_of(o), o["kind"]) in served]
    offline = sorted({o["kind"] for o in overlay if (group_of(o), o["kind"]) not in served})
    assert sorted({o["kind"] for o in applied}) == ["CustomResourceDefinition", "DataPolicy"], applied
    assert offline == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Namespace", "PodDisruptionBudget", "Role",
                       "RoleBinding", "ServiceAccount"], offline
    # Other tests' objects may share these names (test_crd.py has shop/shop): the DataPolicies go
    # to namespaces of their own (this server has no Namespace objects to create first).
    applied = [isolated(o) for o in applied]
    r = dry_run(cluster, applied)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(applied) and all(l.endswith("serverside-applied (server dry run)") for l in lines), lines
    for d in by_kind(applied, "DataPolicy"):
        assert "datapolicy.meshdlp.io/%s serverside-applied" % d["metadata"]["name"] in r.stdout, r.stdout
        # a dry run stores nothing
        got = cluster.kubectl(["get", "dp", d["metadata"]["name"], "-n", d["metadata"]["namespace"], "--ignore-not-found",
                               "-o", "name"], check=True)
        assert got.stdout.strip() == ""


def test_server_dry_run_still_validates(cluster, overlay):
    """The same dry run refuses a broken copy of the example (CEL: exclusive match fields), so the
    acceptance above is the CRD's verdict, not a dry run that checks nothing."""
    established(cluster, "datapolicies.meshdlp.io")
    shop = next(d for d in by_kind(overlay, "DataPolicy") if d["spec"].get("routes"))
    bad = isolated(shop)
    bad["spec"]["routes"][0]["match"]["prefix"] = "/orders/"
    r = dry_run(cluster, [bad])
    assert r.returncode != 0 and "use one of `path`, `prefix`, `template` or `regex`" in r.stderr, r.stderr


def test_example_policies_compile_with_the_engine(overlay, tmp_path):
    """The server checks shape and CEL; the engine checks the rest (what the controller will do):
    `meshdlp check` takes the DataPolicy as written (`make test-k8s` builds the CLI first)."""
    assert os.access(MESHDLP, os.X_OK), "target/release/meshdlp not built: run `make cli`"
    for d in by_kind(overlay, "DataPolicy"):
        path = tmp_path / ("%s-%s.yaml" % (d["metadata"]["namespace"], d["metadata"]["name"]))
        path.write_text(yaml.safe_dump(d))
        r = subprocess.run([MESHDLP, "check", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("ok:"), r.stdout + r.stderr
