/*
 * cast-load: authenticated casts from many concurrent clients against a
 * running spell-server, for throughput and the latency of the 202 answers.
 *
 * Usage (bench/cast-load.sh starts a fresh server and runs this):
 *
 *   cast-load --url http://127.0.0.1:PORT --key API_KEY [--spell KEY]
 *             [--body JSON] [--clients C] [--count N] [--duration-s S]
 *
 * Data flow.  C threads each hold one libcurl easy handle, so each keeps
 * one keep-alive connection to the server.  They take request numbers from
 * a shared counter until N are taken or S seconds have passed, and send
 *
 *   POST /v1/spells/KEY:cast
 *   Authorization: Bearer API_KEY
 *   Idempotency-Key: cast-load-<pid>-<n>     (fresh for every request)
 *   {"inputs": ...}                          (--body, the whole JSON body)
 *
 * The time of curl_easy_perform() is one sample when the answer is 202;
 * any other status is counted by status, and the first such body is
 * printed.  The program prints throughput (202 answers per second of the
 * whole run), p50/p90/p99/max and one RESULT line.  Only the URL given is
 * contacted; bench/cast-load.sh gives a 127.0.0.1 one.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "stats.h"

#define MAX_CLIENTS 512
#define MAX_COUNT 1000000
#define ARG_MAX_LEN 4096
#define ERR_BODY_MAX 300
/* Statuses 100..599 are counted one by one. */
#define STATUS_SLOTS 600

struct shared {
    const char *url;
    const char *key;
    const char *body;
    long count;
    int64_t deadline_us;
    atomic_long next;
    atomic_long status[STATUS_SLOTS];
    atomic_long transport_errors;
    atomic_int have_err;
    char first_err[ERR_BODY_MAX + 64];
};

struct client {
    struct shared *sh;
    struct stats lat;
    /* The start of the current answer's body, kept for error reports. */
    char body[ERR_BODY_MAX + 1];
    size_t body_len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct client *cl = ud;
    size_t len = size * n;
    size_t room = ERR_BODY_MAX - cl->body_len;
    size_t take = len < room ? len : room;

    memcpy(cl->body + cl->body_len, p, take);
    cl->body_len += take;
    cl->body[cl->body_len] = '\0';
    return len;
}

static void *run_client(void *arg)
{
    struct client *cl = arg;
    struct shared *sh = cl->sh;
    struct curl_slist *base = NULL;
    char auth[ARG_MAX_LEN + 32];
    CURL *h = curl_easy_init();

    if (!h)
        return NULL;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", sh->key);
    base = curl_slist_append(base, auth);
    base = curl_slist_append(base, "Content-Type: application/json");
    base = curl_slist_append(base, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, sh->url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, sh->body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, cl);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");

    for (;;) {
        long n = atomic_fetch_add(&sh->next, 1);
        struct curl_slist *hdrs;
        char idem[96];
        long status = 0;
        int64_t t0, dt;
        CURLcode rc;

        if (n >= sh->count || stats_mono_us() >= sh->deadline_us)
            break;
        snprintf(idem, sizeof idem, "Idempotency-Key: cast-load-%ld-%ld", (long)getpid(), n);
        /* The per-request header goes in front of the shared list. */
        hdrs = curl_slist_append(NULL, idem);
        if (!hdrs)
            break;
        hdrs->next = base;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        cl->body_len = 0;
        cl->body[0] = '\0';
        t0 = stats_mono_us();
        rc = curl_easy_perform(h);
        dt = stats_mono_us() - t0;
        hdrs->next = NULL;
        curl_slist_free_all(hdrs);
        if (rc != CURLE_OK) {
            atomic_fetch_add(&sh->transport_errors, 1);
            if (!atomic_exchange(&sh->have_err, 1))
                snprintf(sh->first_err, sizeof sh->first_err, "transport: %s", curl_easy_strerror(rc));
            continue;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 100 && status < STATUS_SLOTS)
            atomic_fetch_add(&sh->status[status], 1);
        if (status == 202)
            stats_add(&cl->lat, dt);
        else if (!atomic_exchange(&sh->have_err, 1))
            snprintf(sh->first_err, sizeof sh->first_err, "%ld %s", status, cl->body);
    }
    curl_slist_free_all(base);
    curl_easy_cleanup(h);
    return NULL;
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*end || v < lo || v > hi) {
        fprintf(stderr, "cast-load: %s must be %ld..%ld\n", what, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct shared sh;
    const char *base_url = NULL, *spell = "echo";
    char url[ARG_MAX_LEN + 64];
    struct client *cl;
    pthread_t *tids;
    struct stats all;
    int clients = 64, duration_s = 20;
    int64_t t0, t1;
    long other = 0;
    double secs;

    memset(&sh, 0, sizeof sh);
    sh.count = 20000;
    sh.body = "{\"inputs\":{\"message\":\"hello\"}}";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (strlen(v) > ARG_MAX_LEN) {
            fprintf(stderr, "cast-load: argument too long\n");
            return 2;
        }
        if (strcmp(argv[i], "--url") == 0)
            base_url = v;
        else if (strcmp(argv[i], "--key") == 0)
            sh.key = v;
        else if (strcmp(argv[i], "--spell") == 0)
            spell = v;
        else if (strcmp(argv[i], "--body") == 0)
            sh.body = v;
        else if (strcmp(argv[i], "--clients") == 0)
            clients = (int)parse_long(v, 1, MAX_CLIENTS, "--clients");
        else if (strcmp(argv[i], "--count") == 0)
            sh.count = parse_long(v, 1, MAX_COUNT, "--count");
        else if (strcmp(argv[i], "--duration-s") == 0)
            duration_s = (int)parse_long(v, 1, 600, "--duration-s");
        else {
            fprintf(stderr, "cast-load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!base_url || !sh.key || argc % 2 == 0) {
        fprintf(stderr, "usage: cast-load --url URL --key API_KEY [--spell KEY] [--body JSON]\n"
                        "                 [--clients C] [--count N] [--duration-s S]\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s/v1/spells/%s:cast", base_url, spell);
    sh.url = url;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 2;
    cl = calloc((size_t)clients, sizeof *cl);
    tids = calloc((size_t)clients, sizeof *tids);
    if (!cl || !tids || stats_init(&all, (size_t)sh.count) != 0) {
        fprintf(stderr, "cast-load: out of memory\n");
        return 2;
    }
    t0 = stats_mono_us();
    sh.deadline_us = t0 + (int64_t)duration_s * 1000000;
    for (int i = 0; i < clients; i++) {
        cl[i].sh = &sh;
        if (stats_init(&cl[i].lat, (size_t)sh.count) != 0 ||
            pthread_create(&tids[i], NULL, run_client, &cl[i]) != 0) {
            fprintf(stderr, "cast-load: cannot start client %d\n", i);
            return 2;
        }
    }
    for (int i = 0; i < clients; i++) {
        pthread_join(tids[i], NULL);
        stats_merge(&all, &cl[i].lat);
        stats_free(&cl[i].lat);
    }
    t1 = stats_mono_us();
    stats_finish(&all);
    secs = (double)(t1 - t0) / 1e6;

    printf("cast-load: %zu casts accepted (202) from %d clients in %.2f s: %.0f casts/s\n", all.n,
           clients, secs, (double)all.n / secs);
    printf("cast-load: answers by status:");
    for (int s = 100; s < STATUS_SLOTS; s++) {
        long k = atomic_load(&sh.status[s]);
        if (!k)
            continue;
        printf(" %d x%ld", s, k);
        if (s != 202)
            other += k;
    }
    other += atomic_load(&sh.transport_errors);
    printf("; transport errors %ld\n", atomic_load(&sh.transport_errors));
    if (sh.have_err)
        printf("cast-load: first other answer: %s\n", sh.first_err);
    printf("cast-load: 202 latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
           (double)stats_pct(&all, 50) / 1000.0, (double)stats_pct(&all, 90) / 1000.0,
           (double)stats_pct(&all, 99) / 1000.0, (double)stats_max(&all) / 1000.0);
    printf("RESULT label=server count=%zu seconds=%.3f rate=%.1f other=%ld p50_us=%" PRId64
           " p90_us=%" PRId64 " p99_us=%" PRId64 " max_us=%" PRId64 "\n",
           all.n, secs, (double)all.n / secs, other,
           stats_pct(&all, 50), stats_pct(&all, 90), stats_pct(&all, 99), stats_max(&all));
    stats_free(&all);
    free(cl);
    free(tids);
    curl_global_cleanup();
    return 0;
}
