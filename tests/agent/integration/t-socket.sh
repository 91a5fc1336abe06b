#!/usr/bin/env bash
# The agent's socket against hostile and careless clients (docs/agent.md,
# "The socket" and "Protocol"): the file and directory modes, a process of
# another uid refused by SO_PEERCRED, agent.hello first, a version
# mismatch, garbage of every kind answered with the right JSON-RPC error
# while the connection stays usable, an oversized line, random bytes, a
# second agent refused and a stale socket replaced.
. "$(dirname "$0")/harness.sh"

h_need jq curl perl setpriv
h_begin socket
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_server || h_skip_all "spell-server did not start"
# No session bus on purpose: nothing here needs the keyring, and the agent
# must not wait for one.
check "the agent starts" h_agent

mode() { stat -c %a "$1"; }
check "the socket is mode 0600 ($(mode "$H_SOCK"))" test "$(mode "$H_SOCK")" = 600
check "its directory is mode 0700 ($(mode "$(dirname "$H_SOCK")"))" \
    test "$(mode "$(dirname "$H_SOCK")")" = 700

# The code of the error answering request id ID in the lines on stdin.
err_code() {
    jq -r --argjson id "$1" 'select(.id == $id) | .error.code // "none"' 2>/dev/null
}

# ---- hello and version ----

out=$(h_rpc --no-hello '{"jsonrpc":"2.0","id":1,"method":"agent.status","params":{}}')
check "a method before agent.hello gets -32002" test "$(err_code 1 <<<"$out")" = -32002
out=$(h_rpc --no-hello '{"jsonrpc":"2.0","id":1,"method":"agent.status","params":{}}' \
    '{"jsonrpc":"2.0","id":2,"method":"agent.hello","params":{"protocol":1,"client":"t/1"}}' \
    '{"jsonrpc":"2.0","id":3,"method":"agent.status","params":{}}')
check "the connection stays usable: hello then status answer" \
    test "$(jq -r 'select(.id == 3) | .result.protocol' <<<"$out")" = 1
check "agent.hello answers protocol 1 and the agent version" \
    test "$(jq -r 'select(.id == 2) | .result | "\(.protocol) \(.agent | type)"' <<<"$out")" = "1 string"

out=$(h_rpc --protocol 2 --show-hello --timeout 10 \
    '{"jsonrpc":"2.0","id":5,"method":"agent.status","params":{}}')
rc=$?
check "a client of protocol 2 gets -32001" test "$(err_code '"hello"' <<<"$out")" = -32001
check "and the connection is closed after the answer (rpc.pl exit $rc)" test "$rc" = 4

# ---- garbage, answered, connection kept ----

status='{"jsonrpc":"2.0","id":99,"method":"agent.status","params":{}}'
garbage() {    # garbage DESCRIPTION EXPECTED-CODE RAW-LINE
    local out rc
    out=$(h_rpc --expect 2 --timeout 10 "$3"$'\n' "$status"$'\n')
    rc=$?
    check "$1 gets $2" test "$(jq -r 'select(.id == null) | .error.code' <<<"$out" | head -n 1)" = "$2"
    check "  and the next request on that connection is answered (rpc.pl exit $rc)" \
        test "$(jq -r 'select(.id == 99) | .result.protocol' <<<"$out")" = 1
}
garbage "a line that is not JSON" -32700 'this is not json'
garbage "truncated JSON" -32700 '{"jsonrpc":"2.0","id":'
garbage "invalid UTF-8" -32700 $'{"jsonrpc":"2.0","id":null,"method":"agent.status","x":"\xff\xfe"}'
garbage "a JSON array" -32600 '[1,2,3]'
garbage "a JSON number" -32600 '42'
out=$(h_rpc --expect 2 --timeout 10 \
    $'{"jsonrpc":"1.0","id":7,"method":"agent.status","params":{}}\n' "$status"$'\n')
check 'jsonrpc "1.0" gets -32600' test "$(jq -r 'select(.id == 7 or .id == null) | .error.code' <<<"$out" | head -n 1)" = -32600
out=$(h_rpc '{"jsonrpc":"2.0","id":8,"method":"no.such.method","params":{}}' "$status")
check "an unknown method gets -32601" test "$(err_code 8 <<<"$out")" = -32601
out=$(h_rpc '{"jsonrpc":"2.0","id":9,"method":"cast.get","params":{"local_id":42}}' "$status")
check "cast.get with a numeric local_id gets -32602" test "$(err_code 9 <<<"$out")" = -32602
check "  whose message names the field" \
    grep -q local_id <<<"$(jq -r 'select(.id == 9) | .error.message' <<<"$out")"
out=$(h_rpc '{"jsonrpc":"2.0","id":10,"method":"cast.get","params":{"local_id":"lc_nope"}}' "$status")
check "an unknown local_id gets -32020" test "$(err_code 10 <<<"$out")" = -32020
# A shell argument cannot hold a NUL byte: the line goes through a file.
printf '{"jsonrpc":"2.0","id":11,"method":"agent.status","params":{},"x":"a\0b"}\n' >"$H_TMP/nul"
check "the NUL line really holds a NUL byte" test "$(tr -dc '\000' <"$H_TMP/nul" | wc -c)" = 1
out=$(h_rpc --expect 2 --timeout 10 --file "$H_TMP/nul" "$status")
check "a line with a NUL byte gets -32700, not an answer as a request" \
    test "$(jq -r 'select(.id == 11 or .id == null) | .error.code // "answered"' <<<"$out" | head -n 1)" = -32700
check "  and the next request is answered" test "$(jq -r 'select(.id == 99) | .result.protocol' <<<"$out")" = 1

# A 2 MiB line: -32003, discarded up to its newline, connection kept.
{
    printf '{"jsonrpc":"2.0","id":12,"method":"x","p":"'
    head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' 'a'
    printf '"}\n'
} >"$H_TMP/big"
out=$(h_rpc --expect 2 --timeout 30 --file "$H_TMP/big" "$status")
rc=$?
check "a 2 MiB line gets -32003 (rpc.pl exit $rc)" \
    test "$(jq -r '.error.code // empty' <<<"$out" | head -n 1)" = -32003
check "  and the connection stays usable" test "$(jq -r 'select(.id == 99) | .result.protocol' <<<"$out")" = 1
rm -f "$H_TMP/big"

# Random bytes, with and without newlines, from several connections.
for i in 1 2 3 4 5; do
    head -c 65536 /dev/urandom >"$H_TMP/noise"
    perl -MIO::Socket::UNIX -e '
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or exit 0;
        local $/; open my $f, "<", $ARGV[1] or exit 0; my $d = <$f>;
        $SIG{PIPE} = "IGNORE"; syswrite $s, $d; sleep 0.2; close $s' "$H_SOCK" "$H_TMP/noise"
done
check "after 5 x 64 KiB of random bytes the agent still answers" h_agent_answers
check "  and is the same process" kill -0 "$(h_pid agent)"

# ---- another user ----

# Without privileges the directory's 0700 already keeps nobody out.
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups perl "$H_DIR/rpc.pl" --socket "$H_SOCK" \
    --timeout 5 "$status" 2>&1)
rc=$?
check "uid 65534 cannot reach the socket through the 0700 directory (exit $rc)" test "$rc" = 2
# With CAP_DAC_OVERRIDE kept across the uid change, the file modes no
# longer stop it, and only the SO_PEERCRED check is left.
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_override \
    --ambient-caps=+dac_override perl "$H_DIR/rpc.pl" --socket "$H_SOCK" --timeout 10 "$status" 2>&1)
rc=$?
check "uid 65534 past the file modes is closed without an answer (exit $rc: 4 = closed)" test "$rc" = 4
check "  nothing was answered to it" test -z "$(grep '"result"' <<<"$out")"
check "  and the agent still serves its owner" h_agent_answers

# ---- a second agent, a stale socket ----

first=$(h_pid agent)
timeout 20 "$H_AGENT_BIN" >"$H_TMP/agent2.log" 2>&1
rc=$?
check "a second agent for the same user refuses to start (exit $rc)" test "$rc" != 0 -a "$rc" != 124
check "  and the first one still answers" h_agent_answers
h_stop agent KILL
check "after SIGKILL the socket file is left behind" test -S "$H_SOCK"
check "a new agent replaces the stale socket" h_agent
check "  and it is a new process" test "$(h_pid agent)" != "$first"

h_done
