/* test_metrics.c: the Prometheus text exposition of counters, gauges and histograms, family
 * grouping, label merging with le, and misuse that must not crash a service. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Asserts that text contains line as a whole line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    }
    fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    pmetrics *m = pmetrics_new();
    assert_non_null(m);
    pmet_counter *a = pmetrics_counter(m, "parley_sends_rejected_total", "Rejected sends.",
                                       "reason=\"queue_full\"");
    pmet_gauge *g = pmetrics_gauge(m, "parley_connections", "Open connections.", NULL);
    pmet_counter *b = pmetrics_counter(m, "parley_sends_rejected_total", "Rejected sends.",
                                       "reason=\"device_mismatch\"");
    pmet_counter *plain = pmetrics_counter(m, "parley_frames_in_total", "Frames in.", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    /* the same series registered twice is the same metric */
    assert_ptr_equal(a, pmetrics_counter(m, "parley_sends_rejected_total", "Rejected sends.",
                                         "reason=\"queue_full\""));
    pmet_inc(a, 3);
    pmet_inc(a, 2);
    pmet_inc(b, 1);
    pmet_inc(plain, 18446744073709551615ull);
    pmet_set(g, 10);
    pmet_add(g, -2.5);

    size_t len = 0;
    char *t = pmetrics_render(m, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    assert_line(t, "# HELP parley_sends_rejected_total Rejected sends.");
    assert_line(t, "# TYPE parley_sends_rejected_total counter");
    assert_line(t, "parley_sends_rejected_total{reason=\"queue_full\"} 5");
    assert_line(t, "parley_sends_rejected_total{reason=\"device_mismatch\"} 1");
    assert_line(t, "# TYPE parley_connections gauge");
    assert_line(t, "parley_connections 7.5");
    assert_line(t, "parley_frames_in_total 18446744073709551615");
    /* one HELP/TYPE per family, and the family's series together right after them */
    assert_int_equal(count_substr(t, "# TYPE parley_sends_rejected_total "), 1);
    assert_int_equal(count_substr(t, "# HELP parley_sends_rejected_total "), 1);
    const char *type = strstr(t, "# TYPE parley_sends_rejected_total");
    const char *s1 = strstr(t, "parley_sends_rejected_total{reason=\"queue_full\"}");
    const char *s2 = strstr(t, "parley_sends_rejected_total{reason=\"device_mismatch\"}");
    const char *other = strstr(t, "# HELP parley_connections");
    assert_true(type < s1 && s1 < s2);
    assert_true(s2 < other); /* registered between them, yet rendered after the family */
    assert_int_equal(t[len - 1], '\n');
    free(t);
    pmetrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    pmetrics *m = pmetrics_new();
    const double bounds[] = {0.01, 0.1, 1};
    pmet_hist *h = pmetrics_hist(m, "parley_batch_seconds", "Batch latency.", "stage=\"pg\"",
                                 bounds, 3);
    pmet_hist *plain = pmetrics_hist(m, "parley_plain_seconds", "Plain.", NULL, bounds, 3);
    assert_non_null(h);
    pmet_observe(h, 0.005);
    pmet_observe(h, 0.01); /* on the bound: le is inclusive */
    pmet_observe(h, 0.5);
    pmet_observe(h, 7);
    pmet_observe(plain, 0.2);
    char *t = pmetrics_render(m, NULL);
    assert_non_null(t);
    assert_line(t, "# TYPE parley_batch_seconds histogram");
    assert_line(t, "parley_batch_seconds_bucket{stage=\"pg\",le=\"0.01\"} 2");
    assert_line(t, "parley_batch_seconds_bucket{stage=\"pg\",le=\"0.1\"} 2");
    assert_line(t, "parley_batch_seconds_bucket{stage=\"pg\",le=\"1\"} 3");
    assert_line(t, "parley_batch_seconds_bucket{stage=\"pg\",le=\"+Inf\"} 4");
    assert_line(t, "parley_batch_seconds_sum{stage=\"pg\"} 7.515");
    assert_line(t, "parley_batch_seconds_count{stage=\"pg\"} 4");
    assert_line(t, "parley_plain_seconds_bucket{le=\"0.1\"} 0");
    assert_line(t, "parley_plain_seconds_bucket{le=\"1\"} 1");
    assert_line(t, "parley_plain_seconds_bucket{le=\"+Inf\"} 1");
    assert_line(t, "parley_plain_seconds_sum 0.2");
    assert_line(t, "parley_plain_seconds_count 1");
    free(t);
    pmetrics_free(m);
}

static void test_latency_bounds(void **state)
{
    (void)state;
    assert_true(pmetrics_latency_nbounds >= 10);
    assert_true(pmetrics_latency_bounds[0] == 0.0005);
    assert_true(pmetrics_latency_bounds[pmetrics_latency_nbounds - 1] == 10);
    for (size_t i = 1; i < pmetrics_latency_nbounds; i++)
        assert_true(pmetrics_latency_bounds[i - 1] < pmetrics_latency_bounds[i]);
    pmetrics *m = pmetrics_new();
    pmet_hist *h = pmetrics_hist(m, "parley_x_seconds", "X.", NULL, pmetrics_latency_bounds,
                                 pmetrics_latency_nbounds);
    pmet_observe(h, 0.003);
    char *t = pmetrics_render(m, NULL);
    assert_line(t, "parley_x_seconds_bucket{le=\"0.0025\"} 0");
    assert_line(t, "parley_x_seconds_bucket{le=\"0.005\"} 1");
    assert_line(t, "parley_x_seconds_bucket{le=\"10\"} 1");
    free(t);
    pmetrics_free(m);
}

static void test_misuse(void **state)
{
    (void)state;
    pmetrics *m = pmetrics_new();
    assert_non_null(pmetrics_counter(m, "parley_a_total", "A.", NULL));
    /* same name as another type: refused (logged), and updating NULL is harmless */
    pmet_gauge *g = pmetrics_gauge(m, "parley_a_total", "A.", NULL);
    assert_null(g);
    pmet_set(g, 1);
    pmet_add(g, 1);
    pmet_inc(NULL, 1);
    pmet_observe(NULL, 1);
    assert_null(pmetrics_counter(m, "bad name", "B.", NULL));
    assert_null(pmetrics_counter(m, "9starts_with_digit", "B.", NULL));
    const double desc[] = {1, 0.5};
    assert_null(pmetrics_hist(m, "parley_h", "H.", NULL, desc, 2));
    /* help text escapes */
    pmetrics_gauge(m, "parley_esc", "line1\nline2 back\\slash", NULL);
    char *t = pmetrics_render(m, NULL);
    assert_line(t, "# HELP parley_esc line1\\nline2 back\\\\slash");
    assert_null(strstr(t, "bad name"));
    free(t);
    pmetrics_free(m);
    pmetrics_free(NULL);
    /* an empty registry renders an empty document */
    m = pmetrics_new();
    size_t len = 99;
    t = pmetrics_render(m, &len);
    assert_non_null(t);
    assert_int_equal(len, 0);
    free(t);
    pmetrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_latency_bounds),
        cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
