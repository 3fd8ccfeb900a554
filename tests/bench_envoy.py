#!/usr/bin/env python3
"""`make bench-envoy`: wrk through Envoy, side by side in one run.

Front Envoy variants (1 worker each): no filter; a no-op wasm filter that only buffers (the
ceiling); meshdlp in enforce mode with the whole built-in pack; a Lua redactor (the peer a user
might pick instead). The upstream is a second Envoy serving fixed 4 KB and 64 KB JSON bodies
(direct_response), so the upstream is never the bottleneck. Every run is bounded (-d) and on
127.0.0.1. Prints a table with requests/s, ratios, latency percentiles and Envoy RSS.
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "e2e"))

import harness  # noqa: E402

DURATION = os.environ.get("BENCH_DURATION", "5s")
CONNECTIONS = os.environ.get("BENCH_CONNECTIONS", "16")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def body(size):
    """JSON records, one in eight with an email and a phone number (what meshdlp redacts)."""
    items = []
    i = 0
    while len(json.dumps({"items": items})) < size - 200:
        rec = {"id": i, "uuid": "550e8400-e29b-41d4-a716-%012d" % i, "created": "2024-01-15T10:30:00Z",
               "status": "shipped", "total": 1234.5, "sku": "SKU-%05d-XL" % i}
        if i % 8 == 0:
            rec["email"] = "user%d@example.com" % i
            rec["phone"] = "+1 415 555 %04d" % (i % 10000)
        items.append(rec)
        i += 1
    return json.dumps({"items": items})


def upstream_config(port, admin, files):
    routes = "".join(
        """
              - match: {path: "%s"}
                direct_response:
                  status: 200
                  body: {filename: "%s"}
                response_headers_to_add:
                - header: {key: content-type, value: application/json}""" % (path, f)
        for path, f in files.items())
    return """
admin: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: upstream
          route_config:
            max_direct_response_body_size_bytes: 1048576
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:%s
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
""" % (admin, port, routes)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wrk(port, path):
    out = subprocess.run(["wrk", "-t1", "-c" + CONNECTIONS, "-d" + DURATION, "--latency", "--timeout", "5s",
                          "http://127.0.0.1:%d%s" % (port, path)], capture_output=True, text=True, timeout=120)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def pct(p):
        m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % p, text)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0


def main():
    work = os.path.join(harness.ROOT, ".work", "bench")
    os.makedirs(work, exist_ok=True)
    files = {}
    for name, size in (("/4k", 4096), ("/64k", 65536)):
        path = os.path.join(work, name.strip("/") + ".json")
        with open(path, "w") as f:
            f.write(body(size))
        files[name] = path
    up_port, up_admin = harness.free_port(), harness.free_port()
    up_cfg = os.path.join(work, "upstream.yaml")
    with open(up_cfg, "w") as f:
        f.write(upstream_config(up_port, up_admin, files))
    up = subprocess.Popen([harness.ENVOY, "-c", up_cfg, "--base-id", "9001", "--concurrency", "1", "--log-level", "error"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    policy = json.loads(os.environ.get("BENCH_POLICY", '{"defaultRoute": {"response": {"detect": ["*"], "defaultAction": "redact"}}}'))
    variants = [
        ("no filter", ["router"], None),
        ("noop wasm (ceiling)", ["noop", "router"], None),
        ("meshdlp enforce", ["meshdlp", "router"], {"policy": policy, "auditLog": os.environ.get("BENCH_AUDIT", "1") != "0"}),
        ("lua redactor (peer)", ["lua", "router"], None),
    ]
    only = os.environ.get("BENCH_VARIANTS")
    if only:
        variants = [v for v in variants if v[0].split()[0] in only.split(",")]
    results = {}
    envoys = []
    try:
        time.sleep(0.5)
        for name, filters, cfg in variants:
            e = harness.Envoy("bench-" + name.split()[0], up_port, filters, cfg)
            e.start()
            envoys.append((name, e))
        # sanity: meshdlp really redacts the bodies it is measured on
        if "meshdlp enforce" in dict(envoys) and "BENCH_POLICY" not in os.environ:
            sample = harness.request("127.0.0.1", dict(envoys)["meshdlp enforce"].port, "GET", "/4k")[2]
            assert b"[REDACTED:email]" in sample and b"@example.com" not in sample, "meshdlp did not redact"
        for path in ("/4k", "/64k"):
            for name, e in envoys:
                wrk(e.port, path)  # warm-up (VMs, connections, caches)
            for _ in range(ROUNDS):
                for name, e in envoys:  # interleaved rounds: noise hits every variant alike
                    results.setdefault((path, name), []).append(wrk(e.port, path))
        rss = {name: rss_mb(e.proc.pid) for name, e in envoys}
    finally:
        for _, e in envoys:
            e.stop()
        up.terminate()
        up.wait(timeout=10)

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]
    print("\nwrk -t1 -c%s -d%s, %d interleaved rounds (medians), Envoy --concurrency 1, 127.0.0.1\n" % (CONNECTIONS, DURATION, ROUNDS))
    print("%-6s %-22s %10s %9s %9s %9s %8s %9s" % ("body", "front Envoy", "req/s", "vs none", "p50 ms", "p99 ms", "non-2xx", "RSS MB"))
    for path in ("/4k", "/64k"):
        base = med([r[0] for r in results.get((path, "no filter"), [(float("nan"),)])])
        for name, _ in envoys:
            rs = results[(path, name)]
            rps = med([r[0] for r in rs])
            print("%-6s %-22s %10.0f %8.2fx %9.2f %9.2f %8d %9.0f" % (
                path.strip("/"), name, rps, rps / base, med([r[1] for r in rs]), med([r[2] for r in rs]),
                sum(r[3] for r in rs), rss[name]))
    for path in ("/4k", "/64k"):
        if (path, "meshdlp enforce") in results and (path, "lua redactor (peer)") in results:
            m = med([r[0] for r in results[(path, "meshdlp enforce")]])
            lua = med([r[0] for r in results[(path, "lua redactor (peer)")]])
            print("meshdlp / lua at %s: %.1fx" % (path.strip("/"), m / lua))


if __name__ == "__main__":
    main()
