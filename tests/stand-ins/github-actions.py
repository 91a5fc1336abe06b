#!/usr/bin/env python3
"""A stand-in of the GitHub App and Actions REST API, for tests only.

It follows GitHub's documented behaviour closely enough to test the
workflow executor of spell-server: the installation access token endpoint
(the App JWT's RS256 signature verified with the `openssl` command against
--app-public-key, and its iat/exp/iss claims checked), workflow_dispatch
and repository_dispatch (204, or 422 for inputs GitHub would refuse), the
runs list (?event=...; a run shows up --run-delay seconds after its
dispatch, named "cast <cast_id>"), a run, its jobs and steps advancing on a
timeline (--step-seconds each), artifacts, cancel (202, 409 once
completed), x-ratelimit-* headers, and signed workflow_run webhook
deliveries (requested / in_progress / completed) to --webhook-url.

/_control endpoints (JSON bodies) drive it:
  POST /_control/next      {"conclusion": "success|failure|cancelled",
                            "webhook_only": bool (hide the run from the list),
                            "order": ["completed", "in_progress", ...],
                            "duplicate": bool, "no_webhooks": bool,
                            "steps": N,
                            "list_delay": S (listed S seconds after the dispatch
                                             instead of --list-delay),
                            "lost": bool (answer 204 but make no run),
                            "drop": bool (make the run, then close the
                                          connection without an answer)}
                            applies to the next dispatch
  POST /_control/down      {"calls": N, "status": 503}  the next N API calls fail
  POST /_control/ratelimit {"calls": N}  the next N API calls answer 403 with
                            x-ratelimit-remaining: 0 and a reset 1 s ahead
  POST /_control/webhook   {"url": "..."}  where deliveries go from now on
  POST /_control/expire-tokens  every issued token stops working (401)
  GET  /_control/state     runs (with their dispatch payloads), every
                            dispatch request received ("dispatches": cast id,
                            event, outcome), token exchanges, cancels,
                            refused JWTs
Listening on 127.0.0.1:0; the port is written to --port-file.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
STATE = {
    "runs": {},            # id -> run dict
    "tokens": {},          # token -> expiry (epoch s)
    "exchanges": 0,
    "jwt_refused": [],
    "cancels": [],
    "next": {},
    "down": 0, "down_status": 503,
    "ratelimit": 0,
    "remaining": 5000,
    "next_run_id": 1000,
    "deliveries": [],
    "dispatches": [],
}
ARGS = None


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jwt(jwt):
    """Returns None when the JWT is good, else the reason."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return "not three parts"
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        sig = b64url_decode(parts[2])
    except Exception:
        return "undecodable"
    if header.get("alg") != "RS256" or header.get("typ") != "JWT":
        return "bad header"
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data")
        sigf = os.path.join(d, "sig")
        with open(data, "wb") as f:
            f.write((parts[0] + "." + parts[1]).encode())
        with open(sigf, "wb") as f:
            f.write(sig)
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", ARGS.app_public_key,
                            "-signature", sigf, data], capture_output=True)
        if r.returncode != 0:
            return "bad signature"
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return "iat/exp missing"
    if iat > now + 5 or exp <= now or exp - iat > 660 or exp > now + 600 + 5:
        return "iat/exp out of window"
    if str(claims.get("iss")) != ARGS.app_id:
        return "wrong iss"
    return None


def sign(body):
    return "sha256=" + hmac.new(ARGS.webhook_secret.encode(), body, hashlib.sha256).hexdigest()


def run_phase(run, now=None):
    """(status, conclusion, steps_done) of a run at now."""
    now = now or time.time()
    if run.get("cancelled_at"):
        return "completed", "cancelled", None
    t0 = run["created"] + ARGS.run_delay
    end = t0 + run["steps"] * ARGS.step_seconds
    if now < t0:
        return "queued", None, 0
    if now < end:
        return "in_progress", None, int((now - t0) // ARGS.step_seconds)
    return "completed", run["conclusion"], run["steps"]


def run_json(run):
    status, conclusion, _ = run_phase(run)
    base = "http://github.invalid/%s/actions/runs/%d" % (run["repo"], run["id"])
    return {"id": run["id"], "name": run["name"], "display_title": run["name"],
            "event": run["event"], "status": status, "conclusion": conclusion,
            "html_url": base, "run_started_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(run["created"] + ARGS.run_delay)),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run["created"]))}


def deliver(run, action):
    body = json.dumps({"action": action, "workflow_run": dict(run_json(run),
                       **({"status": "completed"} if action == "completed" else
                          {"status": action if action != "requested" else "queued"})),
                       "repository": {"full_name": run["repo"]},
                       "installation": {"id": 1}}).encode()
    delivery = secrets.token_hex(8)
    copies = 2 if run.get("duplicate") else 1
    for _ in range(copies):
        req = urllib.request.Request(ARGS.webhook_url, data=body, method="POST", headers={
            "Content-Type": "application/json", "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(body)})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except Exception:
            code = 0
        with LOCK:
            STATE["deliveries"].append({"run": run["id"], "action": action, "status": code,
                                        "delivery": delivery})


def webhook_thread(run):
    if not ARGS.webhook_url or run.get("no_webhooks"):
        return
    order = run.get("order") or ["requested", "in_progress", "completed"]
    t0 = run["created"] + ARGS.run_delay
    end = t0 + run["steps"] * ARGS.step_seconds
    # Deliveries keep their order; each waits until its moment has come
    # (or until the cancel, for completed).
    sent_completed_early = order.index("completed") < order.index("in_progress") \
        if "completed" in order and "in_progress" in order else False
    for action in order:
        if action == "requested":
            target = run["created"] + 0.2
        elif action == "in_progress":
            target = end if sent_completed_early else t0
        else:
            target = end
        while time.time() < target and not run.get("cancelled_at"):
            time.sleep(0.05)
        deliver(run, action)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send(self, code, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(code)
        with LOCK:
            rem = STATE["remaining"]
        self.send_header("x-ratelimit-limit", "5000")
        self.send_header("x-ratelimit-remaining", str(rem))
        self.send_header("x-ratelimit-reset", str(int(time.time()) + 3600))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        u = urllib.parse.urlparse(self.path)
        path, q = u.path, urllib.parse.parse_qs(u.query)
        raw = self.body()
        if path.startswith("/_control/"):
            return self.control(method, path, raw)
        with LOCK:
            if STATE["down"] > 0:
                STATE["down"] -= 1
                return self.send(STATE["down_status"], {"message": "Service Unavailable"})
            if STATE["ratelimit"] > 0:
                STATE["ratelimit"] -= 1
                self.send_response(403)
                b = json.dumps({"message": "API rate limit exceeded"}).encode()
                self.send_header("x-ratelimit-remaining", "0")
                self.send_header("x-ratelimit-reset", str(int(time.time()) + 1))
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)
                return
            STATE["remaining"] = max(0, STATE["remaining"] - 1)
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.send(401, {"message": "Requires authentication"})
        cred = auth[7:]
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 4 and parts[0] == "app" and \
                parts[1] == "installations" and parts[3] == "access_tokens":
            why = verify_jwt(cred)
            if why:
                with LOCK:
                    STATE["jwt_refused"].append(why)
                return self.send(401, {"message": "A JSON web token could not be decoded",
                                       "reason": why})
            tok = "ghs_" + secrets.token_hex(16)
            exp = time.time() + 3600
            with LOCK:
                STATE["tokens"][tok] = exp
                STATE["exchanges"] += 1
            return self.send(201, {"token": tok, "expires_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)), "permissions": {"actions": "write"}})
        with LOCK:
            good = STATE["tokens"].get(cred, 0) > time.time()
        if not good:
            return self.send(401, {"message": "Bad credentials"})
        if self.headers.get("X-GitHub-Api-Version") != "2022-11-28" or \
                "application/vnd.github+json" not in self.headers.get("Accept", ""):
            return self.send(400, {"message": "missing GitHub headers"})
        if len(parts) < 3 or parts[0] != "repos":
            return self.send(404, {"message": "Not Found"})
        repo = parts[1] + "/" + parts[2]
        rest = parts[3:]
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            return self.send(400, {"message": "Problems parsing JSON"})
        if method == "POST" and rest[:2] == ["actions", "workflows"] and len(rest) == 4 and \
                rest[3] == "dispatches":
            inputs = payload.get("inputs") or {}
            if not isinstance(payload.get("ref"), str) or not isinstance(inputs, dict):
                return self.send(422, {"message": "Invalid request"})
            if len(inputs) > 25:
                return self.send(422, {"message": "you may only define up to 25 inputs"})
            for v in inputs.values():
                if len(str(v)) > 65535:
                    return self.send(422, {"message": "input value too long"})
            return self.new_run(repo, "workflow_dispatch", inputs.get("cast_id", ""), payload)
        if method == "POST" and rest == ["dispatches"]:
            cp = payload.get("client_payload") or {}
            if not payload.get("event_type") or not isinstance(cp, dict) or len(cp) > 10:
                return self.send(422, {"message": "Invalid request"})
            return self.new_run(repo, "repository_dispatch", cp.get("cast_id", ""), payload)
        if method == "GET" and rest == ["actions", "runs"]:
            ev = (q.get("event") or [None])[0]
            now = time.time()
            with LOCK:
                runs = [run_json(r) for r in STATE["runs"].values()
                        if r["repo"] == repo and not r.get("webhook_only")
                        and (ev is None or r["event"] == ev)
                        and now >= r["created"] + r.get("list_delay", ARGS.list_delay)]
            runs.reverse()
            return self.send(200, {"total_count": len(runs), "workflow_runs": runs})
        if len(rest) >= 3 and rest[:2] == ["actions", "runs"]:
            with LOCK:
                run = STATE["runs"].get(int(rest[2])) if rest[2].isdigit() else None
            if not run or run["repo"] != repo:
                return self.send(404, {"message": "Not Found"})
            sub = rest[3:]
            if method == "GET" and sub == []:
                return self.send(200, run_json(run))
            if method == "GET" and sub == ["jobs"]:
                status, conclusion, done = run_phase(run)
                steps = []
                for i in range(run["steps"]):
                    if done is None:
                        st = "completed"
                    elif i < done:
                        st = "completed"
                    elif i == done and status == "in_progress":
                        st = "in_progress"
                    else:
                        st = "queued"
                    steps.append({"name": "Step %d of %d" % (i + 1, run["steps"]),
                                  "number": i + 1, "status": st})
                return self.send(200, {"total_count": 1, "jobs": [
                    {"id": run["id"] * 10, "name": "spell", "status": status,
                     "conclusion": conclusion, "steps": steps}]})
            if method == "GET" and sub == ["artifacts"]:
                status, conclusion, _ = run_phase(run)
                arts = []
                if status == "completed" and conclusion == "success":
                    arts = [{"id": run["id"] + 50000, "name": "result",
                             "archive_download_url": "http://github.invalid/zip/%d"
                             % run["id"]}]
                return self.send(200, {"total_count": len(arts), "artifacts": arts})
            if method == "POST" and sub == ["cancel"]:
                status, _, _ = run_phase(run)
                with LOCK:
                    STATE["cancels"].append(run["id"])
                if status == "completed":
                    return self.send(409, {"message": "Cannot cancel a completed run"})
                run["cancelled_at"] = time.time()
                return self.send(202, {})
        return self.send(404, {"message": "Not Found"})

    def new_run(self, repo, event, cast_id, payload):
        with LOCK:
            nxt = STATE["next"]
            STATE["next"] = {}
            outcome = "lost" if nxt.get("lost") else "dropped" if nxt.get("drop") else "run"
            STATE["dispatches"].append({"cast_id": cast_id, "event": event,
                                        "outcome": outcome})
            if nxt.get("lost"):
                return self.send(204)
            rid = STATE["next_run_id"]
            STATE["next_run_id"] += 1
            run = {"id": rid, "repo": repo, "event": event, "name": "cast %s" % cast_id,
                   "created": time.time(), "payload": payload,
                   "conclusion": nxt.get("conclusion", "success"),
                   "steps": int(nxt.get("steps", ARGS.steps)),
                   "webhook_only": bool(nxt.get("webhook_only")),
                   "order": nxt.get("order"), "duplicate": bool(nxt.get("duplicate")),
                   "no_webhooks": bool(nxt.get("no_webhooks"))}
            if "list_delay" in nxt:
                run["list_delay"] = float(nxt["list_delay"])
            STATE["runs"][rid] = run
        threading.Thread(target=webhook_thread, args=(run,), daemon=True).start()
        if nxt.get("drop"):
            # The run is made; the answer never comes.
            self.close_connection = True
            return None
        return self.send(204)

    def control(self, method, path, raw):
        try:
            arg = json.loads(raw) if raw else {}
        except ValueError:
            arg = {}
        with LOCK:
            if path == "/_control/next":
                STATE["next"] = arg
            elif path == "/_control/down":
                STATE["down"] = int(arg.get("calls", 1))
                STATE["down_status"] = int(arg.get("status", 503))
            elif path == "/_control/ratelimit":
                STATE["ratelimit"] = int(arg.get("calls", 1))
            elif path == "/_control/webhook":
                ARGS.webhook_url = arg.get("url", "")
            elif path == "/_control/expire-tokens":
                STATE["tokens"] = {}
            elif path == "/_control/state":
                out = {"runs": [dict(run_json(r), payload=r["payload"])
                                for r in STATE["runs"].values()],
                       "exchanges": STATE["exchanges"], "jwt_refused": STATE["jwt_refused"],
                       "cancels": STATE["cancels"], "deliveries": STATE["deliveries"],
                       "dispatches": STATE["dispatches"]}
                body = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            else:
                body = b'{"message":"Not Found"}'
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--app-public-key", required=True)
    p.add_argument("--app-id", default="4242")
    p.add_argument("--webhook-url", default="")
    p.add_argument("--webhook-secret", default="whsec-test")
    p.add_argument("--run-delay", type=float, default=1.0)
    p.add_argument("--list-delay", type=float, default=0.5)
    p.add_argument("--step-seconds", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=4)
    ARGS = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
