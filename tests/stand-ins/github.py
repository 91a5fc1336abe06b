#!/usr/bin/env python3
"""A stand-in for GitHub's OAuth web flow and REST user endpoint, for tests.

It follows GitHub's documented behaviour for what spell-server uses:

  GET  /login/oauth/authorize      client_id, redirect_uri, scope, state:
                                   auto-approves as the user set through
                                   /_control/user (302 to redirect_uri with
                                   code and state), or answers
                                   error=access_denied when told to deny
  POST /login/oauth/access_token   form: client_id, client_secret, code,
                                   redirect_uri; JSON when asked for it.  A
                                   bad, used or expired code is a 200 with
                                   {"error": "bad_verification_code"}, as
                                   GitHub answers
  GET  /user                       Authorization: Bearer|token <token>;
                                   401 {"message": "Bad credentials"}

Control API for the tests (JSON bodies):
  POST /_control/user   {"id", "login", "name", "email", "avatar_url"}
  POST /_control/deny   {"deny": true|false}
  POST /_control/down   {"down": true|false}: every provider path answers
                        503 while down
  GET  /_control/stats  counters of requests per path

Listens on 127.0.0.1 port 0 and writes the port to --port-file.  Never
shipped in a binary.
"""
import argparse
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {
    "user": {"id": 1001, "login": "octocat", "name": "The Octocat",
             "email": "octocat@example.com",
             "avatar_url": "https://avatars.example/u/1001"},
    "deny": False,
    "down": False,
    "codes": {},    # code -> {"redirect_uri", "user"}
    "tokens": {},   # token -> user
    "stats": {},
}
ARGS = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            return b""
        return self.rfile.read(n) if n else b""

    def count(self, path):
        with LOCK:
            STATE["stats"][path] = STATE["stats"].get(path, 0) + 1

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/_control/stats":
            with LOCK:
                return self.send(200, dict(STATE["stats"]))
        self.count(u.path)
        with LOCK:
            down = STATE["down"]
        if down:
            return self.send(503, {"message": "Service unavailable"})
        if u.path == "/login/oauth/authorize":
            return self.authorize(q)
        if u.path == "/user":
            return self.user()
        return self.send(404, {"message": "Not Found"})

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if u.path.startswith("/_control/"):
            try:
                doc = json.loads(raw or b"{}")
            except ValueError:
                return self.send(400, {"message": "bad json"})
            with LOCK:
                if u.path == "/_control/user":
                    STATE["user"] = doc
                elif u.path == "/_control/deny":
                    STATE["deny"] = bool(doc.get("deny"))
                elif u.path == "/_control/down":
                    STATE["down"] = bool(doc.get("down"))
                else:
                    return self.send(404, {"message": "Not Found"})
            return self.send(200, {"ok": True})
        self.count(u.path)
        with LOCK:
            down = STATE["down"]
        if down:
            return self.send(503, {"message": "Service unavailable"})
        if u.path == "/login/oauth/access_token":
            return self.access_token(raw)
        return self.send(404, {"message": "Not Found"})

    def authorize(self, q):
        if q.get("client_id") != ARGS.client_id or not q.get("redirect_uri"):
            return self.send(404, b"<p>unknown client</p>", "text/html")
        sep = "&" if "?" in q["redirect_uri"] else "?"
        with LOCK:
            if STATE["deny"]:
                params = {"error": "access_denied",
                          "error_description": "The user has denied your application access."}
            else:
                code = secrets.token_hex(10)
                STATE["codes"][code] = {"redirect_uri": q["redirect_uri"],
                                        "user": dict(STATE["user"])}
                params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        loc = q["redirect_uri"] + sep + urllib.parse.urlencode(params)
        return self.send(302, b"", "text/html", {"Location": loc})

    def access_token(self, raw):
        f = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        if f.get("client_id") != ARGS.client_id or f.get("client_secret") != ARGS.client_secret:
            return self.send(200, {"error": "incorrect_client_credentials",
                                   "error_description": "The client_id and/or client_secret passed are incorrect."})
        with LOCK:
            c = STATE["codes"].pop(f.get("code", ""), None)
            if not c or c["redirect_uri"] != f.get("redirect_uri"):
                return self.send(200, {"error": "bad_verification_code",
                                       "error_description": "The code passed is incorrect or expired."})
            token = "gho_" + secrets.token_hex(18)
            STATE["tokens"][token] = c["user"]
        if "json" not in (self.headers.get("Accept") or ""):
            body = urllib.parse.urlencode({"access_token": token, "token_type": "bearer",
                                           "scope": "read:user,user:email"}).encode()
            return self.send(200, body, "application/x-www-form-urlencoded")
        return self.send(200, {"access_token": token, "token_type": "bearer",
                               "scope": "read:user,user:email"})

    def user(self):
        auth = self.headers.get("Authorization") or ""
        parts = auth.split(" ", 1)
        tok = parts[1] if len(parts) == 2 and parts[0].lower() in ("bearer", "token") else ""
        with LOCK:
            u = STATE["tokens"].get(tok)
        if not u:
            return self.send(401, {"message": "Bad credentials",
                                   "documentation_url": "https://docs.github.com/rest"})
        return self.send(200, u)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--client-id", default="test-client")
    p.add_argument("--client-secret", default="test-secret")
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
