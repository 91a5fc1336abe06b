/*
 * The SSE fan-out hub: see sse_hub.h for the data flow and the locking
 * rules.  Channels live in a fixed hash table of lists; a channel exists
 * while it has subscriptions.  An event is formatted once per publish; it
 * is copied into the queue of each subscription on the queue path (so a
 * reader never touches shared memory and a slow client never holds a lock
 * another stream needs), and sent as one chunk to each socket of the
 * channel's write-through array.
 *
 * Threads: the ping thread; the send thread, which waits on the hub's
 * epoll for write-through sockets that have room again or whose client
 * hung up; and writers - 1 writer threads, which take batches of a
 * channel's write-through array alongside the publishing thread (which
 * holds the hub lock, and waits for them once no batch is left).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/sse.h"

#include "sse_hub.h"

/* Buckets of the channel table; channels per bucket stay few even with
 * 10,000 open casts. */
#define HUB_BUCKETS 4096
/* Bytes of an event type. */
#define TYPE_MAX 64
/* Bytes of one formatted event: the data plus its field names, the id and
 * the type, with room for data split over many lines. */
#define EVENT_MAX (SSE_HUB_DATA_MAX * 2 + 256)
/* The chunk framing around one event: hex length, CRLF, ..., CRLF. */
#define FRAME_MAX (EVENT_MAX + 32)
/* Below this many write-through streams per thread a fan-out stays on the
 * publishing thread: waking a writer costs more than it saves. */
#define FANOUT_MIN_SHARE 128
/* Streams a thread takes from a fan-out at a time. */
#define FANOUT_BATCH 64
/* Events the send thread takes from its epoll at a time. */
#define SEND_EVENTS 256

/* A live event that arrived while the backlog was being read. */
struct held {
    struct held *next;
    uint64_t seq;
    int terminal;
    size_t len;
    char text[];
};

struct channel {
    struct channel *next;           /* in its bucket */
    struct sse_sub *subs;           /* doubly linked through sub->prev/next */
    /* The write-through subscriptions (also in subs), in no order. */
    struct sse_sub **direct;
    size_t ndirect, direct_cap;
    char name[SSE_HUB_CHANNEL_MAX + 1];
};

struct sse_sub {
    struct sse_hub *hub;
    struct channel *chan;
    struct sse_sub *prev, *next;    /* in chan->subs; guarded by the hub lock */
    /* Guards everything below up to fd; on the write-through path the hub
     * lock guards out, last_seq, ending and failed instead (the reader is
     * suspended then and reads nothing). */
    pthread_mutex_t lock;
    /* Bytes ready for the reader; freed whenever it drains, so an idle
     * stream holds no buffer. */
    struct spell_buf out;
    /* Live events queued before sse_sub_start(), oldest first. */
    struct held *held_head, *held_tail;
    size_t held_bytes;
    /* The highest seq accepted into out (after_seq at first). */
    uint64_t last_seq;
    /* Set by sse_sub_start(). */
    int started;
    /* No more events are accepted; the stream ends once out drains. */
    int ending;
    /* The queue overflowed before start: end right after the backlog. */
    int overflow;
    /* The reader found nothing and is waiting for the waker. */
    int idle;
    void (*wake)(void *ud);
    void *wake_ud;
    /* The stream failed: the reader reports SSE_READ_ERROR. */
    int failed;
    /* The socket for write-through, or -1; set before the first read. */
    int fd;
    /* The fields below are guarded by the hub lock. */
    /* On the write-through path, at chan->direct[slot]; out then holds raw
     * chunk bytes not yet sent. */
    int direct;
    size_t slot;
    /* fd is in the hub's epoll; with EPOLLOUT once a send came up short. */
    int watched;
    int want_out;
    /* When out last made progress (monotonic ms), while it is not empty. */
    int64_t stall_since;
    /* SSE bytes taken on the write-through path (chunk framing left out). */
    uint64_t direct_bytes;
};

/* One fan-out: a chunk for a share of a channel's write-through array. */
enum fanout_kind {
    FAN_EVENT,      /* an event: skipped at or below a stream's last seq */
    FAN_PING,       /* a ping: skipped for streams with bytes queued */
    FAN_RAW,        /* raw SSE text for one stream */
};

struct fanout {
    enum fanout_kind kind;
    struct sse_sub **subs;
    size_t nsubs;
    const char *frame;
    size_t len;
    size_t text_len;                /* len without the chunk framing */
    uint64_t seq;
    int terminal;
    int64_t now_ms;
    /* The first stream no thread has taken yet. */
    atomic_size_t next;
    /* Streams left failed or ended by this fan-out. */
    atomic_size_t finished;
};

struct writer {
    struct sse_hub *hub;
    pthread_t thread;
};

struct sse_hub {
    pthread_mutex_t lock;
    pthread_cond_t cond;            /* wakes the ping thread to stop */
    pthread_t ping_thread;
    int64_t ping_ms;
    size_t max_queue;
    size_t max_subs;
    size_t count;                   /* subscriptions not yet released */
    int closing;                    /* sse_hub_shutdown() was called */
    int stop;                       /* the ping thread must exit */
    struct channel *buckets[HUB_BUCKETS];
    size_t ndirect;                 /* write-through subscriptions */
    /* Write-through subscriptions by socket, for the send thread. */
    struct sse_sub **by_fd;
    size_t by_fd_cap;
    /* The send thread's epoll and the eventfd that stops it. */
    int ep;
    int stop_fd;
    pthread_t send_thread;
    /* Writer threads: job is the fan-out on offer (set and cleared under
     * wlock), job_gen counts them, and job_busy the writers working on
     * the current one. */
    unsigned writers;               /* threads per fan-out, the caller included */
    struct writer writer[SSE_HUB_WRITERS_MAX];
    unsigned nwriter_threads;       /* started: writers - 1 when all went well */
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    pthread_cond_t wdone;
    struct fanout *job;
    uint64_t job_gen;
    unsigned job_busy;
    int wstop;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static struct channel **find_channel(struct sse_hub *hub, const char *name)
{
    struct channel **pp = &hub->buckets[name_hash(name) % HUB_BUCKETS];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Runs with sub->lock held. */
static void wake_locked(struct sse_sub *sub)
{
    if (sub->idle && sub->wake) {
        sub->idle = 0;
        sub->wake(sub->wake_ud);
    }
}

/* Appends one formatted event to out; called with sub->lock held.
 * Returns nonzero when the reader has something new to act on. */
static int accept_locked(struct sse_sub *sub, uint64_t seq, const char *text, size_t len,
                         int terminal)
{
    if (sub->ending || seq <= sub->last_seq)
        return 0;
    if (spell_buf_add(&sub->out, text, len) != SPELL_OK) {
        /* The client reads too slowly (or memory is short): end after
         * what is queued; it resumes from its last id. */
        sub->ending = 1;
        return 1;
    }
    sub->last_seq = seq;
    if (terminal)
        sub->ending = 1;
    return 1;
}

static void deliver_locked(struct sse_sub *sub, uint64_t seq, const char *text, size_t len,
                           int terminal)
{
    struct held *h;

    if (sub->started) {
        if (accept_locked(sub, seq, text, len, terminal))
            wake_locked(sub);
        return;
    }
    if (sub->ending || sub->overflow || seq <= sub->last_seq)
        return;
    if (sub->held_bytes + len > sub->out.cap || !(h = malloc(sizeof *h + len))) {
        sub->overflow = 1;
        return;
    }
    h->next = NULL;
    h->seq = seq;
    h->terminal = terminal;
    h->len = len;
    memcpy(h->text, text, len);
    if (sub->held_tail)
        sub->held_tail->next = h;
    else
        sub->held_head = h;
    sub->held_tail = h;
    sub->held_bytes += len;
}

/* ---- write-through ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends text as one HTTP/1.1 chunk: hex length, CRLF, text, CRLF. */
static int frame_chunk(struct spell_buf *fr, const char *text, size_t len)
{
    int rc = spell_buf_addf(fr, "%zx\r\n", len);

    if (rc == SPELL_OK)
        rc = spell_buf_add(fr, text, len);
    if (rc == SPELL_OK)
        rc = spell_buf_add(fr, "\r\n", 2);
    return rc;
}

/* Sends what the socket takes of p without blocking: the bytes sent, or -1
 * when the connection is gone (EPIPE, ECONNRESET, ...). */
static ssize_t send_some(int fd, const char *p, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)off;
}

/* The client hung up: a read would see the end or an error.  Bytes the
 * client sent are left for the HTTP layer. */
static int peer_gone(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* A write-through stream fails: what is queued is dropped (it may end in
 * the middle of a chunk), and the reader will report SSE_READ_ERROR. */
static void direct_fail(struct sse_sub *s)
{
    s->failed = 1;
    s->ending = 1;
    spell_buf_free(&s->out);
}

/* Asks the send thread to flush s once its socket has room. */
static int direct_want_out(struct sse_hub *hub, struct sse_sub *s)
{
    struct epoll_event ev;

    if (s->want_out)
        return 0;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = s->fd;
    if (epoll_ctl(hub->ep, EPOLL_CTL_MOD, s->fd, &ev) != 0)
        return -1;
    s->want_out = 1;
    return 0;
}

/*
 * Moves s to its channel's write-through array; the hub lock and s->lock
 * are held, s is started, not ending, with nothing queued.  On failure s
 * stays on the queue path.
 */
static int direct_join(struct sse_hub *hub, struct sse_sub *s)
{
    struct channel *c = s->chan;
    struct epoll_event ev;
    int one = 1;

    if ((size_t)s->fd >= hub->by_fd_cap) {
        size_t cap = hub->by_fd_cap ? hub->by_fd_cap : 1024;
        struct sse_sub **p;
        while (cap <= (size_t)s->fd)
            cap *= 2;
        if (!(p = realloc(hub->by_fd, cap * sizeof *p)))
            return SPELL_ENOMEM;
        memset(p + hub->by_fd_cap, 0, (cap - hub->by_fd_cap) * sizeof *p);
        hub->by_fd = p;
        hub->by_fd_cap = cap;
    }
    if (c->ndirect == c->direct_cap) {
        size_t cap = c->direct_cap ? c->direct_cap * 2 : 16;
        struct sse_sub **p = realloc(c->direct, cap * sizeof *p);
        if (!p)
            return SPELL_ENOMEM;
        c->direct = p;
        c->direct_cap = cap;
    }
    if (!s->watched) {
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLRDHUP | EPOLLET;
        ev.data.fd = s->fd;
        if (epoll_ctl(hub->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
            return SPELL_EIO;
        s->watched = 1;
    }
    /* Each chunk goes out as soon as it is written. */
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    spell_buf_free(&s->out);
    s->slot = c->ndirect;
    c->direct[c->ndirect++] = s;
    hub->by_fd[s->fd] = s;
    hub->ndirect++;
    s->direct = 1;
    return SPELL_OK;
}

/* Takes s off the write-through path; with wake, hands the stream back to
 * its reader (which finds it ended or failed).  The hub lock is held. */
static void direct_leave(struct sse_hub *hub, struct sse_sub *s, int wake)
{
    struct channel *c = s->chan;
    struct sse_sub *last = c->direct[--c->ndirect];

    c->direct[s->slot] = last;
    last->slot = s->slot;
    s->direct = 0;
    hub->ndirect--;
    if ((size_t)s->fd < hub->by_fd_cap && hub->by_fd[s->fd] == s)
        hub->by_fd[s->fd] = NULL;
    if (s->watched) {
        epoll_ctl(hub->ep, EPOLL_CTL_DEL, s->fd, NULL);
        s->watched = 0;
        s->want_out = 0;
    }
    if (wake) {
        pthread_mutex_lock(&s->lock);
        wake_locked(s);
        pthread_mutex_unlock(&s->lock);
    }
}

/* Hands back every stream of c that failed or ended with nothing queued. */
static void direct_sweep(struct sse_hub *hub, struct channel *c)
{
    for (size_t i = 0; i < c->ndirect;) {
        struct sse_sub *s = c->direct[i];
        if (s->failed || (s->ending && s->out.len == 0))
            direct_leave(hub, s, 1);    /* the last one moves to i */
        else
            i++;
    }
}

/* Sends one fan-out's chunk to one stream (or queues it behind what is
 * already queued).  Returns 1 when the stream failed or ended. */
static int direct_put(struct sse_hub *hub, struct sse_sub *s, const struct fanout *f)
{
    if (f->kind == FAN_PING && s->out.len > 0) {
        if (f->now_ms - s->stall_since < SSE_HUB_STALL_MS)
            return 0;
        direct_fail(s);
        return 1;
    }
    if (s->ending || (f->kind == FAN_EVENT && f->seq <= s->last_seq))
        return 0;
    if (s->out.len == 0) {
        ssize_t n = send_some(s->fd, f->frame, f->len);
        if (n < 0) {
            direct_fail(s);
            return 1;
        }
        if ((size_t)n < f->len) {
            if (spell_buf_add(&s->out, f->frame + n, f->len - (size_t)n) != SPELL_OK ||
                direct_want_out(hub, s) != 0) {
                direct_fail(s);
                return 1;
            }
            s->stall_since = f->now_ms;
        }
    } else if (spell_buf_add(&s->out, f->frame, f->len) != SPELL_OK) {
        /* The client reads too slowly: cut it; it resumes from its last
         * id. */
        direct_fail(s);
        return 1;
    }
    s->direct_bytes += f->text_len;
    if (f->kind == FAN_EVENT) {
        s->last_seq = f->seq;
        if (f->terminal) {
            s->ending = 1;
            return s->out.len == 0;
        }
    }
    return 0;
}

/* Takes batches of f's streams until none is left.  Threads share the
 * work this way rather than in fixed parts, so a writer the scheduler
 * runs late leaves its part to the others instead of holding them up. */
static void fanout_take(struct sse_hub *hub, struct fanout *f)
{
    size_t lo, done = 0;

    while ((lo = atomic_fetch_add(&f->next, FANOUT_BATCH)) < f->nsubs) {
        size_t hi = lo + FANOUT_BATCH < f->nsubs ? lo + FANOUT_BATCH : f->nsubs;
        for (size_t i = lo; i < hi; i++)
            done += (size_t)direct_put(hub, f->subs[i], f);
    }
    if (done)
        atomic_fetch_add(&f->finished, done);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct sse_hub *hub = w->hub;
    uint64_t seen = 0;

    pthread_mutex_lock(&hub->wlock);
    for (;;) {
        struct fanout *f;
        while (!hub->wstop && (!hub->job || hub->job_gen == seen))
            pthread_cond_wait(&hub->wcond, &hub->wlock);
        if (hub->wstop)
            break;
        seen = hub->job_gen;
        f = hub->job;
        hub->job_busy++;
        pthread_mutex_unlock(&hub->wlock);
        fanout_take(hub, f);
        pthread_mutex_lock(&hub->wlock);
        if (--hub->job_busy == 0)
            pthread_cond_signal(&hub->wdone);
    }
    pthread_mutex_unlock(&hub->wlock);
    return NULL;
}

/* Sends f's chunk to every write-through stream of c, with the writer
 * threads when there are enough streams; then hands back the streams that
 * failed or ended.  The hub lock is held. */
static void fanout_run(struct sse_hub *hub, struct channel *c, struct fanout *f)
{
    f->subs = c->direct;
    f->nsubs = c->ndirect;
    atomic_init(&f->next, 0);
    atomic_init(&f->finished, 0);
    if (hub->nwriter_threads == 0 || c->ndirect < (size_t)FANOUT_MIN_SHARE * hub->writers) {
        fanout_take(hub, f);
    } else {
        pthread_mutex_lock(&hub->wlock);
        hub->job = f;
        hub->job_gen++;
        pthread_cond_broadcast(&hub->wcond);
        pthread_mutex_unlock(&hub->wlock);
        fanout_take(hub, f);
        /* Withdraw the offer, then wait for the writers that took it. */
        pthread_mutex_lock(&hub->wlock);
        hub->job = NULL;
        while (hub->job_busy > 0)
            pthread_cond_wait(&hub->wdone, &hub->wlock);
        pthread_mutex_unlock(&hub->wlock);
    }
    if (atomic_load(&f->finished) > 0)
        direct_sweep(hub, c);
}

/* Flushes what s has queued as far as its socket takes it. */
static void direct_flush(struct sse_sub *s, int64_t now)
{
    ssize_t n = send_some(s->fd, s->out.ptr, s->out.len);

    if (n < 0) {
        direct_fail(s);
        return;
    }
    if (n == 0)
        return;
    if ((size_t)n == s->out.len)
        spell_buf_free(&s->out);
    else
        spell_buf_consume(&s->out, (size_t)n);
    s->stall_since = now;
}

/* The send thread: write-through sockets with room again, or whose client
 * hung up. */
static void *send_main(void *arg)
{
    struct sse_hub *hub = arg;
    struct epoll_event evs[SEND_EVENTS];
    int stop = 0;

    while (!stop) {
        int n = epoll_wait(hub->ep, evs, SEND_EVENTS, -1);
        int64_t now;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        pthread_mutex_lock(&hub->lock);
        now = mono_ms();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            struct sse_sub *s;

            if (fd == hub->stop_fd) {
                stop = 1;
                continue;
            }
            if (fd < 0 || (size_t)fd >= hub->by_fd_cap || !(s = hub->by_fd[fd]))
                continue;
            if (s->out.len > 0)
                direct_flush(s, now);
            if (!s->failed && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
                peer_gone(fd))
                direct_fail(s);
            if (s->failed || (s->ending && s->out.len == 0))
                direct_leave(hub, s, 1);
        }
        pthread_mutex_unlock(&hub->lock);
    }
    return NULL;
}

static void *ping_main(void *arg)
{
    struct sse_hub *hub = arg;
    struct timespec deadline;

    struct spell_buf text, frame;

    /* The ping as SSE text and as one chunk for write-through streams. */
    spell_buf_init(&text, 64);
    spell_buf_init(&frame, 64);
    if (spell_sse_write_comment(&text, "ping") != SPELL_OK ||
        frame_chunk(&frame, text.ptr, text.len) != SPELL_OK)
        spell_buf_free(&frame);
    pthread_mutex_lock(&hub->lock);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    while (!hub->stop) {
        deadline.tv_sec += hub->ping_ms / 1000;
        deadline.tv_nsec += (long)(hub->ping_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!hub->stop) {
            int err = pthread_cond_timedwait(&hub->cond, &hub->lock, &deadline);
            if (err == ETIMEDOUT)
                break;
        }
        if (hub->stop)
            break;
        for (size_t b = 0; b < HUB_BUCKETS; b++) {
            for (struct channel *c = hub->buckets[b]; c; c = c->next) {
                for (struct sse_sub *s = c->subs; s; s = s->next) {
                    if (s->direct)
                        continue;
                    pthread_mutex_lock(&s->lock);
                    /* A stream with bytes still queued is not idle and
                     * needs no keep-alive. */
                    if (s->started && !s->ending && s->out.len == 0 &&
                        spell_sse_write_comment(&s->out, "ping") == SPELL_OK)
                        wake_locked(s);
                    pthread_mutex_unlock(&s->lock);
                }
                if (c->ndirect > 0 && frame.len > 0) {
                    struct fanout f;
                    memset(&f, 0, sizeof f);
                    f.kind = FAN_PING;
                    f.frame = frame.ptr;
                    f.len = frame.len;
                    f.text_len = text.len;
                    f.now_ms = mono_ms();
                    fanout_run(hub, c, &f);
                }
            }
        }
    }
    pthread_mutex_unlock(&hub->lock);
    spell_buf_free(&text);
    spell_buf_free(&frame);
    return NULL;
}

/* Stops and joins the send thread and the writer threads that run. */
static void stop_workers(struct sse_hub *hub, int send_running)
{
    if (send_running) {
        uint64_t one = 1;
        while (write(hub->stop_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_join(hub->send_thread, NULL);
    }
    pthread_mutex_lock(&hub->wlock);
    hub->wstop = 1;
    pthread_cond_broadcast(&hub->wcond);
    pthread_mutex_unlock(&hub->wlock);
    for (unsigned i = 0; i < hub->nwriter_threads; i++)
        pthread_join(hub->writer[i].thread, NULL);
    hub->nwriter_threads = 0;
}

static unsigned default_writers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1)
        return 1;
    return n > 4 ? 4 : (unsigned)n;
}

int sse_hub_new(const struct sse_hub_config *cfg, struct sse_hub **out)
{
    int rc = SPELL_ENOMEM;
    struct sse_hub *hub = NULL;
    pthread_condattr_t attr;
    struct epoll_event ev;
    int have_lock = 0, have_cond = 0, have_wsync = 0, send_running = 0;

    *out = NULL;
    if (cfg && cfg->writers > SSE_HUB_WRITERS_MAX)
        return SPELL_EINVAL;
    if (!(hub = calloc(1, sizeof *hub)))
        goto out;
    hub->ep = hub->stop_fd = -1;
    hub->ping_ms = cfg && cfg->ping_ms > 0 ? cfg->ping_ms : SSE_HUB_DEFAULT_PING_MS;
    hub->max_queue = cfg && cfg->max_queue ? cfg->max_queue : SSE_HUB_DEFAULT_QUEUE;
    hub->max_subs = cfg ? cfg->max_subs : 0;
    hub->writers = cfg && cfg->writers ? cfg->writers : default_writers();
    if (pthread_mutex_init(&hub->lock, NULL) != 0)
        goto out;
    have_lock = 1;
    if (pthread_condattr_init(&attr) != 0)
        goto out;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    have_cond = pthread_cond_init(&hub->cond, &attr) == 0;
    pthread_condattr_destroy(&attr);
    if (!have_cond)
        goto out;
    if (pthread_mutex_init(&hub->wlock, NULL) != 0)
        goto out;
    if (pthread_cond_init(&hub->wcond, NULL) != 0) {
        pthread_mutex_destroy(&hub->wlock);
        goto out;
    }
    if (pthread_cond_init(&hub->wdone, NULL) != 0) {
        pthread_cond_destroy(&hub->wcond);
        pthread_mutex_destroy(&hub->wlock);
        goto out;
    }
    have_wsync = 1;
    rc = SPELL_EIO;
    hub->ep = epoll_create1(EPOLL_CLOEXEC);
    hub->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (hub->ep < 0 || hub->stop_fd < 0)
        goto out;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = hub->stop_fd;
    if (epoll_ctl(hub->ep, EPOLL_CTL_ADD, hub->stop_fd, &ev) != 0)
        goto out;
    rc = SPELL_ENOMEM;
    if (pthread_create(&hub->send_thread, NULL, send_main, hub) != 0)
        goto out;
    send_running = 1;
    /* Fewer writers than asked for (or none) only means fewer threads
     * share each fan-out. */
    for (unsigned i = 1; i < hub->writers; i++) {
        struct writer *w = &hub->writer[hub->nwriter_threads];
        w->hub = hub;
        if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
            break;
        hub->nwriter_threads++;
    }
    if (pthread_create(&hub->ping_thread, NULL, ping_main, hub) != 0)
        goto out;
    *out = hub;
    hub = NULL;
    rc = SPELL_OK;
out:
    if (hub) {
        if (have_wsync) {
            stop_workers(hub, send_running);
            pthread_cond_destroy(&hub->wdone);
            pthread_cond_destroy(&hub->wcond);
            pthread_mutex_destroy(&hub->wlock);
        }
        if (hub->ep >= 0)
            close(hub->ep);
        if (hub->stop_fd >= 0)
            close(hub->stop_fd);
        if (have_cond)
            pthread_cond_destroy(&hub->cond);
        if (have_lock)
            pthread_mutex_destroy(&hub->lock);
        free(hub);
    }
    return rc;
}

void sse_hub_free(struct sse_hub *hub)
{
    if (!hub)
        return;
    pthread_mutex_lock(&hub->lock);
    hub->stop = 1;
    pthread_cond_broadcast(&hub->cond);
    pthread_mutex_unlock(&hub->lock);
    pthread_join(hub->ping_thread, NULL);
    stop_workers(hub, 1);
    pthread_cond_destroy(&hub->wdone);
    pthread_cond_destroy(&hub->wcond);
    pthread_mutex_destroy(&hub->wlock);
    close(hub->ep);
    close(hub->stop_fd);
    free(hub->by_fd);
    pthread_cond_destroy(&hub->cond);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}

static int check_event(const char *type, const char *json_data, uint64_t seq)
{
    if (seq == 0 || !type || !json_data || strlen(type) > TYPE_MAX ||
        strlen(json_data) > SSE_HUB_DATA_MAX)
        return SPELL_EINVAL;
    return SPELL_OK;
}

static int format_event(struct spell_buf *ev, uint64_t seq, const char *type,
                        const char *json_data)
{
    char id[24];

    snprintf(id, sizeof id, "%" PRIu64, seq);
    return spell_sse_write_event(ev, id, type, json_data, strlen(json_data));
}

int sse_hub_publish(struct sse_hub *hub, const char *channel, uint64_t seq, const char *type,
                    const char *json_data, int terminal)
{
    int rc;
    struct spell_buf ev, frame;
    struct channel *c;

    spell_buf_init(&ev, EVENT_MAX);
    if (!hub || !channel || strlen(channel) > SSE_HUB_CHANNEL_MAX) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if ((rc = check_event(type, json_data, seq)) != SPELL_OK)
        goto out;
    if ((rc = format_event(&ev, seq, type, json_data)) != SPELL_OK)
        goto out;
    spell_buf_init(&frame, FRAME_MAX);
    pthread_mutex_lock(&hub->lock);
    if ((c = *find_channel(hub, channel)) != NULL) {
        for (struct sse_sub *s = c->subs; s; s = s->next) {
            if (s->direct)
                continue;
            pthread_mutex_lock(&s->lock);
            deliver_locked(s, seq, ev.ptr, ev.len, terminal);
            pthread_mutex_unlock(&s->lock);
        }
        if (c->ndirect > 0) {
            struct fanout f;
            memset(&f, 0, sizeof f);
            f.kind = FAN_EVENT;
            f.seq = seq;
            f.terminal = terminal;
            f.now_ms = mono_ms();
            if (frame_chunk(&frame, ev.ptr, ev.len) == SPELL_OK) {
                f.frame = frame.ptr;
                f.len = frame.len;
                f.text_len = ev.len;
                fanout_run(hub, c, &f);
            } else {
                /* Out of memory: the streams would miss the event; cut
                 * them instead (their clients resume). */
                for (size_t i = 0; i < c->ndirect; i++)
                    direct_fail(c->direct[i]);
                direct_sweep(hub, c);
            }
        }
    }
    pthread_mutex_unlock(&hub->lock);
    spell_buf_free(&frame);
out:
    spell_buf_free(&ev);
    return rc;
}

void sse_hub_shutdown(struct sse_hub *hub)
{
    pthread_mutex_lock(&hub->lock);
    hub->closing = 1;
    for (size_t b = 0; b < HUB_BUCKETS; b++) {
        for (struct channel *c = hub->buckets[b]; c; c = c->next) {
            for (struct sse_sub *s = c->subs; s; s = s->next) {
                if (s->direct) {
                    s->ending = 1;
                    continue;
                }
                pthread_mutex_lock(&s->lock);
                s->ending = 1;
                wake_locked(s);
                pthread_mutex_unlock(&s->lock);
            }
            /* Write-through streams with bytes queued end once the send
             * thread has flushed them. */
            direct_sweep(hub, c);
        }
    }
    pthread_mutex_unlock(&hub->lock);
}

size_t sse_hub_direct_count(struct sse_hub *hub)
{
    size_t n;

    pthread_mutex_lock(&hub->lock);
    n = hub->ndirect;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

size_t sse_hub_count(struct sse_hub *hub)
{
    size_t n;

    pthread_mutex_lock(&hub->lock);
    n = hub->count;
    pthread_mutex_unlock(&hub->lock);
    return n;
}

int sse_hub_subscribe(struct sse_hub *hub, const char *channel, uint64_t after_seq,
                      struct sse_sub **out)
{
    int rc = SPELL_EINVAL;
    struct sse_sub *sub = NULL;
    struct channel *c = NULL, **pp;
    int locked = 0;

    *out = NULL;
    if (!hub || !channel || !*channel || strlen(channel) > SSE_HUB_CHANNEL_MAX)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(sub = calloc(1, sizeof *sub)))
        goto out;
    if (pthread_mutex_init(&sub->lock, NULL) != 0) {
        free(sub);
        sub = NULL;
        goto out;
    }
    sub->hub = hub;
    sub->fd = -1;
    sub->last_seq = after_seq;
    spell_buf_init(&sub->out, hub->max_queue);

    pthread_mutex_lock(&hub->lock);
    locked = 1;
    rc = SPELL_EABORT;
    if (hub->closing)
        goto out;
    rc = SPELL_ETOOBIG;
    if (hub->max_subs && hub->count >= hub->max_subs)
        goto out;
    pp = find_channel(hub, channel);
    if (!(c = *pp)) {
        rc = SPELL_ENOMEM;
        if (!(c = calloc(1, sizeof *c)))
            goto out;
        strcpy(c->name, channel);
        *pp = c;
    }
    sub->chan = c;
    sub->next = c->subs;
    if (c->subs)
        c->subs->prev = sub;
    c->subs = sub;
    hub->count++;
    *out = sub;
    sub = NULL;
    rc = SPELL_OK;
out:
    if (locked)
        pthread_mutex_unlock(&hub->lock);
    if (sub) {
        pthread_mutex_destroy(&sub->lock);
        free(sub);
    }
    return rc;
}

int sse_sub_backlog(struct sse_sub *sub, uint64_t seq, const char *type, const char *json_data,
                    int terminal)
{
    int rc;
    struct spell_buf ev;

    spell_buf_init(&ev, EVENT_MAX);
    if (!sub) {
        rc = SPELL_EINVAL;
        goto out;
    }
    if ((rc = check_event(type, json_data, seq)) != SPELL_OK)
        goto out;
    if ((rc = format_event(&ev, seq, type, json_data)) != SPELL_OK)
        goto out;
    pthread_mutex_lock(&sub->lock);
    if (!sub->ending && seq > sub->last_seq) {
        rc = spell_buf_add(&sub->out, ev.ptr, ev.len);
        if (rc == SPELL_OK) {
            sub->last_seq = seq;
            if (terminal)
                sub->ending = 1;
        }
    }
    pthread_mutex_unlock(&sub->lock);
out:
    spell_buf_free(&ev);
    return rc;
}

int sse_sub_raw(struct sse_sub *sub, const char *text, size_t len)
{
    int rc;
    struct sse_hub *hub;

    if (!sub || (!text && len))
        return SPELL_EINVAL;
    hub = sub->hub;
    pthread_mutex_lock(&hub->lock);
    if (sub->direct) {
        struct spell_buf frame;
        struct fanout f;
        spell_buf_init(&frame, sub->out.cap + 32);
        memset(&f, 0, sizeof f);
        f.kind = FAN_RAW;
        f.now_ms = mono_ms();
        if ((rc = frame_chunk(&frame, text ? text : "", len)) == SPELL_OK && len > 0) {
            f.frame = frame.ptr;
            f.len = frame.len;
            f.text_len = len;
            if (direct_put(hub, sub, &f))
                direct_leave(hub, sub, 1);
        }
        spell_buf_free(&frame);
    } else {
        pthread_mutex_lock(&sub->lock);
        rc = spell_buf_add(&sub->out, text, len);
        if (rc == SPELL_OK)
            wake_locked(sub);
        pthread_mutex_unlock(&sub->lock);
    }
    pthread_mutex_unlock(&hub->lock);
    return rc;
}

void sse_sub_start(struct sse_sub *sub)
{
    struct held *h, *next;

    pthread_mutex_lock(&sub->lock);
    sub->started = 1;
    for (h = sub->held_head; h; h = next) {
        next = h->next;
        accept_locked(sub, h->seq, h->text, h->len, h->terminal);
        free(h);
    }
    sub->held_head = sub->held_tail = NULL;
    sub->held_bytes = 0;
    if (sub->overflow)
        sub->ending = 1;
    wake_locked(sub);
    pthread_mutex_unlock(&sub->lock);
}

void sse_sub_set_waker(struct sse_sub *sub, void (*wake)(void *ud), void *ud)
{
    pthread_mutex_lock(&sub->lock);
    sub->wake = wake;
    sub->wake_ud = ud;
    pthread_mutex_unlock(&sub->lock);
}

int sse_sub_set_socket(struct sse_sub *sub, int fd)
{
    if (!sub || fd < 0)
        return SPELL_EINVAL;
    pthread_mutex_lock(&sub->lock);
    sub->fd = fd;
    pthread_mutex_unlock(&sub->lock);
    return SPELL_OK;
}

enum sse_read_result sse_sub_read(struct sse_sub *sub, char *buf, size_t max, size_t *n,
                                  void (*on_idle)(void *ud), void *ud)
{
    enum sse_read_result res;
    struct sse_hub *hub = sub->hub;
    int hub_locked = 0;

    *n = 0;
    pthread_mutex_lock(&sub->lock);
    for (;;) {
        if (sub->out.len > 0) {
            size_t take = sub->out.len < max ? sub->out.len : max;
            memcpy(buf, sub->out.ptr, take);
            if (take == sub->out.len)
                spell_buf_free(&sub->out);
            else
                spell_buf_consume(&sub->out, take);
            *n = take;
            res = SSE_READ_DATA;
        } else if (sub->started && sub->ending) {
            res = sub->failed ? SSE_READ_ERROR : SSE_READ_END;
        } else if (sub->fd >= 0 && sub->started && !hub_locked) {
            /* Going idle onto the write-through path takes the hub lock,
             * which comes first: look again with both held. */
            pthread_mutex_unlock(&sub->lock);
            pthread_mutex_lock(&hub->lock);
            pthread_mutex_lock(&sub->lock);
            hub_locked = 1;
            continue;
        } else {
            sub->idle = 1;
            if (on_idle)
                on_idle(ud);
            /* From here on the hub writes to the socket (the reader is
             * suspended until the waker runs); if it cannot, the stream
             * stays on the queue path. */
            if (hub_locked)
                direct_join(hub, sub);
            res = SSE_READ_IDLE;
        }
        break;
    }
    pthread_mutex_unlock(&sub->lock);
    if (hub_locked)
        pthread_mutex_unlock(&hub->lock);
    return res;
}

uint64_t sse_sub_direct_bytes(struct sse_sub *sub)
{
    uint64_t n;

    pthread_mutex_lock(&sub->hub->lock);
    n = sub->direct_bytes;
    pthread_mutex_unlock(&sub->hub->lock);
    return n;
}

uint64_t sse_sub_last_seq(struct sse_sub *sub)
{
    uint64_t seq;

    pthread_mutex_lock(&sub->hub->lock);
    pthread_mutex_lock(&sub->lock);
    seq = sub->last_seq;
    pthread_mutex_unlock(&sub->lock);
    pthread_mutex_unlock(&sub->hub->lock);
    return seq;
}

void sse_sub_end(struct sse_sub *sub)
{
    struct sse_hub *hub = sub->hub;

    pthread_mutex_lock(&hub->lock);
    if (sub->direct) {
        sub->ending = 1;
        if (sub->out.len == 0)
            direct_leave(hub, sub, 1);
    } else {
        pthread_mutex_lock(&sub->lock);
        sub->ending = 1;
        wake_locked(sub);
        pthread_mutex_unlock(&sub->lock);
    }
    pthread_mutex_unlock(&hub->lock);
}

void sse_sub_cut(struct sse_sub *sub)
{
    struct sse_hub *hub = sub->hub;

    pthread_mutex_lock(&hub->lock);
    if (sub->direct) {
        direct_fail(sub);
        direct_leave(hub, sub, 1);
    } else {
        pthread_mutex_lock(&sub->lock);
        sub->failed = 1;
        sub->ending = 1;
        sub->started = 1;
        spell_buf_free(&sub->out);
        wake_locked(sub);
        pthread_mutex_unlock(&sub->lock);
    }
    pthread_mutex_unlock(&hub->lock);
}

void sse_sub_release(struct sse_sub *sub)
{
    struct sse_hub *hub;
    struct channel *c;
    struct held *h, *next;

    if (!sub)
        return;
    hub = sub->hub;
    pthread_mutex_lock(&hub->lock);
    c = sub->chan;
    if (sub->direct)
        direct_leave(hub, sub, 0);
    if (sub->prev)
        sub->prev->next = sub->next;
    else
        c->subs = sub->next;
    if (sub->next)
        sub->next->prev = sub->prev;
    if (!c->subs) {
        struct channel **pp = find_channel(hub, c->name);
        *pp = c->next;
        free(c->direct);
        free(c);
    }
    hub->count--;
    pthread_mutex_unlock(&hub->lock);

    for (h = sub->held_head; h; h = next) {
        next = h->next;
        free(h);
    }
    spell_buf_free(&sub->out);
    pthread_mutex_destroy(&sub->lock);
    free(sub);
}
