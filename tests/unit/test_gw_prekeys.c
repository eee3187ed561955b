/* test_gw_prekeys.c: the pure parts of the prekey service: what makes an UploadPrekeys well
 * formed (gw_prekeys_check.h), its parameters for parley_prekeys_upload, the device list of a
 * GetPrekeys, the signed prekey transcript and its verification (prekey_sig.h, pinned to the
 * bytes of docs/PROTOCOL.md), and the client's parsing of bundles and of the PrekeysLow push
 * (client/prekeys.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "gw_prekeys_check.h"
#include "prekey_sig.h"
#include "prekeys.h"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- an upload built field by field ------------------------------------------------------ */

typedef struct {
    Parley__V1__UploadPrekeys u;
    Parley__V1__SignedPrekey spk;
    uint8_t spk_pk[40], spk_sig[70];
    Parley__V1__OneTimePrekey otk[PARLEY_PREKEYS_UPLOAD_MAX + 2];
    Parley__V1__OneTimePrekey *ptrs[PARLEY_PREKEYS_UPLOAD_MAX + 2];
    uint8_t otk_pk[PARLEY_PREKEYS_UPLOAD_MAX + 2][40];
} upload;

/* A valid upload: a signed prekey (id 7) and n one-time prekeys with ids 1..n. */
static void upload_init(upload *x, size_t n, int with_spk)
{
    memset(x, 0, sizeof *x);
    parley__v1__upload_prekeys__init(&x->u);
    parley__v1__signed_prekey__init(&x->spk);
    x->spk.id = 7;
    x->spk.public_key.data = x->spk_pk;
    x->spk.public_key.len = 32;
    x->spk.signature.data = x->spk_sig;
    x->spk.signature.len = 64;
    if (with_spk)
        x->u.signed_prekey = &x->spk;
    for (size_t i = 0; i < n; i++) {
        parley__v1__one_time_prekey__init(&x->otk[i]);
        x->otk[i].id = (uint32_t)(i + 1);
        memset(x->otk_pk[i], (int)(i + 1), 32);
        x->otk[i].public_key.data = x->otk_pk[i];
        x->otk[i].public_key.len = 32;
        x->ptrs[i] = &x->otk[i];
    }
    x->u.n_one_time_prekeys = n;
    x->u.one_time_prekeys = x->ptrs;
}

static void expect_invalid(const upload *x, const char *needle)
{
    const char *why = NULL;
    assert_int_equal(gw_prekeys_check_upload(&x->u, &why), -1);
    assert_non_null(why);
    assert_non_null(strstr(why, needle));
}

static void test_upload_valid(void **state)
{
    (void)state;
    upload x;
    const char *why = NULL;
    upload_init(&x, 3, 1);
    assert_int_equal(gw_prekeys_check_upload(&x.u, &why), 0);
    upload_init(&x, PARLEY_PREKEYS_UPLOAD_MAX, 0);
    assert_int_equal(gw_prekeys_check_upload(&x.u, &why), 0);
    /* an empty upload only asks for the counts */
    upload_init(&x, 0, 0);
    assert_int_equal(gw_prekeys_check_upload(&x.u, &why), 0);
    /* ids need not be sorted; the largest uint32 is fine */
    upload_init(&x, 3, 1);
    x.otk[0].id = 0xffffffffu;
    x.otk[2].id = 2;
    x.otk[1].id = 9;
    assert_int_equal(gw_prekeys_check_upload(&x.u, &why), 0);
}

static void test_upload_signed_prekey_bounds(void **state)
{
    (void)state;
    upload x;
    upload_init(&x, 1, 1);
    x.spk.id = 0;
    expect_invalid(&x, "signed prekey id");
    upload_init(&x, 1, 1);
    x.spk.public_key.len = 31;
    expect_invalid(&x, "32 bytes");
    upload_init(&x, 1, 1);
    x.spk.public_key.len = 33;
    expect_invalid(&x, "32 bytes");
    upload_init(&x, 1, 1);
    x.spk.signature.len = 63;
    expect_invalid(&x, "64 bytes");
    upload_init(&x, 1, 1);
    x.spk.signature.len = 0;
    expect_invalid(&x, "64 bytes");
}

static void test_upload_one_time_bounds(void **state)
{
    (void)state;
    upload x;
    upload_init(&x, PARLEY_PREKEYS_UPLOAD_MAX + 1, 1);
    expect_invalid(&x, "too many");
    upload_init(&x, 2, 0);
    x.otk[1].id = 0;
    expect_invalid(&x, "id must not be 0");
    upload_init(&x, 2, 0);
    x.otk[0].public_key.len = 33;
    expect_invalid(&x, "32 bytes");
    upload_init(&x, 2, 0);
    x.otk[0].public_key.len = 0;
    expect_invalid(&x, "32 bytes");
    upload_init(&x, 5, 0);
    x.otk[4].id = 2;
    expect_invalid(&x, "twice");
    upload_init(&x, PARLEY_PREKEYS_UPLOAD_MAX, 0);
    x.otk[0].id = PARLEY_PREKEYS_UPLOAD_MAX;
    expect_invalid(&x, "twice");
}

static void test_upload_params(void **state)
{
    (void)state;
    upload x;
    char *ids;
    uint8_t *keys;
    size_t len;
    upload_init(&x, 3, 1);
    x.otk[1].id = 4000000000u;
    assert_int_equal(gw_prekeys_upload_params(&x.u, &ids, &keys, &len), 0);
    assert_string_equal(ids, "{1,4000000000,3}");
    assert_int_equal(len, 96);
    assert_memory_equal(keys, x.otk_pk[0], 32);
    assert_memory_equal(keys + 32, x.otk_pk[1], 32);
    assert_memory_equal(keys + 64, x.otk_pk[2], 32);
    free(ids);
    free(keys);

    upload_init(&x, 0, 1);
    assert_int_equal(gw_prekeys_upload_params(&x.u, &ids, &keys, &len), 0);
    assert_string_equal(ids, "{}");
    assert_null(keys);
    assert_int_equal(len, 0);
    free(ids);

    /* the longest list fits its buffer */
    upload_init(&x, PARLEY_PREKEYS_UPLOAD_MAX, 0);
    for (size_t i = 0; i < PARLEY_PREKEYS_UPLOAD_MAX; i++)
        x.otk[i].id = 4294967295u - (uint32_t)i;
    assert_int_equal(gw_prekeys_upload_params(&x.u, &ids, &keys, &len), 0);
    assert_int_equal(strlen(ids), 2 + PARLEY_PREKEYS_UPLOAD_MAX * 11 - 1);
    free(ids);
    free(keys);
}

static void test_device_list(void **state)
{
    (void)state;
    char out[GW_PREKEYS_DEVICES_TEXT_MAX];
    assert_int_equal(gw_prekeys_device_list(NULL, 0, out), 0);
    assert_string_equal(out, "");
    const uint32_t a[] = {3, 1, 3, 0, 2};
    assert_int_equal(gw_prekeys_device_list(a, 5, out), 0);
    assert_string_equal(out, "{1,2,3}");
    /* ids no device can have leave an explicit empty list, never "every device" */
    const uint32_t b[] = {0, 0x80000000u};
    assert_int_equal(gw_prekeys_device_list(b, 2, out), 0);
    assert_string_equal(out, "{}");
    const uint32_t c[] = {0x7fffffffu, 8, 7, 6, 5, 4, 3, 2};
    assert_int_equal(gw_prekeys_device_list(c, 8, out), 0);
    assert_string_equal(out, "{2,3,4,5,6,7,8,2147483647}");
    const uint32_t d[PARLEY_PREKEYS_FETCH_DEVICES_MAX + 1] = {1};
    assert_int_equal(gw_prekeys_device_list(d, PARLEY_PREKEYS_FETCH_DEVICES_MAX + 1, out), -1);
}

/* ---- the signed prekey transcript --------------------------------------------------------- */

static void test_spk_transcript_layout(void **state)
{
    (void)state;
    uint8_t pk[32], t[PPKSIG_TRANSCRIPT_BYTES];
    for (int i = 0; i < 32; i++)
        pk[i] = (uint8_t)(0xa0 + i);
    ppksig_transcript(t, 0x01020304u, pk);
    assert_int_equal(sizeof t, 49);
    assert_memory_equal(t, "parley-spk-v1", 13);
    const uint8_t id[] = {1, 2, 3, 4};
    assert_memory_equal(t + 13, id, 4);
    assert_memory_equal(t + 17, pk, 32);
}

static void test_spk_verify(void **state)
{
    (void)state;
    uint8_t sign_pk[32], sign_sk[64], other_pk[32], other_sk[64], spk[32], sig[64];
    crypto_sign_keypair(sign_pk, sign_sk);
    crypto_sign_keypair(other_pk, other_sk);
    randombytes_buf(spk, sizeof spk);
    /* signed over the bytes as docs/PROTOCOL.md spells them, not through ppksig_transcript */
    uint8_t msg[49];
    memcpy(msg, "parley-spk-v1", 13);
    msg[13] = 0;
    msg[14] = 0;
    msg[15] = 0x01;
    msg[16] = 0x2c; /* id 300 */
    memcpy(msg + 17, spk, 32);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sign_sk);
    assert_int_equal(ppksig_verify(sig, 300, spk, sign_pk), 0);
    assert_int_equal(ppksig_verify(sig, 301, spk, sign_pk), -1);
    assert_int_equal(ppksig_verify(sig, 300, spk, other_pk), -1);
    uint8_t bad[32];
    memcpy(bad, spk, 32);
    bad[31] ^= 1;
    assert_int_equal(ppksig_verify(sig, 300, bad, sign_pk), -1);
    sig[0] ^= 0x80;
    assert_int_equal(ppksig_verify(sig, 300, spk, sign_pk), -1);
    assert_int_equal(ppksig_verify(NULL, 300, spk, sign_pk), -1);
}

/* ---- client parsing ----------------------------------------------------------------------- */

static void test_client_parse_bundles(void **state)
{
    (void)state;
    uint8_t k32[32], k64[64];
    memset(k32, 0x42, sizeof k32);
    memset(k64, 0x43, sizeof k64);
    Parley__V1__SignedPrekey spk = PARLEY__V1__SIGNED_PREKEY__INIT;
    spk.id = 9;
    spk.public_key = (ProtobufCBinaryData){32, k32};
    spk.signature = (ProtobufCBinaryData){64, k64};
    Parley__V1__OneTimePrekey otk = PARLEY__V1__ONE_TIME_PREKEY__INIT;
    otk.id = 77;
    otk.public_key = (ProtobufCBinaryData){32, k32};
    Parley__V1__PrekeyBundle b1 = PARLEY__V1__PREKEY_BUNDLE__INIT, b2 = b1;
    b1.device_id = 1;
    b1.registration_id = 11;
    b1.signing_key = b1.identity_key = (ProtobufCBinaryData){32, k32};
    b1.signed_prekey = &spk;
    b1.one_time_prekey = &otk;
    b2 = b1;
    b2.device_id = 2;
    b2.signed_prekey = NULL;
    b2.one_time_prekey = NULL;
    Parley__V1__PrekeyBundle *ptrs[] = {&b1, &b2};
    Parley__V1__PrekeyBundles m = PARLEY__V1__PREKEY_BUNDLES__INIT;
    m.account = "Bob";
    m.n_bundles = 2;
    m.bundles = ptrs;
    pc_prekey_bundles *out = NULL;
    pc_status st;
    assert_int_equal(pc_prekeys_parse_bundles(&m, &out, &st), 0);
    assert_string_equal(out->account, "bob");
    assert_int_equal(out->n, 2);
    assert_int_equal(out->bundles[0].device_id, 1);
    assert_int_equal(out->bundles[0].registration_id, 11);
    assert_true(out->bundles[0].has_spk);
    assert_int_equal(out->bundles[0].spk_id, 9);
    assert_memory_equal(out->bundles[0].spk_sig, k64, 64);
    assert_true(out->bundles[0].has_opk);
    assert_int_equal(out->bundles[0].opk_id, 77);
    assert_false(out->bundles[1].has_spk);
    assert_false(out->bundles[1].has_opk);
    pc_prekey_bundles_free(out);

    /* a key of the wrong length is the server's fault */
    spk.signature.len = 63;
    assert_int_equal(pc_prekeys_parse_bundles(&m, &out, &st), -1);
    assert_null(out);
    assert_int_equal(st.kind, PC_ERR_PROTO);
    spk.signature.len = 64;
    b2.identity_key.len = 31;
    assert_int_equal(pc_prekeys_parse_bundles(&m, &out, &st), -1);
    b2.identity_key.len = 32;
    otk.public_key.len = 0;
    assert_int_equal(pc_prekeys_parse_bundles(&m, &out, &st), -1);

    /* an empty answer (only the requesting device, or none matched) */
    m.n_bundles = 0;
    assert_int_equal(pc_prekeys_parse_bundles(&m, &out, &st), 0);
    assert_int_equal(out->n, 0);
    pc_prekey_bundles_free(out);
}

static void test_client_low_push(void **state)
{
    (void)state;
    Parley__V1__PrekeysLow low = PARLEY__V1__PREKEYS_LOW__INIT;
    low.one_time_count = 4;
    Parley__V1__ServerFrame f = PARLEY__V1__SERVER_FRAME__INIT;
    uint32_t n = 99;
    assert_int_equal(pc_prekeys_low_push(&f, &n), 0);
    f.body_case = PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_LOW;
    f.prekeys_low = &low;
    assert_int_equal(pc_prekeys_low_push(&f, &n), 1);
    assert_int_equal(n, 4);
    assert_int_equal(pc_prekeys_low_push(NULL, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_valid),
        cmocka_unit_test(test_upload_signed_prekey_bounds),
        cmocka_unit_test(test_upload_one_time_bounds),
        cmocka_unit_test(test_upload_params),
        cmocka_unit_test(test_device_list),
        cmocka_unit_test(test_spk_transcript_layout),
        cmocka_unit_test(test_spk_verify),
        cmocka_unit_test(test_client_parse_bundles),
        cmocka_unit_test(test_client_low_push),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
