#!/bin/sh
# Runs the desktop module's tests, each scene in the session it needs, and
# prints one TAP stream.
#
#   run-desktop-tests.sh TEST-DESKTOP FAKE-SECRETS HELPER FAKE-HELPER
#
# HELPER is spell-agent-desktop, FAKE-HELPER the misbehaving stand-in;
# test-desktop finds them in SPELL_TEST_DESKTOP_HELPER and
# SPELL_TEST_FAKE_HELPER_BIN.
#
# Scenes (see test-desktop.c):
#   unit      no session needed
#   nobus     no session bus at all: the environment and file fallbacks
#   keyring   dbus-run-session + gnome-keyring-daemon, created and unlocked
#             with an empty password; secret-tool checks the stored item
#   hang      dbus-run-session + fake-secrets, which owns
#             org.freedesktop.secrets and never answers
#   notify    dbus-run-session + Xvfb + dunst with a private dunstrc;
#             dunstctl history checks what was shown
#   nonotify  dbus-run-session with no notification server
#
# Each scene runs in its own HOME and XDG directories under one scratch
# directory, so no real keyring or config of the user running it is read
# or touched.  The script calls itself inside dbus-run-session for the
# inner part of a scene ("inner-<scene>").
set -u

self=$0

# One TAP line from the shell, collected like the program's.
shell_check() {
    desc=$1
    shift
    if "$@" >/dev/null 2>&1; then
        echo "ok - $desc"
    else
        echo "not ok - $desc"
    fi
}

scene_env() {
    dir=$1
    mkdir -p "$dir/home" "$dir/run" "$dir/config" "$dir/data" "$dir/cache"
    chmod 700 "$dir" "$dir/run"
    export HOME="$dir/home" XDG_RUNTIME_DIR="$dir/run" XDG_CONFIG_HOME="$dir/config"
    export XDG_DATA_HOME="$dir/data" XDG_CACHE_HOME="$dir/cache"
    unset DISPLAY WAYLAND_DISPLAY SPELL_API_KEY GNOME_KEYRING_CONTROL SSH_AUTH_SOCK
}

# Waits until a bus name has an owner, without activating it.
wait_name() {
    i=0
    while [ $i -lt 100 ]; do
        if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null | grep -q true; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

case ${1:-} in
inner-keyring)
    test=$2 scratch=$3
    out=$(printf '\n' | gnome-keyring-daemon --unlock --components=secrets 2>/dev/null)
    for kv in $out; do
        export "$kv"
    done
    shell_check "gnome-keyring owns org.freedesktop.secrets" wait_name org.freedesktop.secrets
    "$test" keyring "$scratch"
    secret-tool search --all server http://127.0.0.1:8080 >"$scratch/items.txt" 2>&1
    sed 's/^/# secret-tool: /; /secret = /d' "$scratch/items.txt"
    shell_check "secret-tool sees the account attribute" \
        grep -qx 'attribute.account = dave' "$scratch/items.txt"
    shell_check "secret-tool sees the server attribute" \
        grep -qx 'attribute.server = http://127.0.0.1:8080' "$scratch/items.txt"
    shell_check "secret-tool sees the schema" \
        grep -qx 'schema = io.spell.Credential' "$scratch/items.txt"
    shell_check "secret-tool sees the label" \
        grep -qx 'label = Spell API key for dave at http://127.0.0.1:8080' "$scratch/items.txt"
    shell_check "secret-tool reads the token" \
        sh -c "[ \"\$(secret-tool lookup server http://127.0.0.1:8080)\" = sk_live_left ]"
    shell_check "exactly one item for the server" \
        sh -c "[ \$(grep -c '^attribute.server' '$scratch/items.txt') -eq 1 ]"
    exit 0
    ;;
inner-hang)
    test=$2 fake=$3 scratch=$4
    "$fake" >"$scratch/fake.out" &
    fake_pid=$!
    i=0
    while [ $i -lt 100 ] && ! grep -q ready "$scratch/fake.out" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    shell_check "the silent Secret Service is on the bus" grep -q ready "$scratch/fake.out"
    "$test" hang "$scratch"
    kill "$fake_pid" 2>/dev/null
    wait "$fake_pid" 2>/dev/null
    exit 0
    ;;
inner-notify)
    test=$2 scratch=$3
    # dunstctl history carries no urgency, so a rule writes it into the
    # rendered message of critical notes.
    cat >"$scratch/dunstrc" <<'EOF'
[global]
    markup = full
    idle_threshold = 0
[spell_critical]
    msg_urgency = critical
    format = "CRITICAL %s\n%b"
EOF
    Xvfb -displayfd 3 -nolisten tcp 3>"$scratch/display" 2>"$scratch/xvfb.log" &
    xvfb_pid=$!
    i=0
    while [ $i -lt 100 ] && ! [ -s "$scratch/display" ]; do
        sleep 0.1
        i=$((i + 1))
    done
    export DISPLAY=":$(cat "$scratch/display")"
    dunst -config "$scratch/dunstrc" >"$scratch/dunst.log" 2>&1 &
    dunst_pid=$!
    shell_check "dunst owns org.freedesktop.Notifications" wait_name org.freedesktop.Notifications
    "$test" notify "$scratch"
    sleep 0.5
    dunstctl close-all
    sleep 0.5
    dunstctl history >"$scratch/history.json" 2>&1
    h="$scratch/history.json"
    shell_check "dunst shows the summary" \
        sh -c "jq -e '[.data[0][] | select(.summary.data == \"Cast succeeded\")] | length == 1' '$h'"
    shell_check "dunst shows the body, escaped as markup" \
        sh -c "jq -e '.data[0][] | select(.summary.data == \"Cast succeeded\") | .body.data == \"echo finished: 3 &lt; 4 &amp; done\"' '$h'"
    shell_check "a normal note is not critical" \
        sh -c "jq -e '.data[0][] | select(.summary.data == \"Cast succeeded\") | .message.data | startswith(\"CRITICAL\") | not' '$h'"
    shell_check "the app name is ours" \
        sh -c "jq -e '.data[0][] | select(.summary.data == \"Cast succeeded\") | .appname.data == \"spell-agent-test\"' '$h'"
    shell_check "a budget problem is critical, bad bytes replaced" \
        sh -c "jq -e '.data[0][] | select(.summary.data == \"Budget exceeded\") | (.body.data == \"bad ? byte\") and (.message.data == \"CRITICAL Budget exceeded\\nbad ? byte\")' '$h'"
    shell_check "a helper started again after a kill shows notes" \
        sh -c "jq -e '[.data[0][] | select(.summary.data == \"After restart\")] | length == 1' '$h'"
    jq -c '.data[0][] | {summary: .summary.data, body: .body.data, message: .message.data}' "$h" | sed 's/^/# history: /'
    kill "$dunst_pid" "$xvfb_pid" 2>/dev/null
    wait 2>/dev/null
    exit 0
    ;;
inner-nonotify)
    test=$2 scratch=$3
    "$test" nonotify "$scratch"
    exit 0
    ;;
scene)
    name=$2 test=$3 fake=$4 dir=$5
    scene_env "$dir"
    case $name in
    unit | nobus)
        DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent exec "$test" "$name" "$dir"
        ;;
    hang)
        exec dbus-run-session -- sh "$self" inner-hang "$test" "$fake" "$dir"
        ;;
    *)
        exec dbus-run-session -- sh "$self" "inner-$name" "$test" "$dir"
        ;;
    esac
    ;;
esac

test=$1
fake=$2
SPELL_TEST_DESKTOP_HELPER=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
SPELL_TEST_FAKE_HELPER_BIN=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
export SPELL_TEST_DESKTOP_HELPER SPELL_TEST_FAKE_HELPER_BIN
scratch=$(mktemp -d "${TMPDIR:-/tmp}/spell-desktop.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
trap 'exit 1' INT TERM
n=0
failed=0

# The programs a scene needs beyond the test itself.
scene_needs() {
    case $1 in
    keyring) echo dbus-run-session dbus-send gnome-keyring-daemon secret-tool ;;
    hang | nonotify) echo dbus-run-session dbus-send ;;
    notify) echo dbus-run-session dbus-send Xvfb dunst dunstctl jq ;;
    esac
}

# Runs one scene with a time limit and folds its TAP into ours.
run_scene() {
    name=$1
    for prog in $(scene_needs "$name"); do
        if ! command -v "$prog" >/dev/null 2>&1; then
            n=$((n + 1))
            echo "ok $n - $name # SKIP $prog is not installed"
            return
        fi
    done
    out="$scratch/$name.tap"
    err="$scratch/$name.err"
    mkdir -p "$scratch/$name"
    timeout 180 sh "$self" scene "$name" "$test" "$fake" "$scratch/$name" >"$out" 2>"$err"
    rc=$?
    while IFS= read -r line; do
        case $line in
        "ok "* | "not ok "*)
            n=$((n + 1))
            desc=$(printf '%s\n' "$line" | sed 's/^\(not \)\{0,1\}ok *[0-9]* *- *//')
            case $line in
            "not ok "*)
                failed=$((failed + 1))
                echo "not ok $n - $name: $desc"
                ;;
            *) echo "ok $n - $name: $desc" ;;
            esac
            ;;
        1..*) ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$out"
    bad=0
    [ $rc -ne 0 ] && bad=1
    grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$err" && bad=1
    if [ $bad -ne 0 ] || [ $failed -ne 0 ]; then
        sed 's/^/# stderr: /' "$err" | tail -60
    fi
    if [ $bad -ne 0 ]; then
        n=$((n + 1))
        failed=$((failed + 1))
        echo "not ok $n - $name: exited with status $rc"
    fi
}

for scene in unit nobus keyring hang notify nonotify; do
    run_scene $scene
done
echo "1..$n"
[ $failed -eq 0 ]
