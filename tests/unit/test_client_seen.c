/* The duplicate-id set: membership, the bound (oldest forgotten first), no eviction on a
 * repeated id; and the URL parser the connections rely on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "parley_client.h"

static void test_bound(void **state)
{
    pc_seen s;

    (void)state;
    assert_int_equal(pc_seen_init(&s, 3), 0);
    assert_false(pc_seen_has(&s, 1));
    pc_seen_add(&s, 1);
    pc_seen_add(&s, 2);
    pc_seen_add(&s, 3);
    assert_true(pc_seen_has(&s, 1) && pc_seen_has(&s, 2) && pc_seen_has(&s, 3));
    assert_int_equal(pc_seen_count(&s), 3);
    /* a repeat changes nothing, in particular evicts nothing */
    pc_seen_add(&s, 2);
    assert_int_equal(pc_seen_count(&s), 3);
    assert_true(pc_seen_has(&s, 1));
    /* the fourth id pushes out the oldest */
    pc_seen_add(&s, 4);
    assert_int_equal(pc_seen_count(&s), 3);
    assert_false(pc_seen_has(&s, 1));
    assert_true(pc_seen_has(&s, 2) && pc_seen_has(&s, 3) && pc_seen_has(&s, 4));
    assert_int_equal(pc_seen_at(&s, 0), 2);
    assert_int_equal(pc_seen_at(&s, 2), 4);
    for (uint64_t id = 100; id < 1000; id++)
        pc_seen_add(&s, id);
    assert_int_equal(pc_seen_count(&s), 3);
    assert_true(pc_seen_has(&s, 999) && pc_seen_has(&s, 997) && !pc_seen_has(&s, 996));
    pc_seen_free(&s);
}

static void test_home_bound_is_a_queue(void **state)
{
    (void)state;
    /* a full device queue redelivered at once is still recognised */
    assert_true(PC_HOME_SEEN_IDS >= PARLEY_QUEUE_MAX_DEFAULT);
}

static void test_url(void **state)
{
    pc_url u;
    pc_status st;

    (void)state;
    assert_int_equal(pc_url_parse("ws://127.0.0.1:8080/v1/ws", &u, &st), 0);
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/v1/ws");
    assert_int_equal(pc_url_parse("wss://chat.example.org", &u, &st), 0);
    assert_true(u.tls);
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/v1/ws");
    assert_int_equal(pc_url_parse("ws://[::1]:9000/custom?x=1", &u, &st), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9000);
    assert_string_equal(u.path, "/custom?x=1");
    assert_int_equal(pc_url_parse("ws://h/", &u, &st), 0);
    assert_string_equal(u.path, "/v1/ws");
    assert_int_equal(u.port, 80);
    assert_int_equal(pc_url_parse("http://h/", &u, &st), -1);
    assert_int_equal(pc_url_parse("ws://h:0/", &u, &st), -1);
    assert_int_equal(pc_url_parse("ws://h:99999", &u, &st), -1);
    assert_int_equal(pc_url_parse("ws://:80/", &u, &st), -1);
    assert_int_equal(pc_url_parse("ws://h:12x/", &u, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_home_bound_is_a_queue),
        cmocka_unit_test(test_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
