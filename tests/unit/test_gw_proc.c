/* test_gw_proc.c: the gateway's process resources (gateway/gw_proc.c): how RLIMIT_NOFILE is
 * raised for max_connections, when freed heap is trimmed, and the RSS reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "gw_proc.h"
#include "limits.h"

#define CAP PARLEY_GW_NOFILE_MAX

static void test_nofile_plan(void **state)
{
    (void)state;
    uint64_t h, s;
    /* a typical default (1024 soft, 1 M hard): the soft limit goes to the hard one */
    gw_proc_nofile_plan(1024, 1048576, 251024, CAP, &h, &s);
    assert_int_equal(h, 1048576);
    assert_int_equal(s, 1048576);
    /* a hard limit below the need: ask for more (granted only with CAP_SYS_RESOURCE) */
    gw_proc_nofile_plan(1024, 4096, 251024, CAP, &h, &s);
    assert_int_equal(h, 251024);
    assert_int_equal(s, 251024);
    /* after a refused hard raise the plan is made again with need 0: up to the hard limit */
    gw_proc_nofile_plan(1024, 4096, 0, CAP, &h, &s);
    assert_int_equal(h, 4096);
    assert_int_equal(s, 4096);
    /* an unlimited hard limit: the soft one stops at the cap */
    gw_proc_nofile_plan(1024, UINT64_MAX, 251024, CAP, &h, &s);
    assert_int_equal(h, UINT64_MAX);
    assert_int_equal(s, CAP);
    /* never lowered */
    gw_proc_nofile_plan(CAP * 2, UINT64_MAX, 100, CAP, &h, &s);
    assert_int_equal(s, CAP * 2);
    gw_proc_nofile_plan(20000, 20000, 251024, CAP, &h, &s);
    assert_int_equal(s, 251024);
}

static void test_trim_due(void **state)
{
    (void)state;
    const uint64_t long_ago = 60ULL * 1000000;
    assert_false(gw_proc_trim_due(0, 0, 0, long_ago));
    assert_false(gw_proc_trim_due(500, 0, 0, long_ago));    /* too few went away */
    assert_true(gw_proc_trim_due(1000, 0, 0, long_ago));
    assert_false(gw_proc_trim_due(1000, 0, 0, 1000000));    /* trimmed a second ago */
    assert_false(gw_proc_trim_due(100000, 90000, 0, long_ago)); /* a tenth: not an eighth */
    assert_true(gw_proc_trim_due(100000, 87000, 0, long_ago));
    /* the follow-up of a trim, once the last one is long enough ago */
    assert_true(gw_proc_trim_due(0, 0, 1, long_ago));
    assert_false(gw_proc_trim_due(0, 0, 1, 1000000));
}

static void test_rss(void **state)
{
    (void)state;
    uint64_t rss = gw_proc_rss_bytes();
    assert_true(rss > 100 * 1024);
    assert_true(rss < 64ULL * 1024 * 1024 * 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nofile_plan),
        cmocka_unit_test(test_trim_due),
        cmocka_unit_test(test_rss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
