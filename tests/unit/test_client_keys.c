/* Client identity: generated keys survive a save/load round trip through the home folder, the
 * folder is 0700 and the identity file 0600, and a damaged identity file is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "parley_client.h"

static char *make_tmp(void)
{
    char tmpl[] = "/tmp/parley-test-keys.XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    return strdup(d);
}

static void rm_tree(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_generate_valid(void **state)
{
    pc_keys k;
    pc_status st;
    uint8_t sig[64];
    const uint8_t msg[] = "transcript";

    (void)state;
    assert_int_equal(pc_keys_generate(&k, &st), 0);
    assert_true(k.registration_id >= 1 && k.registration_id <= PARLEY_REGISTRATION_ID_MAX);
    pc_keys_sign_device(&k, sig, msg, sizeof msg);
    assert_int_equal(pauth_verify(sig, msg, sizeof msg, k.signing_pk), 0);
    pc_keys_sign_account(&k, sig, msg, sizeof msg);
    assert_int_equal(pauth_verify(sig, msg, sizeof msg, k.account_pk), 0);
    assert_int_not_equal(pauth_verify(sig, msg, sizeof msg, k.signing_pk), 0);
}

static void test_round_trip_and_modes(void **state)
{
    char *tmp = make_tmp();
    char dir[600], path[700];
    pc_home h, h2;
    pc_status st;
    struct stat sb;

    (void)state;
    /* a permissive umask must not leak into the modes */
    mode_t old = umask(0);
    snprintf(dir, sizeof dir, "%s/home", tmp);
    assert_int_equal(pc_home_open(&h, dir, 1, &st), 0);
    assert_int_equal(pc_keys_generate(&h.id.keys, &st), 0);
    strcpy(h.id.username, "alice");
    h.id.device_id = 1;
    h.server = strdup("ws://127.0.0.1:8080/v1/ws");
    assert_false(pc_home_exists(&h));
    assert_int_equal(pc_home_save(&h, &st), 0);
    assert_true(pc_home_exists(&h));
    umask(old);

    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0700);
    snprintf(path, sizeof path, "%s/identity", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);

    assert_int_equal(pc_home_open(&h2, dir, 0, &st), 0);
    assert_int_equal(pc_home_load(&h2, &st), 0);
    assert_string_equal(h2.id.username, "alice");
    assert_int_equal(h2.id.device_id, 1);
    assert_string_equal(h2.server, "ws://127.0.0.1:8080/v1/ws");
    assert_memory_equal(&h2.id.keys, &h.id.keys, sizeof h.id.keys);

    pc_home_free(&h);
    pc_home_free(&h2);
    rm_tree(tmp);
    free(tmp);
}

static void test_missing_and_damaged(void **state)
{
    char *tmp = make_tmp();
    char path[600], *text;
    pc_home h;
    pc_status st;
    size_t len;
    char *p;

    (void)state;
    /* no folder: a hint to register, not a crash */
    snprintf(path, sizeof path, "%s/none", tmp);
    assert_int_equal(pc_home_open(&h, path, 0, &st), -1);
    assert_non_null(strstr(st.msg, "register"));
    pc_home_free(&h);

    /* a folder without identity */
    assert_int_equal(pc_home_open(&h, tmp, 0, &st), 0);
    assert_int_equal(pc_home_load(&h, &st), -1);
    assert_non_null(strstr(st.msg, "register"));

    /* a secret key that does not match its public key */
    assert_int_equal(pc_keys_generate(&h.id.keys, &st), 0);
    strcpy(h.id.username, "bob");
    h.id.device_id = 1;
    assert_int_equal(pc_home_save(&h, &st), 0);
    snprintf(path, sizeof path, "%s/identity", tmp);
    assert_int_equal(pc_home_read_file(path, 8192, &text, &len), 0);
    /* a file over the bound is not read at all */
    char *none = NULL;
    assert_int_equal(pc_home_read_file(path, len - 1, &none, NULL), -1);
    assert_int_equal(errno, EFBIG);
    assert_null(none);
    p = strstr(text, "signing_pk=");
    assert_non_null(p);
    p += strlen("signing_pk=");
    *p = *p == '0' ? '1' : '0';
    assert_int_equal(pc_home_write_atomic(path, text, len, &st), 0);
    free(text);
    assert_int_equal(pc_home_load(&h, &st), -1);
    assert_non_null(strstr(st.msg, "signing_pk"));

    pc_home_free(&h);
    rm_tree(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_valid),
        cmocka_unit_test(test_round_trip_and_modes),
        cmocka_unit_test(test_missing_and_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
