#!/usr/bin/env bash
# Accounts through the real binary: `users add`, authentication with API
# keys (good, malformed, unknown, revoked), /v1/auth/me, /v1/keys, logout,
# and the rate limits with their RateLimit-Policy / RateLimit / Retry-After
# header fields (the server started with low limits by flag).
. "$(dirname "$0")/lib.sh"

# ---- users add ----
st=0
srv users add alice --role admin >"$T/key" 2>"$T/err" || st=$?
is "$st" 0 "users add exits 0"
KEY=$(cat "$T/key")
like "$KEY" '^sk_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{38}$' "users add prints one API key"
is "$(wc -l <"$T/key" | tr -d ' ')" 1 "stdout holds the key and nothing else"
like "$(cat "$T/err")" 'not shown again' "stderr says the key is shown once"
if grep -q "${KEY:-none}" "$T/err"; then fail "the key is not on stderr"; else pass "the key is not on stderr"; fi

st=0
srv users add alice >/dev/null 2>"$T/err" || st=$?
is "$st" 1 "a taken login exits 1"
like "$(cat "$T/err")" "taken" "a taken login is reported"
st=0
srv users add bob --role emperor >/dev/null 2>"$T/err" || st=$?
is "$st" 2 "an unknown role exits 2"
st=0
srv users add 'bad login!' >/dev/null 2>"$T/err" || st=$?
is "$st" 2 "an invalid login exits 2"
BOB=$(new_user bob)
like "$BOB" '^sk_live_' "a second user (caster by default)"

server_start --rate-ip-per-min 1000 --rate-user-per-min 1000
if ! route_exists GET /v1/auth/me; then
    fail "the auth routes are served"
    server_stop
    done_testing
    exit $?
fi

# ---- who am I ----
st=$(api GET /v1/auth/me)
is "$st" 200 "GET /v1/auth/me with the key"
is "$(jb .login)" alice "me: login"
is "$(jb .role)" admin "me: role"
like "$(jb .id)" '.' "me: id"
like "$(jb .created_at)" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "me: created_at is RFC 3339"

st=$(anon GET /v1/auth/me)
is "$st" 401 "no credentials: 401"
is "$(jb .error.code)" UNAUTHORIZED "no credentials: UNAUTHORIZED"
like "$(header WWW-Authenticate)" '^Bearer' "401 carries WWW-Authenticate: Bearer"

for bad in "sk_live_nope" "sk_live_AAAAAAAA_$(head -c 38 /dev/zero | tr '\0' 'A')" \
           "$(mistyped_key "$KEY")" "Basic Zm9vOmJhcg==" "$(head -c 300 /dev/zero | tr '\0' 'k')"; do
    st=$(anon GET /v1/auth/me -H "Authorization: Bearer $bad")
    is "$st" 401 "a bad key is 401 (${bad:0:20}...)"
done
st=$(anon GET /v1/auth/me -H "Authorization: Basic Zm9vOmJhcg==")
is "$st" 401 "Basic auth is 401"

# ---- keys ----
st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary '{"name":"laptop"}')
is "$st" 201 "POST /v1/keys creates a key"
NEWKEY=$(jb .key)
PREFIX=$(jb .prefix)
like "$NEWKEY" '^sk_live_' "the new key is shown once"
is "$(jb .name)" laptop "the new key has its name"
like "$NEWKEY" "^sk_live_${PREFIX}_" "the prefix is the key's"

st=$(api GET /v1/keys)
is "$st" 200 "GET /v1/keys"
is "$(jb '[.keys[] | select(.prefix == "'"$PREFIX"'")] | length')" 1 "the list has the new key"
if grep -q "${NEWKEY#sk_live_*_}" "$T/body"; then fail "the list shows no secret"; else pass "the list shows no secret"; fi
is "$(jb '[.keys[] | has("hash")] | any')" false "the list shows no hash"

st=$(anon GET /v1/auth/me -H "Authorization: Bearer $NEWKEY")
is "$st" 200 "the new key works"

st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary '{"name":""}')
is "$st" 400 "an empty key name is 400"
is "$(jb .error.code)" VALIDATION_ERROR "an empty key name is VALIDATION_ERROR"
st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary '{"name":42}')
is "$st" 400 "a key name of the wrong type is 400"
st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary '{"name":')
is "$st" 400 "a malformed key request is 400"

# Bob cannot revoke Alice's key.
st=$(anon DELETE "/v1/keys/$PREFIX" -H "Authorization: Bearer $BOB")
like "$st" '^(404|403)$' "another user's key cannot be revoked"

st=$(api DELETE "/v1/keys/$PREFIX")
is "$st" 204 "DELETE /v1/keys/{prefix} revokes"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer $NEWKEY")
is "$st" 401 "a revoked key is 401 at once"
st=$(api DELETE "/v1/keys/$PREFIX")
is "$st" 404 "revoking twice is 404"
st=$(api DELETE "/v1/keys/zzzzzzzz")
is "$st" 404 "revoking an unknown prefix is 404"

st=$(api GET /v1/auth/me -X POST)
is "$st" 405 "a wrong method on /v1/auth/me is 405"

server_stop
is "$STOPPED" 0 "the server stops cleanly"

# ---- rate limits ----
server_start --rate-ip-per-min 3 --rate-user-per-min 5
codes=""
for i in 1 2 3 4 5 6; do
    codes="$codes $(api GET /v1/auth/me)"
done
is "$codes" " 200 200 200 200 200 429" "the sixth request of a user in a minute is 429"
is "$(jb .error.code)" RATE_LIMITED "429 says RATE_LIMITED"
like "$(header Retry-After)" '^[0-9]+$' "429 carries Retry-After"
like "$(header RateLimit-Policy)" '^"[a-z]+";q=5;w=60' "429 carries RateLimit-Policy"
like "$(header RateLimit)" '^"[a-z]+";r=0;t=[0-9]+' "429 carries RateLimit"

codes=""
for i in 1 2 3 4; do
    codes="$codes $(anon GET /v1/spells/nope/meta)"
    [ "$i" = 1 ] && first_code=$(jb .error.code)
done
if [ "$first_code" = NOT_FOUND ]; then
    fail "the public spell routes are served"
else
    is "$codes" " 404 404 404 429" "the fourth unauthenticated request of an IP is 429"
    like "$(header RateLimit-Policy)" '^"[a-z]+";q=3;w=60' "the per-IP policy is announced"
fi

codes=""
for i in 1 2 3 4 5 6; do codes="$codes $(anon GET /healthz)"; done
is "$codes" " 200 200 200 200 200 200" "/healthz is outside the per-IP limit"

server_stop
is "$STOPPED" 0 "the server stops cleanly after rate limiting"

# ---- guessing keys from one address ----
# Failed credentials count against the per-IP limit (3 here); past it they
# are 429, while valid keys from the same address still pass.
server_start --rate-ip-per-min 3 --rate-user-per-min 1000
codes=""
for i in 1 2 3 4 5; do codes="$codes $(api GET /v1/auth/me)"; done
is "$codes" " 200 200 200 200 200" "valid keys are not counted against the address"
codes="$(anon GET /v1/auth/me)"
codes="$codes $(anon GET /v1/auth/me -H "Authorization: Bearer $(mistyped_key "$KEY")")"
codes="$codes $(anon GET /v1/auth/me -H "Authorization: Bearer $NEWKEY")"
is "$codes" "401 401 401" "no key, a bad check character, a revoked key: 401 each"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer 0123456789012345678901234567890123456789012")
is "$st" 429 "the fourth failure from the address is 429"
is "$(jb .error.code)" RATE_LIMITED "it says RATE_LIMITED"
like "$(header Retry-After)" '^[1-9][0-9]*$' "it carries Retry-After"
is "$(header RateLimit-Policy)" '"ip";q=3;w=60' "it names the per-IP policy"
like "$(header RateLimit)" '^"ip";r=0;t=[0-9]+$' "it carries RateLimit"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer sk_live_AAAAAAAA_$(head -c 38 /dev/zero | tr '\0' 'A')")
is "$st" 429 "an unknown key past the limit is 429"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer $NEWKEY")
is "$st" 429 "a revoked key past the limit is 429"
st=$(anon GET /v1/spells/echo/meta)
is "$st" 429 "public routes share the address's count"
st=$(api GET /v1/auth/me)
is "$st" 200 "a valid key from that address still passes"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer $BOB")
is "$st" 200 "a key not yet seen by this process still passes"
is "$(jb .login)" bob "and is bob's"
server_stop
is "$STOPPED" 0 "the server stops cleanly after the guessing"

done_testing
