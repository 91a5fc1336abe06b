/*
 * Latency samples and process memory for the benchmarks (stats.h).
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int stats_init(struct stats *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->v = calloc(cap ? cap : 1, sizeof *s->v);
    if (!s->v)
        return -1;
    s->cap = cap;
    return 0;
}

void stats_free(struct stats *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

void stats_add(struct stats *s, int64_t us)
{
    if (s->n >= s->cap) {
        s->dropped++;
        return;
    }
    s->v[s->n++] = us;
}

void stats_merge(struct stats *dst, const struct stats *src)
{
    for (size_t i = 0; i < src->n; i++)
        stats_add(dst, src->v[i]);
    dst->dropped += src->dropped;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void stats_finish(struct stats *s)
{
    qsort(s->v, s->n, sizeof *s->v, cmp_i64);
}

int64_t stats_pct(const struct stats *s, double p)
{
    size_t rank;

    if (s->n == 0)
        return 0;
    rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

int64_t stats_max(const struct stats *s)
{
    return s->n ? s->v[s->n - 1] : 0;
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t stats_wall_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

int64_t stats_mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

long stats_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}
