#!/usr/bin/env bash
# spell-server as a program: --help and --version, usage errors, the
# operator commands on an empty database, /healthz, /metrics, unknown
# routes and wrong methods, body limits on body-less routes, and a
# graceful stop on SIGTERM.
. "$(dirname "$0")/lib.sh"

# ---- the command line ----
out=$("$SPELL_SERVER" --version)
like "$out" '^spell-server [0-9]+\.[0-9]+\.[0-9]+$' "--version prints the version"
out=$("$SPELL_SERVER" --help)
like "$out" 'users add LOGIN' "--help lists the commands"
like "$out" 'SPELL_RATE_CASTS_PER_HOUR' "--help names the environment variables"
like "$out" "--spell-nice N" "--help names --spell-nice"
for c in "users add" "spells import" "ledger verify" "serve"; do
    # shellcheck disable=SC2086
    out=$("$SPELL_SERVER" $c --help)
    like "$out" "^Usage: spell-server $c" "$c --help"
done

usage_case() {
    local name=$1 want=$2
    shift 2
    local st=0
    "$@" >"$T/out" 2>"$T/err" || st=$?
    is "$st" 2 "$name exits 2"
    like "$(cat "$T/err")" "$want" "$name says why"
}
usage_case "an unknown flag" "unknown option '--bogus'" "$SPELL_SERVER" --bogus
usage_case "an unknown command" "unknown command 'frobnicate'" "$SPELL_SERVER" frobnicate
usage_case "a word that is no number" "--workers: 'four' is not a whole number" \
    "$SPELL_SERVER" serve --workers four
usage_case "a number with a tail" "--rate-user-per-min: '60x' is not a whole number" \
    "$SPELL_SERVER" serve --rate-user-per-min=60x
usage_case "a number out of range" "--workers: 257 is out of range" \
    "$SPELL_SERVER" serve --workers 257
usage_case "an idle timeout of 0" "--idle-timeout: 0 is out of range" \
    "$SPELL_SERVER" serve --idle-timeout 0
usage_case "a niceness past 19" "--spell-nice: 20 is out of range" \
    "$SPELL_SERVER" serve --spell-nice 20
usage_case "a negative niceness" "SPELL_SPELL_NICE: -1 is out of range" \
    env SPELL_SPELL_NICE=-1 "$SPELL_SERVER" serve
usage_case "a bad environment number" "SPELL_RATE_IP_PER_MIN: ' 5' is not a whole number" \
    env SPELL_RATE_IP_PER_MIN=' 5' "$SPELL_SERVER" serve
usage_case "a listen address without a port" "--listen: '127.0.0.1' is not HOST:PORT" \
    "$SPELL_SERVER" serve --listen 127.0.0.1
usage_case "a host name to listen on" "--listen: 'example.org:80' is not" \
    "$SPELL_SERVER" serve --listen example.org:80
usage_case "a port past 65535" "out of range" "$SPELL_SERVER" serve --listen 127.0.0.1:65536
usage_case "a flag without its value" "--db needs a value" "$SPELL_SERVER" ledger verify --db
usage_case "a flag of another command" "unknown option '--workers'" \
    "$SPELL_SERVER" ledger verify --workers 2
usage_case "users add without a login" "exactly one LOGIN" "$SPELL_SERVER" users add
usage_case "spells import without files" "at least one FILE" "$SPELL_SERVER" spells import
usage_case "a public URL that is no URL" "--public-url" \
    "$SPELL_SERVER" serve --public-url ftp://x --db "$T/x.db"

out=$(srv ledger verify)
is "$out" "ledger: 0 entries checked, OK" "ledger verify on an empty database"

# The default database lives under $XDG_STATE_HOME/spell.
mkdir -p "$T/state"
out=$(env -u SPELL_DB XDG_STATE_HOME="$T/state" "$SPELL_SERVER" ledger verify)
is "$out" "ledger: 0 entries checked, OK" "ledger verify on the default database"
ok "the default database is \$XDG_STATE_HOME/spell/server.db" test -f "$T/state/spell/server.db"
st=$(stat -c %a "$T/state/spell")
is "$st" 700 "the state folder is private"

# ---- serving ----
ok "serve starts on 127.0.0.1:0" server_start --rate-ip-per-min 1000
like "$PORT" '^[0-9]+$' "--port-file holds the bound port"
like "$(cat "$T/server1.log")" "listening on http://127.0.0.1:$PORT" "the start line names the port"

st=$(anon GET /healthz)
is "$st" 200 "GET /healthz answers 200"
is "$(jb .status)" ok "healthz status is ok"
is "$(jb .version)" "$("$SPELL_SERVER" --version | cut -d' ' -f2)" "healthz version is the build's"
like "$(header Content-Type)" '^application/json' "healthz is JSON"
is "$(header Cache-Control)" "no-store" "answers carry Cache-Control: no-store"

st=$(anon HEAD /healthz -I)
is "$st" 200 "HEAD /healthz answers 200"

st=$(anon GET /metrics)
is "$st" 200 "GET /metrics answers 200"
is "$(header Content-Type)" "text/plain; version=0.0.4; charset=utf-8" "metrics content type"
like "$(body)" '# TYPE spell_http_requests_total counter' "metrics has the request counter"
like "$(body)" 'spell_http_requests_total\{route="/healthz",method="GET",code="2xx"\} [1-9]' \
    "metrics counted the healthz requests"
like "$(body)" '# TYPE spell_http_request_duration_seconds histogram' "metrics has latency"
like "$(body)" 'spell_sse_streams_open 0' "metrics has the open streams gauge"
like "$(body)" 'spell_build_info\{version="[0-9.]+"\} 1' "metrics has the build info"

st=$(anon GET /no/such/thing)
is "$st" 404 "an unknown route is 404"
is "$(jb .error.code)" NOT_FOUND "an unknown route says NOT_FOUND"
like "$(jb .error.message)" '.' "the error has a message"
is "$(jb '.error.details|type')" object "the error has details"

st=$(anon DELETE /healthz)
is "$st" 405 "a wrong method is 405"
is "$(jb .error.code)" METHOD_NOT_ALLOWED "a wrong method says METHOD_NOT_ALLOWED"
like "$(header Allow)" 'GET' "405 carries Allow"

st=$(anon GET '/%00')
like "$st" '^(400|404)$' "a NUL in the path is refused"

head -c 100000 /dev/zero | tr '\0' 'a' >"$T/big"
st=$(anon POST /healthz --data-binary @"$T/big")
like "$st" '^(405|413)$' "a body to a body-less route is refused"

st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' 'b')" "$BASE/healthz")
like "$st" '^(400|413|431)$' "a huge header block is refused"

like "$(cat "$T/access.log")" '"GET /healthz" 200' "the access log has the requests"

server_stop TERM
is "$STOPPED" 0 "SIGTERM stops the server cleanly"
like "$(cat "$T/server1.log")" 'SIGTERM received' "the stop is logged"
like "$(cat "$T/server1.log")" 'stopped$' "the server says it stopped"

# SPELL_LISTEN and SPELL_DB are read from the environment.
rm -f "$T/port"
SPELL_DB="$T/env.db" "$SPELL_SERVER" serve --listen 127.0.0.1:0 --port-file "$T/port" \
    --access-log off 2>"$T/server-env.log" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq 1 300); do [ -s "$T/port" ] && break; sleep 0.1; done
BASE="http://127.0.0.1:$(cat "$T/port")"
is "$(anon GET /healthz)" 200 "SPELL_DB is honoured"
ok "the database named by SPELL_DB exists" test -f "$T/env.db"
server_stop INT
is "$STOPPED" 0 "SIGINT stops the server cleanly"

# Two servers cannot listen on one port: the second says so and exits 1.
server_start
st=0
"$SPELL_SERVER" serve --db "$T/other.db" --listen "127.0.0.1:$PORT" 2>"$T/err" || st=$?
is "$st" 1 "a taken port exits 1"
like "$(cat "$T/err")" "cannot listen on 127.0.0.1:$PORT" "a taken port is reported"
server_stop
is "$STOPPED" 0 "the first server still stops cleanly"

done_testing
