#!/bin/sh
# The platform server links no desktop code (DESIGN.md: no GLib,
# libsecret, libnotify or ncurses), so it runs on a headless host.
# TAP: one case per forbidden library family.
bin=$1
if [ ! -x "$bin" ]; then
    echo "not ok 1 - $bin is not an executable"
    echo "1..1"
    exit 1
fi
libs=$(ldd "$bin" 2>&1) || { echo "not ok 1 - ldd failed: $libs"; echo "1..1"; exit 1; }
n=0
failed=0
for family in libglib libgobject libgio libsecret libnotify libncurses libtinfo libgtk; do
    n=$((n + 1))
    if printf '%s\n' "$libs" | grep -q "$family"; then
        echo "not ok $n - spell-server links $family"
        failed=1
    else
        echo "ok $n - spell-server does not link $family"
    fi
done
echo "1..$n"
exit $failed
