#!/bin/bash
# The spell command line against a real spell-server on loopback (with a
# temporary database) and against tests/cli/fake-agent.py on a temporary
# socket; with a fourth argument, also through the real spell-agent.
#   test-cli.sh SPELL SPELL_SERVER SOURCE_ROOT [SPELL_AGENT]
# Speaks TAP.
set -u
SPELL=$1
SERVER=$2
ROOT=$3
AGENT=${4:-}

T=$(mktemp -d /tmp/spell-cli-test.XXXXXX)
SERVER_PID=
FAKE_PID=
cleanup() {
    [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

# run NAME EXPECTED_RC CMD...: runs CMD with stdout in $T/out, stderr in
# $T/err, and checks its exit status.
run() {
    local name=$1 want=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err" </dev/null
    local got=$?
    if [ "$got" = "$want" ]; then ok "$name"; else
        not_ok "$name" "exit $got, want $want" "stdout: $(head -c 400 "$T/out")" "stderr: $(head -c 400 "$T/err")"
    fi
}
# check NAME COMMAND-STRING: a shell test on the last outputs.
check() {
    if eval "$2"; then ok "$1"; else not_ok "$1" "failed: $2" "stdout: $(head -c 400 "$T/out")" "stderr: $(head -c 400 "$T/err")"; fi
}
have_jq() { command -v jq >/dev/null; }
jqget() { jq -r "$1" <"$T/out" 2>/dev/null; }

# ---- the server ----
export SPELL_DB=$T/server.db
"$SERVER" spells import "$ROOT/assets/spells/catalog.json" >/dev/null 2>&1
KEY=$("$SERVER" users add alice 2>/dev/null)
"$SERVER" --listen 127.0.0.1:0 --port-file "$T/port" --access-log off --db "$T/server.db" \
    --rate-user-per-min 100000 --rate-casts-per-hour 100000 \
    >"$T/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port" 2>/dev/null)
if [ -z "$PORT" ] || [ -z "$KEY" ]; then
    echo "Bail out! spell-server did not start"
    exit 1
fi
URL=http://127.0.0.1:$PORT

mkdir -p "$T/run" "$T/cfg" "$T/state" "$T/home"
chmod 700 "$T/run"
export HOME=$T/home XDG_RUNTIME_DIR=$T/run XDG_CONFIG_HOME=$T/cfg XDG_STATE_HOME=$T/state
export SPELL_API_URL=$URL SPELL_NO_SYSTEMD=1
unset SPELL_AGENT_SOCKET NO_COLOR
export SPELL_API_KEY=$KEY

# ---- usage errors: exit 2, naming the flag ----
run "no command is a usage error" 2 "$SPELL"
run "unknown command" 2 "$SPELL" frobnicate
run "unknown global flag" 2 "$SPELL" --frob ls
run "unknown flag" 2 "$SPELL" ls --frob
check "unknown flag is named" "grep -q -- \"'--frob'\" '$T/err'"
run "missing flag value" 2 "$SPELL" cast echo --budget-cap
check "missing value is named" "grep -q -- \"'--budget-cap' needs a value\" '$T/err'"
run "cast without a spell" 2 "$SPELL" cast
run "cast with a bad spell name" 2 "$SPELL" cast 'Bad Name!'
run "budget cap not a number" 2 "$SPELL" cast echo --budget-cap 5x --direct
run "budget cap negative" 2 "$SPELL" cast echo --budget-cap -5 --direct
run "-i without =" 2 "$SPELL" cast echo -i message --direct
run "-i of the wrong type" 2 "$SPELL" cast echo -i count=many --direct
check "-i type error names the input" "grep -q count '$T/err'"
run "-i unknown input" 2 "$SPELL" cast echo -i nosuch=1 --direct
echo '{"message": ' >"$T/bad.json"
run "--input-file malformed" 2 "$SPELL" cast echo --input-file "$T/bad.json" --direct
echo '[1]' >"$T/arr.json"
run "--input-file not an object" 2 "$SPELL" cast echo --input-file "$T/arr.json" --direct
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big.json"
run "--input-file over 64 KiB" 2 "$SPELL" cast echo --input-file "$T/big.json" --direct
run "show with a bad id" 2 "$SPELL" show nope
run "show with two ids" 2 "$SPELL" show lc_a lc_b
run "keys with a bad verb" 2 "$SPELL" keys frob
run "keys create without a name" 2 "$SPELL" keys create
run "keys revoke with a bad prefix" 2 "$SPELL" keys revoke 'ab/../c'
run "budget set without --hard" 2 "$SPELL" budget set
run "budget --hard without set" 2 "$SPELL" budget --hard 20
run "budget set \$9.99 refused locally" 2 "$SPELL" budget set --hard 9.99
check "\$9.99 message" "grep -q '\$10.00 and \$500.00' '$T/err'"
run "budget set \$500.01 refused locally" 2 "$SPELL" budget set --hard 500.01
run "budget set soft above hard" 2 "$SPELL" budget set --hard 20 --soft 30
run "budget set malformed amount" 2 "$SPELL" budget set --hard 1e3
run "usage with a bad period" 2 "$SPELL" usage --period 2026-13
run "agent with a bad verb" 2 "$SPELL" agent frob
run "login (the device flow) with the server unreachable: exit 1" 1 env SPELL_API_URL=http://127.0.0.1:9 "$SPELL" login
check "login names the server it could not reach" "grep -q 'cannot start the sign-in at http://127.0.0.1:9' '$T/err'"
for c in cast watch ls show cancel login logout whoami keys budget usage agent; do
    run "$c --help" 0 "$SPELL" $c --help
    check "$c --help shows usage and exit codes" "grep -q '^usage: spell $c' '$T/out' && grep -q '4 budget' '$T/out'"
done
run "spell --help" 0 "$SPELL" --help
check "spell --help documents exit codes" "grep -q '3  the cast failed' '$T/out'"
run "spell --version" 0 "$SPELL" --version

# ---- login --with-key: a typo is caught before any network ----
bad=${KEY%?}
last=${KEY: -1}
if [ "$last" = "A" ]; then bad=${bad}B; else bad=${bad}A; fi
"$SPELL" --socket "$T/nobody.sock" login --with-key <<<"$bad" >"$T/out" 2>"$T/err"
rc=$?
check "login --with-key with a mistyped key: exit 2" "[ $rc = 2 ]"
check "the typo is named, offline" "grep -q 'typo' '$T/err' && ! grep -q 'agent' '$T/err'"
"$SPELL" login --with-key <<<"not-a-key" >"$T/out" 2>"$T/err"
check "login --with-key with garbage: exit 2" "[ $? = 2 ] && grep -q 'not an API key' '$T/err'"
"$SPELL" login --with-key </dev/null >"$T/out" 2>"$T/err"
check "login --with-key with empty stdin: exit 2" "[ $? = 2 ]"

# ---- straight to the server ----
run "whoami without the agent (env)" 0 "$SPELL" whoami
check "whoami names the account and SPELL_API_KEY" "grep -q 'alice' '$T/out' && grep -q 'SPELL_API_KEY' '$T/out' && grep -q 'not running' '$T/err'"
run "whoami --json" 0 "$SPELL" whoami --json
have_jq && check "whoami --json fields" "[ \"\$(jqget .account)\" = alice ] && [ \"\$(jqget .source)\" = env ] && [ \"\$(jqget .api_url)\" = '$URL' ]"
run "whoami never prints the key" 0 "$SPELL" whoami --json
check "no secret in whoami" "! grep -q '$KEY' '$T/out' '$T/err'"

run "cast echo --direct --wait" 0 "$SPELL" cast echo -i message=hello -i count=3 --direct --wait --json
have_jq && check "the finished cast as JSON" "[ \"\$(jqget .status)\" = succeeded ] && [ \"\$(jqget .spell_key)\" = echo ]"
check "estimate shown before submitting" "grep -q 'Estimated cost of echo: \\\$0.00' '$T/err'"
CAST_ID=$(jqget .id)

echo '{"text": "one two three", "extra": 1}' >"$T/in.json"
echo '{"text": "one two three"}' >"$T/in.json"
run "cast --input-file with -i override" 0 "$SPELL" cast wordcount --input-file "$T/in.json" -i 'text=a b' --direct --wait --json
check "wordcount estimate 5 cents" "grep -q '\\\$0.05' '$T/err'"
have_jq && check "wordcount cost" "[ \"\$(jqget .cost_cents)\" = 5 ]"

run "cast --direct without --wait prints the id" 0 "$SPELL" cast echo --direct
check "a cast id on stdout" "grep -q '^cst_' '$T/out'"

run "cast of the fail spell: exit 3" 3 "$SPELL" cast fail --direct --wait
check "failed state shown" "grep -q 'failed' '$T/out'"

run "cast of an unknown spell" 1 "$SPELL" cast nosuchspell --direct
check "catalog sentence for SPELL_NOT_FOUND" "grep -q 'No published spell has that name' '$T/err'"

run "budget cap below the estimate: exit 4" 4 "$SPELL" cast wordcount -i text=x --budget-cap 1 --direct
run "show a server cast (no agent)" 0 "$SPELL" show "$CAST_ID" --json
have_jq && check "show --json" "[ \"\$(jqget .id)\" = '$CAST_ID' ]"
run "show a local id without the agent" 1 "$SPELL" show lc_0000
run "ls without the agent lists the server's casts" 0 "$SPELL" ls --json
have_jq && check "ls --json has casts" "[ \"\$(jqget '.casts | length')\" -ge 3 ]"
run "watch a finished server cast" 0 "$SPELL" watch "$CAST_ID"

# keys round trip
run "keys create" 0 "$SPELL" keys create laptop
NEWKEY=$(cat "$T/out")
check "keys create prints the key once, warns on stderr" "[[ '$NEWKEY' == sk_live_* ]] && grep -q 'not be shown again' '$T/err'"
PREFIX=$(echo "$NEWKEY" | cut -d_ -f3)
run "keys ls --json" 0 "$SPELL" keys ls --json
have_jq && check "the new key is listed, without secrets" "jq -e --arg p '$PREFIX' '.keys | map(select(.prefix == \$p and .name == \"laptop\")) | length == 1' '$T/out' >/dev/null && ! grep -q '$NEWKEY' '$T/out'"
run "keys ls" 0 "$SPELL" keys ls
check "keys ls table" "grep -q 'laptop' '$T/out'"
SPELL_API_KEY=$NEWKEY run "the new key works" 0 "$SPELL" whoami
run "keys revoke" 0 "$SPELL" keys revoke "$PREFIX"
SPELL_API_KEY=$NEWKEY run "the revoked key is refused" 1 "$SPELL" whoami
check "UNAUTHORIZED sentence" "grep -q 'not signed in, or your key' '$T/err'"
run "revoking again: not found" 1 "$SPELL" keys revoke "$PREFIX"

# budget
run "budget" 0 "$SPELL" budget --json
have_jq && check "default budget \$50" "[ \"\$(jqget .hard_limit_cents)\" = 5000 ]"
run "budget set --hard 12.50 --soft 10" 0 "$SPELL" budget set --hard 12.50 --soft 10 --json
have_jq && check "budget set took" "[ \"\$(jqget .hard_limit_cents)\" = 1250 ] && [ \"\$(jqget .soft_limit_cents)\" = 1000 ]"
run "budget set --hard \$500" 0 "$SPELL" budget set --hard '$500'
check "budget shown" "grep -q 'hard limit: \\\$500.00' '$T/out'"
run "budget set --hard 10" 0 "$SPELL" budget set --hard 10

# usage
run "usage" 0 "$SPELL" usage
check "usage shows a bar per day" "grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} .*#' '$T/out'"
run "usage --json" 0 "$SPELL" usage --json
have_jq && check "usage --json spent" "[ \"\$(jqget .spent_cents)\" -ge 5 ]"
PERIOD=$(jqget .period)
run "usage --period" 0 "$SPELL" usage --period "$PERIOD" --json

# 402: a $10 budget is spent by metered casts of 60 KB inputs (60 cents each)
printf '{"text": "%s"}' "$(head -c 60000 /dev/zero | tr '\0' a)" >"$T/upper.json"
rc=0
for i in $(seq 1 40); do
    "$SPELL" cast uppercase --input-file "$T/upper.json" --direct >/dev/null 2>"$T/err"
    rc=$?
    [ $rc != 0 ] && break
done
check "a cast past the hard limit: exit 4 (402)" "[ $rc = 4 ]"
check "402 with the catalog sentence" "grep -qi 'budget' '$T/err'"
run "budget back to \$50" 0 "$SPELL" budget set --hard 50

# NO_COLOR and non-TTY output carry no escapes
NO_COLOR=1 run "NO_COLOR show" 0 "$SPELL" show "$CAST_ID"
check "no escape sequences" "! grep -q $'\\033' '$T/out'"
if command -v script >/dev/null; then
    NO_COLOR=1 script -qec "$SPELL show $CAST_ID" /dev/null >"$T/out" 2>&1
    check "NO_COLOR on a terminal: no colour" "! grep -q $'\\033\\[3' '$T/out'"
    script -qec "$SPELL show $CAST_ID" /dev/null >"$T/out" 2>&1
    check "colour on a terminal without NO_COLOR" "grep -q $'\\033\\[32m' '$T/out'"
fi

# ---- through the fake agent ----
unset SPELL_API_KEY
SOCK=$T/run/spell/agent.sock
mkdir -p "$T/run/spell" && chmod 700 "$T/run/spell"
run "agent status when nothing runs: exit 1" 1 "$SPELL" agent status
check "says it is not running" "grep -q 'not running' '$T/err'"
run "agent status --json when nothing runs" 1 "$SPELL" agent status --json
check "running false" "grep -q '\"running\":false' '$T/out'"
run "whoami signed out, no agent" 1 "$SPELL" whoami
run "cast without the agent" 1 "$SPELL" cast echo

if command -v python3 >/dev/null; then
    python3 "$ROOT/tests/cli/fake-agent.py" "$SOCK" "" "$URL" >"$T/fake.log" 2>&1 &
    FAKE_PID=$!
    for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done

    run "agent status" 0 "$SPELL" agent status
    check "agent status shows the pid" "grep -q \"pid: *$FAKE_PID\" '$T/out'"
    run "agent status --json" 0 "$SPELL" agent status --json
    have_jq && check "agent status --json protocol" "[ \"\$(jqget .protocol)\" = 1 ]"
    run "whoami through the agent, signed out: exit 1" 1 "$SPELL" whoami
    run "keys ls signed out" 1 "$SPELL" keys ls
    check "signed-out hint" "grep -q 'spell login' '$T/err'"
    "$SPELL" login --with-key <<<"$KEY" >"$T/out" 2>"$T/err"
    check "login --with-key through the agent" "[ $? = 0 ] && grep -q 'Signed in as alice' '$T/out' && ! grep -q '$KEY' '$T/out' '$T/err'"
    run "whoami through the agent" 0 "$SPELL" whoami
    check "whoami shows the file path" "grep -q '/fake/credentials' '$T/out'"
    run "whoami --json through the agent" 0 "$SPELL" whoami --json
    have_jq && check "whoami --json source" "[ \"\$(jqget .source)\" = file ] && [ \"\$(jqget .account)\" = alice ]"
    run "keys ls with the agent's token" 0 "$SPELL" keys ls --json
    # spell links no libcurl: the commands that only ask the agent never
    # load the network module, the others load it when they need it.
    LD_DEBUG=files run "whoami through the agent, LD_DEBUG=files" 0 "$SPELL" whoami
    check "whoami loads neither the network module nor libcurl" "grep -q 'calling init' '$T/err' && ! grep -Eq 'spell-net\.so|libcurl|libcrypto' '$T/err'"
    LD_DEBUG=files run "ls through the agent, LD_DEBUG=files" 0 "$SPELL" ls --json
    check "ls through the agent loads no network module" "grep -q 'calling init' '$T/err' && ! grep -Eq 'spell-net\.so|libcurl' '$T/err'"
    LD_DEBUG=files run "keys ls, LD_DEBUG=files" 0 "$SPELL" keys ls --json
    check "keys ls loads the network module and libcurl" "grep -q 'spell-net\.so' '$T/err' && grep -q 'libcurl' '$T/err'"
    mkdir -p "$T/lone" && cp "$SPELL" "$T/lone/spell"
    run "spell without its module beside it: whoami through the agent" 0 "$T/lone/spell" whoami
    check "whoami (no module) shows the account" "grep -q 'alice' '$T/out'"
    run "spell without its module beside it: ls through the agent" 0 "$T/lone/spell" ls
    run "cast echo through the agent" 0 "$SPELL" cast echo -i message=hi
    check "prints the local id" "grep -q '^lc_' '$T/out'"
    LID=$(cat "$T/out")
    run "cast --json through the agent" 0 "$SPELL" cast echo --json
    have_jq && check "cast --json local_id" "[[ \"\$(jqget .local_id)\" == lc_* ]]"
    run "cast --wait through the agent" 0 "$SPELL" cast echo --wait --json
    have_jq && check "final local cast" "[ \"\$(jqget .state)\" = succeeded ] && [ \"\$(jqget .final)\" = true ]"
    check "progress lines from events" "grep -q 'running 50%' '$T/err'"
    run "cast --wait of a failing spell: exit 3" 3 "$SPELL" cast fail --wait
    run "cast --wait rejected with 402: exit 4" 4 "$SPELL" cast slow --wait
    run "show a local cast" 0 "$SPELL" show "$LID" --json
    have_jq && check "show local_id" "[ \"\$(jqget .local_id)\" = '$LID' ]"
    run "show an unknown local cast" 1 "$SPELL" show lc_999
    check "no such cast" "grep -q 'No such cast' '$T/err'"
    run "ls through the agent" 0 "$SPELL" ls --json
    have_jq && check "ls lists the agent's casts" "[ \"\$(jqget '.casts | length')\" -ge 4 ]"
    run "ls table" 0 "$SPELL" ls
    check "ls header" "grep -q 'LOCAL ID' '$T/out'"
    run "watch a local cast" 0 "$SPELL" watch "$LID"
    run "cancel a local cast" 0 "$SPELL" cancel "$LID" --json
    have_jq && check "canceled" "[ \"\$(jqget .state)\" = canceled ]"
    run "logout" 0 "$SPELL" logout
    check "logout removed" "grep -q 'removed' '$T/out'"
    run "logout again" 0 "$SPELL" logout
    check "nothing stored" "grep -q 'No credential' '$T/out'"
    "$SPELL" login --with-key <<<"sk_live_xxxxxxxx_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" >"$T/out" 2>"$T/err"
    check "a wrong-check key is caught offline" "[ $? = 2 ]"
    run "agent stop" 0 "$SPELL" agent stop
    wait "$FAKE_PID" 2>/dev/null
    FAKE_PID=
    run "agent status after stop" 1 "$SPELL" agent status
else
    echo "# python3 missing: fake-agent tests skipped"
fi

# ---- through the real agent, when it is built ----
if [ -n "$AGENT" ] && [ -x "$AGENT" ]; then
    export SPELL_AGENT_BIN=$AGENT
    rm -f "$SOCK"
    run "agent start (real)" 0 "$SPELL" agent start
    run "agent status (real)" 0 "$SPELL" agent status --json
    "$SPELL" login --with-key <<<"$KEY" >"$T/out" 2>"$T/err"
    check "login (real agent)" "[ $? = 0 ]"
    run "cast --wait through the real agent" 0 "$SPELL" cast echo -i message=real --wait --json
    have_jq && check "succeeded (real agent)" "[ \"\$(jqget .state)\" = succeeded ]"
    run "cast fail --wait through the real agent: exit 3" 3 "$SPELL" cast fail --wait
    run "ls (real agent)" 0 "$SPELL" ls --json
    run "agent stop (real)" 0 "$SPELL" agent stop
else
    echo "# spell-agent not built: real-agent tests skipped"
fi

echo "1..$n"
[ $failed = 0 ]
