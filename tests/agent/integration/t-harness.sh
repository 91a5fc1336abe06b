#!/usr/bin/env bash
# The harness itself, before any agent case relies on it: the private
# session bus, gnome-keyring's Secret Service (secret-tool store, lookup,
# search, clear), dunst under Xvfb (notify-send, then the history read
# back, critical ones marked), and the real spell-server (a user, the
# example spells, a cast to completion with its events).
. "$(dirname "$0")/harness.sh"

h_need dbus-daemon dbus-send gnome-keyring-daemon secret-tool Xvfb dunst dunstctl notify-send jq curl
h_begin harness

check "a private session bus starts" h_bus
check "gnome-keyring-daemon serves the Secret Service, unlocked" h_keyring

printf 'sk_live_harness' | timeout 10 secret-tool store --label='harness check' \
    xdg:schema io.spell.Credential server http://127.0.0.1:1 account harness
check "secret-tool stores an io.spell.Credential item" test $? = 0
got=$(timeout 10 secret-tool lookup xdg:schema io.spell.Credential server http://127.0.0.1:1)
check "secret-tool looks it up again" test "$got" = sk_live_harness
items=$(h_keyring_items)
check "the search shows its attributes" grep -q 'attribute.account = harness' <<<"$items"
timeout 10 secret-tool clear xdg:schema io.spell.Credential server http://127.0.0.1:1
check "and clear removes it" test -z "$(h_keyring_items | grep 'attribute.account')"
check "the keyring's files stay in the temp dir" test -d "$XDG_DATA_HOME/keyrings"

check "Xvfb starts on a free display" h_display
check "dunst starts with the private dunstrc" h_dunst
notify-send -a spell-harness -u normal "Harness normal" "cost 5 cents"
notify-send -a spell-harness -u critical "Harness critical" "budget exceeded"
hist=$(h_notifications)
n=$(jq -s 'length' <<<"$hist")
check "dunst's history holds both notifications (got $n)" test "$n" = 2
check "the normal one, with its body, not marked critical" \
    test "$(jq -r 'select(.summary == "Harness normal") | "\(.body)|\(.critical)|\(.app)"' <<<"$hist")" = \
    "cost 5 cents|false|spell-harness"
check "the critical one, marked critical" \
    test "$(jq -r 'select(.summary == "Harness critical") | .critical' <<<"$hist")" = true
ts=$(jq -r 'select(.summary == "Harness normal") | .ts_us' <<<"$hist")
up=$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime)
check "dunst's timestamps are CLOCK_MONOTONIC microseconds ($ts vs $up)" \
    test "$ts" -gt 0 -a "$ts" -le "$up" -a $((up - ts)) -lt 60000000

if [ -z "$H_SERVER_BIN" ] || [ ! -x "$H_SERVER_BIN" ]; then
    skip "spell-server starts" "no spell-server binary"
else
    check "spell-server starts on 127.0.0.1 with a temp db" h_server
    check "the test user's key authenticates" test "$(h_api GET /v1/auth/me | jq -r .login)" = tester
    check "the example spells are imported" \
        test "$(h_api GET /v1/spells | jq '[.spells[].key] | index("echo") != null')" = true
    cast=$(curl -sS -X POST -H "Authorization: Bearer $H_KEY" -H 'Idempotency-Key: harness-1' \
        -d '{"inputs":{"message":"hi"}}' "$SPELL_API_URL/v1/spells/echo:cast" | jq -r .cast_id)
    check "an echo cast is accepted ($cast)" grep -q '^cst_' <<<"$cast"
    h_wait_for 100 eval 'test "$(h_api GET /v1/casts/$cast | jq -r .status)" = succeeded'
    check "and succeeds" test "$(h_api GET "/v1/casts/$cast" | jq -r .status)" = succeeded
    check "its events end with cast.succeeded" \
        test "$(h_api_events "$cast" | tail -n 1 | jq -r .event)" = cast.succeeded
    check "paging GET /v1/casts finds it" test "$(h_api_all_casts | jq -r .id)" = "$cast"
fi

h_done
