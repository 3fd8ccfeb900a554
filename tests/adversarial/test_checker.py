"""The checker itself (no Envoy): every form it claims to undo is found, and redacted or
unrelated text is not a leak. Without this, a suite that passes could mean a blind checker."""

import gzip
import json
import zlib

import pytest

from checker import Checker
from conftest import PII

brotli = pytest.importorskip("brotli")  # installed by `make adversarial-tools`
zstandard = pytest.importorskip("zstandard")

EMAIL, CARD = PII["email"], PII["card"]


def grpc(msg):
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


LEAKS = [
    ("plain", EMAIL.encode(), None),
    ("upper case", EMAIL.upper().encode(), None),
    ("json escape", json.dumps({"a": EMAIL.replace("@", "\\u0040")}).encode().replace(b"\\\\", b"\\"), None),
    ("json in json", json.dumps({"e": json.dumps({"m": json.dumps({"to": EMAIL})})}).encode(), None),
    ("doubled escapes", b'{"a": "ada.lovelace\\\\\\\\u0040example.com"}', None),
    ("json key", json.dumps({EMAIL: 1}).encode(), None),
    ("percent", b"user=ada.lovelace%40example.com", None),
    ("double percent", b"user=ada.lovelace%2540example.com", None),
    ("html entity", b"ada.lovelace&#64;example.com", None),
    ("card squeezed", b"4111111111111111", None),
    ("card dashes", b"4111-1111-1111-1111", None),
    ("card %20", b"4111%201111%201111%201111", None),
    ("gzip by header", gzip.compress(EMAIL.encode()), "gzip"),
    ("gzip sniffed", gzip.compress(EMAIL.encode()), None),
    ("gzip twice", gzip.compress(gzip.compress(EMAIL.encode())), "gzip, gzip"),
    ("zlib", zlib.compress(EMAIL.encode()), "deflate"),
    ("raw deflate", zlib.compress(EMAIL.encode())[2:-4], "deflate"),
    ("br", brotli.compress(EMAIL.encode()), "br"),
    ("zstd sniffed", zstandard.ZstdCompressor().compress(EMAIL.encode()), None),
    ("grpc frame", grpc(gzip.compress(EMAIL.encode())), None),
    ("sse", ("data: %s\n\n" % json.dumps({"to": EMAIL})).encode(), None),
    ("ndjson", ('{"a": 1}\n{"to": "%s"}\n' % EMAIL.replace("@", "\\u0040")).encode(), None),
    ("bom + xssi", b"\xef\xbb\xbf)]}'\n" + json.dumps({"to": EMAIL.replace("@", "\\u0040")}).encode(), None),
    ("utf-16", EMAIL.encode("utf-16-le"), None),
]


@pytest.mark.parametrize("name,data,encoding", LEAKS, ids=[c[0] for c in LEAKS])
def test_checker_finds_every_form(name, data, encoding):
    assert Checker({"email": EMAIL, "card": CARD}).leaks(data, encoding), name


CLEAN = [
    b'{"email": "[REDACTED:email]", "card": "**** **** **** 1111"}',
    b"ada.lovelace@example.org 4111 1111 1111 1112 2024-01-15T10:30:00Z",
    gzip.compress(b'{"email": "hmac:k:0123456789abcdef"}'),
    b"\x00\x01\x02 binary \xff\xfe",
]


@pytest.mark.parametrize("data", CLEAN)
def test_checker_does_not_cry_wolf(data):
    assert Checker({"email": EMAIL, "card": CARD}).leaks(data) == []
