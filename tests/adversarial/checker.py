"""Finds planted values in whatever crossed the proxy, in every form a reader could undo.

A leak is a planted value visible in any view of the bytes: as sent, after every
content-encoding layer (gzip, zlib and raw deflate, br, zstd - by header and by sniffing),
percent-decoding, JSON parsing (keys and strings, JSON nested in strings, any depth), loose
unescaping of doubled escapes (`\\\\u0040`), HTML/XML entities, gRPC frames, SSE `data:`
lines, and with digit separators squeezed out (a card sent as `4111-1111-1111-1111` or
`4111%201111...` is the same card). The checker is deliberately paranoid: a view it cannot
build is skipped, never an error.
"""

import gzip
import html
import json
import re
import zlib
from urllib.parse import unquote, unquote_plus

try:
    import brotli
except ImportError:  # the Makefile installs it; without it br layers are not undone
    brotli = None
try:
    import zstandard
except ImportError:
    zstandard = None

MAX_VIEWS = 20_000
MAX_DECODED = 64 << 20
SEPARATORS = re.compile(r"[\s\-./()+_]|%20|%2[bB]|%2[dD]")


# ---------------------------------------------------------------- content-encoding layers

def _gunzip(b):
    return gzip.decompress(b)


def _zlib(b):
    d = zlib.decompressobj()
    out = d.decompress(b, MAX_DECODED)
    return out


def _raw_deflate(b):
    d = zlib.decompressobj(-15)
    return d.decompress(b, MAX_DECODED)


def _brotli(b):
    if brotli is None:
        raise ValueError("brotli not installed")
    return brotli.decompress(b)


def _zstd(b):
    if zstandard is None:
        raise ValueError("zstandard not installed")
    return zstandard.ZstdDecompressor().decompress(b, max_output_size=MAX_DECODED)


DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _zlib, "br": _brotli, "zstd": _zstd}


def decode_layers(data, content_encoding=None):
    """Every decodable layer of `data`: the header's codings undone in reverse, then sniffing
    (magic bytes, and br / raw deflate tried blindly) repeated up to 6 layers deep."""
    out = [data]
    if content_encoding:
        cur = data
        for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
            fn = DECODERS.get(coding)
            try:
                cur = fn(cur) if fn else cur
            except Exception:
                try:
                    cur = _raw_deflate(cur) if coding == "deflate" else None
                except Exception:
                    cur = None
                if cur is None:
                    break
            out.append(cur)
    frontier = list(out)
    for _ in range(6):
        nxt = []
        for b in frontier:
            for fn in _sniff(b):
                try:
                    d = fn(b)
                except Exception:
                    continue
                if d and d not in out:
                    out.append(d)
                    nxt.append(d)
        frontier = nxt
        if not frontier:
            break
    return out


def _sniff(b):
    if b[:2] == b"\x1f\x8b":
        yield _gunzip
    if b[:4] == b"\x28\xb5\x2f\xfd":
        yield _zstd
    if len(b) > 2 and (b[0] & 0x0F) == 8 and ((b[0] << 8) | b[1]) % 31 == 0:
        yield _zlib
    # br and raw deflate have no magic: try them on anything that does not look like text.
    if b and _binaryish(b[:256]):
        yield _brotli
        yield _raw_deflate


def _binaryish(b):
    return sum(1 for c in b if c < 9 or 13 < c < 32 or c > 126) > len(b) // 8


# ---------------------------------------------------------------- text views

def _loose_unescape(t):
    t = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), t)
    t = re.sub(r"\\+x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), t)
    t = re.sub(r"\\+([\"/\\])", r"\1", t)
    return t


def _json_docs(t):
    """JSON documents in `t`: the whole (after BOM / anti-XSSI prefix / trailing commas),
    each line (NDJSON), each SSE data line."""
    cands = [t, t.lstrip("\ufeff")]
    stripped = t.lstrip("\ufeff")
    for prefix in (")]}'", ")]}',", "while(1);", "for(;;);"):
        if stripped.startswith(prefix):
            cands.append(stripped[len(prefix):])
    cands.append(re.sub(r",\s*([\]}])", r"\1", stripped))
    if "\n" in t:
        for line in t.splitlines()[:5000]:
            line = line.strip()
            if line.startswith("data:"):
                line = line[5:].strip()
            if line[:1] in ("{", "[", '"'):
                cands.append(line)
    for c in cands:
        c = c.strip()
        if not c or c[0] not in "{[\"":
            continue
        try:
            yield json.loads(c)
        except Exception:
            continue


def _walk(doc, out, depth=0):
    if depth > 200:
        return
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append(k)
            _walk(v, out, depth + 1)
    elif isinstance(doc, list):
        for v in doc:
            _walk(v, out, depth + 1)
    elif isinstance(doc, str):
        out.append(doc)
    elif doc is not None and not isinstance(doc, bool):
        out.append(str(doc))


def grpc_messages(data):
    """Payloads of gRPC length-prefixed messages, or None when `data` is not exactly framed."""
    msgs, i = [], 0
    while i < len(data):
        if i + 5 > len(data):
            return None
        n = int.from_bytes(data[i + 1:i + 5], "big")
        if i + 5 + n > len(data):
            return None
        msgs.append(data[i + 5:i + 5 + n])
        i += 5 + n
    return msgs


def text_views(data, content_encoding=None):
    """Every text view of `data` (bytes), bounded in number."""
    views, seen = [], set()
    queue = []
    for layer in decode_layers(data, content_encoding):
        queue.append(layer.decode("utf-8", "replace"))
        queue.append(layer.decode("latin-1"))
        msgs = grpc_messages(layer) if layer[:1] in (b"\x00", b"\x01") else None
        for m in msgs or []:
            for sub in decode_layers(m):
                queue.append(sub.decode("utf-8", "replace"))
        # UTF-16 bodies: a value in UTF-16 is still the value.
        for enc in ("utf-16-le", "utf-16-be"):
            if layer.count(b"\x00") > len(layer) // 4:
                queue.append(layer.decode(enc, "replace"))
    while queue and len(views) < MAX_VIEWS:
        t = queue.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        views.append(t)
        for f in (unquote, unquote_plus, _loose_unescape, html.unescape):
            try:
                u = f(t)
            except Exception:
                continue
            if u != t and u not in seen:
                queue.append(u)
        for doc in _json_docs(t):
            strings = []
            _walk(doc, strings)
            for s in strings:
                if s not in seen:
                    queue.append(s)
    return views


def squeeze(t):
    return SEPARATORS.sub("", t)


class Checker:
    """Planted values by name. `leaks(data, content_encoding)` lists the names found."""

    def __init__(self, planted):
        self.planted = dict(planted)

    def leaks(self, data, content_encoding=None):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not data:
            return []
        found = set()
        views = [(t.lower(), None) for t in text_views(data, content_encoding)]
        for name, value in self.planted.items():
            low = value.lower()
            digits = sum(c.isdigit() for c in value) >= 7
            sq = squeeze(low)
            for i, (tl, squeezed) in enumerate(views):
                if low in tl:
                    found.add(name)
                    break
                if digits:
                    if squeezed is None:
                        squeezed = squeeze(tl)
                        views[i] = (tl, squeezed)
                    if sq in squeezed:
                        found.add(name)
                        break
        return sorted(found)

    def leaks_in_headers(self, headers):
        return self.leaks("\n".join("%s: %s" % (k, v) for k, v in headers).encode("latin-1", "replace"))
