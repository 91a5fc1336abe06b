#!/usr/bin/env bash
# Spells, casts, budgets, usage and privacy through the real binary:
# `spells import` of the example catalog, the catalog endpoints, a cast of
# every example spell to its end with progress on the SSE stream, SSE
# resume with Last-Event-ID, cancel, idempotency (replay, 422, required),
# body errors (malformed JSON, wrong types, bad UTF-8, 413), schema errors
# naming the field, budgets (range, soft <= hard), 402 on a cap or a
# budget, cursor paging, export and erasure, and `ledger verify`.
. "$(dirname "$0")/lib.sh"

KEY=$(new_user carol)
OTHER=$(new_user dave)

# ---- import ----
st=0
out=$(srv spells import "$SPELL_ASSETS/catalog.json" 2>"$T/err") || st=$?
is "$st" 0 "spells import exits 0"
is "$out" "$SPELL_ASSETS/catalog.json: 5 spells imported" "spells import counts the spells"
out=$(srv spells import "$SPELL_ASSETS/echo.json" 2>&1)
like "$out" "1 spell imported" "importing one manifest again replaces it"
printf '{"key": "broken", "name": "x"' >"$T/broken.json"
st=0
srv spells import "$T/broken.json" 2>"$T/err" >/dev/null || st=$?
is "$st" 1 "a malformed manifest exits 1"
like "$(cat "$T/err")" "broken.json" "a malformed manifest is named"
printf '[{"key": "bad", "name": "Bad", "version": "1", "status": "published", "execution_mode": "service", "pricing_model": "flat", "pricing": {"flat_cents": -1}}]' >"$T/bad.json"
st=0
srv spells import "$T/bad.json" 2>"$T/err" >/dev/null || st=$?
is "$st" 1 "an invalid spell exits 1"
like "$(cat "$T/err")" "flat_cents" "an invalid spell names the field"
st=0
srv spells import "$T/nope.json" 2>"$T/err" >/dev/null || st=$?
is "$st" 1 "a missing file exits 1"

server_start --rate-ip-per-min 1000 --rate-user-per-min 10000 --rate-casts-per-hour 10000
if ! route_exists GET /v1/spells; then
    fail "the api routes are served"
    server_stop
    done_testing
    exit $?
fi

# ---- catalog ----
st=$(api GET /v1/spells)
is "$st" 200 "GET /v1/spells"
is "$(jb '[.spells[].key] | sort | join(",")')" "echo,fail,slow,uppercase,wordcount" \
    "the catalog has the five example spells"
st=$(api GET /v1/spells/wordcount)
is "$st" 200 "GET /v1/spells/{key}"
is "$(jb .pricing_model)" flat "spell: pricing_model"
is "$(jb .pricing.flat_cents)" 5 "spell: pricing"
is "$(jb .inputs_schema.required[0])" text "spell: inputs_schema"
st=$(api GET /v1/spells/nope)
is "$st" 404 "an unknown spell is 404"
is "$(jb .error.code)" SPELL_NOT_FOUND "an unknown spell is SPELL_NOT_FOUND"
st=$(anon GET /v1/spells)
is "$st" 401 "the catalog needs a key"
st=$(anon GET /v1/spells/echo/meta)
is "$st" 200 "GET /v1/spells/{key}/meta is public"
is "$(jb .key)" echo "meta: key"
st=$(anon GET /spells/echo/og)
is "$st" 200 "GET /spells/{key}/og is public"
like "$(header Content-Type)" '^text/html' "og is HTML"
like "$(body)" '<meta property="og:title" content="Echo"' "og has og:title"
like "$(body)" '<link rel="canonical" href="http://127.0.0.1:'"$PORT"'/spells/echo(/og)?"' \
    "og has the canonical link"
st=$(anon GET /spells/nope/og)
is "$st" 404 "og of an unknown spell is 404"

# ---- a cast to the end, with progress on the stream ----
st=$(cast wordcount '{"text": "the quick brown fox jumps"}')
is "$st" 202 "a cast is accepted with 202"
ID=$(jb .cast_id)
like "$ID" '^cst_[0-9A-HJKMNP-TV-Z]{26}$' "the cast id is cst_ and a ULID"
is "$(jb .status)" queued "the cast starts queued"
is "$(jb .estimated_cost_cents)" 5 "the flat estimate"
like "$(jb .budget_remaining_cents)" '^[0-9]+$' "the answer has the remaining budget"
is "$(jb .progress_sse)" "http://127.0.0.1:$PORT/v1/casts/$ID/events" "progress_sse"
like "$(header Location)" "/v1/casts/$ID\$" "Location names the cast"

curl -sN --max-time 60 -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$ID/events" \
    -D "$T/sse-headers" >"$T/sse"
like "$(grep -i '^content-type' "$T/sse-headers")" 'text/event-stream' "the stream is text/event-stream"
types=$(grep '^event:' "$T/sse" | sed 's/^event: *//' | tr '\n' ' ')
like "$types" '^cast.queued cast.started (cast.(progress|log) )+cast.succeeded $' \
    "the stream runs queued, started, progress, succeeded and ends"
ids=$(grep '^id:' "$T/sse" | sed 's/^id: *//' | tr '\n' ' ')
n=$(grep -c '^id:' "$T/sse")
is "$ids" "$(seq -s ' ' 1 "$n") " "event ids are 1..n without a gap"
last=$(grep '^data:' "$T/sse" | tail -n 1 | sed 's/^data: *//')
is "$(jq -r .final <<<"$last")" true "the terminal event says final"
is "$(jq -r .status <<<"$last")" succeeded "the terminal event says succeeded"
is "$(jq -r .cost_cents <<<"$last")" 5 "the terminal event has the cost"
is "$(jq -r .cast_id <<<"$last")" "$ID" "event data names the cast"
first=$(grep '^data:' "$T/sse" | head -n 1 | sed 's/^data: *//')
is "$(jq -r '[has("cast_id"), has("status"), has("progress"), has("message"), has("ts")] | all' <<<"$first")" \
    true "every event has cast_id, status, progress, message, ts"

st=$(api GET "/v1/casts/$ID")
is "$st" 200 "GET /v1/casts/{id}"
is "$(jb .status)" succeeded "the cast succeeded"
is "$(jb .progress)" 100 "a succeeded cast is at 100"
is "$(jb .cost_cents)" 5 "the cast cost 5 cents"
is "$(jb .spell_key)" wordcount "cast: spell_key"
like "$(jb .input_hash)" '^[0-9a-f]{64}$' "cast: input_hash"
like "$(jb .finished_at)" '^[0-9]{4}-' "cast: finished_at"
like "$(jb .duration_ms)" '^[0-9]+$' "cast: duration_ms"

# A reconnect past the end gets 204; from the middle, the rest only.
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $KEY" \
     -H "Last-Event-ID: $n" "$BASE/v1/casts/$ID/events")
is "$st" 204 "a reconnect at the last event gets 204"
curl -sN --max-time 30 -H "Authorization: Bearer $KEY" -H "Last-Event-ID: 2" \
    "$BASE/v1/casts/$ID/events" >"$T/sse2"
is "$(grep '^id:' "$T/sse2" | sed 's/^id: *//' | tr '\n' ' ')" "$(seq -s ' ' 3 "$n") " \
    "Last-Event-ID resumes after the id, nothing twice"
curl -sN --max-time 30 -H "Authorization: Bearer $KEY" \
    "$BASE/v1/casts/$ID/events?last_event_id=1" >"$T/sse3"
is "$(grep -m1 '^id:' "$T/sse3" | sed 's/^id: *//')" 2 "?last_event_id resumes too"

# A stream dropped mid-cast and resumed from its last id: together the two
# connections hold every event exactly once.
st=$(cast slow '{"steps": 6}')
DID=$(jb .cast_id)
curl -sN --max-time 3 -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$DID/events" \
    >"$T/drop1" || true
lastid=$(grep '^id:' "$T/drop1" | tail -n 1 | sed 's/^id: *//')
like "$lastid" '^[0-9]+$' "the dropped stream delivered events before the drop"
if grep -q 'cast.succeeded' "$T/drop1"; then
    skip "resume after a drop" "the cast finished before the drop"
else
    curl -sN --max-time 60 -H "Authorization: Bearer $KEY" -H "Last-Event-ID: $lastid" \
        "$BASE/v1/casts/$DID/events" >"$T/drop2"
    all=$(cat "$T/drop1" "$T/drop2" | grep '^id:' | sed 's/^id: *//' | tr '\n' ' ')
    n2=$(cat "$T/drop1" "$T/drop2" | grep -c '^id:')
    is "$all" "$(seq -s ' ' 1 "$n2") " "the resumed stream continues with nothing lost or doubled"
    is "$(grep '^event:' "$T/drop2" | tail -n 1 | sed 's/^event: *//')" cast.succeeded \
        "the resumed stream ends with the terminal event"
fi

st=$(anon GET "/v1/casts/$ID" -H "Authorization: Bearer $OTHER")
is "$st" 404 "another user's cast is 404"
is "$(jb .error.code)" CAST_NOT_FOUND "another user's cast is CAST_NOT_FOUND"
st=$(api GET /v1/casts/cst_01AAAAAAAAAAAAAAAAAAAAAAAA)
is "$st" 404 "an unknown cast is 404"

# ---- the other example spells ----
st=$(cast echo '{"message": "hello", "count": 3}')
is "$st" 202 "echo: accepted"
is "$(jb .estimated_cost_cents)" 0 "echo: free"
EID=$(jb .cast_id)
is "$(wait_cast "$EID")" succeeded "echo: succeeded"
is "$(jb .cost_cents)" 0 "echo: cost 0"

text=$(head -c 3000 /dev/zero | tr '\0' 'a')
st=$(cast uppercase "{\"text\": \"$text\"}")
is "$st" 202 "uppercase: accepted"
is "$(jb .estimated_cost_cents)" 4 "uppercase: metered 1 + 1 per started KiB of canonical input"
UID_=$(jb .cast_id)
is "$(wait_cast "$UID_")" succeeded "uppercase: succeeded"

st=$(cast fail '{}')
is "$st" 202 "fail: accepted"
FID=$(jb .cast_id)
is "$(wait_cast "$FID")" failed "fail: failed"
like "$(jb .error.code)" '.' "fail: the cast has an error code"
like "$(jb .error.message)" '.' "fail: the cast has an error message"
curl -sN --max-time 30 -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$FID/events" >"$T/ssef"
is "$(grep '^event:' "$T/ssef" | tail -n 1 | sed 's/^event: *//')" cast.failed "fail: the stream ends with cast.failed"

st=$(cast slow '{"steps": 30}')
is "$st" 202 "slow: accepted"
SID=$(jb .cast_id)
for _ in $(seq 1 100); do
    api GET "/v1/casts/$SID" >/dev/null
    [ "$(jb .status)" = running ] && break
    sleep 0.1
done
st=$(api POST "/v1/casts/$SID:cancel")
like "$st" '^20[02]$' "cancel a running cast"
is "$(wait_cast "$SID" 30)" canceled "the cast ends canceled"
st=$(api POST "/v1/casts/$SID:cancel")
like "$st" '^(200|409)$' "cancelling a finished cast changes nothing"
api GET "/v1/casts/$SID" >/dev/null
is "$(jb .status)" canceled "a cancelled cast stays cancelled"

# ---- idempotency ----
k=$(idem)
st=$(api POST /v1/spells/echo:cast -H "Idempotency-Key: $k" --data-binary '{"inputs": {"message": "once"}}')
is "$st" 202 "first request with a key"
C1=$(jb .cast_id)
st=$(api POST /v1/spells/echo:cast -H "Idempotency-Key: $k" --data-binary '{"inputs": {"message": "once"}}')
is "$st" 202 "the same request again replays"
is "$(jb .cast_id)" "$C1" "the replay names the same cast"
is "$(header Idempotent-Replayed)" true "the replay says Idempotent-Replayed: true"
st=$(api POST /v1/spells/echo:cast -H "X-Idempotency-Key: $k" --data-binary '{"inputs": {"message": "once"}}')
is "$(jb .cast_id)" "$C1" "X-Idempotency-Key is the same key"
st=$(api POST /v1/spells/echo:cast -H "Idempotency-Key: $k" --data-binary '{"inputs": {"message": "twice"}}')
is "$st" 422 "the key with another request is 422"
is "$(jb .error.code)" IDEMPOTENCY_KEY_REUSED "422 says IDEMPOTENCY_KEY_REUSED"
st=$(api POST /v1/spells/echo:cast --data-binary '{"inputs": {}}')
is "$st" 400 "a cast without a key is 400"
is "$(jb .error.code)" IDEMPOTENCY_KEY_REQUIRED "400 says IDEMPOTENCY_KEY_REQUIRED"
st=$(api POST /v1/spells/echo:cast -H "Idempotency-Key: $(head -c 300 /dev/zero | tr '\0' 'k')" --data-binary '{"inputs": {}}')
is "$st" 400 "a key of 300 characters is 400"

# ---- bad requests ----
bad() {
    local name=$1 want=$2 code=$3 data=$4
    local st
    st=$(api POST "/v1/spells/${5:-wordcount}:cast" -H "Idempotency-Key: $(idem)" --data-binary "$data")
    is "$st" "$want" "$name is $want"
    is "$(jb .error.code)" "$code" "$name says $code"
}
bad "malformed JSON" 400 VALIDATION_ERROR '{"inputs": {"text": "a"'
bad "a body that is no object" 400 VALIDATION_ERROR '[1, 2]'
bad "inputs of the wrong type" 400 VALIDATION_ERROR '{"inputs": "text"}'
bad "a missing required input" 400 VALIDATION_ERROR '{"inputs": {}}'
like "$(jb .error.details.field)" 'text' "the missing input is named"
bad "an input of the wrong type" 400 VALIDATION_ERROR '{"inputs": {"text": 42}}'
like "$(jb .error.details.field)" 'text' "the wrong-typed input is named"
bad "an integer out of range" 400 VALIDATION_ERROR '{"inputs": {"steps": 0}}' slow
bad "a mode of the wrong type" 400 VALIDATION_ERROR '{"inputs": {"text": "a"}, "mode": 7}'
bad "a negative cap" 400 VALIDATION_ERROR '{"inputs": {"text": "a"}, "budget_cap_cents": -1}'
bad "a duplicate member" 400 VALIDATION_ERROR '{"inputs": {"text": "a", "text": "b"}}'
bad "a NUL escape" 400 VALIDATION_ERROR '{"inputs": {"text": "a\u0000b"}}'
printf '{"inputs": {"text": "\xff\xfe"}}' >"$T/badutf8"
st=$(api POST /v1/spells/wordcount:cast -H "Idempotency-Key: $(idem)" --data-binary @"$T/badutf8")
is "$st" 400 "bad UTF-8 is 400"
printf '{"inputs": {"text": "%s"}}' "$(head -c 70000 /dev/zero | tr '\0' 'a')" >"$T/huge"
st=$(api POST /v1/spells/wordcount:cast -H "Idempotency-Key: $(idem)" --data-binary @"$T/huge")
is "$st" 413 "a body over 64 KiB is 413"
is "$(jb .error.code)" PAYLOAD_TOO_LARGE "413 says PAYLOAD_TOO_LARGE"
st=$(api POST /v1/spells/nope:cast -H "Idempotency-Key: $(idem)" --data-binary '{"inputs": {}}')
is "$st" 404 "casting an unknown spell is 404"
is "$(jb .error.code)" SPELL_NOT_FOUND "casting an unknown spell is SPELL_NOT_FOUND"
st=$(anon POST /v1/spells/echo:cast -H "Idempotency-Key: $(idem)" --data-binary '{"inputs": {}}')
is "$st" 401 "casting without a key is 401"
st=$(api GET /v1/spells/echo:cast)
is "$st" 405 "GET on :cast is 405"

# ---- budget cap and budgets ----
st=$(api POST /v1/spells/wordcount:cast -H "Idempotency-Key: $(idem)" \
     --data-binary '{"inputs": {"text": "a"}, "budget_cap_cents": 4}')
is "$st" 402 "a cap below the estimate is 402"
is "$(jb .error.code)" BUDGET_EXCEEDED "a cap below the estimate is BUDGET_EXCEEDED"
anon GET /metrics >/dev/null
like "$(body)" '# TYPE spell_budget_rejections_total counter' "metrics has the budget rejections"
like "$(body)" 'spell_budget_rejections_total\{code="BUDGET_EXCEEDED",reason="budget_cap"\} 1$' \
    "the cap refusal is counted"
like "$(body)" 'spell_budget_rejections_total\{code="BUDGET_EXCEEDED",reason="hard_limit"\} 0$' \
    "no hard-limit refusal yet"

st=$(api GET /v1/budgets)
is "$st" 200 "GET /v1/budgets"
is "$(jb .hard_limit_cents)" 5000 "the default hard limit is \$50"
st=$(api POST /v1/budgets --data-binary '{"hard_limit_cents": 999}')
is "$st" 400 "a hard limit under \$10 is 400"
st=$(api POST /v1/budgets --data-binary '{"hard_limit_cents": 50001}')
is "$st" 400 "a hard limit over \$500 is 400"
st=$(api POST /v1/budgets --data-binary '{"hard_limit_cents": 2000, "soft_limit_cents": 3000}')
is "$st" 400 "a soft limit over the hard limit is 400"
st=$(api POST /v1/budgets --data-binary '{"hard_limit_cents": "2000"}')
is "$st" 400 "a hard limit of the wrong type is 400"
st=$(api PUT /v1/budgets --data-binary '{"hard_limit_cents": 1000, "soft_limit_cents": 500}')
like "$st" '^20[01]$' "PUT /v1/budgets sets \$10"
api GET /v1/budgets >/dev/null
is "$(jb .hard_limit_cents)" 1000 "the hard limit is \$10"
is "$(jb .soft_limit_cents)" 500 "the soft limit is \$5"

st=$(api GET /v1/budgets/usage)
is "$st" 200 "GET /v1/budgets/usage"
like "$(jb .period)" '^[0-9]{4}-[0-9]{2}$' "usage: period"
like "$(jb .spent_cents)" '^[1-9][0-9]*$' "usage: spent"
is "$(jb '.remaining_cents == (.hard_limit_cents - .spent_cents - .reserved_cents)')" true \
    "usage: remaining = hard - spent - reserved"
like "$(jb '[.by_spell[].spell_key] | join(",")')" 'wordcount' "usage: by_spell"
is "$(jb '.daily | length')" 1 "usage: one day"
st=$(api GET '/v1/budgets/usage?period=2020-01')
is "$st" 200 "usage of another period"
is "$(jb .spent_cents)" 0 "an old period is empty"
st=$(api GET '/v1/budgets/usage?period=2020-13')
is "$st" 400 "a malformed period is 400"

# Fill the budget: casts of 50 cents until it is exceeded.
big=$(head -c 50000 /dev/zero | tr '\0' 'b')
codes=""
for i in $(seq 1 25); do
    st=$(cast uppercase "{\"text\": \"$big\"}")
    codes="$codes$st "
    [ "$st" = 402 ] && break
done
like "$codes" '402 $' "casts past the hard limit are refused with 402"
is "$(jb .error.code)" BUDGET_EXCEEDED "402 says BUDGET_EXCEEDED"
is "$(jb .error.details.hard_limit_cents)" 1000 "402 details: the hard limit"
anon GET /metrics >/dev/null
like "$(body)" 'spell_budget_rejections_total\{code="BUDGET_EXCEEDED",reason="hard_limit"\} 1$' \
    "the hard-limit refusal is counted"
like "$(body)" 'spell_budget_rejections_total\{code="BUDGET_EXCEEDED",reason="budget_cap"\} 1$' \
    "the cap count is unchanged"
st=$(cast echo '{}')
is "$st" 202 "a free spell still runs past the limit"
st=$(api DELETE /v1/budgets)
like "$st" '^20[04]$' "DELETE /v1/budgets"
api GET /v1/budgets >/dev/null
is "$(jb .hard_limit_cents)" 5000 "back to the default"

# ---- list with cursor paging ----
st=$(api GET '/v1/casts?limit=2')
is "$st" 200 "GET /v1/casts"
is "$(jb '.casts | length')" 2 "limit=2 gives two"
cur=$(jb .next_cursor)
like "$cur" '.' "a next_cursor"
first_two=$(jb '[.casts[].id] | join(",")')
st=$(api GET "/v1/casts?limit=2&cursor=$cur")
is "$st" 200 "the next page"
next_two=$(jb '[.casts[].id] | join(",")')
if [ "$first_two" != "$next_two" ] && [ -n "$next_two" ]; then pass "pages do not repeat"; else fail "pages do not repeat" "$first_two / $next_two"; fi
total=0
cur=""
for _ in $(seq 1 50); do
    api GET "/v1/casts?limit=7${cur:+&cursor=$cur}" >/dev/null
    total=$((total + $(jb '.casts | length')))
    cur=$(jb '.next_cursor // ""')
    [ -z "$cur" ] && break
done
api GET '/v1/casts?limit=100' >/dev/null
is "$total" "$(jb '.casts | length')" "paging walks every cast once"
st=$(api GET '/v1/casts?limit=0')
is "$st" 400 "limit=0 is 400"
st=$(api GET '/v1/casts?cursor=%00garbage')
is "$st" 400 "a garbage cursor is 400"
st=$(anon GET /v1/casts -H "Authorization: Bearer $OTHER")
is "$(jb '.casts | length')" 0 "another user sees none of these casts"

# ---- export and erasure ----
st=$(api GET /v1/users/me/export)
is "$st" 200 "GET /v1/users/me/export"
like "$(body)" "$ID" "the export holds the casts"
if grep -q "${KEY#sk_live_*_}" "$T/body"; then fail "the export holds no key secret"; else pass "the export holds no key secret"; fi
server_stop
is "$STOPPED" 0 "the server stops cleanly"
out=$(srv ledger verify)
like "$out" '^ledger: [1-9][0-9]* entries checked, OK$' "the ledger verifies"

server_start --rate-ip-per-min 1000 --rate-user-per-min 10000
st=$(api DELETE /v1/users/me)
like "$st" '^20[04]$' "DELETE /v1/users/me"
st=$(api GET /v1/auth/me)
is "$st" 401 "an erased user's key no longer works"
server_stop
is "$STOPPED" 0 "the server stops cleanly after erasure"
out=$(srv ledger verify)
like "$out" 'OK$' "the ledger verifies after erasure"

done_testing
