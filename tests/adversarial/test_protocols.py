"""Other protocols on inspected routes (issue 6 section 6): Server-Sent Events, WebSocket
upgrades, CONNECT, gRPC. Each needs a defined behaviour - passed through (and counted in a
meshdlp metric), inspected per message, or refused with a reason - never a stream held until a
buffer overflows or a timeout fires.
"""

import json
import re
import socket
import time

import harness
import hostile
from checker import Checker, grpc_messages
from conftest import CANARY, PII, deliberate


def meshdlp_metrics(proxy):
    text = harness.request("127.0.0.1", proxy.envoy.admin, "GET", "/stats/prometheus", timeout=5)[2].decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("meshdlp_"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                pass
    return out


def passthrough_counted(before, after):
    """A meshdlp metric that says a stream passed uninspected grew."""
    return any(v > before.get(k, 0) for k, v in after.items() if re.search(r"pass|uninspected|protocol|upgrade", k))


def assert_clean_or_counted(case, leaked, before, after, what):
    assert not leaked or passthrough_counted(before, after), \
        "%s carried planted values %s and no meshdlp metric counted a pass-through" % (what, leaked)


# ---------------------------------------------------------------- SSE

def test_server_sent_events_are_not_held_to_the_end(case, proxy):
    case.plant(email=PII["email"])
    events = [b"event: hello\ndata: {\"k\": \"%s\"}\n\n" % CANARY.encode()]
    events += [b"data: {\"n\": %d, \"to\": \"%s\"}\n\n" % (i, PII["email"].encode()) for i in range(9)]
    path = case.path("sse")
    case.upstream.script(path, hostile.chunked(events, "text/event-stream", delay=0.4))
    before = meshdlp_metrics(proxy)
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    try:
        started = time.monotonic()
        s.sendall(("GET %s HTTP/1.1\r\nhost: api.test\r\naccept: text/event-stream\r\n\r\n" % path).encode())
        wire = hostile.Wire(s)
        head = wire.read_until(b"\r\n\r\n")
        _, headers = hostile.parse_head(head)
        status = int(head.split(b" ")[1])
        first_head = time.monotonic() - started
        if status >= 400:
            assert hostile.header(headers, "x-meshdlp-reason"), "refused without a reason: %d" % status
            return
        while not wire.buf and wire._fill():  # the first body byte
            pass
        first_event_by = time.monotonic() - started
        body, _ = hostile.read_body(wire, headers)
    finally:
        s.close()
    resp = hostile.Response(status, headers, body or b"", [], 0, first_event_by)
    leaked = case.leaks_to_client(resp)
    assert_clean_or_counted(case, leaked, before, meshdlp_metrics(proxy), "the event stream")
    # 10 events 0.4 s apart: a filter that holds the stream to its end answers after ~4 s.
    assert first_event_by < 2.0, "the event stream was held %.1f s before the first byte" % first_event_by


# ---------------------------------------------------------------- WebSocket

def ws_frame(payload):
    mask = b"\x01\x02\x03\x04"
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_websocket_upgrade(case, proxy):
    case.plant(email=PII["email"])
    path = case.path("ws")
    accept = [("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]
    case.upstream.script(path, hostile.Reply([(hostile.Reply.head(101, accept) + b"\x81\x05hello", 0)], close=True))
    before = meshdlp_metrics(proxy)
    raw = ("GET %s HTTP/1.1\r\nhost: api.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
           "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n" % path).encode()
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    try:
        started = time.monotonic()
        s.sendall(raw)
        wire = hostile.Wire(s)
        head = wire.read_until(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        assert time.monotonic() - started < 5
        if status == 101:
            s.sendall(ws_frame(json.dumps({"to": PII["email"]}).encode()))
            time.sleep(0.5)
    finally:
        s.close()
    time.sleep(0.5)
    leaked = case.leaks_to_upstream(path)
    assert_clean_or_counted(case, leaked, before, meshdlp_metrics(proxy), "the WebSocket")
    if status != 101:
        # Refused: by meshdlp (with a reason) or by Envoy's own upgrade handling.
        assert status >= 400, status


# ---------------------------------------------------------------- CONNECT

def test_connect_is_defined(case, proxy):
    case.plant(email=PII["email"])
    before = meshdlp_metrics(proxy)
    target = "127.0.0.1:%d" % case.upstream.port
    raw = ("CONNECT %s HTTP/1.1\r\nhost: %s\r\n\r\n" % (target, target)).encode()
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    try:
        started = time.monotonic()
        s.sendall(raw)
        head = hostile.Wire(s).read_until(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        assert time.monotonic() - started < 5, "CONNECT held"
        if 200 <= status < 300:
            s.sendall(("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
                       % (len(PII["email"]), PII["email"])).encode())
            time.sleep(0.5)
    finally:
        s.close()
    time.sleep(0.3)
    leaked = Checker(case.planted).leaks(b"".join(r.tunnel + r.body for r in case.upstream.received))
    assert_clean_or_counted(case, leaked, before, meshdlp_metrics(proxy), "the CONNECT tunnel")


# ---------------------------------------------------------------- gRPC

def grpc(msg):
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def test_grpc_response(case, proxy):
    case.plant(email=PII["email"], card=PII["card"])
    msgs = [grpc(json.dumps({"k": CANARY}).encode()), grpc(("user %s card %s" % (PII["email"], PII["card"])).encode())]
    path = case.path("grpc")
    case.upstream.script(path, hostile.chunked(msgs, "application/grpc", trailers=[("grpc-status", "0")], delay=0.05))
    before = meshdlp_metrics(proxy)
    resp = case.send("POST", path, headers=[("content-type", "application/grpc"), ("te", "trailers")],
                     body=grpc(b"{}"), timeout=10)
    assert resp.elapsed < 5, "gRPC stream held %.1f s" % resp.elapsed
    if deliberate(resp) or (resp.header("grpc-status") not in (None, "0") and resp.header("x-meshdlp-reason")):
        return
    assert resp.status == 200, resp.status
    assert grpc_messages(resp.body) is not None, "gRPC framing broken: %r" % resp.body[:100]
    assert_clean_or_counted(case, case.leaks_to_client(resp), before, meshdlp_metrics(proxy), "the gRPC response")


def test_grpc_request(case, proxy):
    case.plant(email=PII["email"], card=PII["card"])
    path = case.path("grpc")
    case.upstream.script(path, hostile.chunked([grpc(b"{}")], "application/grpc", trailers=[("grpc-status", "0")]))
    before = meshdlp_metrics(proxy)
    msg = grpc(("user %s card %s %s" % (PII["email"], PII["card"], CANARY)).encode())
    resp = case.send("POST", path, headers=[("content-type", "application/grpc"), ("te", "trailers")],
                     parts=[msg[:7], msg[7:]], delay=0.05, timeout=10)
    assert resp.elapsed < 5, "gRPC stream held %.1f s" % resp.elapsed
    if deliberate(resp):
        return
    got = case.upstream.requests_to(path)
    assert got, "the request never reached the upstream and was not refused (%d)" % resp.status
    assert grpc_messages(got[-1].body) is not None, "gRPC framing broken upstream: %r" % got[-1].body[:100]
    assert_clean_or_counted(case, case.leaks_to_upstream(path), before, meshdlp_metrics(proxy), "the gRPC request")
