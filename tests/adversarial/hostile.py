"""A hostile upstream and a raw client, both on plain sockets, so every byte is chosen by the test.

The upstream answers what the test scripts (status line, headers, body bytes, chunk splits,
delays, trailers, 101 upgrades, never-ending streams) and records exactly what it received:
request line, headers in order, the body after de-chunking, and request trailers. The test then
checks both directions. http.server and http.client are not used because they normalise what
we want to control (framing, header spelling, chunk boundaries).

Standard library only. Every socket has a timeout; every loop is bounded.
"""

import posixpath
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

KEEPALIVE_IDLE = 300.0
IO_TIMEOUT = 15.0
MAX_HEAD = 256 * 1024


# ---------------------------------------------------------------- wire helpers

class Wire:
    """A buffered reader over a socket; reads are bounded by IO_TIMEOUT and an optional cap."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        data = self.sock.recv(1 << 16)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, marker, cap=MAX_HEAD):
        while marker not in self.buf:
            if len(self.buf) > cap:
                raise ValueError("head larger than %d bytes" % cap)
            if not self._fill():
                raise EOFError("connection closed before %r" % marker)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self, cap=64 << 20):
        while self._fill():
            if len(self.buf) > cap:
                raise ValueError("body larger than %d bytes" % cap)
        out, self.buf = self.buf, b""
        return out


def parse_head(head):
    """`head` ends with CRLF CRLF. Returns (start line, [(name, value)]) with names as sent."""
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return lines[0].decode("latin-1"), headers


def header(headers, name, default=None):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def read_chunked(wire):
    """De-chunks a body. Returns (body, trailers)."""
    body = b""
    for _ in range(10_000_000):
        size_line = wire.read_until(b"\r\n", cap=4096)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        body += wire.read_exact(size)
        wire.read_exact(2)
    trailers = []
    for _ in range(1000):
        line = wire.read_until(b"\r\n", cap=MAX_HEAD)
        if line == b"\r\n":
            break
        name, _, value = line[:-2].partition(b":")
        trailers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return body, trailers


def read_body(wire, headers, bodyless=False):
    if bodyless:
        return b"", []
    if "chunked" in (header(headers, "transfer-encoding") or "").lower():
        return read_chunked(wire)
    length = header(headers, "content-length")
    if length is not None:
        return wire.read_exact(int(length)), []
    return None, []


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---------------------------------------------------------------- scripted replies

@dataclass
class Reply:
    """What the upstream writes: a list of (bytes, delay before writing them). `close` ends
    the connection after the last write (needed for close-delimited bodies and upgrades)."""
    writes: list
    close: bool = False

    @staticmethod
    def head(status, headers):
        reason = {101: "Switching Protocols", 200: "OK", 206: "Partial Content", 404: "Not Found"}.get(status, "X")
        out = b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())
        for k, v in headers:
            out += k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else str(v).encode("latin-1")) + b"\r\n"
        return out + b"\r\n"


def fixed(body, content_type="application/json", status=200, headers=()):
    """A Content-Length framed reply."""
    hs = ([("content-type", content_type)] if content_type is not None else []) + list(headers)
    hs.append(("content-length", len(body)))
    return Reply([(Reply.head(status, hs) + body, 0)])


def chunked(parts, content_type="application/json", status=200, headers=(), trailers=None, delay=0.0):
    """A chunked reply, one chunk per element of `parts`, `delay` seconds between chunks."""
    hs = ([("content-type", content_type)] if content_type is not None else []) + list(headers)
    hs.append(("transfer-encoding", "chunked"))
    if trailers:
        hs.append(("trailer", ", ".join(k for k, _ in trailers)))
    writes = [(Reply.head(status, hs), 0)]
    writes += [(chunk(p), delay) for p in parts if p]
    tail = b"0\r\n" + b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in (trailers or [])) + b"\r\n"
    writes.append((tail, delay))
    return Reply(writes)


def split_every(data, n):
    return [data[i:i + n] for i in range(0, len(data), n)]


# ---------------------------------------------------------------- the upstream

@dataclass
class Received:
    method: str
    target: str
    version: str
    headers: list
    body: bytes
    trailers: list = field(default_factory=list)
    tunnel: bytes = b""  # bytes received after a 101 or a CONNECT


def app_path(target):
    """The path as a lenient application routes it: no query, `;` parameters, case, duplicate
    or trailing slashes, or percent-encoding make a difference. The hostile upstream serves
    `/echo` for `/Echo`, `//echo/`, `/ech%6F;x=1`, which is what makes raw matching a bypass."""
    path = target.split("?", 1)[0]
    path = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
    path = unquote(path).lower()
    path = re.sub(r"/+", "/", posixpath.normpath("/" + path))
    return path.rstrip("/") or "/"


class Upstream:
    """A threaded HTTP/1.1 server. `script(path, handler)` routes an application path to a
    handler `(Received) -> Reply`; unknown paths get the clean `/plain` document."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.handlers = {}
        self.received = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def script(self, path, handler):
        if isinstance(handler, Reply):
            reply = handler
            handler = lambda _req: reply  # noqa: E731
        self.handlers[app_path(path)] = handler

    def requests_to(self, path):
        with self.lock:
            return [r for r in self.received if app_path(r.target) == app_path(path)]

    def clear(self):
        with self.lock:
            self.received.clear()

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(IO_TIMEOUT)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = Wire(conn)
        try:
            for _ in range(10_000):  # keep-alive, bounded
                # Waiting for the next request on a kept-alive connection: far longer than any
                # case, so Envoy never reuses a connection this side is just closing (that race
                # is an upstream reset, a 503 that is nobody's block).
                conn.settimeout(KEEPALIVE_IDLE)
                try:
                    head = wire.read_until(b"\r\n\r\n")
                except (EOFError, socket.timeout):
                    return
                conn.settimeout(IO_TIMEOUT)
                start, headers = parse_head(head)
                method, target, version = (start.split(" ", 2) + ["", ""])[:3]
                body, trailers = read_body(wire, headers, bodyless=method in ("GET", "HEAD", "CONNECT"))
                req = Received(method, target, version, headers, body or b"", trailers)
                with self.lock:
                    self.received.append(req)
                reply = self.handlers.get(app_path(target), default_handler)(req)
                for data, delay in reply.writes:
                    if delay:
                        time.sleep(delay)
                    conn.sendall(data)
                if reply.close or method == "CONNECT":
                    # Record what a tunnel or upgraded connection carries, briefly.
                    if method == "CONNECT" or reply.writes and reply.writes[0][0].startswith(b"HTTP/1.1 101"):
                        conn.settimeout(1.0)
                        try:
                            req.tunnel = wire.buf + conn.recv(1 << 16)
                        except OSError:
                            pass
                    return
        except (OSError, ValueError, EOFError):
            return
        finally:
            conn.close()


PLAIN = b'{"id":7,"status":"ok","items":[1,2,3]}'


def default_handler(req):
    path = app_path(req.target)
    if path == "/echo":
        ct = header(req.headers, "content-type")
        return fixed(req.body, ct if ct is not None else None)
    return fixed(PLAIN)


# ---------------------------------------------------------------- the raw client

@dataclass
class Response:
    status: int
    headers: list
    body: bytes
    trailers: list
    elapsed: float
    first_byte: float  # seconds until the first response byte

    def header(self, name, default=None):
        return header(self.headers, name, default)


def send(port, method, target, headers=(), body=None, parts=None, delay=0.0, timeout=IO_TIMEOUT,
         trailers=None, raw=None, head_only=False):
    """Sends one request on a new connection and reads one response.

    body: sent with content-length. parts: sent chunked, one chunk per part, `delay` seconds
    apart, optionally with `trailers`. raw: bytes sent as they are (the test frames them).
    head_only: return after the response head (101, CONNECT, never-ending streams)."""
    started = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if raw is not None:
            s.sendall(raw)
        else:
            hs = [("host", "api.test")] + list(headers)
            if parts is not None:
                hs.append(("transfer-encoding", "chunked"))
            elif body is not None:
                hs.append(("content-length", str(len(body))))
            msg = ("%s %s HTTP/1.1\r\n" % (method, target)).encode("latin-1")
            for k, v in hs:
                msg += k.encode("latin-1") + b": " + (v if isinstance(v, bytes) else v.encode("latin-1")) + b"\r\n"
            msg += b"\r\n"
            if parts is None:
                s.sendall(msg + (body or b""))
            else:
                s.sendall(msg)
                for p in parts:
                    if p:
                        if delay:
                            time.sleep(delay)
                        s.sendall(chunk(p))
                s.sendall(b"0\r\n" + b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in (trailers or [])) + b"\r\n")
        wire = Wire(s)
        for _ in range(10):  # interim 1xx heads (100 Continue, 103) precede the final one
            head = wire.read_until(b"\r\n\r\n")
            start, rheaders = parse_head(head)
            status = int(start.split(" ")[1])
            if not 100 <= status < 200 or status == 101:
                break
        first = time.monotonic() - started
        if head_only or status == 101:
            return Response(status, rheaders, wire.buf, [], time.monotonic() - started, first)
        bodyless = method == "HEAD" or status in (204, 304) or (method == "CONNECT" and 200 <= status < 300)
        rbody, rtrailers = read_body(wire, rheaders, bodyless)
        if rbody is None:
            rbody = wire.read_to_close()
        return Response(status, rheaders, rbody, rtrailers, time.monotonic() - started, first)
    finally:
        s.close()
