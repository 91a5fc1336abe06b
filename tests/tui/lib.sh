# Shared helpers for the spell-portal tests: a private tmux server, a real
# spell-server on 127.0.0.1 with a temporary database, TAP output, and
# waits that poll capture-pane with a bounded timeout.  Sourced by the
# test scripts; everything they start is stopped on every exit path.

set -u

T_N=0
T_FAIL=0
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/spell-tui.XXXXXX")
chmod 700 "$T_TMP"
T_SOCK="spell-tui-$$"
T_PIDS=()

t_cleanup() {
    tmux -L "$T_SOCK" kill-server >/dev/null 2>&1 || true
    local pid
    for pid in "${T_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${T_PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$T_TMP"
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

ok() {
    T_N=$((T_N + 1))
    echo "ok $T_N - $*"
}

not_ok() {
    T_N=$((T_N + 1))
    T_FAIL=$((T_FAIL + 1))
    echo "not ok $T_N - $*"
}

# check DESCRIPTION COMMAND...: one TAP line from a command's status.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

t_done() {
    # A sanitized build writes its reports (the pane's stderr is nobody's)
    # to files; there must be none.
    local reports
    reports=$(ls "$T_TMP"/san-* 2>/dev/null)
    if [ -n "$reports" ]; then
        not_ok "sanitizer reports from spell-portal"
        cat $reports | sed 's/^/#   /'
    else
        ok "no sanitizer reports from spell-portal"
    fi
    echo "1..$T_N"
    [ "$T_FAIL" -eq 0 ]
}

# ---- the server ----

# server_start SERVER_EXE CATALOG [FLAGS...]: sets T_URL and T_DB.
server_start() {
    local exe=$1 catalog=$2
    shift 2
    T_SERVER=$exe
    T_DB="$T_TMP/server.db"
    "$exe" spells import "$catalog" --db "$T_DB" >/dev/null 2>&1 || return 1
    "$exe" --listen 127.0.0.1:0 --port-file "$T_TMP/port" --db "$T_DB" --access-log off \
        "$@" >"$T_TMP/server.log" 2>&1 &
    T_PIDS+=($!)
    for _ in $(seq 100); do
        [ -s "$T_TMP/port" ] && break
        sleep 0.05
    done
    [ -s "$T_TMP/port" ] || return 1
    T_URL="http://127.0.0.1:$(cat "$T_TMP/port")"
    for _ in $(seq 100); do
        curl -fsS "$T_URL/healthz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# user_add LOGIN: prints the new user's API key.
user_add() {
    "$T_SERVER" users add "$1" --db "$T_DB" 2>/dev/null
}

api() {
    local key=$1
    shift
    curl -sS -H "Authorization: Bearer $key" "$@"
}

# api_status KEY URL-PATH [CURL ARGS]: prints the HTTP status only.
api_status() {
    local key=$1 path=$2
    shift 2
    curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$@" "$T_URL$path"
}

# ---- the portal in tmux ----

T_COLS=100
T_ROWS=30

# portal_start NAME ENV-ASSIGNMENTS... -- PORTAL ARGS...
portal_start() {
    local name=$1
    shift
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    local cmd
    cmd=$(printf '%q ' env -i PATH="$PATH" HOME="$T_TMP/home" TERM=xterm-256color \
        LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_CONFIG_HOME="$T_TMP/config-$name" \
        XDG_RUNTIME_DIR="${T_RUNTIME:-$T_TMP/runtime-none}" \
        XDG_STATE_HOME="$T_TMP/state-$name" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T_TMP/san-asan" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$T_TMP/san-ubsan" \
        ${LSAN_OPTIONS:+LSAN_OPTIONS="$LSAN_OPTIONS"} \
        "${envs[@]}" "$T_PORTAL" "$@")
    mkdir -p "$T_TMP/home" "$T_TMP/config-$name"
    if ! tmux -L "$T_SOCK" has-session 2>/dev/null; then
        tmux -L "$T_SOCK" -f /dev/null new-session -d -s _keep -x "$T_COLS" -y "$T_ROWS" \
            "sleep 100000" || return 1
        tmux -L "$T_SOCK" set -g set-clipboard on >/dev/null
        tmux -L "$T_SOCK" set -g remain-on-exit on >/dev/null
    fi
    tmux -L "$T_SOCK" new-session -d -s "$name" -x "$T_COLS" -y "$T_ROWS" "$cmd"
}

screen() {
    tmux -L "$T_SOCK" capture-pane -p -t "$1"
}

keys() {
    local name=$1
    shift
    tmux -L "$T_SOCK" send-keys -t "$name" "$@"
}

# Literal text, typed as a person would paste it.
type_text() {
    tmux -L "$T_SOCK" send-keys -t "$1" -l -- "$2"
}

# wait_for NAME TEXT [SECONDS]: polls the screen until TEXT shows.
wait_for() {
    local name=$1 text=$2 secs=${3:-10}
    local end=$((SECONDS + secs))
    while [ $SECONDS -le $end ]; do
        screen "$name" | grep -qF -- "$text" && return 0
        sleep 0.1
    done
    echo "# timed out waiting for '$text' on $name; the screen was:" >&2
    screen "$name" | sed 's/^/#   /' >&2
    return 1
}

# wait_gone NAME TEXT [SECONDS]
wait_gone() {
    local name=$1 text=$2 secs=${3:-10}
    local end=$((SECONDS + secs))
    while [ $SECONDS -le $end ]; do
        screen "$name" | grep -qF -- "$text" || return 0
        sleep 0.1
    done
    return 1
}

# The portal has nothing in flight (no spinner in the status line).
settle() {
    wait_gone "$1" " loading" "${2:-10}"
}

resize() {
    tmux -L "$T_SOCK" resize-window -t "$1" -x "$2" -y "$3"
}

# portal_stop NAME: SIGTERM to the portal (it restores the terminal and
# exits cleanly, so sanitizer reports are written), then the session goes.
portal_stop() {
    local pid
    pid=$(tmux -L "$T_SOCK" list-panes -t "$1" -F '#{pane_pid}' 2>/dev/null | head -n 1)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    tmux -L "$T_SOCK" kill-session -t "$1" 2>/dev/null || true
}

# The parts of a screen that vary between runs, masked: the port, dates,
# times, periods, key prefixes and local ids.
mask() {
    sed -E \
        -e 's#127\.0\.0\.1:[0-9]+#127.0.0.1:PORT#g' \
        -e 's#[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}#YYYY-MM-DD HH:MM#g' \
        -e 's#[0-9]{4}-[0-9]{2}#YYYY-MM#g' \
        -e 's#[0-9]{4}-[0-9]#YYYY-M#g' \
        -e 's#lc_[0-9A-Za-z]+#lc_ID#g' \
        -e 's#[[:space:]]+$##'
}

# golden NAME SCREEN: compares the masked screen with golden/SCREEN.txt;
# SPELL_GOLDEN_UPDATE=1 rewrites the file instead.
golden() {
    local name=$1 file="$T_GOLDEN/$2.txt"
    screen "$name" | mask >"$T_TMP/golden.txt"
    if [ "${SPELL_GOLDEN_UPDATE:-0}" = 1 ]; then
        cp "$T_TMP/golden.txt" "$file"
        return 0
    fi
    if diff -u "$file" "$T_TMP/golden.txt" >"$T_TMP/golden.diff" 2>&1; then
        return 0
    fi
    sed 's/^/#   /' "$T_TMP/golden.diff" >&2
    return 1
}
