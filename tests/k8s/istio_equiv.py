"""What istiod and istio-agent would hand one inbound sidecar for the EnvoyFilters `meshdlp render`
prints, as files the real Envoy loads (issue 8, M5; tests/k8s/test_envoy_chain.py).

    python3 tests/k8s/istio_equiv.py RENDERED.yaml... --out DIR --upstream PORT [--port P --admin A]

writes DIR/bootstrap.json and one ECDS file per filter (DIR/ecds/<name>.json), then prints the
bootstrap path. `envoy -c DIR/bootstrap.json --reject-unknown-dynamic-fields` runs the sidecar.

What it does, in istiod's and the agent's order:
- istiod: the HTTP_FILTER patches of the EnvoyFilters (in the order given, patches in list order)
  are applied to the inbound HTTP filter chain of one listener on 127.0.0.1 (standing in for
  `virtualInbound`; its chain holds only the router, plus whatever the patches add) whose
  http_connection_manager routes everything to the test upstream. The EXTENSION_CONFIG ADD values
  become the ECDS resources, one `TypedExtensionConfig` each.
- The single deviation: ECDS comes from a file, not from ADS. In each inserted filter,
  `config_discovery.config_source.ads` is replaced by `path_config_source: {path: <ecds file>}`;
  `initial_fetch_timeout` (0s: wait, never run without the filter), `resource_api_version` and
  `type_urls` stay as rendered. A hot swap is a new file moved over the old one (`mv`), which Envoy
  watches - where istiod would push a new ECDS response.
- istio-agent (pkg/wasm/convert.go, Istio 1.30.3) on each ECDS resource whose Wasm config has
  `vm_config.code.remote`: drops every `ISTIO_META_*` entry of `environment_variables.key_values`
  (then no key_values at all if none is left, and no environment_variables if there are no
  host_env_keys either); `sha256` "nil" means none; fetches the image
  (tests/k8s/istio_fetch.py: pin = `sha256`, else the URL's digest, checked against the manifest
  digest); writes the module to a local file and replaces `code.remote` with
  `code.local.filename`. `code.local` passes unchanged. When the fetch fails the resource becomes
  an RBAC filter of the same name: allow-all only for FAIL_OPEN (or the deprecated `fail_open`
  when no failure_policy is set), else deny-all (`rules: {}`, stat prefix `wasm-default-deny`):
  every request on the listener gets 403 "RBAC: access denied". That is why the render lists
  RBAC in `type_urls`.
- The node has an id and a cluster (Envoy needs both for ECDS) in Istio's `sidecar~IP~POD.NS~...`
  form.

What it does NOT reproduce (only a cluster with istiod shows these):
- istiod's selection and ordering of EnvoyFilters (workloadSelector, root namespace before the
  workload's, priority): the caller gives the order; `workloadSelector` is ignored;
- the rest of Istio's inbound listener: mTLS, the other filter chains, Istio's own HTTP filters
  (metadata exchange, authn, stats...) before the router, and its routes and clusters;
- how istiod converts patch values (`UnmarshalAllowUnknown`: an unknown field is dropped
  silently). Here Envoy reads the values as written, and the test runs it with
  `--reject-unknown-dynamic-fields`, so a misspelt field fails loudly instead;
- the agent's module cache, pull policy, pull secrets and keychains, retries, its NACK when even
  the RBAC substitute cannot be built, and its metrics; `ISTIO_META_WASM_IMAGE_PULL_POLICY` is
  stripped but not acted on;
- the istio-proxy container: its env (the Secret's value reaches MESHDLP_KEY_* by secretKeyRef:
  here the caller puts it into Envoy's environment, as pilot-agent passes its own), injection,
  pilot-agent's Envoy flags and lifecycle.
"""

import argparse
import copy
import hashlib
import json
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import istio_fetch  # noqa: E402

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
EXTENSION_CONFIG_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
ISTIO_META_PREFIX = "ISTIO_META_"  # pkg/bootstrap IstioMetaPrefix
INBOUND_CLUSTER = "inbound|8080||"  # Istio's name for the inbound cluster of port 8080
# convert.go: the substitutes for a Wasm config whose module cannot be fetched.
DENY_ALL = {"@type": RBAC_TYPE, "rules": {}, "rules_stat_prefix": "wasm-default-deny"}
ALLOW_ALL = {"@type": RBAC_TYPE, "rules_stat_prefix": "wasm-default-allow"}


class NotMirrored(Exception):
    """A patch this emulation does not apply (the test would prove nothing about it)."""


def envoy_filters(text):
    """The EnvoyFilter documents of a render (comment block and other kinds skipped)."""
    return [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "EnvoyFilter"]


# ------------------------------------------------------------------ istiod: the patches

def _subfilter(match):
    flt = (((match or {}).get("listener") or {}).get("filterChain") or {}).get("filter") or {}
    if flt.get("name", HCM) != HCM:
        return None  # a network filter other than HCM: not on an HTTP chain
    return (flt.get("subFilter") or {}).get("name")


def inbound_http_filters(filters):
    """The HTTP filters of the inbound HCM after every HTTP_FILTER patch that applies to
    SIDECAR_INBOUND (or ANY), in the order given (istiod: root namespace first, then list order)."""
    chain = [{"name": ROUTER, "typed_config": {"@type": ROUTER_TYPE}}]
    for ef in filters:
        for patch in ef["spec"].get("configPatches", []):
            apply_to, op = patch["applyTo"], patch["patch"]["operation"]
            if apply_to == "EXTENSION_CONFIG":
                continue
            if apply_to != "HTTP_FILTER":
                raise NotMirrored("applyTo %s" % apply_to)
            if (patch.get("match") or {}).get("context", "ANY") not in ("SIDECAR_INBOUND", "ANY"):
                continue
            target = _subfilter(patch.get("match"))
            names = [f["name"] for f in chain]
            value = copy.deepcopy(patch["patch"].get("value"))
            if op == "REMOVE":
                chain = [f for f in chain if f["name"] != target]
            elif op in ("INSERT_BEFORE", "INSERT_AFTER") and target in names:
                i = names.index(target) + (op == "INSERT_AFTER")
                chain.insert(i, value)
            elif op in ("INSERT_BEFORE", "INSERT_AFTER"):
                continue  # istiod skips a patch whose subFilter is not in the chain
            elif op == "INSERT_FIRST":
                chain.insert(0, value)
            else:
                raise NotMirrored("HTTP_FILTER operation %s" % op)
    return chain


def extension_configs(filters):
    """name -> the value of each EXTENSION_CONFIG ADD. istiod would emit two resources of one
    name (extension_configuration_patch.go); that is refused here."""
    out = {}
    for ef in filters:
        for patch in ef["spec"].get("configPatches", []):
            if patch["applyTo"] != "EXTENSION_CONFIG":
                continue
            if patch["patch"]["operation"] != "ADD":
                raise NotMirrored("EXTENSION_CONFIG operation %s" % patch["patch"]["operation"])
            value = patch["patch"]["value"]
            if value["name"] in out:
                raise ValueError("two EXTENSION_CONFIGs named %s" % value["name"])
            out[value["name"]] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------ istio-agent: the Wasm rewrite

def _fail_open(wasm):
    config = wasm.get("config") or {}
    policy = config.get("failure_policy", "UNSPECIFIED")
    if policy != "UNSPECIFIED":
        return policy == "FAIL_OPEN"
    return bool(config.get("fail_open"))


def agent_rewrite(ext_config, wasm_dir, fetch=istio_fetch.fetch):
    """What istio-agent makes of one ECDS resource: (resource, error). error is the fetch error
    when the module could not be had (the resource is then the RBAC substitute), else None."""
    ec = copy.deepcopy(ext_config)
    wasm = ec.get("typed_config") or {}
    vm = (wasm.get("config") or {}).get("vm_config") or {}
    if wasm.get("@type") != WASM_TYPE or "remote" not in (vm.get("code") or {}):
        return ec, None  # not Wasm, or code.local: passed through
    envs = vm.get("environment_variables")
    if envs is not None:
        kv = {k: v for k, v in (envs.get("key_values") or {}).items() if not k.startswith(ISTIO_META_PREFIX)}
        if kv:
            envs["key_values"] = kv
        elif envs.get("host_env_keys"):
            envs.pop("key_values", None)
        else:
            vm.pop("environment_variables")
    remote = vm["code"]["remote"]
    sha = "" if remote.get("sha256") == "nil" else remote.get("sha256", "")
    try:
        uri = remote["http_uri"]["uri"]
        timeout = float(str(remote["http_uri"].get("timeout", "5s")).rstrip("s"))
        module = fetch(uri, sha, timeout)
    except (KeyError, istio_fetch.FetchError, OSError) as e:
        error = "cannot fetch Wasm module %s: %s" % (remote.get("http_uri", {}).get("uri"), e)
        substitute = ALLOW_ALL if _fail_open(wasm) else DENY_ALL
        return {"name": ec["name"], "typed_config": copy.deepcopy(substitute)}, error
    os.makedirs(wasm_dir, exist_ok=True)
    path = os.path.join(wasm_dir, hashlib.sha256(module).hexdigest() + ".wasm")
    _write_atomic(path, module)
    vm["code"] = {"local": {"filename": path}}
    return ec, None


# ------------------------------------------------------------------ files for Envoy

def _write_atomic(path, data):
    """Write beside, then rename over (what `mv` does): Envoy's watch sees one complete file."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def discovery_response(resource, version):
    return {"version_info": str(version), "type_url": EXTENSION_CONFIG_TYPE,
            "resources": [dict({"@type": EXTENSION_CONFIG_TYPE}, **resource)]}


def bootstrap(http_filters, port, admin_port, upstream_port, node_id, node_cluster):
    hcm = {
        "@type": HCM_TYPE, "stat_prefix": "inbound_0.0.0.0_8080",
        "route_config": {"name": INBOUND_CLUSTER, "virtual_hosts": [{
            "name": "inbound|http|8080", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": INBOUND_CLUSTER, "timeout": "15s"}}]}]},
        "http_filters": http_filters,
    }
    return {
        "node": {"id": node_id, "cluster": node_cluster},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{"name": HCM, "typed_config": hcm}]}],
            }],
            "clusters": [{
                "name": INBOUND_CLUSTER, "type": "STATIC", "connect_timeout": "5s",
                "load_assignment": {"cluster_name": INBOUND_CLUSTER, "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                "port_value": upstream_port}}}}]}]},
            }],
        },
    }


class Sidecar:
    """The files of one sidecar under `out`: bootstrap.json, ecds/<filter>.json, wasm/<sha>.wasm.

    `errors` holds the agent's fetch error per filter name (RBAC substitute written instead);
    `update()` is the ECDS push for changed EnvoyFilters."""

    def __init__(self, filters, out, port, admin_port, upstream_port, fetch=istio_fetch.fetch,
                 node_id="sidecar~127.0.0.1~orders-0.shop~shop.svc.cluster.local", node_cluster="orders.shop"):
        self.out, self.fetch = out, fetch
        self.ecds_dir, self.wasm_dir = os.path.join(out, "ecds"), os.path.join(out, "wasm")
        os.makedirs(self.ecds_dir, exist_ok=True)
        self.version = 0
        chain = inbound_http_filters(filters)
        self.ecds = {}  # filter name -> ECDS file
        for flt in chain:
            discovery = flt.get("config_discovery")
            if discovery is None:
                continue
            source = discovery["config_source"]
            if "ads" not in source:
                raise NotMirrored("config_source without ads: %s" % source)
            path = os.path.join(self.ecds_dir, flt["name"] + ".json")
            del source["ads"]
            source["path_config_source"] = {"path": path}
            self.ecds[flt["name"]] = path
        self.http_filters = chain
        self.bootstrap_path = os.path.join(out, "bootstrap.json")
        self._write_ecds(filters)  # before the bootstrap: Envoy reads the files at start
        _write_atomic(self.bootstrap_path, json.dumps(
            bootstrap(chain, port, admin_port, upstream_port, node_id, node_cluster), indent=1).encode())

    def _write_ecds(self, filters):
        configs = extension_configs(filters)
        missing = sorted(set(self.ecds) - set(configs))
        if missing:
            raise ValueError("no EXTENSION_CONFIG for the inserted filter(s) %s" % missing)
        self.version += 1
        self.resources, self.errors = {}, {}
        for name, path in self.ecds.items():
            resource, error = agent_rewrite(configs[name], self.wasm_dir, self.fetch)
            self.resources[name] = resource
            if error:
                self.errors[name] = error
            _write_atomic(path, json.dumps(discovery_response(resource, self.version), indent=1).encode())

    def update(self, filters):
        """The ECDS push for changed EnvoyFilters: same filter names (a new name needs LDS, not
        mirrored), new files moved over the old ones."""
        chain = [f["name"] for f in inbound_http_filters(filters)]
        if chain != [f["name"] for f in self.http_filters]:
            raise NotMirrored("the HTTP filter chain changed (%s): that is an LDS update" % chain)
        self._write_ecds(filters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rendered", nargs="+", help="output of `meshdlp render` (EnvoyFilters), applied in this order")
    ap.add_argument("--out", required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--port", type=int, default=15006)
    ap.add_argument("--admin", type=int, default=15000)
    args = ap.parse_args()
    filters = []
    for path in args.rendered:
        with open(path) as f:
            filters += envoy_filters(f.read())
    sidecar = Sidecar(filters, args.out, args.port, args.admin, args.upstream)
    for name, error in sidecar.errors.items():
        kind = "allow" if sidecar.resources[name]["typed_config"] == ALLOW_ALL else "deny"
        print("%s: %s. applying %s RBAC filter" % (name, error, kind), file=sys.stderr)
    print(sidecar.bootstrap_path)


if __name__ == "__main__":
    main()
