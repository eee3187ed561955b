/* Safety numbers over account keys: the documented construction, symmetry between the two
 * sides, sensitivity to every input, and the 12x5 display. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fingerprint.h"

typedef struct {
    uint8_t account[32];
    const char *name;
} party;

static void make(party *p, const char *name)
{
    assert_true(sodium_init() >= 0);
    randombytes_buf(p->account, 32);
    p->name = name;
}

static void number(const party *a, const party *b, char out[PC_FP_DIGITS + 1])
{
    pc_fp_safety_number(a->account, a->name, strlen(a->name), b->account, b->name,
                        strlen(b->name), out);
}

/* The construction of fingerprint.h, written out plainly. */
static void reference(const party *p, char out[31])
{
    uint8_t buf[64 + 32 + 64], h[64];
    size_t n = strlen(p->name);

    assert_int_equal(PC_FP_VERSION, 2);
    buf[0] = 0;
    buf[1] = 2;
    memcpy(buf + 2, p->account, 32);
    memcpy(buf + 34, p->name, n);
    crypto_hash_sha512(h, buf, 34 + n);
    for (int i = 0; i < 5200; i++) {
        memcpy(buf, h, 64);
        memcpy(buf + 64, p->account, 32);
        crypto_hash_sha512(h, buf, 96);
    }
    for (int c = 0; c < 6; c++) {
        uint64_t v = 0;

        for (int j = 0; j < 5; j++)
            v = v << 8 | h[5 * c + j];
        snprintf(out + 5 * c, 6, "%05llu", (unsigned long long)(v % 100000));
    }
}

static void test_construction(void **state)
{
    party a;
    char got[PC_FP_PARTY_DIGITS + 1], want[31];

    (void)state;
    make(&a, "alice");
    pc_fp_party(a.account, a.name, strlen(a.name), got);
    reference(&a, want);
    assert_string_equal(got, want);
    assert_int_equal(strlen(got), 30);
    assert_int_equal(strspn(got, "0123456789"), 30);
}

static void test_symmetric(void **state)
{
    party a, b;
    char ab[PC_FP_DIGITS + 1], ba[PC_FP_DIGITS + 1], pa[31], pb[31];

    (void)state;
    make(&a, "alice");
    make(&b, "bob");
    number(&a, &b, ab);
    number(&b, &a, ba);
    assert_string_equal(ab, ba);
    assert_int_equal(strlen(ab), PC_FP_DIGITS);
    /* the two halves are the parties' numbers, the smaller first */
    pc_fp_party(a.account, a.name, strlen(a.name), pa);
    pc_fp_party(b.account, b.name, strlen(b.name), pb);
    assert_true(strstr(ab, pa) != NULL && strstr(ab, pb) != NULL);
    assert_true(strncmp(ab, ab + 30, 30) <= 0);
}

static void test_changes_with_any_key(void **state)
{
    party a, b, c;
    char base[PC_FP_DIGITS + 1], now[PC_FP_DIGITS + 1];

    (void)state;
    make(&a, "alice");
    make(&b, "bob");
    number(&a, &b, base);
    c = b;
    c.account[31] ^= 1; /* bob's account key */
    number(&a, &c, now);
    assert_string_not_equal(base, now);
    c = b;
    c.account[0] ^= 0x80;
    number(&a, &c, now);
    assert_string_not_equal(base, now);
    c = a;
    c.account[5] ^= 2; /* alice's account key */
    number(&c, &b, now);
    assert_string_not_equal(base, now);
    c = b;
    c.name = "bob2"; /* the same keys under another name */
    number(&a, &c, now);
    assert_string_not_equal(base, now);
    number(&a, &b, now);
    assert_string_equal(base, now);
}

static void test_format(void **state)
{
    char out[PC_FP_FORMATTED_BYTES];
    const char *digits = "012345678901234567890123456789012345678901234567890123456789";

    (void)state;
    assert_int_equal(pc_fp_format(digits, out), 0);
    assert_string_equal(out, "01234 56789 01234 56789 01234 56789 01234 56789 01234 56789 01234 "
                             "56789");
    assert_int_equal(strlen(out), PC_FP_FORMATTED_BYTES - 1);
    assert_int_equal(pc_fp_format("0123", out), -1);
    assert_int_equal(pc_fp_format("01234567890123456789012345678901234567890123456789012345678x",
                                  out), -1);
    assert_int_equal(pc_fp_format("0123456789012345678901234567890123456789012345678901234567890",
                                  out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_construction),
        cmocka_unit_test(test_symmetric),
        cmocka_unit_test(test_changes_with_any_key),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
