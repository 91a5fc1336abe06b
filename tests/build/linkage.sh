#!/bin/sh
# What the programs link.  TAP.
#
#   linkage.sh SPELL_SERVER
#       The platform server links no desktop code (DESIGN.md: no GLib,
#       libsecret, libnotify or ncurses), so it runs on a headless host: one
#       case per forbidden library family.
#
#   linkage.sh --cli SPELL MODULE_DIR
#       The command line links neither libcurl nor the TLS and crypto
#       libraries (they live in the network module spell-net.so, opened only
#       by the commands that need it; agent/cli/net.h), nor desktop code.
#       Then the module: beside SPELL, exporting one symbol.  Then spell
#       copied alone into an empty directory, so no module is found: the
#       commands that need it fail with a clear message and exit status 1,
#       the others still work.  MODULE_DIR is the installed module
#       directory; when a module is installed there those cases are skipped.
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; failed=1; }
check() { if [ "$1" = 0 ]; then ok "$2"; else not_ok "$2"; fi; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

mode=server
if [ "$1" = --cli ]; then
    mode=cli
    shift
fi
bin=$1
if [ ! -x "$bin" ]; then
    echo "not ok 1 - $bin is not an executable"
    echo "1..1"
    exit 1
fi
libs=$(ldd "$bin" 2>&1) || { echo "not ok 1 - ldd failed: $libs"; echo "1..1"; exit 1; }

if [ "$mode" = server ]; then
    for family in libglib libgobject libgio libsecret libnotify libncurses libtinfo libgtk; do
        if printf '%s\n' "$libs" | grep -q "$family"; then
            not_ok "spell-server links $family"
        else
            ok "spell-server does not link $family"
        fi
    done
    echo "1..$n"
    exit $failed
fi

# ---- spell ----
module_dir=$2
needed=$(readelf -d "$bin" 2>&1) || { echo "not ok 1 - readelf failed: $needed"; echo "1..1"; exit 1; }
needed=$(printf '%s\n' "$needed" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
if printf '%s\n' "$needed" | grep -q '^libc\.so'; then
    ok "readelf -d lists spell's own libraries ($(printf '%s' "$needed" | tr '\n' ' '))"
else
    not_ok "readelf -d lists no libc for spell: $needed"
fi
# DT_NEEDED, and ldd for everything loaded at start (what those pull in).
for family in libcurl libssl libcrypto libgnutls libnghttp2 libgssapi libldap libglib libsecret \
    libnotify libncurses; do
    if printf '%s\n' "$needed" | grep -q "^$family"; then
        not_ok "spell has $family in DT_NEEDED"
    elif printf '%s\n' "$libs" | grep -q "$family"; then
        not_ok "spell loads $family at start (through another library)"
    else
        ok "spell does not link $family"
    fi
done

module=$(dirname "$bin")/spell-net.so
if [ -f "$module" ] && readelf -d "$module" | grep -q 'NEEDED.*libcurl'; then
    ok "spell-net.so beside spell links libcurl"
else
    not_ok "spell-net.so beside spell is missing or does not link libcurl"
fi
exports=$(nm -D --defined-only "$module" 2>&1 | awk '{ print $NF }' | sort | tr '\n' ' ')
check "$([ "$exports" = "spell_cli_net " ]; echo $?)" "spell-net.so exports spell_cli_net only ($exports)"

tmp=$(mktemp -d /tmp/linkage.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/home" "$tmp/run"
chmod 700 "$tmp/run"
cp "$bin" "$tmp/bin/spell"
key=sk_live_ABCDEFGH_0123456789abcdefghijABCDEFGHIJ012345
# No agent (an empty runtime dir), a server nobody listens on.
lone() {
    env -i PATH=/usr/bin:/bin HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/config" \
        XDG_STATE_HOME="$tmp/home/state" XDG_RUNTIME_DIR="$tmp/run" \
        SPELL_API_URL=http://127.0.0.1:9 ${ASAN_OPTIONS:+ASAN_OPTIONS=$ASAN_OPTIONS} \
        ${LSAN_OPTIONS:+LSAN_OPTIONS=$LSAN_OPTIONS} "$@"
}

"$tmp/bin/spell" --version >"$tmp/out" 2>&1
check "$(grep -q '^spell ' "$tmp/out"; echo $?)" "spell alone: --version works without the module"
lone "$tmp/bin/spell" whoami >"$tmp/out" 2>"$tmp/err" </dev/null
rc=$?
# Without an agent and credentials whoami never gets as far as the module.
check "$([ $rc = 1 ] && grep -q 'not signed in' "$tmp/err" && ! grep -q 'module' "$tmp/err"; echo $?)" \
    "spell alone: whoami without an agent says it is not signed in (exit $rc)"

if [ -e "$module_dir/spell-net.so" ]; then
    for c in "keys ls" "cast echo --direct" "login --with-key" "card" "garbage module" \
        "module without the entry"; do
        skip "spell alone: $c" "a module is installed in $module_dir"
    done
else
    want="network module spell-net.so, which is missing: it is neither beside the spell executable nor in $module_dir"
    # expect NAME EXIT_STATUS GREP_PATTERN COMMAND...
    expect() {
        name=$1 want_rc=$2 pattern=$3
        shift 3
        lone "$@" >"$tmp/out" 2>"$tmp/err" <"$tmp/stdin"
        rc=$?
        if [ "$rc" = "$want_rc" ] && grep -qF "$pattern" "$tmp/err"; then
            ok "$name"
        else
            not_ok "$name (exit $rc, want $want_rc)"
            sed 's/^/# /' "$tmp/err"
        fi
    }
    : >"$tmp/stdin"
    expect "spell alone: keys ls says the module is missing, exit 1" 1 "$want" \
        env SPELL_API_KEY=$key "$tmp/bin/spell" keys ls
    expect "spell alone: cast --direct says the module is missing, exit 1" 1 "$want" \
        env SPELL_API_KEY=$key "$tmp/bin/spell" cast echo --direct
    echo "$key" >"$tmp/stdin"
    expect "spell alone: login --with-key says the module is missing, exit 1" 1 "$want" \
        "$tmp/bin/spell" login --with-key
    : >"$tmp/stdin"
    expect "spell alone: card says the module is missing, exit 1" 1 "hint: the module holds" \
        env SPELL_API_KEY=$key "$tmp/bin/spell" card
    # A file of that name that is not a shared object, then a shared object
    # that is not the module.
    printf 'not an ELF file\n' >"$tmp/bin/spell-net.so"
    expect "spell alone: a garbage module is refused, exit 1" 1 "cannot load the network module" \
        env SPELL_API_KEY=$key "$tmp/bin/spell" keys ls
    other=$(printf '%s\n' "$libs" | sed -n 's/.*libcjson[^ ]* => \([^ ]*\) .*/\1/p' | head -n 1)
    if [ -n "$other" ] && cp "$other" "$tmp/bin/spell-net.so"; then
        expect "spell alone: a library without the entry is refused, exit 1" 1 \
            "is not spell's network module (no spell_cli_net)" \
            env SPELL_API_KEY=$key "$tmp/bin/spell" keys ls
    else
        not_ok "spell alone: no libcjson found to stand in for a wrong module"
    fi
fi
echo "1..$n"
exit $failed
