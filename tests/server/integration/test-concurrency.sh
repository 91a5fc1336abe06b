#!/usr/bin/env bash
# Races against the real binary: 64 concurrent casts against one budget
# never overspend and the ledger verifies afterwards; 32 concurrent
# requests with one Idempotency-Key create exactly one cast.
. "$(dirname "$0")/lib.sh"

KEY=$(new_user racer)
srv spells import "$SPELL_ASSETS/catalog.json" >/dev/null 2>"$T/err" || {
    fail "the example spells import" "$(head -n 1 "$T/err")"
    done_testing
    exit $?
}
server_start --rate-ip-per-min 10000 --rate-user-per-min 100000 --rate-casts-per-hour 100000 \
    --access-log off
if ! route_exists POST /v1/spells/echo:cast; then
    fail "the cast route is served"
    server_stop
    done_testing
    exit $?
fi

# A $10 budget; each uppercase cast of ~50 KiB is estimated at 50 cents,
# so at most 20 can ever hold a reservation or a charge.
st=$(api PUT /v1/budgets --data-binary '{"hard_limit_cents": 1000}')
like "$st" '^20[01]$' "the budget is \$10"
big=$(head -c 50000 /dev/zero | tr '\0' 'c')
printf '{"inputs": {"text": "%s"}}' "$big" >"$T/big.json"
mkdir -p "$T/race"
for i in $(seq 1 64); do
    curl -s -o "$T/race/$i.body" -w '%{http_code}\n' --max-time 120 -X POST \
        -H "Authorization: Bearer $KEY" -H "Idempotency-Key: race-$i" \
        --data-binary @"$T/big.json" "$BASE/v1/spells/uppercase:cast" >"$T/race/$i.code" &
done
wait_all() {
    local p
    for p in $(jobs -p); do
        [ "$p" = "$SERVER_PID" ] || wait "$p" 2>/dev/null || true
    done
}
wait_all
accepted=$(cat "$T"/race/*.code | grep -c '^202$' || true)
refused=$(cat "$T"/race/*.code | grep -c '^402$' || true)
is "$((accepted + refused))" 64 "every racing cast is answered 202 or 402"
if [ "$accepted" -ge 1 ] && [ "$accepted" -le 20 ]; then
    pass "between 1 and 20 casts were accepted ($accepted)"
else
    fail "between 1 and 20 casts were accepted" "accepted: $accepted"
fi
est=$(cat "$T"/race/*.body | jq -s '[.[] | select(.cast_id) | .estimated_cost_cents] | add // 0')
if [ "$est" -le 1000 ]; then pass "the accepted estimates fit the budget ($est)"; else fail "the accepted estimates fit the budget" "$est"; fi

for f in "$T"/race/*.body; do
    id=$(jq -r '.cast_id // empty' "$f")
    [ -n "$id" ] && wait_cast "$id" 60 >/dev/null
done
api GET /v1/budgets/usage >/dev/null
spent=$(jb .spent_cents)
reserved=$(jb .reserved_cents)
is "$reserved" 0 "nothing stays reserved once the casts finished"
if [ "$spent" -le 1000 ]; then pass "spent ($spent) never passes the hard limit"; else fail "spent never passes the hard limit" "$spent"; fi
is "$(jb .calls)" "$accepted" "usage counts the accepted casts"

# ---- one Idempotency-Key, 32 requests at once ----
before=$(api GET '/v1/casts?limit=100' >/dev/null; jb '.casts | length')
mkdir -p "$T/idem"
for i in $(seq 1 32); do
    curl -s -o "$T/idem/$i.body" -w '%{http_code}\n' --max-time 60 -X POST \
        -H "Authorization: Bearer $KEY" -H "Idempotency-Key: the-one-key" \
        --data-binary '{"inputs": {"message": "once"}}' "$BASE/v1/spells/echo:cast" \
        >"$T/idem/$i.code" &
done
wait_all
codes=$(cat "$T"/idem/*.code | sort | uniq -c | awk '{print $2}' | tr '\n' ' ')
like "$codes" '^(202 )?(409 )?$' "every request is 202 or 409 IDEMPOTENCY_IN_PROGRESS"
ids=$(cat "$T"/idem/*.body | jq -r '.cast_id // empty' | sort -u)
is "$(printf '%s\n' "$ids" | grep -c .)" 1 "all the 202s name one cast"
after=$(api GET '/v1/casts?limit=100' >/dev/null; jb '.casts | length')
is "$((after - before))" 1 "exactly one cast was created"
conflict=$(cat "$T"/idem/*.body | jq -r '.error.code // empty' | sort -u | tr '\n' ' ')
like "$conflict" '^(IDEMPOTENCY_IN_PROGRESS )?$' "the others say IDEMPOTENCY_IN_PROGRESS"

server_stop
is "$STOPPED" 0 "the server stops cleanly"
out=$(srv ledger verify)
like "$out" '^ledger: [1-9][0-9]* entries checked, OK$' "the ledger verifies after the race"

# Tampering is caught: edit one amount and verify again.
if command -v sqlite3 >/dev/null; then
    cp "$DB" "$T/tampered.db"
    rm -f "$T/tampered.db-wal" "$T/tampered.db-shm"
    tbl=$(sqlite3 "$T/tampered.db" "select name from sqlite_master where type='table' and name like '%ledger%' and sql like '%amount_cents%' limit 1")
    if [ -n "$tbl" ]; then
        sqlite3 "$T/tampered.db" "update $tbl set amount_cents = amount_cents + 1 where seq = 2"
        st=0
        out=$("$SPELL_SERVER" ledger verify --db "$T/tampered.db") || st=$?
        is "$st" 1 "a tampered ledger fails verification"
        like "$out" 'seq 2 ' "the first bad seq is named"
    else
        skip "tampering" "no ledger table found"
    fi
else
    skip "tampering" "no sqlite3 command"
fi

done_testing
