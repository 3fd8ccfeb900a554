#!/usr/bin/env python3
"""`make demo`: the sample API behind Envoy + meshdlp, and a short narrated tour.

  demo.py tour   start everything, show redaction, tokenization, a 403 scope block and the
                 metrics, then stop everything it started
  demo.py up     start everything and leave it running (ports below); `demo.py down` stops it

Ports: Envoy 18000 (admin 18901), sample API 18080, all on 127.0.0.1.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "e2e"))

import harness  # noqa: E402

STATE = os.path.join(harness.ROOT, ".work", "demo", "state.json")
POLICY = os.path.join(harness.ROOT, "examples", "policy.yaml")
ENVOY_PORT, ADMIN_PORT, API_PORT = 18000, 18901, 18080

BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = RESET = ""


def say(text):
    print("\n" + BOLD + text + RESET)


def show(label, resp, limit=600):
    status, headers, body = resp
    color = GREEN if status < 400 else RED
    print("%s%-22s%s HTTP %s%d%s  %s" % (DIM, label, RESET, color, status, RESET, headers.get("content-type", "")))
    text = body.decode("utf-8", "replace")
    try:
        text = json.dumps(json.loads(text), indent=2)
    except ValueError:
        pass
    for line in text.splitlines()[:30]:
        print("    " + line[:limit])


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start():
    for p in (ENVOY_PORT, ADMIN_PORT, API_PORT):
        if not port_free(p):
            sys.exit("port %d on 127.0.0.1 is busy (a demo already running? `make demo-down`)" % p)
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    api = subprocess.Popen([sys.executable, os.path.join(HERE, "e2e", "upstream.py"), str(API_PORT)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           start_new_session=True)
    config = {
        "policy": harness.compile_policy(POLICY),
        "scopes": {"header": "x-meshdlp-scopes", "trustHeader": True, "metadata": {"key": "jwt_payload"}},
    }
    envoy = harness.Envoy("demo", API_PORT, ["strip-scopes", "jwt", "meshdlp", "router"], config,
                          port=ENVOY_PORT, admin=ADMIN_PORT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            harness.request("127.0.0.1", API_PORT, "GET", "/clean", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    envoy.start()
    with open(STATE, "w") as f:
        json.dump({"pids": [api.pid, envoy.proc.pid], "log": envoy.log_path}, f)
    return envoy


def down():
    if not os.path.exists(STATE):
        print("no demo running")
        return
    with open(STATE) as f:
        state = json.load(f)
    for pid in state["pids"]:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    os.remove(STATE)
    print("demo stopped")


def tour(envoy):
    api = lambda path, h=None: harness.request("127.0.0.1", API_PORT, "GET", path, headers=h)  # noqa: E731
    via = lambda path, h=None: harness.request("127.0.0.1", ENVOY_PORT, "GET", path, headers=h)  # noqa: E731

    say("1. The sample API leaks: the same order, direct and through Envoy + meshdlp")
    show("direct  /orders/42", api("/orders/42"))
    show("envoy   /orders/42", via("/orders/42"))
    print(DIM + "    card masked to its last 4, customer email hashed (HMAC, same input -> same value),\n"
          "    phone and the email inside the free-text note redacted, internal_notes dropped." + RESET)

    say("2. Tokenization: reversible, for authorised use only")
    resp = via("/tokens/7")
    show("envoy   /tokens/7", resp)
    token = json.loads(resp[2])["card"]
    out = subprocess.run([harness.MESHDLP, "detokenize", "--key-env", "MESHDLP_KEY"], input=token.encode(),
                         env=dict(os.environ, MESHDLP_KEY=harness.TOKEN_KEY), capture_output=True, timeout=30)
    print("    $ echo %s... | meshdlp detokenize --key-env MESHDLP_KEY\n    %s" % (token[:24], out.stdout.decode().strip()))

    say("3. Scope: /users/{id} may return email and name; SSNs need the users:pii grant")
    show("envoy   /users/7", via("/users/7", {"x-request-id": "demo-1"}))
    show("forged scope header", via("/users/7", {"x-meshdlp-scopes": "users:pii"}))
    token = harness.jwt("users:read users:pii")
    show("JWT with users:pii", via("/users/7", {"authorization": "Bearer " + token}))

    say("4. Metrics (Envoy /stats/prometheus) and the audit log: classes and paths, never values")
    prom = harness.request("127.0.0.1", ADMIN_PORT, "GET", "/stats/prometheus")[2].decode()
    for line in prom.splitlines():
        if line.startswith(("meshdlp_findings{", "meshdlp_blocks{")):
            print("    " + line)
    time.sleep(0.3)
    audit = [l.split("meshdlp.audit ", 1)[1] for l in envoy.read_log().splitlines() if "meshdlp.audit " in l]
    if audit:
        print("    audit: " + audit[-1][:400])


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "tour"
    if cmd == "down":
        return down()
    envoy = start()
    if cmd == "up":
        print("meshdlp demo running:\n  Envoy      http://127.0.0.1:%d   (try: curl -s 127.0.0.1:%d/orders/1)\n"
              "  admin      http://127.0.0.1:%d/stats/prometheus\n  sample API http://127.0.0.1:%d\n"
              "  Envoy log  %s\nstop it with: make demo-down" % (ENVOY_PORT, ENVOY_PORT, ADMIN_PORT, API_PORT, envoy.log_path))
        return
    try:
        tour(envoy)
    finally:
        down()


if __name__ == "__main__":
    main()
