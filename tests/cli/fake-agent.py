#!/usr/bin/env python3
"""A stand-in for spell-agent speaking docs/agent.md's protocol, for the
command line's tests: fake-agent.py SOCKET [TOKEN API_URL].  It keeps casts
in memory; cast.submit of the spell "fail" ends failed, of "slow" is
rejected with 402, anything else succeeds after three events."""
import json
import os
import socket
import sys
import threading

path = sys.argv[1]
token = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
api_url = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:1"
casts = {}
lock = threading.Lock()
state = {"token": token, "n": 0}


def local_cast(lid, spell, st, progress, final, error=None):
    return {"local_id": lid, "cast_id": "cst_" + lid[3:].upper().ljust(26, "0")[:26],
            "spell": spell, "state": st, "progress": progress, "message": "",
            "estimated_cost_cents": 5, "cost_cents": 5 if st == "succeeded" else None,
            "artifact_url": None, "error": error, "attempts": 1, "next_attempt_at": None,
            "created_at": "2026-11-22T09:00:00.000Z", "finished_at": None,
            "duration_ms": 12 if final else None, "final": final}


def serve(conn):
    f = conn.makefile("rwb")
    hello = False
    subscribed = False

    def send(obj):
        f.write((json.dumps(obj) + "\n").encode())
        f.flush()

    for line in f:
        try:
            req = json.loads(line)
        except ValueError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse"}})
            continue
        rid, m, p = req.get("id"), req.get("method"), req.get("params") or {}

        def ok(r):
            send({"jsonrpc": "2.0", "id": rid, "result": r})

        def err(code, msg, data=None):
            e = {"code": code, "message": msg}
            if data is not None:
                e["data"] = data
            send({"jsonrpc": "2.0", "id": rid, "error": e})

        if m == "agent.hello":
            if p.get("protocol") != 1:
                err(-32001, "protocol mismatch")
                return
            hello = True
            ok({"protocol": 1, "agent": "0.1.0-fake"})
            continue
        if not hello:
            err(-32002, "agent.hello must come first")
            continue
        if m == "agent.status":
            ok({"version": "0.1.0-fake", "protocol": 1, "pid": os.getpid(), "uptime_s": 3,
                "api_url": api_url, "credential": {"source": "file" if state["token"] else "none",
                                                   "account": "alice" if state["token"] else None},
                "notifications": False,
                "queue": {"pending": 0, "submitting": 0, "active": 0, "finished": len(casts)}})
        elif m == "auth.status":
            if state["token"]:
                ok({"signed_in": True, "source": "file", "path": "/fake/credentials",
                    "api_url": api_url, "account": "alice", "key_prefix": "abcdEFGH"})
            else:
                ok({"signed_in": False, "source": "none", "api_url": api_url, "account": None,
                    "key_prefix": None})
        elif m == "auth.token":
            if state["token"]:
                ok({"token": state["token"], "api_url": api_url})
            else:
                err(-32010, "not signed in")
        elif m == "auth.login":
            tok = p.get("token", "")
            if tok.endswith("x" * 6):
                err(-32030, "refused", {"status": 401, "code": "UNAUTHORIZED",
                                        "message": "unknown key"})
            else:
                state["token"] = tok
                ok({"account": "alice", "source": "keyring"})
        elif m == "auth.logout":
            had = state["token"] is not None
            state["token"] = None
            ok({"removed": had})
        elif m == "events.subscribe":
            subscribed = True
            ok({"subscribed": True})
        elif m == "cast.submit":
            with lock:
                state["n"] += 1
                lid = "lc_%024d" % state["n"]
                casts[lid] = (p.get("spell"), p.get("inputs"))
            ok({"local_id": lid, "idempotency_key": "k" + lid})
        elif m in ("cast.get", "cast.wait", "cast.cancel"):
            lid = p.get("local_id")
            if lid is None and p.get("cast_id"):
                lid = next((k for k in casts
                            if local_cast(k, "", "", 0, False)["cast_id"] == p["cast_id"]), None)
            if lid not in casts:
                err(-32020, "no such cast")
                continue
            spell = casts[lid][0]
            if m == "cast.cancel":
                ok(local_cast(lid, spell, "canceled", 0, True,
                              {"code": "CANCELED", "message": "canceled", "status": None}))
                continue
            if m == "cast.wait" and subscribed:
                for kind, st, pr in (("cast.started", "running", 0),
                                     ("cast.progress", "running", 50)):
                    send({"jsonrpc": "2.0", "method": "event",
                          "params": {"kind": kind, "cast": local_cast(lid, spell, st, pr, False)}})
            if spell == "fail":
                ok(local_cast(lid, spell, "failed", 50, True,
                              {"code": "SPELL_FAILED", "message": "exit 1", "status": None}))
            elif spell == "slow":
                ok(local_cast(lid, spell, "rejected", 0, True,
                              {"code": "BUDGET_EXCEEDED", "message": "over", "status": 402}))
            else:
                ok(local_cast(lid, spell, "succeeded", 100, True))
        elif m == "cast.list":
            ok({"casts": [local_cast(k, v[0], "succeeded", 100, True)
                          for k, v in sorted(casts.items(), reverse=True)]})
        else:
            err(-32601, "method not found")


try:
    os.unlink(path)
except FileNotFoundError:
    pass
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
os.chmod(path, 0o600)
srv.listen(16)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
