/*
 * The agent's POST requests (cast submissions and cancels), sent on the
 * loop's curl multi like every other request, so no thread of its own.
 *
 * submit.c builds a job (URL, token, body, Idempotency-Key) and calls
 * sender_post(), which starts one POST on a->multi and lists the job on
 * a->posts.  The answer body is collected (at most SENDER_BODY_CAP
 * bytes); when the stream ends, its on_done, in the loop thread, fills
 * the job's rc, status, body and Retry-After and hands it to
 * submit_job_done(), which applies it to the queue.  One attempt only:
 * retries are the queue's business, so that they survive a restart.  The
 * bound on submissions in flight (max_concurrent) is kept by submit.c;
 * cancels are never held back behind it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spell/errors.h"

#include "agent.h"

/* A submission answer larger than this is treated as a transport fault. */
#define SENDER_BODY_CAP (256 * 1024)
#define SENDER_TIMEOUT_MS 30000L

void sender_job_free(struct sender_job *job)
{
    if (!job)
        return;
    free(job->url);
    if (job->bearer) {
        explicit_bzero(job->bearer, strlen(job->bearer));
        free(job->bearer);
    }
    free(job->body);
    free(job->idem_header);
    spell_buf_free(&job->resp);
    free(job);
}

static void post_unlink(struct agent *a, struct sender_job *job)
{
    for (struct sender_job **pp = &a->posts; *pp; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            job->next = NULL;
            return;
        }
    }
}

static int on_data(struct spell_http_stream *s, const char *data, size_t len, void *user)
{
    struct sender_job *job = user;

    return spell_buf_add(&job->resp, data, len) == SPELL_OK ? 0 : 1;
}

static void on_done(struct spell_http_stream *s, int rc, int status, const char *error,
                    void *user)
{
    struct sender_job *job = user;
    struct agent *a = job->a;
    const char *ra;

    post_unlink(a, job);
    job->stream = NULL;
    job->rc = rc;
    job->status = status;
    job->retry_after_ms = -1;
    if (rc == SPELL_EABORT) {
        /* Only the body cap aborts. */
        job->rc = SPELL_ETOOBIG;
        snprintf(job->error, sizeof(job->error),
                 "the answer is larger than the %d-byte cap", SENDER_BODY_CAP);
    } else {
        snprintf(job->error, sizeof(job->error), "%s", error ? error : "");
    }
    if (job->rc == SPELL_OK) {
        ra = spell_http_stream_header(s, "Retry-After");
        if (ra && spell_http_parse_retry_after(ra, time(NULL), &job->retry_after_ms) != SPELL_OK)
            job->retry_after_ms = -1;
    }
    submit_job_done(a, job);
    sender_job_free(job);
}

int sender_post(struct agent *a, struct sender_job *job)
{
    struct spell_http_stream_config cfg = {0};
    const char *hdrs[1];
    int rc;

    job->a = a;
    job->next = NULL;
    spell_buf_init(&job->resp, SENDER_BODY_CAP);
    cfg.url = job->url;
    cfg.method = "POST";
    cfg.bearer = job->bearer && job->bearer[0] ? job->bearer : NULL;
    cfg.body = job->body;
    cfg.body_len = job->body_len;
    if (job->idem_header) {
        hdrs[0] = job->idem_header;
        cfg.headers = hdrs;
        cfg.n_headers = 1;
    }
    cfg.timeout_ms = SENDER_TIMEOUT_MS;
    cfg.on_data = on_data;
    cfg.on_done = on_done;
    cfg.user = job;
    rc = spell_http_multi_add(a->multi, &cfg, &job->stream);
    if (rc != SPELL_OK)
        return rc;
    job->next = a->posts;
    a->posts = job;
    return SPELL_OK;
}

void sender_cancel_all(struct agent *a)
{
    while (a->posts) {
        struct sender_job *job = a->posts;

        a->posts = job->next;
        spell_http_multi_remove(a->multi, job->stream);
        sender_job_free(job);
    }
}
