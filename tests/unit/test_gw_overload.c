/* test_gw_overload.c: the gateway's admission control decisions (gw_overload.h): which signal
 * sheds a send (per ingress shard), the retry_after_ms hint, its jitter and the smoothing of
 * rates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gw_overload.h"
#include "limits.h"

/* one shard of four holding shard_backlog of a total backlog */
static gw_overload_verdict judge(uint64_t backlog, uint64_t pending, uint64_t shard_backlog,
                                 uint64_t shard_pending, double shard_answers_per_s,
                                 uint64_t max)
{
    gw_overload_signals s = {
        .backlog = backlog,
        .pending = pending,
        .max = max,
        .shards = 4,
        .shard_backlog = shard_backlog,
        .shard_pending = shard_pending,
        .shard_answers_per_s = shard_answers_per_s,
    };
    return gw_overload_judge(&s);
}

static void test_judge_backlog(void **state)
{
    (void)state;
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(0, 0, 0, 0, 0, 10000));
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(9999, 10, 9999, 10, 5000, 10000));
    assert_int_equal(GW_OVERLOAD_BACKLOG, judge(10000, 0, 0, 0, 0, 10000));
    assert_int_equal(GW_OVERLOAD_BACKLOG, judge(20000, 20000, 5000, 5000, 0, 10000));
    /* own unanswered sends: a backstop when the backlog sample is stale */
    assert_int_equal(GW_OVERLOAD_PENDING, judge(0, 10000, 0, 0, 1e6, 10000));
    /* a low max (tests, small deployments) */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(9, 9, 1, 9, 1e6, 10));
    assert_int_equal(GW_OVERLOAD_BACKLOG, judge(10, 0, 0, 0, 0, 10));
}

static void test_judge_wait(void **state)
{
    (void)state;
    const uint64_t max = 10000;
    const uint64_t share = PARLEY_FANOUT_BATCH_MAX / 4; /* a shard's part of a batch */
    /* 3000 pending to the shard at 1000 answers/s from it: 3 s expected, over the 2 s target */
    assert_int_equal(GW_OVERLOAD_WAIT, judge(share, 3000, share, 3000, 1000, max));
    /* at 2000 answers/s: 1.5 s */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(share, 3000, share, 3000, 2000, max));
    /* no answers at all (fanout stopped) */
    assert_int_equal(GW_OVERLOAD_WAIT, judge(5000, 16, 5000, 16, 0, max));
    /* no answer rate known yet (the shard was idle here): judged by the counts only */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(5000, 500, 5000, 500, -1, max));
    /* but a gateway may always have a few sends to a shard waiting: one that sends little (or
     * just started) has no answer rate to be judged by */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(5000, 15, 5000, 15, 0, max));
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(5000, 1, 5000, 1, 0, max));
    /* per shard: a busy shard sheds while a quiet one (little queued or little of ours
     * waiting) admits */
    assert_int_equal(GW_OVERLOAD_WAIT, judge(3000, 3000, 2800, 2800, 500, max));
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(3000, 3000, 50, 200, 500, max));
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(3000, 3000, 2800, 200, 500, max));
    /* under a shard's share of one fanout batch: never shed for its wait (a healthy cluster,
     * a burst into an idle gateway without an answer rate yet, a lost answer) */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(5000, 3000, share - 1, 3000, 0, max));
    /* nothing pending to the shard here: nothing to wait for */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(5000, 10, 5000, 0, 0, max));
    /* with max under a batch, the share is max / shards */
    assert_int_equal(GW_OVERLOAD_ADMIT, judge(40, 20, 9, 20, 0, 100));
    assert_int_equal(GW_OVERLOAD_WAIT, judge(40, 20, 25, 20, 0, 100));
    /* one shard only: its share is the whole batch */
    gw_overload_signals one = {.backlog = PARLEY_FANOUT_BATCH_MAX - 1, .pending = 100,
                               .max = max, .shards = 1,
                               .shard_backlog = PARLEY_FANOUT_BATCH_MAX - 1,
                               .shard_pending = 100, .shard_answers_per_s = 0};
    assert_int_equal(GW_OVERLOAD_ADMIT, gw_overload_judge(&one));
    one.shard_backlog = one.backlog = PARLEY_FANOUT_BATCH_MAX;
    assert_int_equal(GW_OVERLOAD_WAIT, gw_overload_judge(&one));
}

static void test_retry_ms(void **state)
{
    (void)state;
    /* nothing admitted: the longest hint */
    assert_int_equal(PARLEY_GW_SHED_RETRY_MAX_MS, gw_overload_retry_ms(100, 0));
    assert_int_equal(PARLEY_GW_SHED_RETRY_MAX_MS, gw_overload_retry_ms(0, 0));
    /* at the edge: the base */
    assert_int_equal(PARLEY_GW_SHED_RETRY_BASE_MS, gw_overload_retry_ms(100, 100));
    assert_int_equal(PARLEY_GW_SHED_RETRY_BASE_MS, gw_overload_retry_ms(50, 100));
    /* offered twice what gets in: twice the base */
    assert_int_equal(2 * PARLEY_GW_SHED_RETRY_BASE_MS, gw_overload_retry_ms(200, 100));
    /* grows with the ratio, never past the maximum */
    uint32_t prev = 0;
    for (double f = 1; f < 100; f += 0.5) {
        uint32_t r = gw_overload_retry_ms(f * 10, 10);
        assert_true(r >= prev);
        assert_true(r >= PARLEY_GW_SHED_RETRY_BASE_MS && r <= PARLEY_GW_SHED_RETRY_MAX_MS);
        prev = r;
    }
    assert_int_equal(PARLEY_GW_SHED_RETRY_MAX_MS, prev);
}

static void test_jitter(void **state)
{
    (void)state;
    const uint32_t r = 1000;
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t u = 0; u < 5000; u++) {
        uint32_t j = gw_overload_jitter(r, u * 2654435761u);
        assert_true(j >= r - r / 2 && j <= r);
        lo = j < lo ? j : lo;
        hi = j > hi ? j : hi;
    }
    /* the whole range is used: clients spread out */
    assert_int_equal(r - r / 2, lo);
    assert_int_equal(r, hi);
    assert_true(gw_overload_jitter(PARLEY_GW_SHED_RETRY_BASE_MS, UINT32_MAX) >=
                PARLEY_GW_SHED_RETRY_BASE_MS / 2);
    assert_true(gw_overload_jitter(PARLEY_GW_SHED_RETRY_MAX_MS, 12345) <=
                PARLEY_GW_SHED_RETRY_MAX_MS);
    assert_int_equal(1, gw_overload_jitter(1, 7));
}

static void test_smooth(void **state)
{
    (void)state;
    double a = 0;
    /* converges to a steady count, from below, within a few hundred ticks */
    for (int i = 0; i < 400; i++) {
        double next = gw_overload_smooth(a, 50);
        assert_true(next >= a && next <= 50);
        a = next;
    }
    assert_true(a > 49.9);
    /* one burst tick moves it only a little: a batch answered at once is not a new rate */
    double b = gw_overload_smooth(a, 1000);
    assert_true(b < 2 * a);
    for (int i = 0; i < 400; i++)
        a = gw_overload_smooth(a, 0);
    assert_true(a < 0.1);
}

static void test_answer_rate(void **state)
{
    (void)state;
    double avg = 0, spell = 0;
    /* idle: nothing known */
    assert_true(gw_overload_answer_step(&avg, &spell, 0, 0) < 0);
    /* a burst: sends wait, no answer yet: still unknown (not a rate of zero) */
    for (int i = 0; i < 3; i++)
        assert_true(gw_overload_answer_step(&avg, &spell, 0, 1) < 0);
    /* the first batch answers 300: about 300 over the 4 ticks of the spell, not 300 / 40 */
    double r = gw_overload_answer_step(&avg, &spell, 300, 1);
    assert_true(r > 60 && r < 90);
    /* a steady 50 per tick with answers in bursts of 250 every 5 ticks: stays near 50 */
    double lo = 1e9, hi = 0;
    for (int i = 0; i < 400; i++) {
        r = gw_overload_answer_step(&avg, &spell, i % 5 == 0 ? 250 : 0, 1);
        if (i > 100) {
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
        }
    }
    assert_true(lo > 40 && hi < 70);
    /* the fanout stops: the rate decays while sends wait, it is not forgotten */
    for (int i = 0; i < 40; i++)
        r = gw_overload_answer_step(&avg, &spell, 0, 1);
    assert_true(r >= 0 && r < 25);
    /* the shard goes idle here: start afresh */
    assert_true(gw_overload_answer_step(&avg, &spell, 0, 0) < 0);
    assert_true(avg == 0 && spell == 0);
    /* answers that arrive while nothing waits any more still count */
    assert_true(gw_overload_answer_step(&avg, &spell, 10, 0) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_backlog), cmocka_unit_test(test_judge_wait),
        cmocka_unit_test(test_retry_ms),      cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_smooth),        cmocka_unit_test(test_answer_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
