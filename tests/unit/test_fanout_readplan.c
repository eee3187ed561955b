/* test_fanout_readplan.c: which shards a fanout reads next (fanout/readplan.c): free lanes
 * only, pending entries first and without BLOCK, a short BLOCK while other lanes work, and the
 * PARLEY_FANOUT_BATCH_MAX entries held at once shared among the shards read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fanout.h"

static pfo_batch *const BUSY = (pfo_batch *)&BUSY; /* any non-NULL lane */

static void lanes(pfo *f, unsigned nshards)
{
    memset(f, 0, sizeof *f);
    f->nshards = nshards;
}

static void occupy(pfo *f, unsigned shard, size_t entries)
{
    f->lane[shard] = BUSY;
    f->busy++;
    f->held += entries;
}

static void test_idle(void **state)
{
    (void)state;
    pfo f;
    pfo_readplan p;
    lanes(&f, 4);
    assert_int_equal(pfo_readplan_make(&f, &p), 1);
    assert_int_equal(p.n, 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(p.shard[i], i);
    assert_false(p.history);
    assert_int_equal(p.count, PARLEY_FANOUT_BATCH_MAX / 4);
    /* nothing else is going on: wait for new entries as long as a stop can bear */
    assert_string_equal(p.block_ms, "1000");
}

static void test_busy_lanes(void **state)
{
    (void)state;
    pfo f;
    pfo_readplan p;
    lanes(&f, 4);
    occupy(&f, 1, 300);
    occupy(&f, 2, 200);
    assert_int_equal(pfo_readplan_make(&f, &p), 1);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.shard[0], 0);
    assert_int_equal(p.shard[1], 3);
    assert_int_equal(p.count, (PARLEY_FANOUT_BATCH_MAX - 500) / 2);
    /* a lane that frees up must not wait long for this read to return */
    assert_string_equal(p.block_ms, "2");

    occupy(&f, 0, 10);
    occupy(&f, 3, 10);
    assert_int_equal(pfo_readplan_make(&f, &p), 0); /* every lane busy */
}

static void test_budget(void **state)
{
    (void)state;
    pfo f;
    pfo_readplan p;
    lanes(&f, 4);
    occupy(&f, 0, PARLEY_FANOUT_BATCH_MAX);
    assert_int_equal(pfo_readplan_make(&f, &p), 0);
    f.held = PARLEY_FANOUT_BATCH_MAX - 2;
    assert_int_equal(pfo_readplan_make(&f, &p), 1);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.count, 1); /* less than one each is still one */
}

static void test_pending_first(void **state)
{
    (void)state;
    pfo f;
    pfo_readplan p;
    lanes(&f, 4);
    f.pending[2] = 1;
    f.pending[3] = 1;
    occupy(&f, 3, 100); /* a busy lane's pending entries wait until it is free */
    assert_int_equal(pfo_readplan_make(&f, &p), 1);
    assert_true(p.history);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.shard[0], 2);
    assert_null(p.block_ms); /* "0" reads answer at once anyway */
    assert_int_equal(p.count, PARLEY_FANOUT_BATCH_MAX - 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_busy_lanes),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_pending_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
