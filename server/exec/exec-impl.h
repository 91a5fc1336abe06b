/*
 * What the files of server/exec/ share among themselves and nobody else:
 * the executor's metric families (registered by exec_new, updated by the
 * lifecycle) and the text cleaner used for every message a spell writes.
 */
#ifndef SPELL_SERVER_EXEC_IMPL_H
#define SPELL_SERVER_EXEC_IMPL_H

#include <stddef.h>
#include <sys/types.h>

struct executor;
struct metric;
struct server;
struct store_cast;

/* What a worker is doing, guarded by the executor's mutex. */
struct exec_slot {
    int active;             /* a cast is taken */
    char cast_id[48];
    /* The process group of the running program (its leader's pid), 0
     * before the spawn and after the reap. */
    pid_t pgid;
    int cancel;             /* exec_cancel asked for this cast */
};

/* Flags read by a running job (exec_slot_flags). */
#define EXEC_FLAG_CANCEL 1
#define EXEC_FLAG_STOP 2

/* Records (pgid > 0) or clears (0) the running process group of slot and
 * returns the flags at that moment; with the executor locked inside. */
int exec_slot_set_pgid(struct executor *e, struct exec_slot *slot, pid_t pgid);
int exec_slot_flags(struct executor *e, struct exec_slot *slot);
struct server *exec_server(struct executor *e);

/* Runs a cast of mode service to its end (service.c).  The cast was read
 * from the store and is queued or running. */
void service_run(struct executor *e, struct exec_slot *slot, const struct store_cast *c);

struct exec_metrics {
    struct metric *casts;           /* spell_casts_total{mode,status} */
    struct metric *run_seconds;     /* spell_cast_run_seconds{mode} */
    struct metric *errors;          /* spell_exec_errors_total{code} */
};

/* The executor's families; NULL for a NULL executor. */
const struct exec_metrics *exec_metrics_of(struct executor *e);

/*
 * Copies at most len bytes of untrusted text at in into out (outsize
 * bytes, NUL included) as clean UTF-8: ill-formed bytes become '?', control
 * characters (tab and newline included) a space, and the text is cut at a
 * character boundary to fit.  outsize must be at least 1.
 */
void lifecycle_text_clean(const char *in, size_t len, char *out, size_t outsize);

#endif
