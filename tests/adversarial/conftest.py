"""Fixtures of the adversarial suite: one hostile upstream and one Envoy (with the built filter
and tests/adversarial/policy.yaml) per module, and a `case` per test that checks, after the
test, that Envoy is alive (process running, admin /ready, a plain request served), that no VM
trapped (its log since the test began), and that the log holds none of the case's planted
values. An Envoy that fell is restarted so the next case still runs against a live proxy.
"""

import json
import os
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import harness  # noqa: E402  (tests/e2e/harness.py: renders and runs Envoy)
import hostile  # noqa: E402
from checker import Checker  # noqa: E402

POLICY = os.path.join(HERE, "policy.yaml")
FILTERS = ["strip-scopes", "jwt", "meshdlp", "router"]
# What a trapped VM or a dying Envoy writes to its log.
TRAP_MARKERS = ("panicked", "RuntimeError", "unreachable", "Segmentation fault", "Caught Segmentation",
                "Backtrace", "wasm_fail_stream")

# Values planted by the cases. Each is found by the engine in a plain JSON field with a
# fitting key (test_planted_values_are_detectable checks this), so a leak is a bypass, not
# a recall gap.
PII = {
    "email": "ada.lovelace@example.com",
    "card": "4111 1111 1111 1111",
    "ssn": "536-22-1234",
    "phone": "+44 20 7946 0958",
    "iban": "DE89370400440532013000",
    "aws_key": "AKIAZ7QW3ERT5YUI2OPL",
    "dob": "1985-03-12",
    "password": "Tr0ub4dor-horse-battery",
    "name": "Augusta Byron",
}
# A value that is not personal data and must survive redaction unchanged.
CANARY = "canary-untouched-7f3a"


@pytest.fixture(scope="session")
def policy():
    return harness.compile_policy(POLICY)


class Proxy:
    """An Envoy with the filter in front of a hostile upstream; restartable."""

    def __init__(self, name, upstream, plugin_config):
        self.name = name
        self.upstream = upstream
        self.plugin_config = plugin_config
        self.generation = 0
        self.envoys = []
        self.start()

    def start(self):
        self.generation += 1
        e = harness.Envoy("adv-%s-%d" % (self.name, self.generation), self.upstream.port, FILTERS,
                          self.plugin_config)
        e.start()
        self.envoys.append(e)
        self.envoy = e

    @property
    def port(self):
        return self.envoy.port

    def log_offset(self):
        return len(self.envoy.read_log())

    def log_since(self, offset):
        return self.envoy.read_log()[offset:]

    def health(self, offset):
        """Problems found; empty when Envoy is alive, serving and trap-free since `offset`."""
        problems = []
        if self.envoy.proc.poll() is not None:
            problems.append("Envoy exited (status %s)" % self.envoy.proc.returncode)
        else:
            try:
                status = harness.request("127.0.0.1", self.envoy.admin, "GET", "/ready", timeout=3)[0]
                if status != 200:
                    problems.append("admin /ready answered %d" % status)
            except OSError as e:
                problems.append("admin /ready failed: %s" % e)
            try:
                r = hostile.send(self.port, "GET", "/plain", timeout=5)
                if r.status != 200 or r.body != hostile.PLAIN:
                    problems.append("a plain request got %d %r" % (r.status, r.body[:200]))
            except (OSError, ValueError, EOFError) as e:
                problems.append("a plain request failed: %s" % e)
        log = self.log_since(offset)
        for marker in TRAP_MARKERS:
            if marker in log:
                line = next(l for l in log.splitlines() if marker in l)
                problems.append("Envoy log has %r: %s" % (marker, line[:300]))
        return problems

    def restart(self):
        self.envoy.stop()
        self.start()

    def stop(self):
        for e in self.envoys:
            e.stop()


@pytest.fixture(scope="module")
def upstream():
    up = hostile.Upstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def proxy(request, upstream, policy):
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")
    p = Proxy(name, upstream, {"policy": policy})
    yield p
    p.stop()


class Case:
    """One adversarial case: planted values, requests through Envoy, and the leak checks."""

    def __init__(self, proxy, upstream):
        self.proxy = proxy
        self.upstream = upstream
        self.planted = {}
        self.id = uuid.uuid4().hex[:8]

    def plant(self, **values):
        self.planted.update(values)
        return values

    def path(self, stem="c"):
        """A fresh path on the default route (inspected both ways)."""
        return "/%s/%s" % (stem, self.id)

    def send(self, method, target, **kw):
        kw.setdefault("timeout", 20)
        return hostile.send(self.proxy.port, method, target, **kw)

    def leaks_to_client(self, resp):
        c = Checker(self.planted)
        found = set(c.leaks(resp.body, resp.header("content-encoding")))
        found |= set(c.leaks_in_headers(resp.headers + resp.trailers))
        return sorted(found)

    def leaks_to_upstream(self, path):
        c = Checker(self.planted)
        found = set()
        for r in self.upstream.requests_to(path):
            found |= set(c.leaks(r.body, hostile.header(r.headers, "content-encoding")))
            found |= set(c.leaks_in_headers(r.headers + r.trailers))
            found |= set(c.leaks(r.tunnel))
            found |= set(c.leaks(r.target.encode("latin-1")))
        return sorted(found)

    def assert_clean(self, resp, path=None):
        leaked = self.leaks_to_client(resp)
        assert not leaked, "leaked to the client (%d): %s; body starts %r" % (resp.status, leaked, resp.body[:300])
        if path is not None:
            leaked = self.leaks_to_upstream(path)
            assert not leaked, "leaked to the upstream: %s" % leaked

    # -------------------------------------------------------- round trips in either direction

    def response(self, body, content_type="application/json", headers=(), reply=None, req_headers=()):
        """The upstream answers `body` (or a scripted `reply`); returns what the client got."""
        path = self.path("r")
        self.upstream.script(path, reply or hostile.fixed(body, content_type, headers=headers))
        return self.send("GET", path, headers=req_headers), path

    def request(self, body, content_type="application/json", headers=(), parts=None, delay=0.0, trailers=None):
        """The client sends `body` (or chunked `parts`); the upstream answers a clean document."""
        path = self.path("q")
        hs = ([("content-type", content_type)] if content_type else []) + list(headers)
        resp = self.send("POST", path, headers=hs, body=None if parts is not None else body, parts=parts,
                         delay=delay, trailers=trailers)
        return resp, path

    def roundtrip(self, direction, body, content_type="application/json", headers=()):
        """Sends `body` one way and checks nothing planted crossed. Returns the response and
        the bytes that crossed in that direction (the client's body or the upstream's)."""
        if direction == "response":
            resp, path = self.response(body, content_type, headers)
            self.assert_clean(resp, path)
            return resp, resp.body
        resp, path = self.request(body, content_type, headers)
        self.assert_clean(resp, path)
        got = self.upstream.requests_to(path)
        return resp, (got[-1].body if got else None)


def deliberate(resp):
    """A refusal meshdlp chose and explains: an error status with x-meshdlp-reason (for gRPC,
    Envoy turns the local reply into a trailers-only answer: HTTP 200 with a grpc-status)."""
    if resp.header("x-meshdlp-reason") is None:
        return False
    return resp.status >= 400 or resp.header("grpc-status") not in (None, "0")


def problem(resp):
    try:
        return json.loads(resp.body)
    except ValueError:
        return None


@pytest.fixture
def case(proxy, upstream):
    offset = proxy.log_offset()
    c = Case(proxy, upstream)
    yield c
    problems = proxy.health(offset)
    leaked = Checker(c.planted).leaks(proxy.log_since(offset).encode()) if c.planted else []
    if leaked:
        problems.append("planted values in the Envoy log: %s" % leaked)
    if problems and not all(p.startswith("planted") for p in problems):
        proxy.restart()
    if problems:
        pytest.fail("after the case: " + "; ".join(problems), pytrace=False)
