#!/bin/bash
# Stripe billing against the Stripe stand-in (tests/stand-ins/stripe.py):
# the signed webhook (tampered, stale, unsigned, replayed, several v1,
# unknown types), card registration and the $50 default, card removal,
# the 402 gates on paid casts, monthly invoicing run twice, Stripe down,
# and the admin route's credential.  TAP on stdout.
#
# Environment (tests/server/billing/meson.build): SPELL_SERVER,
# SPELL_ASSETS, STRIPE_STANDIN (the stand-in script).
set -u
. "$(dirname "$0")/../integration/lib.sh"
: "${STRIPE_STANDIN:?STRIPE_STANDIN must name tests/stand-ins/stripe.py}"

WHSEC=whsec_spell_test
SK=sk_test_spell
ADMIN=admin-secret-for-tests

python3 "$STRIPE_STANDIN" --port-file "$T/stripe.port" --secret-key "$SK" \
    --webhook-secret "$WHSEC" 2>"$T/stripe.log" &
PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$T/stripe.port" ] && break; sleep 0.1; done
STRIPE="http://127.0.0.1:$(cat "$T/stripe.port")"

# ctl METHOD PATH [JSON]: the stand-in's control API; the body lands in
# $T/ctl, the status in $T/ctl.status; prints nothing.
ctl() {
    curl -s -o "$T/ctl" -w '%{http_code}' --max-time 60 -X "$1" \
        -H 'Content-Type: application/json' --data-binary "${3:-{\}}" "$STRIPE$2" >"$T/ctl.status"
}
cj() { jq -r "$1" "$T/ctl"; }

srv spells import "$SPELL_ASSETS/catalog.json" >/dev/null 2>>"$T/cli.log"
export STRIPE_SECRET_KEY=$SK STRIPE_WEBHOOK_SECRET=$WHSEC SPELL_ADMIN_SECRET=$ADMIN
server_start --stripe-api-url "$STRIPE" --frontend-url "http://front.example" \
    --rate-ip-per-min 1000 --rate-user-per-min 1000 || exit 1
ctl POST /_control/config "{\"webhook_url\": \"$BASE/webhooks/stripe\"}" >/dev/null

KEY=$(new_user alice)
ALICE=$KEY
ALICE_ID=$(api GET /v1/auth/me >/dev/null; jb .id)

# ---- gating before a card ----
st=$(cast wordcount '{"text": "a b c"}')
is "$st $(jb .error.code)" "402 PAYMENT_METHOD_REQUIRED" "a paid cast without a card is 402 PAYMENT_METHOD_REQUIRED"
st=$(cast echo '{"message": "hi"}')
is "$st" 202 "a free cast runs without a card"
st=$(api GET /v1/billing/payment-method)
is "$st $(jb .error.code)" "404 NOT_FOUND" "no card on file: 404 NOT_FOUND"

# ---- Stripe down: clear error, nothing lost ----
ctl POST /_control/down '{"down": true}' >/dev/null
st=$(api POST /v1/billing/setup)
is "$st $(jb .error.code)" "503 UNAVAILABLE" "Stripe down: setup answers 503 UNAVAILABLE"
like "$(jb .error.message)" "Stripe" "the message names the provider"
ctl POST /_control/down '{"down": false}' >/dev/null

# ---- registration ----
st=$(api POST /v1/billing/setup)
is "$st" 200 "setup answers 200"
URL=$(jb .url)
like "$URL" "^$STRIPE/pay/cs_" "the answer holds the Checkout URL"
like "$(jb .expires_at)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "expires_at is RFC 3339"
api POST /v1/billing/setup >/dev/null
ctl GET /_control/state
is "$(cj '.customers | length')" 1 "a second setup reuses the one customer (also after Stripe was down)"
is "$(cj '[.customers[]][0].metadata.user_id')" "$ALICE_ID" "the customer carries the user id"
is "$(cj '[.checkout_sessions[]][0].success_url' | cut -d? -f1)" "http://front.example/billing/done" "success_url is on FRONTEND_URL"
CS=${URL##*/}
ctl POST "/_control/checkout/$CS/complete" '{"twice": true}'
is "$(cj '.statuses | join(",")')" "200,200" "checkout.session.completed delivered twice: 200 both times"
PM=$(cj .payment_method)
st=$(api GET /v1/billing/payment-method)
is "$st" 200 "the card is on file"
is "$(jb '[.brand, .last4, .exp_month, .exp_year, .status] | join(" ")')" "visa 4242 12 2034 active" "brand, last 4, expiry and status"
api GET /v1/budgets >/dev/null
is "$(jb .hard_limit_cents)" 5000 "the first card brings the \$50 hard limit"
ctl GET /_control/state
is "$(cj ".customers[].invoice_settings.default_payment_method")" "$PM" "the card became the customer's default"

# A user with a limit of their own keeps it.
KEY=$(new_user bob)
BOB=$KEY
api PUT /v1/budgets -H 'Content-Type: application/json' --data-binary '{"hard_limit_cents": 2000}' >/dev/null
api POST /v1/billing/setup >/dev/null
CS2=$(jb .url); CS2=${CS2##*/}
ctl POST "/_control/checkout/$CS2/complete" '{"card": {"brand": "mastercard", "last4": "4444", "exp_month": 3, "exp_year": 2031}}' >/dev/null
api GET /v1/budgets >/dev/null
is "$(jb .hard_limit_cents)" 2000 "a limit the user set stays when a card arrives"
api GET /v1/billing/payment-method >/dev/null
is "$(jb .brand) $(jb .last4)" "mastercard 4444" "bob's card"

# ---- paid casts run; failed payment blocks them; invoice.paid unblocks ----
KEY=$ALICE
st=$(cast wordcount '{"text": "a b c"}')
is "$st" 202 "with a card a paid cast is accepted"
WC1=$(jb .cast_id)
is "$(wait_cast "$WC1")" succeeded "the paid cast succeeds"

CUS=$(api GET /v1/auth/me >/dev/null; ctl GET /_control/state; cj "[.customers[] | select(.metadata.user_id == \"$ALICE_ID\")][0].id")
ev_obj() { printf '{"id": "in_test_manual%s", "object": "invoice", "customer": "%s"}' "$1" "$CUS"; }
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 1)}" >/dev/null
st=$(cast wordcount '{"text": "x"}')
is "$st $(jb .error.code)" "402 PAYMENT_FAILED" "after a failed payment paid casts get 402 PAYMENT_FAILED"
st=$(cast echo '{"message": "free"}')
is "$st" 202 "free casts still run"
api GET /v1/billing/payment-method >/dev/null
is "$(jb .status)" failed "the card's status is failed"
ctl POST /_control/deliver "{\"type\": \"invoice.paid\", \"object\": $(ev_obj 1)}" >/dev/null
st=$(cast wordcount '{"text": "a b"}')
is "$st" 202 "invoice.paid unblocks paid casts"
wait_cast "$(jb .cast_id)" >/dev/null

# ---- webhook signatures ----
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 2), \"tamper\": true}"
is "$(cj '.statuses[0]')" 400 "a tampered body is 400"
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 2), \"stale\": true}"
is "$(cj '.statuses[0]')" 400 "a stale timestamp is 400"
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 2), \"unsigned\": true}"
is "$(cj '.statuses[0]')" 400 "an unsigned delivery is 400"
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 2), \"wrong_secret\": true}"
is "$(cj '.statuses[0]')" 400 "a signature under another secret is 400"
st=$(cast wordcount '{"text": "still fine"}')
is "$st" 202 "none of the rejected deliveries took effect"
wait_cast "$(jb .cast_id)" >/dev/null
ctl POST /_control/deliver "{\"type\": \"customer.created\", \"object\": {\"id\": \"cus_x\"}}"
is "$(cj '.statuses[0]')" 200 "an unknown event type is acknowledged"
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 3), \"extra_v1\": true, \"id\": \"evt_replayed_1\"}"
is "$(cj '.statuses[0]')" 200 "several v1 values with one valid: accepted"
st=$(cast wordcount '{"text": "x"}')
is "$st" 402 "... and applied"
ctl POST /_control/deliver "{\"type\": \"invoice.paid\", \"object\": $(ev_obj 3), \"id\": \"evt_paid_1\"}" >/dev/null
ctl POST /_control/deliver "{\"type\": \"invoice.payment_failed\", \"object\": $(ev_obj 3), \"id\": \"evt_replayed_1\"}"
is "$(cj '.statuses[0]')" 200 "a replayed event id answers 200"
st=$(cast wordcount '{"text": "x"}')
is "$st" 202 "... and is not applied again"
wait_cast "$(jb .cast_id)" >/dev/null
curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Stripe-Signature: t=1,v1=00' --data 'not json' "$BASE/webhooks/stripe" >"$T/st"
is "$(cat "$T/st")" 400 "a bad signature on junk is 400"

# ---- card removal ----
KEY=$BOB
PM2=$(ctl GET /_control/state >/dev/null; cj '[.payment_methods[] | select(.card.last4 == "4444")][0].id')
ctl POST "/_control/payment_method/$PM2/detach" >/dev/null
is "$(cj '.statuses[0]')" 200 "payment_method.detached delivered"
st=$(api GET /v1/billing/payment-method)
is "$st" 404 "after payment_method.detached no card is on file"
st=$(cast wordcount '{"text": "x"}')
is "$st $(jb .error.code)" "402 PAYMENT_METHOD_REQUIRED" "and paid casts need a card again"

# ---- admin route ----
KEY=
st=$(anon POST /admin/billing/process-monthly)
is "$st" 401 "admin route without a secret: 401"
st=$(anon POST /admin/billing/process-monthly -H 'Authorization: Bearer wrong')
is "$st" 403 "admin route with a wrong secret: 403"
st=$(anon POST /admin/billing/process-monthly -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' --data-binary "{\"period\": \"$(date -u +%Y-%m)\"}")
is "$st $(jb .error.code)" "400 VALIDATION_ERROR" "the current period is refused"

# ---- monthly invoicing ----
# Usage of a closed month, written as the store keeps it (casts cannot be
# made in the past through the API).
PERIOD=$(date -u -d "$(date -u +%Y-%m-01) -1 day" +%Y-%m)
python3 - "$DB" "$ALICE_ID" "$PERIOD" <<'PY'
import sqlite3, sys
db, user, period = sys.argv[1:]
c = sqlite3.connect(db, timeout=30)
c.execute("INSERT INTO usage (user_id, period, spent_cents, reserved_cents, calls) VALUES (?, ?, 23, 0, 4)", (user, period))
c.execute("INSERT INTO usage_spell (user_id, period, spell_key, spent_cents, calls) VALUES (?, ?, 'wordcount', 15, 3)", (user, period))
c.execute("INSERT INTO usage_spell (user_id, period, spell_key, spent_cents, calls) VALUES (?, ?, 'uppercase', 8, 1)", (user, period))
c.commit()
PY
st=$(anon POST /admin/billing/process-monthly -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' --data-binary "{\"period\": \"$PERIOD\"}")
is "$st $(jb '[.period, .invoiced, .skipped, .failed] | join(" ")')" "200 $PERIOD 1 0 0" "the admin run invoices the user once"
out=$(srv billing run-monthly --period "$PERIOD" 2>&1)
is "$out" "billing $PERIOD: 0 invoiced, 1 skipped, 0 failed" "a second run (command line) bills nothing twice"
out=$(srv billing run-monthly 2>&1)
is "$out" "billing $PERIOD: 0 invoiced, 1 skipped, 0 failed" "the default period is the previous month"
ctl GET /_control/state
is "$(cj '[.invoices[]] | length')" 1 "the stand-in holds one invoice"
is "$(cj '[.invoices[]][0].status')" open "it is finalized"
is "$(cj '[.invoices[]][0].amount_due')" 23 "its amount is the period's spend"
is "$(cj '[.invoices[]][0].lines.data | map("\(.description)=\(.amount)") | sort | join(";")')" \
    "Uppercase: 1 cast=8;Word count: 3 casts=15" "one item per spell with exact amounts"
out=$(srv ledger verify 2>&1)
like "$out" "OK" "the ledger verifies with the invoice entry"
n=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM ledger WHERE kind='invoice' AND amount_cents=23\").fetchone()[0])" "$DB")
is "$n" 1 "one ledger invoice entry of 23 cents"
INV=$(cj '[.invoices[]][0].id')
ctl POST "/_control/invoice/$INV/fail" >/dev/null
KEY=$ALICE
st=$(cast wordcount '{"text": "x"}')
is "$st" 402 "the stand-in's invoice.payment_failed blocks paid casts"
ctl POST "/_control/invoice/$INV/pay" >/dev/null
st=$(cast wordcount '{"text": "x"}')
is "$st" 202 "its invoice.paid unblocks them"
wait_cast "$(jb .cast_id)" >/dev/null

done_testing
