#!/bin/sh
# slow: runs for about `steps` seconds (10 by default), reporting progress
# once a second: "step N of 10".
set -eu
input=$(cat)
steps=$(printf '%s\n' "$input" | sed -n 's/.*"steps"[ 	]*:[ 	]*\([0-9][0-9]*\).*/\1/p')
[ -n "$steps" ] || steps=10
i=1
while [ "$i" -le "$steps" ]; do
    sleep 1
    printf '{"progress": %d, "message": "step %d of %d"}\n' $((i * 100 / steps)) "$i" "$steps"
    i=$((i + 1))
done
printf '{"result": {"steps": %d}}\n' "$steps"
