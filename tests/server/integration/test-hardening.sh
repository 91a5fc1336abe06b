#!/usr/bin/env bash
# Edges of spell-server through the real binary: /healthz answering 503
# while the database file is moved away, the 64 KiB body cap exactly at
# its boundary, bad UTF-8 in path parameters, the RateLimit fields on
# successful answers, live and expired sessions, an access log without
# secrets, idle connections closed after --idle-timeout, and --help against the man page and docs/operations.md (every
# flag and its variable).
. "$(dirname "$0")/lib.sh"

DOCS=$(cd "$SPELL_ASSETS/../../docs" && pwd)

KEY=$(new_user erin)
srv spells import "$SPELL_ASSETS/catalog.json" >/dev/null 2>>"$T/cli.log"
# Sessions come from login flows this build does not have yet; plant two
# in the database as such a flow would (SHA-256 hex of the token), one
# live and one expired, to see the binary honour the expiry.
LIVE_TOK=LiveSession0123456789abcdefghijklmnopqrstuv
OLD_TOK=OldSession0123456789abcdefghijklmnopqrstuvw
python3 - "$DB" "$LIVE_TOK" "$OLD_TOK" <<'PY'
import hashlib, sqlite3, sys, time
db, live, old = sys.argv[1:4]
now = int(time.time() * 1000)
c = sqlite3.connect(db)
uid = c.execute("SELECT id FROM users WHERE login = 'erin'").fetchone()[0]
for tok, exp in ((live, now + 3600 * 1000), (old, now - 1000)):
    h = hashlib.sha256(tok.encode()).hexdigest()
    c.execute("INSERT INTO sessions (token_hash, user_id, created_at, expires_at)"
              " VALUES (?, ?, ?, ?)", (h, uid, now - 86400 * 1000, exp))
c.commit()
c.close()
PY
server_start --rate-ip-per-min 1000 --rate-user-per-min 1000 --rate-casts-per-hour 50

# ---- sessions ----
is "${#LIVE_TOK} ${#OLD_TOK}" "43 43" "session tokens have 43 characters"
st=$(anon GET /v1/auth/me -H "Cookie: theme=dark; spell_session=$LIVE_TOK")
is "$st" 200 "a live session cookie is accepted"
is "$(jb .login)" erin "the session is erin's"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer $LIVE_TOK")
is "$st" 200 "a live session as a bearer token is accepted"
st=$(anon GET /v1/auth/me -H "Cookie: spell_session=$OLD_TOK")
is "$st" 401 "an expired session is 401"
is "$(jb .error.code)" UNAUTHORIZED "an expired session says UNAUTHORIZED"
st=$(anon GET /v1/auth/me -H "Authorization: Bearer $OLD_TOK")
is "$st" 401 "an expired session as a bearer token is 401"
st=$(anon POST /v1/auth/logout -H "Cookie: spell_session=$LIVE_TOK")
is "$st" 204 "logout ends the session"
st=$(anon GET /v1/auth/me -H "Cookie: spell_session=$LIVE_TOK")
is "$st" 401 "the ended session is 401"

# ---- /healthz while the database is gone ----
is "$(anon GET /healthz)" 200 "healthz is 200 with the database in place"
mv "$DB" "$DB.away"
st=$(anon GET /healthz)
is "$st" 503 "healthz is 503 while the database file is moved away"
is "$(jb .error.code)" UNAVAILABLE "the 503 says UNAVAILABLE"
mv "$DB.away" "$DB"
is "$(anon GET /healthz)" 200 "healthz is 200 again once the file is back"
anon GET /metrics >/dev/null
like "$(body)" 'spell_http_requests_total\{route="/healthz",method="GET",code="5xx"\} 1' \
    "the 503 is counted"

# ---- the body cap at its boundary ----
# A valid JSON object of exactly N bytes: HEAD padded with spaces and "}".
json_of_size() {
    local n=$1 head=$2 pad
    pad=$((n - ${#head} - 1))
    { printf '%s' "$head"; head -c "$pad" /dev/zero | tr '\0' ' '; printf '}'; } >"$T/sized"
}
# JSON routes take 64 KiB.
json_of_size 65536 '{"hard_limit_cents":2000'
is "$(stat -c %s "$T/sized")" 65536 "the test body is 64 KiB"
st=$(api PUT /v1/budgets -H 'Content-Type: application/json' --data-binary @"$T/sized")
like "$st" '^20[01]$' "a body of exactly 64 KiB is accepted"
json_of_size 65537 '{"hard_limit_cents":2000'
st=$(api PUT /v1/budgets -H 'Content-Type: application/json' --data-binary @"$T/sized")
is "$st" 413 "a body of 64 KiB + 1 is 413"
is "$(jb .error.code)" PAYLOAD_TOO_LARGE "it says PAYLOAD_TOO_LARGE"
st=$(api PUT /v1/budgets -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
     --data-binary @"$T/sized")
is "$st" 413 "a chunked body of 64 KiB + 1 is 413"
json_of_size 65536 '{"hard_limit_cents":2000'
st=$(api PUT /v1/budgets -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
     --data-binary @"$T/sized")
like "$st" '^20[01]$' "a chunked body of exactly 64 KiB is accepted"
# POST /v1/keys takes 4 KiB.
json_of_size 4096 '{"name":"k"'
st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary @"$T/sized")
is "$st" 201 "a key request of exactly 4 KiB is accepted"
api DELETE "/v1/keys/$(jb .prefix)" >/dev/null
json_of_size 4097 '{"name":"k"'
st=$(api POST /v1/keys -H 'Content-Type: application/json' --data-binary @"$T/sized")
is "$st" 413 "a key request of 4 KiB + 1 is 413"

# ---- bad UTF-8 and odd bytes in path parameters ----
for p in '/v1/casts/%FF%FE' '/v1/casts/cst_%C3%28' '/v1/spells/%FF' '/v1/spells/a%00b' \
         '/v1/casts/%ED%A0%80'; do
    st=$(api GET "$p")
    like "$st" '^(400|404)$' "GET $p is refused"
    like "$(jb .error.code)" '^(VALIDATION_ERROR|NOT_FOUND|CAST_NOT_FOUND|SPELL_NOT_FOUND)$' \
        "GET $p says why"
done
st=$(anon GET '/v1/spells/%FF/meta')
like "$st" '^(400|404)$' "public meta with bad UTF-8 is refused"
st=$(api POST '/v1/spells/%FF%FE:cast' -H "Idempotency-Key: $(idem)" --data-binary '{"inputs":{}}')
like "$st" '^(400|404)$' "a cast of a bad UTF-8 key is refused"
st=$(api DELETE '/v1/keys/%FF%FE%FD%FC')
like "$st" '^(400|404)$' "revoking a bad UTF-8 prefix is refused"
is "$(anon GET /healthz)" 200 "the server is still up"

# ---- RateLimit fields on success ----
st=$(api GET /v1/auth/me)
is "$st" 200 "an authenticated request"
is "$(header RateLimit-Policy)" '"requests";q=1000;w=60' "200 carries RateLimit-Policy"
like "$(header RateLimit)" '^"requests";r=[0-9]+;t=[0-9]+$' "200 carries RateLimit"
st=$(cast echo '{"message": "hi"}')
is "$st" 202 "a cast"
is "$(header RateLimit-Policy)" '"requests";q=1000;w=60, "casts";q=50;w=3600' \
    "202 carries both policies"
like "$(header RateLimit)" '^"requests";r=[0-9]+;t=[0-9]+, "casts";r=[0-9]+;t=[0-9]+$' \
    "202 carries both remainders"

# ---- the access log keeps no secrets ----
anon GET /v1/auth/me -H "Authorization: Bearer $(mistyped_key "$KEY")" >/dev/null
anon GET /v1/auth/me -H "Cookie: spell_session=0123456789012345678901234567890123456789012" \
    >/dev/null
api GET "/v1/casts?limit=1" >/dev/null
server_stop
is "$STOPPED" 0 "the server stops cleanly"
like "$(cat "$T/access.log")" '"GET /v1/auth/me" 401' "the access log has the failed requests"
secret=${KEY#sk_live_*_}
if grep -qF -- "${secret:0:20}" "$T/access.log" "$T"/server*.log; then
    fail "no key secret in the logs"
else
    pass "no key secret in the logs"
fi
if grep -qF -e "0123456789012345678901234567890123456789012" -e "$LIVE_TOK" -e "$OLD_TOK" \
        "$T/access.log" "$T"/server*.log; then
    fail "no session token in the logs"
else
    pass "no session token in the logs"
fi
if grep -qiE 'authorization|cookie|bearer' "$T/access.log"; then
    fail "no credential headers in the access log"
else
    pass "no credential headers in the access log"
fi

# ---- idle connections (--idle-timeout) ----
# A connection that sends nothing, one that stops halfway through its
# request line, and one that stops inside its headers are all closed by
# the server, not at once (the bound is the flag, 2 s here) and well
# before the 60 s default; a progress stream with nothing to say outlives
# the bound (with --workers 0 the cast stays queued, so its stream waits).
server_start --idle-timeout 2 --workers 0
python3 - "$PORT" >"$T/idle.out" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for name, send in (("silent", b""), ("half a request line", b"GET /healthz HT"),
                   ("headers never ended", b"GET /healthz HTTP/1.1\r\nHost: x\r\n")):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(40)
    t0 = time.monotonic()
    if send:
        s.sendall(send)
    try:
        got = s.recv(4096)
        how = "closed" if got == b"" else "answered %r" % got[:40]
    except socket.timeout:
        how = "still open"
    except ConnectionResetError:
        how = "closed"
    print("%s: %s after %s" % (name, how, "1s+" if time.monotonic() - t0 >= 1 else "<1s"))
    s.close()
PY
is "$(sed -n 1p "$T/idle.out")" "silent: closed after 1s+" "a silent connection is closed after the idle time"
is "$(sed -n 2p "$T/idle.out")" "half a request line: closed after 1s+" \
    "a request line that stops is closed after the idle time"
is "$(sed -n 3p "$T/idle.out")" "headers never ended: closed after 1s+" \
    "headers that never end are closed after the idle time"
st=$(cast echo '{"message": "waits"}')
is "$st" 202 "a cast that stays queued"
wait_id=$(jb .cast_id)
timeout 6 curl -sN -H "Authorization: Bearer $KEY" "$BASE/v1/casts/$wait_id/events" \
    >"$T/idle-sse.out" 2>/dev/null
is "$?" 124 "its progress stream stays open past the idle time (cut by the test after 6 s)"
api GET "/v1/casts/$wait_id" >/dev/null
is "$(jb .status)" queued "the cast is still queued"
is "$(anon GET /healthz)" 200 "the server is still up"
server_stop
is "$STOPPED" 0 "the server stops cleanly after idle connections"

# ---- --help, the man page and docs/operations.md ----
help=$("$SPELL_SERVER" serve --help; "$SPELL_SERVER" users add --help)
flags=$(printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]+' | sort -u)
envs=$(printf '%s\n' "$help" | grep -oE 'SPELL_[A-Z_]+' | sort -u)
missing_man="" missing_ops=""
for f in $flags; do
    grep -qF -- "${f//-/\\-}" "$DOCS/spell-server.1" || grep -qF -- "$f" "$DOCS/spell-server.1" ||
        missing_man="$missing_man $f"
    grep -qF -- "$f" "$DOCS/operations.md" || missing_ops="$missing_ops $f"
done
for e in $envs; do
    grep -qF -- "$e" "$DOCS/spell-server.1" || missing_man="$missing_man $e"
    grep -qF -- "$e" "$DOCS/operations.md" || missing_ops="$missing_ops $e"
done
is "$missing_man" "" "the man page names every flag and variable of --help"
is "$missing_ops" "" "docs/operations.md names every flag and variable of --help"
like "$envs" 'SPELL_DB' "--help names SPELL_DB"

done_testing
