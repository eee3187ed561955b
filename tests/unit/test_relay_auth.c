/* test_relay_auth.c: the relay's TURN REST credentials: the password and long-term key against
 * values computed independently (Python hmac/hashlib), usernames and expiry, several secrets
 * (rotation), nonces (fresh, stale, forged, bound to the client address) and the 401 rate
 * limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "relay_auth.h"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static struct sockaddr_in client4(const char *ip, int port)
{
    struct sockaddr_in s;
    memset(&s, 0, sizeof s);
    s.sin_family = AF_INET;
    s.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

static void test_password_and_key(void **state)
{
    (void)state;
    char pw[RAUTH_PASSWORD_LEN + 1];
    const char *user = "1795850140:alice";
    assert_int_equal(rauth_password("s3cret", user, strlen(user), pw), 0);
    /* python3: base64(hmac.new(b's3cret', b'1795850140:alice', sha1).digest()) */
    assert_string_equal(pw, "B8U4c679BPYvivYXruJc49PO66E=");
    uint8_t key[STUN_LT_KEY_LEN];
    assert_int_equal(rauth_key(user, strlen(user), "parley", 6, pw, key), 0);
    /* python3: md5(b'1795850140:alice:parley:' + password) */
    static const uint8_t want[STUN_LT_KEY_LEN] = {0xb3, 0x34, 0x50, 0xd0, 0x6e, 0x09,
                                                  0xf7, 0x6f, 0x4c, 0xab, 0x8c, 0x67,
                                                  0xa7, 0x61, 0x8e, 0x00};
    assert_memory_equal(key, want, sizeof want);
    /* over-long inputs are refused, not truncated */
    char big[PARLEY_RELAY_STUN_USERNAME_MAX + 2];
    memset(big, 'a', sizeof big);
    assert_int_equal(rauth_key(big, sizeof big, "parley", 6, pw, key), -1);
}

static void test_username(void **state)
{
    (void)state;
    const char *user;
    size_t ulen;
    const char *u = "1000:alice";
    assert_int_equal(rauth_username(u, strlen(u), 999, &user, &ulen), RAUTH_OK);
    assert_int_equal(ulen, 5);
    assert_memory_equal(user, "alice", 5);
    assert_int_equal(rauth_username(u, strlen(u), 1000, &user, &ulen), RAUTH_OK);
    assert_int_equal(rauth_username(u, strlen(u), 1001, &user, &ulen), RAUTH_EXPIRED);
    /* just an expiry: the whole name is the user */
    assert_int_equal(rauth_username("2000", 4, 1000, &user, &ulen), RAUTH_OK);
    assert_int_equal(ulen, 4);
    assert_int_equal(rauth_username("2000:", 5, 1000, &user, &ulen), RAUTH_OK);
    /* user names may contain ':' themselves */
    assert_int_equal(rauth_username("2000:a:b", 8, 1000, &user, &ulen), RAUTH_OK);
    assert_int_equal(ulen, 3);
    static const char *bad[] = {"", ":alice", "alice", "12a:alice", " 12:alice", "-5:alice",
                                "1234567890123456789:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(rauth_username(bad[i], strlen(bad[i]), 0, &user, &ulen),
                         RAUTH_BAD_USERNAME);
}

static void test_init_errors(void **state)
{
    (void)state;
    rauth a;
    char err[128];
    assert_int_equal(rauth_init(&a, "", "parley", 600, err, sizeof err), -1);
    assert_int_equal(rauth_init(&a, " , ", "parley", 600, err, sizeof err), -1);
    assert_int_equal(rauth_init(&a, NULL, "parley", 600, err, sizeof err), -1);
    assert_int_equal(rauth_init(&a, "x", "", 600, err, sizeof err), -1);
    assert_int_equal(rauth_init(&a, "a,b,c,d,e,f,g,h,i", "parley", 600, err, sizeof err), -1);
    char longsecret[PARLEY_RELAY_SECRET_MAX_BYTES + 2];
    memset(longsecret, 'k', sizeof longsecret - 1);
    longsecret[sizeof longsecret - 1] = '\0';
    assert_int_equal(rauth_init(&a, longsecret, "parley", 600, err, sizeof err), -1);
    assert_int_equal(rauth_init(&a, " new , old ", "parley", 600, err, sizeof err), 0);
    assert_int_equal(a.nsecrets, 2);
    assert_string_equal(a.secrets[0], "new");
    assert_string_equal(a.secrets[1], "old");
    rauth_clear(&a);
    assert_int_equal(a.nsecrets, 0);
}

/* A request signed like a TURN client does with the REST password of secret. */
static size_t signed_request(uint8_t *buf, size_t cap, const char *username, const char *secret,
                             const char *realm)
{
    static const uint8_t tid[STUN_TID_LEN] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    char pw[RAUTH_PASSWORD_LEN + 1];
    uint8_t key[STUN_LT_KEY_LEN];
    assert_int_equal(rauth_password(secret, username, strlen(username), pw), 0);
    assert_int_equal(rauth_key(username, strlen(username), realm, strlen(realm), pw, key), 0);
    stun_builder b;
    stun_build_begin(&b, buf, cap, TURN_ALLOCATE, STUN_REQUEST, tid);
    stun_put_transport(&b, STUN_TRANSPORT_UDP);
    stun_put(&b, STUN_A_USERNAME, username, strlen(username));
    stun_put(&b, STUN_A_REALM, realm, strlen(realm));
    stun_put(&b, STUN_A_NONCE, "n", 1);
    stun_put_integrity(&b, key, sizeof key);
    stun_put_fingerprint(&b);
    return stun_build_end(&b);
}

static void test_verify_rotation(void **state)
{
    (void)state;
    rauth a;
    char err[128];
    assert_int_equal(rauth_init(&a, "new,old", "parley", 600, err, sizeof err), 0);
    uint8_t buf[512], key[STUN_LT_KEY_LEN];
    stun_msg m;
    const char *user = "2000000000:alice";
    const uint64_t now = 1900000000;
    /* either secret is accepted */
    size_t len = signed_request(buf, sizeof buf, user, "new", "parley");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_OK);
    len = signed_request(buf, sizeof buf, user, "old", "parley");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_OK);
    /* the key handed back signs like the client's */
    char pw[RAUTH_PASSWORD_LEN + 1];
    uint8_t want[STUN_LT_KEY_LEN];
    rauth_password("old", user, strlen(user), pw);
    rauth_key(user, strlen(user), "parley", 6, pw, want);
    assert_memory_equal(key, want, sizeof want);
    /* a retired secret, another realm, an expired name */
    len = signed_request(buf, sizeof buf, user, "older", "parley");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_BAD_INTEGRITY);
    len = signed_request(buf, sizeof buf, user, "new", "elsewhere");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_BAD_INTEGRITY);
    len = signed_request(buf, sizeof buf, "1800000000:alice", "new", "parley");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_EXPIRED);
    len = signed_request(buf, sizeof buf, "alice", "new", "parley");
    assert_int_equal(stun_parse(&m, buf, len), STUN_OK);
    assert_int_equal(rauth_verify(&a, &m, now, key), RAUTH_BAD_USERNAME);
    rauth_clear(&a);
}

static void test_nonce(void **state)
{
    (void)state;
    rauth a;
    char err[128];
    assert_int_equal(rauth_init(&a, "s", "parley", 600, err, sizeof err), 0);
    struct sockaddr_in c = client4("198.51.100.1", 5000), d = client4("198.51.100.1", 5001),
                       e = client4("198.51.100.2", 5000);
    char n[RAUTH_NONCE_LEN + 1];
    rauth_nonce(&a, (struct sockaddr *)&c, 1000, n);
    assert_int_equal(strlen(n), RAUTH_NONCE_LEN);
    const struct sockaddr *cs = (struct sockaddr *)&c;
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN, cs, 1000), RAUTH_OK);
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN, cs, 1600), RAUTH_OK);
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN, cs, 1601), RAUTH_STALE_NONCE);
    /* bound to the client's transport address */
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN, (struct sockaddr *)&d, 1000),
                     RAUTH_BAD_NONCE);
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN, (struct sockaddr *)&e, 1000),
                     RAUTH_BAD_NONCE);
    /* tampering with the expiry or the MAC, wrong lengths, not hex */
    char t[RAUTH_NONCE_LEN + 1];
    memcpy(t, n, sizeof t);
    t[15] = t[15] == 'f' ? 'e' : 'f';
    assert_int_equal(rauth_nonce_check(&a, t, RAUTH_NONCE_LEN, cs, 1000), RAUTH_BAD_NONCE);
    memcpy(t, n, sizeof t);
    t[40] = t[40] == '0' ? '1' : '0';
    assert_int_equal(rauth_nonce_check(&a, t, RAUTH_NONCE_LEN, cs, 1000), RAUTH_BAD_NONCE);
    assert_int_equal(rauth_nonce_check(&a, n, RAUTH_NONCE_LEN - 1, cs, 1000), RAUTH_BAD_NONCE);
    assert_int_equal(rauth_nonce_check(&a, "", 0, cs, 1000), RAUTH_BAD_NONCE);
    memset(t, 'z', RAUTH_NONCE_LEN);
    assert_int_equal(rauth_nonce_check(&a, t, RAUTH_NONCE_LEN, cs, 1000), RAUTH_BAD_NONCE);
    /* another process (another key) does not accept it */
    rauth b;
    assert_int_equal(rauth_init(&b, "s", "parley", 600, err, sizeof err), 0);
    assert_int_equal(rauth_nonce_check(&b, n, RAUTH_NONCE_LEN, cs, 1000), RAUTH_BAD_NONCE);
    rauth_clear(&a);
    rauth_clear(&b);
}

static void test_reject_rate(void **state)
{
    (void)state;
    static rauth a; /* big: not on the stack */
    char err[128];
    assert_int_equal(rauth_init(&a, "s", "parley", 600, err, sizeof err), 0);
    struct sockaddr_in c = client4("203.0.113.5", 1), c2 = client4("203.0.113.5", 2);
    int allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += rauth_reject_allowed(&a, (struct sockaddr *)&c, 100);
    assert_int_equal(allowed, PARLEY_RELAY_401_BURST);
    /* the port does not matter: spoofers vary it */
    assert_int_equal(rauth_reject_allowed(&a, (struct sockaddr *)&c2, 100), 0);
    /* one second refills PARLEY_RELAY_401_RATE_PER_S */
    allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += rauth_reject_allowed(&a, (struct sockaddr *)&c, 101);
    assert_int_equal(allowed, PARLEY_RELAY_401_RATE_PER_S);
    /* a long pause refills up to the burst, not beyond */
    allowed = 0;
    for (int i = 0; i < 100; i++)
        allowed += rauth_reject_allowed(&a, (struct sockaddr *)&c, 100000);
    assert_int_equal(allowed, PARLEY_RELAY_401_BURST);
    rauth_clear(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_and_key), cmocka_unit_test(test_username),
        cmocka_unit_test(test_init_errors),      cmocka_unit_test(test_verify_rotation),
        cmocka_unit_test(test_nonce),            cmocka_unit_test(test_reject_rate),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
