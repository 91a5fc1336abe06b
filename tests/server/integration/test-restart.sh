#!/usr/bin/env bash
# Durability and shutdown of the real binary: SIGKILL mid-cast then a
# restart loses no cast and leaves none stuck, and the ledger verifies;
# SIGTERM with an open SSE stream ends the stream and exits 0.
. "$(dirname "$0")/lib.sh"

KEY=$(new_user phoenix)
srv spells import "$SPELL_ASSETS/catalog.json" >/dev/null 2>"$T/err" || {
    fail "the example spells import" "$(head -n 1 "$T/err")"
    done_testing
    exit $?
}
server_start --rate-ip-per-min 1000 --rate-user-per-min 10000
if ! route_exists POST /v1/spells/slow:cast; then
    fail "the cast route is served"
    server_stop
    done_testing
    exit $?
fi

# ---- SIGKILL mid-cast ----
st=$(cast slow '{"steps": 4}')
is "$st" 202 "a slow cast is accepted"
RUN=$(jb .cast_id)
st=$(cast slow '{"steps": 3}')
QUEUED=$(jb .cast_id)
for _ in $(seq 1 100); do
    api GET "/v1/casts/$RUN" >/dev/null
    [ "$(jb .status)" = running ] && [ "$(jb .progress)" != 0 ] && break
    sleep 0.1
done
is "$(jb .status)" running "the cast is running with progress before the kill"
server_stop KILL
is "$STOPPED" 137 "the server is killed"

server_start --rate-ip-per-min 1000 --rate-user-per-min 10000
for id in "$RUN" "$QUEUED"; do
    st=$(wait_cast "$id" 60)
    like "$st" '^(succeeded|failed)$' "after the restart cast $id ends ($st), not stuck"
    if [ "$st" = failed ]; then
        like "$(jb .error.message)" '.' "a cast failed by recovery says why"
    fi
done
curl -sN --max-time 30 -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$RUN/events" >"$T/sse"
ids=$(grep '^id:' "$T/sse" | sed 's/^id: *//' | tr '\n' ' ')
n=$(grep -c '^id:' "$T/sse")
is "$ids" "$(seq -s ' ' 1 "$n") " "the recovered cast's events stay gapless"
is "$(grep '^event:' "$T/sse" | grep -c -E 'cast\.(succeeded|failed|canceled)')" 1 \
    "the recovered cast has exactly one terminal event"
api GET /v1/budgets/usage >/dev/null
is "$(jb .reserved_cents)" 0 "no reservation is left behind"

# ---- SIGTERM with an open stream ----
st=$(cast slow '{"steps": 30}')
LONG=$(jb .cast_id)
curl -sN --max-time 60 -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$LONG/events" \
    >"$T/sse-long" &
CURL=$!
PIDS+=("$CURL")
for _ in $(seq 1 100); do
    grep -q 'cast.started' "$T/sse-long" 2>/dev/null && break
    sleep 0.1
done
like "$(cat "$T/sse-long")" 'cast.started' "the stream is open and flowing"
t0=$(date +%s)
server_stop TERM
t1=$(date +%s)
is "$STOPPED" 0 "SIGTERM with an open stream exits 0"
if [ $((t1 - t0)) -le 20 ]; then pass "the stop did not wait for the spell"; else fail "the stop did not wait for the spell" "$((t1 - t0)) s"; fi
cst=0
wait "$CURL" || cst=$?
like "$cst" '^(0|18)$' "the stream was closed by the server, not by the client's timeout"

out=$(srv ledger verify)
like "$out" '^ledger: [1-9][0-9]* entries checked, OK$' "the ledger verifies after kill and restart"

# The interrupted cast is finished by the next start.
server_start --rate-ip-per-min 1000 --rate-user-per-min 10000
st=$(wait_cast "$LONG" 60)
like "$st" '^(succeeded|failed)$' "a cast interrupted by SIGTERM ends after the next start ($st)"
server_stop
is "$STOPPED" 0 "the last stop is clean"

done_testing
