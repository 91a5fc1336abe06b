#!/usr/bin/env bash
# sse-hold: 10,000 concurrent SSE streams on spell-server and on nginx +
# Nchan, in one run, with the same client (bench/sse-hold.c).
#
#   meson setup build && ninja -C build      # builds bench/sse-hold too
#   bench/sse-hold.sh [BUILD_DIR]            # BUILD_DIR defaults to build
#
# Knobs (environment): STREAMS (10000), EVENTS (20), INTERVAL_MS (500),
# PEERS ("nchan spell", either or both, in that order), ROUNDS (3: the
# peers take turns this many times, each round with a fresh server, and
# the summary gives the median of the per-round ratios, since on a shared
# two-core machine one round's latency says little).
#
# What it does:
#   nchan  installs Debian's nginx and libnginx-mod-nchan with apt-get when
#          they are missing (root only), writes its own nginx.conf in a
#          temp dir (two workers, worker_rlimit_nofile 30000,
#          worker_connections 20000, an EventSource subscriber location and
#          a publisher location on 127.0.0.1, its own pid and log files),
#          runs nginx in the foreground as the current user, and lets
#          sse-hold publish EVENTS messages to the channel.
#   spell  creates a temp database with a bench user and the bench/spells
#          sse-bench spell, starts `spell-server serve` on 127.0.0.1 with
#          the rate limits raised, casts sse-bench once and has sse-hold
#          follow GET /v1/casts/{id}/events on every stream; the spell
#          starts emitting once sse-hold has opened every stream.
# It prints each peer's figures and the ratios issue 3 asks for (memory
# per stream and fan-out p99, spell/nchan), and for reading the ratio of
# the fan-out spread p99 (each receive minus the event's first receive on
# any stream: the fan-out without the path to the server's first send,
# which for spell-server includes the spell, the executor and the store).  Nothing is built here, nothing
# outside the temp dir is changed (apart from the apt-get install), only
# 127.0.0.1 is used, and every process started is stopped on every exit.
# The run is bounded: about 30 s per peer and round, three minutes at most
# with the defaults.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
streams=${STREAMS:-10000}
events=${EVENTS:-20}
interval_ms=${INTERVAL_MS:-500}
peers=${PEERS:-nchan spell}
rounds=${ROUNDS:-3}
case $rounds in [1-9]) ;; *) echo "sse-hold.sh: ROUNDS must be 1..9" >&2; exit 2 ;; esac

hold=$build/bench/sse-hold
server=$build/server/spell-server
[ -x "$hold" ] || { echo "sse-hold.sh: $hold is missing; build first (ninja -C $build)" >&2; exit 2; }

# 10,000 client sockets in this process; the machine allows 20,000.
ulimit -n 20000

tmp=$(mktemp -d /tmp/sse-hold.XXXXXX)
. "$root/bench/lib.sh"
bench_traps

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port below the ephemeral range (so none of the previous run's 10,000
# client sockets, perhaps still in TIME_WAIT, can hold it) that no socket
# uses in any state.
free_port() {
    local p low hi
    read -r low hi </proc/sys/net/ipv4/ip_local_port_range || low=32768
    [ "$low" -gt 12000 ] || low=32768
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % (low - 10000)))
        if ! port_open "$p" && [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

wait_port() {
    for _ in $(seq 100); do
        port_open "$1" && return 0
        sleep 0.1
    done
    return 1
}

stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    forget_pid "$p"
}

# Runs a command in the background with its output in a file, so a
# signal to this script is handled at once (bash runs traps only between
# foreground commands), then shows the output.  Returns its status.
run_logged() {    # run_logged FILE COMMAND...
    local out=$1 p rc=0
    shift
    "$@" >"$out" 2>&1 &
    p=$!
    pids+=("$p")
    wait "$p" || rc=$?
    forget_pid "$p"
    cat "$out"
    return $rc
}

forget_pid() {
    local q keep=()
    for q in "${pids[@]}"; do
        [ "$q" = "$1" ] || keep+=("$q")
    done
    pids=("${keep[@]}")
}

result_field() {    # result_field FILE KEY
    sed -n "s/^RESULT .* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1
}

common_args=(--streams "$streams" --events "$events" --interval-ms "$interval_ms")

run_nchan() {    # run_nchan ROUND
    local nginx=/usr/sbin/nginx mod=/usr/lib/nginx/modules/ngx_nchan_module.so dir=$tmp/nginx-$1 port user=""
    if [ ! -x "$nginx" ] || [ ! -f "$mod" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "sse-hold.sh: nginx and libnginx-mod-nchan are missing; install them as root" >&2
            return 1
        fi
        echo "sse-hold.sh: installing nginx and libnginx-mod-nchan"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-nchan >/dev/null
    fi
    mkdir -p "$dir"
    port=$(free_port)
    # As root, nginx would hand its workers to "nobody"; keep them ours.
    [ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
    cat >"$dir/nginx.conf" <<EOF
load_module $mod;
$user
worker_processes 2;
worker_rlimit_nofile 30000;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events {
    worker_connections 20000;
}
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /sub {
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
        }
        location = /pub {
            nchan_publisher;
            nchan_channel_id bench;
        }
    }
}
EOF
    "$nginx" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    local master=$!
    pids+=("$master")
    if ! wait_port "$port"; then
        echo "sse-hold.sh: nginx did not start:" >&2
        cat "$dir/error.log" "$dir/stdout.log" >&2 || true
        return 1
    fi
    echo "== nginx $("$nginx" -v 2>&1 | sed 's/.*nginx\///') + Nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'), master pid $master, port $port"
    local rc=0
    run_logged "$tmp/nchan-$1.out" "$hold" --port "$port" --path /sub --publish /pub \
        --rss-tree "$master" --label nchan "${common_args[@]}" || rc=$?
    grep -h 'setrlimit' "$dir/error.log" | head -n 1 | sed 's/^/nginx said: /' || true
    stop_pid "$master"
    return $rc
}

run_spell() {    # run_spell ROUND
    local dir=$tmp/spell-$1 db key port spid cast cast_id rc=0
    [ -x "$server" ] || { echo "sse-hold.sh: $server is missing" >&2; return 1; }
    mkdir -p "$dir"
    db=$dir/server.db
    key=$("$server" users add bench --db "$db" 2>"$dir/users.log") || {
        cat "$dir/users.log" >&2
        return 1
    }
    "$server" spells import "$root/bench/spells/sse-bench.json" --db "$db" >/dev/null
    "$server" serve --db "$db" --listen 127.0.0.1:0 --port-file "$dir/port" --access-log off \
        --rate-user-per-min 1000000 --rate-ip-per-min 1000000 --rate-casts-per-hour 1000000 \
        --max-connections 19000 2>"$dir/server.log" &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 100); do
        [ -s "$dir/port" ] && break
        sleep 0.1
    done
    port=$(cat "$dir/port" 2>/dev/null || true)
    if [ -z "$port" ] || ! wait_port "$port"; then
        echo "sse-hold.sh: spell-server did not start:" >&2
        cat "$dir/server.log" >&2
        return 1
    fi
    cast=$(curl -sS -X POST "http://127.0.0.1:$port/v1/spells/sse-bench:cast" \
        -H "Authorization: Bearer $key" -H "Idempotency-Key: sse-hold-$$-$1" \
        -H 'Content-Type: application/json' \
        -d "{\"inputs\":{\"go_file\":\"$dir/go\",\"events\":$events,\"interval_ms\":$interval_ms}}")
    cast_id=$(printf '%s' "$cast" | sed -n 's/.*"cast_id"[ ]*:[ ]*"\([^"]*\)".*/\1/p')
    if [ -z "$cast_id" ]; then
        echo "sse-hold.sh: the cast was refused: $cast" >&2
        return 1
    fi
    echo "== spell-server $("$server" --version | sed 's/^spell-server //'), pid $spid, port $port, cast $cast_id"
    run_logged "$tmp/spell-$1.out" "$hold" --port "$port" --path "/v1/casts/$cast_id/events" \
        --auth "$key" --go-file "$dir/go" --rss-pid "$spid" --label spell "${common_args[@]}" || rc=$?
    printf '%s\n' "$(curl -sS "http://127.0.0.1:$port/v1/casts/$cast_id" -H "Authorization: Bearer $key")" |
        sed -n 's/.*"status"[ ]*:[ ]*"\([^"]*\)".*/spell-server: the cast ended "\1"/p' || true
    stop_pid "$spid"
    return $rc
}

# ratios ROUND: the figures issue 3 asks for, from one round's results.
ratios() {
    local n=$tmp/nchan-$1.out sp=$tmp/spell-$1.out
    [ -s "$n" ] && [ -s "$sp" ] || return 0
    awk -v round="$1" \
        -v sm="$(result_field "$sp" kib_per_stream)" -v nm="$(result_field "$n" kib_per_stream)" \
        -v sp="$(result_field "$sp" p99_us)" -v np="$(result_field "$n" p99_us)" \
        -v ss="$(result_field "$sp" spread_p99_us)" -v ns="$(result_field "$n" spread_p99_us)" \
        -v sd="$(result_field "$sp" delivered)" -v se="$(result_field "$sp" expected)" \
        -v nd="$(result_field "$n" delivered)" -v ne="$(result_field "$n" expected)" '
    function verdict(r, t) { return r <= t ? "met" : "MISSED" }
    BEGIN {
        if (nm > 0) { r = sm / nm; printf "round %d: ratio memory per stream spell/nchan: %.2f (%.2f / %.2f KiB; target <= 0.6: %s)\n", round, r, sm, nm, verdict(r, 0.6) }
        if (np > 0) { r = sp / np; printf "round %d: ratio fan-out p99 spell/nchan: %.2f (%.1f / %.1f ms; target <= 0.4: %s)\n", round, r, sp / 1000, np / 1000, verdict(r, 0.4) }
        if (ns > 0) { r = ss / ns; printf "round %d: ratio fan-out spread p99 spell/nchan: %.2f (%.1f / %.1f ms; the fan-out alone, for reading)\n", round, r, ss / 1000, ns / 1000 }
        printf "round %d: every stream received every event: spell %s (%d/%d), nchan %s (%d/%d)\n", round,
            (sd != "" && sd == se ? "yes" : "NO"), sd, se, (nd != "" && nd == ne ? "yes" : "NO"), nd, ne
    }' | tee -a "$tmp/ratios"
}

echo "sse-hold: $streams streams, $events events ${interval_ms} ms apart, $rounds round(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
for round in $(seq "$rounds"); do
    echo "==== round $round of $rounds"
    for peer in $peers; do
        case $peer in
        nchan) run_nchan "$round" || status=1 ;;
        spell) run_spell "$round" || status=1 ;;
        *) echo "sse-hold.sh: unknown peer $peer" >&2; exit 2 ;;
        esac
    done
    ratios "$round"
done

# The median of each ratio over the rounds, and delivery in every round.
if [ -s "$tmp/ratios" ]; then
    echo "==== summary over $rounds round(s); load now $(cut -d' ' -f1-3 /proc/loadavg)"
    awk '
    function median(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    / memory per stream / { m[++nm] = $8 + 0 }
    / fan-out p99 / { p[++np] = $7 + 0 }
    / fan-out spread p99 / { q[++nq] = $8 + 0 }
    / every stream received / { all++; if ($9 == "yes") sy++; if ($12 == "yes") ny++ }
    END {
        if (nm) printf "median ratio memory per stream spell/nchan: %.2f over %d round(s) (target <= 0.6: %s)\n", median(m, nm), nm, (median(m, nm) <= 0.6 ? "met" : "MISSED")
        if (np) printf "median ratio fan-out p99 spell/nchan: %.2f over %d round(s) (target <= 0.4: %s)\n", median(p, np), np, (median(p, np) <= 0.4 ? "met" : "MISSED")
        if (nq) printf "median ratio fan-out spread p99 spell/nchan: %.2f over %d round(s) (the fan-out alone, for reading)\n", median(q, nq), nq
        printf "every stream received every event in every round: spell %s (%d of %d rounds), nchan %s (%d of %d rounds)\n",
            (sy == all ? "yes" : "NO"), sy, all, (ny == all ? "yes" : "NO"), ny, all
    }' "$tmp/ratios"
fi
exit $status
