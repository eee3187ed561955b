/* test_gw_provision.c: provisioning channel ids (gateway/gw_provision_id.c): made from random
 * bytes in Crockford base32 (never I, L, O or U), every symbol reachable, and the check of a
 * client's id (length, alphabet, lower case accepted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_provision_id.h"

static void test_make(void **state)
{
    (void)state;
    char id[GW_PROVISION_ID_SIZE];
    uint8_t rnd[PARLEY_LINK_CHANNEL_ID_LEN];
    memset(rnd, 0, sizeof rnd);
    gw_provision_id_make(id, rnd);
    assert_string_equal(id, "00000000");
    memset(rnd, 0xff, sizeof rnd);
    gw_provision_id_make(id, rnd);
    assert_string_equal(id, "ZZZZZZZZ");
    const uint8_t seq[PARLEY_LINK_CHANNEL_ID_LEN] = {10, 17, 18, 20, 21, 26, 27, 32 + 9};
    gw_provision_id_make(id, seq);
    assert_string_equal(id, "AHJMNTV9");
}

static void test_alphabet(void **state)
{
    (void)state;
    char seen[256] = {0};
    int distinct = 0;
    for (int b = 0; b < 256; b++) {
        uint8_t rnd[PARLEY_LINK_CHANNEL_ID_LEN];
        char id[GW_PROVISION_ID_SIZE], back[GW_PROVISION_ID_SIZE];
        memset(rnd, b, sizeof rnd);
        gw_provision_id_make(id, rnd);
        assert_int_equal(strlen(id), PARLEY_LINK_CHANNEL_ID_LEN);
        assert_null(strpbrk(id, "ILOU"));
        /* what the gateway hands out it takes back */
        assert_int_equal(gw_provision_id_parse(id, back), 0);
        assert_string_equal(back, id);
        if (!seen[(unsigned char)id[0]]++)
            distinct++;
    }
    assert_int_equal(distinct, 32);
}

static void test_parse(void **state)
{
    (void)state;
    char out[GW_PROVISION_ID_SIZE];
    assert_int_equal(gw_provision_id_parse("7K3M9QXZ", out), 0);
    assert_string_equal(out, "7K3M9QXZ");
    assert_int_equal(gw_provision_id_parse("7k3m9qxz", out), 0);
    assert_string_equal(out, "7K3M9QXZ");
    assert_int_equal(gw_provision_id_parse(NULL, out), -1);
    assert_int_equal(gw_provision_id_parse("", out), -1);
    assert_int_equal(gw_provision_id_parse("7K3M9QX", out), -1);
    assert_int_equal(gw_provision_id_parse("7K3M9QXZ0", out), -1);
    assert_int_equal(gw_provision_id_parse("7K3M-QXZ", out), -1);
    assert_int_equal(gw_provision_id_parse("7K3M QXZ", out), -1);
    /* I, L, O and U are the client's to map; the server sees only canonical ids */
    assert_int_equal(gw_provision_id_parse("IIIIIIII", out), -1);
    assert_int_equal(gw_provision_id_parse("0000000L", out), -1);
    assert_int_equal(gw_provision_id_parse("o0000000", out), -1);
    assert_int_equal(gw_provision_id_parse("0000U000", out), -1);
    assert_int_equal(gw_provision_id_parse("0000\xc3\x9c""00", out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make),
        cmocka_unit_test(test_alphabet),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
