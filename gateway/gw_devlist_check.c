#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "gw_devlist.h"

Parley__V1__ErrorCode gw_devlist_judge(const gw_devlist_stored *s, const uint8_t *body,
                                       size_t len, const uint8_t *sig, size_t sig_len,
                                       pdl_list *next, const char **why)
{
    int rc = pdl_parse(body, len, next, why);
    if (rc == PDL_ERR_TOO_MANY)
        return PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES;
    if (rc != 0)
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    if (strcmp(next->account, s->account) != 0) {
        *why = "the device list names another account than the one you are authenticated as";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (pdl_verify(sig, sig_len, body, len, s->account_pk) != 0) {
        *why = "the device list is not signed by the account key";
        return PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE;
    }
    /* the stored version is read even when the published one cannot follow it: a damaged
     * store is reported as such, not as somebody else's change */
    pdl_list cur;
    const pdl_list *prev = NULL;
    if (s->cur_version > 0) {
        const char *cur_why;
        if (!s->cur_body || pdl_parse(s->cur_body, s->cur_len, &cur, &cur_why) != 0 ||
            cur.version != s->cur_version) {
            *why = "the stored device list is damaged";
            return PARLEY__V1__ERROR_CODE__INTERNAL;
        }
        prev = &cur;
    }
    rc = pdl_check_next(prev, next, why);
    if (rc == PDL_ERR_NOT_NEXT) {
        *why = "not the next version of the current device list, or not chained to it "
               "(prev_hash): fetch it (GetDevices) and sign again";
        return PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT;
    }
    if (rc != 0)
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    return PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

static int gw_devlist_array(char *out, size_t size, const pdl_list *l, int regs)
{
    size_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        uint32_t v = regs ? l->dev[i].registration_id : l->dev[i].device_id;
        int k = snprintf(out + off, size - off, "%s%" PRIu32, i ? "," : "{", v);
        if (k < 0 || (size_t)k >= size - off)
            return -1;
        off += (size_t)k;
    }
    if (off + 3 > size)
        return -1;
    memcpy(out + off, l->n ? "}" : "{}", l->n ? 2 : 3);
    return 0;
}

int gw_devlist_apply_params(const pdl_list *l, char ids[GW_DEVLIST_ARRAY_TEXT_MAX],
                            char regs[GW_DEVLIST_ARRAY_TEXT_MAX],
                            uint8_t keys[PARLEY_MAX_DEVICES_PER_ACCOUNT * 64])
{
    if (l->n > PARLEY_MAX_DEVICES_PER_ACCOUNT ||
        gw_devlist_array(ids, GW_DEVLIST_ARRAY_TEXT_MAX, l, 0) != 0 ||
        gw_devlist_array(regs, GW_DEVLIST_ARRAY_TEXT_MAX, l, 1) != 0)
        return -1;
    for (size_t i = 0; i < l->n; i++) {
        memcpy(keys + i * 64, l->dev[i].signing_pk, 32);
        memcpy(keys + i * 64 + 32, l->dev[i].identity_pk, 32);
    }
    return 0;
}
