#!/usr/bin/env bash
# The agent without a working keyring (docs/agent.md, auth.login):
#   1. no session bus at all: it says so once in its log and falls back to
#      $XDG_CONFIG_HOME/spell/credentials (0600); --no-plaintext refuses
#      the file with -32011; SPELL_API_KEY works as the credential;
#   2. a locked login collection (gnome-keyring refuses to create items,
#      and no prompter exists on this headless box): the same fallback;
#   3. an unresponsive Secret Service (gnome-keyring-daemon stopped with
#      SIGSTOP, so it owns its bus name but never answers): the login
#      waits about 3 s, then falls back, and the verdict is kept so the
#      next request does not wait again.
. "$(dirname "$0")/harness.sh"

h_need dbus-daemon dbus-send gnome-keyring-daemon jq curl perl
h_begin no-keyring
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_server || h_skip_all "spell-server did not start"

cred_file=$XDG_CONFIG_HOME/spell/credentials
# Lines of the agent's log that say the keyring cannot be used.
keyring_complaints() {
    grep -Eic '(keyring|secret service).*(unavailable|not available|no session bus|not reachable|cannot|did not answer|timed out|refused|locked)|(unavailable|no session bus|timed out).*(keyring|secret service)' \
        "$H_TMP/agent.log"
}
now_ms() { date +%s%3N; }

# ---- 1. no session bus ----

check "the agent starts without a session bus" h_agent
t0=$(now_ms)
out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
t1=$(now_ms)
check "auth.login falls back to the file ($(jq -c . <<<"$out"))" test "$(jq -r .source <<<"$out")" = file
check "  without waiting for a bus that is not there ($((t1 - t0)) ms < 3000)" test $((t1 - t0)) -lt 3000
check "the credentials file exists" test -f "$cred_file"
check "  with mode 0600 ($(stat -c %a "$cred_file" 2>/dev/null))" test "$(stat -c %a "$cred_file" 2>/dev/null)" = 600
check "  inside a private directory ($(stat -c %a "$(dirname "$cred_file")"))" \
    test "$(( 0$(stat -c %a "$(dirname "$cred_file")") & 077 ))" = 0
st=$(h_call auth.status)
check "auth.status: signed in, source file, with the path" \
    test "$(jq -r '"\(.signed_in) \(.source) \(.path)"' <<<"$st")" = "true file $cred_file"
h_call agent.status >/dev/null
h_call auth.login "{\"token\":\"$H_KEY\"}" >/dev/null
n=$(keyring_complaints)
check "the agent said that the keyring is unavailable" test "$n" -ge 1
check "  once (said $n times)" test "$n" = 1
grep -Ei 'keyring|secret' "$H_TMP/agent.log" | sed 's/^/#   agent: /'
check "and never logged the key" test -z "$(grep -F -- "$H_KEY" "$H_TMP/agent.log")"
lid=$(h_call cast.submit '{"spell":"echo","inputs":{"message":"from the file"}}' | jq -r .local_id)
c=$(H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}")
check "a cast with the file's credential succeeds" test "$(jq -r .state <<<"$c")" = succeeded

h_stop agent
: >"$H_TMP/agent.log"
rm -f "$cred_file"
check "the agent starts with --no-plaintext" h_agent --no-plaintext
out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
check "auth.login then gets -32011" test "$(jq -r .error.code <<<"$out")" = -32011
check "  with a message" test -n "$(jq -r '.error.message // empty' <<<"$out")"
check "  and writes no file" test ! -e "$cred_file"
h_stop agent

export SPELL_API_KEY=$H_KEY
check "the agent starts with SPELL_API_KEY and no keyring" h_agent
st=$(h_call auth.status)
check "auth.status says source env" test "$(jq -r '"\(.signed_in) \(.source)"' <<<"$st")" = "true env"
lid=$(h_call cast.submit '{"spell":"echo","inputs":{"message":"from the env"}}' | jq -r .local_id)
c=$(H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}")
check "a cast with SPELL_API_KEY succeeds" test "$(jq -r .state <<<"$c")" = succeeded
check "SPELL_API_KEY is never written to a file" test ! -e "$cred_file"
h_stop agent
unset SPELL_API_KEY

# ---- 2. a locked collection ----

h_bus || h_skip_all "no session bus"
h_keyring || h_skip_all "gnome-keyring-daemon did not start"
dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null
check "the login collection is locked" \
    dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets/collection/login \
    org.freedesktop.DBus.Properties.Get string:org.freedesktop.Secret.Collection string:Locked |
    grep -q 'boolean true'
: >"$H_TMP/agent.log"
check "the agent starts with the locked keyring" h_agent
t0=$(now_ms)
out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
t1=$(now_ms)
check "auth.login falls back to the file ($(jq -c . <<<"$out"), $((t1 - t0)) ms)" \
    test "$(jq -r .source <<<"$out")" = file
check "  within the 3 s timeout and a margin ($((t1 - t0)) ms < 8000)" test $((t1 - t0)) -lt 8000
check "the file is mode 0600" test "$(stat -c %a "$cred_file" 2>/dev/null)" = 600
n=$(keyring_complaints)
check "the agent said once that the keyring is unavailable (said $n times)" test "$n" = 1
h_stop agent
rm -f "$cred_file"

# ---- 3. an unresponsive Secret Service ----

kill -STOP "$(h_pid keyring)"
: >"$H_TMP/agent.log"
ta=$(now_ms)
check "the agent starts while the Secret Service does not answer" h_agent
t0=$(now_ms)
out=$(H_RPC_TIMEOUT=30 h_call auth.login "{\"token\":\"$H_KEY\"}")
t1=$(now_ms)
took=$((t1 - t0))
check "auth.login falls back to the file ($(jq -c . <<<"$out"))" test "$(jq -r .source <<<"$out")" = file
# Part of the wait may have been spent at start-up, when the agent first
# looked for a stored credential (requests are served in order), so the
# lower bound counts from the agent's start.
check "  after the 3 s timeout, not the D-Bus default of 25 s ($took ms < 8000)" test "$took" -lt 8000
check "  having waited for it ($((t1 - ta)) ms since the agent started >= 2500)" test $((t1 - ta)) -ge 2500
t0=$(now_ms)
st=$(h_call auth.status)
t1=$(now_ms)
check "the next request does not wait again ($((t1 - t0)) ms < 1500)" test $((t1 - t0)) -lt 1500
check "  and says source file" test "$(jq -r .source <<<"$st")" = file
n=$(keyring_complaints)
check "the agent said that the keyring is unavailable" test "$n" -ge 1
check "  once (said $n times)" test "$n" = 1
check "the agent is still one process, answering" h_agent_answers

h_done
