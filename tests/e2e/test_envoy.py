"""End-to-end: real HTTP through the real Envoy 1.40 with the built meshdlp filter.

Each test would fail if the behaviour it names broke. Envoy instances are shared per module
(enforce, monitor, degraded) to keep the tier fast; the log checks run last.
"""

import gzip
import json
import os
import re
import subprocess

import pytest

import harness
from harness import Envoy, Upstream
from upstream import PII

POLICY = os.path.join(harness.ROOT, "examples", "policy.yaml")
FILTERS = ["strip-scopes", "jwt", "meshdlp", "router"]


def plugin_config(policy, **extra):
    cfg = {
        "policy": policy,
        "scopes": {"header": "x-meshdlp-scopes", "trustHeader": True, "metadata": {"key": "jwt_payload"}},
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="module")
def api():
    up = Upstream()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def policy():
    return harness.compile_policy(POLICY)


@pytest.fixture(scope="module")
def envoy(api, policy):
    e = Envoy("enforce", api.port, FILTERS, plugin_config(policy)).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def monitor(api, policy):
    p = dict(policy, mode="monitor")
    e = Envoy("monitor", api.port, FILTERS, plugin_config(p)).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def metadata_only(api, policy):
    """Scopes only from jwt_authn's dynamic metadata (read through properties), no header."""
    cfg = {"policy": policy, "scopes": {"metadata": {"key": "jwt_payload"}}}
    e = Envoy("metadata", api.port, FILTERS, cfg).start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def degraded(api, policy):
    e = Envoy("degraded", api.port, FILTERS, plugin_config(policy, holdHeaders=False), hold_headers=False).start()
    yield e
    e.stop()


def assert_no_pii(data, *keys):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for k in keys or PII.keys():
        assert PII[k] not in text, "raw %s leaked: %s" % (k, text[:500])


def json_body(resp):
    status, headers, body = resp
    assert int(headers["content-length"]) == len(body), "content-length must match the rewritten body"
    return json.loads(body)


# ---------------------------------------------------------------- response redaction

def test_response_fields_by_path_and_free_text_are_redacted(envoy):
    status, headers, body = resp = envoy.get("/orders/9")
    assert status == 200
    doc = json_body(resp)
    assert doc["payment"]["card"] == "**** **** **** 1111"          # mask, keep last 4
    assert doc["customer"]["email"].startswith("hmac:e2e1:")        # keyed hash
    assert doc["customer"]["phone"] == "[REDACTED:phone]"           # class action
    assert doc["note"] == "Customer asked to email [REDACTED:email] about the delivery"  # free text
    assert "internal_notes" not in doc                                # drop (custom class)
    assert doc["sku"] == "SKU-12345-XL" and doc["total"] == 1234.5    # untouched
    assert_no_pii(body)


def test_hash_is_deterministic_across_requests(envoy):
    a = json_body(envoy.get("/orders/1"))["customer"]["email"]
    b = json_body(envoy.get("/orders/2"))["customer"]["email"]
    assert a == b


def test_text_plain_is_redacted(envoy):
    status, headers, body = envoy.get("/text")
    assert status == 200
    assert body == b"Contact [REDACTED:email] or call [REDACTED:phone].\n"
    assert int(headers["content-length"]) == len(body)


def test_clean_body_passes_byte_identical(envoy, api):
    direct = harness.request("127.0.0.1", api.port, "GET", "/clean")[2]
    status, headers, body = envoy.get("/clean")
    assert status == 200 and body == direct


def test_non_utf8_body_is_scanned_without_harm(envoy):
    status, headers, body = envoy.get("/binary")
    assert status == 200
    assert body.startswith(b"\xff\xfe\x00\x80binary [REDACTED:email] ")
    assert body.endswith(b"\xc3\x28")
    assert int(headers["content-length"]) == len(body)


def test_empty_body_and_bodyless_request(envoy):
    assert envoy.get("/empty")[:1] == (200,)
    status, _, body = envoy.post("/echo", b"", {"content-type": "application/json"})
    assert status == 200 and body == b""


# ---------------------------------------------------------------- request redaction

def test_request_body_is_redacted_before_the_upstream(envoy, api):
    sent = json.dumps({"email": PII["email"], "card": "4111111111111111", "msg": "hello"}).encode()
    status, headers, body = envoy.post("/echo", sent, {"content-type": "application/json"})
    assert status == 200
    seen = api.last_request()
    upstream_doc = json.loads(seen["body"])
    assert upstream_doc == {"email": "[REDACTED:email]", "card": "[REDACTED:credit_card]", "msg": "hello"}
    assert int(seen["headers"]["content-length"]) == len(seen["body"].encode())


# ---------------------------------------------------------------- scope blocks with jwt_authn

def test_scope_violation_is_a_clean_403_problem(envoy):
    status, headers, body = envoy.get("/users/1", {"x-request-id": "req-scope-1"})
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["reason"] == "scope.class_not_allowed"
    assert problem["status"] == 403
    assert problem["requestId"] == "req-scope-1"
    assert_no_pii(body)


def test_token_granting_users_pii_passes(envoy):
    token = harness.jwt("users:read users:pii")
    status, headers, body = envoy.get("/users/1", {"authorization": "Bearer " + token})
    assert status == 200
    doc = json.loads(body)
    assert doc["ssn"] == PII["ssn"] and doc["email"] == PII["email"]


def test_token_without_the_grant_is_still_blocked(envoy):
    token = harness.jwt("users:read")
    assert envoy.get("/users/1", {"authorization": "Bearer " + token})[0] == 403


def test_scopes_from_jwt_metadata_alone(metadata_only):
    assert metadata_only.get("/users/1")[0] == 403
    token = harness.jwt("users:read users:pii")
    status, _, body = metadata_only.get("/users/1", {"authorization": "Bearer " + token})
    assert status == 200 and json.loads(body)["ssn"] == PII["ssn"]
    assert metadata_only.get("/users/1", {"authorization": "Bearer " + harness.jwt("users:read")})[0] == 403


def test_forged_scope_header_grants_nothing(envoy, api):
    status, _, _ = envoy.get("/users/1", {"x-meshdlp-scopes": "users:pii"})
    assert status == 403
    # and the internal header never reaches the upstream
    token = harness.jwt("users:read users:pii")
    envoy.get("/orders/5", {"authorization": "Bearer " + token})
    assert "x-meshdlp-scopes" not in api.last_request()["headers"]


def test_bad_token_is_rejected_by_jwt_authn(envoy):
    bad = harness.jwt("users:pii", secret=b"not-the-key-0123456789-abcdefghijkl")
    assert envoy.get("/users/1", {"authorization": "Bearer " + bad})[0] == 401


def test_blocked_class_action(envoy):
    status, headers, body = envoy.get("/secrets")
    assert status == 403 and json.loads(body)["reason"] == "policy.blocked_class"
    assert_no_pii(body, "key_body")


# ---------------------------------------------------------------- limits

def test_max_records(envoy):
    assert envoy.get("/reports?n=5")[0] == 200
    status, headers, body = envoy.get("/reports?n=11")
    assert status == 403 and json.loads(body)["reason"] == "scope.too_many_records"


def test_max_body_bytes(envoy):
    assert envoy.get("/export?kb=4")[0] == 200
    status, headers, body = envoy.get("/export?kb=64")
    assert status == 413 and json.loads(body)["reason"] == "limit.body_bytes"
    assert b"@example.com" not in body


def test_body_over_the_buffer_limit_is_streamed_and_never_leaks(envoy):
    status, headers, body = envoy.get("/orders/9?size=1500000")
    assert status == 200, (status, headers)
    assert "content-length" not in headers or int(headers["content-length"]) == len(body)
    assert len(body) > 1_000_000
    assert_no_pii(body, "email", "phone", "card", "iban", "note_email")


# ---------------------------------------------------------------- encodings and framing

def test_accept_encoding_is_stripped_on_inspected_routes(envoy, api):
    status, headers, body = envoy.get("/orders/9", {"accept-encoding": "gzip, br"})
    assert status == 200 and "content-encoding" not in headers
    assert "accept-encoding" not in api.last_request()["headers"]


def test_gzip_upstream_is_not_a_bypass(envoy):
    status, headers, body = envoy.get("/orders/9?gzip=1", {"accept-encoding": "gzip"})
    assert status == 200
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    doc = json.loads(body)
    assert doc["payment"]["card"] == "**** **** **** 1111"
    assert_no_pii(body)


def test_undecodable_encoding_fails_closed(envoy):
    status, headers, body = envoy.get("/orders/9?encoding=br")
    assert status == 502 and json.loads(body)["reason"] == "body.undecodable"


def test_chunked_response(envoy):
    resp = envoy.get("/orders/9?chunked=1")
    assert resp[0] == 200
    assert json_body(resp)["payment"]["card"] == "**** **** **** 1111"
    assert_no_pii(resp[2])


def test_response_ending_in_trailers(envoy):
    status, headers, body = envoy.get("/orders/9?trailers=1")
    assert status == 200
    doc = json.loads(body)
    assert doc["customer"]["phone"] == "[REDACTED:phone]"
    assert_no_pii(body)


def curl_h2(port, path, *extra):
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-m", "10", "-o", "-", "-w", "\n%{http_code} %{http_version}",
         *extra, "http://127.0.0.1:%d%s" % (port, path)],
        capture_output=True, timeout=20, check=True)
    body, _, tail = out.stdout.rpartition(b"\n")
    code, version = tail.decode().split()
    return int(code), version, body


def test_http2_h2c_downstream(envoy):
    code, version, body = curl_h2(envoy.port, "/orders/9")
    assert (code, version) == (200, "2")
    assert json.loads(body)["note"] == "Customer asked to email [REDACTED:email] about the delivery"
    code, version, body = curl_h2(envoy.port, "/users/1")
    assert (code, version) == (403, "2")
    assert_no_pii(body)


# ---------------------------------------------------------------- tokenize / detokenize

def test_tokens_reverse_with_meshdlp_detokenize(envoy):
    doc = json_body(envoy.get("/tokens/1"))
    token = doc["card"]
    assert token.startswith("tok:e2e1:") and PII["card_tok"] not in token
    out = subprocess.run([harness.MESHDLP, "detokenize", "--key-env", "MESHDLP_KEY"], input=json.dumps(doc).encode(),
                         env=dict(os.environ, MESHDLP_KEY=harness.TOKEN_KEY), capture_output=True, timeout=30, check=True)
    assert json.loads(out.stdout)["card"] == PII["card_tok"]
    wrong = subprocess.run([harness.MESHDLP, "detokenize", "--key-env", "K"], input=token.encode(),
                           env=dict(os.environ, K="another-secret-0123456789abcdef"), capture_output=True, timeout=30)
    assert wrong.returncode != 0 and PII["card_tok"].encode() not in wrong.stdout


# ---------------------------------------------------------------- monitor mode

def test_monitor_mode_changes_nothing_but_counts(monitor, api):
    direct = harness.request("127.0.0.1", api.port, "GET", "/users/1")[2]
    status, headers, body = monitor.get("/users/1")
    assert status == 200 and body == direct                      # enforce would block
    status, headers, body = monitor.get("/orders/9")
    assert status == 200 and PII["card"] in body.decode()         # enforce would mask
    prom = monitor.prometheus()
    assert re.search(r'meshdlp_bodies\{route="users",direction="response",decision="block",mode="monitor"\} [1-9]', prom), prom
    assert re.search(r'meshdlp_findings\{route="orders",direction="response",class="credit_card",action="mask",mode="monitor"\} [1-9]', prom)


# ---------------------------------------------------------------- degraded mode (headers not held)

def test_degraded_mode_rewrites_without_stale_length(degraded):
    status, headers, body = degraded.get("/orders/9")
    assert status == 200
    assert json.loads(body)["payment"]["card"] == "**** **** **** 1111"
    assert "content-length" not in headers or int(headers["content-length"]) == len(body)


def test_degraded_mode_block_replaces_the_body(degraded):
    status, headers, body = degraded.get("/users/1")
    # The 200 status already left; the body is the problem document, never the data.
    assert json.loads(body)["reason"] == "scope.class_not_allowed"
    assert_no_pii(body)


# ---------------------------------------------------------------- configuration errors

def test_bad_policy_is_rejected_with_a_clear_log_line(api, policy):
    bad = json.loads(json.dumps(policy))
    bad["routes"][1]["response"]["fields"][0]["path"] = "$.payment[*]]"
    e = Envoy("bad-policy", api.port, FILTERS, plugin_config(bad))
    e.start(expect_ready=False)
    try:
        code = e.wait_exit(timeout=20)
        log = e.read_log()
        assert code not in (None, 0), "Envoy must refuse the filter"
        assert "meshdlp: rejected configuration: policy.routes[1].response.fields[0].path: unexpected ']' at column 13" in log, log[-2000:]
    finally:
        e.stop()


# ---------------------------------------------------------------- observability (run last)

def test_metrics_have_labels(envoy):
    prom = envoy.prometheus()
    assert re.search(r'meshdlp_findings\{route="orders",direction="response",class="email",action="hash",mode="enforce"\} [1-9]', prom), prom
    assert re.search(r'meshdlp_blocks\{route="users",direction="response",reason="scope_class_not_allowed",mode="enforce"\} [1-9]', prom)
    assert re.search(r'meshdlp_bodies\{route="echo",direction="request",decision="rewrite",mode="enforce"\} [1-9]', prom)
    assert re.search(r'meshdlp_errors\{route="orders",direction="response",reason="body_undecodable",mode="enforce"\} [1-9]', prom)
    assert re.search(r'meshdlp_inspect_us_bucket\{direction="response",le="[0-9.e+]+"\}', prom)


def test_audit_log_lines_are_structured(envoy):
    lines = [l.split("meshdlp.audit ", 1)[1] for l in envoy.read_log().splitlines() if "meshdlp.audit " in l]
    assert lines
    entries = [json.loads(l) for l in lines]
    blocked = [e for e in entries if e.get("requestId") == "req-scope-1"]
    assert blocked and blocked[0]["route"] == "users"
    entry = blocked[0]["entries"][0]
    assert entry["decision"] == "block" and entry["reason"] == "scope.class_not_allowed"
    assert {"class": "us_ssn", "path": "$.ssn"}.items() <= next(f for f in entry["findings"] if f["class"] == "us_ssn").items()


@pytest.mark.parametrize("name", ["enforce", "monitor", "degraded"])
def test_envoy_logs_hold_no_raw_pii(name, request):
    e = request.getfixturevalue({"enforce": "envoy", "monitor": "monitor", "degraded": "degraded"}[name])
    log = e.read_log()
    for k, v in PII.items():
        assert v not in log, "raw %s in the %s Envoy log" % (k, name)
