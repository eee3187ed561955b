/* test_gw_peer.c: the compact source address of a connection (gateway/gw_peer.c): IPv4, IPv6,
 * IPv4-mapped IPv6 stored as IPv4, unknown families, and the registration rate-limit subject
 * built from its text form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "gw_peer.h"
#include "gw_register.h"

static void test_v4(void **state)
{
    (void)state;
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(4444);
    assert_int_equal(inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr), 1);
    gw_peer p;
    gw_peer_from_sockaddr(&p, (struct sockaddr *)&s4);
    char t[GW_PEER_TEXT_MAX];
    assert_int_equal(p.family, AF_INET);
    assert_string_equal(gw_peer_text(&p, t), "192.0.2.7");
}

static void test_v6_and_mapped(void **state)
{
    (void)state;
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &s6.sin6_addr), 1);
    gw_peer p;
    char t[GW_PEER_TEXT_MAX], subject[GW_PEER_TEXT_MAX + 8];
    gw_peer_from_sockaddr(&p, (struct sockaddr *)&s6);
    assert_int_equal(p.family, AF_INET6);
    assert_string_equal(gw_peer_text(&p, t), "2001:db8:1:2:3:4:5:6");
    gw_register_rate_subject(t, subject, sizeof subject);
    assert_string_equal(subject, "2001:db8:1:2::/64");
    /* an IPv4 client of a dual-stack listener counts as its IPv4 address */
    assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.9", &s6.sin6_addr), 1);
    gw_peer_from_sockaddr(&p, (struct sockaddr *)&s6);
    assert_int_equal(p.family, AF_INET);
    assert_string_equal(gw_peer_text(&p, t), "198.51.100.9");
    gw_register_rate_subject(t, subject, sizeof subject);
    assert_string_equal(subject, "198.51.100.9");
    /* the longest text form fits */
    assert_int_equal(inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                               &s6.sin6_addr), 1);
    gw_peer_from_sockaddr(&p, (struct sockaddr *)&s6);
    assert_true(strlen(gw_peer_text(&p, t)) < GW_PEER_TEXT_MAX);
}

static void test_unknown(void **state)
{
    (void)state;
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    gw_peer p;
    char t[GW_PEER_TEXT_MAX];
    gw_peer_from_sockaddr(&p, (struct sockaddr *)&su);
    assert_int_equal(p.family, 0);
    assert_string_equal(gw_peer_text(&p, t), "unknown");
    /* not a socket */
    gw_peer_from_fd(&p, -1);
    assert_string_equal(gw_peer_text(&p, t), "unknown");
    /* small: 17 bytes instead of 64 */
    assert_true(sizeof(gw_peer) <= 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4),
        cmocka_unit_test(test_v6_and_mapped),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
