#!/usr/bin/env bash
# The durable queue against SIGKILL (docs/agent.md, Queue and retries):
# 500 casts are queued through the agent (every cast.submit answered, so
# every one is stored), then the agent is killed with SIGKILL at random
# points while it submits them and restarted each time; once a last agent
# has drained the queue, the server must hold exactly 500 casts (GET
# /v1/casts paged through), one per local cast.
#
# Two of the rounds also stop the server with SIGSTOP first, so the kill
# lands while requests are in flight: the server then handles the dead
# agent's requests when it resumes, and the next agent's retries with the
# same Idempotency-Key must be answered from the record, not create twice.
#
# The random points come from a seed printed at the start (SEED=N to
# repeat a run).  The server's cast rate limit is raised (harness.sh).
. "$(dirname "$0")/harness.sh"

h_need jq curl perl
h_begin crash-queue
h_have_agent || h_skip_all "spell-agent is not built yet ($H_AGENT_BIN)"
h_server --workers 8 || h_skip_all "spell-server did not start"
export SPELL_API_KEY=$H_KEY

N=${CASTS:-500}
ROUNDS=${ROUNDS:-10}
seed=${SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$seed
h_log "seed $seed, $N casts, $ROUNDS kills"

# One submission at a time, so the queue drains slowly enough for the
# kills to land inside it.
mkdir -p "$XDG_CONFIG_HOME/spell"
printf 'max_concurrent_casts = 1\nnotify = false\n' >"$XDG_CONFIG_HOME/spell/config"

check "the agent starts" h_agent

# Queue the casts, 50 requests per connection (under the limit of 64
# outstanding).
queued=0
for ((b = 0; b < N; b += 50)); do
    reqs=()
    for ((i = b; i < b + 50 && i < N; i++)); do
        reqs+=("{\"jsonrpc\":\"2.0\",\"id\":$((i + 1)),\"method\":\"cast.submit\",\"params\":{\"spell\":\"echo\",\"inputs\":{\"count\":$i}}}")
    done
    h_rpc --timeout 60 "${reqs[@]}" >"$H_TMP/submit.$b"
    queued=$((queued + $(jq -r 'select(.result.local_id != null) | .result.local_id' "$H_TMP/submit.$b" | wc -l)))
done
check "every cast.submit answered with a local id ($queued of $N)" test "$queued" = "$N"
jq -r 'select(.result.idempotency_key != null) | .result.idempotency_key' "$H_TMP"/submit.* | sort -u >"$H_TMP/keys"
check "  each with its own Idempotency-Key" test "$(wc -l <"$H_TMP/keys")" = "$N"

kills=0
for ((r = 1; r <= ROUNDS; r++)); do
    # 0 to 1.5 s after the (re)start.
    ms=$((RANDOM % 1500))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    stopped=no
    if [ "$r" = 3 ] || [ "$r" = 7 ]; then
        kill -STOP "$(h_pid server)"
        sleep 0.5
        stopped=yes
    fi
    counts=$(H_RPC_TIMEOUT=5 h_call agent.status 2>/dev/null | jq -c .queue 2>/dev/null)
    h_stop agent KILL
    kills=$((kills + 1))
    h_log "round $r: SIGKILL after $ms ms (server stopped: $stopped), queue was ${counts:-?}"
    [ "$stopped" = yes ] && kill -CONT "$(h_pid server)"
    h_agent || { not_ok "round $r: the agent restarts after SIGKILL"; break; }
done
check "the agent was killed $kills times and restarted each time" test "$kills" = "$ROUNDS"

drained() {
    local q
    q=$(H_RPC_TIMEOUT=5 h_call agent.status | jq -r '.queue | .pending + .submitting' 2>/dev/null)
    [ "$q" = 0 ]
}
h_wait_for 3000 drained
check "the last agent drains the queue (pending + submitting = 0)" drained
h_log "queue: $(h_call agent.status | jq -c .queue)"

h_api_all_casts >"$H_TMP/server.casts"
total=$(wc -l <"$H_TMP/server.casts")
check "the server holds exactly $N casts (got $total)" test "$total" = "$N"
check "  all of them echo casts" test "$(jq -r 'select(.spell_key == "echo") | .id' "$H_TMP/server.casts" | wc -l)" = "$N"
h_call cast.list "{\"limit\":$N}" | jq -c '.casts[]' >"$H_TMP/local.casts"
check "the agent lists $N local casts" test "$(wc -l <"$H_TMP/local.casts")" = "$N"
jq -r '.cast_id // empty' "$H_TMP/local.casts" | sort -u >"$H_TMP/local.ids"
jq -r .id "$H_TMP/server.casts" | sort -u >"$H_TMP/server.ids"
check "each local cast has its own server cast, and they are the server's casts" \
    cmp -s "$H_TMP/local.ids" "$H_TMP/server.ids"
check "none was rejected" test "$(jq -r 'select(.state == "rejected") | .local_id' "$H_TMP/local.casts" | wc -l)" = 0

h_done
