/*
 * The sender pool: a small fixed set of threads that make the agent's
 * POST requests (cast submissions and cancels), since core's curl-multi
 * mode only streams GETs.
 *
 * The loop thread pushes a job (URL, token, body, Idempotency-Key); a
 * sender thread runs spell_http_send() with one attempt (retries are the
 * queue's business, so that they survive a restart), stores the status,
 * the body and Retry-After in the job and moves it to the done list, then
 * writes the eventfd.  The loop sees the fd readable and takes the done
 * jobs back.  The pool is bounded: the loop never has more than
 * max_concurrent submissions in flight, and the threads number
 * max_concurrent + 1, so a cancel never waits behind a full pool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include "spell/errors.h"

#include "agent.h"

/* Most threads the pool runs (max_concurrent_casts is at most 64). */
#define SENDER_THREADS_MAX 65
/* A submission answer larger than this is treated as a transport fault. */
#define SENDER_BODY_CAP (256 * 1024)
#define SENDER_TIMEOUT_MS 30000L

struct sender {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sender_job *todo, *todo_tail;
    struct sender_job *done, *done_tail;
    /* Jobs pushed and not yet taken back by the loop. */
    int busy;
    bool stop;
    int efd;
    int n_threads;
    /* Threads that have left their loop (for the bounded wait on stop). */
    int n_exited;
    pthread_t threads[SENDER_THREADS_MAX];
};

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
    free(job->resp_body);
    free(job);
}

static void run_job(struct sender_job *job)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    const char *hdrs[1];
    const char *ra;

    spell_http_request_init(&req, "POST", job->url);
    req.bearer = job->bearer;
    req.body = job->body;
    req.body_len = job->body_len;
    if (job->idem_header) {
        hdrs[0] = job->idem_header;
        req.headers = hdrs;
        req.n_headers = 1;
    }
    req.timeout_ms = SENDER_TIMEOUT_MS;
    req.body_cap = SENDER_BODY_CAP;
    req.retry.max_attempts = 1;
    job->retry_after_ms = -1;
    job->rc = spell_http_send(&req, &resp);
    job->status = resp.status;
    memcpy(job->error, resp.error, sizeof(job->error));
    if (job->rc == SPELL_OK) {
        ra = spell_http_response_header(&resp, "Retry-After");
        if (ra && spell_http_parse_retry_after(ra, time(NULL), &job->retry_after_ms) != SPELL_OK)
            job->retry_after_ms = -1;
        job->resp_body = resp.body;
        job->resp_len = resp.body_len;
        resp.body = NULL;
    }
    spell_http_response_free(&resp);
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    struct sender_job *job;
    uint64_t one = 1;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->todo && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop)
            break;
        job = s->todo;
        s->todo = job->next;
        if (!s->todo)
            s->todo_tail = NULL;
        job->next = NULL;
        pthread_mutex_unlock(&s->lock);

        run_job(job);

        pthread_mutex_lock(&s->lock);
        if (s->done_tail)
            s->done_tail->next = job;
        else
            s->done = job;
        s->done_tail = job;
        if (write(s->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            agent_log("sender: cannot signal the loop: %s", strerror(errno));
    }
    s->n_exited++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sender_start(int threads, struct sender **out)
{
    int rc = SPELL_ENOMEM;
    struct sender *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (!s)
        return rc;
    if (threads < 1)
        threads = 1;
    if (threads > SENDER_THREADS_MAX)
        threads = SENDER_THREADS_MAX;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        rc = SPELL_EIO;
        goto fail;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&s->threads[i], NULL, sender_main, s) != 0) {
            rc = SPELL_EIO;
            goto fail;
        }
        s->n_threads++;
    }
    *out = s;
    return SPELL_OK;
fail:
    sender_stop(s, -1, NULL);
    return rc;
}

int sender_fd(const struct sender *s)
{
    return s->efd;
}

int sender_push(struct sender *s, struct sender_job *job)
{
    int rc = SPELL_OK;

    job->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->stop) {
        rc = SPELL_EINVAL;
    } else {
        if (s->todo_tail)
            s->todo_tail->next = job;
        else
            s->todo = job;
        s->todo_tail = job;
        s->busy++;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

struct sender_job *sender_take_done(struct sender *s)
{
    struct sender_job *list, *j;
    uint64_t v;

    if (read(s->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        agent_log("sender: eventfd: %s", strerror(errno));
    pthread_mutex_lock(&s->lock);
    list = s->done;
    s->done = s->done_tail = NULL;
    for (j = list; j; j = j->next)
        s->busy--;
    pthread_mutex_unlock(&s->lock);
    return list;
}

int sender_busy(struct sender *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->busy;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void sender_stop(struct sender *s, long wait_ms, struct sender_job **unsent)
{
    struct timespec until;
    bool all_exited;
    struct sender_job *j;

    if (unsent)
        *unsent = NULL;
    if (!s)
        return;
    clock_gettime(CLOCK_REALTIME, &until);
    if (wait_ms >= 0) {
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    if (unsent) {
        *unsent = s->todo;
    } else {
        while ((j = s->todo)) {
            s->todo = j->next;
            sender_job_free(j);
        }
    }
    s->todo = s->todo_tail = NULL;
    pthread_cond_broadcast(&s->cond);
    while (s->n_exited < s->n_threads) {
        if (wait_ms < 0)
            pthread_cond_wait(&s->cond, &s->lock);
        else if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
            break;
    }
    all_exited = s->n_exited == s->n_threads;
    pthread_mutex_unlock(&s->lock);
    if (!all_exited) {
        /* A request is stuck in the network: leave the threads and the
         * pool to the process exit; the rows stay submitting and go back
         * to pending on the next start. */
        agent_log("sender: %d request(s) still in flight; they resume on the next start",
                  s->n_threads - s->n_exited);
        return;
    }
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    while ((j = s->done)) {
        s->done = j->next;
        sender_job_free(j);
    }
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
