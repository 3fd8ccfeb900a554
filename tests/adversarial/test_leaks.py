"""Bypasses of issue 6 section 2, through the real Envoy, both directions where a client could
use them too. Every body here is legitimate: the expected outcome is a 200 with the planted
values redacted (a deliberate meshdlp refusal is tolerated only where the body is malformed).
"""

import json

import pytest

import hostile
from checker import Checker
from conftest import CANARY, PII, deliberate

BOTH = ["response", "request"]


def assert_ok(resp, crossed, json_expected=False):
    assert resp.status == 200, "refused: %d %s %r" % (resp.status, resp.header("x-meshdlp-reason"), resp.body[:200])
    assert crossed is not None and CANARY.encode() in crossed, "the canary field was lost: %r" % (crossed or b"")[:300]
    if json_expected:
        json.loads(crossed)


# ---------------------------------------------------------------- the planted values are findable

def test_planted_values_are_detectable(case):
    """Baseline: every planted value is found in a plain JSON field with a fitting key, so a
    leak elsewhere in this suite is a bypass, not a recall gap."""
    case.plant(**PII)
    doc = {"email": PII["email"], "card_number": PII["card"], "ssn": PII["ssn"], "phone": PII["phone"],
           "iban": PII["iban"], "access_key": PII["aws_key"], "dob": PII["dob"], "password": PII["password"],
           "full_name": PII["name"], "k": CANARY}
    for d in BOTH:
        resp, crossed = case.roundtrip(d, json.dumps(doc).encode())
        assert_ok(resp, crossed, json_expected=True)


# ---------------------------------------------------------------- JSON escapes and keys

@pytest.mark.parametrize("direction", BOTH)
def test_invalid_escape_does_not_skip_the_string(case, direction):
    case.plant(ssn=PII["ssn"], card=PII["card"])
    body = ('{"note": "SSN %s card %s C:\\Users\\ada", "k": "%s"}' % (PII["ssn"], PII["card"], CANARY)).encode()
    resp, crossed = case.roundtrip(direction, body)
    if not deliberate(resp):
        assert_ok(resp, crossed)


@pytest.mark.parametrize("direction", BOTH)
def test_keys_that_are_values(case, direction):
    case.plant(email=PII["email"], ssn=PII["ssn"], card=PII["card"], phone=PII["phone"])
    doc = {"byEmail": {PII["email"]: {"plan": "pro"}}, "bySsn": {PII["ssn"]: 1},
           PII["card"]: "card used as a key", "contacts": {PII["phone"]: [1, 2]}, "k": CANARY}
    resp, crossed = case.roundtrip(direction, json.dumps(doc).encode())
    assert_ok(resp, crossed, json_expected=True)


@pytest.mark.parametrize("direction", BOTH)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_percent_encoded_values(case, direction, content_type):
    case.plant(email=PII["email"], phone=PII["phone"], card=PII["card"])
    enc = {"email": "ada.lovelace%40example.com", "phone": "%2B44%2020%207946%200958",
           "card": "4111%201111%201111%201111"}
    if content_type == "application/json":
        body = json.dumps({"redirect": "/login?next=%2Fme&user=" + enc["email"], "q": enc["phone"],
                           "c": "pay?pan=" + enc["card"], "k": CANARY}).encode()
    else:
        body = ("GET /login?user=%s&tel=%s&pan=%s k=%s\n" % (enc["email"], enc["phone"], enc["card"], CANARY)).encode()
    resp, crossed = case.roundtrip(direction, body, content_type)
    assert_ok(resp, crossed)


def nested(levels, inner):
    """`inner` serialised into a JSON string field `levels` times (escapes double each time),
    with `@` written as \\u0040 at the innermost level."""
    text = json.dumps(inner).replace("@", "\\u0040")
    for i in range(levels):
        text = json.dumps({"level": i, "payload": text})
    return text


@pytest.mark.parametrize("direction", BOTH)
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_json_nested_in_json_strings(case, direction, levels):
    case.plant(email=PII["email"], ssn=PII["ssn"], card=PII["card"])
    inner = {"to": PII["email"], "ssn": PII["ssn"], "card_number": PII["card"]}
    body = json.dumps({"event": json.loads(nested(levels, inner)), "k": CANARY}).encode()
    resp, crossed = case.roundtrip(direction, body)
    assert_ok(resp, crossed, json_expected=True)


# ---------------------------------------------------------------- keyword spellings in text

SECRET = "Zq8vN3kLp2Rw7Tx5Hm4J"


@pytest.mark.parametrize("direction", BOTH)
@pytest.mark.parametrize("line,planted", [
    ("apiKey=%s" % SECRET, SECRET),
    ("X-Api-Key: %s" % SECRET, SECRET),
    ("API_Key: %s" % SECRET, SECRET),
    ("ApiKey: %s" % SECRET, SECRET),
    ("Client_Secret=%s" % SECRET, SECRET),
    ("PassWord: %s" % SECRET, SECRET),
    ("DoB: 12/03/1985", "12/03/1985"),
    ("Date Of Birth: 12/03/1985", "12/03/1985"),
], ids=["apiKey", "X-Api-Key", "API_Key", "ApiKey", "Client_Secret", "PassWord", "DoB", "Date-Of-Birth"])
def test_keyword_spellings_in_text(case, direction, line, planted):
    case.plant(value=planted)
    body = ("request log\n%s\nk=%s\n" % (line, CANARY)).encode()
    resp, crossed = case.roundtrip(direction, body, "text/plain")
    assert_ok(resp, crossed)


# ---------------------------------------------------------------- key/value shapes outside JSON

KV_BODIES = {
    "text-json-fragment": ("text/plain", 'user updated {"dob": "%(dob)s", "full_name": "%(name)s"} k=%(k)s'),
    "text-colon": ("text/plain", "dob: %(dob)s\nfull_name: %(name)s\npassword: %(password)s\nk: %(k)s\n"),
    "text-equals": ("text/plain", "dob=%(dob)s&full_name=%(name)s;password=%(password)s k=%(k)s"),
    "html": ("text/html", '<form><input name="dob" value="%(dob)s"><input name="full_name" value="%(name)s">'
                          '<td class="password">%(password)s</td></form><p>%(k)s</p>'),
    "xml-elements": ("application/xml", "<user><dob>%(dob)s</dob><full_name>%(name)s</full_name>"
                                        "<password>%(password)s</password><k>%(k)s</k></user>"),
    "xml-attributes": ("application/xml", '<user dob="%(dob)s" full_name="%(name)s" password="%(password)s" k="%(k)s"/>'),
    "yaml": ("application/yaml", "user:\n  dob: '%(dob)s'\n  full_name: %(name)s\n  password: %(password)s\nk: %(k)s\n"),
}


@pytest.mark.parametrize("direction", BOTH)
@pytest.mark.parametrize("shape", sorted(KV_BODIES))
def test_key_value_shapes_feed_key_hints(case, direction, shape):
    case.plant(dob=PII["dob"], name=PII["name"], password=PII["password"])
    content_type, template = KV_BODIES[shape]
    body = (template % dict(dob=PII["dob"], name=PII["name"], password=PII["password"], k=CANARY)).encode()
    resp, crossed = case.roundtrip(direction, body, content_type)
    assert_ok(resp, crossed)


# ---------------------------------------------------------------- Range requests

# A text document: its byte ranges are valid text too, so no parse error hides the bypass.
RANGE_DOC = ("Customer file 7\ncontact: %s\nnote: %s\n" % (PII["email"], CANARY)).encode()


def ranged(req):
    """An upstream that honours Range: single ranges as 206, several as multipart/byteranges."""
    spec = hostile.header(req.headers, "range")
    if not spec or not spec.startswith("bytes="):
        return hostile.fixed(RANGE_DOC, "text/plain")
    ranges = []
    for r in spec[6:].split(","):
        a, _, b = r.strip().partition("-")
        a = int(a)
        b = int(b) if b else len(RANGE_DOC) - 1
        ranges.append((a, min(b, len(RANGE_DOC) - 1)))
    if len(ranges) == 1:
        a, b = ranges[0]
        return hostile.fixed(RANGE_DOC[a:b + 1], "text/plain", status=206,
                             headers=[("content-range", "bytes %d-%d/%d" % (a, b, len(RANGE_DOC)))])
    body = b""
    for a, b in ranges:
        body += (b"--BOUNDARY\r\ncontent-type: text/plain\r\ncontent-range: bytes %d-%d/%d\r\n\r\n"
                 % (a, b, len(RANGE_DOC))) + RANGE_DOC[a:b + 1] + b"\r\n"
    body += b"--BOUNDARY--\r\n"
    return hostile.fixed(body, "multipart/byteranges; boundary=BOUNDARY", status=206)


def parts_of(body):
    return [p.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n") for p in body.split(b"--BOUNDARY")[1:-1] if b"\r\n\r\n" in p]


def assert_range_defused(case, path, resp):
    """Either Range / If-Range never reached the upstream (stripped), or a partial answer was
    refused: a 206 must not pass an inspected route."""
    case.assert_clean(resp)
    assert resp.status != 206, "a 206 partial response passed on an inspected route"
    if not deliberate(resp):
        for r in case.upstream.requests_to(path):
            assert hostile.header(r.headers, "range") is None, "Range reached the upstream on an inspected route"
            assert hostile.header(r.headers, "if-range") is None, "If-Range reached the upstream"


def test_range_single_ranges_cannot_split_a_value(case):
    case.plant(email=PII["email"])
    cut = RANGE_DOC.index(b"@")
    path = case.path("range")
    case.upstream.script(path, ranged)
    got = b""
    for spec in ("bytes=0-%d" % (cut - 1), "bytes=%d-" % cut):
        case.upstream.clear()
        resp = case.send("GET", path, headers=[("range", spec), ("if-range", '"etag-1"')])
        assert_range_defused(case, path, resp)
        got += resp.body
    assert case.leaks_to_client(hostile.Response(200, [], got, [], 0, 0)) == []


def test_range_multipart_byteranges(case):
    case.plant(email=PII["email"])
    cut = RANGE_DOC.index(b"@")
    path = case.path("range")
    case.upstream.script(path, ranged)
    resp = case.send("GET", path, headers=[("range", "bytes=0-%d,%d-" % (cut - 1, cut))])
    if resp.header("content-type", "").startswith("multipart/byteranges"):
        joined = b"".join(parts_of(resp.body))
        assert case.leaks_to_client(hostile.Response(200, [], joined, [], 0, 0)) == [], "the parts join to a value"
    assert_range_defused(case, path, resp)


# ---------------------------------------------------------------- path variants

BLOCKED_DOC = json.dumps({"email": PII["email"], "k": CANARY}).encode()
VARIANTS = ["/blocked", "/Blocked", "/BLOCKED", "/blocked/", "/blocked;x=1", "//blocked", "/blocke%64",
            "/%62locked", "/x/../blocked", "/./blocked", "/blocked?x=1"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_path_variants_reach_the_blocking_route_response(case, variant):
    case.plant(email=PII["email"])
    case.upstream.clear()
    case.upstream.script("/blocked", hostile.fixed(BLOCKED_DOC))
    resp = case.send("GET", variant)
    case.assert_clean(resp)
    if resp.status == 400 and not case.upstream.requests_to("/blocked"):
        return  # Envoy refused the path itself: nothing was served
    assert deliberate(resp) and resp.status == 403, \
        "%s did not reach the blocking route: %d %r" % (variant, resp.status, resp.body[:200])


@pytest.mark.parametrize("variant", VARIANTS)
def test_path_variants_reach_the_blocking_route_request(case, variant):
    case.plant(email=PII["email"])
    case.upstream.clear()
    case.upstream.script("/blocked", hostile.fixed(hostile.PLAIN))
    resp = case.send("POST", variant, headers=[("content-type", "application/json")], body=BLOCKED_DOC)
    if resp.status == 400 and not case.upstream.requests_to("/blocked"):
        return  # Envoy refused the path itself
    assert deliberate(resp) and resp.status == 403, \
        "%s did not reach the blocking route: %d %r" % (variant, resp.status, resp.body[:200])
    assert case.upstream.requests_to("/blocked") == [], "the request reached the upstream"


# ---------------------------------------------------------------- logs

def audit_lines(proxy, marker):
    return [l.split("meshdlp.audit ", 1)[1] for l in proxy.envoy.read_log().splitlines()
            if "meshdlp.audit " in l and marker in l]


def test_audit_lines_never_show_keys_that_are_values(case, proxy):
    """Keys that are values (an SSN, a card, a phone number, a person's name) must not reach
    the audit line through finding paths. (The client side of keys-as-values is
    test_keys_that_are_values; the case fixture also scans the whole log.)"""
    case.plant(ssn=PII["ssn"], card=PII["card"], phone=PII["phone"], name=PII["name"], email=PII["email"])
    rid = "adv-audit-keys-" + case.id
    doc = {"users": {PII["ssn"]: {"email": PII["email"]}, PII["phone"]: {"email": PII["email"]},
                     PII["name"]: {"email": PII["email"]}, PII["card"]: {"email": PII["email"]}}, "k": CANARY}
    case.response(json.dumps(doc).encode(), req_headers=[("x-request-id", rid)])
    hostile.send(proxy.port, "GET", "/plain")  # the audit line is written when the stream ends
    lines = audit_lines(proxy, rid)
    assert lines, "no audit line for the request"
    leaked = Checker(case.planted).leaks("\n".join(lines).encode())
    assert not leaked, "the audit line shows %s: %s" % (leaked, lines[0][:400])


INJECTED = 'meshdlp.audit {"injected": true}'


@pytest.mark.parametrize("form", ["long", "quotes", "obs-fold", "bare-lf", "control"])
def test_request_id_is_capped_and_escaped_in_logs(case, proxy, form):
    case.plant(email=PII["email"])
    marker = "rid" + case.id
    value = {
        "long": marker + "A" * 10240,
        "quotes": marker + '"}, "x": "\\\\u0022 ' + INJECTED + " " + "B" * 2000,
        "obs-fold": marker + "\r\n " + INJECTED,
        "bare-lf": marker + "\n" + INJECTED,
        "control": marker + "\x1b[31m\x07\x0b\x0c" + INJECTED,
    }[form]
    path = case.path("rid")
    case.upstream.script(path, hostile.fixed(json.dumps({"email": PII["email"], "k": CANARY}).encode()))
    raw = ("GET %s HTTP/1.1\r\nhost: api.test\r\nx-request-id: %s\r\n\r\n" % (path, value)).encode("latin-1")
    resp = case.send("GET", path, raw=raw)
    case.assert_clean(resp)
    hostile.send(proxy.port, "GET", "/plain")
    log = proxy.envoy.read_log()
    for line in log.splitlines():
        assert not line.lstrip().startswith(INJECTED), "a client forged a log line: %r" % line[:200]
        if marker in line:
            assert "A" * 1024 not in line and "B" * 1024 not in line, "request id not capped: %d chars" % len(line)
            assert "\x1b" not in line and "\x07" not in line, "control characters reached the log"
    for a in audit_lines(proxy, marker):
        json.loads(a)  # still one valid JSON document
