"""Runs the real parts for the end-to-end tests: the sample API, Envoy with the built filter,
tokens signed here. Everything listens on 127.0.0.1 and every wait is bounded."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "envoy"))
sys.path.insert(0, os.path.dirname(__file__))

import render  # noqa: E402  (envoy/render.py)
import upstream  # noqa: E402

ENVOY = os.environ.get("MESHDLP_ENVOY", os.path.join(ROOT, ".venv", "bin", "envoy"))
MESHDLP = os.path.join(ROOT, "target", "release", "meshdlp")
WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "wasm", "meshdlp_filter.wasm")
NOOP_WASM = os.path.join(ROOT, "target", "wasm32-wasip1", "wasm", "noop_filter.wasm")
WORK = os.path.join(ROOT, ".work", "e2e")

JWT_SECRET = b"meshdlp-e2e-jwt-secret-0123456789abcdef"
TOKEN_KEY = "meshdlp-e2e-tokenize-secret-0123456789"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks():
    return json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "e2e", "k": b64url(JWT_SECRET)}]})


def jwt(scope, exp_in=600, secret=JWT_SECRET):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "e2e"}).encode())
    payload = b64url(json.dumps({
        "iss": "https://issuer.meshdlp.test", "aud": "meshdlp", "sub": "e2e-user",
        "exp": int(time.time()) + exp_in, "scope": scope,
    }).encode())
    sig = b64url(hmac.new(secret, (header + "." + payload).encode(), hashlib.sha256).digest())
    return header + "." + payload + "." + sig


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    def __init__(self):
        self.server = upstream.serve(0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def last_request(self):
        return json.loads(request("127.0.0.1", self.port, "GET", "/last-request")[2])

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def compile_policy(path):
    out = subprocess.run([MESHDLP, "compile", path], check=True, capture_output=True, timeout=30)
    return json.loads(out.stdout)


class Envoy:
    """One Envoy process with a rendered configuration."""

    def __init__(self, name, upstream_port, filters, plugin_config=None, hold_headers=True, buffer_limit=1048576,
                 port=None, admin=None):
        os.makedirs(WORK, exist_ok=True)
        self.name = name
        # Ports picked here (not passed in) are picked again if another process takes one
        # between free_port() and Envoy's bind (see start).
        self.fixed_ports = (port, admin)
        self.port = port or free_port()
        self.admin = admin or free_port()
        self.config_path = os.path.join(WORK, name + ".yaml")
        self.log_path = os.path.join(WORK, name + ".log")
        # The modules as they are now: a caller may point WASM elsewhere for one Envoy only (the
        # bench's "meshdlp base"), and a retry renders the configuration again.
        self.render_args = (upstream_port, filters, plugin_config, hold_headers, buffer_limit, WASM, NOOP_WASM)
        self.render()
        self.proc = None

    def render(self):
        upstream_port, filters, plugin_config, hold_headers, buffer_limit, wasm, noop_wasm = self.render_args
        values = {
            "LISTEN_PORT": self.port, "ADMIN_PORT": self.admin, "UPSTREAM_PORT": upstream_port,
            "WASM": wasm, "NOOP_WASM": noop_wasm, "JWKS_JSON": jwks(),
            "HOLD_HEADERS": "true" if hold_headers else "false", "BUFFER_LIMIT": buffer_limit,
            "PLUGIN_CONFIG": json.dumps(plugin_config) if plugin_config is not None else "",
        }
        with open(self.config_path, "w") as f:
            f.write(render.render(filters, values))

    def spawn(self, concurrency=1):
        env = dict(os.environ, MESHDLP_KEY=TOKEN_KEY)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ENVOY, "-c", self.config_path, "--use-dynamic-base-id", "--concurrency", str(concurrency),
             "--log-level", "warn", "--component-log-level", "wasm:info"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)

    def start(self, expect_ready=True, timeout=20, concurrency=1):
        # A port free_port() saw free can be taken by another process on the machine before
        # Envoy binds it; Envoy then exits at once, and the ports picked here are picked again
        # (make test failed on "Address already in use" in the k8s chain tests, session 28).
        for attempt in range(3):
            self.spawn(concurrency)
            if not expect_ready:
                return self
            try:
                return self.wait_ready(timeout)
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == 2:
                    raise
                # The ports Envoy could not bind (all of them when the log does not say).
                busy = {int(p) for p in re.findall(r"cannot bind '127\.0\.0\.1:(\d+)'", str(e))}
                ours = [(i, p) for i, p in enumerate((self.port, self.admin))
                        if self.fixed_ports[i] is None and (not busy or p in busy)]
                if not ours:
                    raise
                self.stop()
                for i, _ in ours:
                    if i == 0:
                        self.port = free_port()
                    else:
                        self.admin = free_port()
                self.render()
        raise AssertionError("unreachable")

    def wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("envoy %s exited (%s):\n%s" % (self.name, self.proc.returncode, self.read_log()[-3000:]))
            try:
                if request("127.0.0.1", self.admin, "GET", "/ready", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("envoy %s not ready after %ss:\n%s" % (self.name, timeout, self.read_log()[-3000:]))

    def wait_exit(self, timeout=20):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def read_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def get(self, path, headers=None):
        return request("127.0.0.1", self.port, "GET", path, headers=headers)

    def post(self, path, body, headers=None):
        return request("127.0.0.1", self.port, "POST", path, body=body, headers=headers)

    def prometheus(self):
        return request("127.0.0.1", self.admin, "GET", "/stats/prometheus")[2].decode()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if getattr(self, "log", None):
            self.log.close()


def request(host, port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()
