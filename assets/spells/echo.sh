#!/bin/sh
# echo: returns its inputs unchanged.  Free.
set -eu
input=$(cat)
printf '{"progress": 50, "message": "echoing"}\n'
printf '{"result": %s}\n' "$input"
