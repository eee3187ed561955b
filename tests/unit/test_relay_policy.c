/* test_relay_policy.c: the relay's peer address policy: every refused class of IPv4 and IPv6
 * address (the issue's list: 127.0.0.1, 10.0.0.1, 169.254.169.254, ::1, ::ffff:127.0.0.1 and the
 * rest), refused IPv4 hidden in IPv6 (mapped, compatible, SIIT, NAT64, 6to4, Teredo), public
 * addresses accepted, and the allow list overriding, with its parsing errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "policy.h"

static rpol_reason check(const rpol *p, const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(3480);
        if (inet_pton(AF_INET6, ip, &s->sin6_addr) != 1)
            fail_msg("bad test address %s", ip);
    } else {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(3480);
        if (inet_pton(AF_INET, ip, &s->sin_addr) != 1)
            fail_msg("bad test address %s", ip);
    }
    return rpol_check(p, (struct sockaddr *)&ss);
}

static void expect(const rpol *p, const char *ip, rpol_reason want)
{
    rpol_reason got = check(p, ip);
    if (got != want)
        fail_msg("%s: expected %s, got %s", ip, rpol_reason_name(want), rpol_reason_name(got));
}

static void test_issue_list(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    expect(&p, "127.0.0.1", RPOL_LOOPBACK);
    expect(&p, "10.0.0.1", RPOL_PRIVATE);
    expect(&p, "169.254.169.254", RPOL_METADATA);
    expect(&p, "::1", RPOL_LOOPBACK);
    expect(&p, "::ffff:127.0.0.1", RPOL_LOOPBACK);
}

static void test_ipv4_refused(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    static const struct {
        const char *ip;
        rpol_reason why;
    } cases[] = {
        {"0.0.0.0", RPOL_UNSPECIFIED},
        {"0.1.2.3", RPOL_RESERVED},
        {"10.255.255.255", RPOL_PRIVATE},
        {"100.64.0.1", RPOL_PRIVATE},
        {"100.127.255.254", RPOL_PRIVATE},
        {"100.100.100.200", RPOL_METADATA},
        {"127.255.255.254", RPOL_LOOPBACK},
        {"169.254.0.1", RPOL_LINK_LOCAL},
        {"172.16.0.1", RPOL_PRIVATE},
        {"172.31.255.255", RPOL_PRIVATE},
        {"192.0.0.8", RPOL_RESERVED},
        {"192.0.0.192", RPOL_METADATA},
        {"192.0.2.1", RPOL_DOCUMENTATION},
        {"192.88.99.1", RPOL_RESERVED},
        {"192.168.1.1", RPOL_PRIVATE},
        {"198.18.0.1", RPOL_BENCHMARKING},
        {"198.19.255.255", RPOL_BENCHMARKING},
        {"198.51.100.7", RPOL_DOCUMENTATION},
        {"203.0.113.200", RPOL_DOCUMENTATION},
        {"224.0.0.1", RPOL_MULTICAST},
        {"239.255.255.250", RPOL_MULTICAST},
        {"240.0.0.1", RPOL_RESERVED},
        {"255.255.255.254", RPOL_RESERVED},
        {"255.255.255.255", RPOL_BROADCAST},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(&p, cases[i].ip, cases[i].why);
}

static void test_ipv4_public(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    static const char *ok[] = {"1.1.1.1",    "8.8.8.8",       "9.255.255.255", "11.0.0.0",
                               "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
                               "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
                               "192.0.1.0",  "192.0.3.0",     "192.167.255.255", "192.169.0.0",
                               "198.17.255.255", "198.20.0.0", "223.255.255.255"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        expect(&p, ok[i], RPOL_OK);
}

static void test_ipv6_refused(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    static const struct {
        const char *ip;
        rpol_reason why;
    } cases[] = {
        {"::", RPOL_UNSPECIFIED},
        {"::1", RPOL_LOOPBACK},
        {"fc00::1", RPOL_PRIVATE},
        {"fdff:ffff::1", RPOL_PRIVATE},
        {"fd00:ec2::254", RPOL_METADATA},
        {"fe80::1", RPOL_LINK_LOCAL},
        {"febf::1", RPOL_LINK_LOCAL},
        {"fec0::1", RPOL_PRIVATE},
        {"ff02::1", RPOL_MULTICAST},
        {"ff0e::1", RPOL_MULTICAST},
        {"2001:db8::1", RPOL_DOCUMENTATION},
        {"2001:db8:ffff:ffff::", RPOL_DOCUMENTATION},
        {"3fff::1", RPOL_DOCUMENTATION},
        {"2001:2::1", RPOL_BENCHMARKING},
        {"2001:10::1", RPOL_RESERVED},
        {"2001:20::1", RPOL_RESERVED},
        {"100::1", RPOL_RESERVED},
        {"64:ff9b:1::1", RPOL_PRIVATE},
        /* outside 2000::/3: not allocated for unicast */
        {"fbff::1", RPOL_RESERVED},
        {"fe00::1", RPOL_RESERVED},
        {"4000::1", RPOL_RESERVED},
        {"1::1", RPOL_RESERVED},
        {"::1:0:0:1", RPOL_RESERVED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(&p, cases[i].ip, cases[i].why);
}

/* The holes coturn had to close: IPv4 that is refused stays refused inside IPv6. */
static void test_embedded_ipv4(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    static const struct {
        const char *ip;
        rpol_reason why;
    } cases[] = {
        /* IPv4-mapped */
        {"::ffff:127.0.0.1", RPOL_LOOPBACK},
        {"::ffff:10.0.0.1", RPOL_PRIVATE},
        {"::ffff:169.254.169.254", RPOL_METADATA},
        {"::ffff:0.0.0.0", RPOL_UNSPECIFIED},
        {"::ffff:224.0.0.1", RPOL_MULTICAST},
        {"::ffff:192.168.0.1", RPOL_PRIVATE},
        {"::ffff:7f00:1", RPOL_LOOPBACK},
        /* IPv4-compatible (deprecated) */
        {"::127.0.0.1", RPOL_LOOPBACK},
        {"::10.1.2.3", RPOL_PRIVATE},
        {"::169.254.169.254", RPOL_METADATA},
        /* SIIT IPv4-translated */
        {"::ffff:0:127.0.0.1", RPOL_LOOPBACK},
        {"::ffff:0:172.16.0.1", RPOL_PRIVATE},
        /* NAT64 well-known prefix */
        {"64:ff9b::127.0.0.1", RPOL_LOOPBACK},
        {"64:ff9b::a9fe:a9fe", RPOL_METADATA},
        {"64:ff9b::192.168.1.1", RPOL_PRIVATE},
        /* 6to4 */
        {"2002:7f00:0001::1", RPOL_LOOPBACK},
        {"2002:a9fe:a9fe::", RPOL_METADATA},
        {"2002:0a00:0001:1234::1", RPOL_PRIVATE},
        /* Teredo: server 10.0.0.1, or client 127.0.0.1 (stored inverted: 80ff:fffe) */
        {"2001:0:a00:1::1", RPOL_PRIVATE},
        {"2001:0:808:808::80ff:fffe", RPOL_LOOPBACK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(&p, cases[i].ip, cases[i].why);
}

static void test_ipv6_public(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    static const char *ok[] = {
        "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888",
        "::ffff:8.8.8.8",       "64:ff9b::8.8.8.8",         "2002:0808:0808::1",
        "2001:0:808:808::f7f7:f7f7", /* Teredo, server and client 8.8.8.8 */
        "2001:db9::1",          "3ffe:ffff::1",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        expect(&p, ok[i], RPOL_OK);
}

static void test_family(void **state)
{
    (void)state;
    rpol p;
    rpol_init(&p);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_int_equal(rpol_check(&p, (struct sockaddr *)&un), RPOL_FAMILY);
    assert_string_equal(rpol_reason_name(RPOL_METADATA), "metadata");
    assert_string_equal(rpol_reason_name(RPOL_NREASONS), "unknown");
}

static void test_allow_list(void **state)
{
    (void)state;
    rpol p;
    char err[128];
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, " 127.0.0.1 , 10.0.0.0/8,::1, fd00::/8", err, sizeof err), 0);
    assert_int_equal(p.nallow, 4);
    expect(&p, "127.0.0.1", RPOL_OK);
    expect(&p, "::ffff:127.0.0.1", RPOL_OK); /* the same address as the kernel sees it */
    expect(&p, "127.0.0.2", RPOL_LOOPBACK);
    expect(&p, "10.200.3.4", RPOL_OK);
    expect(&p, "::ffff:10.200.3.4", RPOL_OK);
    expect(&p, "11.0.0.1", RPOL_OK); /* public anyway */
    expect(&p, "::1", RPOL_OK);
    expect(&p, "fd12::1", RPOL_OK);
    expect(&p, "fc00::1", RPOL_PRIVATE); /* outside fd00::/8 */
    expect(&p, "169.254.169.254", RPOL_METADATA);
    /* other embeddings go through translators: they need their own entry */
    expect(&p, "64:ff9b::127.0.0.1", RPOL_LOOPBACK);
    expect(&p, "2002:7f00:1::1", RPOL_LOOPBACK);

    /* a mapped entry is stored as IPv4 */
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, "::ffff:169.254.169.254", err, sizeof err), 0);
    expect(&p, "169.254.169.254", RPOL_OK);
    expect(&p, "::ffff:169.254.169.254", RPOL_OK);
    expect(&p, "169.254.169.253", RPOL_LINK_LOCAL);

    /* prefix edges */
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, "192.168.1.128/25,fe80::/10", err, sizeof err), 0);
    expect(&p, "192.168.1.127", RPOL_PRIVATE);
    expect(&p, "192.168.1.128", RPOL_OK);
    expect(&p, "192.168.1.255", RPOL_OK);
    expect(&p, "fe80::1", RPOL_OK);
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, "0.0.0.0/0", err, sizeof err), 0);
    expect(&p, "127.0.0.1", RPOL_OK);
    expect(&p, "::1", RPOL_LOOPBACK); /* an IPv4 entry allows no IPv6 */

    /* empty lists add nothing */
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, NULL, err, sizeof err), 0);
    assert_int_equal(rpol_allow(&p, "", err, sizeof err), 0);
    assert_int_equal(rpol_allow(&p, "  ", err, sizeof err), 0);
    assert_int_equal(p.nallow, 0);
}

static void test_allow_list_errors(void **state)
{
    (void)state;
    rpol p;
    char err[128];
    static const char *bad[] = {
        "10.0.0.0/33", "::1/129",     "abc",        "1.2.3.4/",   "1.2.3.4/x",  "1.2.3.4/0032",
        "1.2.3",       "1.2.3.4.5",   ",",          "10.0.0.1,,10.0.0.2",     "10.0.0.1, x",
        "1.2.3.4/-1",  "fe80::1%eth0", "[::1]",     "1.2.3.4 /8",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rpol_init(&p);
        err[0] = '\0';
        if (rpol_allow(&p, bad[i], err, sizeof err) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(p.nallow, 0); /* nothing half-added */
    }
    /* the table is bounded */
    char list[64 * (PARLEY_RELAY_ALLOW_CIDRS_MAX + 2)];
    size_t n = 0;
    for (int i = 0; i <= PARLEY_RELAY_ALLOW_CIDRS_MAX; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s10.0.%d.0/24", i ? "," : "", i);
    rpol_init(&p);
    assert_int_equal(rpol_allow(&p, list, err, sizeof err), -1);
    assert_int_equal(p.nallow, 0);
    *strrchr(list, ',') = '\0';
    assert_int_equal(rpol_allow(&p, list, err, sizeof err), 0);
    assert_int_equal(p.nallow, PARLEY_RELAY_ALLOW_CIDRS_MAX);
    expect(&p, "10.0.63.9", RPOL_OK);
    expect(&p, "10.0.64.9", RPOL_PRIVATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_list),      cmocka_unit_test(test_ipv4_refused),
        cmocka_unit_test(test_ipv4_public),     cmocka_unit_test(test_ipv6_refused),
        cmocka_unit_test(test_embedded_ipv4),   cmocka_unit_test(test_ipv6_public),
        cmocka_unit_test(test_family),          cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
