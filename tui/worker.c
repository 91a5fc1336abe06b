/*
 * The background HTTP thread (worker.h).  Jobs go in at the tail of one
 * list and results come out of another; a byte on the wakeup pipe tells
 * the drawing thread that a result is waiting.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"
#include "spell/models.h"

struct worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *jobs;           /* queue head; guarded by lock */
    struct job_result *done;    /* results head; guarded by lock */
    int n_jobs;                 /* queued and in flight; guarded by lock */
    bool stop;                  /* guarded by lock */
    int wake_wr;
    int wake_rd;
};

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->body);
    if (j->bearer) {
        OPENSSL_cleanse(j->bearer, strlen(j->bearer));
        free(j->bearer);
    }
    free(j->url);
    if (j->grant) {
        OPENSSL_cleanse(j->grant, sizeof *j->grant);
        free(j->grant);
    }
    free(j);
}

void job_result_free(struct job_result *r)
{
    if (!r)
        return;
    cJSON_Delete(r->json);
    free(r->body);
    if (r->grant) {
        OPENSSL_cleanse(r->grant, sizeof *r->grant);
        free(r->grant);
    }
    if (r->device) {
        spell_device_result_wipe(r->device);
        free(r->device);
    }
    free(r);
}

static void copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= size)
        n = size - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The device flow through core's client, which does its own HTTP. */
static void run_device(const struct job *j, struct job_result *r)
{
    char err[512] = "";
    r->rc = SPELL_ENOMEM;
    if (!(r->grant = calloc(1, sizeof *r->grant)))
        goto out;
    if (j->kind == JOB_DEVICE_START) {
        r->rc = spell_device_start(j->url, r->grant, err, sizeof err);
        goto out;
    }
    if (!j->grant || !(r->device = calloc(1, sizeof *r->device)))
        goto out;
    *r->grant = *j->grant;
    r->rc = spell_device_poll(j->url, r->grant, r->device, err, sizeof err);
out:
    if (r->rc != SPELL_OK)
        copy(r->message, sizeof r->message, err[0] ? err : spell_strerror(r->rc));
}

static struct job_result *run(const struct job *j)
{
    struct job_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = j->kind;
    copy(r->tag, sizeof r->tag, j->tag);
    if (j->kind == JOB_DEVICE_START || j->kind == JOB_DEVICE_POLL) {
        run_device(j, r);
        return r;
    }

    struct spell_http_request req;
    struct spell_http_response resp;
    spell_http_request_init(&req, j->method, j->url);
    req.bearer = j->bearer;
    req.body = j->body;
    req.body_len = j->body ? strlen(j->body) : 0;
    req.connect_timeout_ms = 3000;
    req.timeout_ms = 10000;
    req.body_cap = WORKER_BODY_CAP;
    req.retry.max_attempts = 2;
    r->rc = spell_http_send(&req, &resp);
    r->status = resp.status;
    if (r->rc != SPELL_OK) {
        copy(r->message, sizeof r->message, resp.error[0] ? resp.error : spell_strerror(r->rc));
        goto out;
    }
    if (resp.body_len > 0) {
        struct spell_json_limits lim = {.max_bytes = WORKER_BODY_CAP, .max_depth = 32};
        char err[256];
        if (spell_json_parse(resp.body, resp.body_len, &lim, &r->json, err, sizeof err) !=
            SPELL_OK)
            r->json = NULL;
    }
    if (r->status >= 400 && r->json) {
        struct spell_error_body eb;
        char err[256];
        if (spell_error_body_from_json(r->json, &eb, err, sizeof err) == SPELL_OK) {
            copy(r->code, sizeof r->code, eb.code);
            copy(r->message, sizeof r->message, eb.message);
            spell_error_body_free(&eb);
        }
    }
out:
    spell_http_response_free(&resp);
    return r;
}

static void *loop(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->stop && !w->jobs)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        struct job *j = w->jobs;
        w->jobs = j->next;
        pthread_mutex_unlock(&w->lock);

        struct job_result *r = run(j);
        if (r) {
            copy(r->method, sizeof r->method, j->method);
            copy(r->path, sizeof r->path, j->path);
            r->body = j->body;
            j->body = NULL;
        }
        job_free(j);

        pthread_mutex_lock(&w->lock);
        w->n_jobs--;
        if (r) {
            struct job_result **tail = &w->done;
            while (*tail)
                tail = &(*tail)->next;
            *tail = r;
        }
        pthread_mutex_unlock(&w->lock);
        char c = 1;
        ssize_t n;
        do
            n = write(w->wake_wr, &c, 1);
        while (n < 0 && errno == EINTR);
        /* A full pipe already wakes the reader; nothing more to do. */
    }
    return NULL;
}

int worker_start(struct worker **out, int *wake_rd)
{
    int rc = SPELL_ENOMEM;
    int fds[2] = {-1, -1};
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        goto out;
    rc = SPELL_EIO;
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        goto out;
    w->wake_rd = fds[0];
    w->wake_wr = fds[1];
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if ((rc = spell_http_global_init()) != SPELL_OK)
        goto out_sync;
    if (pthread_create(&w->thread, NULL, loop, w) != 0) {
        rc = SPELL_EIO;
        goto out_sync;
    }
    *wake_rd = fds[0];
    *out = w;
    return SPELL_OK;
out_sync:
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
out:
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    free(w);
    return rc;
}

void worker_stop(struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    while (w->jobs) {
        struct job *j = w->jobs;
        w->jobs = j->next;
        job_free(j);
    }
    while (w->done) {
        struct job_result *r = w->done;
        w->done = r->next;
        job_result_free(r);
    }
    close(w->wake_rd);
    close(w->wake_wr);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w);
}

int worker_submit(struct worker *w, enum job_kind kind, const char *method, const char *base_url,
                  const char *path, const char *body, const char *tag, const char *bearer)
{
    int rc = SPELL_ENOMEM;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        goto out;
    j->kind = kind;
    copy(j->method, sizeof j->method, method);
    copy(j->path, sizeof j->path, path);
    copy(j->tag, sizeof j->tag, tag);
    size_t ulen = strlen(base_url) + strlen(path) + 1;
    if (!(j->url = malloc(ulen)))
        goto out;
    snprintf(j->url, ulen, "%s%s", base_url, path);
    if (body && !(j->body = strdup(body)))
        goto out;
    if (bearer && !(j->bearer = strdup(bearer)))
        goto out;
    pthread_mutex_lock(&w->lock);
    if (w->n_jobs >= WORKER_MAX_QUEUE) {
        pthread_mutex_unlock(&w->lock);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    struct job **tail = &w->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    j = NULL;
    w->n_jobs++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    rc = SPELL_OK;
out:
    job_free(j);
    return rc;
}

int worker_submit_device(struct worker *w, enum job_kind kind, const char *base_url,
                         const struct spell_device_grant *grant)
{
    int rc = SPELL_ENOMEM;
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        goto out;
    j->kind = kind;
    copy(j->method, sizeof j->method, "POST");
    copy(j->path, sizeof j->path, kind == JOB_DEVICE_START ? "/v1/auth/device" : "/v1/auth/token");
    if (!(j->url = strdup(base_url)))
        goto out;
    if (grant) {
        if (!(j->grant = malloc(sizeof *j->grant)))
            goto out;
        *j->grant = *grant;
    }
    pthread_mutex_lock(&w->lock);
    if (w->n_jobs >= WORKER_MAX_QUEUE) {
        pthread_mutex_unlock(&w->lock);
        rc = SPELL_ETOOBIG;
        goto out;
    }
    struct job **tail = &w->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    j = NULL;
    w->n_jobs++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    rc = SPELL_OK;
out:
    job_free(j);
    return rc;
}

struct job_result *worker_take(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    struct job_result *r = w->done;
    if (r)
        w->done = r->next;
    pthread_mutex_unlock(&w->lock);
    if (r)
        r->next = NULL;
    return r;
}

int worker_pending(struct worker *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->n_jobs;
    pthread_mutex_unlock(&w->lock);
    return n;
}
