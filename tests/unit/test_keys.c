/* test_keys.c: the Redis key layout and the shard function, whose values every gateway and
 * fanout must agree on across versions (a changed shard function strands queued sends). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keys.h"

static void test_shard_stable_values(void **state)
{
    (void)state;
    /* FNV-1a 32-bit of the name, modulo nshards; pinned so a change is noticed */
    assert_int_equal(pkeys_shard("alice", 4), 3);
    assert_int_equal(pkeys_shard("alice", 64), 39);
    assert_int_equal(pkeys_shard("alice", 7), 6);
    assert_int_equal(pkeys_shard("bob", 4), 0);
    assert_int_equal(pkeys_shard("bob", 64), 20);
    assert_int_equal(pkeys_shard("carol.x", 64), 36);
    assert_int_equal(pkeys_shard("", 4), 1);
    assert_int_equal(pkeys_shard("alice", 1), 0);
    assert_int_equal(pkeys_shard("alice", 0), 0);
}

static void test_shard_in_range_and_deterministic(void **state)
{
    (void)state;
    char name[16];
    unsigned seen[8] = {0};
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "user%d", i);
        unsigned s = pkeys_shard(name, 8);
        assert_true(s < 8);
        assert_int_equal(s, pkeys_shard(name, 8));
        seen[s]++;
    }
    for (int i = 0; i < 8; i++)
        assert_true(seen[i] > 50); /* roughly uniform: no shard starves */
}

static void test_key_formats(void **state)
{
    (void)state;
    char k[PKEYS_MAX];
    assert_int_equal(pkeys_ingress(k, 3), (int)strlen("parley:ingress:3"));
    assert_string_equal(k, "parley:ingress:3");
    assert_true(pkeys_delivery(k, "gw-1") > 0);
    assert_string_equal(k, "parley:gw:gw-1");
    assert_true(pkeys_presence(k, "alice", 2) > 0);
    assert_string_equal(k, "parley:presence:alice:2");
    assert_true(pkeys_presence(k, "alice", 4294967295u) > 0);
    assert_string_equal(k, "parley:presence:alice:4294967295");
    assert_true(pkeys_ratelimit(k, "register", "127.0.0.1") > 0);
    assert_string_equal(k, "parley:rl:register:127.0.0.1");
}

static void test_key_too_long(void **state)
{
    (void)state;
    char k[PKEYS_MAX];
    char big[PKEYS_MAX + 10];
    memset(big, 'g', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(pkeys_delivery(k, big), -1);
    assert_int_equal(pkeys_ratelimit(k, "register", big), -1);
    /* the longest real ones fit: 64-char gateway id, 32-char name */
    char gw[65];
    memset(gw, 'x', 64);
    gw[64] = '\0';
    assert_true(pkeys_delivery(k, gw) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_stable_values),
        cmocka_unit_test(test_shard_in_range_and_deterministic),
        cmocka_unit_test(test_key_formats),
        cmocka_unit_test(test_key_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
