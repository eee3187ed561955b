/* test_gw_sweep.c: pacing of the work over every connection (gateway/gw_sweep.c, gw_conn.c):
 * the share of buckets per tick adds up to the table once per period, and a cursor over the
 * connection table visits every connection once per round even while the table grows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_conn.h"
#include "gw_sweep.h"

static void test_share(void **state)
{
    (void)state;
    const uint64_t period = 20 * 1000000ULL, tick = 100000;
    size_t sizes[] = {1, 64, 1000, 262144, 4194304};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint64_t acc = 0;
        size_t total = 0, most = 0;
        for (uint64_t t = 0; t < period; t += tick) {
            size_t n = gw_sweep_share(sizes[k], tick, period, &acc);
            total += n;
            if (n > most)
                most = n;
        }
        assert_int_equal(total, sizes[k]); /* one whole round per period */
        assert_true(most <= sizes[k] / 200 + 1); /* evenly: no tick does much more */
    }
}

typedef struct {
    unsigned *seen; /* by conn id */
} visit_ctx;

static void count_visit(gw_conn *c, void *ud)
{
    visit_ctx *v = ud;
    v->seen[c->id]++;
}

static void test_cursor_across_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    gw_conns t;
    assert_int_equal(gw_conns_init(&t), 0);
    visit_ctx v = {calloc(N + 1, sizeof(unsigned))};
    assert_non_null(v.seen);
    uint64_t next_id = 1;
    for (int i = 0; i < 100; i++) {
        gw_conn *c = calloc(1, sizeof *c);
        c->id = next_id++;
        gw_conns_add(&t, c);
    }
    /* one round in steps of 3 buckets, adding 10 connections after every step (the table
     * doubles several times under the cursor) */
    size_t cursor = 0;
    while (cursor < gw_conns_buckets(&t)) {
        gw_conns_visit(&t, cursor, 3, count_visit, &v);
        cursor += 3;
        for (int i = 0; i < 10 && next_id <= N; i++) {
            gw_conn *c = calloc(1, sizeof *c);
            c->id = next_id++;
            gw_conns_add(&t, c);
        }
    }
    /* every connection present from the start was visited at least once */
    for (uint64_t id = 1; id <= 100; id++)
        assert_true(v.seen[id] >= 1);
    /* a whole-table visit sees every connection exactly once */
    memset(v.seen, 0, (N + 1) * sizeof(unsigned));
    size_t n = gw_conns_visit(&t, 0, gw_conns_buckets(&t), count_visit, &v);
    assert_int_equal(n, next_id - 1);
    for (uint64_t id = 1; id < next_id; id++)
        assert_int_equal(v.seen[id], 1);
    /* out of range: nothing */
    assert_int_equal(gw_conns_visit(&t, gw_conns_buckets(&t), 10, count_visit, &v), 0);
    free(v.seen);
    gw_conns_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_cursor_across_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
