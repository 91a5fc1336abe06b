#!/usr/bin/env bash
# A cast through the agent, end to end with the real parts: `spell cast
# slow --wait` shows live progress and ends 0, an events.subscribe client
# sees every step once and in order, and dunst shows a notification naming
# the spell, the cost and the duration.  Then a cast over its budget cap:
# the server's 402 comes back as a clear message and exit 4 from the CLI,
# a rejected local cast with the server's code, and a critical
# notification.
. "$(dirname "$0")/harness.sh"

h_need dbus-daemon dbus-send gnome-keyring-daemon Xvfb dunst dunstctl jq curl perl
h_begin cast
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_desktop_all
check "the agent starts" h_agent
out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
check "signed in through the agent" test "$(jq -r .account <<<"$out")" = tester
check "agent.status says notifications are on" \
    test "$(h_call agent.status | jq -r .notifications)" = true

# A subscriber that records every event until the slow cast ends.
sub() {    # sub FILE REGEX: a background subscriber printing to FILE
    perl "$H_DIR/rpc.pl" --socket "$H_SOCK" --timeout 120 --until "$2" \
        '{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{}}' >"$1" 2>&1 &
    h_track subscriber $!
    h_wait_for 50 grep -q '"subscribed"' "$1"
}
check "events.subscribe answers subscribed" sub "$H_TMP/events.slow" '"kind":"cast\.(succeeded|failed|canceled|rejected)"'

# Each line of the command's output with the seconds since it started.
stamp() {
    perl -MTime::HiRes=time -e '$| = 1; my $t0 = time; while (<STDIN>) { printf "%.3f %s", time - $t0, $_ }'
}

if h_have_cli; then
    ( h_cli cast slow -i steps=3 --wait 2>&1; echo "exit $?" ) | stamp >"$H_TMP/cli.slow"
    sed 's/^/#   spell cast: /' "$H_TMP/cli.slow"
    check "spell cast slow --wait exits 0" grep -q ' exit 0$' "$H_TMP/cli.slow"
    check "  and shows the progress messages (step 1..3 of 3)" \
        test "$(grep -c 'step [123] of 3' "$H_TMP/cli.slow")" -ge 3
    first=$(grep -m 1 'step 1 of 3' "$H_TMP/cli.slow" | cut -d' ' -f1)
    last=$(tail -n 1 "$H_TMP/cli.slow" | cut -d' ' -f1)
    check "  live: step 1 shown at least 1.5 s before the end (${first:-never} s vs $last s)" \
        awk -v a="${first:-1e9}" -v b="$last" 'BEGIN { exit !(b - a >= 1.5) }'
    local_id=$(h_call cast.list '{"limit":1}' | jq -r '.casts[0].local_id')
else
    for d in "spell cast slow --wait exits 0" "  and shows the progress messages" "  live"; do
        skip "$d" "the spell command line is not built yet"
    done
    local_id=$(h_call cast.submit '{"spell":"slow","inputs":{"steps":3}}' | jq -r .local_id)
    H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$local_id\",\"timeout_ms\":30000}" >/dev/null
fi

h_wait_for 100 grep -q '"kind":"cast.succeeded"' "$H_TMP/events.slow"
c=$(h_call cast.get "{\"local_id\":\"$local_id\"}")
cast_id=$(jq -r .cast_id <<<"$c")
check "the local cast ended succeeded, final, with its cost and duration" \
    test "$(jq -r '"\(.state) \(.final) \(.cost_cents) \(.duration_ms > 0)"' <<<"$c")" = "succeeded true 1 true"
ev=$(jq -c --arg id "$local_id" 'select(.method == "event" and .params.cast.local_id == $id) | .params' \
    "$H_TMP/events.slow")
kinds=$(jq -r .kind <<<"$ev" | tr '\n' ' ')
h_log "events: $kinds"
check "the subscriber saw queued, accepted, started, succeeded in that order" \
    awk -v k="$kinds" 'BEGIN { exit !(k ~ /cast\.queued .*cast\.accepted .*cast\.started .*cast\.succeeded $/) }'
steps=$(jq -r 'select(.kind == "cast.progress") | .cast.message' <<<"$ev" | grep '^step' | tr '\n' '|')
check "  and every step once, in order ($steps)" test "$steps" = "step 1 of 3|step 2 of 3|step 3 of 3|"
srv=$(h_api_events "$cast_id" | jq -r 'select(.event == "cast.progress") | .data.message' | tr '\n' '|')
check "  the same progress the server stored ($srv)" test "$steps" = "$srv"

notes=$(h_notifications)
h_log "notifications: $(tr '\n' ' ' <<<"$notes")"
note=$(jq -c 'select((.summary + " " + .body) | test("slow"; "i"))' <<<"$notes" | head -n 1)
check "dunst showed a notification naming the spell" test -n "$note"
text=$(jq -r '.summary + " " + .body' <<<"${note:-{\}}" 2>/dev/null)
check "  with the cost (1 cent)" grep -Eq '\$0\.01|1 ?¢|1 cent' <<<"$text"
check "  and the duration" grep -Eq '[0-9]+(\.[0-9]+)? ?(ms|s|sec|seconds)\b|[0-9]+m ?[0-9]+s' <<<"$text"
check "  not critical" test "$(jq -r .critical <<<"${note:-{\}}")" = false
check "  and only one for that cast" test "$(jq -c 'select((.summary + " " + .body) | test("slow"; "i"))' <<<"$notes" | wc -l)" = 1

# ---- a failing cast, --json ----

if h_have_cli; then
    out=$(h_cli cast fail --wait --json 2>/dev/null)
    rc=$?
    check "spell cast fail --wait exits 3 (got $rc)" test "$rc" = 3
    check "  --json prints the finished cast: failed, final" \
        test "$(jq -r '"\(.spell) \(.state) \(.final)"' <<<"$out" 2>/dev/null)" = "fail failed true"
    out=$(h_cli cast echo -i message=hi --wait --json 2>/dev/null)
    rc=$?
    check "spell cast echo --wait --json exits 0 and prints it succeeded" \
        test "$rc $(jq -r .state <<<"$out" 2>/dev/null)" = "0 succeeded"
else
    lid=$(h_call cast.submit '{"spell":"fail","inputs":{}}' | jq -r .local_id)
    H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}" >/dev/null
    for d in "spell cast fail --wait exits 3" "  --json prints the finished cast" "spell cast echo --wait --json"; do
        skip "$d" "no CLI"
    done
fi
h_wait_for 50 eval 'h_notifications | jq -e "select(.summary | startswith(\"fail \"))" >/dev/null'
note=$(h_notifications | jq -c 'select(.summary | startswith("fail "))' | head -n 1)
h_log "failure: $note"
check "the failure raised a critical notification naming the spell" \
    test "$(jq -r '"\(.summary) \(.critical)"' <<<"${note:-{\}}")" = "fail failed true"
check "  saying nothing was charged, with the duration" \
    grep -Eq '(Nothing charged|\$0\.00).*[0-9]+(\.[0-9]+)? s' <<<"$(jq -r .body <<<"${note:-{\}}")"

# ---- the soft limit ----
#
# A soft limit of 1 cent: the next settled cast (wordcount, 5 cents) passes
# it, the server appends budget.soft_limit to that cast's stream, and the
# agent relays it and raises a critical notification.

set_budget=$(h_api PUT /v1/budgets '{"hard_limit_cents":5000,"soft_limit_cents":1}')
check "the soft limit is set to 1 cent" test "$(jq -r .soft_limit_cents <<<"$set_budget")" = 1
sub "$H_TMP/events.soft" '"kind":"budget\.soft_limit"'
lid=$(h_call cast.submit '{"spell":"wordcount","inputs":{"text":"one two three"}}' | jq -r .local_id)
c=$(H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}")
check "the wordcount cast succeeds and costs 5 cents" \
    test "$(jq -r '"\(.state) \(.cost_cents)"' <<<"$c")" = "succeeded 5"
h_wait_for 100 grep -q '"kind":"budget.soft_limit"' "$H_TMP/events.soft"
check "the subscriber got budget.soft_limit for that cast" \
    test "$(jq -r --arg id "$lid" 'select(.params.kind == "budget.soft_limit") | .params.cast.local_id' \
        "$H_TMP/events.soft" 2>/dev/null | head -n 1)" = "$lid"
h_wait_for 50 eval 'h_notifications | jq -e "select(.summary + .body | test(\"soft limit\"; \"i\"))" >/dev/null'
note=$(h_notifications | jq -c 'select(.summary + .body | test("soft limit"; "i"))' | head -n 1)
h_log "soft limit: $note"
check "a critical notification says the soft limit was reached" test "$(jq -r .critical <<<"${note:-{\}}")" = true
h_api DELETE /v1/budgets >/dev/null

# ---- 402 from the server ----
#
# "pricey" (spells/catalog.json here) costs $60, above the default hard
# limit of $50, so the server refuses it with 402 BUDGET_EXCEEDED; no cap
# is given, so the command line has nothing to refuse by itself.

if h_have_cli; then
    out=$(h_cli cast pricey --wait 2>&1)
    rc=$?
    sed 's/^/#   spell cast: /' <<<"$out"
    check "spell cast refused by the server's 402 exits 4 (got $rc)" test "$rc" = 4
    check "  with a clear message about the budget" grep -Eiq 'budget|limit' <<<"$out"
    rej=$(h_call cast.list '{"limit":1}' | jq -c '.casts[0]')
else
    skip "spell cast refused by the server's 402 exits 4" "no CLI"
    skip "  with a clear message about the budget" "no CLI"
    lid=$(h_call cast.submit '{"spell":"pricey","inputs":{}}' | jq -r .local_id)
    rej=$(H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}")
fi
check "the local cast is rejected with the server's code and status ($(jq -c .error <<<"$rej"))" \
    test "$(jq -r '"\(.spell) \(.state) \(.error.code) \(.error.status) \(.cast_id)"' <<<"$rej")" = \
    "pricey rejected BUDGET_EXCEEDED 402 null"
check "  and the server's words" test -n "$(jq -r '.error.message // empty' <<<"$rej")"
check "the server holds no pricey cast" \
    test "$(h_api_all_casts | jq -r 'select(.spell_key == "pricey") | .id' | wc -l)" = 0
h_wait_for 50 eval 'h_notifications | jq -e "select(.critical and (.summary | startswith(\"pricey\")))" >/dev/null'
crit=$(h_notifications | jq -c 'select(.critical and (.summary | startswith("pricey")))')
h_log "critical: $crit"
check "a critical notification was shown" test -n "$crit"
check "  naming the spell and the budget" \
    grep -Eiq 'pricey.*(budget|limit)|(budget|limit).*pricey' <<<"$(jq -r '.summary + " " + .body' <<<"$crit")"
check "  and only one" test "$(grep -c . <<<"$crit")" = 1

# The command line's own check: a cap below the estimate is refused before
# anything is sent, with the same exit status.
if h_have_cli; then
    out=$(h_cli cast wordcount -i text=hello --budget-cap 1 --wait 2>&1)
    rc=$?
    sed 's/^/#   spell cast: /' <<<"$out"
    check "spell cast with --budget-cap under the estimate exits 4 (got $rc)" test "$rc" = 4
    check "  naming the estimate and the cap" grep -Eq '0\.05' <<<"$out"
else
    skip "spell cast with --budget-cap under the estimate exits 4" "no CLI"
    skip "  naming the estimate and the cap" "no CLI"
fi
lid=$(h_call cast.submit '{"spell":"wordcount","inputs":{"text":"hello"},"budget_cap_cents":1}' | jq -r .local_id)
rej=$(H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}")
check "cast.submit with a cap under the estimate: rejected by the server's 402" \
    test "$(jq -r '"\(.state) \(.error.code) \(.error.status) \(.cast_id)"' <<<"$rej")" = \
    "rejected BUDGET_EXCEEDED 402 null"
check "the server holds only the soft-limit case's wordcount cast" \
    test "$(h_api_all_casts | jq -r 'select(.spell_key == "wordcount") | .id' | wc -l)" = 1

h_done
