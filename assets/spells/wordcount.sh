#!/bin/sh
# wordcount: counts the words of the input "text".  Flat price.
set -eu
here=$(dirname "$0")
input=$(cat)
printf '{"progress": 10, "message": "reading"}\n'
text=$(printf '%s\n' "$input" | awk -v field=text -v decode=1 -f "$here/jsonstr.awk") || {
    echo "wordcount: no text in the inputs" >&2
    exit 2
}
words=$(printf '%s\n' "$text" | wc -w | tr -d ' ')
lines=$(printf '%s\n' "$text" | wc -l | tr -d ' ')
printf '{"log": "counted %s words"}\n' "$words"
printf '{"result": {"words": %s, "lines": %s}}\n' "$words" "$lines"
