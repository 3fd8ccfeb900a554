"""The end of the chain (issue 8, M5): a DataPolicy rendered by `meshdlp render`, pinned to the
filter's OCI image in the session registry, turned by tests/k8s/istio_equiv.py into what istiod and
istio-agent would hand one inbound sidecar (the ECDS config from a file instead of ADS), loaded into
the real Envoy 1.40: responses are redacted, a scope violation gets the 403, a `secretRef` key
reaches the filter through Envoy's environment, a changed policy is swapped in over ECDS without a
restart, and an image that cannot be fetched leaves the agent's deny-all RBAC filter in its place;
and a DataPolicy's `scopes` (chain-scopes.yaml) makes a route's `grants` apply to the scopes of a
JWT verified by Envoy's jwt_authn filter, configured as Istio's RequestAuthentication configures it.

Envoy runs with --reject-unknown-dynamic-fields: a field of the render that Envoy does not know
fails here (istiod would drop it silently)."""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cluster as cluster_mod
import istio_equiv
import oci

sys.path.insert(0, os.path.join(cluster_mod.ROOT, "tests", "e2e"))
import harness  # noqa: E402  (tests/e2e: the sample API, the HTTP client, the Envoy binary)
from upstream import PII  # noqa: E402

ROOT = cluster_mod.ROOT
DATA = os.path.join(ROOT, "tests", "data", "k8s")
# cargo's output, moved by CARGO_TARGET_DIR as the Makefile's builds are.
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
WASM = os.path.join(TARGET, "wasm32-wasip1", "wasm", "meshdlp_filter.wasm")
MESHDLP = os.path.join(TARGET, "release", "meshdlp")
FILTER = "meshdlp.shop.chain"  # meshdlp.<namespace>.<name> of chain-v*.yaml
ECDS_STATS = "extension_config_discovery.http_filter.%s." % FILTER  # + config_reload, update_rejected...
# The key the istio-proxy container would get from the Secret (secretKeyRef), never in an object.
KEY = "chain-k1-secret-value-7f3e9a"
DENY_BODY = b"RBAC: access denied"


def run(argv, timeout=120, **kw):
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    assert proc.returncode == 0, "%s failed (%d):\n%s%s" % (argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def wasm():
    """The built filter, read once (another build may rewrite target/ meanwhile)."""
    if not os.path.exists(WASM):
        run(["nice", "-n", "10", "make", "-C", ROOT, "wasm"], timeout=1800)
    with open(WASM, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def cli():
    if not os.access(MESHDLP, os.X_OK):
        run(["nice", "-n", "10", "make", "-C", ROOT, "cli"], timeout=1800)
    return MESHDLP


@pytest.fixture(scope="module")
def image(cluster, wasm, tmp_path_factory):
    """The compat image of the built wasm in the session registry: oci://REG/REPO@sha256:HEX."""
    layout = tmp_path_factory.mktemp("oci-chain") / "layout"
    digest = oci.layout(wasm, layout)
    repo = cluster.registry_host + "/meshdlp-filter"
    pushed = run([cluster_mod.CRANE, "push", "--insecure", str(layout), repo + ":chain"]).decode().strip()
    assert pushed.rsplit("@", 1)[1] == digest
    return "oci://%s@%s" % (repo, digest)


def render(cli, policy, image):
    return run([cli, "render", "-f", os.path.join(DATA, policy), "--image", image], cwd=ROOT).decode()


def filters(cli, policy, image):
    return istio_equiv.envoy_filters(render(cli, policy, image))


def plugin_policy(resource):
    """The policy inside an ECDS resource, as the filter reads it."""
    return json.loads(resource["typed_config"]["config"]["configuration"]["value"])["policy"]


class Proxy:
    """The real Envoy on a sidecar's bootstrap: 127.0.0.1 only, every wait bounded, stopped by pid."""

    def __init__(self, sidecar, port, admin, env, name):
        self.sidecar, self.port, self.admin = sidecar, port, admin
        self.log_path = os.path.join(sidecar.out, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = cluster_mod.track(subprocess.Popen(
            [harness.ENVOY, "-c", sidecar.bootstrap_path, "--use-dynamic-base-id", "--concurrency", "1",
             "--reject-unknown-dynamic-fields", "--log-level", "warn", "--component-log-level", "wasm:info"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True))

    def wait_ready(self, timeout=60):  # V8 compiles the 2.9 MB module in 6-10 s at load 5
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("envoy exited (%s):\n%s" % (self.proc.returncode, self.read_log()))
            try:
                if harness.request("127.0.0.1", self.admin, "GET", "/ready", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("envoy not ready after %ss:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def get(self, path, headers=None):
        return harness.request("127.0.0.1", self.port, "GET", path, headers=headers)

    def stats(self):
        text = harness.request("127.0.0.1", self.admin, "GET", "/stats")[2].decode()
        return dict(line.rsplit(": ", 1) for line in text.splitlines() if ": " in line)

    def counter(self, name):
        return int(self.stats().get(name, "0"))

    def ecds(self, name):
        """An ECDS counter of the meshdlp filter (config_reload, update_rejected...)."""
        return self.counter(ECDS_STATS + name)

    def push(self, filters, timeout=20):
        """The ECDS push: istio_equiv moves new files over the old ones; returns once Envoy has
        read them, with how many updates it rejected. config_reload counts rejected updates too,
        so waiting for it alone proves nothing about the new config."""
        reloads, rejected = self.ecds("config_reload"), self.ecds("update_rejected")
        self.sidecar.update(filters)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ecds("config_reload") > reloads:
                    return self.ecds("update_rejected") - rejected
            except OSError:
                pass  # the main thread (admin too) is busy while V8 compiles a new VM
            time.sleep(0.05)
        raise AssertionError("no ECDS reload after %ss:\n%s" % (timeout, self.read_log()))

    def wait_status(self, path, status, timeout=5):
        """The first answer with `status` (the stat counts on the main thread; the workers take the
        new config a moment later)."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.get(path)
            if resp[0] == status or time.monotonic() > deadline:
                return resp
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def start_sidecar(filters, out, api, **env):
    """istio_equiv's files for `filters`, then Envoy on them with `env` added (as pilot-agent passes
    the istio-proxy container's env). Returns (sidecar, proxy); the proxy is stopped on failure."""
    for attempt in range(3):
        # A port free_port() saw free can be taken before Envoy binds it (another process on
        # the machine): Envoy then exits at once, and fresh ports are tried.
        port, admin = cluster_mod.free_port(), cluster_mod.free_port()
        sidecar = istio_equiv.Sidecar(filters, str(out), port, admin, api.port)
        proxy = Proxy(sidecar, port, admin, dict(os.environ, **env), "envoy")
        try:
            proxy.wait_ready()
        except RuntimeError as e:
            proxy.stop()
            if "Address already in use" in str(e) and attempt < 2:
                continue
            raise
        except BaseException:
            proxy.stop()
            raise
        return sidecar, proxy


@pytest.fixture(scope="module")
def api():
    up = harness.Upstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def chain(cli, image, api, tmp_path_factory):
    """One sidecar on chain-v1.yaml with MESHDLP_KEY_K1 set; the hot swap test changes it (last)."""
    sidecar, proxy = start_sidecar(filters(cli, "chain-v1.yaml", image), tmp_path_factory.mktemp("sidecar"), api,
                                   MESHDLP_KEY_K1=KEY)
    try:
        yield sidecar, proxy
    finally:
        proxy.stop()


def assert_no_pii(body, *keys):
    text = body.decode("utf-8", "replace")
    for k in keys or PII:
        assert PII[k] not in text, "raw %s leaked: %s" % (k, text[:500])


# ------------------------------------------------------------------ what the agent hands Envoy

def test_sidecar_config_is_the_render_after_the_agent_rewrite(chain, wasm, image):
    sidecar, proxy = chain
    assert sidecar.errors == {}
    assert [f["name"] for f in sidecar.http_filters] == [FILTER, istio_equiv.ROUTER]
    source = sidecar.http_filters[0]["config_discovery"]["config_source"]
    assert source == {"path_config_source": {"path": sidecar.ecds[FILTER]}, "initial_fetch_timeout": "0s",
                      "resource_api_version": "V3"}  # only `ads` swapped
    vm = sidecar.resources[FILTER]["typed_config"]["config"]["vm_config"]
    with open(vm["code"]["local"]["filename"], "rb") as f:
        assert f.read() == wasm  # the module pulled by digest is the built one
    assert vm["environment_variables"] == {"host_env_keys": ["MESHDLP_KEY_K1"]}  # ISTIO_META_* stripped
    for path in (sidecar.ecds[FILTER], sidecar.bootstrap_path):
        with open(path) as f:
            assert KEY not in f.read()
    # Envoy took this ECDS config (the listener waits for it: initial_fetch_timeout 0s)
    assert (proxy.ecds("config_reload"), proxy.ecds("update_rejected")) == (1, 0)


def test_namespace_filter_replaces_the_mesh_filter_in_the_chain(cli, wasm, tmp_path):
    """With istiod's order (root namespace first, then the workload's) the mesh EnvoyFilter inserts
    meshdlp.mesh, the namespace one REMOVEs it and inserts its own: one filter, one VM, one ECDS
    resource per sidecar. (The order itself is istiod's, assumed here - see istio_equiv.)"""
    fake = "oci://127.0.0.1:1/meshdlp-filter@sha256:" + "2" * 64  # never fetched: the module is handed in
    mesh = istio_equiv.envoy_filters(render(cli, "mesh.yaml", fake))
    merged = istio_equiv.envoy_filters(run([cli, "render", "-f", os.path.join(DATA, "orders.yaml"), "--mesh-policy",
                                            os.path.join(DATA, "mesh.yaml"), "--image", fake], cwd=ROOT).decode())
    sidecar = istio_equiv.Sidecar(mesh + merged, str(tmp_path), 1, 2, 3, fetch=lambda url, sha, timeout: wasm)
    assert [f["name"] for f in sidecar.http_filters] == ["meshdlp.shop.orders", istio_equiv.ROUTER]
    assert sorted(sidecar.ecds) == ["meshdlp.shop.orders"] and sidecar.errors == {}
    mesh_only = istio_equiv.Sidecar(mesh, str(tmp_path / "mesh"), 1, 2, 3, fetch=lambda url, sha, timeout: wasm)
    assert [f["name"] for f in mesh_only.http_filters] == ["meshdlp.mesh", istio_equiv.ROUTER]


# ------------------------------------------------------------------ the policy in the real Envoy

def test_response_is_redacted_per_the_policy(chain):
    _, proxy = chain
    status, headers, body = proxy.get("/orders/7")
    assert status == 200, body
    assert int(headers["content-length"]) == len(body)
    doc = json.loads(body)
    assert doc["payment"]["card"] == "**** **** **** 1111"  # mask, keepLast 4
    assert doc["customer"]["email"].startswith("hmac:k1:")  # hash with the secretRef key
    assert doc["sku"] == "SKU-12345-XL" and doc["total"] == 1234.5
    assert_no_pii(body)


def test_scope_violation_gets_the_block_status_without_pii(chain, api):
    _, proxy = chain
    status, headers, body = proxy.get("/users/1", {"x-request-id": "chain-scope-1"})
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["reason"] == "scope.class_not_allowed" and problem["requestId"] == "chain-scope-1"
    assert_no_pii(body)
    assert api.last_request()["path"] == "/users/1"  # blocked on the response: the upstream answered


def test_secret_ref_key_hashes_like_the_cli_with_the_same_env(chain, cli, api, tmp_path):
    """The key travels only as Envoy's environment (host_env_keys): the filter's output equals
    `meshdlp redact` with the same policy and MESHDLP_KEY_K1, and another key gives another hash."""
    sidecar, proxy = chain
    status, _, body = proxy.get("/orders/7")
    assert status == 200
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(plugin_policy(sidecar.resources[FILTER])))
    direct = harness.request("127.0.0.1", api.port, "GET", "/orders/7")[2]

    def redact(key):
        return run([cli, "redact", "--policy", str(policy), "--route-path", "/orders/7",
                    "--content-type", "application/json"], input=direct, env=dict(os.environ, MESHDLP_KEY_K1=key))
    assert body == redact(KEY)
    other = json.loads(redact(KEY + "-rotated"))["customer"]["email"]
    assert other.startswith("hmac:k1:") and other != json.loads(body)["customer"]["email"]


def test_unfetchable_image_leaves_the_deny_all_rbac_filter(cli, image, wasm, api, tmp_path):
    """A pin the registry does not have: the agent cannot fetch, so FAIL_RELOAD gets its deny-all
    RBAC filter under the Wasm filter's name - every request refused, the upstream never asked.
    Fixing the image (a new ECDS push) brings the filter back without a restart."""
    wrong = image.rsplit("@sha256:", 1)[0] + "@sha256:" + hashlib.sha256(wasm).hexdigest()  # the wasm's, not the manifest's
    sidecar, proxy = start_sidecar(filters(cli, "chain-v1.yaml", wrong), tmp_path, api, MESHDLP_KEY_K1=KEY)
    try:
        assert "MANIFEST_UNKNOWN" in sidecar.errors[FILTER], sidecar.errors
        assert sidecar.resources[FILTER]["typed_config"] == istio_equiv.DENY_ALL
        assert not os.path.exists(sidecar.wasm_dir)  # nothing fetched, nothing written
        before = api.last_request()
        status, _, body = proxy.get("/orders/deny-1")
        assert (status, body) == (403, DENY_BODY)
        assert api.last_request() == before
        assert proxy.counter("http.inbound_0.0.0.0_8080.rbac.wasm-default-deny.denied") == 1
        # the controller's image fixed: pushed again over ECDS, the Wasm filter replaces the RBAC one
        assert proxy.push(filters(cli, "chain-v1.yaml", image), timeout=60) == 0  # a new VM: seconds
        assert sidecar.errors == {}
        status, _, body = proxy.wait_status("/orders/7", 200)
        assert status == 200 and json.loads(body)["payment"]["card"] == "**** **** **** 1111"
    finally:
        proxy.stop()


def test_wrong_sha256_pin_is_refused_by_the_agent(cli, image, tmp_path):
    """The `sha256` field checked against the manifest digest (the URL's digest is right): the
    checksum error, and the RBAC substitute - allow-all only for FAIL_OPEN."""
    efs = filters(cli, "chain-v1.yaml", image)
    value = efs[0]["spec"]["configPatches"][0]["patch"]["value"]
    value["typed_config"]["config"]["vm_config"]["code"]["remote"]["sha256"] = "0" * 64
    resource, error = istio_equiv.agent_rewrite(value, str(tmp_path))
    assert "has checksum %s, which does not match: %s" % (image.rsplit(":", 1)[1], "0" * 64) in error, error
    assert resource == {"name": FILTER, "typed_config": istio_equiv.DENY_ALL}
    value["typed_config"]["config"]["failure_policy"] = "FAIL_OPEN"
    assert istio_equiv.agent_rewrite(value, str(tmp_path))[0]["typed_config"] == istio_equiv.ALLOW_ALL
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ ECDS hot swap (last: changes `chain`)

def test_ecds_hot_swap_changes_behaviour_without_restart(chain, cli, image):
    """A changed DataPolicy, rendered and pushed over ECDS (the file moved over the old one): the
    same Envoy process answers by the new policy; a policy the filter refuses (a key whose variable
    the proxy lacks) is rejected and the last good one keeps serving; an image that cannot be
    fetched on an update is not "keep the last good": the agent's deny-all replaces the filter."""
    sidecar, proxy = chain
    pid = proxy.proc.pid
    assert proxy.get("/orders/7")[0] == 200 and proxy.get("/users/1")[0] == 403
    v2 = filters(cli, "chain-v2.yaml", image)
    assert v2[0]["spec"]["configPatches"][0]["patch"]["value"]["name"] == FILTER  # same object, same filter
    t0 = time.monotonic()
    assert proxy.push(v2) == 0
    status, _, body = proxy.wait_status("/orders/7", 403)
    swap = time.monotonic() - t0
    assert status == 403 and json.loads(body)["reason"] == "scope.class_not_allowed"
    assert_no_pii(body)
    status, _, body = proxy.get("/users/1")
    assert status == 200
    doc = json.loads(body)
    assert doc["email"] == "[REDACTED:email]" and doc["ssn"] == "[REDACTED:us_ssn]"
    assert_no_pii(body)
    assert swap < 10, swap
    # v3 needs MESHDLP_KEY_K2, which this proxy's env lacks: rejected, v2 stays
    assert proxy.push(filters(cli, "chain-v3.yaml", image)) == 1
    assert "MESHDLP_KEY_K2` is not set" in proxy.read_log()
    assert proxy.get("/orders/7")[0] == 403 and proxy.get("/users/1")[0] == 200
    assert proxy.proc.poll() is None and proxy.proc.pid == pid
    # an update whose image the agent cannot fetch
    bad = image.rsplit("@sha256:", 1)[0] + "@sha256:" + "1" * 64
    assert proxy.push(filters(cli, "chain-v2.yaml", bad)) == 0
    assert "MANIFEST_UNKNOWN" in sidecar.errors[FILTER]
    assert proxy.wait_status("/users/1", 403)[::2] == (403, DENY_BODY)



# ------------------------------------------------------------------ scopes from a verified JWT (grants)

ISSUER = "https://issuer.meshdlp.test"  # chain-scopes.yaml: spec.scopes.metadata.key
JWT_SECRET = b"chain-jwt-hs256-secret-0123456789abcdef"
JWT_AUTHN = "envoy.filters.http.jwt_authn"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret=JWT_SECRET):
    """A compact JWS, HS256 (the venv has no RSA signing library; the algorithm does not change
    where jwt_authn puts the verified payload)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64url(json.dumps(dict({"iss": ISSUER, "sub": "alice", "exp": int(time.time()) + 3600}, **claims)).encode())
    sig = hmac.new(secret, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


def request_authentication():
    """The jwt_authn filter istiod writes for a RequestAuthentication with one jwtRule (issuer,
    inline jwks) - pilot/pkg/security/authn (Istio 1.30): provider `origins-0`, `payload_in_metadata`
    set to the issuer, `forward` false, a request without a token allowed (`allow_missing`: an
    AuthorizationPolicy decides about those), a bad one refused with 401; first in the inbound
    chain (before the AUTHZ-phase filters). Handed to istio_equiv as an EnvoyFilter INSERT_FIRST."""
    jwks = {"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": b64url(JWT_SECRET)}]}
    value = {"name": JWT_AUTHN, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"origins-0": {"issuer": ISSUER, "local_jwks": {"inline_string": json.dumps(jwks)},
                                    "payload_in_metadata": ISSUER}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"}, {"allow_missing": {}}]}}}],
        "bypass_cors_preflight": True}}
    return {"kind": "EnvoyFilter", "metadata": {"name": "request-authentication"}, "spec": {"configPatches": [
        {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {
            "filter": {"name": istio_equiv.HCM}}}}, "patch": {"operation": "INSERT_FIRST", "value": value}}]}}


@pytest.fixture(scope="module")
def scoped(cli, image, api, tmp_path_factory):
    rendered = filters(cli, "chain-scopes.yaml", image)
    sidecar, proxy = start_sidecar([request_authentication()] + rendered, tmp_path_factory.mktemp("scoped"), api)
    try:
        yield sidecar, proxy
    finally:
        proxy.stop()


def test_rendered_scopes_reach_the_filter_configuration(scoped):
    sidecar, _ = scoped
    assert [f["name"] for f in sidecar.http_filters] == [JWT_AUTHN, "meshdlp.shop.scopes", istio_equiv.ROUTER]
    config = json.loads(sidecar.resources["meshdlp.shop.scopes"]["typed_config"]["config"]["configuration"]["value"])
    assert config["scopes"] == {"metadata": {"key": ISSUER}}


def test_grant_applies_to_the_scopes_of_a_verified_jwt(scoped, api):
    """`users:pii` in the verified token's `scope` claim: the grant lets phone, SSN and date of
    birth through; without it (no token, or a token without the scope) the same response is the
    403. A token the provider cannot verify never reaches the filter (jwt_authn's 401)."""
    _, proxy = scoped
    granted = proxy.get("/users/1", {"authorization": "Bearer " + jwt({"scope": "users:read users:pii"})})
    assert granted[0] == 200, granted
    doc = json.loads(granted[2])
    assert doc["phone"] == PII["phone"] and doc["ssn"] == PII["ssn"]
    # `scp` (another issuer's claim name): read too for the default claim `scope`
    assert proxy.get("/users/1", {"authorization": "Bearer " + jwt({"scp": "users:pii"})})[0] == 200
    for headers in ({}, {"authorization": "Bearer " + jwt({"scope": "users:read"})},
                    # a client cannot grant itself scopes with a header: only the metadata is read
                    {"x-meshdlp-scopes": "users:pii", "scope": "users:pii"}):
        status, _, body = proxy.get("/users/1", headers)
        assert status == 403, (headers, body)
        assert json.loads(body)["reason"] == "scope.class_not_allowed"
        assert_no_pii(body)
    before = api.last_request()
    status, _, body = proxy.get("/users/1", {"authorization": "Bearer " + jwt({"scope": "users:pii"},
                                                                                secret=b"forged-secret-forged-secret-0000")})
    assert status == 401, body
    assert api.last_request() == before  # refused before the upstream


def test_grant_applies_to_a_list_valued_scope_claim(scoped):
    """Found here: Envoy 1.40 hands a list claim (`scp: [...]`) to the filter in the proxy-wasm
    pairs encoding, which the filter did not read (it expected a serialized ListValue)."""
    _, proxy = scoped
    assert proxy.get("/users/1", {"authorization": "Bearer " + jwt({"scp": ["users:read", "users:pii"]})})[0] == 200
    assert proxy.get("/users/1", {"authorization": "Bearer " + jwt({"scp": ["users:read", "orders:pii"]})})[0] == 403
