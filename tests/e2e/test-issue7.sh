#!/usr/bin/env bash
# Issue 7, end to end: a workflow spell shows live step progress in the
# portal and the agent, ends with its artifact link, and is charged exactly
# once.  The real spell-server (with the GitHub App configured against the
# GitHub Actions stand-in, tests/stand-ins/github-actions.py, whose App key
# pair is made here with openssl), the real spell-agent (SPELL_API_KEY, no
# keyring), the spell command line, and spell-portal in tmux on the Casts
# tab.  Then the same with a completion webhook delivered twice and before
# in_progress, and a completion replayed under a fresh delivery id: still
# one settle.  TAP on stdout.
#
#   test-issue7.sh SPELL-SERVER SPELL-AGENT SPELL SPELL-PORTAL STAND-IN
#
# The agent harness (tests/agent/integration/harness.sh) starts and stops
# the server and the agent; the portal helpers (tests/tui/lib.sh) run the
# portal in a private tmux server.  Every process is stopped on every exit
# path (both cleanups run from one EXIT trap).

set -u
e2e_dir=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$e2e_dir/../.." && pwd)
STAND_IN=${5:-$src/tests/stand-ins/github-actions.py}
T_PORTAL=${4:-}
[ -n "$T_PORTAL" ] && [ "${T_PORTAL#/}" = "$T_PORTAL" ] && T_PORTAL=$PWD/$T_PORTAL

# The portal helpers first (tmux, screen polls), then the harness, whose
# TAP functions and EXIT trap win; the trap is then widened to both.
. "$src/tests/tui/lib.sh"
. "$src/tests/agent/integration/harness.sh"

h_need tmux curl jq perl python3 openssl sqlite3
h_begin e2e-issue7
trap 'h_cleanup; t_cleanup' EXIT
h_have_agent || h_skip_all "spell-agent is not built ($H_AGENT_BIN)"
h_have_cli || h_skip_all "spell is not built ($H_CLI_BIN)"
[ -x "$T_PORTAL" ] || h_skip_all "spell-portal is not built ($T_PORTAL)"

poll() {    # poll SECONDS COMMAND...: until the command succeeds
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ $SECONDS -gt $end ] && return 1
        sleep 0.1
    done
}

# ---- the GitHub Actions stand-in, its App key pair made now ----
SECRET="whsec-e2e-$(date +%s%N)"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$H_TMP/app.pem" 2>/dev/null
openssl pkey -in "$H_TMP/app.pem" -pubout -out "$H_TMP/app.pub" 2>/dev/null
check "the App's RSA key pair is made" test -s "$H_TMP/app.pub"
# Six steps of 2.5 s each: the server polls the jobs every 2 s, so the
# run is seen at several steps on the way.
python3 "$STAND_IN" --port-file "$H_TMP/gh.port" --app-public-key "$H_TMP/app.pub" \
    --app-id 4242 --webhook-secret "$SECRET" --run-delay 1 --list-delay 0.3 \
    --step-seconds 2.5 --steps 6 >"$H_TMP/gh.log" 2>&1 &
h_track github $!
h_wait_for 100 test -s "$H_TMP/gh.port" || { not_ok "the stand-in starts"; h_done; exit 1; }
GH="http://127.0.0.1:$(cat "$H_TMP/gh.port")"
ok "the GitHub Actions stand-in listens at $GH"
ctl() { curl -fsS --max-time 10 -X POST "$GH/_control/$1" -H 'Content-Type: application/json' --data "${2:-{\}}"; }
gh_state() { curl -fsS --max-time 10 "$GH/_control/state"; }

# ---- the server: example spells, one workflow spell, the App configured ----
h_server_db_init || { not_ok "the database is made"; h_done; exit 1; }
cat >"$H_TMP/wf.json" <<'JSON'
[{"key": "wfe2e", "name": "Workflow (e2e)", "summary": "Runs as a GitHub Actions workflow.",
  "version": "1.0.0", "status": "published", "execution_mode": "workflow",
  "pricing_model": "flat", "pricing": {"flat_cents": 7},
  "inputs_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
  "execution": {"repo": "maker/spells", "workflow": "spell.yml", "ref": "main",
                "dispatch": "workflow", "installation_id": "77", "timeout_s": 120}}]
JSON
import_wf() { "$H_SERVER_BIN" spells import "$H_TMP/wf.json" --db "$H_DB" >"$H_TMP/import-wf.log" 2>&1; }
check "the workflow spell's manifest imports" import_wf
export GITHUB_WEBHOOK_SECRET="$SECRET"
h_server --github-api-url "$GH" --github-app-id 4242 \
    --github-app-private-key-file "$H_TMP/app.pem" --github-app-installation-id 77 ||
    { not_ok "spell-server starts"; h_done; exit 1; }
unset GITHUB_WEBHOOK_SECRET
ok "spell-server starts with the GitHub App at $SPELL_API_URL"
check "the stand-in delivers to the server's /webhooks/github" \
    ctl webhook "{\"url\": \"$SPELL_API_URL/webhooks/github\"}"

# ---- the agent, signed in with SPELL_API_KEY ----
export SPELL_API_KEY=$H_KEY
h_agent --foreground --no-notifications ||
    { not_ok "spell-agent starts"; h_done; exit 1; }
ok "spell-agent answers on its socket"
st=$(h_call auth.status)
check "the agent is signed in ($(jq -c . <<<"$st"))" test "$(jq -r .signed_in <<<"$st")" = true

# ---- the portal on the Casts tab ----
T_RUNTIME=$XDG_RUNTIME_DIR
portal_start p SPELL_API_KEY="$H_KEY" -- --api-url "$SPELL_API_URL"
check "the portal starts, signed in" wait_for p "Signed in as tester" 30
check "the title says the agent is connected" wait_for p "agent: connected" 20
keys p 5
check "the Casts tab lists the agent's casts" wait_gone p "The agent is not running." 10

# ---- an events.subscribe stream, kept open for the whole cast ----
h_rpc --timeout 120 --expect 1 --until '"kind": ?"cast\.(succeeded|failed|canceled|rejected)"' \
    '{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{}}' \
    >"$H_TMP/events.jsonl" 2>"$H_TMP/events.err" &
h_track events $!
h_wait_for 100 grep -q '"subscribed"' "$H_TMP/events.jsonl" ||
    not_ok "events.subscribe answers"

# ---- 1. cast through the agent; watch it move ----
"$H_CLI_BIN" cast wfe2e -i text=hello --wait --json >"$H_TMP/cast1.json" 2>"$H_TMP/cast1.err" &
cli_pid=$!
h_track cli $cli_pid

# The portal's list: the row, running, its bar part way (1 to 99 %).
row_midway() {
    screen p | grep -E 'wfe2e +running +.*[^0-9]([1-9]|[1-9][0-9])%' >"$H_TMP/row.txt"
}
check "portal: the cast's row shows running with a bar between 0 and 100 %" poll 40 row_midway
sed 's/^/#   /' "$H_TMP/row.txt"
check "  the bar is drawn (full blocks)" grep -qF '█' "$H_TMP/row.txt"
# Its details: the bar and the step the run is at.
keys p Enter
check "portal: the details open" wait_for p "Cast of wfe2e" 10
detail_midway() {
    screen p >"$H_TMP/detail.txt"
    grep -qE '^ *Progress .*[^0-9]([1-9]|[1-9][0-9])%' "$H_TMP/detail.txt" &&
        grep -qE '^ *Message +Step [1-6] of 6' "$H_TMP/detail.txt"
}
check "portal: details show the progress bar and the step's name midway" poll 30 detail_midway
grep -E 'State|Progress|Message' "$H_TMP/detail.txt" | sed 's/^/#   /'

# The end, in the details.
check "portal: the details end succeeded" wait_for p "succeeded" 60
check "portal: the details show 100 %" wait_for p "100%" 10
check "portal: the details show the artifact link" \
    poll 10 sh -c "tmux -L $T_SOCK capture-pane -p -t p | grep -qE 'Artifact +http://github.invalid/maker/spells/actions/runs/[0-9]+/artifacts/[0-9]+'"
screen p | grep -E 'Cast id|State|Progress|Message|Artifact|Cost' | sed 's/^/#   /'
keys p Escape

# The command line's answer.
for _ in $(seq 600); do kill -0 "$cli_pid" 2>/dev/null || break; sleep 0.1; done
wait "$cli_pid"
cli_rc=$?
h_forget "$cli_pid"
check "spell cast --wait through the agent exits 0 (rc $cli_rc)" test "$cli_rc" = 0
c1=$(jq -c . "$H_TMP/cast1.json" 2>/dev/null)
check "  and prints the succeeded cast" test "$(jq -r .state <<<"$c1")" = succeeded
id1=$(jq -r .cast_id <<<"$c1")
check "  with its server id ($id1)" test -n "$id1" -a "$id1" != null
check "  and the artifact link" test -n "$(jq -r '.artifact_url // empty' <<<"$c1")"

# The agent's event stream.
kinds() { jq -r 'select(.method == "event") | .params.kind' "$H_TMP/events.jsonl"; }
h_wait_for 100 sh -c "jq -r 'select(.method == \"event\") | .params.kind' '$H_TMP/events.jsonl' | grep -qx cast.succeeded"
progress=$(jq -c 'select(.method == "event" and .params.kind == "cast.progress")
    | .params.cast | {progress, message}' "$H_TMP/events.jsonl")
printf '%s\n' "$progress" | sed 's/^/#   cast.progress /'
n=$(printf '%s\n' "$progress" | grep -c progress)
check "agent: cast.progress events while the run goes ($n)" test "$n" -ge 2
names_steps() { printf '%s\n' "$progress" | jq -r .message | grep -qE '^Step [1-6] of 6$'; }
check "agent: they name the run's steps" names_steps
pcts=$(printf '%s\n' "$progress" | jq -r .progress | tr '\n' ' ')
rising() {    # non-decreasing, at least two values, one between 0 and 100
    local prev=-1 distinct=0 mid=0 v
    for v in $pcts; do
        [ "$v" -lt "$prev" ] && return 1
        [ "$v" -gt "$prev" ] && distinct=$((distinct + 1))
        [ "$v" -gt 0 ] && [ "$v" -lt 100 ] && mid=1
        prev=$v
    done
    [ "$distinct" -ge 2 ] && [ "$mid" = 1 ]
}
check "agent: the percentages rise ($pcts)" rising
fin=$(jq -c 'select(.method == "event" and .params.kind == "cast.succeeded") | .params.cast' \
    "$H_TMP/events.jsonl" | head -n 1)
check "agent: cast.succeeded carries the artifact link" \
    test -n "$(jq -r '.artifact_url // empty' <<<"$fin")"
check "agent: one cast.succeeded" test "$(kinds | grep -cx cast.succeeded)" = 1
h_stop events

# The server's view.
s1=$(h_api GET "/v1/casts/$id1")
check "GET /v1/casts/$id1: succeeded" test "$(jq -r .status <<<"$s1")" = succeeded
art1=$(jq -r '.artifact_url // empty' <<<"$s1")
matches() { printf '%s\n' "$1" | grep -qE -- "$2"; }    # matches TEXT REGEX
check "  artifact_url is the run's artifact ($art1)" \
    matches "$art1" '^http://github.invalid/maker/spells/actions/runs/[0-9]+/artifacts/[0-9]+$'
check "  the agent has the same link" test "$(jq -r .artifact_url <<<"$c1")" = "$art1"
check "  cost is the flat 7 cents" test "$(jq -r .cost_cents <<<"$s1")" = 7
check "  run_url is the run ($(jq -r .run_url <<<"$s1"))" \
    matches "$(jq -r .run_url <<<"$s1")" '^http://github.invalid/maker/spells/actions/runs/[0-9]+$'
runs=$(gh_state | jq "[.runs[] | select(.name == \"cast $id1\")] | length")
check "exactly one run was dispatched ($runs)" test "$runs" = 1

ledger_count() {    # ledger_count CAST KIND
    sqlite3 "$H_DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$1' AND kind = '$2'"
}
check "ledger: one reserve for the cast" test "$(ledger_count "$id1" reserve)" = 1
check "ledger: one settle for the cast" test "$(ledger_count "$id1" settle)" = 1
check "ledger: nothing released" test "$(ledger_count "$id1" release)" = 0
u=$(h_api GET /v1/budgets/usage)
check "usage: one call, 7 cents ($(jq -c '{calls, spent_cents, reserved_cents}' <<<"$u"))" \
    test "$(jq -r '"\(.calls) \(.spent_cents) \(.reserved_cents)"' <<<"$u")" = "1 7 0"
check "usage: by spell, one call of wfe2e" \
    test "$(jq -r '.by_spell[] | select(.spell_key == "wfe2e") | .calls' <<<"$u")" = 1

# ---- 2. the completion delivered twice and before in_progress ----
ctl next '{"duplicate": true, "order": ["requested", "completed", "in_progress"], "steps": 3}' >/dev/null
out=$(h_call cast.submit '{"spell":"wfe2e","inputs":{"text":"again"}}')
lid2=$(jq -r .local_id <<<"$out")
check "cast.submit over the socket takes the second cast ($lid2)" test -n "$lid2" -a "$lid2" != null
c2=$(H_RPC_TIMEOUT=90 h_call cast.wait "{\"local_id\":\"$lid2\",\"timeout_ms\":80000}")
check "  it succeeds ($(jq -r .state <<<"$c2"))" test "$(jq -r .state <<<"$c2")" = succeeded
id2=$(jq -r .cast_id <<<"$c2")
check "  with its artifact link" test -n "$(jq -r '.artifact_url // empty' <<<"$c2")"
# Every delivery has been made (the late in_progress too) before counting.
all_sent() {
    local run
    run=$(gh_state | jq "[.runs[] | select(.name == \"cast $id2\") | .id][0]")
    [ "$(gh_state | jq "[.deliveries[] | select(.run == $run)] | length")" -ge 6 ]
}
check "the stand-in delivered requested, completed and in_progress twice each" poll 30 all_sent
gh_state | jq -c "[.deliveries[] | select(.run == ([.runs[] | select(.name == \"cast $id2\") | .id][0] // 0)) | {action, status}]" \
    2>/dev/null | sed 's/^/#   /'
check "  every delivery was acknowledged 2xx" \
    sh -c "curl -fsS '$GH/_control/state' | jq -e '[.deliveries[] | select(.status < 200 or .status > 299)] | length == 0' >/dev/null"
s2=$(h_api GET "/v1/casts/$id2")
check "GET /v1/casts/$id2: still succeeded after the late in_progress" \
    test "$(jq -r .status <<<"$s2")" = succeeded
check "  one cast.succeeded in its events" \
    test "$(h_api_events "$id2" | grep -c '"event":"cast.succeeded"')" = 1
check "ledger: one reserve for the second cast" test "$(ledger_count "$id2" reserve)" = 1
check "ledger: one settle for the second cast" test "$(ledger_count "$id2" settle)" = 1

# ---- 3. a completion replayed under a fresh delivery id ----
run1=$(gh_state | jq "[.runs[] | select(.name == \"cast $id1\") | .id][0]")
body=$(jq -cn --argjson id "$run1" --arg name "cast $id1" '{action: "completed",
    workflow_run: {id: $id, name: $name, display_title: $name, event: "workflow_dispatch",
      status: "completed", conclusion: "success",
      html_url: "http://github.invalid/maker/spells/actions/runs/\($id)"},
    repository: {full_name: "maker/spells"}, installation: {id: 1}}')
sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$SPELL_API_URL/webhooks/github" \
    -H 'Content-Type: application/json' -H 'X-GitHub-Event: workflow_run' \
    -H "X-GitHub-Delivery: e2e-replay-$RANDOM" -H "X-Hub-Signature-256: $sig" --data "$body")
check "a replayed completion for the first run is acknowledged ($st)" test "$st" = 200
# Nothing to poll for: a charge that must not happen.  The webhook's work
# is done before or shortly after its 200; a second is ample.
sleep 1
check "ledger: still one settle for the first cast" test "$(ledger_count "$id1" settle)" = 1
check "ledger: two settles in all" \
    test "$(sqlite3 "$H_DB" "SELECT COUNT(*) FROM ledger WHERE kind = 'settle'")" = 2
u=$(h_api GET /v1/budgets/usage)
check "usage: two calls, 14 cents ($(jq -c '{calls, spent_cents, reserved_cents}' <<<"$u"))" \
    test "$(jq -r '"\(.calls) \(.spent_cents) \(.reserved_cents)"' <<<"$u")" = "2 14 0"
out=$("$H_SERVER_BIN" ledger verify --db "$H_DB" 2>&1)
check "spell-server ledger verify passes ($out)" matches "$out" 'OK$'
check "the stand-in refused no App JWT" test "$(gh_state | jq '.jwt_refused | length')" = 0

# ---- the portal leaves cleanly, with no sanitizer reports ----
keys p q
check "q quits the portal" poll 10 sh -c "tmux -L $T_SOCK list-panes -t p -F '#{pane_dead}' | grep -q 1"
portal_stop p
reports=$(ls "$T_TMP"/san-* 2>/dev/null)
if [ -n "$reports" ]; then
    not_ok "no sanitizer reports from spell-portal"
    sed 's/^/#   /' $reports
else
    ok "no sanitizer reports from spell-portal"
fi
check "the server's log never holds the App's private key" \
    sh -c "! grep -q 'PRIVATE KEY' '$H_TMP/server.log'"
h_done
