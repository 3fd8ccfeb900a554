"""A small sample API that leaks personal data, for the end-to-end tests and `make demo`.

Routes (all JSON unless said otherwise):
  GET  /users/{id}           a user with email, name, phone, SSN, date of birth
  GET  /orders/{id}          an order: card, customer email, phone, free-text note, internal notes
  GET  /tokens/{id}          a card number to tokenize
  GET  /reports?n=N          {"items": [...N records...]}
  GET  /export?kb=N          about N KB of JSON records
  GET  /text                 text/plain with an email and a phone number
  GET  /secrets              a PEM private key
  GET  /binary               non-UTF-8 bytes (application/octet-stream)
  GET  /empty                200 with an empty body
  POST /echo                 echoes the request body and content-type
  GET  /last-request         what the last /echo or any request looked like (headers, body)
Query flags on any GET route: gzip=1 (gzip-encode whatever the client accepts),
chunked=1 (chunked transfer), trailers=1 (chunked with a trailer), size=N (pad to N bytes),
encoding=X (claim content-encoding X without encoding: undecodable).

Standard library only; Nagle is disabled (it would add 40 ms stalls).
"""

import gzip
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# Every raw value the API serves. Tests assert none of them appears where it must not.
PII = {
    "email": "ada.lovelace@example.com",
    "email2": "charles.babbage@example.org",
    "name": "Ada Lovelace",
    "phone": "+44 20 7946 0958",
    "ssn": "536-22-1234",
    "dob": "1985-12-10",
    "card": "4111 1111 1111 1111",
    "card_tok": "5555555555554444",
    "note_email": "grace.hopper@example.net",
    "iban": "DE89370400440532013000",
    "key_body": "MIIEowIBAAKCAQEAv7meshdlpTESTKEY",
}

PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + PII["key_body"] + "\n-----END RSA PRIVATE KEY-----"


def user(uid):
    return {
        "id": uid,
        "name": PII["name"],
        "email": PII["email"],
        "phone": PII["phone"],
        "ssn": PII["ssn"],
        "dob": PII["dob"],
        "created": "2024-01-15T10:30:00Z",
        "uuid": "550e8400-e29b-41d4-a716-446655440000",
    }


def order(oid):
    return {
        "id": oid,
        "status": "shipped",
        "total": 1234.5,
        "payment": {"card": PII["card"], "iban": PII["iban"]},
        "customer": {"email": PII["email"], "phone": PII["phone"]},
        "note": "Customer asked to email " + PII["note_email"] + " about the delivery",
        "internal_notes": "VIP, call before delivery",
        "sku": "SKU-12345-XL",
    }


def records(n):
    return {"items": [{"id": i, "email": "user%d@example.com" % i, "plan": "pro"} for i in range(n)]}


class State:
    last = {}
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sample-api"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _remember(self, body=b""):
        if self.path.startswith("/last-request"):
            return
        with State.lock:
            State.last = {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }

    def _send(self, status, body, content_type="application/json", query=None):
        query = query or {}
        headers = [("content-type", content_type)]
        if query.get("gzip"):
            body = gzip.compress(body)
            headers.append(("content-encoding", "gzip"))
        elif query.get("encoding"):
            # Claims an encoding the body does not have (undecodable on purpose).
            headers.append(("content-encoding", query["encoding"]))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if query.get("chunked") or query.get("trailers"):
            self.send_header("transfer-encoding", "chunked")
            if query.get("trailers"):
                self.send_header("trailer", "x-checksum")
            self.end_headers()
            step = max(1, len(body) // 3)
            for i in range(0, len(body), step):
                chunk = body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if query.get("trailers"):
                self.wfile.write(b"0\r\nx-checksum: 42\r\n\r\n")
            else:
                self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self._remember()
        parts = [p for p in url.path.split("/") if p]
        doc = None
        if len(parts) == 2 and parts[0] in ("users", "orders", "tokens"):
            key = parts[1]
            if parts[0] == "users":
                doc = user(key)
            elif parts[0] == "orders":
                doc = order(key)
            else:
                doc = {"id": key, "card": PII["card_tok"]}
        elif url.path == "/reports":
            doc = records(int(q.get("n", "3")))
        elif url.path == "/export":
            n = max(1, int(q.get("kb", "1")) * 1024 // 64)
            doc = records(n)
        elif url.path == "/text":
            body = ("Contact %s or call %s.\n" % (PII["email"], PII["phone"])).encode()
            return self._send(200, body, "text/plain; charset=utf-8", q)
        elif url.path == "/secrets":
            doc = {"service": "billing", "key": PEM}
        elif url.path == "/binary":
            return self._send(200, b"\xff\xfe\x00\x80binary " + PII["email"].encode() + b" \xc3\x28", "application/octet-stream", q)
        elif url.path == "/empty":
            return self._send(200, b"", "application/json", q)
        elif url.path == "/last-request":
            with State.lock:
                return self._send(200, json.dumps(State.last).encode(), "application/json")
        elif url.path == "/clean":
            doc = {"id": 7, "status": "ok", "created": "2024-01-15T10:30:00Z", "items": list(range(20))}
        if doc is None:
            return self._send(404, b'{"error":"not found"}')
        body = json.dumps(doc).encode()
        if q.get("size"):
            pad = int(q["size"]) - len(body) - 12
            if pad > 0:
                doc["padding"] = "x" * pad
                body = json.dumps(doc).encode()
        self._send(200, body, "application/json", q)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0") or 0)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(length)
        self._remember(body)
        ct = self.headers.get("content-type", "application/octet-stream")
        self._send(200, body, ct)


def serve(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18080
    srv = serve(port)
    print("sample API on 127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
