#!/usr/bin/env bash
# cast-load: casts from 64 concurrent clients against a fresh spell-server,
# and, in the same run, bare SQLite transactions of the same shape, for the
# ratio issue 3 asks for.
#
#   meson setup build && ninja -C build      # builds bench/cast-load too
#   bench/cast-load.sh [BUILD_DIR]           # BUILD_DIR defaults to build
#
# Knobs (environment): CLIENTS (64), COUNT (20000), DURATION_S (10: each
# run of a round stops at COUNT or after this long, whichever comes
# first), ROUNDS (3: servers and bare SQLite take turns this many times and
# the summary gives medians, since on a shared two-core machine one round
# says little), HTTP_THREADS (the server's --http-threads; unset: its
# default), INFO_WORKERS (4, or WORKERS when that is set: the --workers of
# the second, informational server of each round; 0 leaves that run out).
#
# What it does, each round:
#   1. creates a temp database with a bench user and the free echo spell
#      (assets/spells/echo.json), starts `spell-server serve --workers 0`
#      on 127.0.0.1 with the rate limits raised far past the load
#      (--rate-user-per-min, --rate-casts-per-hour) and the access log off:
#      it accepts casts and runs none, so it does the work the bare
#      transaction does (the API path: auth, idempotency, budget, one
#      commit per batch of casts) and nothing else;
#   2. runs build/bench/cast-load: CLIENTS keep-alive clients POST
#      /v1/spells/echo:cast, each request with a fresh Idempotency-Key,
#      and it prints throughput and the p50/p90/p99/max latency of the 202
#      answers;
#   3. stops the server (SIGTERM; the casts stay queued in the temp
#      database) and counts the casts by status;
#   4. for information, the same with a fresh server whose executor runs
#      every accepted cast (--workers INFO_WORKERS: it forks the echo
#      program on the same cores while the load goes on), and how far its
#      executor had got;
#   5. runs build/bench/sqlite-tx on a new WAL database in the temp dir with
#      CLIENTS threads and the same COUNT and DURATION_S, twice: the
#      threads contending inside SQLite (the yardstick of issue 3), then
#      queued on one mutex;
#   6. prints the API-only server rate / bare rate (target >= 0.5) and its
#      p99 (target < 10 ms) for the round, the executor run's figures as
#      information, and after the last round the medians.  The verdicts
#      use the API-only figures.
# With the defaults a round takes 40 to 50 s, the run about two and a half
# minutes (a bare run can overrun its DURATION_S by SQLite's 30 s busy
# timeout).  Nothing is built here; every process started is stopped on
# every exit, and the temp dir removed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
clients=${CLIENTS:-64}
count=${COUNT:-20000}
duration_s=${DURATION_S:-10}
rounds=${ROUNDS:-3}
info_workers=${INFO_WORKERS:-${WORKERS:-4}}
case $rounds in [1-9]) ;; *) echo "cast-load.sh: ROUNDS must be 1..9" >&2; exit 2 ;; esac
case $info_workers in [0-9]|[0-9][0-9]|[0-9][0-9][0-9]) ;; *) echo "cast-load.sh: INFO_WORKERS must be 0..256" >&2; exit 2 ;; esac

load=$build/bench/cast-load
bare=$build/bench/sqlite-tx
server=$build/server/spell-server
for b in "$load" "$bare" "$server"; do
    [ -x "$b" ] || { echo "cast-load.sh: $b is missing; build first (ninja -C $build)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/cast-load.XXXXXX)
. "$root/bench/lib.sh"
bench_stop_tenths=100    # the server drains its in-flight requests first
bench_traps

forget_pid() {
    local q keep=()
    for q in "${pids[@]}"; do
        [ "$q" = "$1" ] || keep+=("$q")
    done
    pids=("${keep[@]}")
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

result_field() {    # result_field FILE KEY
    sed -n "s/^RESULT .* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1
}

# serve R LABEL WORKERS: a fresh server with --workers WORKERS under the
# load; its output in $tmp/LABEL-R.out.
serve() {
    local r=$1 label=$2 workers=$3 db=$tmp/$2-$1.db key port spid extra=()

    key=$("$server" users add bench --db "$db" 2>"$tmp/users.log") || { cat "$tmp/users.log" >&2; return 1; }
    "$server" spells import "$root/assets/spells/echo.json" --db "$db" >/dev/null
    [ -n "${HTTP_THREADS:-}" ] && extra+=(--http-threads "$HTTP_THREADS")
    rm -f "$tmp/port"
    "$server" serve --db "$db" --listen 127.0.0.1:0 --port-file "$tmp/port" --access-log off \
        --rate-user-per-min 1000000 --rate-casts-per-hour 1000000 --workers "$workers" \
        "${extra[@]}" 2>"$tmp/$label-$r.log" &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 100); do
        [ -s "$tmp/port" ] && break
        sleep 0.1
    done
    port=$(cat "$tmp/port" 2>/dev/null || true)
    if [ -z "$port" ]; then
        echo "cast-load.sh: spell-server did not start:" >&2
        cat "$tmp/$label-$r.log" >&2
        return 1
    fi
    echo "== spell-server $("$server" --version | sed 's/^spell-server //'), pid $spid, port $port, --workers $workers${HTTP_THREADS:+, --http-threads $HTTP_THREADS} ($label); load $(cut -d' ' -f1-3 /proc/loadavg)"

    run_logged "$tmp/$label-$r.out" "$load" --url "http://127.0.0.1:$port" --key "$key" --spell echo \
        --body '{"inputs":{"message":"hello"}}' \
        --clients "$clients" --count "$count" --duration-s "$duration_s" || true

    kill -TERM "$spid"
    wait "$spid" 2>/dev/null || true
    forget_pid "$spid"
    if command -v sqlite3 >/dev/null; then
        echo "cast-load: casts by status when the load ended: $(sqlite3 "$db" \
            "SELECT group_concat(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n FROM casts GROUP BY status ORDER BY status)")"
    fi
    rm -f "$db"*
}

# round R: the API-only server, the informational one with an executor,
# then the bare SQLite yardstick; the round's ratios are appended to
# $tmp/ratios.
round() {
    local r=$1

    serve "$r" api 0 || return 1
    if [ "$info_workers" -gt 0 ]; then
        serve "$r" exec "$info_workers" || return 1
    fi

    # Bare SQLite, same shape, same count: first as issue 3 defines it
    # (the threads contending inside SQLite), then with the writers queued
    # on one mutex.
    echo "== bare SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1): $clients threads, WAL, synchronous=FULL; load $(cut -d' ' -f1-3 /proc/loadavg)"
    run_logged "$tmp/bare-$r.out" "$bare" --db "$tmp/bare-$r.db" --threads "$clients" \
        --count "$count" --duration-s "$duration_s" --writers busy || true
    run_logged "$tmp/bare-mutex-$r.out" "$bare" --db "$tmp/bare-mutex-$r.db" --threads "$clients" \
        --count "$count" --duration-s "$duration_s" --writers mutex || true
    rm -f "$tmp/bare-$r.db"* "$tmp/bare-mutex-$r.db"*

    # The round's ratios: the verdicts are the API-only server's.
    awk -v r="$r" -v sr="$(result_field "$tmp/api-$r.out" rate)" \
        -v br="$(result_field "$tmp/bare-$r.out" rate)" -v mr="$(result_field "$tmp/bare-mutex-$r.out" rate)" \
        -v p99="$(result_field "$tmp/api-$r.out" p99_us)" -v p90="$(result_field "$tmp/api-$r.out" p90_us)" \
        -v other="$(result_field "$tmp/api-$r.out" other)" -v clients="$clients" \
        -v er="$(result_field "$tmp/exec-$r.out" rate 2>/dev/null)" \
        -v ep99="$(result_field "$tmp/exec-$r.out" p99_us 2>/dev/null)" -v ew="$info_workers" '
    BEGIN {
        if (br > 0) printf "round %d: ratio server/bare SQLite (API only, --workers 0): %.2f (%.0f / %.0f per s; target >= 0.5: %s)\n", r, sr / br, sr, br, (sr / br >= 0.5 ? "met" : "MISSED")
        if (mr > 0) printf "round %d: ratio server/bare SQLite with writers on one mutex: %.2f (%.0f / %.0f per s)\n", r, sr / mr, sr, mr
        printf "round %d: server p99 at %d connections: %.2f ms (target < 10 ms: %s); p90 %.2f ms (original bar < 500 ms: %s)\n", r, clients, p99 / 1000, (p99 < 10000 ? "met" : "MISSED"), p90 / 1000, (p90 < 500000 ? "met" : "MISSED")
        if (other > 0) printf "round %d: answers other than 202: %d\n", r, other
        if (ew > 0 && br > 0 && er != "") printf "round %d: information, with the executor running (--workers %d): %.0f casts/s, ratio %.2f, p99 %.2f ms\n", r, ew, er, er / br, ep99 / 1000
    }' | tee -a "$tmp/ratios"
}

echo "cast-load: $clients clients, $count casts or ${duration_s} s per half, $rounds round(s); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
status=0
for r in $(seq "$rounds"); do
    echo "==== round $r of $rounds"
    round "$r" || status=1
done

# Medians over the rounds.
if [ -s "$tmp/ratios" ]; then
    echo "==== summary over $rounds round(s); load now $(cut -d' ' -f1-3 /proc/loadavg)"
    awk '
    function median(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    / ratio server\/bare SQLite \(API only/ { b[++nb] = $10 + 0 }
    / with writers on one mutex: / { m[++nm] = $11 + 0 }
    / server p99 at / { p[++np] = $8 + 0; q[np] = $16 + 0 }
    / information, with the executor/ { e[++ne] = $13 + 0; x[ne] = $15 + 0 }
    END {
        if (nb) printf "median ratio server/bare SQLite (API only, --workers 0; the verdict): %.2f over %d round(s) (target >= 0.5: %s)\n", median(b, nb), nb, (median(b, nb) >= 0.5 ? "met" : "MISSED")
        if (nm) printf "median ratio server/bare SQLite with writers on one mutex: %.2f\n", median(m, nm)
        if (np) printf "median server p99 (API only): %.2f ms (target < 10 ms: %s); median p90: %.2f ms\n", median(p, np), (median(p, np) < 10 ? "met" : "MISSED"), median(q, np)
        if (ne) printf "information: median ratio with the executor running: %.2f, median p99 %.2f ms (no verdict)\n", median(e, ne), median(x, ne)
    }' "$tmp/ratios"
fi
exit $status
