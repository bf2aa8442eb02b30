#!/usr/bin/env python3
"""A registry token service for skiff's tests (the bearer token flow).

GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...] answers
{"token": JWT, "access_token": JWT, "expires_in": TTL}. Without
credentials the token grants pull only, and nothing on repositories named
private/...; with Basic USER:PASS matching the command line it grants what
was asked; wrong credentials get 401. POST /token takes the same as an
OAuth2 password grant (form: grant_type=password, username, password,
service, scope separated by spaces), as containerd asks when it has
credentials. JWTs are ES256-signed with KEY and
carry its certificate (x5c), which the registry trusts through its
auth.token.rootcertbundle. Every request is appended to LOG as a JSON line.

A token's "exp" claim is TTL - LEEWAY seconds after it was issued
(LEEWAY: default 0). docker-registry accepts a token up to 60 s past its
"exp" (its leeway for clock skew): with LEEWAY 60 it refuses one TTL
seconds after it was issued, so that a test can see tokens expire within
seconds. "expires_in" always says TTL.

Usage: token_server.py PORT CERT KEY TLS_CERT TLS_KEY ISSUER USER PASS TTL LOG [LEEWAY]
Listens on 127.0.0.1 only, over TLS.
"""
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

(PORT, CERT, KEY, TLS_CERT, TLS_KEY, ISSUER, USER, PASS, TTL, LOG) = sys.argv[1:11]
LEEWAY = int(sys.argv[11]) if len(sys.argv) > 11 else 0
with open(CERT, "rb") as f:
    X5C = base64.b64encode(x509.load_pem_x509_certificate(f.read())
                           .public_bytes(serialization.Encoding.DER)).decode()
with open(KEY, "rb") as f:
    SIGNING_KEY = f.read()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        auth = self.headers.get("Authorization") or ""
        creds = None
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            creds = (user, pw)
        self.grant(u.path, q, creds)

    def do_POST(self):
        u = urlparse(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(n).decode())
        if form.get("grant_type", [""])[0] != "password":
            return self.answer(400, {"error": "unsupported_grant_type"})
        q = {"service": form.get("service", [""]),
             "scope": " ".join(form.get("scope", [])).split()}
        self.grant(u.path, q, (form.get("username", [""])[0], form.get("password", [""])[0]))

    def grant(self, path, q, creds):
        who = None
        if creds is not None:
            if creds != (USER, PASS):
                self.record(q, "refused")
                return self.answer(401, {"error": "bad credentials"},
                                   {"WWW-Authenticate": 'Basic realm="token"'})
            who = creds[0]
        if path != "/token":
            return self.answer(404, {"error": "no such path"})
        access = []
        for sc in q.get("scope", []):
            typ, _, rest = sc.partition(":")
            name, _, actions = rest.rpartition(":")
            if who:
                acts = actions.split(",")
            elif name.startswith("private/"):
                acts = []
            else:
                acts = [a for a in actions.split(",") if a == "pull"]
            access.append({"type": typ, "name": name, "actions": acts})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": who or "", "aud": q.get("service", [""])[0],
                  "exp": now + int(TTL) - LEEWAY, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}
        tok = jwt.encode(claims, SIGNING_KEY, algorithm="ES256", headers={"x5c": [X5C]})
        self.record(q, who or "anonymous")
        self.answer(200, {"token": tok, "access_token": tok, "expires_in": int(TTL)})

    def record(self, q, who):
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps({"t": time.time(), "scope": q.get("scope", []),
                                "who": who}) + "\n")


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS_CERT, TLS_KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
