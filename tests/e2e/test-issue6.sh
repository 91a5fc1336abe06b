#!/usr/bin/env bash
# Issue 6, "Done when": a new user goes from `spell login` to a registered
# card to a paid cast within budget, all against the stand-ins, in one run
# of the real binaries.
#
# The parts: a private session (bus, gnome-keyring, Xvfb + dunst, from
# tests/agent/integration/harness.sh), the GitHub stand-in (OAuth,
# auto-approving a GitHub user the server has never seen), the Stripe
# stand-in (Checkout, signed webhooks to the server), spell-server
# configured for both exactly as an operator would (docs/operations.md,
# "Providers"), the example spells, and spell-agent.  Nobody is made with
# `spell-server users add`: the person signs in with `spell login` (the
# device flow), and this script acts as the person in the browser with curl
# on the /device page.  Then: a paid cast is refused with 402
# PAYMENT_METHOD_REQUIRED while a free one runs; `spell card add` and the
# stand-in completing Checkout register a card with the $50 default budget;
# a paid cast through the agent costs 5 cents, shows in the usage and in a
# desktop notification; and the ledger verifies.
#
# Arguments: SERVER AGENT CLI (meson passes them; see harness.sh).  TAP on
# stdout.  Every process started here is stopped on every exit path by the
# harness's EXIT trap.
. "$(dirname "$0")/../agent/integration/harness.sh"

h_need dbus-daemon dbus-send gnome-keyring-daemon secret-tool Xvfb dunst dunstctl jq curl perl python3
h_begin issue6
h_have_agent || h_skip_all "spell-agent is not built ($H_AGENT_BIN)"
h_have_cli || h_skip_all "spell is not built ($H_CLI_BIN)"
STANDINS=$H_SRC/tests/stand-ins

h_bus || h_skip_all "no session bus"
h_keyring || h_skip_all "gnome-keyring-daemon did not start"
h_display || h_skip_all "Xvfb did not start"
h_dunst || h_skip_all "dunst did not start"

# The browser: spell login and spell card add open one when there is a
# display; this one writes down the URL it was given and nothing else.
mkdir -p "$H_TMP/bin"
cat >"$H_TMP/bin/xdg-open" <<EOF
#!/bin/sh
printf '%s\n' "\$1" >>"$H_TMP/browser.log"
EOF
chmod 755 "$H_TMP/bin/xdg-open"
export PATH="$H_TMP/bin:$PATH"

# bg_exit NAME TENTHS: waits (bounded) for the background process recorded
# under NAME to end and leaves its exit status in BG_RC, or "running" when
# it did not end in time (the EXIT trap stops it then).  Not in a command
# substitution: wait only knows the shell's own children.
BG_RC=
bg_exit() {
    local p
    BG_RC=unknown
    p=$(h_pid "$1") || return 0
    if ! h_wait_for "$2" eval "! kill -0 $p 2>/dev/null"; then
        BG_RC=running
        return 0
    fi
    BG_RC=0
    wait "$p" 2>/dev/null || BG_RC=$?
    h_forget "$p"
}

# show FILE: a command's output as TAP comments.
show() { sed 's/^/#   /' "$1"; }

# ---- the stand-ins ------------------------------------------------------

python3 "$STANDINS/github.py" --port-file "$H_TMP/github.port" --client-id Iv1.e2e6 \
    --client-secret gh-secret-e2e6 >"$H_TMP/github.log" 2>&1 &
h_track github $!
python3 "$STANDINS/stripe.py" --port-file "$H_TMP/stripe.port" --secret-key sk_test_e2e6 \
    --webhook-secret whsec_e2e6 >"$H_TMP/stripe.log" 2>&1 &
h_track stripe $!
h_wait_for 100 test -s "$H_TMP/github.port" || h_skip_all "the GitHub stand-in did not start"
h_wait_for 100 test -s "$H_TMP/stripe.port" || h_skip_all "the Stripe stand-in did not start"
GH=http://127.0.0.1:$(cat "$H_TMP/github.port")
STRIPE=http://127.0.0.1:$(cat "$H_TMP/stripe.port")

# The person's GitHub account, which spell-server has never seen.
curl -fsS -o /dev/null --max-time 10 -X POST -H 'Content-Type: application/json' \
    -d '{"id": 6060601, "login": "newcaster", "name": "New Caster",
         "email": "newcaster@example.com", "avatar_url": "https://avatars.example/u/6060601"}' \
    "$GH/_control/user" || h_skip_all "the GitHub stand-in does not take a user"

# ---- the server, configured for both providers --------------------------

# No `users add`: the database holds the spells and nobody, and the
# harness's API helpers have no key to send.
H_DB=$H_TMP/server.db
# shellcheck disable=SC2034  # read by the harness (h_api_ok)
H_KEY=
"$H_SERVER_BIN" spells import "$H_SRC/assets/spells/catalog.json" --db "$H_DB" \
    >"$H_TMP/import.log" 2>&1 || { show "$H_TMP/import.log"; h_skip_all "spells import failed"; }
GITHUB_CLIENT_SECRET=gh-secret-e2e6 STRIPE_SECRET_KEY=sk_test_e2e6 STRIPE_WEBHOOK_SECRET=whsec_e2e6 \
    h_server --github-client-id Iv1.e2e6 --github-url "$GH" --github-api-url "$GH" \
    --stripe-api-url "$STRIPE" || h_skip_all "spell-server did not start"
# The webhook endpoint an operator registers in the Stripe dashboard.
st=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Content-Type: application/json' \
    -d "{\"webhook_url\": \"$SPELL_API_URL/webhooks/stripe\"}" "$STRIPE/_control/config")
check "the Stripe stand-in delivers webhooks to $SPELL_API_URL/webhooks/stripe" test "$st" = 200

check "the agent starts signed out" h_agent
out=$(h_cli whoami 2>&1)
check "spell whoami before login: not signed in" grep -q 'Not signed in' <<<"$out"

# ---- spell login: the device flow ---------------------------------------

# The binary itself in the background, not h_cli: a function put in the
# background is a subshell, and its pid is not the one to stop.
"$H_CLI_BIN" login >"$H_TMP/login.out" 2>&1 &
h_track login $!
h_wait_for 300 grep -q 'enter the code' "$H_TMP/login.out"
URL=$(sed -n 's/^To sign in, open  *//p' "$H_TMP/login.out" | head -n 1)
UC=$(sed -n 's/^and enter the code  *//p' "$H_TMP/login.out" | head -n 1)
show "$H_TMP/login.out"
check "spell login prints the device page ($URL)" test "$URL" = "$SPELL_API_URL/device"
check "  and a user code ($UC)" grep -Eq '^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$' <<<"$UC"
check "  and opens a browser on the page with the code filled in" \
    h_wait_for 100 grep -qxF "$URL?user_code=$UC" "$H_TMP/browser.log"

# The person, in the browser: opens the page, types the code, signs in
# with GitHub, which approves at once.
JAR=$H_TMP/browser.jar
web() {    # web CURL-ARGS...: the status; the page in $H_TMP/page, headers in $H_TMP/h
    curl -sS -o "$H_TMP/page" -D "$H_TMP/h" -w '%{http_code}' --max-time 30 -b "$JAR" -c "$JAR" "$@"
}
loc() { tr -d '\r' <"$H_TMP/h" | sed -n 's/^[Ll]ocation: //p' | head -n 1; }
check "GET /device shows the form" test "$(web "$URL")" = 200
check "  asking for the code" grep -qi 'user_code' "$H_TMP/page"
st=$(web --data-urlencode "user_code=$UC" -d action=github "$URL")
GHAUTH=$(loc)
check "entering the code leads to GitHub ($st)" test "$st" = 302
check "  at the stand-in's authorize page" grep -q "^$GH/login/oauth/authorize?" <<<"$GHAUTH"
st=$(web "$GHAUTH")
CB=$(loc)
check "GitHub approves and sends the browser back ($st)" test "$st" = 302
check "  to the server's callback" grep -q "^$SPELL_API_URL/auth/github/callback?" <<<"$CB"
check "the callback approves the device" test "$(web "$CB")" = 200
check "  and the page says to return to the terminal" grep -q 'return to your terminal' "$H_TMP/page"

bg_exit login 600
show "$H_TMP/login.out"
check "spell login finishes and exits 0 ($BG_RC)" test "$BG_RC" = 0
check "  signed in as the GitHub login, stored in the keyring" \
    grep -q 'Signed in as newcaster (session, stored in the keyring)' "$H_TMP/login.out"

h_cli whoami >"$H_TMP/whoami.out" 2>&1
show "$H_TMP/whoami.out"
check "spell whoami names the GitHub login" grep -qx 'account: *newcaster' "$H_TMP/whoami.out"
check "  and says the credential lives in the keyring" \
    grep -qx 'credential: in the keyring' "$H_TMP/whoami.out"
check "  the keyring holds it (schema io.spell.Credential, account newcaster)" \
    grep -q 'attribute.account = newcaster' <<<"$(h_keyring_items)"
check "  and no credentials file was written" test ! -e "$XDG_CONFIG_HOME/spell/credentials"

# ---- no card yet: paid casts refused, free casts run ---------------------

out=$(h_cli card 2>&1)
check "spell card: no card on file yet" grep -qi 'no card on file' <<<"$out"
h_cli cast wordcount -i text="one two" --wait >"$H_TMP/cast-nocard.out" 2>&1
rc=$?
show "$H_TMP/cast-nocard.out"
check "a paid cast without a card exits 4 ($rc)" test "$rc" = 4
check "  with 402 PAYMENT_METHOD_REQUIRED" grep -q 'PAYMENT_METHOD_REQUIRED' "$H_TMP/cast-nocard.out"
h_cli cast echo -i message=hello --wait >"$H_TMP/cast-free.out" 2>&1
rc=$?
show "$H_TMP/cast-free.out"
check "a free cast runs and exits 0 ($rc)" test "$rc" = 0
check "  to succeeded" grep -Eq '^state +succeeded' "$H_TMP/cast-free.out"

# ---- spell card add: Checkout at the Stripe stand-in ---------------------

: >"$H_TMP/browser.log"
"$H_CLI_BIN" card add >"$H_TMP/card-add.out" 2>&1 &
h_track card-add $!
h_wait_for 300 grep -Eq "$STRIPE/pay/cs_[A-Za-z0-9_]+" "$H_TMP/card-add.out"
PAY=$(grep -Eo "$STRIPE/pay/cs_[A-Za-z0-9_]+" "$H_TMP/card-add.out" | head -n 1)
check "spell card add prints the Checkout URL ($PAY)" test -n "$PAY"
check "  and opens it in the browser" h_wait_for 100 grep -qxF "$PAY" "$H_TMP/browser.log"
curl -sS -o "$H_TMP/complete.json" --max-time 30 -X POST -H 'Content-Type: application/json' \
    -d '{}' "$STRIPE/_control/checkout/${PAY##*/}/complete"
check "the person completes Checkout; the signed webhook is taken (200)" \
    test "$(jq -r '.statuses[0]' "$H_TMP/complete.json" 2>/dev/null)" = 200
bg_exit card-add 600
show "$H_TMP/card-add.out"
check "spell card add sees the card and exits 0 ($BG_RC)" test "$BG_RC" = 0
h_cli card >"$H_TMP/card.out" 2>&1
show "$H_TMP/card.out"
check "spell card shows the card" grep -q 'visa ending in 4242, expires 12/2034' "$H_TMP/card.out"
out=$(h_cli card --json 2>&1)
check "  spell card --json: visa 4242 active" \
    test "$(jq -r '[.brand, .last4, .status] | join(" ")' <<<"$out" 2>/dev/null)" = "visa 4242 active"
out=$(h_cli budget --json 2>&1)
h_log "budget: $out"
check "the budget is the \$50 default" test "$(jq -r .hard_limit_cents <<<"$out" 2>/dev/null)" = 5000

# ---- the paid cast, through the agent ------------------------------------

h_cli cast wordcount -i text="one two three" --wait >"$H_TMP/cast-paid.out" 2>&1
rc=$?
show "$H_TMP/cast-paid.out"
check "spell cast wordcount --wait succeeds through the agent ($rc)" test "$rc" = 0
check "  to succeeded" grep -Eq '^state +succeeded' "$H_TMP/cast-paid.out"
check "  and costs 5 cents" grep -Eq '^cost +\$0\.05$' "$H_TMP/cast-paid.out"
local_id=$(sed -n 's/^local id *//p' "$H_TMP/cast-paid.out" | head -n 1)
c=$(h_call cast.get "{\"local_id\":\"$local_id\"}")
check "  the agent's cast: succeeded, final, 5 cents" \
    test "$(jq -r '"\(.state) \(.final) \(.cost_cents)"' <<<"$c" 2>/dev/null)" = "succeeded true 5"

out=$(h_cli usage --json 2>&1)
h_log "usage: $out"
check "spell usage: 5 cents spent of the \$50" \
    test "$(jq -r '"\(.spent_cents) \(.hard_limit_cents) \(.remaining_cents)"' <<<"$out" 2>/dev/null)" = "5 5000 4995"
check "  one wordcount cast for 5 cents" \
    test "$(jq -c '[.by_spell[] | select(.spell_key == "wordcount") | .spent_cents, .calls]' <<<"$out" 2>/dev/null)" = "[5,1]"
h_cli usage >"$H_TMP/usage.out" 2>&1
show "$H_TMP/usage.out"
check "  the table names wordcount and \$0.05" grep -Eq '^wordcount +\$0\.05 +1 casts' "$H_TMP/usage.out"

notes=$(h_notifications)
h_log "notifications: $(tr '\n' ' ' <<<"$notes")"
note=$(jq -c 'select(.summary == "wordcount succeeded")' <<<"$notes" | head -n 1)
check "dunst showed a notification naming the spell (wordcount succeeded)" test -n "$note"
check "  with the cost (\$0.05)" grep -qF 'Cost $0.05' <<<"$(jq -r .body <<<"${note:-{\}}" 2>/dev/null)"

# ---- the ledger ------------------------------------------------------------

"$H_SERVER_BIN" ledger verify --db "$H_DB" >"$H_TMP/ledger.out" 2>&1
rc=$?
show "$H_TMP/ledger.out"
check "spell-server ledger verify exits 0 ($rc)" test "$rc" = 0
check "  having checked every entry" grep -Eq '^ledger: [1-9][0-9]* entries checked, OK$' "$H_TMP/ledger.out"

h_done
