#!/usr/bin/env bash
# The desktop helper (spell-agent-desktop) with the real parts: the agent
# runs ONE thread while it follows casts, the helper beside it holds the
# GLib threads; killed, the helper comes back and the keyring and the
# notifications work again; the agent SIGKILLed leaves no helper behind.
. "$(dirname "$0")/harness.sh"

h_need dbus-daemon dbus-send gnome-keyring-daemon secret-tool Xvfb dunst dunstctl jq curl perl
h_begin helper
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_desktop_all
check "the agent starts" h_agent
agent=$(h_pid agent)

helper_pid() { h_call agent.status | jq -r '.desktop_helper.pid'; }
helper_state() { h_call agent.status | jq -r '"\(.desktop_helper.state) \(.desktop_helper.starts)"'; }
parent_of() { awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null; }
# Gone, or a zombie nobody has reaped yet.
gone() { ! [ -e "/proc/$1" ] || awk '{ exit !($3 == "Z" || $3 == "X") }' "/proc/$1/stat" 2>/dev/null; }

hp=$(helper_pid)
check "agent.status names a running helper, the first one started ($(helper_state))" \
    test "$(helper_state)" = "running 1"
check "  whose parent is the agent (helper $hp)" test "$(parent_of "$hp")" = "$agent"
check "  and that is spell-agent-desktop" \
    grep -q 'spell-agent-desktop' "/proc/$hp/cmdline"
check "the agent process does not map GLib, libsecret or libnotify" \
    sh -c "! grep -Eq 'libglib|libgio|libsecret|libnotify' /proc/$agent/maps"

out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
check "signed in through the agent into the keyring" \
    test "$(jq -r '"\(.account) \(.source)"' <<<"$out")" = "tester keyring"
check "no key in the helper's command line or environment" \
    sh -c "! tr '\\0' '\\n' </proc/$hp/cmdline | grep -qF -- '$H_KEY' && ! tr '\\0' '\\n' </proc/$hp/environ | grep -qF -- '$H_KEY'"

# Three slow casts, so the agent follows streams while the threads are
# counted.
ids=()
for _ in 1 2 3; do
    ids+=("$(h_call cast.submit '{"spell":"slow","inputs":{"steps":4}}' | jq -r .local_id)")
done
running() { [ "$(h_call cast.get "{\"local_id\":\"${ids[0]}\"}" | jq -r .state)" = running ]; }
h_wait_for 150 running
check "a cast is running, followed by the agent" running
th=$(ls "/proc/$agent/task" | wc -l)
names=$(cat /proc/"$agent"/task/*/comm | sort | uniq -c | tr -s ' \n' ' ')
check "the agent process has exactly one thread while following ($th: $names)" test "$th" = 1
h_log "the helper's threads: $(cat /proc/"$hp"/task/*/comm | sort | uniq -c | tr -s ' \n' ' ')"
for id in "${ids[@]}"; do
    H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$id\",\"timeout_ms\":45000}" >/dev/null
done

# ---- the helper killed under the agent ----

kill -KILL "$hp"
back() { local s; s=$(helper_state); [ "$s" = "running 2" ]; }
h_wait_for 150 back
hp2=$(helper_pid)
check "the agent starts a new helper after the kill ($(helper_state), pid $hp2)" back
check "  the old one is gone" gone "$hp"
check "  the agent said so in its log" grep -q 'helper exited (killed by signal 9)' "$H_TMP/agent.log"
check "  the agent still runs one thread" test "$(ls "/proc/$agent/task" | wc -l)" = 1

out=$(h_call auth.login "{\"token\":\"$H_KEY\"}")
check "the keyring works again: signed in once more ($(jq -c . <<<"$out"))" \
    test "$(jq -r '"\(.account) \(.source)"' <<<"$out")" = "tester keyring"
check "  exactly one item for the server" \
    test "$(h_keyring_items | grep -c '^attribute.account')" = 1
st=$(h_call auth.status)
check "  auth.status: keyring, tester" \
    test "$(jq -r '"\(.source) \(.account)"' <<<"$st")" = "keyring tester"

lid=$(h_call cast.submit '{"spell":"echo","inputs":{"message":"after-restart"}}' | jq -r .local_id)
H_RPC_TIMEOUT=60 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":30000}" >/dev/null
notes=
shown() {
    notes=$(h_notifications)
    jq -s -e 'any(.[]; .summary == "echo succeeded")' >/dev/null 2>&1 <<<"$notes"
}
h_wait_for 300 shown
check "notifications work again: dunst shows the echo cast's" \
    grep -q '"summary":"echo succeeded"' <<<"$notes"
check "agent.status says notifications are on" \
    test "$(h_call agent.status | jq -r .notifications)" = true

# ---- the agent SIGKILLed ----

kill -KILL "$agent"
{ wait "$agent"; } 2>/dev/null
h_forget "$agent"
h_wait_for 100 gone "$hp2"
check "the agent SIGKILLed: its helper exits too (no orphan)" gone "$hp2"

h_done
