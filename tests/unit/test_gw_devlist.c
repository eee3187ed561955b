/* test_gw_devlist.c: the gateway's judgement of a PublishDeviceList (gw_devlist_judge) against
 * what is stored, the error code of every refusal, and parley_devlist_apply's parameters
 * (gw_devlist_apply_params). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "gw_devlist.h"

typedef struct {
    uint8_t pk[32], sk[64];
    uint8_t *cur_body; /* the stored current version (version 2: devices 1, 2) */
    size_t cur_len;
    pdl_list cur;
    gw_devlist_stored s;
} fixture;

static void device(pdl_device *d, uint32_t id)
{
    memset(d, 0, sizeof *d);
    d->device_id = id;
    d->registration_id = 10 + id;
    memset(d->signing_pk, (int)id, 32);
    memset(d->identity_pk, (int)(0x40 + id), 32);
}

static int setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    crypto_sign_keypair(f->pk, f->sk);
    strcpy(f->cur.account, "alice");
    f->cur.version = 2;
    f->cur.has_prev = 1;
    device(&f->cur.dev[0], 1);
    device(&f->cur.dev[1], 2);
    f->cur.n = 2;
    f->cur.max_device_id = 2;
    if (pdl_encode(&f->cur, &f->cur_body, &f->cur_len) != 0)
        return -1;
    f->s.account = "alice";
    f->s.account_pk = f->pk;
    f->s.cur_version = 2;
    f->s.cur_body = f->cur_body;
    f->s.cur_len = f->cur_len;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    free(f->cur_body);
    free(f);
    return 0;
}

/* The next version of the fixture's list: device 3 added. */
static void next_list(const fixture *f, pdl_list *l)
{
    *l = f->cur;
    l->version = 3;
    memcpy(l->prev_hash, f->cur.hash, PDL_HASH_BYTES);
    device(&l->dev[2], 3);
    l->n = 3;
    l->max_device_id = 3;
}

/* Encodes and signs l (with sk), judges it; returns the code and *why. */
static Parley__V1__ErrorCode judge(const fixture *f, pdl_list *l, const uint8_t *sk,
                                   int flip_sig, const char **why)
{
    uint8_t *body, sig[PDL_SIG_BYTES];
    size_t len;
    pdl_list out;
    assert_int_equal(pdl_encode(l, &body, &len), 0);
    pdl_sign(sig, body, len, sk);
    if (flip_sig)
        sig[9] ^= 0x08;
    *why = NULL;
    Parley__V1__ErrorCode code = gw_devlist_judge(&f->s, body, len, sig, sizeof sig, &out, why);
    if (code == PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED)
        assert_int_equal(out.version, l->version);
    else
        assert_non_null(*why);
    free(body);
    return code;
}

static void test_accepts_next(void **state)
{
    fixture *f = *state;
    pdl_list l;
    const char *why;
    next_list(f, &l);
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED);
    /* a removal is a next version too */
    next_list(f, &l);
    l.dev[0] = l.dev[2];
    l.n = 1;
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED);
}

static void test_signature(void **state)
{
    fixture *f = *state;
    pdl_list l;
    const char *why;
    uint8_t pk[32], sk[64];
    next_list(f, &l);
    assert_int_equal(judge(f, &l, f->sk, 1, &why), PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE);
    crypto_sign_keypair(pk, sk);
    assert_int_equal(judge(f, &l, sk, 0, &why), PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE);
}

static void test_conflicts(void **state)
{
    fixture *f = *state;
    pdl_list l;
    const char *why;
    next_list(f, &l);
    l.version = 2; /* the current version again */
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT);
    assert_non_null(strstr(why, "sign again"));
    next_list(f, &l);
    l.version = 4; /* skipped one */
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT);
    next_list(f, &l);
    l.prev_hash[31] ^= 1;
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT);
}

static void test_invalid(void **state)
{
    fixture *f = *state;
    pdl_list l;
    const char *why;
    next_list(f, &l);
    l.dev[1].signing_pk[0] ^= 1; /* device 2's keys changed */
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    next_list(f, &l);
    strcpy(l.account, "bob");
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    assert_non_null(strstr(why, "another account"));
    next_list(f, &l);
    l.max_device_id = 9;
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
    /* malformed bytes */
    static const uint8_t junk[] = {0x0a, 0xff};
    uint8_t sig[PDL_SIG_BYTES] = {0};
    pdl_list out;
    assert_int_equal(gw_devlist_judge(&f->s, junk, sizeof junk, sig, sizeof sig, &out, &why),
                     PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT);
}

static void test_too_many(void **state)
{
    fixture *f = *state;
    /* nine devices: pdl_encode refuses that, so the body is packed by hand */
    Parley__V1__ListedDevice dev[PARLEY_MAX_DEVICES_PER_ACCOUNT + 1];
    Parley__V1__ListedDevice *devp[PARLEY_MAX_DEVICES_PER_ACCOUNT + 1];
    uint8_t key[32] = {1};
    for (size_t i = 0; i <= PARLEY_MAX_DEVICES_PER_ACCOUNT; i++) {
        parley__v1__listed_device__init(&dev[i]);
        dev[i].device_id = (uint32_t)i + 1;
        dev[i].registration_id = 5;
        dev[i].signing_key.data = dev[i].identity_key.data = key;
        dev[i].signing_key.len = dev[i].identity_key.len = 32;
        devp[i] = &dev[i];
    }
    Parley__V1__DeviceListBody b = PARLEY__V1__DEVICE_LIST_BODY__INIT;
    b.account = "alice";
    b.version = 3;
    b.prev_hash.data = f->cur.hash;
    b.prev_hash.len = PDL_HASH_BYTES;
    b.n_devices = PARLEY_MAX_DEVICES_PER_ACCOUNT + 1;
    b.devices = devp;
    b.max_device_id = PARLEY_MAX_DEVICES_PER_ACCOUNT + 1;
    uint8_t body[PARLEY_DEVICE_LIST_BODY_MAX], sig[PDL_SIG_BYTES];
    size_t len = parley__v1__device_list_body__pack(&b, body);
    pdl_sign(sig, body, len, f->sk);
    pdl_list out;
    const char *why;
    assert_int_equal(gw_devlist_judge(&f->s, body, len, sig, sizeof sig, &out, &why),
                     PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES);
}

static void test_first_publish_and_damage(void **state)
{
    fixture *f = *state;
    pdl_list l;
    const char *why;
    gw_devlist_stored saved = f->s;
    /* an account from before signed lists: version 1, no previous hash */
    f->s.cur_version = 0;
    f->s.cur_body = NULL;
    f->s.cur_len = 0;
    l = f->cur;
    l.version = 1;
    l.has_prev = 0;
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED);
    next_list(f, &l);
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT);
    /* version 2 stored but its body is missing or does not parse */
    f->s = saved;
    f->s.cur_body = NULL;
    next_list(f, &l);
    assert_int_equal(judge(f, &l, f->sk, 0, &why), PARLEY__V1__ERROR_CODE__INTERNAL);
    f->s = saved;
}

static void test_apply_params(void **state)
{
    fixture *f = *state;
    pdl_list l;
    char ids[GW_DEVLIST_ARRAY_TEXT_MAX], regs[GW_DEVLIST_ARRAY_TEXT_MAX];
    uint8_t keys[PARLEY_MAX_DEVICES_PER_ACCOUNT * 64];
    next_list(f, &l);
    assert_int_equal(gw_devlist_apply_params(&l, ids, regs, keys), 0);
    assert_string_equal(ids, "{1,2,3}");
    assert_string_equal(regs, "{11,12,13}");
    assert_memory_equal(keys + 64 * 2, l.dev[2].signing_pk, 32);
    assert_memory_equal(keys + 64 * 2 + 32, l.dev[2].identity_pk, 32);
    /* the largest list fits the text buffers */
    for (size_t i = 0; i < PARLEY_MAX_DEVICES_PER_ACCOUNT; i++) {
        device(&l.dev[i], 4000000000u - (uint32_t)(PARLEY_MAX_DEVICES_PER_ACCOUNT - i));
        l.dev[i].registration_id = PARLEY_REGISTRATION_ID_MAX;
    }
    l.n = PARLEY_MAX_DEVICES_PER_ACCOUNT;
    assert_int_equal(gw_devlist_apply_params(&l, ids, regs, keys), 0);
    assert_non_null(strstr(ids, "3999999999}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_next),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_first_publish_and_damage),
        cmocka_unit_test(test_apply_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
