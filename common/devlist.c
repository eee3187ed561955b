#include "devlist.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "parley.pb-c.h"

_Static_assert(sizeof PDL_TAG - 1 == PDL_TAG_BYTES, "tag length");

static int fail(const char **why, const char *msg)
{
    if (why)
        *why = msg;
    return -1;
}

static int fail_not_next(const char **why, const char *msg)
{
    fail(why, msg);
    return PDL_ERR_NOT_NEXT;
}

/* NULL when every device of l has its own keys, else why not. */
static const char *shared_key(const pdl_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        for (size_t j = i + 1; j < l->n; j++) {
            if (!memcmp(l->dev[i].signing_pk, l->dev[j].signing_pk, 32))
                return "two devices of the device list share a signing key";
            if (!memcmp(l->dev[i].identity_pk, l->dev[j].identity_pk, 32))
                return "two devices of the device list share an identity key";
        }
    return NULL;
}

int pdl_parse(const uint8_t *body, size_t len, pdl_list *out, const char **why)
{
    if (!body || !len || len > PARLEY_DEVICE_LIST_BODY_MAX)
        return fail(why, "device list body empty or too large");
    Parley__V1__DeviceListBody *b = parley__v1__device_list_body__unpack(NULL, len, body);
    if (!b)
        return fail(why, "device list body does not decode");
    int rc = -1;
    memset(out, 0, sizeof *out);
    char norm[PARLEY_NAME_MAX + 1] = { 0 };
    if (!b->account || pauth_name_normalize(b->account, norm) < 0 || strcmp(norm, b->account)) {
        fail(why, "device list names no valid (normalised) account");
        goto done;
    }
    memcpy(out->account, norm, sizeof norm);
    if (b->version < 1) {
        fail(why, "device list version must be 1 or more");
        goto done;
    }
    out->version = b->version;
    if (b->version == 1) {
        if (b->prev_hash.len) {
            fail(why, "device list version 1 has no previous hash");
            goto done;
        }
    } else {
        if (b->prev_hash.len != PDL_HASH_BYTES) {
            fail(why, "device list prev_hash must be 32 bytes");
            goto done;
        }
        out->has_prev = 1;
        memcpy(out->prev_hash, b->prev_hash.data, PDL_HASH_BYTES);
    }
    if (b->n_devices == 0) {
        fail(why, "device list has no device");
        goto done;
    }
    if (b->n_devices > PARLEY_MAX_DEVICES_PER_ACCOUNT) {
        fail(why, "device list has more devices than an account may have");
        rc = PDL_ERR_TOO_MANY;
        goto done;
    }
    uint32_t last = 0;
    for (size_t i = 0; i < b->n_devices; i++) {
        const Parley__V1__ListedDevice *d = b->devices[i];
        if (d->device_id <= last) {
            fail(why, "device list ids must be non-zero and strictly ascending");
            goto done;
        }
        if (d->registration_id < 1 || d->registration_id > PARLEY_REGISTRATION_ID_MAX) {
            fail(why, "device list registration id out of range");
            goto done;
        }
        if (d->signing_key.len != 32 || d->identity_key.len != 32) {
            fail(why, "device list keys must be 32 bytes");
            goto done;
        }
        pdl_device *o = &out->dev[i];
        o->device_id = d->device_id;
        o->registration_id = d->registration_id;
        memcpy(o->signing_pk, d->signing_key.data, 32);
        memcpy(o->identity_pk, d->identity_key.data, 32);
        last = d->device_id;
    }
    out->n = b->n_devices;
    const char *shared = shared_key(out);
    if (shared) {
        fail(why, shared);
        goto done;
    }
    if (b->max_device_id < last) {
        fail(why, "device list max_device_id is below a listed id");
        goto done;
    }
    out->max_device_id = b->max_device_id;
    out->timestamp_ms = b->timestamp_ms;
    pdl_hash(out->hash, body, len);
    rc = 0;
done:
    parley__v1__device_list_body__free_unpacked(b, NULL);
    return rc;
}

int pdl_encode(pdl_list *l, uint8_t **body, size_t *len)
{
    if (!l->n || l->n > PARLEY_MAX_DEVICES_PER_ACCOUNT || l->version < 1)
        return -1;
    Parley__V1__ListedDevice dev[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    Parley__V1__ListedDevice *devp[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    for (size_t i = 0; i < l->n; i++) {
        parley__v1__listed_device__init(&dev[i]);
        dev[i].device_id = l->dev[i].device_id;
        dev[i].registration_id = l->dev[i].registration_id;
        dev[i].signing_key.data = l->dev[i].signing_pk;
        dev[i].signing_key.len = 32;
        dev[i].identity_key.data = l->dev[i].identity_pk;
        dev[i].identity_key.len = 32;
        devp[i] = &dev[i];
    }
    Parley__V1__DeviceListBody b = PARLEY__V1__DEVICE_LIST_BODY__INIT;
    b.account = l->account;
    b.version = l->version;
    if (l->has_prev) {
        b.prev_hash.data = l->prev_hash;
        b.prev_hash.len = PDL_HASH_BYTES;
    }
    b.n_devices = l->n;
    b.devices = devp;
    b.max_device_id = l->max_device_id;
    b.timestamp_ms = l->timestamp_ms;
    size_t n = parley__v1__device_list_body__get_packed_size(&b);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -1;
    parley__v1__device_list_body__pack(&b, buf);
    pdl_hash(l->hash, buf, n);
    *body = buf;
    *len = n;
    return 0;
}

/* The transcript is built in one buffer: bodies are bounded by PARLEY_DEVICE_LIST_BODY_MAX. */
static size_t transcript(uint8_t *out, const uint8_t *body, size_t len)
{
    memcpy(out, PDL_TAG, PDL_TAG_BYTES);
    memcpy(out + PDL_TAG_BYTES, body, len);
    return PDL_TAG_BYTES + len;
}

void pdl_sign(uint8_t sig[PDL_SIG_BYTES], const uint8_t *body, size_t len,
              const uint8_t account_sk[64])
{
    uint8_t t[PDL_TAG_BYTES + PARLEY_DEVICE_LIST_BODY_MAX];
    if (len > PARLEY_DEVICE_LIST_BODY_MAX) {
        memset(sig, 0, PDL_SIG_BYTES); /* never verifies */
        return;
    }
    crypto_sign_ed25519_detached(sig, NULL, t, transcript(t, body, len), account_sk);
}

int pdl_verify(const uint8_t *sig, size_t sig_len, const uint8_t *body, size_t len,
               const uint8_t account_pk[32])
{
    uint8_t t[PDL_TAG_BYTES + PARLEY_DEVICE_LIST_BODY_MAX];
    if (!sig || sig_len != PDL_SIG_BYTES || !body || len > PARLEY_DEVICE_LIST_BODY_MAX)
        return -1;
    return pauth_verify(sig, t, transcript(t, body, len), account_pk);
}

void pdl_hash(uint8_t out[PDL_HASH_BYTES], const uint8_t *body, size_t len)
{
    crypto_generichash(out, PDL_HASH_BYTES, body, len, NULL, 0);
}

const pdl_device *pdl_find(const pdl_list *l, uint32_t device_id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->dev[i].device_id == device_id)
            return &l->dev[i];
    return NULL;
}

int pdl_check_next(const pdl_list *prev, const pdl_list *next, const char **why)
{
    if (!prev) {
        if (next->version != 1)
            return fail_not_next(why, "the first device list must be version 1");
        return 0;
    }
    if (strcmp(prev->account, next->account))
        return fail(why, "device list names another account");
    if (next->version != prev->version + 1)
        return fail_not_next(why, "device list is not the next version");
    if (!next->has_prev || memcmp(next->prev_hash, prev->hash, PDL_HASH_BYTES))
        return fail_not_next(why, "device list does not chain to the previous version");
    uint32_t max = prev->max_device_id;
    for (size_t i = 0; i < next->n; i++) {
        const pdl_device *d = &next->dev[i];
        const pdl_device *p = pdl_find(prev, d->device_id);
        if (p) {
            if (p->registration_id != d->registration_id ||
                memcmp(p->signing_pk, d->signing_pk, 32) ||
                memcmp(p->identity_pk, d->identity_pk, 32))
                return fail(why, "device list changes the keys of a listed device");
        } else if (d->device_id <= prev->max_device_id) {
            return fail(why, "device list reuses a device id");
        }
        if (d->device_id > max)
            max = d->device_id;
    }
    if (next->max_device_id != max)
        return fail(why, "device list max_device_id is not the highest id ever used");
    return 0;
}

void pdl_diff(const pdl_list *prev, const pdl_list *next, uint32_t *added, size_t *n_added,
              uint32_t *removed, size_t *n_removed)
{
    *n_added = *n_removed = 0;
    for (size_t i = 0; i < next->n; i++)
        if (!prev || !pdl_find(prev, next->dev[i].device_id))
            added[(*n_added)++] = next->dev[i].device_id;
    if (!prev)
        return;
    for (size_t i = 0; i < prev->n; i++)
        if (!pdl_find(next, prev->dev[i].device_id))
            removed[(*n_removed)++] = prev->dev[i].device_id;
}
