#!/usr/bin/env python3
"""A local stand-in for the Stripe API, for spell-server's tests.

It follows Stripe's documented behaviour for what spell-server uses:
form-encoded requests with bracket notation, Bearer secret keys
(sk_test_...), JSON objects and error bodies ({"error": {"type", "code",
"message", "param"}}), Idempotency-Key replay (same key and same
parameters -> the same answer, with Idempotent-Replayed: true; same key and
other parameters -> 400 idempotency_error), and webhook events signed with
Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">.

Objects: customers, checkout sessions (setup mode), setup intents,
payment methods (cards), invoice items, invoices (+ finalize).

The tests drive it through /_control/...:
  POST /_control/config                 {"webhook_url": "..."}
  POST /_control/checkout/<cs>/complete {"card"?: {...}, "twice"?: bool}
  POST /_control/invoice/<in>/pay       deliver invoice.paid
  POST /_control/invoice/<in>/fail      deliver invoice.payment_failed
  POST /_control/payment_method/<pm>/detach   deliver payment_method.detached
  POST /_control/deliver                {"type", "object", "id"?, "twice"?,
                                         "stale"?, "tamper"?, "unsigned"?,
                                         "wrong_secret"?, "extra_v1"?}
  POST /_control/down                   {"down": true|false}: 503 to every API call
  GET  /_control/state                  every object, for assertions

Usage: stripe.py --port-file FILE [--secret-key sk_test_...] [--webhook-secret whsec_...]
Listens on 127.0.0.1, port 0 (the kernel's pick), written to --port-file.
Never shipped: tests only.
"""
import argparse
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {
    "customers": {}, "checkout_sessions": {}, "setup_intents": {},
    "payment_methods": {}, "invoiceitems": {}, "invoices": {},
    "events": [], "idempotency": {}, "down": False, "webhook_url": None,
    "requests": 0, "creates": 0,
}
ARGS = None


def new_id(prefix):
    return prefix + "_test_" + secrets.token_hex(8)


def err(status, etype, message, code=None, param=None):
    e = {"type": etype, "message": message}
    if code:
        e["code"] = code
    if param:
        e["param"] = param
    return status, {"error": e}


def nest(pairs):
    """Stripe's bracket notation: a[b]=1, a[]=x -> nested dicts and lists."""
    out = {}
    for name, value in pairs:
        parts = []
        head, _, rest = name.partition("[")
        parts.append(head)
        while rest:
            inner, _, rest = rest.partition("]")
            parts.append(inner)
            rest = rest[1:] if rest.startswith("[") else rest
        cur = out
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if p == "":
                    pass
                elif isinstance(cur, dict):
                    cur[p] = value
                continue
            nxt = parts[i + 1]
            if nxt == "":
                cur = cur.setdefault(p, [])
                cur.append(value)
                break
            cur = cur.setdefault(p, {})
    return out


def deliver(event, twice=False, stale=False, tamper=False, unsigned=False,
            wrong_secret=False, extra_v1=False):
    url = STATE["webhook_url"]
    if not url:
        return [0]
    body = json.dumps(event).encode()
    t = int(time.time()) - (3600 if stale else 0)
    secret = ARGS.webhook_secret if not wrong_secret else "whsec_wrong"
    sig = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    header = "t=%d,v1=%s" % (t, sig)
    if extra_v1:
        header = "t=%d,v1=%s,v1=%s,v0=%s" % (t, "0" * 64, sig, "1" * 64)
    if tamper:
        body = body.replace(b'"livemode": false', b'"livemode": true ')
    statuses = []
    for _ in range(2 if twice else 1):
        req = urllib.request.Request(url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        if not unsigned:
            req.add_header("Stripe-Signature", header)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
        except OSError:
            statuses.append(0)
    with LOCK:
        STATE["events"].append({"id": event["id"], "type": event["type"],
                                "statuses": statuses})
    return statuses


def make_event(etype, obj, eid=None, previous=None):
    ev = {"id": eid or new_id("evt"), "object": "event", "api_version": "2024-06-20",
          "created": int(time.time()), "livemode": False, "type": etype,
          "data": {"object": obj}}
    if previous is not None:
        ev["data"]["previous_attributes"] = previous
    return ev


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", "req_" + secrets.token_hex(6))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        raw = self.read_body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_control/"):
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {}
            status, obj = control(method, path, data)
            return self.send(status, obj)
        if path.startswith("/pay/"):
            body = b"<html><body>Stripe stand-in checkout</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            return self.wfile.write(body)
        with LOCK:
            STATE["requests"] += 1
            down = STATE["down"]
        if down:
            return self.send(*err(503, "api_error", "The stand-in is down."))
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer sk_test_") or auth[7:] != ARGS.secret_key:
            return self.send(*err(401, "invalid_request_error",
                                  "Invalid API Key provided."))
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"),
                                       keep_blank_values=True)
        params = nest(pairs)
        key = self.headers.get("Idempotency-Key")
        if method == "POST" and key:
            fingerprint = method + " " + path + " " + json.dumps(sorted(pairs))
            with LOCK:
                prev = STATE["idempotency"].get(key)
            if prev:
                if prev[0] != fingerprint:
                    return self.send(*err(
                        400, "idempotency_error",
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.", code="idempotency_key_in_use"))
                return self.send(prev[1], prev[2], {"Idempotent-Replayed": "true",
                                                    "Idempotency-Key": key})
            status, obj = api(method, path, params)
            if status < 500:
                with LOCK:
                    STATE["idempotency"][key] = (fingerprint, status, obj)
            return self.send(status, obj, {"Idempotency-Key": key})
        status, obj = api(method, path, params)
        return self.send(status, obj)


def api(method, path, p):
    parts = [x for x in path.split("/") if x]
    if len(parts) < 2 or parts[0] != "v1":
        return err(404, "invalid_request_error", "Unrecognized request URL.")
    kind = parts[1]
    with LOCK:
        if kind == "checkout" and len(parts) >= 3 and parts[2] == "sessions":
            kind = "checkout_sessions"
            parts = ["v1", kind] + parts[3:]
        table = STATE.get(kind) if kind in ("customers", "checkout_sessions", "setup_intents",
                                            "payment_methods", "invoiceitems",
                                            "invoices") else None
        if table is None:
            return err(404, "invalid_request_error", "Unrecognized request URL.")
        if len(parts) >= 3:
            obj = table.get(parts[2])
            if obj is None:
                return err(404, "invalid_request_error",
                           "No such %s: '%s'" % (kind.rstrip("s"), parts[2]),
                           code="resource_missing", param="id")
            if method == "GET" and len(parts) == 3:
                return 200, obj
            if method == "POST" and len(parts) == 3 and kind == "customers":
                inv = p.get("invoice_settings", {})
                if "default_payment_method" in inv:
                    pm = STATE["payment_methods"].get(inv["default_payment_method"])
                    if not pm or pm.get("customer") != obj["id"]:
                        return err(400, "invalid_request_error",
                                   "The payment method is not attached to this customer.",
                                   code="resource_missing")
                    obj["invoice_settings"]["default_payment_method"] = pm["id"]
                return 200, obj
            if method == "POST" and len(parts) == 4 and kind == "invoices" and \
                    parts[3] == "finalize":
                if obj["status"] != "draft":
                    return err(400, "invalid_request_error",
                               "This invoice is already finalized.",
                               code="invoice_not_editable")
                obj["status"] = "open"
                obj["finalized_at"] = int(time.time())
                return 200, obj
            return err(404, "invalid_request_error", "Unrecognized request URL.")
        if method != "POST":
            return 200, {"object": "list", "data": list(table.values())}
        STATE["creates"] += 1
        if kind == "customers":
            o = {"id": new_id("cus"), "object": "customer", "email": p.get("email"),
                 "name": p.get("name"), "metadata": p.get("metadata", {}),
                 "invoice_settings": {"default_payment_method": None}}
        elif kind == "checkout_sessions":
            if p.get("mode") != "setup":
                return err(400, "invalid_request_error", "Only setup mode is supported here.",
                           param="mode")
            for f in ("success_url", "cancel_url", "customer"):
                if not p.get(f):
                    return err(400, "invalid_request_error", "Missing required param: %s." % f,
                               code="parameter_missing", param=f)
            if p["customer"] not in STATE["customers"]:
                return err(400, "invalid_request_error",
                           "No such customer: '%s'" % p["customer"], code="resource_missing",
                           param="customer")
            si = {"id": new_id("seti"), "object": "setup_intent", "customer": p["customer"],
                  "status": "requires_payment_method", "payment_method": None,
                  "usage": "off_session"}
            si["client_secret"] = si["id"] + "_secret_" + secrets.token_hex(8)
            STATE["setup_intents"][si["id"]] = si
            cid = new_id("cs")
            o = {"id": cid, "object": "checkout.session", "mode": "setup",
                 "customer": p["customer"], "setup_intent": si["id"], "status": "open",
                 "url": "%s/pay/%s" % (ARGS.base_url, cid),
                 "expires_at": int(time.time()) + 86400,
                 "success_url": p["success_url"], "cancel_url": p["cancel_url"],
                 "payment_method_types": p.get("payment_method_types", []),
                 "metadata": p.get("metadata", {})}
        elif kind == "setup_intents":
            if p.get("customer") and p["customer"] not in STATE["customers"]:
                return err(400, "invalid_request_error", "No such customer.",
                           code="resource_missing", param="customer")
            o = {"id": new_id("seti"), "object": "setup_intent", "customer": p.get("customer"),
                 "status": "requires_payment_method", "payment_method": None,
                 "usage": p.get("usage", "off_session"), "metadata": p.get("metadata", {})}
            o["client_secret"] = o["id"] + "_secret_" + secrets.token_hex(8)
        elif kind == "invoiceitems":
            try:
                amount = int(p.get("amount", ""))
            except ValueError:
                return err(400, "invalid_request_error", "Invalid integer: amount.",
                           param="amount")
            if p.get("customer") not in STATE["customers"]:
                return err(400, "invalid_request_error", "No such customer.",
                           code="resource_missing", param="customer")
            o = {"id": new_id("ii"), "object": "invoiceitem", "customer": p["customer"],
                 "amount": amount, "currency": p.get("currency"),
                 "description": p.get("description"), "metadata": p.get("metadata", {}),
                 "invoice": None}
        elif kind == "invoices":
            cus = p.get("customer")
            if cus not in STATE["customers"]:
                return err(400, "invalid_request_error", "No such customer.",
                           code="resource_missing", param="customer")
            iid = new_id("in")
            lines = []
            if p.get("pending_invoice_items_behavior") == "include":
                for it in STATE["invoiceitems"].values():
                    if it["customer"] == cus and it["invoice"] is None:
                        it["invoice"] = iid
                        lines.append({"id": it["id"], "amount": it["amount"],
                                      "description": it["description"]})
            o = {"id": iid, "object": "invoice", "customer": cus, "status": "draft",
                 "collection_method": p.get("collection_method"),
                 "description": p.get("description"),
                 "metadata": p.get("metadata", {}), "lines": {"data": lines},
                 "amount_due": sum(x["amount"] for x in lines), "currency": "usd"}
        else:
            return err(404, "invalid_request_error", "Unrecognized request URL.")
        table[o["id"]] = o
        return 200, o


def control(method, path, d):
    parts = [x for x in path.split("/") if x][1:]
    if parts == ["state"]:
        with LOCK:
            return 200, {k: v for k, v in STATE.items() if k != "idempotency"}
    if parts == ["config"]:
        with LOCK:
            STATE["webhook_url"] = d.get("webhook_url")
        return 200, {"ok": True}
    if parts == ["down"]:
        with LOCK:
            STATE["down"] = bool(d.get("down", True))
        return 200, {"down": STATE["down"]}
    if len(parts) == 3 and parts[0] == "checkout" and parts[2] == "complete":
        card = d.get("card") or {"brand": "visa", "last4": "4242", "exp_month": 12,
                                 "exp_year": 2034}
        with LOCK:
            cs = STATE["checkout_sessions"].get(parts[1])
            if not cs:
                return 404, {"error": {"type": "invalid_request_error",
                                       "message": "no such session"}}
            pm = {"id": new_id("pm"), "object": "payment_method", "type": "card",
                  "customer": cs["customer"], "card": dict(card)}
            STATE["payment_methods"][pm["id"]] = pm
            si = STATE["setup_intents"][cs["setup_intent"]]
            si["payment_method"] = pm["id"]
            si["status"] = "succeeded"
            cs["status"] = "complete"
            ev = make_event("checkout.session.completed", dict(cs))
        statuses = deliver(ev, twice=bool(d.get("twice")))
        return 200, {"event_id": ev["id"], "statuses": statuses, "payment_method": pm["id"]}
    if len(parts) == 3 and parts[0] == "invoice" and parts[2] in ("pay", "fail"):
        with LOCK:
            inv = STATE["invoices"].get(parts[1])
            if not inv:
                return 404, {"error": {"type": "invalid_request_error",
                                       "message": "no such invoice"}}
            inv["status"] = "paid" if parts[2] == "pay" else "open"
            etype = "invoice.paid" if parts[2] == "pay" else "invoice.payment_failed"
            ev = make_event(etype, dict(inv))
        statuses = deliver(ev, twice=bool(d.get("twice")))
        return 200, {"event_id": ev["id"], "statuses": statuses}
    if len(parts) == 3 and parts[0] == "payment_method" and parts[2] == "detach":
        with LOCK:
            pm = STATE["payment_methods"].get(parts[1])
            if not pm:
                return 404, {"error": {"type": "invalid_request_error",
                                       "message": "no such payment method"}}
            cus = pm["customer"]
            pm["customer"] = None
            ev = make_event("payment_method.detached", dict(pm), previous={"customer": cus})
        statuses = deliver(ev)
        return 200, {"event_id": ev["id"], "statuses": statuses}
    if parts == ["deliver"]:
        ev = make_event(d.get("type", "ping"), d.get("object", {}), eid=d.get("id"))
        statuses = deliver(ev, twice=bool(d.get("twice")), stale=bool(d.get("stale")),
                           tamper=bool(d.get("tamper")), unsigned=bool(d.get("unsigned")),
                           wrong_secret=bool(d.get("wrong_secret")),
                           extra_v1=bool(d.get("extra_v1")))
        return 200, {"event_id": ev["id"], "statuses": statuses}
    return 404, {"error": {"type": "invalid_request_error", "message": "unknown control"}}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--secret-key", default="sk_test_spell")
    ap.add_argument("--webhook-secret", default="whsec_spell_test")
    ap.add_argument("--webhook-url")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    ARGS.base_url = "http://127.0.0.1:%d" % srv.server_address[1]
    STATE["webhook_url"] = ARGS.webhook_url
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
