#!/usr/bin/env bash
# The workflow executor against the GitHub Actions stand-in
# (tests/stand-ins/github-actions.py), with the real spell-server and the
# real `spell` CLI: dispatch, run found by polling and only by webhook,
# progress, artifacts, failure and cancellation conclusions, duplicate and
# out-of-order deliveries, GitHub down at dispatch (retried; and past the
# deadline), expired installation tokens, webhook signature refusals, the
# JWT's claims checked by the stand-in, a restart while a run goes on
# (tracking resumes, charged once), and never two dispatches for a cast: a
# SIGKILL between the dispatch and the run's listing, a dispatch mark whose
# run never appears, and a dispatch answered by nothing.
#
# Environment: SPELL_SERVER, SPELL_CLI, STAND_IN (the stand-in script).
set -u
. "$(dirname "$0")/../integration/lib.sh"

SECRET="whsec-$(date +%s%N)"

# ---- the App's key pair, made now and never kept --------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/app.pem" 2>/dev/null
openssl pkey -in "$T/app.pem" -pubout -out "$T/app.pub" 2>/dev/null

python3 "$STAND_IN" --port-file "$T/gh.port" --app-public-key "$T/app.pub" --app-id 4242 \
    --webhook-secret "$SECRET" --run-delay 1 --list-delay 0.3 --step-seconds 1 --steps 4 \
    2>"$T/gh.log" &
PIDS+=("$!")
for i in $(seq 1 100); do [ -s "$T/gh.port" ] && break; sleep 0.1; done
GH="http://127.0.0.1:$(cat "$T/gh.port")"
ctl() { curl -s -X POST "$GH/_control/$1" -H 'Content-Type: application/json' --data "${2:-{\}}"; }
state() { curl -s "$GH/_control/state"; }

cat >"$T/spells.json" <<JSON
[
 {"key": "wf", "name": "Workflow", "summary": "Runs in GitHub Actions.", "version": "1.0.0",
  "status": "published", "execution_mode": "workflow", "pricing_model": "flat",
  "pricing": {"flat_cents": 7},
  "inputs_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
  "execution": {"repo": "maker/spells", "workflow": "spell.yml", "ref": "main",
                "dispatch": "workflow", "installation_id": "77", "timeout_s": 60}},
 {"key": "wfrepo", "name": "Workflow (repository_dispatch)", "summary": "Runs in Actions.",
  "version": "1.0.0", "status": "published", "execution_mode": "workflow",
  "pricing_model": "flat", "pricing": {"flat_cents": 3},
  "inputs_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
  "execution": {"repo": "maker/spells", "dispatch": "repository", "event_type": "spell_cast",
                "installation_id": 77, "timeout_s": 60}},
 {"key": "wfshort", "name": "Workflow (short deadline)", "summary": "Runs in Actions.",
  "version": "1.0.0", "status": "published", "execution_mode": "workflow",
  "pricing_model": "flat", "pricing": {"flat_cents": 2},
  "inputs_schema": {"type": "object"},
  "execution": {"repo": "maker/spells", "workflow": "spell.yml", "installation_id": "77",
                "timeout_s": 4}}
]
JSON

out=$(srv spells import "$T/spells.json" 2>&1)
like "$out" "3" "the workflow spells import"
KEY=$(new_user ada)
export SPELL_API_KEY="$KEY"

start() {
    server_start --github-api-url "$GH" --github-app-id 4242 \
        --github-app-private-key-file "$T/app.pem" --github-app-installation-id 77 \
        --rate-ip-per-min 1000 --rate-user-per-min 10000 --rate-casts-per-hour 10000 "$@"
    ctl webhook "{\"url\": \"$BASE/webhooks/github\"}" >/dev/null
    export SPELL_API_URL="$BASE"
}
export GITHUB_WEBHOOK_SECRET="$SECRET"
start

# ---- 1. spell cast to succeeded: artifact, progress, run found by polling ----
ctl next '{"steps": 6}' >/dev/null
out=$("$SPELL_CLI" cast wf -i text=hello --direct --wait --json 2>"$T/cli1.err")
rc=$?
is "$rc" 0 "spell cast --direct --wait exits 0"
id=$(echo "$out" | jq -r '.id // .cast_id')
is "$(echo "$out" | jq -r .status)" succeeded "the workflow cast succeeded"
like "$(echo "$out" | jq -r .artifact_url)" '/actions/runs/[0-9]+/artifacts/[0-9]+$' \
    "its artifact_url is the run's artifact page"
like "$(echo "$out" | jq -r .run_url)" '/actions/runs/[0-9]+$' "its run_url is the run"
is "$(echo "$out" | jq -r .cost_cents)" 7 "charged the flat price"
api GET "/v1/casts/$id/events" >/dev/null
n=$(grep -c '^event: cast.progress' "$T/body")
[ "$n" -ge 2 ] && pass "progress events while it ran ($n)" || fail "progress events ($n)"
like "$(grep -A3 '^event: cast.progress' "$T/body" | grep '^data:' | head -5)" 'Step [0-9] of 6' \
    "progress names the current step"
st=$(state)
is "$(echo "$st" | jq -r "[.runs[] | select(.name == \"cast $id\")] | length")" 1 \
    "exactly one run was dispatched"
is "$(echo "$st" | jq -r ".runs[] | select(.name == \"cast $id\") | .payload.inputs.inputs")" \
    '{"text":"hello"}' "the inputs travel as one JSON string input"
is "$(echo "$st" | jq -r '.jwt_refused | length')" 0 "the stand-in accepted the App JWT (RS256, iat/exp, iss)"

# ---- 2. failure and cancellation conclusions ----
ctl next '{"conclusion": "failure"}' >/dev/null
cast wf '{"text": "x"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" failed "conclusion failure -> failed"
is "$(jb .error.code)" SPELL_FAILED "with SPELL_FAILED"
ctl next '{"conclusion": "cancelled"}' >/dev/null
cast wf '{"text": "x"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" canceled "conclusion cancelled -> canceled"

# ---- 3. run id only by webhook; duplicate and out-of-order deliveries ----
ctl next '{"webhook_only": true, "duplicate": true, "order": ["requested", "completed", "in_progress"]}' >/dev/null
cast wf '{"text": "w"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" succeeded "a run hidden from the list is followed by webhook"
like "$(jb .run_url)" '/actions/runs/[0-9]+$' "the webhook filled in run_url"
api GET "/v1/casts/$id/events" >/dev/null
is "$(grep -c '^event: cast.succeeded' "$T/body")" 1 "one terminal event despite duplicates"
is "$(grep -c '^event: cast.started' "$T/body")" 1 "completed before in_progress: started once"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'settle'")" 1 \
    "charged once"

# ---- 4. repository_dispatch ----
cast wfrepo '{"a": 1}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" succeeded "repository_dispatch cast succeeded"
is "$(state | jq -r ".runs[] | select(.name == \"cast $id\") | .payload.client_payload.inputs.a")" 1 \
    "client_payload carries the inputs"

# ---- 5. cancel through the API cancels the run on GitHub ----
ctl next '{"steps": 30}' >/dev/null
cast wf '{"text": "c"}' >/dev/null; id=$(jb .cast_id)
for i in $(seq 1 50); do
    api GET "/v1/casts/$id" >/dev/null; [ "$(jb .status)" = running ] && break; sleep 0.2
done
sleep 1
st=$(api POST "/v1/casts/$id:cancel")
like "$st" '^20[02]$' "cancel answers $st"
is "$(wait_cast "$id" 10)" canceled "the cast is canceled"
sleep 0.5
is "$(state | jq -r "[.cancels[]] | length > 0")" true "the run was canceled on GitHub"

# ---- 6. GitHub down at dispatch: retried, then success ----
ctl down '{"calls": 4, "status": 503}' >/dev/null
cast wf '{"text": "d"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 40)" succeeded "503s at dispatch are retried"
# ... and down past the deadline: failed, reservation released.
ctl down '{"calls": 100000, "status": 503}' >/dev/null
cast wfshort '{}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" failed "down past the deadline -> failed"
like "$(jb .error.message)" "deadline" "with a clear message"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'release'")" 1 \
    "the reservation was released"
ctl down '{"calls": 0}' >/dev/null

# ---- 7. expired installation token refreshed ----
before=$(state | jq .exchanges)
ctl expire-tokens >/dev/null
cast wf '{"text": "t"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 30)" succeeded "a cast after the tokens expired succeeds"
after=$(state | jq .exchanges)
[ "$after" -gt "$before" ] && pass "a new token was exchanged" || fail "no new token ($before -> $after)"

# ---- 8. webhook signature refusals and pings ----
bodyw='{"action":"completed","workflow_run":{"id":1}}'
sig="sha256=$(printf '%s' "$bodyw" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/webhooks/github" \
    -H 'X-GitHub-Event: workflow_run' -H 'X-GitHub-Delivery: t-1' --data "$bodyw")
is "$st" 401 "a delivery without signature is refused"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/webhooks/github" \
    -H 'X-GitHub-Event: workflow_run' -H 'X-GitHub-Delivery: t-2' \
    -H "X-Hub-Signature-256: $sig" --data "${bodyw} ")
is "$st" 401 "a tampered delivery is refused"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/webhooks/github" \
    -H 'X-GitHub-Event: workflow_run' -H 'X-GitHub-Delivery: t-3' \
    -H "X-Hub-Signature-256: $sig" --data "$bodyw")
is "$st" 200 "a signed delivery for an unknown run is acknowledged"
pb='{"zen":"Keep it logically awesome."}'
psig="sha256=$(printf '%s' "$pb" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)"
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/webhooks/github" \
    -H 'X-GitHub-Event: ping' -H 'X-GitHub-Delivery: t-4' -H "X-Hub-Signature-256: $psig" \
    --data "$pb")
is "$st" 200 "ping is answered 200"

# ---- 9. input limits: a clear 400 at cast time ----
big=$(python3 -c 'print("{\"text\": \"" + "x" * 70000 + "\"}")')
printf '{"inputs": %s}' "$big" >"$T/big.json"
st=$(api POST "/v1/spells/wf:cast" -H "Idempotency-Key: $(idem)" \
    -H 'Content-Type: application/json' --data-binary @"$T/big.json")
if [ "$st" = 413 ]; then
    skip "inputs over 65,535 characters" "the request body cap comes first ($st)"
else
    is "$st" 400 "inputs over 65,535 characters are refused"
    is "$(jb .error.code)" VALIDATION_ERROR "as VALIDATION_ERROR"
fi

# ---- 10. restart while a run is in progress: tracking resumes, one settle ----
ctl next '{"steps": 8}' >/dev/null
cast wf '{"text": "r"}' >/dev/null; id=$(jb .cast_id)
for i in $(seq 1 50); do
    api GET "/v1/casts/$id" >/dev/null; [ "$(jb .status)" = running ] && break; sleep 0.2
done
is "$(jb .status)" running "the cast runs before the restart"
runs_before=$(state | jq "[.runs[] | select(.name == \"cast $id\")] | length")
server_stop
ctl webhook '{"url": ""}' >/dev/null
start
is "$(wait_cast "$id" 40)" succeeded "after the restart the run is followed to its end"
is "$(state | jq "[.runs[] | select(.name == \"cast $id\")] | length")" "$runs_before" \
    "no second dispatch"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'settle'")" 1 \
    "charged exactly once"
out=$(srv ledger verify)
like "$out" 'OK$' "the ledger verifies"

# The cast's dispatch requests and runs, as the stand-in saw them.
dispatches_of() { state | jq "[.dispatches[] | select(.cast_id == \"$1\")] | length"; }
runs_of() { state | jq "[.runs[] | select(.name == \"cast $1\")] | length"; }
# wait_dispatch ID: until the stand-in has received the cast's dispatch.
wait_dispatch() {
    local i
    for i in $(seq 1 150); do
        [ "$(dispatches_of "$1")" -ge 1 ] && return 0
        sleep 0.1
    done
    return 1
}

# ---- 11. SIGKILL after GitHub took the dispatch, before the run is listed ----
start
ctl next '{"list_delay": 8, "no_webhooks": true}' >/dev/null
cast wf '{"text": "k"}' >/dev/null; id=$(jb .cast_id)
wait_dispatch "$id" && pass "the stand-in took the dispatch" || fail "no dispatch for $id"
is "$(sqlite3 "$DB" "SELECT dispatched_at > 0 FROM casts WHERE id = '$id'")" 1 \
    "the dispatch mark was committed before the dispatch left"
is "$(runs_of "$id")" 1 "one run made, not listed yet"
server_stop KILL
start
is "$(wait_cast "$id" 60)" succeeded "after the restart the run is found once listed, and followed"
is "$(dispatches_of "$id")" 1 "the restarted server did not dispatch again"
is "$(runs_of "$id")" 1 "exactly one run for the cast"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'settle'")" 1 \
    "charged exactly once"
out=$(srv ledger verify)
like "$out" 'OK$' "the ledger verifies after the SIGKILL"

# ---- 12. a dispatch mark whose run never appears: failed after the window ----
ctl next '{"lost": true}' >/dev/null
cast wf '{"text": "lost"}' >/dev/null; id=$(jb .cast_id)
wait_dispatch "$id" && pass "the stand-in took the dispatch (and made no run)" \
    || fail "no dispatch for $id"
server_stop KILL
start
# The window is 30 s after the mark, within the cast's 60 s deadline.
is "$(wait_cast "$id" 55)" failed "no run within the window after the mark -> failed"
is "$(jb .error.code)" INTERNAL "with INTERNAL"
like "$(jb .error.message)" 'outcome of the workflow dispatch is unknown.*no run' \
    "the message says the dispatch's outcome is unknown and no run appeared"
is "$(dispatches_of "$id")" 1 "no second dispatch was sent"
is "$(runs_of "$id")" 0 "no run for the cast"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'settle'")" 0 \
    "not charged"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'release'")" 1 \
    "the reservation was released"
api GET /v1/budgets/usage >/dev/null
is "$(jb .reserved_cents)" 0 "nothing is left reserved"

# ---- 13. a dispatch answered by nothing (the run made): not sent again ----
ctl next '{"drop": true}' >/dev/null
cast wf '{"text": "drop"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 40)" succeeded "a dispatch without an answer whose run exists succeeds"
is "$(dispatches_of "$id")" 1 "it was not sent again"
is "$(runs_of "$id")" 1 "exactly one run for the cast"
is "$(sqlite3 "$DB" "SELECT COUNT(*) FROM ledger WHERE cast_id = '$id' AND kind = 'settle'")" 1 \
    "charged once"
# ... while a dispatch GitHub refused with a status is sent again (the
# first failed call is the search for an earlier run, the second the
# dispatch).
ctl down '{"calls": 2, "status": 502}' >/dev/null
cast wf '{"text": "502"}' >/dev/null; id=$(jb .cast_id)
is "$(wait_cast "$id" 40)" succeeded "a dispatch refused with 502 is retried"
is "$(runs_of "$id")" 1 "one run after the retry"
out=$(srv ledger verify)
like "$out" 'OK$' "the ledger verifies"
server_stop
done_testing
