/* The recovery kit: round trip, wrong passphrase, damage, limits a kit may ask for, the
 * passphrase length rule, and the kit file (0600, never overwritten). Argon2id runs with
 * libsodium's minimum limits here (pc_recovery_kit_make_with), the CLI uses MODERATE. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recovery.h"

#define PASS "correct horse battery"

static void secret(pc_recovery_secret *s)
{
    uint8_t pk[32];

    memset(s, 0, sizeof *s);
    crypto_sign_keypair(pk, s->account_sk);
    snprintf(s->account, sizeof s->account, "alice");
    snprintf(s->server, sizeof s->server, "ws://127.0.0.1:46080/v1/ws");
}

static char *make(const pc_recovery_secret *s, const char *pass)
{
    char *kit = NULL;
    pc_status st;

    assert_int_equal(pc_recovery_kit_make_with(s, pass, crypto_pwhash_OPSLIMIT_MIN,
                                               crypto_pwhash_MEMLIMIT_MIN, &kit, &st),
                     0);
    assert_non_null(kit);
    return kit;
}

static void test_round_trip(void **state)
{
    pc_recovery_secret s, back;
    char *kit;
    pc_status st;

    (void)state;
    secret(&s);
    kit = make(&s, PASS);
    assert_int_equal(strncmp(kit, "PARLEY-RECOVERY-KIT v1\n", 23), 0);
    /* no line longer than 64 characters after the header */
    for (char *p = kit + 23, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl - p <= 64);
    }
    assert_int_equal(pc_recovery_kit_open(kit, strlen(kit), PASS, &back, &st), 0);
    assert_memory_equal(back.account_sk, s.account_sk, 64);
    assert_string_equal(back.account, "alice");
    assert_string_equal(back.server, s.server);
    /* CRLF line ends (a kit that went through another system) still open */
    {
        size_t n = strlen(kit), o = 0;
        char *crlf = malloc(2 * n + 1);
        assert_non_null(crlf);
        for (size_t i = 0; i < n; i++) {
            if (kit[i] == '\n')
                crlf[o++] = '\r';
            crlf[o++] = kit[i];
        }
        assert_int_equal(pc_recovery_kit_open(crlf, o, PASS, &back, &st), 0);
        assert_memory_equal(back.account_sk, s.account_sk, 64);
        free(crlf);
    }
    /* two kits of the same secret differ (salt, nonce) */
    {
        char *again = make(&s, PASS);
        assert_string_not_equal(kit, again);
        free(again);
    }
    pc_recovery_secret_wipe(&back);
    free(kit);
}

static void test_wrong_passphrase(void **state)
{
    pc_recovery_secret s, back;
    char *kit;
    pc_status st;

    (void)state;
    secret(&s);
    kit = make(&s, PASS);
    assert_int_equal(pc_recovery_kit_open(kit, strlen(kit), PASS "!", &back, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_string_equal(st.msg, "wrong passphrase or damaged kit");
    /* nothing of a failed open is left */
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(back.account_sk[i], 0);
    free(kit);
}

static void test_damaged(void **state)
{
    pc_recovery_secret s, back;
    char *kit;
    size_t len;
    pc_status st;

    (void)state;
    secret(&s);
    kit = make(&s, PASS);
    len = strlen(kit);
    /* a changed base64 character in the ciphertext */
    kit[len - 10] = kit[len - 10] == 'A' ? 'B' : 'A';
    assert_int_equal(pc_recovery_kit_open(kit, len, PASS, &back, &st), -1);
    assert_string_equal(st.msg, "wrong passphrase or damaged kit");
    /* truncated */
    assert_int_equal(pc_recovery_kit_open(kit, 60, PASS, &back, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    /* not a kit */
    assert_int_equal(pc_recovery_kit_open("hello\n", 6, PASS, &back, &st), -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    assert_int_equal(pc_recovery_kit_open("PARLEY-RECOVERY-KIT v2\nAAAA\n", 28, PASS, &back, &st),
                     -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    free(kit);
}

/* A kit asking for more memory than PC_RECOVERY_MEMLIMIT_MAX is refused before Argon2id runs.
 */
static void test_limits_bounded(void **state)
{
    pc_recovery_secret s, back;
    uint8_t blob[512];
    size_t blen;
    char *kit, b64[1024], text[1200];
    pc_status st;

    (void)state;
    secret(&s);
    kit = make(&s, PASS);
    assert_int_equal(sodium_base642bin(blob, sizeof blob, kit + 23, strlen(kit) - 23, "\n", &blen,
                                       NULL, sodium_base64_VARIANT_ORIGINAL),
                     0);
    /* memlimit (u64 BE after salt and opslimit) := 2^40 */
    memset(blob + 16 + 8, 0, 8);
    blob[16 + 8 + 2] = 1;
    sodium_bin2base64(b64, sizeof b64, blob, blen, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text, "PARLEY-RECOVERY-KIT v1\n%s\n", b64);
    assert_int_equal(pc_recovery_kit_open(text, strlen(text), PASS, &back, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    free(kit);
}

static void test_short_passphrase(void **state)
{
    pc_recovery_secret s;
    char *kit = (char *)1;
    pc_status st;

    (void)state;
    secret(&s);
    assert_int_equal(pc_recovery_kit_make_with(&s, "eleven char", crypto_pwhash_OPSLIMIT_MIN,
                                               crypto_pwhash_MEMLIMIT_MIN, &kit, &st),
                     -1);
    assert_null(kit);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    /* twelve characters, counted as characters: six two-byte ones are not enough */
    assert_int_equal(pc_recovery_kit_make_with(&s, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                                               crypto_pwhash_OPSLIMIT_MIN,
                                               crypto_pwhash_MEMLIMIT_MIN, &kit, &st),
                     -1);
    assert_int_equal(pc_recovery_kit_make_with(&s, "twelve chars", crypto_pwhash_OPSLIMIT_MIN,
                                               crypto_pwhash_MEMLIMIT_MIN, &kit, &st),
                     0);
    free(kit);
}

static void test_passphrase_env(void **state)
{
    char buf[PC_RECOVERY_PASSPHRASE_MAX + 1];
    pc_status st;

    (void)state;
    setenv("PARLEY_PASSPHRASE", PASS, 1);
    assert_int_equal(pc_recovery_passphrase(1, buf, sizeof buf, &st), 0);
    assert_string_equal(buf, PASS);
    setenv("PARLEY_PASSPHRASE", "short", 1);
    assert_int_equal(pc_recovery_passphrase(0, buf, sizeof buf, &st), -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    unsetenv("PARLEY_PASSPHRASE");
}

static void test_file(void **state)
{
    char dir[] = "/tmp/parley-kit-XXXXXX", path[64], *back;
    size_t len;
    struct stat sb;
    pc_status st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/kit.txt", dir);
    assert_int_equal(pc_recovery_kit_write(path, "PARLEY-RECOVERY-KIT v1\nAAAA\n", &st), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(pc_recovery_kit_write(path, "other", &st), -1);
    assert_non_null(strstr(st.msg, "exists"));
    assert_int_equal(pc_recovery_kit_read(path, &back, &len, &st), 0);
    assert_int_equal(len, 28);
    assert_string_equal(back, "PARLEY-RECOVERY-KIT v1\nAAAA\n");
    free(back);
    unlink(path);
    assert_int_equal(pc_recovery_kit_read(path, &back, &len, &st), -1);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_wrong_passphrase),
        cmocka_unit_test(test_damaged),          cmocka_unit_test(test_limits_bounded),
        cmocka_unit_test(test_short_passphrase), cmocka_unit_test(test_passphrase_env),
        cmocka_unit_test(test_file),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
