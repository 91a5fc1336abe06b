# Shared by the integration tests of spell-server: a TAP writer, starting
# and stopping the real binary on 127.0.0.1 with a temporary database,
# and a small HTTP client over curl.  Sourced by each test-*.sh.
#
# Environment (set by tests/server/integration/meson.build):
#   SPELL_SERVER   the spell-server binary
#   SPELL_ASSETS   the assets/spells folder
#
# Every process a test starts is recorded in PIDS and killed by the EXIT
# trap, whatever path the test leaves by; the temporary folder goes too
# (it is kept, and named on stderr, when a case failed).

set -u

: "${SPELL_SERVER:?SPELL_SERVER must name the spell-server binary}"
: "${SPELL_ASSETS:?SPELL_ASSETS must name assets/spells}"

T=$(mktemp -d "${TMPDIR:-/tmp}/spell-it.XXXXXX")
PIDS=()
SERVER_PID=
PORT=
BASE=
KEY=
TAP_N=0
TAP_FAILED=0

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$TAP_FAILED" -ne 0 ]; then
        echo "# kept $T for inspection; server log follows" >&2
        cat "$T"/server*.log >&2 2>/dev/null || true
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- TAP ----

pass() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }
fail() {
    TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1))
    echo "not ok $TAP_N - $1"
    shift
    local line
    for line in "$@"; do echo "#   $line"; done
}
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1 # SKIP $2"; }

# is GOT EXPECTED NAME
is() {
    if [ "$1" = "$2" ]; then pass "$3"; else fail "$3" "got:      '$1'" "expected: '$2'"; fi
}

# like GOT REGEX NAME (extended regex)
like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then pass "$3"
    else fail "$3" "got:      '$(printf '%s' "$1" | head -c 400)'" "expected to match: $2"; fi
}

# ok NAME COMMAND...: passes when the command exits 0
ok() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}

done_testing() {
    echo "1..$TAP_N"
    [ "$TAP_FAILED" -eq 0 ]
}

# ---- the server ----

DB="$T/spell.db"

# srv CMD...: runs a spell-server subcommand on the test database.
srv() { "$SPELL_SERVER" "$@" --db "$DB"; }

# server_start [FLAGS...]: starts `serve` on 127.0.0.1:0 and waits (up to
# 30 s) until it says it is listening.  Sets SERVER_PID, PORT and BASE.
SERVER_RUN=0
server_start() {
    SERVER_RUN=$((SERVER_RUN + 1))
    local log="$T/server$SERVER_RUN.log"
    rm -f "$T/port"
    "$SPELL_SERVER" serve --db "$DB" --listen 127.0.0.1:0 --port-file "$T/port" \
        --access-log "$T/access.log" "$@" 2>"$log" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 300); do
        if [ -s "$T/port" ] && grep -q "listening on http://" "$log"; then
            PORT=$(cat "$T/port")
            BASE="http://127.0.0.1:$PORT"
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "# the server exited at start:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "# the server did not start within 30 s" >&2
    return 1
}

# server_stop [SIGNAL]: stops the server (SIGTERM by default), waits for
# it and leaves its exit status in STOPPED (not in a subshell: wait only
# knows the shell's own children).
STOPPED=
server_stop() {
    local sig=${1:-TERM}
    STOPPED=0
    kill -"$sig" "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || STOPPED=$?
}

# ---- HTTP ----

# api METHOD PATH [CURL ARGS...]: sends a request with the test key (when
# KEY is set); the body lands in $T/body, the headers in $T/headers, and
# the status is printed.
api() {
    local method=$1 path=$2
    shift 2
    local auth=()
    [ -n "$KEY" ] && auth=(-H "Authorization: Bearer $KEY")
    curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' --max-time 30 \
        -X "$method" "${auth[@]}" "$@" "$BASE$path"
}

# anon METHOD PATH [CURL ARGS...]: the same without credentials.
anon() {
    local method=$1 path=$2
    shift 2
    curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' --max-time 30 \
        -X "$method" "$@" "$BASE$path"
}

body() { cat "$T/body"; }
# jb FILTER: jq over the last body (raw output).
jb() { jq -r "$1" "$T/body" 2>/dev/null; }
# header NAME: the last response's header value, without the CR.
header() {
    grep -i "^$1:" "$T/headers" | head -n 1 | sed 's/^[^:]*:[[:space:]]*//' | tr -d '\r'
}

# route_exists METHOD PATH: 0 when the server has a row for it (anything
# but 404 NOT_FOUND/405 from the router).
route_exists() {
    local st
    st=$(anon "$1" "$2")
    [ "$st" != 404 ] || [ "$(jb .error.code)" != NOT_FOUND ]
}

# new_user LOGIN [ROLE]: creates a user and prints its key.
new_user() {
    srv users add "$1" --role "${2:-caster}" 2>>"$T/cli.log"
}

# idem: a fresh Idempotency-Key.
# mistyped_key KEY: KEY with its last character changed, never equal to it.
mistyped_key() {
    case $1 in
    *X) printf '%sY' "${1%?}" ;;
    *) printf '%sX' "${1%?}" ;;
    esac
}

idem() { printf 'it-%s-%s' "$(date +%s%N)" "$RANDOM"; }

# cast SPELL INPUTS_JSON [EXTRA CURL ARGS]: POST /v1/spells/SPELL:cast.
cast() {
    local spell=$1 inputs=$2
    shift 2
    api POST "/v1/spells/$spell:cast" -H "Idempotency-Key: $(idem)" \
        -H 'Content-Type: application/json' --data-binary "{\"inputs\": $inputs}" "$@"
}

# wait_cast ID [SECONDS]: polls until the cast finishes; prints its status.
wait_cast() {
    local id=$1 limit=${2:-60} i st=""
    for i in $(seq 1 $((limit * 5))); do
        api GET "/v1/casts/$id" >/dev/null
        st=$(jb .status)
        case "$st" in succeeded|failed|canceled) break ;; esac
        sleep 0.2
    done
    echo "$st"
}
