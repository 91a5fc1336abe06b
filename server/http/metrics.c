/*
 * The metrics registry: see metrics.h.  A family keeps its series in an
 * array searched by a hash of the label values; series are never removed,
 * so the array only grows, up to the family's max_series.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spell/errors.h"

#include "metrics.h"

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct series {
    char values[METRICS_MAX_LABELS][METRICS_VALUE_MAX + 1];
    uint32_t hash;
    /* Counter or gauge value; for a histogram, the sum of observations. */
    double value;
    uint64_t count;
    /* Histogram only: non-cumulative counts per bucket, the last one +Inf. */
    uint64_t *buckets;
};

struct metric {
    char name[METRICS_NAME_MAX + 1];
    char *help;
    enum kind kind;
    char labels[METRICS_MAX_LABELS][METRICS_NAME_MAX + 1];
    size_t nlabels;
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbounds;
    size_t max_series;
    pthread_mutex_t lock;
    struct series *series;
    size_t nseries;
    size_t alloc;
};

struct metrics {
    pthread_mutex_t lock;
    struct metric *families[METRICS_MAX_FAMILIES];
    size_t count;
};

const double metrics_latency_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t metrics_latency_nbounds =
    sizeof metrics_latency_bounds / sizeof metrics_latency_bounds[0];

int metrics_new(struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof *m);

    *out = NULL;
    if (!m)
        return SPELL_ENOMEM;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return SPELL_ENOMEM;
    }
    *out = m;
    return SPELL_OK;
}

static void family_free(struct metric *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        free(f->series[i].buckets);
    free(f->series);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->count; i++)
        family_free(m->families[i]);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int valid_name(const char *s, int allow_colon)
{
    size_t n = 0;

    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return n <= METRICS_NAME_MAX;
}

static int add_family(struct metrics *m, enum kind kind, const char *name, const char *help,
                      const char *const *labels, size_t nlabels, const double *bounds,
                      size_t nbounds, size_t max_series, struct metric **out)
{
    int rc = SPELL_EINVAL;
    struct metric *f = NULL;
    int locked = 0;

    *out = NULL;
    if (!m || !valid_name(name, 1) || nlabels > METRICS_MAX_LABELS ||
        (nlabels && !labels) || max_series > METRICS_MAX_SERIES ||
        (help && strpbrk(help, "\r\n")))
        goto out;
    for (size_t i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], 0) || strncmp(labels[i], "__", 2) == 0 ||
            (kind == KIND_HISTOGRAM && strcmp(labels[i], "le") == 0))
            goto out;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                goto out;
    }
    if (kind == KIND_HISTOGRAM) {
        if (!bounds || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS)
            goto out;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
                goto out;
    }
    rc = SPELL_ENOMEM;
    if (!(f = calloc(1, sizeof *f)))
        goto out;
    if (!(f->help = strdup(help ? help : "")))
        goto out;
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f->help);
        free(f);
        f = NULL;
        goto out;
    }
    strcpy(f->name, name);
    f->kind = kind;
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        strcpy(f->labels[i], labels[i]);
    f->nbounds = kind == KIND_HISTOGRAM ? nbounds : 0;
    for (size_t i = 0; i < f->nbounds; i++)
        f->bounds[i] = bounds[i];
    f->max_series = max_series ? max_series : METRICS_DEFAULT_SERIES;

    pthread_mutex_lock(&m->lock);
    locked = 1;
    rc = SPELL_EINVAL;
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->families[i]->name, name) == 0)
            goto out;
    rc = SPELL_ETOOBIG;
    if (m->count >= METRICS_MAX_FAMILIES)
        goto out;
    m->families[m->count++] = f;
    *out = f;
    f = NULL;
    rc = SPELL_OK;
out:
    if (locked)
        pthread_mutex_unlock(&m->lock);
    family_free(f);
    return rc;
}

int metrics_counter(struct metrics *m, const char *name, const char *help,
                    const char *const *labels, size_t nlabels, size_t max_series,
                    struct metric **out)
{
    return add_family(m, KIND_COUNTER, name, help, labels, nlabels, NULL, 0, max_series, out);
}

int metrics_gauge(struct metrics *m, const char *name, const char *help,
                  const char *const *labels, size_t nlabels, size_t max_series,
                  struct metric **out)
{
    return add_family(m, KIND_GAUGE, name, help, labels, nlabels, NULL, 0, max_series, out);
}

int metrics_histogram(struct metrics *m, const char *name, const char *help,
                      const char *const *labels, size_t nlabels, const double *bounds,
                      size_t nbounds, size_t max_series, struct metric **out)
{
    return add_family(m, KIND_HISTOGRAM, name, help, labels, nlabels, bounds, nbounds,
                      max_series, out);
}

/* FNV-1a over the (cut) label values, each followed by a 0 byte. */
static uint32_t values_hash(const struct metric *f, const char *const *values)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < f->nlabels; i++) {
        const char *v = values[i] ? values[i] : "";
        for (size_t j = 0; v[j] && j < METRICS_VALUE_MAX; j++) {
            h ^= (unsigned char)v[j];
            h *= 16777619u;
        }
        h ^= 0;
        h *= 16777619u;
    }
    return h;
}

static int values_equal(const struct metric *f, const struct series *s,
                        const char *const *values)
{
    for (size_t i = 0; i < f->nlabels; i++) {
        const char *v = values[i] ? values[i] : "";
        if (strncmp(s->values[i], v, METRICS_VALUE_MAX) != 0 ||
            (strlen(v) < METRICS_VALUE_MAX && s->values[i][strlen(v)] != '\0'))
            return 0;
    }
    return 1;
}

static const char *const other_values[METRICS_MAX_LABELS] = {"other", "other", "other", "other"};

/* The series for values, created when missing; called with f->lock held.
 * NULL on allocation failure, or (create == 0) when missing. */
static struct series *find_series(struct metric *f, const char *const *values, int create)
{
    uint32_t h = values_hash(f, values);
    struct series *s;

    for (size_t i = 0; i < f->nseries; i++)
        if (f->series[i].hash == h && values_equal(f, &f->series[i], values))
            return &f->series[i];
    if (!create)
        return NULL;
    if (f->nseries + 1 >= f->max_series && values != other_values) {
        /* The last slot is kept for the overflow series. */
        return find_series(f, other_values, 1);
    }
    if (f->nseries == f->alloc) {
        size_t alloc = f->alloc ? f->alloc * 2 : 8;
        struct series *grown;
        if (alloc > f->max_series)
            alloc = f->max_series;
        grown = realloc(f->series, alloc * sizeof *grown);
        if (!grown)
            return NULL;
        f->series = grown;
        f->alloc = alloc;
    }
    s = &f->series[f->nseries];
    memset(s, 0, sizeof *s);
    if (f->kind == KIND_HISTOGRAM && !(s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets)))
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++) {
        const char *v = values[i] ? values[i] : "";
        size_t n = strlen(v);
        if (n > METRICS_VALUE_MAX)
            n = METRICS_VALUE_MAX;
        memcpy(s->values[i], v, n);
        s->values[i][n] = '\0';
    }
    s->hash = h;
    f->nseries++;
    return s;
}

static int update(struct metric *f, const char *const *values, double v, int op)
{
    int rc = SPELL_EINVAL;
    struct series *s;

    if (!f || isnan(v) || (f->nlabels && !values))
        return SPELL_EINVAL;
    if ((op == 0 && (f->kind == KIND_HISTOGRAM || (f->kind == KIND_COUNTER && v < 0))) ||
        (op == 1 && f->kind != KIND_GAUGE) || (op == 2 && f->kind != KIND_HISTOGRAM))
        return SPELL_EINVAL;
    pthread_mutex_lock(&f->lock);
    rc = SPELL_ENOMEM;
    if (!(s = find_series(f, values, 1)))
        goto out;
    if (op == 0) {
        s->value += v;
    } else if (op == 1) {
        s->value = v;
    } else {
        size_t b = 0;
        while (b < f->nbounds && v > f->bounds[b])
            b++;
        s->buckets[b]++;
        s->count++;
        s->value += v;
    }
    rc = SPELL_OK;
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int metrics_add(struct metric *f, const char *const *values, double v)
{
    return update(f, values, v, 0);
}

int metrics_set(struct metric *f, const char *const *values, double v)
{
    return update(f, values, v, 1);
}

int metrics_observe(struct metric *f, const char *const *values, double v)
{
    return update(f, values, v, 2);
}

double metrics_value(struct metric *f, const char *const *values)
{
    double v = 0;
    struct series *s;

    if (!f || (f->nlabels && !values))
        return 0;
    pthread_mutex_lock(&f->lock);
    if ((s = find_series(f, values, 0)) != NULL)
        v = f->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->lock);
    return v;
}

/* The shortest of %.15g / %.17g that reads back as v; +Inf, -Inf, NaN. */
static int add_number(struct spell_buf *out, double v)
{
    char tmp[40];

    if (isinf(v))
        return spell_buf_addstr(out, v > 0 ? "+Inf" : "-Inf");
    if (isnan(v))
        return spell_buf_addstr(out, "NaN");
    snprintf(tmp, sizeof tmp, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    return spell_buf_addstr(out, tmp);
}

static int add_escaped(struct spell_buf *out, const char *s, int quote)
{
    int rc = SPELL_OK;

    for (; *s && rc == SPELL_OK; s++) {
        if (*s == '\\')
            rc = spell_buf_addstr(out, "\\\\");
        else if (*s == '\n')
            rc = spell_buf_addstr(out, "\\n");
        else if (quote && *s == '"')
            rc = spell_buf_addstr(out, "\\\"");
        else
            rc = spell_buf_addc(out, *s);
    }
    return rc;
}

/* Writes `{a="x",b="y"` plus an optional le, and the closing brace; writes
 * nothing when there are no labels at all. */
static int add_labels(struct spell_buf *out, const struct metric *f, const struct series *s,
                      const char *le)
{
    int rc = SPELL_OK;

    if (f->nlabels == 0 && !le)
        return SPELL_OK;
    rc = spell_buf_addc(out, '{');
    for (size_t i = 0; i < f->nlabels && rc == SPELL_OK; i++) {
        if (i)
            rc = spell_buf_addc(out, ',');
        if (rc == SPELL_OK)
            rc = spell_buf_addf(out, "%s=\"", f->labels[i]);
        if (rc == SPELL_OK)
            rc = add_escaped(out, s->values[i], 1);
        if (rc == SPELL_OK)
            rc = spell_buf_addc(out, '"');
    }
    if (rc == SPELL_OK && le)
        rc = spell_buf_addf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (rc == SPELL_OK)
        rc = spell_buf_addc(out, '}');
    return rc;
}

static int render_family(struct metric *f, struct spell_buf *out)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    int rc;

    rc = spell_buf_addf(out, "# HELP %s ", f->name);
    if (rc == SPELL_OK)
        rc = add_escaped(out, f->help, 0);
    if (rc == SPELL_OK)
        rc = spell_buf_addf(out, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
    for (size_t i = 0; i < f->nseries && rc == SPELL_OK; i++) {
        const struct series *s = &f->series[i];
        if (f->kind != KIND_HISTOGRAM) {
            rc = spell_buf_addstr(out, f->name);
            if (rc == SPELL_OK)
                rc = add_labels(out, f, s, NULL);
            if (rc == SPELL_OK)
                rc = spell_buf_addc(out, ' ');
            if (rc == SPELL_OK)
                rc = add_number(out, s->value);
            if (rc == SPELL_OK)
                rc = spell_buf_addc(out, '\n');
            continue;
        }
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= f->nbounds && rc == SPELL_OK; b++) {
            struct spell_buf le;
            cumulative += s->buckets[b];
            spell_buf_init(&le, 40);
            rc = b < f->nbounds ? add_number(&le, f->bounds[b]) : spell_buf_addstr(&le, "+Inf");
            if (rc == SPELL_OK)
                rc = spell_buf_addf(out, "%s_bucket", f->name);
            if (rc == SPELL_OK)
                rc = add_labels(out, f, s, spell_buf_str(&le));
            if (rc == SPELL_OK)
                rc = spell_buf_addf(out, " %llu\n", (unsigned long long)cumulative);
            spell_buf_free(&le);
        }
        if (rc == SPELL_OK)
            rc = spell_buf_addf(out, "%s_sum", f->name);
        if (rc == SPELL_OK)
            rc = add_labels(out, f, s, NULL);
        if (rc == SPELL_OK)
            rc = spell_buf_addc(out, ' ');
        if (rc == SPELL_OK)
            rc = add_number(out, s->value);
        if (rc == SPELL_OK)
            rc = spell_buf_addf(out, "\n%s_count", f->name);
        if (rc == SPELL_OK)
            rc = add_labels(out, f, s, NULL);
        if (rc == SPELL_OK)
            rc = spell_buf_addf(out, " %llu\n", (unsigned long long)s->count);
    }
    return rc;
}

int metrics_render(struct metrics *m, struct spell_buf *out)
{
    int rc = SPELL_OK;
    size_t count;

    if (!m || !out)
        return SPELL_EINVAL;
    pthread_mutex_lock(&m->lock);
    count = m->count;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < count && rc == SPELL_OK; i++) {
        struct metric *f = m->families[i];
        pthread_mutex_lock(&f->lock);
        rc = render_family(f, out);
        pthread_mutex_unlock(&f->lock);
    }
    return rc;
}
