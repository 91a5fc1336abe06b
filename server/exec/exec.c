/*
 * The executor (exec.h): a queue of cast ids, a fixed pool of worker
 * threads, and the dispatch by execution mode.
 *
 * The queue is a ring of ids guarded by the executor's mutex; the cast rows
 * in the store are the durable copy.  A worker takes an id, claims it in its
 * slot (two workers never run one cast: an id already claimed is dropped),
 * reads the cast and runs it when it is still queued or running.  A cast
 * canceled while queued is simply found canceled and skipped.  When the
 * ring is full, exec_submit sets `rescan`, and an idle worker refills the
 * ring from the store's unfinished casts.
 *
 * With no workers (limits.workers 0) the executor takes casts without
 * running any: exec_submit checks the id and keeps nothing, since the
 * store already holds the cast queued; a later executor with workers
 * queues it again through exec_recover.  Cancel works as with workers.
 *
 * Locking: one mutex for the ring, the slots and the flags; never held
 * across a store call, a lifecycle call or a wait for a process.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "spell/errors.h"

#include "exec-impl.h"
#include "exec.h"
#include "lifecycle.h"
#include "metrics.h"
#include "server.h"
#include "store.h"
#include "workflow.h"

#define RING_INITIAL 256
#define ID_SIZE 48

struct executor {
    struct server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* The ring of queued ids: ring[(head + i) % cap] for i < len. */
    char (*ring)[ID_SIZE];
    size_t head, len, cap;
    /* The ring overflowed: refill from the store once it drains. */
    bool rescan;
    bool started, stopping, joined;
    int nworkers;
    pthread_t *threads;
    struct exec_slot *slots;
    struct exec_metrics m;
};

struct worker_arg {
    struct executor *e;
    struct exec_slot *slot;
};

static bool id_ok(const char *id)
{
    size_t n;

    if (!id)
        return false;
    n = strlen(id);
    if (n == 0 || n >= ID_SIZE)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

const struct exec_metrics *exec_metrics_of(struct executor *e)
{
    return e ? &e->m : NULL;
}

struct server *exec_server(struct executor *e)
{
    return e->srv;
}

int exec_slot_set_pgid(struct executor *e, struct exec_slot *slot, pid_t pgid)
{
    int flags;

    pthread_mutex_lock(&e->mu);
    slot->pgid = pgid;
    flags = (slot->cancel ? EXEC_FLAG_CANCEL : 0) | (e->stopping ? EXEC_FLAG_STOP : 0);
    pthread_mutex_unlock(&e->mu);
    return flags;
}

int exec_slot_flags(struct executor *e, struct exec_slot *slot)
{
    int flags;

    pthread_mutex_lock(&e->mu);
    flags = (slot->cancel ? EXEC_FLAG_CANCEL : 0) | (e->stopping ? EXEC_FLAG_STOP : 0);
    pthread_mutex_unlock(&e->mu);
    return flags;
}

/* ---- The ring ---------------------------------------------------------- */

/* With the mutex held.  SPELL_ETOOBIG when full at EXEC_QUEUE_MAX. */
static int ring_push(struct executor *e, const char *id)
{
    char (*grown)[ID_SIZE];
    size_t ncap;

    if (e->len == e->cap) {
        if (e->cap >= EXEC_QUEUE_MAX)
            return SPELL_ETOOBIG;
        ncap = e->cap ? e->cap * 2 : RING_INITIAL;
        if (ncap > EXEC_QUEUE_MAX)
            ncap = EXEC_QUEUE_MAX;
        if (!(grown = calloc(ncap, sizeof *grown)))
            return SPELL_ENOMEM;
        for (size_t i = 0; i < e->len; i++)
            memcpy(grown[i], e->ring[(e->head + i) % e->cap], ID_SIZE);
        free(e->ring);
        e->ring = grown;
        e->cap = ncap;
        e->head = 0;
    }
    snprintf(e->ring[(e->head + e->len) % e->cap], ID_SIZE, "%s", id);
    e->len++;
    return SPELL_OK;
}

static void ring_pop(struct executor *e, char *id)
{
    memcpy(id, e->ring[e->head], ID_SIZE);
    e->head = (e->head + 1) % e->cap;
    e->len--;
}

/* With the mutex held: whether a worker has claimed id. */
static struct exec_slot *claimed(struct executor *e, const char *id)
{
    for (int i = 0; i < e->nworkers; i++)
        if (e->slots[i].active && strcmp(e->slots[i].cast_id, id) == 0)
            return &e->slots[i];
    return NULL;
}

/* ---- Lifecycle of the executor ---------------------------------------- */

static const double run_bounds[] = {0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

static int register_metrics(struct executor *e)
{
    static const char *const mode_status[] = {"mode", "status"};
    static const char *const mode[] = {"mode"};
    static const char *const code[] = {"code"};
    struct metrics *m = e->srv->metrics;
    int rc;

    if (!m)
        return SPELL_OK;
    if ((rc = metrics_counter(m, "spell_casts_total", "Casts reaching each status, by mode.",
                              mode_status, 2, 64, &e->m.casts)) != SPELL_OK)
        return rc;
    if ((rc = metrics_histogram(m, "spell_cast_run_seconds",
                                "Run time of finished casts, by mode.", mode, 1, run_bounds,
                                sizeof run_bounds / sizeof run_bounds[0], 16,
                                &e->m.run_seconds)) != SPELL_OK)
        return rc;
    return metrics_counter(m, "spell_exec_errors_total", "Failed casts, by run error code.",
                           code, 1, 32, &e->m.errors);
}

int exec_new(struct server *srv, struct executor **out)
{
    struct executor *e = NULL;
    int rc = SPELL_ENOMEM, n;

    if (!srv || !srv->store || !out)
        return SPELL_EINVAL;
    *out = NULL;
    if (srv->limits.workers < 0)
        return SPELL_EINVAL;
    n = srv->limits.workers < EXEC_WORKERS_MAX ? srv->limits.workers : EXEC_WORKERS_MAX;
    if (!(e = calloc(1, sizeof *e)))
        return SPELL_ENOMEM;
    e->srv = srv;
    e->nworkers = n;
    /* One element at least, so that no workers is not an allocation
     * failure. */
    if (!(e->threads = calloc((size_t)(n > 0 ? n : 1), sizeof *e->threads)) ||
        !(e->slots = calloc((size_t)(n > 0 ? n : 1), sizeof *e->slots)))
        goto fail;
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        rc = SPELL_EIO;
        goto fail;
    }
    if (pthread_cond_init(&e->cv, NULL) != 0) {
        pthread_mutex_destroy(&e->mu);
        rc = SPELL_EIO;
        goto fail;
    }
    if ((rc = register_metrics(e)) != SPELL_OK) {
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        goto fail;
    }
    *out = e;
    return SPELL_OK;
fail:
    free(e->threads);
    free(e->slots);
    free(e);
    return rc;
}

/* ---- Workers ---------------------------------------------------------- */

static void run_cast(struct executor *e, struct exec_slot *slot, const char *id)
{
    struct server *srv = e->srv;
    struct store_cast c;
    char msg[160];

    if (store_cast_get(srv->store, id, NULL, &c) != SPELL_OK)
        return;
    if (strcmp(c.status, "queued") != 0 && strcmp(c.status, "running") != 0)
        goto out;
    if (strcmp(c.mode, "service") == 0) {
        service_run(e, slot, &c);
    } else if (strcmp(c.mode, "workflow") == 0) {
        workflow_run(e, slot, &c);
    } else {
        snprintf(msg, sizeof msg, "execution mode '%.32s' is not configured on this server",
                 c.mode);
        lifecycle_fail(srv, id, EXEC_ERR_INTERNAL, msg);
    }
out:
    store_cast_clear(&c);
}

struct rescan_ctx {
    struct executor *e;
    int added;
};

static int rescan_one(void *ud, const struct store_cast *c)
{
    struct rescan_ctx *r = ud;
    int rc = 0;

    if (strcmp(c->status, "queued") != 0)
        return 0;
    pthread_mutex_lock(&r->e->mu);
    if (!claimed(r->e, c->id)) {
        if (ring_push(r->e, c->id) == SPELL_OK)
            r->added++;
        else {
            r->e->rescan = true;
            rc = 1;
        }
    }
    pthread_mutex_unlock(&r->e->mu);
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct executor *e = wa->e;
    struct exec_slot *slot = wa->slot;
    struct rescan_ctx rs;
    char id[ID_SIZE];
    sigset_t set;

    free(wa);
    /* A write to a spell that stopped reading must not kill the server. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stopping && e->len == 0 && !e->rescan)
            pthread_cond_wait(&e->cv, &e->mu);
        if (e->stopping)
            break;
        if (e->len == 0) {
            e->rescan = false;
            pthread_mutex_unlock(&e->mu);
            rs = (struct rescan_ctx){e, 0};
            store_casts_unfinished(e->srv->store, rescan_one, &rs);
            pthread_mutex_lock(&e->mu);
            if (rs.added)
                pthread_cond_broadcast(&e->cv);
            continue;
        }
        ring_pop(e, id);
        if (claimed(e, id))
            continue;
        slot->active = 1;
        slot->cancel = 0;
        slot->pgid = 0;
        memcpy(slot->cast_id, id, ID_SIZE);
        pthread_mutex_unlock(&e->mu);
        run_cast(e, slot, id);
        pthread_mutex_lock(&e->mu);
        slot->active = 0;
        slot->pgid = 0;
        slot->cast_id[0] = '\0';
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int exec_start(struct executor *e)
{
    struct worker_arg *wa;
    int rc = SPELL_OK, i;

    if (!e)
        return SPELL_EINVAL;
    pthread_mutex_lock(&e->mu);
    if (e->started || e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return SPELL_EINVAL;
    }
    e->started = true;
    pthread_mutex_unlock(&e->mu);
    for (i = 0; i < e->nworkers; i++) {
        if (!(wa = malloc(sizeof *wa))) {
            rc = SPELL_ENOMEM;
            break;
        }
        wa->e = e;
        wa->slot = &e->slots[i];
        if (pthread_create(&e->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            rc = SPELL_EIO;
            break;
        }
    }
    if (rc != SPELL_OK) {
        /* Run with the threads that did start; stop joins only those. */
        pthread_mutex_lock(&e->mu);
        e->nworkers = i;
        pthread_mutex_unlock(&e->mu);
        if (i == 0)
            return rc;
    }
    return SPELL_OK;
}

void exec_stop(struct executor *e)
{
    bool join;

    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    for (int i = 0; i < e->nworkers; i++)
        if (e->slots[i].active && e->slots[i].pgid > 0)
            kill(-e->slots[i].pgid, SIGKILL);
    pthread_cond_broadcast(&e->cv);
    join = e->started && !e->joined;
    e->joined = true;
    pthread_mutex_unlock(&e->mu);
    if (join)
        for (int i = 0; i < e->nworkers; i++)
            pthread_join(e->threads[i], NULL);
}

void exec_free(struct executor *e)
{
    if (!e)
        return;
    exec_stop(e);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e->ring);
    free(e->threads);
    free(e->slots);
    free(e);
}

int exec_submit(struct executor *e, const char *cast_id)
{
    int rc;

    if (!e || !id_ok(cast_id))
        return SPELL_EINVAL;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        rc = SPELL_EABORT;
    } else if (e->nworkers == 0) {
        /* Nothing here would run it: it waits in the store. */
        rc = SPELL_OK;
    } else {
        rc = ring_push(e, cast_id);
        if (rc != SPELL_OK) {
            /* The cast is queued in the store: a rescan will find it. */
            e->rescan = true;
            rc = SPELL_OK;
        }
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int exec_cancel(struct executor *e, const char *cast_id)
{
    struct exec_slot *slot;
    int rc;

    if (!e || !id_ok(cast_id))
        return SPELL_EINVAL;
    pthread_mutex_lock(&e->mu);
    if ((slot = claimed(e, cast_id))) {
        slot->cancel = 1;
        if (slot->pgid > 0)
            kill(-slot->pgid, SIGTERM);
    }
    pthread_mutex_unlock(&e->mu);
    rc = lifecycle_cancel(e->srv, cast_id);
    /* A workflow run goes on GitHub: ask it to stop too (best effort). */
    if (rc == SPELL_OK)
        (void)workflow_cancel_run(e->srv, cast_id);
    return rc;
}

int exec_running(struct executor *e)
{
    int n = 0;

    if (!e)
        return 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->nworkers; i++)
        if (e->slots[i].active && e->slots[i].pgid > 0)
            n++;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- Recovery --------------------------------------------------------- */

struct found {
    char id[ID_SIZE];
    bool has_inputs;
};

struct recover_ctx {
    struct found *list;
    size_t n, cap;
    bool truncated;
};

static int recover_one(void *ud, const struct store_cast *c)
{
    struct recover_ctx *r = ud;
    struct found *grown;
    size_t ncap;

    if (r->n == r->cap) {
        if (r->cap >= EXEC_QUEUE_MAX) {
            r->truncated = true;
            return 1;
        }
        ncap = r->cap ? r->cap * 2 : 64;
        if (!(grown = realloc(r->list, ncap * sizeof *grown))) {
            r->truncated = true;
            return 1;
        }
        r->list = grown;
        r->cap = ncap;
    }
    snprintf(r->list[r->n].id, ID_SIZE, "%s", c->id);
    r->list[r->n].has_inputs = c->inputs != NULL;
    r->n++;
    return 0;
}

int exec_recover_counts(struct executor *e, int *requeued, int *failed)
{
    struct recover_ctx r;
    int rc, nq = 0, nf = 0;

    if (requeued)
        *requeued = 0;
    if (failed)
        *failed = 0;
    if (!e)
        return SPELL_EINVAL;
    memset(&r, 0, sizeof r);
    rc = store_casts_unfinished(e->srv->store, recover_one, &r);
    if (rc == SPELL_EABORT && r.truncated)
        rc = SPELL_OK;
    if (rc != SPELL_OK)
        goto out;
    for (size_t i = 0; i < r.n; i++) {
        if (!r.list[i].has_inputs) {
            if (lifecycle_fail(e->srv, r.list[i].id, EXEC_ERR_INTERNAL,
                               "the server restarted and the inputs were no longer kept") ==
                SPELL_OK)
                nf++;
            continue;
        }
        if (exec_submit(e, r.list[i].id) == SPELL_OK)
            nq++;
    }
    if (r.truncated) {
        pthread_mutex_lock(&e->mu);
        e->rescan = true;
        pthread_mutex_unlock(&e->mu);
    }
out:
    free(r.list);
    if (requeued)
        *requeued = nq;
    if (failed)
        *failed = nf;
    return rc;
}

int exec_recover(struct executor *e)
{
    return exec_recover_counts(e, NULL, NULL);
}
