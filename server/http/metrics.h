/*
 * The metrics registry behind GET /metrics (Prometheus text exposition
 * format, version 0.0.4).
 *
 * Data flow: at start each part of the server registers its metric
 * families once (metrics_counter(), metrics_gauge(), metrics_histogram())
 * and keeps the returned struct metric pointer; the registry owns the
 * families until metrics_free().  While serving, any thread updates a
 * family with the label values of one series (metrics_add(),
 * metrics_set(), metrics_observe()); the /metrics handler calls
 * metrics_render() to write every family as text.
 *
 * Cardinality is bounded: each family holds at most the max_series it was
 * registered with (METRICS_DEFAULT_SERIES when 0).  Once full, updates for
 * a new combination of label values go to one overflow series whose every
 * label value is "other", so a hostile client cannot grow memory by
 * inventing label values.  Label values longer than METRICS_VALUE_MAX bytes
 * are cut.
 *
 * Thread safety: every family has its own mutex; the registry's family
 * list is fixed after registration, which must happen before other threads
 * update or render (registration itself also takes the registry mutex).
 */
#ifndef SPELL_SERVER_METRICS_H
#define SPELL_SERVER_METRICS_H

#include <stddef.h>

#include "spell/buf.h"

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24
#define METRICS_NAME_MAX 96
#define METRICS_VALUE_MAX 96
#define METRICS_DEFAULT_SERIES 256
#define METRICS_MAX_SERIES 4096
/* The most families one registry holds. */
#define METRICS_MAX_FAMILIES 128

struct metrics;
struct metric;

int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);

/*
 * Registers a family.  name and label names must be valid Prometheus names
 * ([a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]*, at most
 * METRICS_NAME_MAX bytes, "le" not allowed as a label of a histogram),
 * help a single line; nlabels at most METRICS_MAX_LABELS.  A histogram's
 * bounds must be strictly increasing and finite (at most
 * METRICS_MAX_BUCKETS; +Inf is implied).  max_series 0 means
 * METRICS_DEFAULT_SERIES, at most METRICS_MAX_SERIES.  SPELL_EINVAL for
 * any violation or a name already registered, SPELL_ETOOBIG when the
 * registry is full, SPELL_ENOMEM.
 */
int metrics_counter(struct metrics *m, const char *name, const char *help,
                    const char *const *labels, size_t nlabels, size_t max_series,
                    struct metric **out);
int metrics_gauge(struct metrics *m, const char *name, const char *help,
                  const char *const *labels, size_t nlabels, size_t max_series,
                  struct metric **out);
int metrics_histogram(struct metrics *m, const char *name, const char *help,
                      const char *const *labels, size_t nlabels, const double *bounds,
                      size_t nbounds, size_t max_series, struct metric **out);

/* Default latency bounds in seconds, 0.5 ms .. 10 s. */
extern const double metrics_latency_bounds[];
extern const size_t metrics_latency_nbounds;

/*
 * Updates the series named by values (nlabels strings, in registration
 * order; NULL when the family has no labels).  metrics_add() adds v to a
 * counter (v must be >= 0) or a gauge; metrics_set() sets a gauge;
 * metrics_observe() records one observation in a histogram.  SPELL_EINVAL
 * for the wrong kind of family, a negative counter increment or a NaN,
 * SPELL_ENOMEM when a new series cannot be allocated.
 */
int metrics_add(struct metric *f, const char *const *values, double v);
int metrics_set(struct metric *f, const char *const *values, double v);
int metrics_observe(struct metric *f, const char *const *values, double v);

/* The current value of one series of a counter or gauge (0 when the series
 * does not exist); for tests and health checks. */
double metrics_value(struct metric *f, const char *const *values);

/* Appends the whole registry in text format to out.  SPELL_ETOOBIG when out
 * cannot hold it (out then holds a prefix), SPELL_ENOMEM. */
int metrics_render(struct metrics *m, struct spell_buf *out);

#endif
