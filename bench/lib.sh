# Shared by the benchmark driver scripts (sourced, never run): stopping
# every process a script started, on every exit path.  A script sets
# `tmp` (its temp dir) and appends each process it starts to `pids`, then
# calls bench_traps.

pids=()
# Tenths of a second each process gets between SIGTERM and SIGKILL.
bench_stop_tenths=50

# Stops every process in pids and removes tmp.
bench_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq "$bench_stop_tenths"); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
    rm -rf "${tmp:?}"
}

# bench_uint NAME VALUE: exits 2 unless VALUE is a whole number (a knob
# from the environment, say CASTS), so a typo is not read as 0.
bench_uint() {
    case $2 in
        '' | *[!0-9]*)
            echo "$(basename "$0"): $1 must be a whole number, not '$2'" >&2
            exit 2
            ;;
    esac
}

bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP
}
