/* Unit tests for server/http/metrics.c: registration rules, exact text,
 * escaping, bounded cardinality and concurrent updates. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"
#include "spell/errors.h"

#include "metrics.h"
#include "tap.h"

static char *render(struct metrics *m)
{
    struct spell_buf b;
    spell_buf_init(&b, 1024 * 1024);
    if (metrics_render(m, &b) != SPELL_OK) {
        spell_buf_free(&b);
        return NULL;
    }
    return spell_buf_take(&b, NULL);
}

static void test_counter_text(void)
{
    struct metrics *m = NULL;
    struct metric *c = NULL;
    const char *labels[] = {"mode", "status"};
    const char *v1[] = {"service", "succeeded"};
    const char *v2[] = {"wasm", "failed"};
    char *text;

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "spell_casts_total", "Casts by mode and status.", labels, 2,
                              0, &c), SPELL_OK);
    CHECK_INT(metrics_add(c, v1, 1), SPELL_OK);
    CHECK_INT(metrics_add(c, v1, 2), SPELL_OK);
    CHECK_INT(metrics_add(c, v2, 1), SPELL_OK);
    CHECK_INT(metrics_add(c, v2, -1), SPELL_EINVAL);
    CHECK_INT(metrics_set(c, v2, 5), SPELL_EINVAL);
    CHECK_INT(metrics_observe(c, v2, 5), SPELL_EINVAL);
    CHECK_INT(metrics_add(c, NULL, 1), SPELL_EINVAL);
    CHECK(metrics_value(c, v1) == 3);
    text = render(m);
    CHECK_STR(text, "# HELP spell_casts_total Casts by mode and status.\n"
                    "# TYPE spell_casts_total counter\n"
                    "spell_casts_total{mode=\"service\",status=\"succeeded\"} 3\n"
                    "spell_casts_total{mode=\"wasm\",status=\"failed\"} 1\n");
    free(text);
    metrics_free(m);
}

static void test_gauge_and_histogram_text(void)
{
    struct metrics *m = NULL;
    struct metric *g = NULL, *h = NULL;
    const double bounds[] = {0.1, 1, 2.5};
    const char *labels[] = {"mode"};
    const char *v[] = {"service"};
    char *text;

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_gauge(m, "spell_streams", "Open streams.", NULL, 0, 0, &g), SPELL_OK);
    CHECK_INT(metrics_add(g, NULL, 5), SPELL_OK);
    CHECK_INT(metrics_add(g, NULL, -2), SPELL_OK);
    CHECK_INT(metrics_histogram(m, "spell_run_seconds", "Run time.", labels, 1, bounds, 3, 0,
                                &h), SPELL_OK);
    CHECK_INT(metrics_observe(h, v, 0.05), SPELL_OK);
    CHECK_INT(metrics_observe(h, v, 0.1), SPELL_OK);   /* le is inclusive */
    CHECK_INT(metrics_observe(h, v, 2), SPELL_OK);
    CHECK_INT(metrics_observe(h, v, 100), SPELL_OK);
    CHECK_INT(metrics_add(h, v, 1), SPELL_EINVAL);
    text = render(m);
    CHECK_STR(text, "# HELP spell_streams Open streams.\n"
                    "# TYPE spell_streams gauge\n"
                    "spell_streams 3\n"
                    "# HELP spell_run_seconds Run time.\n"
                    "# TYPE spell_run_seconds histogram\n"
                    "spell_run_seconds_bucket{mode=\"service\",le=\"0.1\"} 2\n"
                    "spell_run_seconds_bucket{mode=\"service\",le=\"1\"} 2\n"
                    "spell_run_seconds_bucket{mode=\"service\",le=\"2.5\"} 3\n"
                    "spell_run_seconds_bucket{mode=\"service\",le=\"+Inf\"} 4\n"
                    "spell_run_seconds_sum{mode=\"service\"} 102.15\n"
                    "spell_run_seconds_count{mode=\"service\"} 4\n");
    free(text);
    CHECK_INT(metrics_set(g, NULL, 0), SPELL_OK);
    CHECK(metrics_value(g, NULL) == 0);
    metrics_free(m);
}

static void test_registration_rules(void)
{
    struct metrics *m = NULL;
    struct metric *f = NULL;
    const char *le[] = {"le"};
    const char *dup[] = {"a", "a"};
    const char *bad[] = {"1a"};
    const char *reserved[] = {"__name"};
    const double unsorted[] = {1, 0.5};
    const double one[] = {1};

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "ok_total", "h", NULL, 0, 0, &f), SPELL_OK);
    CHECK_INT(metrics_counter(m, "ok_total", "h", NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK(f == NULL);
    CHECK_INT(metrics_counter(m, "9bad", "h", NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "bad-name", "h", NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "", "h", NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "two\nlines", NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "h", dup, 2, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "h", bad, 1, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "h", reserved, 1, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "h", NULL, 5, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "x_total", "h", NULL, 0, METRICS_MAX_SERIES + 1, &f),
              SPELL_EINVAL);
    CHECK_INT(metrics_histogram(m, "h1", "h", le, 1, one, 1, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_histogram(m, "h1", "h", NULL, 0, unsorted, 2, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_histogram(m, "h1", "h", NULL, 0, NULL, 0, 0, &f), SPELL_EINVAL);
    CHECK_INT(metrics_counter(m, "ns:sub_total", "h", le, 1, 0, &f), SPELL_OK);
    metrics_free(m);

    /* The registry is bounded. */
    CHECK_INT(metrics_new(&m), SPELL_OK);
    for (int i = 0; i < METRICS_MAX_FAMILIES; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d", i);
        CHECK_INT(metrics_gauge(m, name, "", NULL, 0, 0, &f), SPELL_OK);
    }
    CHECK_INT(metrics_gauge(m, "one_more", "", NULL, 0, 0, &f), SPELL_ETOOBIG);
    metrics_free(m);
}

static void test_escaping(void)
{
    struct metrics *m = NULL;
    struct metric *c = NULL;
    const char *labels[] = {"v"};
    const char *v[] = {"a\"b\\c\nd"};
    char *text;

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "esc_total", "back\\slash", labels, 1, 0, &c), SPELL_OK);
    CHECK_INT(metrics_add(c, v, 1), SPELL_OK);
    text = render(m);
    CHECK_STR(text, "# HELP esc_total back\\\\slash\n"
                    "# TYPE esc_total counter\n"
                    "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(text);
    metrics_free(m);
}

static void test_cardinality_bounded(void)
{
    struct metrics *m = NULL;
    struct metric *c = NULL;
    const char *labels[] = {"path"};
    char name[32], *text;
    const char *v[1] = {name};
    const char *other[] = {"other"};
    char longv[METRICS_VALUE_MAX + 50];
    const char *lv[] = {longv};

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "req_total", "", labels, 1, 4, &c), SPELL_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "/p%d", i);
        CHECK_INT(metrics_add(c, v, 1), SPELL_OK);
    }
    /* Three real series, then everything else folded into "other". */
    CHECK(metrics_value(c, other) == 997);
    snprintf(name, sizeof name, "/p1");
    CHECK(metrics_value(c, v) == 1);
    text = render(m);
    CHECK_STR(text, "# HELP req_total \n# TYPE req_total counter\n"
                    "req_total{path=\"/p0\"} 1\n"
                    "req_total{path=\"/p1\"} 1\n"
                    "req_total{path=\"/p2\"} 1\n"
                    "req_total{path=\"other\"} 997\n");
    free(text);
    metrics_free(m);

    /* Long values are cut, and the cut value is one series. */
    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "long_total", "", labels, 1, 0, &c), SPELL_OK);
    memset(longv, 'z', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    CHECK_INT(metrics_add(c, lv, 1), SPELL_OK);
    longv[METRICS_VALUE_MAX + 10] = 'y';
    CHECK_INT(metrics_add(c, lv, 1), SPELL_OK);
    text = render(m);
    CHECK(text && strlen(text) < 200 + METRICS_VALUE_MAX);
    CHECK(text && strstr(text, "\"} 2\n") != NULL);
    free(text);
    metrics_free(m);
}

struct worker {
    struct metric *c;
    struct metric *h;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    const char *v[] = {"x"};
    for (int i = 0; i < 10000; i++) {
        metrics_add(w->c, v, 1);
        metrics_observe(w->h, v, 0.001);
    }
    return NULL;
}

static void test_concurrent_updates(void)
{
    struct metrics *m = NULL;
    struct worker w;
    pthread_t t[8];
    const char *labels[] = {"k"};
    const char *v[] = {"x"};

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "c_total", "", labels, 1, 0, &w.c), SPELL_OK);
    CHECK_INT(metrics_histogram(m, "h_seconds", "", labels, 1, metrics_latency_bounds,
                                metrics_latency_nbounds, 0, &w.h), SPELL_OK);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, &w);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    CHECK(metrics_value(w.c, v) == 80000);
    CHECK(metrics_value(w.h, v) == 80000);
    metrics_free(m);
}

static void test_render_cap(void)
{
    struct metrics *m = NULL;
    struct metric *c = NULL;
    struct spell_buf b;

    CHECK_INT(metrics_new(&m), SPELL_OK);
    CHECK_INT(metrics_counter(m, "a_total", "help", NULL, 0, 0, &c), SPELL_OK);
    CHECK_INT(metrics_add(c, NULL, 1), SPELL_OK);
    spell_buf_init(&b, 10);
    CHECK_INT(metrics_render(m, &b), SPELL_ETOOBIG);
    spell_buf_free(&b);
    CHECK_INT(metrics_render(NULL, &b), SPELL_EINVAL);
    metrics_free(m);
}

int main(void)
{
    RUN(test_counter_text);
    RUN(test_gauge_and_histogram_text);
    RUN(test_registration_rules);
    RUN(test_escaping);
    RUN(test_cardinality_bounded);
    RUN(test_concurrent_updates);
    RUN(test_render_cap);
    return tap_done();
}
