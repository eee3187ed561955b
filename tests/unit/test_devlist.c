/* test_devlist.c: signed device lists (common/devlist.h): parse checks a body on its own
 * (name, version, prev_hash, device order, keys, registration ids, max_device_id, the device
 * limit, keys shared by two devices), encode round trips, sign/verify over the tagged
 * transcript, pdl_check_next (chain and version: PDL_ERR_NOT_NEXT; changed keys, reused ids,
 * max_device_id: -1) and pdl_diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "devlist.h"
#include "parley.pb-c.h"

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void device(pdl_device *d, uint32_t id)
{
    memset(d, 0, sizeof *d);
    d->device_id = id;
    d->registration_id = 100 + id;
    memset(d->signing_pk, (int)id, 32);
    memset(d->identity_pk, (int)(0x80 + id), 32);
}

/* A list of account "alice" with the given ids (ascending), version v. */
static void make(pdl_list *l, uint64_t v, const uint32_t *ids, size_t n)
{
    memset(l, 0, sizeof *l);
    strcpy(l->account, "alice");
    l->version = v;
    l->has_prev = v > 1;
    for (size_t i = 0; i < n; i++) {
        device(&l->dev[i], ids[i]);
        if (ids[i] > l->max_device_id)
            l->max_device_id = ids[i];
    }
    l->n = n;
    l->timestamp_ms = 1234;
}

/* Encodes l and parses it back into out; returns pdl_parse's result. */
static int round_trip(pdl_list *l, pdl_list *out, uint8_t **body, size_t *len)
{
    assert_int_equal(pdl_encode(l, body, len), 0);
    return pdl_parse(*body, *len, out, NULL);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const uint32_t ids[] = {1, 3};
    pdl_list l, p;
    uint8_t *body;
    size_t len;
    make(&l, 2, ids, 2);
    memset(l.prev_hash, 0x55, PDL_HASH_BYTES);
    assert_int_equal(round_trip(&l, &p, &body, &len), 0);
    assert_string_equal(p.account, "alice");
    assert_int_equal(p.version, 2);
    assert_int_equal(p.has_prev, 1);
    assert_memory_equal(p.prev_hash, l.prev_hash, PDL_HASH_BYTES);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.dev[1].device_id, 3);
    assert_int_equal(p.dev[1].registration_id, 103);
    assert_memory_equal(p.dev[1].identity_pk, l.dev[1].identity_pk, 32);
    assert_int_equal(p.max_device_id, 3);
    assert_int_equal(p.timestamp_ms, 1234);
    uint8_t h[PDL_HASH_BYTES];
    pdl_hash(h, body, len);
    assert_memory_equal(p.hash, h, PDL_HASH_BYTES);
    assert_memory_equal(l.hash, h, PDL_HASH_BYTES); /* encode sets it too */
    assert_non_null(pdl_find(&p, 3));
    assert_null(pdl_find(&p, 2));
    free(body);
}

/* A body built field by field, so that the parser sees what the encoder would refuse. */
typedef struct {
    Parley__V1__DeviceListBody b;
    Parley__V1__ListedDevice dev[PARLEY_MAX_DEVICES_PER_ACCOUNT + 1];
    Parley__V1__ListedDevice *devp[PARLEY_MAX_DEVICES_PER_ACCOUNT + 1];
    uint8_t keys[PARLEY_MAX_DEVICES_PER_ACCOUNT + 1][2][32];
    uint8_t prev[PDL_HASH_BYTES];
} raw_body;

static void raw_init(raw_body *r, size_t n)
{
    memset(r, 0, sizeof *r);
    parley__v1__device_list_body__init(&r->b);
    r->b.account = "alice";
    r->b.version = 1;
    for (size_t i = 0; i < n; i++) {
        parley__v1__listed_device__init(&r->dev[i]);
        r->dev[i].device_id = (uint32_t)i + 1;
        r->dev[i].registration_id = 7;
        r->keys[i][0][0] = (uint8_t)(i + 1); /* every device its own keys */
        r->keys[i][1][0] = (uint8_t)(0x80 + i);
        r->dev[i].signing_key.data = r->keys[i][0];
        r->dev[i].signing_key.len = 32;
        r->dev[i].identity_key.data = r->keys[i][1];
        r->dev[i].identity_key.len = 32;
        r->devp[i] = &r->dev[i];
    }
    r->b.n_devices = n;
    r->b.devices = r->devp;
    r->b.max_device_id = (uint32_t)n;
}

static int raw_parse(raw_body *r, const char **why)
{
    uint8_t buf[4096];
    pdl_list l;
    size_t len = parley__v1__device_list_body__pack(&r->b, buf);
    *why = NULL;
    return pdl_parse(buf, len, &l, why);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    raw_body r;
    const char *why;

    raw_init(&r, 2);
    assert_int_equal(raw_parse(&r, &why), 0);

    raw_init(&r, 2);
    r.b.account = "Alice"; /* not normalised */
    assert_int_equal(raw_parse(&r, &why), -1);
    assert_non_null(why);
    raw_init(&r, 2);
    r.b.version = 0;
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.b.prev_hash.data = r.prev; /* version 1 with a previous hash */
    r.b.prev_hash.len = PDL_HASH_BYTES;
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.b.version = 2; /* version 2 without one */
    assert_int_equal(raw_parse(&r, &why), -1);
    r.b.prev_hash.data = r.prev;
    r.b.prev_hash.len = 31;
    assert_int_equal(raw_parse(&r, &why), -1);
    r.b.prev_hash.len = PDL_HASH_BYTES;
    assert_int_equal(raw_parse(&r, &why), 0);
    raw_init(&r, 0);
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.dev[1].device_id = 1; /* not strictly ascending */
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.dev[0].device_id = 0;
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.dev[0].registration_id = 0;
    assert_int_equal(raw_parse(&r, &why), -1);
    r.dev[0].registration_id = PARLEY_REGISTRATION_ID_MAX + 1;
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.dev[1].identity_key.len = 31;
    assert_int_equal(raw_parse(&r, &why), -1);
    raw_init(&r, 2);
    r.b.max_device_id = 1; /* below a listed id */
    assert_int_equal(raw_parse(&r, &why), -1);
    /* two device ids with one key: the list would vouch for one device under two ids */
    raw_init(&r, 3);
    memcpy(r.keys[2][0], r.keys[0][0], 32);
    assert_int_equal(raw_parse(&r, &why), -1);
    assert_string_equal(why, "two devices of the device list share a signing key");
    raw_init(&r, 3);
    memcpy(r.keys[2][1], r.keys[1][1], 32);
    assert_int_equal(raw_parse(&r, &why), -1);
    assert_string_equal(why, "two devices of the device list share an identity key");
    raw_init(&r, 2);
    memcpy(r.keys[1][1], r.keys[0][0], 32); /* one device's identity key, another's signing */
    assert_int_equal(raw_parse(&r, &why), 0);
    raw_init(&r, 1); /* one device with equal signing and identity key bytes: not shared */
    memcpy(r.keys[0][1], r.keys[0][0], 32);
    assert_int_equal(raw_parse(&r, &why), 0);
    raw_init(&r, PARLEY_MAX_DEVICES_PER_ACCOUNT);
    assert_int_equal(raw_parse(&r, &why), 0);
    raw_init(&r, PARLEY_MAX_DEVICES_PER_ACCOUNT + 1);
    assert_int_equal(raw_parse(&r, &why), PDL_ERR_TOO_MANY);
    assert_non_null(why);

    pdl_list l;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff};
    assert_int_equal(pdl_parse(garbage, sizeof garbage, &l, &why), -1);
    assert_int_equal(pdl_parse(garbage, 0, &l, &why), -1);
    uint8_t *big = calloc(1, PARLEY_DEVICE_LIST_BODY_MAX + 1);
    assert_non_null(big);
    assert_int_equal(pdl_parse(big, PARLEY_DEVICE_LIST_BODY_MAX + 1, &l, &why), -1);
    free(big);
}

static void test_sign_verify(void **state)
{
    (void)state;
    static const uint32_t ids[] = {1};
    uint8_t pk[32], sk[64], pk2[32], sk2[64], sig[PDL_SIG_BYTES];
    pdl_list l;
    uint8_t *body;
    size_t len;
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    make(&l, 1, ids, 1);
    assert_int_equal(pdl_encode(&l, &body, &len), 0);
    pdl_sign(sig, body, len, sk);
    assert_int_equal(pdl_verify(sig, sizeof sig, body, len, pk), 0);
    assert_int_equal(pdl_verify(sig, sizeof sig, body, len, pk2), -1);
    assert_int_equal(pdl_verify(sig, sizeof sig - 1, body, len, pk), -1);
    assert_int_equal(pdl_verify(NULL, sizeof sig, body, len, pk), -1);
    /* the signature covers the tag: a plain signature over the body does not verify */
    uint8_t plain[64];
    crypto_sign_ed25519_detached(plain, NULL, body, len, sk);
    assert_int_equal(pdl_verify(plain, sizeof plain, body, len, pk), -1);
    /* ... and every byte of the body */
    body[len - 1] ^= 1;
    assert_int_equal(pdl_verify(sig, sizeof sig, body, len, pk), -1);
    body[len - 1] ^= 1;
    sig[0] ^= 1;
    assert_int_equal(pdl_verify(sig, sizeof sig, body, len, pk), -1);
    free(body);
}

/* next = prev + 1 chained to prev, with ids */
static void next_of(const pdl_list *prev, pdl_list *next, const uint32_t *ids, size_t n)
{
    make(next, prev->version + 1, ids, n);
    memcpy(next->prev_hash, prev->hash, PDL_HASH_BYTES);
    if (prev->max_device_id > next->max_device_id)
        next->max_device_id = prev->max_device_id;
}

static void test_check_next(void **state)
{
    (void)state;
    static const uint32_t v1[] = {1}, v2[] = {1, 2}, v3[] = {2}, reuse[] = {1, 2, 3};
    pdl_list a, b, c;
    uint8_t *body;
    size_t len;
    const char *why;

    make(&a, 1, v1, 1);
    assert_int_equal(pdl_encode(&a, &body, &len), 0); /* sets a.hash */
    free(body);
    assert_int_equal(pdl_check_next(NULL, &a, &why), 0);
    next_of(&a, &b, v2, 2);
    /* first must be version 1 */
    assert_int_equal(pdl_check_next(NULL, &b, &why), PDL_ERR_NOT_NEXT);
    assert_int_equal(pdl_check_next(&a, &b, &why), 0);

    /* not the next version, or not chained to prev: PDL_ERR_NOT_NEXT (a race, not a fault) */
    c = b;
    c.version = 3; /* skipped */
    assert_int_equal(pdl_check_next(&a, &c, &why), PDL_ERR_NOT_NEXT);
    assert_non_null(strstr(why, "not the next version"));
    c = b;
    c.version = 1; /* same */
    assert_int_equal(pdl_check_next(&a, &c, &why), PDL_ERR_NOT_NEXT);
    c = b;
    c.prev_hash[0] ^= 1;
    assert_int_equal(pdl_check_next(&a, &c, &why), PDL_ERR_NOT_NEXT);
    assert_non_null(strstr(why, "chain"));
    c = b;
    c.has_prev = 0;
    assert_int_equal(pdl_check_next(&a, &c, &why), PDL_ERR_NOT_NEXT);
    /* faults of the list itself: -1 */
    c = b;
    strcpy(c.account, "bob");
    assert_int_equal(pdl_check_next(&a, &c, &why), -1);
    c.version = 5; /* another account is a fault before it is a race */
    assert_int_equal(pdl_check_next(&a, &c, &why), -1);
    c = b;
    c.dev[0].identity_pk[3] ^= 1; /* device 1's keys changed */
    assert_int_equal(pdl_check_next(&a, &c, &why), -1);
    assert_non_null(strstr(why, "keys"));
    c = b;
    c.dev[0].registration_id++;
    assert_int_equal(pdl_check_next(&a, &c, &why), -1);
    c = b;
    c.max_device_id = 5; /* not the highest id ever used */
    assert_int_equal(pdl_check_next(&a, &c, &why), -1);

    /* b: {1, 2} max 2; then {2} (1 removed) max 2; then 1 again is a reused id */
    assert_int_equal(pdl_encode(&b, &body, &len), 0);
    free(body);
    next_of(&b, &c, v3, 1);
    assert_int_equal(c.max_device_id, 2);
    assert_int_equal(pdl_check_next(&b, &c, &why), 0);
    assert_int_equal(pdl_encode(&c, &body, &len), 0);
    free(body);
    pdl_list d;
    next_of(&c, &d, reuse, 3);
    assert_int_equal(pdl_check_next(&c, &d, &why), -1);
    assert_non_null(strstr(why, "reuses"));
}

static void test_diff(void **state)
{
    (void)state;
    static const uint32_t p[] = {1, 2, 4}, n[] = {1, 4, 5, 6};
    pdl_list a, b;
    uint32_t added[PARLEY_MAX_DEVICES_PER_ACCOUNT], removed[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    size_t na, nr;
    make(&a, 1, p, 3);
    make(&b, 2, n, 4);
    pdl_diff(&a, &b, added, &na, removed, &nr);
    assert_int_equal(na, 2);
    assert_int_equal(added[0], 5);
    assert_int_equal(added[1], 6);
    assert_int_equal(nr, 1);
    assert_int_equal(removed[0], 2);
    pdl_diff(NULL, &a, added, &na, removed, &nr);
    assert_int_equal(na, 3);
    assert_int_equal(nr, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_check_next),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
