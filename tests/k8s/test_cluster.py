"""Smoke test of the test cluster itself (issue 8, M1): Istio's CRDs are served and enforced by the
real apiextensions-apiserver, the Lease shim works, the registry answers, kubectl explain works."""

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

import cluster as cluster_mod

SHA = "0123456789abcdef" * 4

ENVOY_FILTER = {
    "apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
    # namespace "shop" has no Namespace object: the test server has no NamespaceLifecycle admission
    "metadata": {"name": "meshdlp-smoke", "namespace": "shop", "labels": {"app.kubernetes.io/managed-by": "meshdlp"}},
    "spec": {
        "workloadSelector": {"labels": {"app": "orders"}},
        "configPatches": [{
            "applyTo": "EXTENSION_CONFIG",
            "patch": {"operation": "ADD", "value": {
                "name": "meshdlp.shop.smoke",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {"name": "meshdlp.shop.smoke", "root_id": "meshdlp",
                               "vm_config": {"runtime": "envoy.wasm.runtime.v8",
                                             "code": {"local": {"filename": "/etc/meshdlp/plugin.wasm"}}},
                               "allow_on_headers_stop_iteration": True}},
            }},
        }],
    },
}


def wasm_plugin(name, **spec):
    base = {"selector": {"matchLabels": {"app": "orders"}}, "url": "oci://127.0.0.1:5000/meshdlp-filter@sha256:" + SHA,
            "sha256": SHA, "phase": "AUTHZ", "failStrategy": "FAIL_CLOSE"}
    base.update(spec)
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": name, "namespace": "shop"}, "spec": base}


def test_istio_crds_applied_server_side(cluster, istio_crds):
    with open(cluster_mod.ISTIO_CRDS) as f:
        expected = sorted(d["metadata"]["name"] for d in yaml.load_all(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                          if d and d.get("kind") == "CustomResourceDefinition")
    assert len(expected) == 15 and sorted(istio_crds) == expected
    crd = cluster.kubectl_json(["get", "crd", "envoyfilters.networking.istio.io"])
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds.get("Established") == "True" and conds.get("NonStructuralSchema") is None, conds
    # server-side apply: no client-side last-applied annotation (destinationrules is 377 KB of YAML)
    dr = cluster.kubectl_json(["get", "crd", "destinationrules.networking.istio.io"])
    assert "kubectl.kubernetes.io/last-applied-configuration" not in dr["metadata"].get("annotations", {})
    # discovery: kubectl finds the Istio kinds by short name
    out = cluster.kubectl(["api-resources", "--api-group", "networking.istio.io", "-o", "name"], check=True).stdout
    assert "envoyfilters.networking.istio.io" in out.split()


def test_envoyfilter_created_and_read_back(cluster, istio_crds):
    cluster.apply(ENVOY_FILTER)
    got = cluster.kubectl_json(["get", "envoyfilter", "meshdlp-smoke", "-n", "shop"])
    assert got["spec"] == ENVOY_FILTER["spec"]
    assert got["metadata"]["labels"] == ENVOY_FILTER["metadata"]["labels"]
    assert got["metadata"]["uid"] and got["metadata"]["resourceVersion"]
    listed = cluster.kubectl_json(["get", "envoyfilters", "-A"])
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [("shop", "meshdlp-smoke")]


def test_valid_wasmplugin_accepted(cluster, istio_crds):
    r = cluster.kubectl(["create", "--dry-run=server", "-f", "-", "-o", "json"],
                        input=json.dumps(wasm_plugin("meshdlp-ok")))
    assert r.returncode == 0, r.stderr


def test_invalid_wasmplugin_rejected_422(cluster, istio_crds):
    # schema pattern: sha256 must be 64 lowercase hex digits
    r = cluster.kubectl(["create", "-f", "-", "-v=6"], input=json.dumps(wasm_plugin("meshdlp-bad", sha256="ABC")))
    assert r.returncode != 0
    assert "422" in r.stderr, r.stderr
    assert "spec.sha256" in r.stderr and "(^$|^[a-f0-9]{64}$)" in r.stderr, r.stderr
    # CEL rule (x-kubernetes-validations) on url, and on the selector/targetRefs exclusion
    r = cluster.kubectl(["create", "-f", "-"], input=json.dumps(wasm_plugin(
        "meshdlp-bad2", url="ftp://example.invalid/x.wasm", targetRefs=[{"kind": "Gateway", "name": "gw"}])))
    assert r.returncode != 0
    assert "url must have schema one of [http, https, file, oci]" in r.stderr, r.stderr
    assert "only one of targetRefs or selector can be set" in r.stderr, r.stderr
    r = cluster.kubectl(["get", "wasmplugins", "-n", "shop", "-o", "name"], check=True)
    assert r.stdout.strip() == ""


def test_lease_through_shim(cluster):
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "meshdlp-controller", "namespace": "meshdlp-system"},
             "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15,
                      "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:05.000000Z",
                      "leaseTransitions": 0}}
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(lease), check=True)
    got = cluster.kubectl_json(["get", "leases.coordination.k8s.io", "meshdlp-controller", "-n", "meshdlp-system"])
    assert got["spec"] == lease["spec"]
    # optimistic concurrency, which leader election relies on: a stale resourceVersion is a 409
    stale = dict(got, spec=dict(got["spec"], holderIdentity="pod-b"))
    stale["metadata"] = dict(got["metadata"], resourceVersion=str(int(got["metadata"]["resourceVersion"]) - 1))
    r = cluster.kubectl(["replace", "-f", "-"], input=json.dumps(stale))
    assert r.returncode != 0 and "the object has been modified" in r.stderr, r.stderr
    event = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
             "metadata": {"name": "orders.1", "namespace": "shop"},
             "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "meshdlp.io/controller",
             "reportingInstance": "pod-a", "action": "Reconcile", "reason": "Programmed", "type": "Normal",
             "note": "wrote EnvoyFilter shop/meshdlp-orders",
             "regarding": {"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy", "namespace": "shop", "name": "orders"}}
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(event), check=True)
    got = cluster.kubectl_json(["get", "events.events.k8s.io", "orders.1", "-n", "shop"])
    assert got["note"] == event["note"] and got["regarding"] == event["regarding"]


def test_registry_v2(cluster):
    with urllib.request.urlopen(cluster.registry + "/v2/", timeout=5) as r:
        assert r.status == 200
        assert r.headers.get("Docker-Distribution-Api-Version") == "registry/2.0"


def test_kubectl_explain(cluster, istio_crds):
    r = cluster.kubectl(["explain", "envoyfilter.spec"], check=True)
    assert "KIND:" in r.stdout and "EnvoyFilter" in r.stdout
    assert "configPatches" in r.stdout and "workloadSelector" in r.stdout, r.stdout
    r = cluster.kubectl(["explain", "wasmplugin.spec.sha256"], check=True)
    assert "sha256" in r.stdout.lower()


def test_version_and_client_cert_auth(cluster):
    v = cluster.kubectl_json(["version"])
    assert v["clientVersion"]["minor"] == "36", v  # the project-local kubectl, not /usr/bin/kubectl
    assert v["serverVersion"]["gitVersion"], v
    # without the client certificate: anonymous, only /healthz, /readyz, /livez are open
    ctx = ssl.create_default_context(cafile=os.path.join(cluster.pki, "ca.crt"))
    with urllib.request.urlopen(cluster.server + "/readyz", timeout=5, context=ctx) as r:
        assert r.status == 200
    try:
        urllib.request.urlopen(cluster.server + "/apis", timeout=5, context=ctx)
        raise AssertionError("anonymous /apis allowed")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e


CHILD_CONFTEST = '''
import importlib.util
import sys

sys.path.insert(0, %(k8s)r)
_spec = importlib.util.spec_from_file_location("k8s_conftest", %(conftest)r)
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
cluster = _mod.cluster  # the session fixture of tests/k8s, unchanged
'''

CHILD_TEST = '''
import json
import time


def test_hold(cluster):
    print("PIDS " + json.dumps({name: p.pid for name, p in cluster.procs.items()}), flush=True)
    time.sleep(300)
'''


def _runs(pid, exe):
    """`pid` is alive (not a zombie) and runs `exe`."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace") == exe
    except (OSError, IndexError):
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_sigterm_of_the_test_process_stops_the_servers(cluster, tmp_path, signum):
    """Regression (review of session 8): a pytest process ended by SIGTERM (a CI timeout, a killed
    job) left etcd, the API server and the registry running - Python's default SIGTERM action exits
    without running the fixtures' finalizers, and the servers run in their own sessions. Now
    cluster.py stops them, by pid, before the process dies of the signal; after a SIGKILL (no
    handler runs) the kernel kills them (PR_SET_PDEATHSIG). A second pytest with its own cluster
    (its own MESHDLP_K8S_WORK) is started and sent the signal."""
    k8s = os.path.dirname(os.path.abspath(cluster_mod.__file__))
    (tmp_path / "conftest.py").write_text(CHILD_CONFTEST % {"k8s": k8s, "conftest": os.path.join(k8s, "conftest.py")})
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    env = dict(os.environ, MESHDLP_K8S_WORK=os.path.join(cluster.work, "sigterm-child"))
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir",
                              str(tmp_path), str(tmp_path / "test_child.py")], cwd=str(tmp_path), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    exes = {"etcd": cluster_mod.ETCD, "testserver": cluster_mod.TESTSERVER, "registry": cluster_mod.REGISTRY}
    pids = {}
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("PIDS "):
                pids = json.loads(line[5:])
                break
        assert set(pids) == set(exes), "".join(lines)
        assert all(_runs(pid, exes[name]) for name, pid in pids.items()), pids
        t0 = time.monotonic()
        child.send_signal(signum)
        assert child.wait(timeout=60) == -signum  # it still dies of the signal
        took = time.monotonic() - t0
        deadline = time.monotonic() + 10  # SIGKILL: the kernel's signal is not waited for
        while time.monotonic() < deadline and any(_runs(pid, exes[name]) for name, pid in pids.items()):
            time.sleep(0.1)
        left = {name: pid for name, pid in pids.items() if _runs(pid, exes[name])}
        print("%s to exit %.2fs, left running: %s" % (signal.Signals(signum).name, took, left))
        assert left == {}, left
        # stopped cleanly: no leftovers for the next start to end (after SIGKILL it does that)
        assert os.path.exists(os.path.join(env["MESHDLP_K8S_WORK"], "pids.json")) == (signum == signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        for name, pid in pids.items():  # never leave them behind, also when the test fails
            if _runs(pid, exes[name]):
                os.kill(pid, signal.SIGKILL)
