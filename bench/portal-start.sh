#!/usr/bin/env bash
# bench/portal-start: how long spell-portal takes from launch to its first
# complete dashboard against a local spell-server, and how much memory it
# holds then.
#
#   bench/portal-start.sh [BUILD-DIR] [RUNS]     (defaults: build, 20)
#
# How it is measured: the portal is started in a detached tmux pane of
# 100x30 with SPELL_PORTAL_MARK=FILE.  At the end of the first frame that
# shows the signed-in user, this month's usage and the card status (every
# number the dashboard has), it writes one line to FILE (portal.c,
# maybe_mark): the wall clock, the milliseconds since main() began, and
# VmRSS / VmHWM from /proc/self/status.  The script also notes the wall
# clock just before it asks tmux to start the pane, so the "launch" figure
# includes exec, the dynamic loader and tmux's own spawn.  No agent runs
# (the portal takes SPELL_API_KEY), so this is the account path alone.
# Targets: first full paint under 100 ms, RSS under 16 MB.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
runs=${2:-20}
case $build in /*) ;; *) build="$root/$build" ;; esac
portal="$build/tui/spell-portal"
server="$build/server/spell-server"
for f in "$portal" "$server"; do
    [ -x "$f" ] || { echo "portal-start: $f is not built" >&2; exit 1; }
done
command -v tmux >/dev/null || { echo "portal-start: needs tmux" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/portal-start.XXXXXX")
sock="portal-start-$$"
spid=
cleanup() {
    tmux -L "$sock" kill-server >/dev/null 2>&1 || true
    if [ -n "$spid" ]; then
        kill -TERM "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$server" spells import "$root/assets/spells/catalog.json" --db "$tmp/db" >/dev/null
key=$("$server" users add bench --db "$tmp/db" 2>/dev/null)
"$server" --listen 127.0.0.1:0 --port-file "$tmp/port" --db "$tmp/db" --access-log off \
    --rate-user-per-min 100000 >"$tmp/server.log" 2>&1 &
spid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$tmp/port")"
for _ in $(seq 100); do curl -fsS "$url/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
# Some usage, so the dashboard has days and spells to show.
for i in $(seq 5); do
    curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $key" \
        -H "Idempotency-Key: bench-$i-$$" -d '{"inputs":{"text":"a b c"}}' \
        "$url/v1/spells/wordcount:cast"
done
sleep 1

tmux -L "$sock" -f /dev/null new-session -d -s keep -x 100 -y 30 "sleep 100000"
: >"$tmp/results"
for i in $(seq "$runs"); do
    mark="$tmp/mark-$i"
    cmd=$(printf '%q ' env -i PATH="$PATH" HOME="$tmp" TERM=xterm-256color LANG=C.UTF-8 \
        XDG_RUNTIME_DIR="$tmp/no-agent" XDG_CONFIG_HOME="$tmp/config" \
        SPELL_API_KEY="$key" SPELL_PORTAL_MARK="$mark" "$portal" --api-url "$url")
    t0=$(date +%s%N)
    tmux -L "$sock" new-session -d -s "run$i" -x 100 -y 30 "$cmd"
    for _ in $(seq 500); do [ -s "$mark" ] && break; sleep 0.01; done
    if [ ! -s "$mark" ]; then
        echo "portal-start: run $i never painted a full dashboard" >&2
        exit 1
    fi
    line=$(cat "$mark")
    wall=$(sed -E 's/.*wall_ns=([0-9]+).*/\1/' <<<"$line")
    paint=$(sed -E 's/.*paint_ms=([0-9.]+).*/\1/' <<<"$line")
    rss=$(sed -E 's/.*rss_kb=([0-9]+).*/\1/' <<<"$line")
    hwm=$(sed -E 's/.*hwm_kb=([0-9]+).*/\1/' <<<"$line")
    launch=$(awk -v a="$wall" -v b="$t0" 'BEGIN { printf "%.3f", (a - b) / 1e6 }')
    echo "$paint $launch $rss $hwm" >>"$tmp/results"
    tmux -L "$sock" kill-session -t "run$i"
done

stats() {   # stats COLUMN: median and max of a column
    cut -d' ' -f"$1" "$tmp/results" | sort -g |
        awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
               printf "median %.1f, max %.1f", m, v[NR] }'
}
echo "spell-portal first full dashboard, $runs runs, 100x30, local spell-server, no agent"
echo "  in-process (main() to the painted frame), ms:   $(stats 1)"
echo "  from launch (tmux spawn to the frame), ms:      $(stats 2)"
echo "  RSS at that frame, KiB:                         $(stats 3)"
echo "  peak RSS (VmHWM) at that frame, KiB:            $(stats 4)"
