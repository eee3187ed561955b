/* test_gw_turn.c: the gateway's TURN credentials (gw_turn.h): turn_uris parsing and checks, the
 * secret from config or from a file (trimmed, one secret, not a list), URIs and secret only
 * together, the TTL bounds, and minting: username "EXPIRY:ACCOUNT" and the password against a
 * value computed independently (Python hmac), accepted by the relay's own checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw_turn.h"
#include "relay_auth.h"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static int init(gw_turn *t, const char *uris, const char *secret, const char *file,
                long long ttl)
{
    char err[256];
    err[0] = '\0';
    int rc = gw_turn_init(t, uris, secret, file, ttl, err, sizeof err);
    if (rc != 0)
        assert_true(err[0] != '\0'); /* a failure always says why */
    return rc;
}

/* a temporary file holding text; the caller unlinks path */
static void temp_file(char path[64], const char *text)
{
    snprintf(path, 64, "/tmp/test_gw_turn.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static void test_not_configured(void **state)
{
    (void)state;
    gw_turn t;
    assert_int_equal(init(&t, NULL, NULL, NULL, 3600), 0);
    assert_false(gw_turn_configured(&t));
    assert_int_equal(init(&t, " , ", "", "", 3600), 0);
    assert_false(gw_turn_configured(&t));
}

static void test_uris(void **state)
{
    (void)state;
    gw_turn t;
    assert_int_equal(init(&t,
                          " turn:relay.example:3478?transport=udp ,turns:relay.example:5349,"
                          "stun:relay.example,",
                          "s3cret", NULL, 600),
                     0);
    assert_true(gw_turn_configured(&t));
    assert_int_equal(t.nuris, 3);
    assert_string_equal(t.uris[0], "turn:relay.example:3478?transport=udp");
    assert_string_equal(t.uris[1], "turns:relay.example:5349");
    assert_string_equal(t.uris[2], "stun:relay.example");
    assert_int_equal(t.ttl_s, 600);
    assert_string_equal(t.secret, "s3cret");
    gw_turn_clear(&t);
    assert_false(gw_turn_configured(&t));

    assert_int_equal(init(&t, "http://relay.example", "s", NULL, 60), -1);
    assert_int_equal(init(&t, "turn:", "s", NULL, 60), -1);      /* scheme only */
    assert_int_equal(init(&t, "turn:a b", "s", NULL, 60), -1);   /* space inside */
    assert_int_equal(init(&t, "turn:a\x01", "s", NULL, 60), -1); /* control byte */
    assert_false(gw_turn_configured(&t));

    char many[PARLEY_TURN_URIS_MAX * 16 + 16] = "";
    for (int i = 0; i <= PARLEY_TURN_URIS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "turn:h%d,", i);
    assert_int_equal(init(&t, many, "s", NULL, 60), -1);
    many[strlen(many) - strlen("turn:h8,")] = '\0';
    assert_int_equal(init(&t, many, "s", NULL, 60), 0);
    assert_int_equal(t.nuris, PARLEY_TURN_URIS_MAX);

    char longest[PARLEY_TURN_URI_MAX + 2];
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    memcpy(longest, "turn:", 5);
    assert_int_equal(init(&t, longest, "s", NULL, 60), -1);
    longest[PARLEY_TURN_URI_MAX] = '\0';
    assert_int_equal(init(&t, longest, "s", NULL, 60), 0);
    gw_turn_clear(&t);
}

static void test_secret_rules(void **state)
{
    (void)state;
    gw_turn t;
    /* only together */
    assert_int_equal(init(&t, "turn:h", NULL, NULL, 60), -1);
    assert_int_equal(init(&t, NULL, "s", NULL, 60), -1);
    assert_int_equal(init(&t, "", "s", NULL, 60), -1);
    /* one source, one secret */
    assert_int_equal(init(&t, "turn:h", "s", "/nonexistent", 60), -1);
    assert_int_equal(init(&t, "turn:h", "new, old", NULL, 60), -1);
    assert_int_equal(init(&t, "turn:h", "   ", NULL, 60), -1);
    assert_int_equal(init(&t, "turn:h", " padded\t", NULL, 60), 0);
    assert_string_equal(t.secret, "padded");
    char big[PARLEY_RELAY_SECRET_MAX_BYTES + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(init(&t, "turn:h", big, NULL, 60), -1);
    big[PARLEY_RELAY_SECRET_MAX_BYTES] = '\0';
    assert_int_equal(init(&t, "turn:h", big, NULL, 60), 0);
    /* TTL bounds */
    assert_int_equal(init(&t, "turn:h", "s", NULL, 0), -1);
    assert_int_equal(init(&t, "turn:h", "s", NULL, PARLEY_TURN_TTL_MAX_S + 1), -1);
    assert_int_equal(init(&t, "turn:h", "s", NULL, PARLEY_TURN_TTL_MAX_S), 0);
    gw_turn_clear(&t);
}

static void test_secret_file(void **state)
{
    (void)state;
    gw_turn t;
    char path[64];
    /* the first line, trimmed: what deploy/local/cluster's relay.secret holds */
    temp_file(path, " 0123abcd \nsecond line\n");
    assert_int_equal(init(&t, "turn:h", NULL, path, 60), 0);
    assert_string_equal(t.secret, "0123abcd");
    unlink(path);
    temp_file(path, "\n");
    assert_int_equal(init(&t, "turn:h", NULL, path, 60), -1);
    unlink(path);
    char big[PARLEY_RELAY_SECRET_MAX_BYTES + 3];
    memset(big, 'k', sizeof big - 2);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';
    temp_file(path, big); /* one byte too long */
    assert_int_equal(init(&t, "turn:h", NULL, path, 60), -1);
    unlink(path);
    big[sizeof big - 3] = '\0'; /* exactly the maximum, without newline */
    temp_file(path, big);
    assert_int_equal(init(&t, "turn:h", NULL, path, 60), 0);
    assert_int_equal(strlen(t.secret), PARLEY_RELAY_SECRET_MAX_BYTES);
    unlink(path);
    assert_int_equal(init(&t, "turn:h", NULL, "/nonexistent/turn.secret", 60), -1);
    gw_turn_clear(&t);
}

static void test_mint(void **state)
{
    (void)state;
    gw_turn t;
    gw_turn_creds c;
    assert_int_equal(init(&t, "turn:h", "s3cret", NULL, 3600), 0);
    assert_int_equal(gw_turn_mint(&t, "alice", 1795846540, &c), 0);
    assert_string_equal(c.username, "1795850140:alice");
    /* python3: base64(hmac.new(b's3cret', b'1795850140:alice', sha1).digest()) */
    assert_string_equal(c.password, "B8U4c679BPYvivYXruJc49PO66E=");
    assert_int_equal(c.ttl_s, 3600);

    /* what the relay makes of it: the account is the quota key; expired after the TTL */
    const char *user;
    size_t ulen;
    assert_int_equal(rauth_username(c.username, strlen(c.username), 1795850140, &user, &ulen),
                     RAUTH_OK);
    assert_int_equal(ulen, 5);
    assert_memory_equal(user, "alice", 5);
    assert_int_equal(rauth_username(c.username, strlen(c.username), 1795850141, &user, &ulen),
                     RAUTH_EXPIRED);
    char pw[RAUTH_PASSWORD_LEN + 1];
    assert_int_equal(rauth_password("s3cret", c.username, strlen(c.username), pw), 0);
    assert_string_equal(pw, c.password);

    /* the longest account name fits; a longer one is refused */
    char name[PARLEY_NAME_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(gw_turn_mint(&t, name, 1795846540, &c), -1);
    assert_string_equal(c.username, "");
    name[PARLEY_NAME_MAX] = '\0';
    assert_int_equal(gw_turn_mint(&t, name, UINT64_MAX - 3600, &c), 0);
    assert_int_equal(strlen(c.username), GW_TURN_USERNAME_MAX);
    gw_turn_clear(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_configured), cmocka_unit_test(test_uris),
        cmocka_unit_test(test_secret_rules),   cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_mint),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
