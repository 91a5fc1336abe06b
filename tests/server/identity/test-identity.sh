#!/bin/bash
# GitHub identity against the stand-in (tests/stand-ins/github.py): the web
# flow (happy path, bad, reused and foreign state, access_denied, GitHub
# down) and the device flow (pending, slow_down, approval through GitHub
# and through a local API key, deny, once only, guessing limited, codes in
# any case), all on the real spell-server.
# shellcheck source=../integration/lib.sh
. "$(dirname "$0")/../integration/lib.sh"

: "${SPELL_STANDINS:?SPELL_STANDINS must name tests/stand-ins}"

python3 "$SPELL_STANDINS/github.py" --port-file "$T/gh.port" --client-id cid \
    --client-secret csecret 2>"$T/gh.log" &
PIDS+=("$!")
for _ in $(seq 1 100); do [ -s "$T/gh.port" ] && break; sleep 0.1; done
GH="http://127.0.0.1:$(cat "$T/gh.port")"
ghctl() { curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "$2" "$GH/_control/$1"; }

srv users add alice >"$T/alice.out" 2>&1
ALICE_KEY=$(grep -o 'sk_live_[A-Za-z0-9_]*' "$T/alice.out" | head -n 1)

export GITHUB_CLIENT_SECRET=csecret
server_start --github-client-id cid --github-url "$GH" --github-api-url "$GH" \
    --frontend-url "http://front.test/app" --rate-ip-per-min 1000 || exit 1

# loc FILE: the Location of a header dump.
loc() { tr -d '\r' <"$1" | sed -n 's/^[Ll]ocation: //p' | head -n 1; }
status() { curl -s -o "$T/page" -D "$T/h" -w '%{http_code}' --max-time 30 "$@"; }

# ---- web flow ----

JAR="$T/jar"
is "$(status -c "$JAR" "$BASE/auth/github")" 302 "GET /auth/github redirects"
AUTH=$(loc "$T/h")
like "$AUTH" "^$GH/login/oauth/authorize\\?client_id=cid&redirect_uri=http%3A%2F%2F127\\.0\\.0\\.1%3A$PORT%2Fauth%2Fgithub%2Fcallback&scope=read%3Auser%20user%3Aemail&state=[A-Za-z0-9]{43}$" \
    "the authorize URL carries client id, callback, scope and state"
like "$(grep -i '^set-cookie: spell_oauth_state=' "$T/h")" "HttpOnly; SameSite=Lax" \
    "the state cookie is HttpOnly and SameSite=Lax"
is "$(status "$AUTH")" 302 "the stand-in approves"
CB=$(loc "$T/h")
is "$(status -b "$JAR" -c "$JAR" "$CB")" 302 "the callback signs in"
is "$(loc "$T/h")" "http://front.test/app" "and lands on FRONTEND_URL"
like "$(grep -i '^set-cookie: spell_session=' "$T/h")" \
    "spell_session=[A-Za-z0-9]{43}; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax" \
    "the session cookie is set"
is "$(status -b "$JAR" "$BASE/v1/auth/me")" 200 "the session cookie authenticates"
is "$(jq -r .login "$T/page")" octocat "as the GitHub login"
STATE=${AUTH##*state=}
is "$(status -H "Cookie: spell_oauth_state=$STATE" "$CB")" 400 "a used state is refused"
like "$(cat "$T/page")" "already used" "with a clear page"
like "$(tr -d '\r' <"$T/h" | grep -i '^content-security-policy')" "default-src 'none'" \
    "pages carry the CSP"

status -c "$JAR.2" "$BASE/auth/github" >/dev/null
AUTH=$(loc "$T/h")
status "$AUTH" >/dev/null
CB=$(loc "$T/h")
is "$(status "$CB")" 400 "a callback without the state cookie is refused"
is "$(status -H "Cookie: spell_oauth_state=AAAA" "$CB")" 400 "a foreign state cookie is refused"

ghctl deny '{"deny": true}'
status -c "$JAR.3" "$BASE/auth/github" >/dev/null
status "$(loc "$T/h")" >/dev/null
is "$(status -b "$JAR.3" "$(loc "$T/h")")" 403 "access_denied gives 403"
like "$(cat "$T/page")" "declined" "with a clear page"
ghctl deny '{"deny": false}'

status -c "$JAR.4" "$BASE/auth/github" >/dev/null
status "$(loc "$T/h")" >/dev/null
CB=$(loc "$T/h")
ghctl down '{"down": true}'
is "$(status -b "$JAR.4" "$CB")" 502 "GitHub down gives 502"
like "$(cat "$T/page")" "GitHub is not answering" "with a clear page"
ghctl down '{"down": false}'
is "$(status "$BASE/healthz")" 200 "the server is still up"

# ---- device flow ----

devstart() { curl -s -X POST -H 'Content-Type: application/json' -d '{}' "$BASE/v1/auth/device"; }
poll() {
    curl -s -o "$T/tok" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d "{\"grant_type\":\"urn:ietf:params:oauth:grant-type:device_code\",\"device_code\":\"$1\"}" \
        "$BASE/v1/auth/token"
}
D=$(devstart)
DC=$(jq -r .device_code <<<"$D")
UC=$(jq -r .user_code <<<"$D")
like "$DC" '^[A-Za-z0-9]{43}$' "device_code is 43 base62 characters"
like "$UC" '^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$' "user_code is XXXX-XXXX"
is "$(jq -r '.verification_uri, .expires_in, .interval' <<<"$D" | tr '\n' ' ')" \
    "$BASE/device 900 5 " "verification_uri, expires_in and interval"
is "$(poll "$DC")" 400 "a first poll is pending"
is "$(jq -r .error "$T/tok")" authorization_pending "authorization_pending"
poll "$DC" >/dev/null
is "$(jq -r '.error, .interval' "$T/tok" | tr '\n' ' ')" "slow_down 10 " \
    "polling too fast is slow_down and the interval grows by 5 s"
is "$(poll AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA)" 400 "an unknown device code"
is "$(jq -r .error "$T/tok")" invalid_grant "is invalid_grant"

is "$(status "$BASE/device?user_code=$UC")" 200 "the /device page"
like "$(cat "$T/page")" "value=\"$UC\"" "fills in the code"
# The person types the code in lower case, without the dash, and signs
# in with GitHub through the stand-in.
LOWER=$(tr 'A-Z' 'a-z' <<<"${UC/-/}")
is "$(status -c "$JAR.5" --data-urlencode "user_code=$LOWER" -d action=github "$BASE/device")" \
    302 "entering the code leads to GitHub"
status "$(loc "$T/h")" >/dev/null
is "$(status -b "$JAR.5" "$(loc "$T/h")")" 200 "the device is approved"
like "$(cat "$T/page")" "return to your terminal" "and the page says so"
sleep 10.5
is "$(poll "$DC")" 200 "the token is handed out"
TOKEN=$(jq -r .access_token "$T/tok")
is "$(jq -r '.token_type, .expires_in' "$T/tok" | tr '\n' ' ')" "Bearer 2592000 " "as a bearer session"
is "$(status -H "Authorization: Bearer $TOKEN" "$BASE/v1/auth/me")" 200 "the token works"
is "$(jq -r .login "$T/page")" octocat "for the GitHub user"
sleep 10.5
is "$(poll "$DC")" 400 "a second poll after success"
is "$(jq -r .error "$T/tok")" invalid_grant "gets invalid_grant"
is "$(status --data-urlencode "user_code=$UC" -d action=deny "$BASE/device")" 400 \
    "a used user code is refused"

# Approval with a local account's API key, and a deny.
D=$(devstart); DC=$(jq -r .device_code <<<"$D"); UC=$(jq -r .user_code <<<"$D")
is "$(status --data-urlencode "user_code=$UC" -d action=key --data-urlencode "api_key=$ALICE_KEY" \
    "$BASE/device")" 200 "a local account approves with its API key"
like "$(cat "$T/page")" "return to your terminal" "the page says so"
if grep -q "$ALICE_KEY" "$T/page" "$T"/server*.log "$T/access.log" 2>/dev/null; then
    fail "the key is never echoed or logged"
else
    pass "the key is never echoed or logged"
fi
is "$(poll "$DC")" 200 "the terminal gets its token"
is "$(status -H "Authorization: Bearer $(jq -r .access_token "$T/tok")" "$BASE/v1/auth/me" \
    && jq -r .login "$T/page")" "200alice" "as alice"

D=$(devstart); DC=$(jq -r .device_code <<<"$D"); UC=$(jq -r .user_code <<<"$D")
is "$(status --data-urlencode "user_code=$UC" -d action=deny "$BASE/device")" 200 "deny"
is "$(poll "$DC")" 400 "after a deny"
is "$(jq -r .error "$T/tok")" access_denied "the terminal reads access_denied"

# Guessing: five wrong codes, then 429 even for a right one.
D=$(devstart); UC=$(jq -r .user_code <<<"$D")
for i in 1 2 3 4 5; do
    status -d "user_code=BBBB-BBB$i" -d action=deny "$BASE/device" >/dev/null
done
is "$(status -d 'user_code=BBBB-BBBB' -d action=deny "$BASE/device")" 429 "the sixth guess is 429"
like "$(tr -d '\r' <"$T/h" | grep -i '^retry-after:')" "[0-9]+" "with Retry-After"
is "$(status --data-urlencode "user_code=$UC" -d action=deny "$BASE/device")" 429 \
    "even a right code waits out the window"

server_stop
done_testing
