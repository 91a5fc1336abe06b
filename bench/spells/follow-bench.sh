#!/bin/sh
# follow-bench: the spell bench/agent-follow.sh casts a thousand times.  It
# reports that it is waiting, then opens the FIFO go_fifo for reading,
# which blocks without using the CPU until the benchmark opens it for
# writing (and returns at once for every cast started after that, because
# the benchmark keeps it open), then sleeps delay_ms milliseconds (0 by
# default) and finishes.  So every cast is running or queued, with an open
# progress stream, until the benchmark says go, and the completions then
# spread over the delays.
set -eu
input=$(cat)
field() {
    printf '%s\n' "$input" | sed -n "s/.*\"$1\"[ 	]*:[ 	]*\\([^,}]*\\).*/\\1/p" | tr -d '"'
}
fifo=$(field go_fifo)
delay_ms=$(field delay_ms)
[ -n "$delay_ms" ] || delay_ms=0
[ -n "$fifo" ] || { echo "go_fifo is required" >&2; exit 1; }

printf '{"progress": 10, "message": "waiting"}\n'
: <"$fifo"
if [ "$delay_ms" -gt 0 ]; then
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
fi
printf '{"result": {"delay_ms": %d}}\n' "$delay_ms"
