#!/usr/bin/env bash
# spell-portal's provider screens driven through tmux: sign-in with a
# browser (the device flow, approved on the server's /device page) and the
# card view (registration address, its QR code, polling until the card
# arrives) against a real spell-server whose Stripe is the local stand-in
# (tests/stand-ins/stripe.py).  TAP on stdout.
#
#   providers.sh SPELL-PORTAL SPELL-SERVER CATALOG.json GOLDEN-DIR STAND-INS-DIR

here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

T_PORTAL=$1
server_exe=$2
catalog=$3
T_GOLDEN=$4
standins=$5

for tool in tmux curl jq python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "1..0 # SKIP $tool is not installed"
        exit 0
    fi
done

poll() {    # poll SECONDS COMMAND...: until the command succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -gt $end ] && return 1
        sleep 0.1
    done
}

# ---- the Stripe stand-in, then the server that uses it ----
have_stripe=0
if [ -f "$standins/stripe.py" ]; then
    python3 "$standins/stripe.py" --port-file "$T_TMP/stripe.port" \
        --secret-key sk_test_portal --webhook-secret whsec_portal >"$T_TMP/stripe.log" 2>&1 &
    T_PIDS+=($!)
    poll 10 test -s "$T_TMP/stripe.port" && have_stripe=1
fi
if [ "$have_stripe" = 1 ]; then
    STRIPE="http://127.0.0.1:$(cat "$T_TMP/stripe.port")"
    ok "the Stripe stand-in listens at $STRIPE"
    export STRIPE_SECRET_KEY=sk_test_portal STRIPE_WEBHOOK_SECRET=whsec_portal
    started=0
    server_start "$server_exe" "$catalog" --stripe-api-url "$STRIPE" && started=1
    unset STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET
else
    started=0
    server_start "$server_exe" "$catalog" && started=1
fi
if [ "$started" != 1 ]; then
    not_ok "spell-server starts"
    sed 's/^/# /' "$T_TMP/server.log"
    t_done
    exit 1
fi
ok "spell-server starts at $T_URL"
KEY=$(user_add dora)
[ "$have_stripe" = 1 ] && curl -fsS -X POST -d "{\"webhook_url\": \"$T_URL/webhooks/stripe\"}" \
    "$STRIPE/_control/config" >/dev/null

# ---- sign in with a browser: the device flow ----
device_status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{}' "$T_URL/v1/auth/device")
portal_start dev -- --api-url "$T_URL"
wait_for dev "You are not signed in." >/dev/null
keys dev Enter
if [ "$device_status" != 200 ]; then
    check "device sign-in on a server without it says so" \
        wait_for dev "does not offer sign-in with a browser"
    ok "# SKIP the full device login: the server answers $device_status to POST /v1/auth/device"
else
    check "Enter with an empty key field shows a user code" wait_for dev "and enter the code"
    code=$(screen dev | grep -oE '[A-Z]{4}-[A-Z]{4}' | head -n 1)
    check "the code is shown as text, XXXX-XXXX" test -n "$code"
    check "the code is drawn large too (half blocks)" \
        sh -c "tmux -L $T_SOCK capture-pane -p -t dev | grep -qE '[▀▄█]'"
    check "the page's address is shown" wait_for dev "$T_URL/device"
    check "no browser here: the screen says to open it anywhere" \
        wait_for dev "Open the address on any device"
    check "a waiting spinner with the server's interval" wait_for dev "checking every 5 s"
    # Approve on the /device page with the local account's key.
    approve=$(curl -s -o "$T_TMP/approve.html" -w '%{http_code}' -X POST \
        --data-urlencode "user_code=$code" --data-urlencode "api_key=$KEY" \
        --data-urlencode "action=key" "$T_URL/device")
    check "the /device page takes the approval ($approve)" test "$approve" = 200
    check "the portal signs in by itself" wait_for dev "Signed in as dora" 20
    check "with a session token, for this session" wait_for dev "key from session"
    portal_stop dev

    # Denied.
    portal_start deny -- --api-url "$T_URL"
    wait_for deny "You are not signed in." >/dev/null
    keys deny Enter
    wait_for deny "and enter the code" >/dev/null
    code=$(screen deny | grep -oE '[A-Z]{4}-[A-Z]{4}' | head -n 1)
    curl -s -o /dev/null -X POST --data-urlencode "user_code=$code" \
        --data-urlencode "action=deny" "$T_URL/device"
    check "a denied sign-in says so" wait_for deny "denied" 20
    check "and offers to start again" wait_for deny "Press Enter to start again"
    keys deny Enter
    check "Enter starts again with a new code" wait_for deny "and enter the code"
    keys deny Escape
    check "Esc cancels the wait" wait_for deny "Sign-in with a browser cancelled"
    portal_stop deny
fi
portal_stop dev

# ---- the card view ----
portal_start card SPELL_API_KEY="$KEY" -- --api-url "$T_URL"
wait_for card "Calls " >/dev/null && settle card
check "the dashboard's card block: no card, and how to add one" wait_for card "Press b to add one"
keys card c
check "c opens the card view" wait_for card "b register a card"
keys card Escape
check "Esc returns to the dashboard" wait_for card "This month"
if [ "$have_stripe" != 1 ]; then
    keys card b
    check "b: the server offers no card registration" wait_for card "does not offer card registration"
    ok "# SKIP card registration: tests/stand-ins/stripe.py is not there"
else
    keys card b
    check "b: the registration address" wait_for card "$STRIPE/pay/cs_test_" 15
    check "the view waits, checking every 3 s" wait_for card "The status is checked every 3 s."
    screen card >"$T_TMP/card.txt"
    # Every finder pattern starts on an even module row (the quiet zone is
    # 4 and a side is 21 + 4k), so each top edge is "█▀▀▀▀▀█" and each
    # centre "█ ███ █" then "█ ▀▀▀ █".  The data modules around them come
    # from a random session id and can draw the same shape now and then,
    # so a QR code shows at least three of each, two of them on one line
    # (the top-left and top-right patterns).
    check "a QR code is drawn: its three finder patterns" \
        test "$(grep -o '█▀▀▀▀▀█' "$T_TMP/card.txt" | wc -l)" -ge 3
    check "two finder patterns side by side at the top" \
        test "$(grep -m 1 '█▀▀▀▀▀█' "$T_TMP/card.txt" | grep -o '█▀▀▀▀▀█' | wc -l)" -ge 2
    check "and their centres" test "$(grep -o '█ ▀▀▀ █' "$T_TMP/card.txt" | wc -l)" -ge 3
    cs=$(grep -oE 'cs_test_[0-9a-f]+' "$T_TMP/card.txt" | head -n 1)
    done_json=$(curl -s -X POST -d '{"card": {"brand": "visa", "last4": "4242", "exp_month": 12,
        "exp_year": 2034}}' "$STRIPE/_control/checkout/$cs/complete")
    check "the stand-in completes the checkout, the webhook is taken" \
        test "$(jq -c .statuses <<<"$done_json")" = "[200]"
    check "the portal notices the card by polling" wait_for card "Card registered: visa ending 4242" 15
    check "and returns to the dashboard with it" wait_for card "visa ending 4242, expires 12/2034"
    check "the default \$50 hard limit came with it" wait_for card "of \$50.00"

    # Esc while waiting stops the polling.
    keys card b
    wait_for card "Waiting for the card" 15 >/dev/null
    keys card Escape
    check "Esc stops waiting" wait_for card "Stopped waiting for the card"
    check "and the dashboard is back" wait_for card "This month"

    # A failed payment shows in the error role.
    cus=$(curl -s "$STRIPE/_control/state" | jq -r '.customers | keys[0]')
    curl -s -X POST -d "{\"type\": \"invoice.payment_failed\", \"object\": {\"id\": \"in_test_portal\",
        \"object\": \"invoice\", \"customer\": \"$cus\", \"status\": \"open\", \"amount_due\": 600}}" \
        "$STRIPE/_control/deliver" >/dev/null
    keys card r
    check "a failed payment is shown on the dashboard" wait_for card "payment failed: visa ending 4242" 10
    portal_stop card

    # ASCII: "##" modules, too big for 100x30, drawn when the window grows.
    portal_start ascii SPELL_API_KEY="$(user_add eli)" LANG=C LC_ALL=C -- --api-url "$T_URL"
    wait_for ascii "Calls " >/dev/null && settle ascii
    keys ascii b
    check "C locale: too small for the QR code, open the URL" \
        wait_for ascii "Terminal too small for the QR code" 30
    resize ascii 160 60
    check "C locale, 160x60: the QR code in '##' modules" \
        poll 10 sh -c "tmux -L $T_SOCK capture-pane -p -t ascii | grep -q '##############  '"
    resize ascii 100 30
    keys ascii Escape
    portal_stop ascii
    # The stand-in down: the server's words in the status line.
    curl -s -X POST -d '{"down": true}' "$STRIPE/_control/down" >/dev/null
    portal_start down SPELL_API_KEY="$KEY" -- --api-url "$T_URL"
    wait_for down "Calls " >/dev/null && settle down
    keys down b
    check "Stripe down: the status line says registration failed" \
        wait_for down "Card registration:" 20
    portal_stop down
    curl -s -X POST -d '{"down": false}' "$STRIPE/_control/down" >/dev/null

fi
portal_stop card

t_done
