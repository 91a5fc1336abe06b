#!/bin/sh
# uppercase: returns the input "text" in capitals.  Metered: the price
# grows with the size of the input.
set -eu
here=$(dirname "$0")
input=$(cat)
printf '{"progress": 20, "message": "converting"}\n'
upper=$(printf '%s\n' "$input" | awk -v field=text -v upper=1 -f "$here/jsonstr.awk") || {
    echo "uppercase: no text in the inputs" >&2
    exit 2
}
printf '{"progress": 90, "message": "done"}\n'
printf '{"result": {"text": "%s"}}\n' "$upper"
