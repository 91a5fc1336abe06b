#!/bin/sh
# sse-bench: the spell bench/sse-hold.sh casts.  It waits (at most wait_s
# seconds, 150 by default) until the file go_file exists, which sse-hold
# creates once all its streams are open, then writes `events` progress
# records (20 by default) `interval_ms` apart (500 by default).  Each
# message is "bench <i> <unix-microseconds>", the time just before the
# record is written, so the client can measure fan-out latency from the
# moment the spell emitted the event.  Needs GNU date (%N).
set -eu
input=$(cat)
field() {
    printf '%s\n' "$input" | sed -n "s/.*\"$1\"[ 	]*:[ 	]*\\([^,}]*\\).*/\\1/p" | tr -d '"'
}
go=$(field go_file)
events=$(field events)
interval_ms=$(field interval_ms)
wait_s=$(field wait_s)
[ -n "$events" ] || events=20
[ -n "$interval_ms" ] || interval_ms=500
[ -n "$wait_s" ] || wait_s=150
[ -n "$go" ] || { echo "go_file is required" >&2; exit 1; }

printf '{"progress": 0, "message": "waiting for %s"}\n' "$go"
deadline=$(( $(date +%s) + wait_s ))
while [ ! -e "$go" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "the start file did not appear within ${wait_s} s" >&2
        exit 1
    fi
    sleep 0.05
done

# Events are due at start + (i-1) * interval, whatever the time spent
# forking date; the shell sleeps for the remainder.
start=$(date +%s%6N)
i=1
while [ "$i" -le "$events" ]; do
    due=$(( start + (i - 1) * interval_ms * 1000 ))
    now=$(date +%s%6N)
    if [ "$due" -gt "$now" ]; then
        left=$(( due - now ))
        sleep "$(printf '%d.%06d' $((left / 1000000)) $((left % 1000000)))"
    fi
    printf '{"progress": %d, "message": "bench %d %s"}\n' $((i * 100 / (events + 1))) "$i" "$(date +%s%6N)"
    i=$((i + 1))
done
printf '{"result": {"events": %d}}\n' "$events"
