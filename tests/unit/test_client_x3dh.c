/* X3DH: the signed prekey signature (transcript, verification, agreement with the server's
 * check), both sides agreeing with and without a one-time prekey, the AD layout, and refusal
 * of bad signatures and low-order keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "prekey_sig.h"
#include "x3dh.h"

typedef struct {
    pc_keys keys;
    uint8_t spk_pk[32], spk_sk[32], opk_pk[32], opk_sk[32];
    pc_bundle bundle;
} device;

static void make_device(device *d, int with_opk)
{
    pc_status st;

    memset(d, 0, sizeof *d);
    assert_int_equal(pc_keys_generate(&d->keys, &st), 0);
    crypto_box_keypair(d->spk_pk, d->spk_sk);
    crypto_box_keypair(d->opk_pk, d->opk_sk);
    d->bundle.device_id = 2;
    d->bundle.registration_id = d->keys.registration_id;
    memcpy(d->bundle.signing_pk, d->keys.signing_pk, 32);
    memcpy(d->bundle.identity_pk, d->keys.identity_pk, 32);
    d->bundle.spk_id = 7;
    memcpy(d->bundle.spk_pk, d->spk_pk, 32);
    pc_x3dh_spk_sign(&d->keys, 7, d->spk_pk, d->bundle.spk_sig);
    d->bundle.has_opk = with_opk;
    d->bundle.opk_id = with_opk ? 42 : 0;
    memcpy(d->bundle.opk_pk, d->opk_pk, 32);
}

static void test_spk_transcript_and_signature(void **state)
{
    device b;
    uint8_t t[PC_X3DH_SPK_TRANSCRIPT_BYTES], want[49], server_t[PPKSIG_TRANSCRIPT_BYTES], sig[64];

    (void)state;
    make_device(&b, 0);
    /* "parley-spk-v1" || u32 big-endian id || key, exactly */
    memcpy(want, "parley-spk-v1", 13);
    want[13] = 0x01;
    want[14] = 0x02;
    want[15] = 0x03;
    want[16] = 0x04;
    memcpy(want + 17, b.spk_pk, 32);
    pc_x3dh_spk_transcript(t, 0x01020304, b.spk_pk);
    assert_memory_equal(t, want, sizeof want);
    /* the gateway's check (common/prekey_sig.h) sees the same bytes and accepts our signature */
    ppksig_transcript(server_t, 0x01020304, b.spk_pk);
    assert_memory_equal(t, server_t, sizeof t);
    pc_x3dh_spk_sign(&b.keys, 0x01020304, b.spk_pk, sig);
    assert_int_equal(ppksig_verify(sig, 0x01020304, b.spk_pk, b.keys.signing_pk), 0);
    assert_int_equal(crypto_sign_ed25519_verify_detached(sig, want, sizeof want,
                                                         b.keys.signing_pk), 0);

    assert_int_equal(pc_x3dh_spk_verify(b.keys.signing_pk, 0x01020304, b.spk_pk, sig), 0);
    /* another id, key, signer or a flipped signature bit */
    assert_int_equal(pc_x3dh_spk_verify(b.keys.signing_pk, 0x01020305, b.spk_pk, sig), -1);
    assert_int_equal(pc_x3dh_spk_verify(b.keys.signing_pk, 0x01020304, b.opk_pk, sig), -1);
    assert_int_equal(pc_x3dh_spk_verify(b.keys.account_pk, 0x01020304, b.spk_pk, sig), -1);
    sig[10] ^= 1;
    assert_int_equal(pc_x3dh_spk_verify(b.keys.signing_pk, 0x01020304, b.spk_pk, sig), -1);
}

static void agree(int with_opk)
{
    device a, b;
    pc_x3dh_hello hello;
    pc_x3dh_result ra, rb, rwrong;
    pc_status st;

    make_device(&a, 0);
    make_device(&b, with_opk);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &ra, &st), 0);
    assert_int_equal(hello.has_opk, with_opk);
    assert_int_equal(hello.opk_id, with_opk ? 42 : 0);
    assert_int_equal(hello.spk_id, 7);
    assert_memory_equal(hello.signing_pk, a.keys.signing_pk, 32);
    assert_memory_equal(hello.identity_pk, a.keys.identity_pk, 32);
    assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.spk_sk, with_opk ? b.opk_sk : NULL, &rb,
                                     &st), 0);
    assert_memory_equal(ra.sk, rb.sk, 32);
    assert_false(sodium_is_zero(ra.sk, 32));
    /* AD: initiator's signing and identity keys, then the responder's */
    assert_memory_equal(ra.ad, rb.ad, PC_X3DH_AD_BYTES);
    assert_memory_equal(ra.ad, a.keys.signing_pk, 32);
    assert_memory_equal(ra.ad + 32, a.keys.identity_pk, 32);
    assert_memory_equal(ra.ad + 64, b.keys.signing_pk, 32);
    assert_memory_equal(ra.ad + 96, b.keys.identity_pk, 32);

    /* the wrong signed prekey secret, or a missing/wrong one-time prekey secret, disagrees */
    assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.opk_sk, with_opk ? b.opk_sk : NULL,
                                     &rwrong, &st), 0);
    assert_memory_not_equal(rwrong.sk, ra.sk, 32);
    if (with_opk) {
        assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.spk_sk, b.spk_sk, &rwrong, &st), 0);
        assert_memory_not_equal(rwrong.sk, ra.sk, 32);
        assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.spk_sk, NULL, &rwrong, &st), -1);
        /* dropping DH4 (claiming no one-time prekey) gives another secret */
        hello.has_opk = 0;
        assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.spk_sk, NULL, &rwrong, &st), 0);
        assert_memory_not_equal(rwrong.sk, ra.sk, 32);
    }
    pc_x3dh_result_wipe(&ra);
    assert_true(sodium_is_zero(ra.sk, 32));
}

static void test_agree_with_opk(void **state)
{
    (void)state;
    agree(1);
}

static void test_agree_without_opk(void **state)
{
    (void)state;
    agree(0);
}

static void test_fresh_each_time(void **state)
{
    device a, b;
    pc_x3dh_hello h1, h2;
    pc_x3dh_result r1, r2;
    pc_status st;

    (void)state;
    make_device(&a, 0);
    make_device(&b, 1);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &h1, &r1, &st), 0);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &h2, &r2, &st), 0);
    assert_memory_not_equal(h1.base_pk, h2.base_pk, 32);
    assert_memory_not_equal(r1.sk, r2.sk, 32);
}

static void test_bad_spk_signature_rejected(void **state)
{
    device a, b;
    pc_x3dh_hello hello;
    pc_x3dh_result r;
    pc_status st;

    (void)state;
    make_device(&a, 1);
    make_device(&b, 1);
    b.bundle.spk_sig[0] ^= 0x80;
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_string_equal(st.msg, "signed prekey signature does not verify");
    assert_true(sodium_is_zero(r.sk, 32));
    b.bundle.spk_sig[0] ^= 0x80;
    /* a valid signature, but for another id */
    b.bundle.spk_id = 8;
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    assert_string_equal(st.msg, "signed prekey signature does not verify");
    /* signed by a key that is not the bundle's signing key */
    b.bundle.spk_id = 7;
    pc_x3dh_spk_sign(&a.keys, 7, b.spk_pk, b.bundle.spk_sig);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    pc_x3dh_spk_sign(&b.keys, 7, b.spk_pk, b.bundle.spk_sig);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), 0);
}

static void test_low_order_keys_rejected(void **state)
{
    device a, b;
    pc_x3dh_hello hello;
    pc_x3dh_result r;
    pc_status st;
    uint8_t zero[32] = { 0 };

    (void)state;
    make_device(&a, 1);
    make_device(&b, 1);
    /* a validly signed all-zero signed prekey */
    memcpy(b.bundle.spk_pk, zero, 32);
    pc_x3dh_spk_sign(&b.keys, 7, zero, b.bundle.spk_sig);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    make_device(&b, 1);
    memcpy(b.bundle.identity_pk, zero, 32);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    make_device(&b, 1);
    memcpy(b.bundle.opk_pk, zero, 32);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), -1);
    /* the responder refuses a low-order base key */
    make_device(&b, 1);
    assert_int_equal(pc_x3dh_initiate(&a.keys, &b.bundle, &hello, &r, &st), 0);
    memcpy(hello.base_pk, zero, 32);
    assert_int_equal(pc_x3dh_respond(&b.keys, &hello, b.spk_sk, b.opk_sk, &r, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_true(sodium_is_zero(r.sk, 32));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spk_transcript_and_signature),
        cmocka_unit_test(test_agree_with_opk),
        cmocka_unit_test(test_agree_without_opk),
        cmocka_unit_test(test_fresh_each_time),
        cmocka_unit_test(test_bad_spk_signature_rejected),
        cmocka_unit_test(test_low_order_keys_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
