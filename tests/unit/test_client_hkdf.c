/* HKDF-SHA-256 against the RFC 5869 test vectors (cases 1-3, PRK and OKM), and its length
 * bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "hkdf.h"

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;

    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &n, NULL), 0);
    return n;
}

static void check(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                  const uint8_t *info, size_t info_len, const char *prk_hex, const char *okm_hex)
{
    uint8_t prk[32], want_prk[32], okm[128], want_okm[128];
    size_t okm_len = unhex(want_okm, sizeof want_okm, okm_hex);

    assert_int_equal(unhex(want_prk, sizeof want_prk, prk_hex), 32);
    pc_hkdf_extract(prk, salt, salt_len, ikm, ikm_len);
    assert_memory_equal(prk, want_prk, 32);
    memset(okm, 0xAA, sizeof okm);
    assert_int_equal(pc_hkdf_expand(okm, okm_len, prk, info, info_len), 0);
    assert_memory_equal(okm, want_okm, okm_len);
    assert_int_equal(okm[okm_len], 0xAA); /* nothing written past the end */
    memset(okm, 0, sizeof okm);
    assert_int_equal(pc_hkdf(okm, okm_len, salt, salt_len, ikm, ikm_len, info, info_len), 0);
    assert_memory_equal(okm, want_okm, okm_len);
}

static void test_rfc5869_case1(void **state)
{
    uint8_t ikm[22], salt[13], info[10];

    (void)state;
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    check(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info,
          "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

static void test_rfc5869_case2(void **state)
{
    uint8_t ikm[80], salt[80], info[80];

    (void)state;
    for (int i = 0; i < 80; i++) {
        ikm[i] = (uint8_t)i;
        salt[i] = (uint8_t)(0x60 + i);
        info[i] = (uint8_t)(0xb0 + i);
    }
    check(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info,
          "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
          "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
          "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
          "cc30c58179ec3e87c14c01d5c1f3434f1d87");
}

static void test_rfc5869_case3(void **state)
{
    uint8_t ikm[22];

    (void)state;
    memset(ikm, 0x0b, sizeof ikm);
    /* zero-length salt and info */
    check(ikm, sizeof ikm, NULL, 0, NULL, 0,
          "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
          "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    /* an explicit salt of 32 zero bytes is the same thing (RFC 5869 2.2) */
    {
        uint8_t zero[32] = { 0 }, a[42], b[42];

        assert_int_equal(pc_hkdf(a, sizeof a, zero, sizeof zero, ikm, sizeof ikm, NULL, 0), 0);
        assert_int_equal(pc_hkdf(b, sizeof b, NULL, 0, ikm, sizeof ikm, NULL, 0), 0);
        assert_memory_equal(a, b, sizeof a);
    }
}

static void test_length_bounds(void **state)
{
    static uint8_t okm[PC_HKDF_OKM_MAX + 1];
    uint8_t prk[32] = { 1 };

    (void)state;
    assert_int_equal(pc_hkdf_expand(okm, 0, prk, NULL, 0), -1);
    assert_int_equal(pc_hkdf_expand(okm, PC_HKDF_OKM_MAX + 1, prk, NULL, 0), -1);
    assert_int_equal(pc_hkdf_expand(okm, PC_HKDF_OKM_MAX, prk, NULL, 0), 0);
    /* a prefix of a longer output is the shorter output */
    {
        uint8_t shorter[33];

        assert_int_equal(pc_hkdf_expand(shorter, sizeof shorter, prk, NULL, 0), 0);
        assert_memory_equal(shorter, okm, sizeof shorter);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5869_case1),
        cmocka_unit_test(test_rfc5869_case2),
        cmocka_unit_test(test_rfc5869_case3),
        cmocka_unit_test(test_length_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
