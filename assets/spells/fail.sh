#!/bin/sh
# fail: always fails, the way a broken spell does: a message on stderr
# and exit status 3.
set -eu
cat >/dev/null
printf '{"progress": 30, "message": "about to fail"}\n'
echo "fail: this spell fails on purpose" >&2
exit 3
