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
    reset         the connection is closed (RST) without an answer
    stall         nothing is sent for `seconds` (default 30), then close
    hold          nothing is sent until POST /_release (or `seconds`,
                  default 120, pass), then the request is served normally
    redirect      302 to the same path on `to` (a base URL), see below
GET /_log answers the requests seen so far as JSON lines
    {"t": time, "path": p, "range": r, "fault": k or null, "auth": a}
POST /_release lets held requests go on and forgets the hold faults.
POST /_reset forgets faults and the log (releasing held requests).

Listens on 127.0.0.1 only. Usage: faulty_http.py ROOT PORT
"""
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

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
        if kind == "short":
            data = data[: len(data) // 2]
        if kind == "wrong":
            data = bytes(b ^ 0x5A for b in data)
        self.send_response(206 if partial else 200)
        if partial:
            self.send_header("Content-Range", "bytes %d-%d/%d" %
                             (cr_first, cr_first + (last - first), size))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if head:
            return
        if kind == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)


def main():
    root, port = sys.argv[1], int(sys.argv[2])
    Handler.root = os.path.abspath(root)
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
