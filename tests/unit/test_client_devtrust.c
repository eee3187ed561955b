/* Device-list trust (devtrust.h) over lists built and signed here: first contact pins the
 * account key and the list; later versions are accepted when they chain from the pinned one;
 * a rolled-back, forked (same version with another body, or a broken link), gapped, badly
 * signed or foreign list and a changed account key are refused with the pin untouched; ghosts
 * (server rows the signed list lacks, or lists with other keys) are found; the verified list
 * comes back as a DeviceList; the vault keeps pins across a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devtrust.h"
#include "parley_client.h"

typedef struct {
    uint8_t pk[32], sk[64];
} signer_key;

/* One answer: up to ANSWER_LISTS signed lists (a full page and one more) and the server's
 * rows. */
#define ANSWER_LISTS (PARLEY_DEVICE_LIST_CHAIN_MAX + 1)
typedef struct {
    Parley__V1__DeviceList dl;
    Parley__V1__SignedDeviceList s[ANSWER_LISTS];
    Parley__V1__SignedDeviceList *sp[ANSWER_LISTS];
    uint8_t sig[ANSWER_LISTS][64];
    uint8_t *body[ANSWER_LISTS];
    Parley__V1__DeviceInfo rows[10];
    Parley__V1__DeviceInfo *rowp[10];
    pdl_device row_keys[10];
    uint8_t key[32];
} answer;

static void acct_make(signer_key *a)
{
    assert_true(sodium_init() >= 0);
    crypto_sign_keypair(a->pk, a->sk);
}

static pdl_device dev_make(uint32_t id)
{
    pdl_device d;

    d.device_id = id;
    d.registration_id = 1 + randombytes_uniform(16000);
    randombytes_buf(d.signing_pk, 32);
    randombytes_buf(d.identity_pk, 32);
    return d;
}

/* Version 1 of account with devices devs[0..n). */
static void first_list(pdl_list *l, const char *account, const pdl_device *devs, size_t n)
{
    memset(l, 0, sizeof *l);
    snprintf(l->account, sizeof l->account, "%s", account);
    l->version = 1;
    l->n = n;
    memcpy(l->dev, devs, n * sizeof *devs);
    for (size_t i = 0; i < n; i++)
        if (devs[i].device_id > l->max_device_id)
            l->max_device_id = devs[i].device_id;
    l->timestamp_ms = 1000;
}

/* The next version after prev (whose hash must be set: sign it first) with dev added (id 0:
 * none) and remove_id removed (0: none). */
static void next_list(pdl_list *out, const pdl_list *prev, const pdl_device *add,
                      uint32_t remove_id)
{
    *out = *prev;
    out->version = prev->version + 1;
    out->has_prev = 1;
    memcpy(out->prev_hash, prev->hash, PDL_HASH_BYTES);
    out->timestamp_ms = prev->timestamp_ms + 1;
    if (add) {
        out->dev[out->n++] = *add;
        if (add->device_id > out->max_device_id)
            out->max_device_id = add->device_id;
    }
    for (size_t i = 0; remove_id && i < out->n; i++)
        if (out->dev[i].device_id == remove_id) {
            memmove(&out->dev[i], &out->dev[i + 1], (out->n - i - 1) * sizeof out->dev[0]);
            out->n--;
            break;
        }
}

static void answer_init(answer *a, const char *account, const uint8_t key[32])
{
    memset(a, 0, sizeof *a);
    parley__v1__device_list__init(&a->dl);
    a->dl.account = (char *)account;
    memcpy(a->key, key, 32);
    a->dl.account_key.data = a->key;
    a->dl.account_key.len = 32;
    a->dl.lists = a->sp;
    a->dl.devices = a->rowp;
}

/* Appends l (its hash set by encoding) signed by signer. */
static void answer_add(answer *a, pdl_list *l, const signer_key *signer)
{
    size_t i = a->dl.n_lists, len;

    assert_true(i < ANSWER_LISTS);
    assert_int_equal(pdl_encode(l, &a->body[i], &len), 0);
    pdl_sign(a->sig[i], a->body[i], len, signer->sk);
    parley__v1__signed_device_list__init(&a->s[i]);
    a->s[i].body.data = a->body[i];
    a->s[i].body.len = len;
    a->s[i].signature.data = a->sig[i];
    a->s[i].signature.len = 64;
    a->sp[i] = &a->s[i];
    a->dl.n_lists = i + 1;
    a->dl.latest_version = l->version;
}

/* Appends a server row. */
static void answer_row(answer *a, const pdl_device *d)
{
    size_t i = a->dl.n_devices;

    a->row_keys[i] = *d;
    parley__v1__device_info__init(&a->rows[i]);
    a->rows[i].device_id = d->device_id;
    a->rows[i].registration_id = d->registration_id;
    a->rows[i].signing_key.data = a->row_keys[i].signing_pk;
    a->rows[i].signing_key.len = 32;
    a->rows[i].identity_key.data = a->row_keys[i].identity_pk;
    a->rows[i].identity_key.len = 32;
    a->rowp[i] = &a->rows[i];
    a->dl.n_devices = i + 1;
}

/* The rows of l, as an honest server serves them. */
static void answer_rows_of(answer *a, const pdl_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        answer_row(a, &l->dev[i]);
}

static void answer_free(answer *a)
{
    for (size_t i = 0; i < ANSWER_LISTS; i++)
        free(a->body[i]);
}

/* Signs l alone to set its hash (for building the next version). */
static void seal(pdl_list *l)
{
    uint8_t *b;
    size_t len;

    assert_int_equal(pdl_encode(l, &b, &len), 0);
    free(b);
}

/* Refused with kind and a message containing needle; pin unchanged. */
static void refused(pc_dt_pin *pin, const char *account, answer *a, pc_status_kind kind,
                    const char *needle)
{
    pc_dt_pin before = *pin;
    pc_status st;

    assert_int_equal(pc_dt_accept(pin, account, &a->dl, &st), -1);
    if (st.kind != kind || !strstr(st.msg, needle))
        fail_msg("kind %d message \"%s\", wanted kind %d with \"%s\"", st.kind, st.msg, kind,
                 needle);
    assert_memory_equal(&before, pin, sizeof before);
}

static void accepted(pc_dt_pin *pin, const char *account, answer *a, uint64_t version)
{
    pc_status st;

    if (pc_dt_accept(pin, account, &a->dl, &st) != 0)
        fail_msg("refused: %s", st.msg);
    assert_true(pin->pinned);
    assert_true(pin->has_list);
    assert_int_equal(pin->list.version, version);
}

/* alice's history: v1 {1}, v2 {1,2}, v3 {1,2,3}, v4 {1,3} */
typedef struct {
    signer_key key;
    pdl_device d[4];
    pdl_list v[5];
} history;

static void history_make(history *h)
{
    acct_make(&h->key);
    for (int i = 0; i < 4; i++)
        h->d[i] = dev_make((uint32_t)i + 1);
    first_list(&h->v[1], "alice", &h->d[0], 1);
    seal(&h->v[1]);
    next_list(&h->v[2], &h->v[1], &h->d[1], 0);
    seal(&h->v[2]);
    next_list(&h->v[3], &h->v[2], &h->d[2], 0);
    seal(&h->v[3]);
    next_list(&h->v[4], &h->v[3], NULL, 2);
    seal(&h->v[4]);
}

/* A pin at version v of h, reached by first contact. */
static void pin_at(pc_dt_pin *pin, history *h, int v)
{
    answer a;

    memset(pin, 0, sizeof *pin);
    answer_init(&a, "alice", h->key.pk);
    answer_add(&a, &h->v[v], &h->key);
    answer_rows_of(&a, &h->v[v]);
    accepted(pin, "alice", &a, (uint64_t)v);
    answer_free(&a);
}

static void test_first_contact_pins(void **state)
{
    history h;
    pc_dt_pin pin;
    answer a;

    (void)state;
    history_make(&h);
    memset(&pin, 0, sizeof pin);
    /* known_version 0: the latest only, whatever its version */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &h.key);
    answer_rows_of(&a, &h.v[3]);
    accepted(&pin, "alice", &a, 3);
    assert_memory_equal(pin.account_pk, h.key.pk, 32);
    assert_int_equal(pin.list.n, 3);
    assert_memory_equal(pin.list.hash, h.v[3].hash, PDL_HASH_BYTES);
    answer_free(&a);

    /* a first list that does not verify pins nothing */
    memset(&pin, 0, sizeof pin);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[1], &h.key);
    a.sig[0][10] ^= 1;
    refused(&pin, "alice", &a, PC_ERR_TRUST, "not signed by alice's account key");
    assert_false(pin.pinned);
    answer_free(&a);

    /* an account without a signed list, or an answer without a key: nothing to pin */
    answer_init(&a, "alice", h.key.pk);
    refused(&pin, "alice", &a, PC_ERR_PROTO, "no signed device list");
    a.dl.account_key.len = 0;
    refused(&pin, "alice", &a, PC_ERR_PROTO, "no account key");
    answer_free(&a);
}

static void test_next_versions_accepted(void **state)
{
    history h;
    pc_dt_pin pin;
    answer a;

    (void)state;
    history_make(&h);
    pin_at(&pin, &h, 1);
    /* known_version 1: the known one again, then the newer ones */
    answer_init(&a, "alice", h.key.pk);
    for (int v = 1; v <= 3; v++)
        answer_add(&a, &h.v[v], &h.key);
    accepted(&pin, "alice", &a, 3);
    answer_free(&a);
    /* the next one alone (a server that leaves the known one out) */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[4], &h.key);
    answer_rows_of(&a, &h.v[4]);
    accepted(&pin, "alice", &a, 4);
    assert_int_equal(pin.list.n, 2);
    assert_null(pdl_find(&pin.list, 2));
    answer_free(&a);
    /* unchanged: the known version alone */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[4], &h.key);
    accepted(&pin, "alice", &a, 4);
    answer_free(&a);
}

static void test_rollback_refused(void **state)
{
    history h;
    pc_dt_pin pin;
    answer a;

    (void)state;
    history_make(&h);
    pin_at(&pin, &h, 3);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[2], &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "rolled back");
    answer_free(&a);
    /* older ones that chain correctly are still older */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[1], &h.key);
    answer_add(&a, &h.v[2], &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "rolled back");
    answer_free(&a);
    /* no list at all, once one was seen */
    answer_init(&a, "alice", h.key.pk);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "rolled back");
    answer_free(&a);
}

static void test_fork_refused(void **state)
{
    history h;
    pc_dt_pin pin;
    pdl_list other2, other3, bad3;
    pdl_device x = dev_make(3);
    answer a;

    (void)state;
    history_make(&h);
    /* the same version with another body */
    next_list(&other2, &h.v[1], &x, 0);
    other2.max_device_id = 3;
    seal(&other2);
    pin_at(&pin, &h, 2);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &other2, &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "forked");
    answer_free(&a);
    /* the next version chained to the other body */
    next_list(&other3, &other2, NULL, 3);
    seal(&other3);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &other3, &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "forked");
    answer_free(&a);
    /* a broken link inside the answer: v3 naming a wrong previous hash */
    bad3 = h.v[3];
    bad3.prev_hash[0] ^= 1;
    pin_at(&pin, &h, 1);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[1], &h.key);
    answer_add(&a, &h.v[2], &h.key);
    answer_add(&a, &bad3, &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "forked");
    answer_free(&a);
    /* a link that changes the keys of a listed device */
    bad3 = h.v[3];
    bad3.dev[0].identity_pk[0] ^= 1;
    pin_at(&pin, &h, 2);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &bad3, &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "forked");
    answer_free(&a);
}

static void test_key_change_and_signature(void **state)
{
    history h, other;
    pc_dt_pin pin;
    answer a;

    (void)state;
    history_make(&h);
    history_make(&other); /* the same account name under another account key */
    pin_at(&pin, &h, 2);
    answer_init(&a, "alice", other.key.pk);
    answer_add(&a, &other.v[3], &other.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "account key of alice is not the one pinned");
    answer_free(&a);
    /* the pinned key in the answer, a list signed by another */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &other.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "not signed by alice's account key");
    answer_free(&a);
    /* a tampered body */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &h.key);
    a.body[0][a.s[0].body.len - 1] ^= 1;
    {
        pc_dt_pin before = pin;
        pc_status st;
        assert_int_equal(pc_dt_accept(&pin, "alice", &a.dl, &st), -1);
        assert_memory_equal(&before, &pin, sizeof pin);
    }
    answer_free(&a);
    /* a list of another account served for alice */
    {
        pdl_list bobs;
        pdl_device b1 = dev_make(1);
        pc_dt_pin fresh;
        first_list(&bobs, "bob", &b1, 1);
        memset(&fresh, 0, sizeof fresh);
        answer_init(&a, "alice", h.key.pk);
        answer_add(&a, &bobs, &h.key);
        refused(&fresh, "alice", &a, PC_ERR_TRUST, "list of bob");
        answer_free(&a);
    }
}

static void test_gap_refused(void **state)
{
    history h;
    pc_dt_pin pin;
    answer a;

    (void)state;
    history_make(&h);
    pin_at(&pin, &h, 1);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &h.key);
    answer_add(&a, &h.v[4], &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "skip from version 1");
    answer_free(&a);
    /* a hole inside the answer */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[1], &h.key);
    answer_add(&a, &h.v[3], &h.key);
    refused(&pin, "alice", &a, PC_ERR_TRUST, "forked");
    answer_free(&a);
    /* latest_version beyond what was sent */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[1], &h.key);
    answer_add(&a, &h.v[2], &h.key);
    a.dl.latest_version = 3;
    refused(&pin, "alice", &a, PC_ERR_PROTO, "version 3");
    answer_free(&a);
}

/* A client further behind than one answer reaches pages through the chain: a full page that
 * ends before latest_version moves the pin and asks for more (PC_DT_MORE). */
static void test_pages(void **state)
{
    enum { LAST = 40 };
    static pdl_list v[LAST + 1];
    signer_key key;
    pdl_device d[LAST + 1];
    pc_dt_pin pin;
    pc_status st;
    answer a;

    (void)state;
    acct_make(&key);
    d[1] = dev_make(1);
    first_list(&v[1], "alice", &d[1], 1);
    seal(&v[1]);
    /* a device added, then removed, again and again */
    for (int i = 2; i <= LAST; i++) {
        d[i] = dev_make((uint32_t)i);
        next_list(&v[i], &v[i - 1], i % 2 ? NULL : &d[i], i % 2 ? (uint32_t)i - 1 : 0);
        seal(&v[i]);
    }
    memset(&pin, 0, sizeof pin);
    answer_init(&a, "alice", key.pk);
    answer_add(&a, &v[1], &key);
    accepted(&pin, "alice", &a, 1);
    answer_free(&a);
    /* the first page: versions 1..32 of 40 */
    answer_init(&a, "alice", key.pk);
    for (int i = 1; i <= PARLEY_DEVICE_LIST_CHAIN_MAX; i++)
        answer_add(&a, &v[i], &key);
    a.dl.latest_version = LAST;
    assert_int_equal(pc_dt_accept(&pin, "alice", &a.dl, &st), PC_DT_MORE);
    assert_int_equal(pin.list.version, PARLEY_DEVICE_LIST_CHAIN_MAX);
    answer_free(&a);
    /* a short page that stops before the latest is not a page: refused */
    answer_init(&a, "alice", key.pk);
    for (int i = PARLEY_DEVICE_LIST_CHAIN_MAX; i <= 35; i++)
        answer_add(&a, &v[i], &key);
    a.dl.latest_version = LAST;
    refused(&pin, "alice", &a, PC_ERR_PROTO, "version 40");
    answer_free(&a);
    /* the rest, from the version reached */
    answer_init(&a, "alice", key.pk);
    for (int i = PARLEY_DEVICE_LIST_CHAIN_MAX; i <= LAST; i++)
        answer_add(&a, &v[i], &key);
    answer_rows_of(&a, &v[LAST]);
    accepted(&pin, "alice", &a, LAST);
    assert_int_equal(pin.list.n, 2); /* device 1 and device 40, added last */
    answer_free(&a);
    /* a full page that would not move the pin on (the server repeating old versions) */
    answer_init(&a, "alice", key.pk);
    for (int i = LAST - PARLEY_DEVICE_LIST_CHAIN_MAX + 1; i <= LAST; i++)
        answer_add(&a, &v[i], &key);
    a.dl.latest_version = LAST + 5;
    refused(&pin, "alice", &a, PC_ERR_PROTO, "version 45");
    answer_free(&a);
}

static void test_ghosts(void **state)
{
    history h;
    pc_dt_pin pin;
    pdl_device ghost = dev_make(9), swapped;
    uint32_t ids[8];
    size_t n;
    answer a;
    pc_status st;

    (void)state;
    history_make(&h);
    pin_at(&pin, &h, 3);
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &h.key);
    answer_rows_of(&a, &h.v[3]);
    accepted(&pin, "alice", &a, 3);
    pc_dt_ghosts(&pin, &a.dl, ids, 8, &n);
    assert_int_equal(n, 0);
    /* a row the signed list lacks */
    answer_row(&a, &ghost);
    accepted(&pin, "alice", &a, 3);
    pc_dt_ghosts(&pin, &a.dl, ids, 8, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 9);
    assert_int_equal(pc_dt_ghost_status(&st, "alice", ids, n, "nothing was sent"), -1);
    assert_int_equal(st.kind, PC_ERR_TRUST);
    assert_string_equal(st.msg, "alice's device 9 is not in alice's signed device list (added "
                                "by the server?); nothing was sent");
    answer_free(&a);
    /* a listed id whose row carries other keys, or another registration id */
    answer_init(&a, "alice", h.key.pk);
    answer_add(&a, &h.v[3], &h.key);
    swapped = h.d[1];
    swapped.identity_pk[3] ^= 1;
    answer_row(&a, &h.d[0]);
    answer_row(&a, &swapped);
    swapped = h.d[2];
    swapped.registration_id++;
    answer_row(&a, &swapped);
    accepted(&pin, "alice", &a, 3);
    pc_dt_ghosts(&pin, &a.dl, ids, 1, &n);
    assert_int_equal(n, 2);       /* the full count */
    assert_int_equal(ids[0], 2);  /* at most cap written */
    assert_int_equal(pc_dt_ghost_status(&st, "alice", (uint32_t[]){ 2, 3 }, 2, "x"), -1);
    assert_non_null(strstr(st.msg, "alice's devices 2,3 are not in"));
    answer_free(&a);
    /* no verified list: every row is a ghost */
    memset(&pin, 0, sizeof pin);
    answer_init(&a, "alice", h.key.pk);
    answer_rows_of(&a, &h.v[2]);
    pc_dt_ghosts(&pin, &a.dl, ids, 8, &n);
    assert_int_equal(n, 2);
    answer_free(&a);
}

static void test_verified_devices(void **state)
{
    history h;
    pc_dt_pin pin;
    Parley__V1__DeviceList *dl;

    (void)state;
    history_make(&h);
    memset(&pin, 0, sizeof pin);
    assert_null(pc_dt_verified_devices(&pin, "alice"));
    pin_at(&pin, &h, 4);
    dl = pc_dt_verified_devices(&pin, "alice");
    assert_non_null(dl);
    assert_string_equal(dl->account, "alice");
    assert_int_equal(dl->latest_version, 4);
    assert_int_equal(dl->n_lists, 0);
    assert_int_equal(dl->n_devices, 2);
    assert_int_equal(dl->devices[0]->device_id, 1);
    assert_int_equal(dl->devices[1]->device_id, 3);
    assert_int_equal(dl->devices[1]->registration_id, h.d[2].registration_id);
    assert_memory_equal(dl->devices[1]->signing_key.data, h.d[2].signing_pk, 32);
    assert_memory_equal(dl->devices[1]->identity_key.data, h.d[2].identity_pk, 32);
    assert_memory_equal(dl->account_key.data, h.key.pk, 32);
    parley__v1__device_list__free_unpacked(dl, NULL);
}

/* The vault keeps a pin per account across a restart; the own account starts pinned to the
 * own account key; a peer file of the format before pins reads as "no pin". */
static void test_vault_pins(void **state)
{
    char dir[64], path[128];
    pc_identity me;
    pc_vault *v;
    pc_dt_pin *pin, saved;
    history h;
    pc_status st;

    (void)state;
    history_make(&h);
    snprintf(dir, sizeof dir, "/tmp/parley-devtrust-XXXXXX");
    assert_non_null(mkdtemp(dir));
    memset(&me, 0, sizeof me);
    snprintf(me.username, sizeof me.username, "bob");
    me.device_id = 1;
    assert_int_equal(pc_keys_generate(&me.keys, &st), 0);
    assert_int_equal(pc_vault_open(dir, &me, &v, &st), 0);

    pin = pc_vault_pin(v, "alice", &st);
    assert_non_null(pin);
    assert_false(pin->pinned);
    pin_at(pin, &h, 3);
    saved = *pin;
    pc_vault_pin_changed(v, "alice");
    pin = pc_vault_pin(v, "bob", &st);
    assert_true(pin->pinned);
    assert_false(pin->has_list);
    assert_memory_equal(pin->account_pk, me.keys.account_pk, 32);
    assert_null(pc_vault_pin(v, "../x", &st));
    assert_int_equal(pc_vault_save(v, &st), 0);
    pc_vault_free(v);

    assert_int_equal(pc_vault_open(dir, &me, &v, &st), 0);
    pin = pc_vault_pin(v, "alice", &st);
    if (!pin)
        fail_msg("%s", st.msg);
    assert_true(pin->pinned && pin->has_list);
    assert_memory_equal(pin->account_pk, saved.account_pk, 32);
    assert_string_equal(pin->list.account, "alice");
    assert_int_equal(pin->list.version, 3);
    assert_int_equal(pin->list.has_prev, 1);
    assert_memory_equal(pin->list.prev_hash, saved.list.prev_hash, PDL_HASH_BYTES);
    assert_int_equal(pin->list.max_device_id, saved.list.max_device_id);
    assert_int_equal(pin->list.timestamp_ms, saved.list.timestamp_ms);
    assert_int_equal(pin->list.n, 3);
    assert_memory_equal(pin->list.dev, saved.list.dev, 3 * sizeof saved.list.dev[0]);
    assert_memory_equal(pin->list.hash, saved.list.hash, PDL_HASH_BYTES);
    pc_vault_free(v);

    /* the same file rewritten as format version 1 (no pin section): devices only */
    {
        static const uint8_t v1[] = { 'P', 'C', 'P', 'E', 1, 0, 0, 0, 0 };
        uint8_t blob[sizeof v1 + 16];
        FILE *f;
        memcpy(blob, v1, sizeof v1);
        crypto_generichash(blob + sizeof v1, 16, v1, sizeof v1, NULL, 0);
        snprintf(path, sizeof path, "%s/peers/alice", dir);
        f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(blob, 1, sizeof blob, f), sizeof blob);
        fclose(f);
    }
    assert_int_equal(pc_vault_open(dir, &me, &v, &st), 0);
    pin = pc_vault_pin(v, "alice", &st);
    if (!pin)
        fail_msg("%s", st.msg);
    assert_false(pin->pinned);
    assert_false(pin->has_list);
    pc_vault_free(v);

    snprintf(path, sizeof path, "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_contact_pins),
        cmocka_unit_test(test_next_versions_accepted),
        cmocka_unit_test(test_rollback_refused),
        cmocka_unit_test(test_fork_refused),
        cmocka_unit_test(test_key_change_and_signature),
        cmocka_unit_test(test_gap_refused),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_ghosts),
        cmocka_unit_test(test_verified_devices),
        cmocka_unit_test(test_vault_pins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
