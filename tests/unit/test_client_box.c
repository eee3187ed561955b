/* Interim envelope encryption: seal/open round trip, the version-1 text plaintext, and
 * rejection of tampered content, wrong keys and malformed plaintexts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "parley_client.h"

typedef struct {
    uint8_t pk[32], sk[32];
} kp;

static void gen(kp *k)
{
    assert_true(sodium_init() >= 0);
    crypto_box_keypair(k->pk, k->sk);
}

static void test_round_trip(void **state)
{
    kp alice, bob;
    uint8_t *ct, *pt;
    size_t ct_len, pt_len;
    pc_box_text t;
    pc_status st;
    const char *msg = "hello \xe2\x9c\x93";

    (void)state;
    gen(&alice);
    gen(&bob);
    assert_int_equal(pc_box_seal_text(msg, strlen(msg), 1234567890123ULL, bob.pk, alice.sk, &ct,
                                      &ct_len, &st), 0);
    assert_int_equal(ct_len, strlen(msg) + PC_BOX_HEADER_BYTES + PC_BOX_OVERHEAD);
    /* the server sees no plaintext */
    assert_null(memmem(ct, ct_len, "hello", 5));
    assert_int_equal(pc_box_open(ct, ct_len, alice.pk, bob.sk, &pt, &pt_len, &st), 0);
    assert_int_equal(pc_box_parse_text(pt, pt_len, &t, &st), 0);
    assert_int_equal(t.sent_ms, 1234567890123ULL);
    assert_int_equal(t.text_len, strlen(msg));
    assert_memory_equal(t.text, msg, t.text_len);
    assert_int_equal(pt[0], PC_BOX_VERSION);
    free(pt);
    free(ct);
}

static void test_empty_text(void **state)
{
    kp a, b;
    uint8_t *ct, *pt;
    size_t ct_len, pt_len;
    pc_box_text t;
    pc_status st;

    (void)state;
    gen(&a);
    gen(&b);
    assert_int_equal(pc_box_seal_text("", 0, 1, b.pk, a.sk, &ct, &ct_len, &st), 0);
    assert_int_equal(pc_box_open(ct, ct_len, a.pk, b.sk, &pt, &pt_len, &st), 0);
    assert_int_equal(pc_box_parse_text(pt, pt_len, &t, &st), 0);
    assert_int_equal(t.text_len, 0);
    free(pt);
    free(ct);
}

static void test_tampered_rejected(void **state)
{
    kp a, b;
    uint8_t *ct, *pt = NULL;
    size_t ct_len, pt_len;
    pc_status st;

    (void)state;
    gen(&a);
    gen(&b);
    assert_int_equal(pc_box_seal_text("secret", 6, 1, b.pk, a.sk, &ct, &ct_len, &st), 0);
    for (size_t i = 0; i < ct_len; i++) {
        ct[i] ^= 0x01; /* nonce, MAC and ciphertext bytes alike */
        assert_int_equal(pc_box_open(ct, ct_len, a.pk, b.sk, &pt, &pt_len, &st), -1);
        assert_int_equal(st.kind, PC_ERR_CRYPTO);
        ct[i] ^= 0x01;
    }
    /* truncated */
    assert_int_equal(pc_box_open(ct, ct_len - 1, a.pk, b.sk, &pt, &pt_len, &st), -1);
    assert_int_equal(pc_box_open(ct, PC_BOX_OVERHEAD - 1, a.pk, b.sk, &pt, &pt_len, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    /* untouched it still opens */
    assert_int_equal(pc_box_open(ct, ct_len, a.pk, b.sk, &pt, &pt_len, &st), 0);
    free(pt);
    free(ct);
}

static void test_wrong_keys_rejected(void **state)
{
    kp a, b, eve;
    uint8_t *ct, *pt = NULL;
    size_t ct_len, pt_len;
    pc_status st;

    (void)state;
    gen(&a);
    gen(&b);
    gen(&eve);
    assert_int_equal(pc_box_seal_text("secret", 6, 1, b.pk, a.sk, &ct, &ct_len, &st), 0);
    /* another recipient's secret key */
    assert_int_equal(pc_box_open(ct, ct_len, a.pk, eve.sk, &pt, &pt_len, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    /* the right recipient, but a different claimed sender */
    assert_int_equal(pc_box_open(ct, ct_len, eve.pk, b.sk, &pt, &pt_len, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_null(pt);
    free(ct);
}

static void test_plaintext_format(void **state)
{
    uint8_t pt[PC_BOX_HEADER_BYTES + 2] = { 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 'h', 'i' };
    pc_box_text t;
    pc_status st;
    uint8_t *ct;
    size_t ct_len;
    kp a;

    (void)state;
    assert_int_equal(pc_box_parse_text(pt, sizeof pt, &t, &st), 0);
    assert_int_equal(t.sent_ms, 256);
    assert_int_equal(t.text_len, 2);
    pt[0] = 2; /* unknown version */
    assert_int_equal(pc_box_parse_text(pt, sizeof pt, &t, &st), -1);
    pt[0] = 1;
    pt[1] = 9; /* unknown kind */
    assert_int_equal(pc_box_parse_text(pt, sizeof pt, &t, &st), -1);
    assert_int_equal(pc_box_parse_text(pt, PC_BOX_HEADER_BYTES - 1, &t, &st), -1);

    /* one byte over the envelope limit is refused before encrypting */
    gen(&a);
    char *big = malloc(PC_BOX_TEXT_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', PC_BOX_TEXT_MAX + 1);
    assert_int_equal(pc_box_seal_text(big, PC_BOX_TEXT_MAX + 1, 1, a.pk, a.sk, &ct, &ct_len, &st),
                     -1);
    assert_int_equal(pc_box_seal_text(big, PC_BOX_TEXT_MAX, 1, a.pk, a.sk, &ct, &ct_len, &st), 0);
    assert_int_equal(ct_len, PARLEY_MAX_ENVELOPE_BYTES);
    free(ct);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_text),
        cmocka_unit_test(test_tampered_rejected),
        cmocka_unit_test(test_wrong_keys_rejected),
        cmocka_unit_test(test_plaintext_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
