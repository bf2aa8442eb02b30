#!/usr/bin/env python3
"""A web server for skiff's network tests that misbehaves on request.

Serves files under ROOT with single byte ranges, like any web server,
until told otherwise: POST /_fault with a JSON object
    {"kind": K, "count": N, "match": "blobs/", ...}
makes the next N GETs whose path contains `match` (and, with "from": B,
whose Range starts at byte B or later) fail in way K:
    500, 503      that status (503 with "retry_after" sends Retry-After)
    429           Too Many Requests, Retry-After: retry_after (default 1)
    truncate      right headers, half the body, then the connection closes
    short         206 whose Content-Length and body are half of the range
    badrange      206 with a Content-Range for another offset
    norange       200 with the whole file, whatever was asked
    wrong         right headers and length, every byte flipped
    drip          right headers, then the body one byte at a time, each
                  after `seconds_per_byte` (default 1.0); a client that
                  goes away ends it
    reset         the connection is closed (RST) without an answer
    stall         nothing is sent for `seconds` (default 30), then close
    hold          nothing is sent until POST /_release (or `seconds`,
                  default 120, pass), then the request is served normally
    redirect      302 to the same path on `to` (a base URL; one where
                  nothing listens is a dead host), see below
GET /_log answers the requests seen so far as JSON lines
    {"t": time, "path": p, "range": r, "fault": k or null, "auth": a}
POST /_release lets held requests go on and forgets the hold faults.
POST /_reset forgets faults and the log (releasing held requests).

With --upstream URL it is a front for another server (a registry):
GETs and HEADs without a fault are forwarded there (path, Accept, Range,
Authorization) and its answer passed back (502 when it cannot be
reached); truncate, short, wrong and drip spoil (or slow) the upstream's
body as they do a file's; badrange and norange are refused (400).
--tls CERT KEY serves https (the controls too), --cafile verifies the
upstream.

Listens on 127.0.0.1 only.
Usage: faulty_http.py ROOT PORT [--tls CERT KEY] [--upstream URL [--cafile F]]
"""
import json
import os
import http.client
import re
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOCK = threading.Lock()
FAULTS = []
LOG = []


def range_start(rng):
    """The first byte a Range header asks for (0 without one)."""
    m = re.match(r"bytes=(\d+)-", rng or "")
    return int(m.group(1)) if m else 0


def take_fault(path, rng):
    with LOCK:
        for f in FAULTS:
            if (f.get("match", "") in path and f["count"] > 0 and
                    range_start(rng) >= int(f.get("from", 0))):
                f["count"] -= 1
                return f
    return None


def release(keep):
    """Wakes every held request; drops the faults `keep` refuses."""
    with LOCK:
        for f in FAULTS:
            if "held" in f:
                f["held"].set()
        FAULTS[:] = [f for f in FAULTS if keep(f)]


# headers passed each way in front of an upstream
FORWARD_ASK = ("Accept", "Range", "Authorization", "User-Agent")
FORWARD_ANSWER = ("Content-Type", "Content-Range", "Docker-Content-Digest",
                  "Docker-Distribution-Api-Version", "WWW-Authenticate",
                  "Location", "Retry-After")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."
    upstream = None        # urlsplit() of --upstream
    upstream_ssl = None    # its ssl context (https)

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/_fault":
            f = json.loads(body)
            if self.upstream and f.get("kind") in ("badrange", "norange"):
                return self.send_json(400, {"error": "not in front of an upstream"})
            f.setdefault("count", 1)
            if f.get("kind") == "hold":
                f["held"] = threading.Event()
            with LOCK:
                FAULTS.append(f)
            return self.send_json(200, {"ok": True})
        if self.path == "/_release":
            release(lambda f: f.get("kind") != "hold")
            return self.send_json(200, {"ok": True})
        if self.path == "/_reset":
            release(lambda f: False)
            with LOCK:
                LOG.clear()
            return self.send_json(200, {"ok": True})
        self.send_json(404, {"error": "no such control"})

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                lines = "".join(json.dumps(x) + "\n" for x in LOG).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(lines)))
            self.end_headers()
            self.wfile.write(lines)
            return
        self.serve(head=False)

    def serve(self, head):
        path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        fault = take_fault(path, rng)
        with LOCK:
            LOG.append({"t": time.time(), "path": path, "range": rng,
                        "fault": fault["kind"] if fault else None,
                        "auth": self.headers.get("Authorization")})
        kind = fault["kind"] if fault else None
        if kind == "hold":
            fault["held"].wait(float(fault.get("seconds", 120)))
            kind = None
        if kind in ("500", "503", "429"):
            body = b"fault\n"
            self.send_response(int(kind))
            if kind == "429" or "retry_after" in fault:
                self.send_header("Retry-After", str(fault.get("retry_after", 1)))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind == "stall":
            time.sleep(float(fault.get("seconds", 30)))
            self.close_connection = True
            return
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", fault["to"].rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.upstream:
            return self.forward(fault, kind, head)
        full = os.path.normpath(os.path.join(self.root, path.lstrip("/")))
        if not full.startswith(os.path.abspath(self.root)) or not os.path.isfile(full):
            return self.send_json(404, {"error": "not found"})
        size = os.path.getsize(full)
        first, last, partial = 0, size - 1, False
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and kind != "norange":
            first = int(m.group(1))
            last = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            if first > last:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            partial = True
        with open(full, "rb") as fh:
            fh.seek(first)
            data = fh.read(last - first + 1)
        cr_first = first + 4096 if kind == "badrange" else first
        headers = [("Content-Type", "application/octet-stream")]
        if partial:
            headers.append(("Content-Range", "bytes %d-%d/%d" %
                            (cr_first, cr_first + (last - first), size)))
        self.answer(206 if partial else 200, headers, data, fault, kind, head)

    def forward(self, fault, kind, head):
        """Asks the upstream, then answers what it said (spoilt by kind)."""
        u = self.upstream
        if u.scheme == "https":
            c = http.client.HTTPSConnection(u.hostname, u.port,
                                            context=self.upstream_ssl,
                                            timeout=60)
        else:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            hdrs = {h: self.headers[h] for h in FORWARD_ASK if self.headers[h]}
            c.request(self.command, self.path, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            headers = [(h, r.getheader(h)) for h in FORWARD_ANSWER
                       if r.getheader(h) is not None]
            # a HEAD's length is the upstream's, its body none
            length = int(r.getheader("Content-Length") or 0) if head else None
            status = r.status
        except (OSError, http.client.HTTPException) as e:
            return self.send_json(502, {"error": "upstream: %s" % e})
        finally:
            c.close()
        self.answer(status, headers, data, fault, kind, head, length)

    def answer(self, status, headers, data, fault, kind, head, length=None):
        """Sends an answer, its body spoilt as the fault kind says."""
        if kind == "short":
            data = data[: len(data) // 2]
        if kind == "wrong":
            data = bytes(b ^ 0x5A for b in data)
        if length is None:
            length = len(data)
        self.send_response(status)
        for h, v in headers:
            self.send_header(h, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return
        if kind == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "drip":
            spb = float(fault.get("seconds_per_byte", 1.0))
            try:
                for i in range(len(data)):
                    time.sleep(spb)
                    self.wfile.write(data[i:i + 1])
            except OSError:
                # the client gave up (its timeout): nobody to answer
                self.close_connection = True
            return
        self.wfile.write(data)


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    args = sys.argv[3:]
    tls = cafile = None
    while args:
        if args[0] == "--tls" and len(args) >= 3:
            tls, args = (args[1], args[2]), args[3:]
        elif args[0] == "--upstream" and len(args) >= 2:
            Handler.upstream, args = urlsplit(args[1]), args[2:]
        elif args[0] == "--cafile" and len(args) >= 2:
            cafile, args = args[1], args[2:]
        else:
            sys.exit("usage: faulty_http.py ROOT PORT [--tls CERT KEY] "
                     "[--upstream URL [--cafile FILE]]")
    if Handler.upstream and Handler.upstream.scheme == "https":
        Handler.upstream_ssl = ssl.create_default_context(cafile=cafile)
    Handler.root = os.path.abspath(root)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        # the handshake in the request's thread (its first read), not in
        # the one that accepts: a client that stalls stalls only itself
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    srv.serve_forever()


if __name__ == "__main__":
    main()
