/* test_stun.c: the STUN/TURN codec of parley-relay: RFC 5769 test vectors (MESSAGE-INTEGRITY
 * short- and long-term, FINGERPRINT, XOR-MAPPED-ADDRESS v4 and v6), round trips of every
 * attribute the relay uses, malformed and truncated messages, wrong integrity, wrong
 * fingerprint, ChannelData and stream framing. Runs under ASan: no case may read out of
 * bounds, so truncations are parsed from exact-size heap copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "relay_auth.h"
#include "stun.h"

/* RFC 5769 2.1: Binding request, short-term credentials, FINGERPRINT */
static const uint8_t rfc_req[] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74,
    0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e,
    0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
    0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
    0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e,
    0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5,
    0x7a, 0x3b, 0xcf,
};
/* RFC 5769 2.2: IPv4 Binding success, 192.0.2.1:32853 */
static const uint8_t rfc_resp4[] = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
    0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
    0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
    0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
    0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
};
/* RFC 5769 2.3: IPv6 Binding success, [2001:db8:1234:5678:11:2233:4455:6677]:32853 */
static const uint8_t rfc_resp6[] = {
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
    0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
    0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
    0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
    0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
    0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
    0x0b, 0x4c,
};
/* RFC 5769 2.4: Binding request, long-term credentials (username "マトリックス", realm
 * "example.org", password "TheMatrIX" after SASLprep) */
static const uint8_t rfc_lt[] = {
    0x00, 0x01, 0x00, 0x60, 0x21, 0x12, 0xa4, 0x42, 0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72,
    0xc0, 0x29, 0xda, 0x41, 0x2e, 0x00, 0x06, 0x00, 0x12, 0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88,
    0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83, 0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00, 0x00,
    0x15, 0x00, 0x1c, 0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
    0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79, 0x36, 0x34, 0x73,
    0x41, 0x00, 0x14, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72,
    0x67, 0x00, 0x00, 0x08, 0x00, 0x14, 0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02,
    0xb8, 0xe0, 0x71, 0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66,
};

static const char rfc_pw[] = "VOkJxbRl1RmTxUk/WvJxBt";

/* Parses an exact-size heap copy, so ASan catches any read past the end. */
static int parse_copy(stun_msg *m, const uint8_t *src, size_t len, uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    if (len)
        memcpy(*copy, src, len);
    return stun_parse(m, *copy, len);
}

static void test_rfc5769_request(void **state)
{
    (void)state;
    stun_msg m;
    uint8_t *c;
    assert_int_equal(parse_copy(&m, rfc_req, sizeof rfc_req, &c), STUN_OK);
    assert_int_equal(m.method, STUN_BINDING);
    assert_int_equal(m.cls, STUN_REQUEST);
    assert_true(m.has_fingerprint);
    assert_int_equal(m.nunknown, 0); /* PRIORITY known, ICE-CONTROLLED optional */
    assert_memory_equal(m.tid, rfc_req + 8, STUN_TID_LEN);
    const stun_attr *u = stun_find(&m, STUN_A_USERNAME);
    assert_non_null(u);
    assert_int_equal(u->len, 9);
    assert_memory_equal(u->val, "evtj:h6vY", 9);
    const stun_attr *sw = stun_find(&m, STUN_A_SOFTWARE);
    assert_non_null(sw);
    assert_memory_equal(sw->val, "STUN test client", 16);
    assert_int_equal(stun_check_integrity(&m, (const uint8_t *)rfc_pw, strlen(rfc_pw)), STUN_OK);
    assert_int_equal(stun_check_integrity(&m, (const uint8_t *)"VOkJxbRl1RmTxUk/WvJxBu",
                                          strlen(rfc_pw)),
                     STUN_EINTEGRITY);
    assert_int_equal(stun_check_integrity(&m, (const uint8_t *)"", 0), STUN_EINTEGRITY);
    free(c);
}

static void test_rfc5769_responses(void **state)
{
    (void)state;
    stun_msg m;
    uint8_t *c;
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN];

    assert_int_equal(parse_copy(&m, rfc_resp4, sizeof rfc_resp4, &c), STUN_OK);
    assert_int_equal(m.cls, STUN_SUCCESS);
    assert_int_equal(m.method, STUN_BINDING);
    assert_true(m.has_fingerprint);
    const stun_attr *x = stun_find(&m, STUN_A_XOR_MAPPED_ADDRESS);
    assert_non_null(x);
    assert_int_equal(stun_get_addr(&m, x, 1, &ss), STUN_OK);
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(s4->sin_family, AF_INET);
    assert_int_equal(ntohs(s4->sin_port), 32853);
    inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.1");
    assert_int_equal(stun_check_integrity(&m, (const uint8_t *)rfc_pw, strlen(rfc_pw)), STUN_OK);
    free(c);

    assert_int_equal(parse_copy(&m, rfc_resp6, sizeof rfc_resp6, &c), STUN_OK);
    x = stun_find(&m, STUN_A_XOR_MAPPED_ADDRESS);
    assert_non_null(x);
    assert_int_equal(stun_get_addr(&m, x, 1, &ss), STUN_OK);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(s6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(s6->sin6_port), 32853);
    inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    assert_string_equal(ip, "2001:db8:1234:5678:11:2233:4455:6677");
    assert_int_equal(stun_check_integrity(&m, (const uint8_t *)rfc_pw, strlen(rfc_pw)), STUN_OK);
    free(c);
}

static void test_rfc5769_long_term(void **state)
{
    (void)state;
    stun_msg m;
    uint8_t *c;
    assert_int_equal(parse_copy(&m, rfc_lt, sizeof rfc_lt, &c), STUN_OK);
    assert_false(m.has_fingerprint);
    const stun_attr *u = stun_find(&m, STUN_A_USERNAME), *r = stun_find(&m, STUN_A_REALM),
                    *n = stun_find(&m, STUN_A_NONCE);
    assert_non_null(u);
    assert_non_null(r);
    assert_non_null(n);
    assert_int_equal(r->len, 11);
    assert_memory_equal(r->val, "example.org", 11);
    assert_int_equal(n->len, 28);
    assert_memory_equal(n->val, "f//499k954d6OL34oL9FSTvy64sA", 28);
    uint8_t key[STUN_LT_KEY_LEN];
    assert_int_equal(rauth_key((const char *)u->val, u->len, (const char *)r->val, r->len,
                               "TheMatrIX", key),
                     0);
    assert_int_equal(stun_check_integrity(&m, key, sizeof key), STUN_OK);
    assert_int_equal(rauth_key((const char *)u->val, u->len, (const char *)r->val, r->len,
                               "TheMatrix", key),
                     0);
    assert_int_equal(stun_check_integrity(&m, key, sizeof key), STUN_EINTEGRITY);
    free(c);
}

/* The builder's MESSAGE-INTEGRITY and FINGERPRINT over the vectors' own prefix give the
 * vectors' bytes. */
static void test_builder_matches_vectors(void **state)
{
    (void)state;
    const struct {
        const uint8_t *msg;
        size_t len;
    } v[] = {
        {rfc_req, sizeof rfc_req}, {rfc_resp4, sizeof rfc_resp4}, {rfc_resp6, sizeof rfc_resp6}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t mi = v[i].len - 8 - 24; /* MESSAGE-INTEGRITY, then FINGERPRINT, end the message */
        uint8_t buf[256];
        memcpy(buf, v[i].msg, mi);
        stun_builder b = {buf, sizeof buf, mi, 0};
        assert_int_equal(stun_put_integrity(&b, (const uint8_t *)rfc_pw, strlen(rfc_pw)), STUN_OK);
        assert_int_equal(stun_put_fingerprint(&b), STUN_OK);
        assert_int_equal(stun_build_end(&b), v[i].len);
        assert_memory_equal(buf, v[i].msg, v[i].len);
    }
}

static void test_type_encoding(void **state)
{
    (void)state;
    /* known encodings: Binding request 0x0001, Allocate error 0x0113, Data indication 0x0017,
     * ChannelBind success 0x0109 */
    assert_int_equal(stun_msg_type(STUN_BINDING, STUN_REQUEST), 0x0001);
    assert_int_equal(stun_msg_type(TURN_ALLOCATE, STUN_ERROR_RESPONSE), 0x0113);
    assert_int_equal(stun_msg_type(TURN_DATA, STUN_INDICATION), 0x0017);
    assert_int_equal(stun_msg_type(TURN_CHANNEL_BIND, STUN_SUCCESS), 0x0109);
    for (uint16_t method = 0; method < 0x1000; method += 7) {
        for (int cls = 0; cls < 4; cls++) {
            uint16_t mm;
            stun_class cc;
            uint16_t t = stun_msg_type(method, (stun_class)cls);
            assert_int_equal(t & 0xC000, 0);
            stun_split_type(t, &mm, &cc);
            assert_int_equal(mm, method);
            assert_int_equal(cc, cls);
        }
    }
}

static void sa4(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s = (struct sockaddr_in *)ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

static void sa6(struct sockaddr_storage *ss, const char *ip, int port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
}

static const uint8_t tid[STUN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t key16[STUN_LT_KEY_LEN] = {0xb3, 0x34, 0x50, 0xd0, 0x6e, 0x09, 0xf7, 0x6f,
                                               0x4c, 0xab, 0x8c, 0x67, 0xa7, 0x61, 0x8e, 0x00};

/* Builds a message with every attribute the relay reads or writes; returns its length. */
static size_t build_all(uint8_t *buf, size_t cap, int with_mi, int with_fp)
{
    struct sockaddr_storage a4, a6, p4, r6;
    sa4(&a4, "192.0.2.1", 32853);
    sa6(&a6, "2001:db8::1:2", 4242);
    sa4(&p4, "203.0.113.9", 1);
    sa6(&r6, "2001:db8:ffff::ffff", 65535);
    stun_builder b;
    stun_build_begin(&b, buf, cap, TURN_ALLOCATE, STUN_REQUEST, tid);
    stun_put_addr(&b, STUN_A_MAPPED_ADDRESS, 0, (struct sockaddr *)&a4);
    stun_put_addr(&b, STUN_A_XOR_MAPPED_ADDRESS, 1, (struct sockaddr *)&a6);
    stun_put(&b, STUN_A_USERNAME, "1795850140:alice", 16);
    stun_put(&b, STUN_A_REALM, "parley", 6);
    stun_put(&b, STUN_A_NONCE, "abcdefg", 7);
    stun_put_error(&b, 438, "Stale Nonce");
    uint16_t unk[3] = {0x0031, 0x7fff, 0x0002};
    stun_put_unknown(&b, unk, 3);
    stun_put_channel(&b, 0x4001);
    stun_put_u32(&b, STUN_A_LIFETIME, 3600);
    stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (struct sockaddr *)&p4);
    stun_put(&b, STUN_A_DATA, "hello", 5);
    stun_put_addr(&b, STUN_A_XOR_RELAYED_ADDRESS, 1, (struct sockaddr *)&r6);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put_even_port(&b, 1);
    uint8_t token[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    stun_put(&b, STUN_A_RESERVATION_TOKEN, token, 8);
    stun_put(&b, STUN_A_DONT_FRAGMENT, NULL, 0);
    stun_put_family(&b, STUN_FAMILY_IPV6);
    if (with_mi)
        stun_put_integrity(&b, key16, sizeof key16);
    if (with_fp)
        stun_put_fingerprint(&b);
    return stun_build_end(&b);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_all(buf, sizeof buf, 1, 1);
    assert_true(len > 0);
    assert_int_equal(len % 4, 0);
    stun_msg m;
    uint8_t *c;
    assert_int_equal(parse_copy(&m, buf, len, &c), STUN_OK);
    assert_int_equal(m.method, TURN_ALLOCATE);
    assert_int_equal(m.cls, STUN_REQUEST);
    assert_memory_equal(m.tid, tid, STUN_TID_LEN);
    assert_true(m.has_fingerprint);
    assert_true(m.integrity_off > 0);
    assert_int_equal(m.nunknown, 0);
    assert_int_equal(stun_check_integrity(&m, key16, sizeof key16), STUN_OK);

    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN];
    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_MAPPED_ADDRESS), 0, &ss), STUN_OK);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "192.0.2.1");
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 32853);
    /* the plain MAPPED-ADDRESS is stored unxored */
    const stun_attr *ma = stun_find(&m, STUN_A_MAPPED_ADDRESS);
    assert_int_equal(ma->val[4], 192);

    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_XOR_MAPPED_ADDRESS), 1, &ss), STUN_OK);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    assert_string_equal(ip, "2001:db8::1:2");
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 4242);

    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_XOR_PEER_ADDRESS), 1, &ss), STUN_OK);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    assert_string_equal(ip, "203.0.113.9");
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 1);

    assert_int_equal(stun_get_addr(&m, stun_find(&m, STUN_A_XOR_RELAYED_ADDRESS), 1, &ss),
                     STUN_OK);
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    assert_string_equal(ip, "2001:db8:ffff::ffff");
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);

    const stun_attr *a = stun_find(&m, STUN_A_USERNAME);
    assert_int_equal(a->len, 16);
    assert_memory_equal(a->val, "1795850140:alice", 16);
    a = stun_find(&m, STUN_A_NONCE);
    assert_int_equal(a->len, 7);
    assert_memory_equal(a->val, "abcdefg", 7);

    int code;
    const char *reason;
    size_t rlen;
    assert_int_equal(stun_get_error(stun_find(&m, STUN_A_ERROR_CODE), &code, &reason, &rlen),
                     STUN_OK);
    assert_int_equal(code, 438);
    assert_int_equal(rlen, 11);
    assert_memory_equal(reason, "Stale Nonce", 11);

    uint16_t types[8];
    size_t n;
    assert_int_equal(stun_get_unknown(stun_find(&m, STUN_A_UNKNOWN_ATTRIBUTES), types, 8, &n),
                     STUN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(types[0], 0x0031);
    assert_int_equal(types[1], 0x7fff);
    assert_int_equal(types[2], 0x0002);

    uint16_t ch;
    assert_int_equal(stun_get_channel(stun_find(&m, STUN_A_CHANNEL_NUMBER), &ch), STUN_OK);
    assert_int_equal(ch, 0x4001);
    uint32_t life;
    assert_int_equal(stun_get_u32(stun_find(&m, STUN_A_LIFETIME), &life), STUN_OK);
    assert_int_equal(life, 3600);
    a = stun_find(&m, STUN_A_DATA);
    assert_int_equal(a->len, 5);
    assert_memory_equal(a->val, "hello", 5);
    uint8_t proto, fam;
    assert_int_equal(stun_get_transport(stun_find(&m, STUN_A_REQUESTED_TRANSPORT), &proto),
                     STUN_OK);
    assert_int_equal(proto, 17);
    int rn;
    assert_int_equal(stun_get_even_port(stun_find(&m, STUN_A_EVEN_PORT), &rn), STUN_OK);
    assert_int_equal(rn, 1);
    uint8_t token[8];
    assert_int_equal(stun_get_token(stun_find(&m, STUN_A_RESERVATION_TOKEN), token), STUN_OK);
    assert_int_equal(token[0], 8);
    assert_int_equal(token[7], 1);
    a = stun_find(&m, STUN_A_DONT_FRAGMENT);
    assert_non_null(a);
    assert_int_equal(a->len, 0);
    assert_int_equal(stun_get_family(stun_find(&m, STUN_A_REQUESTED_ADDRESS_FAMILY), &fam),
                     STUN_OK);
    assert_int_equal(fam, STUN_FAMILY_IPV6);
    assert_null(stun_find(&m, STUN_A_SOFTWARE));
    free(c);

    /* padding is zero, so the same input builds the same bytes */
    uint8_t again[1024];
    assert_int_equal(build_all(again, sizeof again, 1, 1), len);
    assert_memory_equal(again, buf, len);
}

static void test_builder_limits(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t full = build_all(buf, sizeof buf, 1, 1);
    /* every capacity short of the full size fails cleanly, and never writes past cap */
    for (size_t cap = 0; cap < full; cap++) {
        uint8_t *small = malloc(cap ? cap : 1);
        assert_int_equal(build_all(small, cap, 1, 1), 0);
        free(small);
    }
    uint8_t *exact = malloc(full);
    assert_int_equal(build_all(exact, full, 1, 1), full);
    free(exact);
    /* bad input to encoders is an error, and sticky */
    stun_builder b;
    stun_build_begin(&b, buf, sizeof buf, STUN_BINDING, STUN_SUCCESS, tid);
    assert_int_equal(stun_put_error(&b, 200, "no"), STUN_EMALFORMED);
    assert_int_equal(stun_put_u32(&b, STUN_A_LIFETIME, 1), STUN_EMALFORMED);
    assert_int_equal(stun_build_end(&b), 0);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    stun_build_begin(&b, buf, sizeof buf, STUN_BINDING, STUN_SUCCESS, tid);
    assert_int_equal(stun_put_addr(&b, STUN_A_XOR_MAPPED_ADDRESS, 1, &sa), STUN_EMALFORMED);
    assert_int_equal(stun_build_end(&b), 0);
}

static void test_wrong_integrity_and_fingerprint(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_all(buf, sizeof buf, 1, 1);
    stun_msg m;
    uint8_t *c;
    /* a flipped bit anywhere before FINGERPRINT breaks the fingerprint */
    for (size_t i = 0; i < len - 8; i++) {
        if (i >= 2 && i < 4)
            continue; /* the length field: a different error, tested below */
        buf[i] ^= 0x10;
        int rc = parse_copy(&m, buf, len, &c);
        if (rc == STUN_OK)
            fail_msg("flipped byte %zu of %zu parsed", i, len);
        free(c);
        buf[i] ^= 0x10;
    }
    /* the fingerprint value itself */
    buf[len - 1] ^= 1;
    assert_int_equal(parse_copy(&m, buf, len, &c), STUN_EFINGERPRINT);
    free(c);
    buf[len - 1] ^= 1;

    /* without FINGERPRINT, a flipped byte before MESSAGE-INTEGRITY parses but fails the check */
    len = build_all(buf, sizeof buf, 1, 0);
    assert_int_equal(parse_copy(&m, buf, len, &c), STUN_OK);
    assert_int_equal(stun_check_integrity(&m, key16, sizeof key16), STUN_OK);
    uint8_t wrong[STUN_LT_KEY_LEN];
    memcpy(wrong, key16, sizeof wrong);
    wrong[0] ^= 1;
    assert_int_equal(stun_check_integrity(&m, wrong, sizeof wrong), STUN_EINTEGRITY);
    free(c);
    size_t mi = len - 24;
    for (size_t i = 24; i < len; i += 5) { /* past the header: USERNAME .. the HMAC itself */
        buf[i] ^= 0x01;
        int rc = parse_copy(&m, buf, len, &c);
        if (rc == STUN_OK) {
            int ic = stun_check_integrity(&m, key16, sizeof key16);
            /* flipping MESSAGE-INTEGRITY's own type turns it into another attribute */
            assert_true(ic == STUN_EINTEGRITY || (ic == STUN_EABSENT && i >= mi && i < mi + 4));
        } else
            assert_true(i < mi + 4); /* a flipped length may break the structure instead */
        free(c);
        buf[i] ^= 0x01;
    }
    /* no MESSAGE-INTEGRITY at all */
    len = build_all(buf, sizeof buf, 0, 1);
    assert_int_equal(parse_copy(&m, buf, len, &c), STUN_OK);
    assert_int_equal(stun_check_integrity(&m, key16, sizeof key16), STUN_EABSENT);
    free(c);
}

static void test_truncated(void **state)
{
    (void)state;
    const struct {
        const uint8_t *msg;
        size_t len;
    } v[] = {{rfc_req, sizeof rfc_req}, {rfc_resp6, sizeof rfc_resp6}, {rfc_lt, sizeof rfc_lt}};
    stun_msg m;
    uint8_t *c;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        for (size_t n = 0; n < v[i].len; n++) {
            int rc = parse_copy(&m, v[i].msg, n, &c);
            assert_true(rc == STUN_ETRUNC || rc == STUN_EMALFORMED);
            free(c);
        }
    }
    /* the header claims less than there is: trailing bytes are not STUN */
    uint8_t buf[1024];
    size_t len = build_all(buf, sizeof buf, 1, 1);
    uint8_t *big = malloc(len + 4);
    memcpy(big, buf, len);
    memset(big + len, 0, 4);
    assert_int_equal(stun_parse(&m, big, len + 4), STUN_EMALFORMED);
    free(big);
}

/* Sets the header length of msg to its real body length. */
static void fix_len(uint8_t *msg, size_t len)
{
    msg[2] = (uint8_t)((len - STUN_HEADER_LEN) >> 8);
    msg[3] = (uint8_t)(len - STUN_HEADER_LEN);
}

static void test_malformed(void **state)
{
    (void)state;
    stun_msg m;
    uint8_t *c;
    uint8_t msg[256];

    /* top bits, magic cookie */
    memcpy(msg, rfc_resp4, sizeof rfc_resp4);
    msg[0] |= 0x80;
    assert_int_equal(parse_copy(&m, msg, sizeof rfc_resp4, &c), STUN_ENOTSTUN);
    free(c);
    memcpy(msg, rfc_resp4, sizeof rfc_resp4);
    msg[4] = 0x22;
    assert_int_equal(parse_copy(&m, msg, sizeof rfc_resp4, &c), STUN_ENOTSTUN);
    free(c);

    /* length field not a multiple of 4 */
    memcpy(msg, rfc_lt, sizeof rfc_lt);
    msg[3] = 0x5f;
    assert_true(parse_copy(&m, msg, sizeof rfc_lt, &c) < 0);
    free(c);

    /* an attribute whose length runs past the end */
    uint8_t hdr[STUN_HEADER_LEN];
    stun_builder b;
    stun_build_begin(&b, msg, sizeof msg, STUN_BINDING, STUN_REQUEST, tid);
    stun_put(&b, STUN_A_USERNAME, "abcd", 4);
    size_t len = stun_build_end(&b);
    memcpy(hdr, msg, sizeof hdr);
    msg[STUN_HEADER_LEN + 3] = 5; /* 5 -> padded 8 > 4 available */
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_ETRUNC);
    free(c);
    msg[STUN_HEADER_LEN + 2] = 0xff;
    msg[STUN_HEADER_LEN + 3] = 0xff;
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_ETRUNC);
    free(c);

    /* MESSAGE-INTEGRITY and FINGERPRINT of the wrong size */
    stun_build_begin(&b, msg, sizeof msg, STUN_BINDING, STUN_REQUEST, tid);
    stun_put(&b, STUN_A_MESSAGE_INTEGRITY, "short", 5);
    len = stun_build_end(&b);
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_EMALFORMED);
    free(c);
    stun_build_begin(&b, msg, sizeof msg, STUN_BINDING, STUN_REQUEST, tid);
    stun_put(&b, STUN_A_FINGERPRINT, "12345678", 8);
    len = stun_build_end(&b);
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_EMALFORMED);
    free(c);

    /* anything after FINGERPRINT */
    stun_build_begin(&b, msg, sizeof msg, STUN_BINDING, STUN_REQUEST, tid);
    stun_put_fingerprint(&b);
    stun_put(&b, STUN_A_SOFTWARE, "x", 1);
    len = stun_build_end(&b);
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_EMALFORMED);
    free(c);

    /* attributes after MESSAGE-INTEGRITY are ignored (RFC 8489 14.5), FINGERPRINT still read */
    stun_build_begin(&b, msg, sizeof msg, STUN_BINDING, STUN_REQUEST, tid);
    stun_put(&b, STUN_A_USERNAME, "u", 1);
    stun_put_integrity(&b, key16, sizeof key16);
    stun_put(&b, STUN_A_LIFETIME, "\0\0\0\1", 4);
    stun_put(&b, 0x0031, "z", 1); /* unknown but after MI: not reported */
    stun_put_fingerprint(&b);
    len = stun_build_end(&b);
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_OK);
    assert_null(stun_find(&m, STUN_A_LIFETIME));
    assert_int_equal(m.nunknown, 0);
    assert_true(m.has_fingerprint);
    /* the HMAC was computed before the later attributes: still valid */
    assert_int_equal(stun_check_integrity(&m, key16, sizeof key16), STUN_OK);
    free(c);

    /* unknown comprehension-required attributes are reported, optional ones are not */
    stun_build_begin(&b, msg, sizeof msg, TURN_ALLOCATE, STUN_REQUEST, tid);
    stun_put(&b, 0x0031, "a", 1);
    stun_put(&b, 0xC001, "b", 1);
    stun_put(&b, 0x7777, NULL, 0);
    len = stun_build_end(&b);
    assert_int_equal(parse_copy(&m, msg, len, &c), STUN_OK);
    assert_int_equal(m.nunknown, 2);
    assert_int_equal(m.unknown[0], 0x0031);
    assert_int_equal(m.unknown[1], 0x7777);
    free(c);

    /* more attributes than the table holds */
    uint8_t many[STUN_HEADER_LEN + 4 * (PARLEY_RELAY_STUN_MAX_ATTRS + 1)];
    stun_build_begin(&b, many, sizeof many, STUN_BINDING, STUN_REQUEST, tid);
    for (int i = 0; i <= PARLEY_RELAY_STUN_MAX_ATTRS; i++)
        stun_put(&b, STUN_A_DONT_FRAGMENT, NULL, 0);
    len = stun_build_end(&b);
    assert_int_equal(len, sizeof many);
    assert_int_equal(parse_copy(&m, many, len, &c), STUN_ETOOMANY);
    free(c);
    fix_len(many, STUN_HEADER_LEN + 4 * PARLEY_RELAY_STUN_MAX_ATTRS);
    assert_int_equal(parse_copy(&m, many, STUN_HEADER_LEN + 4 * PARLEY_RELAY_STUN_MAX_ATTRS, &c), STUN_OK);
    free(c);
}

/* Attribute decoders refuse values of the wrong shape. */
static void test_bad_values(void **state)
{
    (void)state;
    stun_msg m;
    memset(&m, 0, sizeof m);
    memcpy(m.tid, tid, sizeof tid);
    struct sockaddr_storage ss;
    uint8_t v[24] = {0};
    stun_attr a = {STUN_A_XOR_PEER_ADDRESS, 8, v};
    v[1] = 3; /* family */
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED);
    v[1] = STUN_FAMILY_IPV4;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_OK);
    a.len = 20;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED); /* v4 with v6 length */
    v[1] = STUN_FAMILY_IPV6;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_OK);
    a.len = 8;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED);
    a.len = 3;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED);
    a.len = 0;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED);
    v[0] = 1; /* first byte must be zero */
    a.len = 8;
    v[1] = STUN_FAMILY_IPV4;
    assert_int_equal(stun_get_addr(&m, &a, 1, &ss), STUN_EMALFORMED);
    v[0] = 0;

    uint32_t u32;
    uint16_t u16;
    uint8_t u8;
    int i;
    stun_attr s = {STUN_A_LIFETIME, 3, v};
    assert_int_equal(stun_get_u32(&s, &u32), STUN_EMALFORMED);
    assert_int_equal(stun_get_channel(&s, &u16), STUN_EMALFORMED);
    assert_int_equal(stun_get_transport(&s, &u8), STUN_EMALFORMED);
    assert_int_equal(stun_get_family(&s, &u8), STUN_EMALFORMED);
    assert_int_equal(stun_get_even_port(&s, &i), STUN_EMALFORMED);
    assert_int_equal(stun_get_token(&s, v), STUN_EMALFORMED);
    s.len = 5;
    assert_int_equal(stun_get_u32(&s, &u32), STUN_EMALFORMED);

    int code;
    const char *reason;
    size_t rlen;
    stun_attr e = {STUN_A_ERROR_CODE, 3, v};
    assert_int_equal(stun_get_error(&e, &code, &reason, &rlen), STUN_EMALFORMED);
    e.len = 4;
    v[2] = 2; /* class 2 is not an error */
    v[3] = 0;
    assert_int_equal(stun_get_error(&e, &code, &reason, &rlen), STUN_EMALFORMED);
    v[2] = 4;
    v[3] = 100; /* number over 99 */
    assert_int_equal(stun_get_error(&e, &code, &reason, &rlen), STUN_EMALFORMED);
    v[3] = 1;
    assert_int_equal(stun_get_error(&e, &code, &reason, &rlen), STUN_OK);
    assert_int_equal(code, 401);
    assert_int_equal(rlen, 0);

    uint16_t types[2];
    size_t n;
    stun_attr u = {STUN_A_UNKNOWN_ATTRIBUTES, 3, v};
    assert_int_equal(stun_get_unknown(&u, types, 2, &n), STUN_EMALFORMED);
    u.len = 6; /* three types into room for two: cut, not overflowed */
    assert_int_equal(stun_get_unknown(&u, types, 2, &n), STUN_OK);
    assert_int_equal(n, 2);
}

/* Random corruption of a valid message never crashes or reads out of bounds. */
static void test_corruption(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = build_all(buf, sizeof buf, 1, 0);
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *c = malloc(len);
        memcpy(c, buf, len);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            c[at] = (uint8_t)(seed >> 16);
        }
        seed = seed * 1103515245u + 12345u;
        size_t n = (iter & 1) ? len : (seed >> 8) % (len + 1);
        stun_msg m;
        if (stun_parse(&m, c, n) == STUN_OK) {
            struct sockaddr_storage ss;
            for (size_t i = 0; i < m.nattrs; i++) {
                stun_get_addr(&m, &m.attrs[i], 1, &ss);
                uint32_t u;
                stun_get_u32(&m.attrs[i], &u);
                int code;
                const char *r;
                size_t rl;
                stun_get_error(&m.attrs[i], &code, &r, &rl);
            }
            stun_check_integrity(&m, key16, sizeof key16);
        }
        free(c);
    }
}

static void test_channel_data(void **state)
{
    (void)state;
    uint8_t buf[16] = {0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    uint16_t ch;
    const uint8_t *data;
    size_t dlen;
    /* unpadded (UDP) and padded */
    assert_int_equal(stun_chdata_parse(buf, 9, &ch, &data, &dlen), STUN_OK);
    assert_int_equal(ch, 0x4001);
    assert_int_equal(dlen, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(stun_chdata_parse(buf, 12, &ch, &data, &dlen), STUN_OK);
    assert_int_equal(dlen, 5);
    /* more than padding after the data */
    assert_int_equal(stun_chdata_parse(buf, 13, &ch, &data, &dlen), STUN_EMALFORMED);
    /* shorter than its length */
    for (size_t n = 0; n < 9; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, buf, n);
        assert_true(stun_chdata_parse(c, n, &ch, &data, &dlen) < 0);
        free(c);
    }
    /* not a channel number */
    buf[0] = 0x80;
    assert_int_equal(stun_chdata_parse(buf, 9, &ch, &data, &dlen), STUN_ENOTSTUN);
    buf[0] = 0x00;
    assert_int_equal(stun_chdata_parse(buf, 9, &ch, &data, &dlen), STUN_ENOTSTUN);
    /* zero-length data is legal */
    uint8_t empty[4];
    stun_chdata_header(empty, 0x7fff, 0);
    assert_int_equal(stun_chdata_parse(empty, 4, &ch, &data, &dlen), STUN_OK);
    assert_int_equal(ch, 0x7fff);
    assert_int_equal(dlen, 0);
}

static void test_frame_len(void **state)
{
    (void)state;
    assert_int_equal(stun_frame_len(rfc_req, 0), 0);
    assert_int_equal(stun_frame_len(rfc_req, 3), 0);
    assert_int_equal(stun_frame_len(rfc_req, 4), sizeof rfc_req);
    assert_int_equal(stun_frame_len(rfc_req, sizeof rfc_req), sizeof rfc_req);
    uint8_t ch[4] = {0x40, 0x00, 0x00, 0x05};
    assert_int_equal(stun_frame_len(ch, 4), 12); /* padded to 4 on streams */
    uint8_t bad[4] = {0xC0, 0, 0, 0};
    assert_int_equal(stun_frame_len(bad, 4), STUN_ENOTSTUN);
    assert_int_equal(stun_frame_len(bad, 1), STUN_ENOTSTUN);
    uint8_t odd[4] = {0x00, 0x01, 0x00, 0x05};
    assert_int_equal(stun_frame_len(odd, 4), STUN_ENOTSTUN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5769_request),
        cmocka_unit_test(test_rfc5769_responses),
        cmocka_unit_test(test_rfc5769_long_term),
        cmocka_unit_test(test_builder_matches_vectors),
        cmocka_unit_test(test_type_encoding),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_builder_limits),
        cmocka_unit_test(test_wrong_integrity_and_fingerprint),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_channel_data),
        cmocka_unit_test(test_frame_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
