#!/usr/bin/env bash
# agent-follow: spell-agent following CASTS (1,000) casts at once, each on
# its own SSE stream, in its one event loop.
#
#   meson setup build && ninja -C build      # builds spell-server, spell-agent, bench/agent-follow
#   bench/agent-follow.sh [BUILD_DIR]        # BUILD_DIR defaults to build
#
# Knobs (environment): CASTS (1000), WORKERS (256, the server's most),
# DELAY_MAX_MS (4000), TIMEOUT_S (600), DIRECT (100: casts the client also
# follows straight from the server, to split the latency between the
# server and the agent).
#
# What it does, all in a temp dir on 127.0.0.1:
#   - a spell-server database with a bench user and the follow-bench spell
#     (bench/spells/follow-bench.json), served with WORKERS executor
#     threads and the rate limits raised; the programs run at the server's
#     default --spell-nice (10 nicer than the server), as they would in
#     production;
#   - spell-agent with its XDG dirs in the temp dir, the key in
#     SPELL_API_KEY and no session bus (so no keyring and no notification
#     daemon: desktop notifications are logged as unavailable and dropped;
#     what is measured is the agent's own notification to its
#     events.subscribe client, see docs/performance.md);
#   - bench/agent-follow submits CASTS casts through the agent, waits until
#     the server counts CASTS open SSE streams, samples the RSS and threads
#     of the agent and of its desktop helper (spell-agent-desktop, the
#     process that runs GLib, libsecret and libnotify), opens the FIFO
#     every cast waits on, and measures the time from each cast's
#     finished_at to the agent's event line.
#
# Targets (docs/performance.md): the agent process runs ONE thread (the
# helper's threads are printed beside it, not counted); the agent and the
# helper together stay under 64 MiB of RSS; p99 under 200 ms.
# The server runs at most WORKERS (256) programs at once: the other casts
# are queued on the server, which the agent follows exactly as it follows
# a running one (an open stream with nothing on it yet).
#
# Every process started is stopped on every exit, and the temp dir removed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
casts=${CASTS:-1000}
workers=${WORKERS:-256}
delay_max_ms=${DELAY_MAX_MS:-4000}
timeout_s=${TIMEOUT_S:-600}
direct=${DIRECT:-100}
. "$root/bench/lib.sh"
bench_uint CASTS "$casts"
bench_uint WORKERS "$workers"
bench_uint DELAY_MAX_MS "$delay_max_ms"
bench_uint TIMEOUT_S "$timeout_s"
bench_uint DIRECT "$direct"
# Never more than there are casts (the client refuses that).
[ "$direct" -le "$casts" ] || direct=$casts

server=$build/server/spell-server
agent=$build/agent/spell-agent
follow=$build/bench/agent-follow
for b in "$server" "$agent"; do
    [ -x "$b" ] || { echo "agent-follow.sh: $b is missing; build first (ninja -C $build)" >&2; exit 2; }
done

# The agent holds one socket per stream, the server as many plus the
# programs' pipes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((casts * 2 + 512)) ] || {
    echo "agent-follow.sh: the open-file limit ($(ulimit -n)) is too low for $casts casts" >&2
    exit 2
}

tmp=$(mktemp -d /tmp/agent-follow.XXXXXX)
chmod 700 "$tmp"
bench_traps

if [ ! -x "$follow" ]; then
    # Not in this build yet: compile the client alone.
    follow=$tmp/agent-follow
    cc -std=c11 -D_GNU_SOURCE -O2 -o "$follow" "$root/bench/agent-follow.c" "$root/bench/stats.c" \
        $(pkg-config --cflags --libs libcjson libcurl)
fi

mkdir -p "$tmp/home" "$tmp/config" "$tmp/state" "$tmp/run" "$tmp/cache"
chmod 700 "$tmp/run"
db=$tmp/server.db
key=$("$server" users add bench --db "$db" 2>"$tmp/users.log") || { cat "$tmp/users.log" >&2; exit 1; }
"$server" spells import "$root/bench/spells/follow-bench.json" --db "$db" >/dev/null
"$server" serve --db "$db" --listen 127.0.0.1:0 --port-file "$tmp/port" --access-log off \
    --workers "$workers" --rate-user-per-min 1000000 --rate-ip-per-min 1000000 \
    --rate-casts-per-hour 1000000 --max-connections 16000 2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$tmp/port" ] && break
    sleep 0.1
done
[ -s "$tmp/port" ] || { echo "agent-follow.sh: spell-server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
port=$(cat "$tmp/port")

mkfifo -m 600 "$tmp/go"
(
    unset DBUS_SESSION_BUS_ADDRESS DISPLAY WAYLAND_DISPLAY
    export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/config XDG_STATE_HOME=$tmp/state \
        XDG_RUNTIME_DIR=$tmp/run XDG_CACHE_HOME=$tmp/cache \
        SPELL_API_URL=http://127.0.0.1:$port SPELL_API_KEY=$key
    exec "$agent"
) >"$tmp/agent.log" 2>&1 &
apid=$!
pids=("$apid" "${pids[@]}")
sock=$tmp/run/spell/agent.sock
for _ in $(seq 100); do
    [ -S "$sock" ] && break
    sleep 0.1
done
[ -S "$sock" ] || { echo "agent-follow.sh: spell-agent did not start" >&2; cat "$tmp/agent.log" >&2; exit 1; }

echo "agent-follow: $casts casts, server workers $workers, delays 0..${delay_max_ms} ms; $(nproc) cores;" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== spell-server $("$server" --version | sed 's/^spell-server //') pid ${pids[1]} port $port;" \
    "spell-agent pid $apid"
rc=0
"$follow" --socket "$sock" --api "http://127.0.0.1:$port" --key "$key" --agent-pid "$apid" \
    --go-fifo "$tmp/go" --casts "$casts" --delay-max-ms "$delay_max_ms" --timeout-s "$timeout_s" \
    --direct "$direct" >"$tmp/follow.out" 2>&1 || rc=$?
cat "$tmp/follow.out"
res=$(grep '^RESULT ' "$tmp/follow.out" || true)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$res"; }
if [ -n "$res" ]; then
    awk -v rss="$(field rss_kib)" -v mrss="$(field max_rss_kib)" -v th="$(field threads)" \
        -v mth="$(field max_threads)" -v p99="$(field p99_us)" \
        -v hpid="$(field helper_pid)" -v hrss="$(field helper_rss_kib)" \
        -v mhrss="$(field max_helper_rss_kib)" -v hth="$(field helper_threads)" \
        -v mhth="$(field max_helper_threads)" '
    function verdict(ok) { return ok ? "met" : "MISSED" }
    BEGIN {
        if (hpid > 0) {
            both = mrss + (mhrss > 0 ? mhrss : 0)
            printf "target RSS < 64 MiB (agent + desktop helper): agent %.1f MiB + helper %.1f MiB following, %.1f MiB together at most (%s)\n", rss / 1024, hrss / 1024, both / 1024, verdict(both < 65536)
        } else {
            printf "target RSS < 64 MiB (no desktop helper ran): %.1f MiB following, %.1f MiB at most (%s)\n", rss / 1024, mrss / 1024, verdict(mrss < 65536)
        }
        printf "target one thread in the agent process: %d threads following, %d at most (%s); desktop helper beside it: %d threads, %d at most\n", th, mth, verdict(mth == 1), (hpid > 0 ? hth : 0), (hpid > 0 ? mhth : 0)
        printf "target p99 < 200 ms: %.1f ms (%s)\n", p99 / 1000, verdict(p99 < 200000)
    }'
fi
if [ $rc -ne 0 ] || [ -z "$res" ]; then
    echo "agent log (last lines):"
    tail -n 15 "$tmp/agent.log" | sed 's/^/  /'
fi
if grep -qiE 'error|warn' "$tmp/agent.log"; then
    echo "agent log (first lines with error or warn):"
    grep -iE 'error|warn' "$tmp/agent.log" | head -n 5 | sed 's/^/  /'
fi
exit $rc
