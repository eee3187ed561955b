#include "gw_prekeys_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gw_pkc_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int gw_prekeys_check_upload(const Parley__V1__UploadPrekeys *u, const char **why)
{
    const Parley__V1__SignedPrekey *s = u->signed_prekey;
    if (s) {
        if (s->id == 0) {
            *why = "signed prekey id must not be 0";
            return -1;
        }
        if (s->public_key.len != 32) {
            *why = "signed prekey public key must be 32 bytes (X25519)";
            return -1;
        }
        if (s->signature.len != 64) {
            *why = "signed prekey signature must be 64 bytes (Ed25519)";
            return -1;
        }
    }
    if (u->n_one_time_prekeys > PARLEY_PREKEYS_UPLOAD_MAX) {
        *why = "too many one-time prekeys in one upload (at most 100)";
        return -1;
    }
    _Static_assert(PARLEY_PREKEYS_UPLOAD_MAX == 100, "message above");
    uint32_t ids[PARLEY_PREKEYS_UPLOAD_MAX];
    size_t n = u->n_one_time_prekeys;
    for (size_t i = 0; i < n; i++) {
        const Parley__V1__OneTimePrekey *k = u->one_time_prekeys[i];
        if (!k || k->id == 0) {
            *why = "one-time prekey id must not be 0";
            return -1;
        }
        if (k->public_key.len != 32) {
            *why = "one-time prekey public key must be 32 bytes (X25519)";
            return -1;
        }
        ids[i] = k->id;
    }
    qsort(ids, n, sizeof ids[0], gw_pkc_cmp_u32);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1]) {
            *why = "a one-time prekey id occurs twice in the upload";
            return -1;
        }
    return 0;
}

int gw_prekeys_upload_params(const Parley__V1__UploadPrekeys *u, char **ids, uint8_t **keys,
                             size_t *keys_len)
{
    size_t n = u->n_one_time_prekeys;
    /* "{" + n * (10 digits + ",") + "}" + NUL */
    size_t cap = 3 + n * 11;
    char *t = malloc(cap);
    uint8_t *k = n ? malloc(n * 32) : NULL;
    if (!t || (n && !k)) {
        free(t);
        free(k);
        return -1;
    }
    size_t len = 0;
    t[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(t + len, cap - len, i ? ",%" PRIu32 : "%" PRIu32,
                                u->one_time_prekeys[i]->id);
        memcpy(k + i * 32, u->one_time_prekeys[i]->public_key.data, 32);
    }
    t[len++] = '}';
    t[len] = '\0';
    *ids = t;
    *keys = k;
    *keys_len = n * 32;
    return 0;
}

int gw_prekeys_device_list(const uint32_t *ids, size_t n, char out[GW_PREKEYS_DEVICES_TEXT_MAX])
{
    if (n > PARLEY_PREKEYS_FETCH_DEVICES_MAX)
        return -1;
    out[0] = '\0';
    if (n == 0)
        return 0;
    uint32_t v[PARLEY_PREKEYS_FETCH_DEVICES_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != 0 && ids[i] <= INT32_MAX)
            v[k++] = ids[i];
    qsort(v, k, sizeof v[0], gw_pkc_cmp_u32);
    size_t len = 0;
    out[len++] = '{';
    for (size_t i = 0; i < k; i++) {
        if (i && v[i] == v[i - 1])
            continue;
        len += (size_t)snprintf(out + len, GW_PREKEYS_DEVICES_TEXT_MAX - len,
                                len > 1 ? ",%" PRIu32 : "%" PRIu32, v[i]);
    }
    out[len++] = '}';
    out[len] = '\0';
    return 0;
}
