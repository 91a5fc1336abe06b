#!/bin/bash
# Issue 6, "Done when": a new user goes from signing in to a registered
# card to a paid cast within budget, with the spell command line, against
# the real spell-server and the Stripe stand-in.  TAP on stdout.
#
# The user signs in with an API key in SPELL_API_KEY, which needs no agent;
# the same path from `spell login` (the device flow, a new GitHub user)
# through the agent is tests/e2e/test-issue6.sh.
#
# Environment: SPELL_SERVER, SPELL_CLI, SPELL_ASSETS, STRIPE_STANDIN.
set -u
. "$(dirname "$0")/../integration/lib.sh"
: "${SPELL_CLI:?SPELL_CLI must name the spell binary}"
: "${STRIPE_STANDIN:?STRIPE_STANDIN must name tests/stand-ins/stripe.py}"

python3 "$STRIPE_STANDIN" --port-file "$T/stripe.port" --secret-key sk_test_e2e \
    --webhook-secret whsec_e2e 2>"$T/stripe.log" &
PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$T/stripe.port" ] && break; sleep 0.1; done
STRIPE="http://127.0.0.1:$(cat "$T/stripe.port")"

srv spells import "$SPELL_ASSETS/catalog.json" >/dev/null 2>>"$T/cli.log"
STRIPE_SECRET_KEY=sk_test_e2e STRIPE_WEBHOOK_SECRET=whsec_e2e \
    server_start --stripe-api-url "$STRIPE" || exit 1
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
    --data-binary "{\"webhook_url\": \"$BASE/webhooks/stripe\"}" "$STRIPE/_control/config"

export HOME=$T/home XDG_CONFIG_HOME=$T/config XDG_STATE_HOME=$T/state XDG_RUNTIME_DIR=$T/run
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset DISPLAY WAYLAND_DISPLAY DBUS_SESSION_BUS_ADDRESS
export SPELL_API_URL=$BASE
SPELL_API_KEY=$(new_user carol)
export SPELL_API_KEY
spell() { "$SPELL_CLI" "$@"; }

out=$(spell card 2>&1)
like "$out" "No card on file" "spell card: no card on file yet"
spell cast wordcount -i text="one two" --wait --direct >"$T/cast0.out" 2>&1
is "$?" 4 "a paid cast without a card exits 4 (402)"

spell card add >"$T/add.out" 2>&1 &
ADD_PID=$!
PIDS+=("$ADD_PID")
URL=
for i in $(seq 1 100); do
    URL=$(grep -Eo "$STRIPE/pay/cs_[A-Za-z0-9_]+" "$T/add.out" | head -n 1)
    [ -n "$URL" ] && break
    sleep 0.1
done
like "$URL" "/pay/cs_" "spell card add prints the Checkout URL"
curl -s -o "$T/complete" -X POST -H 'Content-Type: application/json' --data-binary '{}' \
    "$STRIPE/_control/checkout/${URL##*/}/complete"
is "$(jq -r '.statuses[0]' "$T/complete")" 200 "the stand-in completes checkout and the webhook is taken"
wait "$ADD_PID"
is "$?" 0 "spell card add sees the card and exits 0"
like "$(cat "$T/add.out")" "visa ending in 4242, expires 12/2034" "it prints the card"

out=$(spell card --json 2>&1)
is "$(jq -r '[.brand, .last4, .status] | join(" ")' <<<"$out")" "visa 4242 active" "spell card --json"
spell cast wordcount -i text="one two three" --wait --direct >"$T/cast.out" 2>&1
is "$?" 0 "the paid cast runs to success within budget"
KEY=$SPELL_API_KEY
api GET /v1/budgets/usage >/dev/null
is "$(jb .spent_cents)" 5 "the cast was charged (5 cents of the \$50 default)"

done_testing
