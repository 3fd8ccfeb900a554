"""The DataPolicy CRD (issue 8, M2) on the real apiextensions-apiserver: the committed, generated
k8s/crd/datapolicies.meshdlp.io.yaml is accepted and Established, a realistic policy (the demo's
examples/policy.yaml) round-trips, and what the schema and CEL can check is rejected with a 422
that names the rule. What only the engine can tell is the controller's job (M6)."""

import copy
import json
import os

import pytest
import yaml

import cluster as cluster_mod

CRD_FILE = os.path.join(cluster_mod.ROOT, "k8s", "crd", "datapolicies.meshdlp.io.yaml")
CRD_NAME = "datapolicies.meshdlp.io"
NS = "shop"


@pytest.fixture(scope="module")
def crd(cluster):
    r = cluster.kubectl(["apply", "--server-side", "--field-manager", "meshdlp-test", "-f", CRD_FILE], check=True)
    assert "datapolicies.meshdlp.io" in r.stdout
    cluster.wait_established([CRD_NAME])
    yield cluster.kubectl_json(["get", "crd", CRD_NAME])
    # The session shares one API server: the DataPolicies created here would be reconciled by
    # the controller of a later module (test_controller.py counts what is programmed).
    cluster.kubectl(["delete", "datapolicies", "-n", NS, "--ignore-not-found", "--wait=false", *CREATED], check=True)


# Every DataPolicy the tests here store (removed at the end of the module).
CREATED = ["shop", "status-check", "columns", "update", "nulls", "scopes-ok", "scopes-header"]


def example_spec():
    with open(os.path.join(cluster_mod.ROOT, "examples", "policy.yaml")) as f:
        spec = yaml.safe_load(f)
    spec["keys"].append({"id": "prod-k2", "secretRef": {"name": "meshdlp-keys", "key": "k2"}})
    spec["selector"] = {"matchLabels": {"app": "shop"}}
    spec["delivery"] = {"mode": "EnvoyFilter"}
    return spec


def data_policy(name, spec):
    return {"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def create_rejected(cluster, obj):
    """kubectl create of an invalid object: the status code and the server's message."""
    r = cluster.kubectl(["create", "-f", "-", "-v=6"], input=json.dumps(obj))
    assert r.returncode != 0, "accepted: %s" % json.dumps(obj["spec"])[:300]
    got = cluster.kubectl(["get", "datapolicy", obj["metadata"]["name"], "-n", NS, "--ignore-not-found", "-o", "name"],
                          check=True)
    assert got.stdout.strip() == "", "stored anyway"
    return r.stderr


def test_crd_established_and_structural(cluster, crd):
    conds = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conds["Established"]["status"] == "True", conds
    assert conds["NamesAccepted"]["status"] == "True", conds
    assert "NonStructuralSchema" not in conds, conds["NonStructuralSchema"]["message"]
    assert crd["spec"]["names"]["shortNames"] == ["dp"] and crd["spec"]["scope"] == "Namespaced"
    out = cluster.kubectl(["api-resources", "--api-group", "meshdlp.io"], check=True).stdout
    assert "datapolicies" in out and "dp" in out.split() and "DataPolicy" in out, out


def test_valid_policy_created_and_read_back(cluster, crd):
    obj = data_policy("shop", example_spec())
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(obj), check=True)
    got = cluster.kubectl_json(["get", "dp", "shop", "-n", NS])
    assert got["spec"] == obj["spec"]  # nothing pruned, no defaults added
    assert got["metadata"]["generation"] == 1
    # actions are a name or an object: both kept as written
    orders = next(r for r in got["spec"]["routes"] if r["name"] == "orders")["response"]
    assert orders["fields"][0]["action"] == {"type": "mask", "keepLast": 4, "keepSeparators": True}
    assert orders["actions"] == {"phone": "redact", "internal_note": "drop"}


def test_status_subresource(cluster, crd):
    obj = data_policy("status-check", {"mode": "monitor", "routes": [{"name": "a", "match": {"prefix": "/a/"}}]})
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(obj), check=True)
    status = {"observedGeneration": 1, "conditions": [
        {"type": "Compiled", "status": "True", "reason": "Compiled", "message": "", "observedGeneration": 1,
         "lastTransitionTime": "2026-11-30T00:00:00Z"},
        {"type": "Programmed", "status": "False", "reason": "Pending", "message": "no EnvoyFilter yet",
         "observedGeneration": 1, "lastTransitionTime": "2026-11-30T00:00:00Z"}]}
    cluster.kubectl(["patch", "dp", "status-check", "-n", NS, "--subresource", "status", "--type", "merge",
                     "-p", json.dumps({"status": status})], check=True)
    got = cluster.kubectl_json(["get", "dp", "status-check", "-n", NS])
    assert got["status"] == status
    assert got["metadata"]["generation"] == 1  # status writes do not bump the generation
    # the spec cannot be changed through /status
    cluster.kubectl(["patch", "dp", "status-check", "-n", NS, "--subresource", "status", "--type", "merge",
                     "-p", json.dumps({"spec": {"mode": "enforce"}})], check=True)
    assert cluster.kubectl_json(["get", "dp", "status-check", "-n", NS])["spec"]["mode"] == "monitor"
    bad = copy.deepcopy(status)
    bad["conditions"][0]["status"] = "Maybe"
    r = cluster.kubectl(["patch", "dp", "status-check", "-n", NS, "--subresource", "status", "--type", "merge",
                         "-p", json.dumps({"status": bad})])
    assert r.returncode != 0 and 'Unsupported value: "Maybe"' in r.stderr, r.stderr


def test_printer_columns(cluster, crd):
    test_name = "columns"
    spec = {"mode": "monitor", "delivery": {"mode": "WasmPlugin"}, "routes": [{"name": "a", "match": {"path": "/a"}}]}
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(data_policy(test_name, spec)), check=True)
    cluster.kubectl(["patch", "dp", test_name, "-n", NS, "--subresource", "status", "--type", "merge", "-p", json.dumps(
        {"status": {"conditions": [{"type": "Compiled", "status": "True", "reason": "Compiled", "message": "",
                                    "lastTransitionTime": "2026-11-30T00:00:00Z"}]}})], check=True)
    out = cluster.kubectl(["get", "datapolicies", test_name, "-n", NS], check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "MODE", "DELIVERY", "COMPILED", "PROGRAMMED", "AGE"], out
    row = out[1].split()
    # no Programmed condition yet: an empty cell, then the age
    assert row[:4] == [test_name, "monitor", "WasmPlugin", "True"] and len(row) == 5, out
    assert out[1][out[0].index("PROGRAMMED"):out[0].index("AGE")].strip() == "", out


def test_kubectl_explain(cluster, crd):
    out = cluster.kubectl(["explain", "datapolicy.spec"], check=True).stdout
    assert "KIND:" in out and "DataPolicy" in out, out
    for field in ("routes", "classes", "keys", "defaultRoute", "minConfidence", "mode", "selector", "delivery"):
        assert field in out, (field, out)
    out = cluster.kubectl(["explain", "dp.spec.routes.match"], check=True).stdout
    assert "template" in out and "regex" in out, out
    out = cluster.kubectl(["explain", "dp.spec.delivery.mode"], check=True).stdout
    assert "EnvoyFilter" in out and "WasmPlugin" in out, out


def test_schema_rejections_422(cluster, crd):
    spec = example_spec()
    spec["routes"].append(copy.deepcopy(spec["routes"][0]))  # duplicate name `users`
    err = create_rejected(cluster, data_policy("dup-route", spec))
    assert "422" in err and 'spec.routes[8]: Duplicate value: {"name":"users"}' in err, err

    spec = example_spec()
    spec["classes"].append({"name": "internal_note", "keyHints": ["x"]})
    err = create_rejected(cluster, data_policy("dup-class", spec))
    assert "422" in err and 'spec.classes[1]: Duplicate value: {"name":"internal_note"}' in err, err

    spec = example_spec()
    spec["keys"].append({"id": "e2e1", "env": "OTHER"})
    err = create_rejected(cluster, data_policy("dup-key", spec))
    assert 'spec.keys[2]: Duplicate value: {"id":"e2e1"}' in err, err

    spec = example_spec()
    spec["classes"][0]["confidence"] = 1.5
    spec["minConfidence"] = -0.1
    err = create_rejected(cluster, data_policy("confidence", spec))
    assert "422" in err, err
    assert "spec.classes[0].confidence in body should be less than or equal to 1" in err, err
    assert "spec.minConfidence in body should be greater than or equal to 0" in err, err

    spec = example_spec()
    spec["mode"] = "audit"
    spec["routes"][1]["response"]["onError"] = "ignore"
    spec["delivery"]["mode"] = "Sidecar"
    spec["classes"][0]["validator"] = "crc32"
    err = create_rejected(cluster, data_policy("enums", spec))
    assert "422" in err, err
    assert 'spec.mode: Unsupported value: "audit": supported values: "enforce", "monitor"' in err, err
    assert 'spec.routes[1].response.onError: Unsupported value: "ignore": supported values: "block", "allow"' in err, err
    assert 'spec.delivery.mode: Unsupported value: "Sidecar": supported values: "EnvoyFilter", "WasmPlugin"' in err, err
    assert 'spec.classes[0].validator: Unsupported value: "crc32"' in err, err

    spec = example_spec()
    spec["routes"][0]["name"] = "users v2"  # a metric label
    spec["routes"][1]["match"] = {"path": "orders"}
    spec["routes"][2]["match"]["methods"] = ["FETCH"]
    spec["keys"][0]["id"] = "key_1"
    spec["keys"][1]["secretRef"]["name"] = "Meshdlp_Keys"
    err = create_rejected(cluster, data_policy("patterns", spec))
    assert "spec.routes[0].name in body should match '^[A-Za-z0-9_-]+$'" in err, err
    assert "spec.routes[1].match.path in body should match '^/'" in err, err
    assert "spec.routes[2].match.methods[0] in body should match" in err, err
    assert "spec.keys[0].id in body should match" in err, err
    assert "spec.keys[1].secretRef.name in body should match" in err, err


def test_cel_rejections_422(cluster, crd):
    # CEL runs only once the schema checks pass, so these specs are otherwise valid.
    spec = example_spec()
    spec["routes"][1]["match"] = {"path": "/orders", "prefix": "/orders/"}  # exclusive (src/route.rs)
    spec["routes"][3]["match"] = {"template": "/echo/{id}", "regex": "/echo/.*"}
    spec["routes"][2]["name"] = "default"  # the default route's name
    spec["keys"][0] = {"id": "e2e1", "inline": "0123456789abcdef0123"}  # no key material in objects
    spec["keys"][1] = {"id": "prod-k2", "env": "K2", "secretRef": {"name": "meshdlp-keys", "key": "k2"}}
    # Any other variable of the sidecar (a proxy credential) must not become a hashing key.
    spec["keys"].append({"id": "k3", "env": "AWS_SECRET_ACCESS_KEY"})
    # A line break in a variable name would end `meshdlp render`'s comment block (YAML injection).
    spec["keys"].append({"id": "k4", "env": "MESHDLP_KEY_X\n---\nkind: ClusterRoleBinding"})
    err = create_rejected(cluster, data_policy("cel", spec))
    assert "422" in err, err
    assert "spec.routes[1].match: Invalid value: use one of `path`, `prefix`, `template` or `regex`" in err, err
    assert "spec.routes[3].match: Invalid value: use one of `path`, `prefix`, `template` or `regex`" in err, err
    assert "spec.routes[2].name: Invalid value: \"default\": route name `default` is reserved" in err, err
    assert "spec.keys[0]: Invalid value: `inline` keys (the secret in the object) are not allowed" in err, err
    assert "spec.keys[0]: Invalid value: a key needs exactly one of `env` or `secretRef`" in err, err
    assert "spec.keys[1]: Invalid value: a key needs exactly one of `env` or `secretRef`" in err, err
    for i in (1, 2, 3):
        assert "spec.keys[%d]: Invalid value: `env` must be `MESHDLP_KEY` or `MESHDLP_KEY_` and capitals" % i in err, err
    assert "0123456789abcdef0123" not in err  # the rejected secret is not echoed back


def test_update_checked_too(cluster, crd):
    """An update that breaks a rule is refused and the stored object stays as it was."""
    obj = data_policy("update", {"routes": [{"name": "a", "match": {"path": "/a"}}]})
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(obj), check=True)
    r = cluster.kubectl(["patch", "dp", "update", "-n", NS, "--type", "json", "-p", json.dumps(
        [{"op": "add", "path": "/spec/routes/0/match/prefix", "value": "/b/"}])])
    assert r.returncode != 0 and "use one of `path`, `prefix`, `template` or `regex`" in r.stderr, r.stderr
    got = cluster.kubectl_json(["get", "dp", "update", "-n", NS])
    assert got["spec"] == obj["spec"] and got["metadata"]["generation"] == 1


def test_nulls_are_pruned(cluster, crd):
    """`field: null` (which the engine reads as absent) is dropped by the server, so CEL and the
    controller see the same thing the engine would."""
    obj = data_policy("nulls", {"minConfidence": None, "routes": [{"name": "a", "match": {"path": "/a", "prefix": None}}]})
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(obj), check=True)
    got = cluster.kubectl_json(["get", "dp", "nulls", "-n", NS])
    assert got["spec"] == {"routes": [{"name": "a", "match": {"path": "/a"}}]}


def test_unknown_fields_rejected_by_kubectl(cluster, crd):
    """kubectl's default strict field validation turns the pruning of unknown fields into an error
    (the manifest's deny_unknown_fields, enforced by the server)."""
    obj = data_policy("typo", {"routes": [{"name": "a", "match": {"path": "/a"}, "respnse": {}}]})
    r = cluster.kubectl(["create", "-f", "-"], input=json.dumps(obj))
    assert r.returncode != 0 and 'unknown field "spec.routes[0].respnse"' in r.stderr, r.stderr


def nested(depth, leaf="redact"):
    for _ in range(depth):
        leaf = {"type": "mask", "x": leaf}
    return leaf


def test_deep_action_refused_422(cluster, crd):
    """Regression (review of session 7, DoS): an action is a name or an object, so its node keeps
    unknown fields; an action nested 130 levels deep was stored, and every client that decodes
    with serde_json (the controller's watch: 128 levels) failed for every namespace. The schema
    now bounds an action to a name or one level of scalars (`maxItems: 0`, and
    `additionalProperties` with `maxProperties: 0` / `maxItems: 0`)."""
    for name, action in (("deep-object", nested(130)), ("deep-array", [[["redact"]]]),
                         ("object-in-action", {"type": "mask", "x": {"y": 1}})):
        spec = example_spec()
        spec["routes"][1]["response"]["fields"][0]["action"] = action
        spec["routes"][1]["response"]["actions"]["phone"] = action
        spec["routes"][1]["response"]["defaultAction"] = action
        err = create_rejected(cluster, data_policy(name, spec))
        assert "422" in err, err
        for path in ("fields[0].action", "actions.phone", "defaultAction"):
            assert "spec.routes[1].response.%s" % path in err and "must have at most 0 items" in err, (name, err)
    # Both forms still work, and an empty array or map is left for the engine to refuse.
    spec = example_spec()
    spec["routes"][1]["response"]["defaultAction"] = {"type": "mask", "keepLast": 4, "keepSeparators": True,
                                                      "maskChar": "#"}
    spec["routes"][1]["response"]["actions"]["phone"] = "hash"
    cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(data_policy("forms", spec)),
                    check=True)


def test_long_name_refused_422(cluster, crd):
    """The name goes into object names and the `meshdlp.io/datapolicy` label value: 63 at most."""
    spec = {"routes": [{"name": "a", "match": {"path": "/a"}}]}
    err = create_rejected(cluster, data_policy("n" * 64, spec))
    assert "422" in err and "metadata.name: Too long: may not be more than 63" in err, err
    cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(data_policy("n" * 63, spec)),
                    check=True)


def test_scopes_typed_and_checked(cluster, crd):
    """spec.scopes (the filter's `scopes` setting): stored as written when valid; a trusted header
    needs a header (CEL, as `meshdlp check`); a header name, `trustHeader` and the metadata key
    are checked by the schema."""
    spec = {"scopes": {"metadata": {"key": "https://issuer.example", "claim": "scp"}},
            "routes": [{"name": "a", "match": {"prefix": "/a/"}}]}
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(data_policy("scopes-ok", spec)), check=True)
    assert cluster.kubectl_json(["get", "dp", "scopes-ok", "-n", NS])["spec"] == spec
    spec = dict(spec, scopes={"header": "X-Verified-Scopes", "trustHeader": True})
    cluster.kubectl(["create", "-f", "-"], input=json.dumps(data_policy("scopes-header", spec)), check=True)
    err = create_rejected(cluster, data_policy("scopes-cel", dict(spec, scopes={"trustHeader": True})))
    assert "422" in err and "spec.scopes: Invalid value: `trustHeader: true` needs `header`" in err, err
    err = create_rejected(cluster, data_policy("scopes-bad", dict(spec, scopes={
        "header": "x scopes", "trustHeader": "yes", "metadata": {"claim": "scope"}})))
    assert "422" in err, err
    for field in ("spec.scopes.header", "spec.scopes.trustHeader", "spec.scopes.metadata.key"):
        assert field in err, (field, err)


def test_selector_label_values_bounded_422(cluster, crd):
    """A `selector.matchLabels` value is a label value: at most 63 characters, alphanumeric at both
    ends (what the API server requires of labels, and Istio of a workloadSelector); `meshdlp check`
    agrees (src/k8s/spec.rs)."""
    spec = {"selector": {"matchLabels": {"app": "a" * 64}}, "routes": [{"name": "a", "match": {"path": "/a"}}]}
    err = create_rejected(cluster, data_policy("label-long", spec))
    assert "422" in err and "spec.selector.matchLabels.app: Too long: may not be more than 63" in err, err
    spec["selector"]["matchLabels"] = {"app": "-orders", "tier": "a b"}
    err = create_rejected(cluster, data_policy("label-pattern", spec))
    assert "422" in err, err
    assert "spec.selector.matchLabels.app in body should match" in err, err
    assert "spec.selector.matchLabels.tier in body should match" in err, err
    for value in ("a" * 63, "v1.2_x-y", ""):
        spec["selector"]["matchLabels"] = {"app": value}
        cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(data_policy("label-ok", spec)),
                        check=True)


def test_enforced_is_a_boolean_422(cluster, crd):
    spec = {"enforced": "yes", "routes": [{"name": "a", "match": {"path": "/a"}}]}
    err = create_rejected(cluster, data_policy("enforced-str", spec))
    assert "422" in err and "spec.enforced: Invalid value" in err, err
    spec["enforced"] = True
    cluster.kubectl(["create", "--dry-run=server", "-f", "-"], input=json.dumps(data_policy("enforced-ok", spec)),
                    check=True)
