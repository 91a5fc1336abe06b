/*
 * Latency samples for the benchmarks: a fixed-size array of microsecond
 * values filled by one or more threads, then sorted once to read
 * percentiles.
 *
 * Data flow: stats_init() allocates room for `cap` samples (the cap is the
 * most a run can record, stated by each caller); stats_add() appends one
 * value and drops it (counting the drop) once the array is full;
 * stats_finish() sorts, after which stats_pct() reads the nearest-rank
 * percentile.  A struct stats is used by one thread at a time; benchmarks
 * with several threads keep one per thread and merge them with
 * stats_merge() before finishing.
 */
#ifndef SPELL_BENCH_STATS_H
#define SPELL_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

struct stats {
    int64_t *v;         /* samples in microseconds */
    size_t n;           /* samples recorded */
    size_t cap;         /* room in v */
    size_t dropped;     /* samples refused because v was full */
};

/* 0 on success, -1 when the allocation fails. */
int stats_init(struct stats *s, size_t cap);
void stats_free(struct stats *s);
void stats_add(struct stats *s, int64_t us);

/* Appends every sample of src to dst (as far as dst has room). */
void stats_merge(struct stats *dst, const struct stats *src);
void stats_finish(struct stats *s);

/* Nearest-rank percentile p (0 < p <= 100) in microseconds; 0 when empty.
 * Only after stats_finish(). */
int64_t stats_pct(const struct stats *s, double p);
int64_t stats_max(const struct stats *s);

/* CLOCK_REALTIME and CLOCK_MONOTONIC in microseconds. */
int64_t stats_wall_us(void);
int64_t stats_mono_us(void);

/* Resident set size of a process in KiB from /proc/PID/status (VmRSS),
 * or -1 when it cannot be read. */
long stats_rss_kib(long pid);

#endif
