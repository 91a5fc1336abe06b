#!/usr/bin/env bash
# cli-start: `spell whoami` from start to exit, side by side with `gh auth
# status` (Debian's gh, GH_TOKEN set to a dummy token), in one run.
#
#   meson setup build && ninja -C build      # builds spell-server, spell-agent, spell
#   bench/cli-start.sh [BUILD_DIR]           # BUILD_DIR defaults to build
#
# Knobs (environment): RUNS (50 of each), WARMUP (5 of each).
#
# What it does, in a temp dir on 127.0.0.1:
#   - installs gh with apt-get when it is missing (root only);
#   - starts spell-server with a user and spell-agent holding that user's
#     key (SPELL_API_KEY in the agent's environment), so `spell whoami`
#     does what it does on a desktop: asks the running agent over its
#     socket where the credential lives;
#   - runs the two commands alternately, RUNS times each after WARMUP
#     unmeasured runs, timing each from fork to exit with Time::HiRes (no
#     shell in between), then RUNS more each under /usr/bin/time for the
#     peak resident set of the command's own process (%M);
#   - prints the median and p90 wall time and the median peak RSS of each,
#     and the ratios spell/gh (target: at most 0.25 for both).
# What gh does here: `gh auth status` with GH_TOKEN reads its config, then
# checks the token with GET https://api.github.com/; on a machine without
# a route to it the DNS lookup fails at once and gh reports the token
# invalid (exit 1), so its time is its start-up plus one failed lookup.
# The spell figure does not include the agent's own memory (a daemon that
# is already running); docs/performance.md gives it separately.  spell
# links neither libcurl nor libcrypto (its network module spell-net.so is
# opened only by the commands that talk to the server themselves), so the
# libraries it loads are printed with the figures.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
runs=${RUNS:-50}
warmup=${WARMUP:-5}

server=$build/server/spell-server
agent=$build/agent/spell-agent
cli=$build/agent/cli/spell
for b in "$server" "$agent" "$cli"; do
    [ -x "$b" ] || { echo "cli-start.sh: $b is missing; build first (ninja -C $build)" >&2; exit 2; }
done
[ -x /usr/bin/time ] || { echo "cli-start.sh: /usr/bin/time is missing (Debian package time)" >&2; exit 2; }
if ! command -v gh >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "cli-start.sh: gh is missing; install Debian's gh as root" >&2
        exit 2
    fi
    echo "cli-start.sh: installing gh"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q gh >/dev/null
fi

tmp=$(mktemp -d /tmp/cli-start.XXXXXX)
chmod 700 "$tmp"
. "$root/bench/lib.sh"
bench_traps

mkdir -p "$tmp/home" "$tmp/config" "$tmp/state" "$tmp/run" "$tmp/cache" "$tmp/gh"
chmod 700 "$tmp/run"
db=$tmp/server.db
key=$("$server" users add bench --db "$db" 2>"$tmp/users.log") || { cat "$tmp/users.log" >&2; exit 1; }
"$server" serve --db "$db" --listen 127.0.0.1:0 --port-file "$tmp/port" --access-log off \
    --rate-user-per-min 1000000 --rate-ip-per-min 1000000 2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$tmp/port" ] && break
    sleep 0.1
done
[ -s "$tmp/port" ] || { echo "cli-start.sh: spell-server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
port=$(cat "$tmp/port")

# Both commands run with the same clean environment, apart from their own
# variables.
unset DBUS_SESSION_BUS_ADDRESS DISPLAY WAYLAND_DISPLAY SPELL_API_KEY NO_COLOR
export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/config XDG_STATE_HOME=$tmp/state \
    XDG_RUNTIME_DIR=$tmp/run XDG_CACHE_HOME=$tmp/cache SPELL_API_URL=http://127.0.0.1:$port
SPELL_API_KEY=$key "$agent" >"$tmp/agent.log" 2>&1 &
pids=("$!" "${pids[@]}")
sock=$tmp/run/spell/agent.sock
for _ in $(seq 100); do
    [ -S "$sock" ] && break
    sleep 0.1
done
[ -S "$sock" ] || { echo "cli-start.sh: spell-agent did not start" >&2; cat "$tmp/agent.log" >&2; exit 1; }

spell_cmd=("$cli" whoami)
gh_cmd=(env GH_TOKEN=gho_0000000000000000000000000000000000000 GH_CONFIG_DIR="$tmp/gh" GH_NO_UPDATE_NOTIFIER=1
    gh auth status)
# `env` is a process of its own in front of gh: time it alone and take it
# off (it is a few hundred microseconds).

echo "cli-start: $runs runs each after $warmup warm-up runs; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "== spell $("$cli" --version 2>/dev/null | head -n 1) against $(gh --version | head -n 1)"
echo "-- spell links: $(readelf -d "$cli" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p' | tr '\n' ' ')"
echo "-- spell whoami says:"
"${spell_cmd[@]}" 2>&1 | sed 's/^/   /' || true
echo "-- gh auth status says (exit status $( "${gh_cmd[@]}" >/dev/null 2>&1; echo $?)):"
"${gh_cmd[@]}" 2>&1 | sed 's/^/   /' || true

# Wall times: alternate the commands, fork + exec each directly, and print
# "name microseconds" lines.
perl -MTime::HiRes=time -e '
    my ($runs, $warm) = splice(@ARGV, 0, 2);
    my (@a, @b, $sep);
    for (my $i = 0; $i < @ARGV; $i++) { if ($ARGV[$i] eq "--") { $sep = $i; last } }
    @a = @ARGV[0 .. $sep - 1];
    @b = @ARGV[$sep + 1 .. $#ARGV];
    my @c = ("env");
    sub once {
        my @cmd = @_;
        my $t0 = time;
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            open STDOUT, ">", "/dev/null"; open STDERR, ">", "/dev/null";
            exec { $cmd[0] } @cmd or exit 127;
        }
        waitpid($pid, 0);
        return (time - $t0) * 1e6;
    }
    for (1 .. $warm) { once(@a); once(@b); once(@c) }
    for (1 .. $runs) {
        printf "spell %d\n", once(@a);
        printf "gh %d\n", once(@b);
        printf "env %d\n", once(@c);
    }' "$runs" "$warmup" "${spell_cmd[@]}" -- "${gh_cmd[@]}" >"$tmp/wall"

# Peak RSS of each command's own process, in KiB.
for ((i = 0; i < runs; i++)); do
    /usr/bin/time -f 'spell %M' -o "$tmp/rss.tmp" "${spell_cmd[@]}" >/dev/null 2>&1 || true
    cat "$tmp/rss.tmp" >>"$tmp/rss"
    # gh without the env wrapper, so %M is gh's own.
    GH_TOKEN=gho_0000000000000000000000000000000000000 GH_CONFIG_DIR="$tmp/gh" GH_NO_UPDATE_NOTIFIER=1 \
        /usr/bin/time -f 'gh %M' -o "$tmp/rss.tmp" gh auth status >/dev/null 2>&1 || true
    cat "$tmp/rss.tmp" >>"$tmp/rss"
done
agent_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${pids[0]}/status")

awk -v runs="$runs" -v agent_rss="$agent_rss" '
    function sortn(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
    }
    function pct(arr, n, p,    k) { k = int((p / 100) * n + 0.999999); if (k < 1) k = 1; if (k > n) k = n; return arr[k] }
    FILENAME ~ /wall$/ { w[$1, ++nw[$1]] = $2; next }
    /^(spell|gh) [0-9]+$/ { m[$1, ++nm[$1]] = $2; next }
    END {
        for (k = 1; k <= nw["spell"]; k++) s[k] = w["spell", k]; sortn(s, nw["spell"])
        for (k = 1; k <= nw["gh"]; k++) g[k] = w["gh", k]; sortn(g, nw["gh"])
        for (k = 1; k <= nw["env"]; k++) e[k] = w["env", k]; sortn(e, nw["env"])
        for (k = 1; k <= nm["spell"]; k++) sm[k] = m["spell", k]; sortn(sm, nm["spell"])
        for (k = 1; k <= nm["gh"]; k++) gm[k] = m["gh", k]; sortn(gm, nm["gh"])
        env_med = pct(e, nw["env"], 50)
        s50 = pct(s, nw["spell"], 50); s90 = pct(s, nw["spell"], 90)
        g50 = pct(g, nw["gh"], 50) - env_med; g90 = pct(g, nw["gh"], 90) - env_med
        smem = pct(sm, nm["spell"], 50); gmem = pct(gm, nm["gh"], 50)
        printf "spell whoami:   wall p50 %6.1f ms  p90 %6.1f ms   peak RSS p50 %6.1f MiB (max %.1f)\n", s50 / 1000, s90 / 1000, smem / 1024, sm[nm["spell"]] / 1024
        printf "gh auth status: wall p50 %6.1f ms  p90 %6.1f ms   peak RSS p50 %6.1f MiB (max %.1f)\n", g50 / 1000, g90 / 1000, gmem / 1024, gm[nm["gh"]] / 1024
        printf "(gh wall times less the env wrapper, p50 %.2f ms; the running agent holds %.1f MiB besides)\n", env_med / 1000, agent_rss / 1024
        rt = s50 / g50; rm = smem / gmem
        printf "ratio wall spell/gh: %.3f (target <= 0.25: %s)\n", rt, rt <= 0.25 ? "met" : "MISSED"
        printf "ratio peak RSS spell/gh: %.3f (target <= 0.25: %s)\n", rm, rm <= 0.25 ? "met" : "MISSED"
        printf "RESULT spell_p50_us=%d gh_p50_us=%d spell_rss_kib=%d gh_rss_kib=%d ratio_wall=%.3f ratio_rss=%.3f\n", s50, g50, smem, gmem, rt, rm
    }' "$tmp/wall" "$tmp/rss"
