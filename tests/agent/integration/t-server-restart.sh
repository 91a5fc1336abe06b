#!/usr/bin/env bash
# The server restarts while the agent follows a running cast: the agent
# reconnects with Last-Event-ID and its subscribers get exactly the events
# the server stored, none lost and none twice.
#
# The server re-runs a cast that was running when it stopped (exec.h,
# exec_recover), so its stored events repeat the steps ("step 1 of 8",
# "step 2 of 8", then "step 1 of 8" again under new ids): the comparison is
# of the whole sequence of (kind, message), not of a set.
#
#   1. a quick restart (TERM, start again at once on the same port): the
#      sequences must be equal;
#   2. an outage of 8 s: the stream fails past its three tries and the
#      agent may poll meanwhile (docs/agent.md, Following), so events can
#      be skipped, but what it delivers must still be in the server's
#      order with nothing twice, and the cast must end succeeded.
. "$(dirname "$0")/harness.sh"

h_need jq curl perl
h_begin server-restart
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_server || h_skip_all "spell-server did not start"
export SPELL_API_KEY=$H_KEY    # no keyring needed here
check "the agent starts" h_agent

# The (kind message) lines the server stored for a cast, the queued event
# left out (the agent reports its own cast.queued and cast.accepted).
server_seq() {
    h_api_events "$1" | jq -r 'select(.event != "cast.queued") | "\(.event) \(.data.message)"'
}
# The same from a subscriber's file, for one local id.
agent_seq() {
    jq -r --arg id "$2" 'select(.method == "event" and .params.cast.local_id == $id) | .params |
        select(.kind | test("^cast\\.(started|progress|log|succeeded|failed|canceled)$")) |
        "\(.kind) \(.cast.message)"' "$1"
}
# Whether the lines of file A appear in file B in order (a subsequence).
subsequence() {
    awk 'BEGIN { n = 0; i = 0 } NR == FNR { a[n++] = $0; next } i < n && $0 == a[i] { i++ } END { exit !(i == n) }' "$1" "$2"
}

run_case() {    # run_case NAME DOWN_SECONDS STEPS
    local name=$1 down=$2 steps=$3 sub=$H_TMP/events.$1 lid cid c
    perl "$H_DIR/rpc.pl" --socket "$H_SOCK" --timeout 180 \
        --until '"kind":"cast\.(succeeded|failed|canceled|rejected)"' \
        '{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{}}' >"$sub" 2>&1 &
    h_track subscriber $!
    h_wait_for 50 grep -q '"subscribed"' "$sub"
    lid=$(h_call cast.submit "{\"spell\":\"slow\",\"inputs\":{\"steps\":$steps}}" | jq -r .local_id)
    check "$name: cast.submit answers a local id ($lid)" grep -q '^lc_' <<<"$lid"
    h_wait_for 150 grep -q "\"step 2 of $steps\"" "$sub"
    check "$name: the agent relays step 2 before the restart" grep -q "\"step 2 of $steps\"" "$sub"
    h_stop server
    sleep "$down"
    check "$name: the server starts again on port $H_PORT after ${down} s" h_server
    c=$(H_RPC_TIMEOUT=120 h_call cast.wait "{\"local_id\":\"$lid\",\"timeout_ms\":90000}")
    cid=$(jq -r .cast_id <<<"$c")
    check "$name: the cast ends succeeded through the agent" test "$(jq -r .state <<<"$c")" = succeeded
    h_wait_for 100 grep -q '"kind":"cast.succeeded"' "$sub"
    server_seq "$cid" >"$H_TMP/$name.server"
    agent_seq "$sub" "$lid" >"$H_TMP/$name.agent"
    h_log "$name server: $(tr '\n' '|' <"$H_TMP/$name.server")"
    h_log "$name agent:  $(tr '\n' '|' <"$H_TMP/$name.agent")"
    check "$name: the server re-ran the cast (step 1 stored twice)" \
        test "$(grep -c "^cast.progress step 1 of $steps\$" "$H_TMP/$name.server")" = 2
    if [ "$down" = 0 ]; then
        check "$name: the agent delivered exactly the server's events, none lost or doubled" \
            cmp -s "$H_TMP/$name.server" "$H_TMP/$name.agent"
    else
        check "$name: what the agent delivered is in the server's order, nothing twice" \
            subsequence "$H_TMP/$name.agent" "$H_TMP/$name.server"
        check "$name: and it ends with the terminal event" \
            test "$(tail -n 1 "$H_TMP/$name.agent")" = "$(tail -n 1 "$H_TMP/$name.server")"
    fi
    check "$name: one terminal event delivered" \
        test "$(grep -c '^cast\.\(succeeded\|failed\|canceled\)' "$H_TMP/$name.agent")" = 1
    h_stop subscriber
}

run_case quick 0 8
run_case outage 8 8

check "the server holds exactly the two casts" test "$(h_api_all_casts | wc -l)" = 2
check "the agent is still the same process" kill -0 "$(h_pid agent)"

h_done
