#include "devtrust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One list of the answer, parsed and checked on its own: signed by key, for account. */
static int parse_one(const Parley__V1__SignedDeviceList *s, const uint8_t key[32],
                     const char *account, pdl_list *out, pc_status *st)
{
    const char *why = NULL;

    if (!s || pdl_parse(s->body.data, s->body.len, out, &why) != 0)
        return pc_status_set(st, PC_ERR_PROTO, "a device list of %s is malformed: %s", account,
                             why ? why : "missing");
    if (pdl_verify(s->signature.data, s->signature.len, s->body.data, s->body.len, key) != 0)
        return pc_status_set(st, PC_ERR_TRUST,
                             "device list version %llu of %s is not signed by %s's account key",
                             (unsigned long long)out->version, account, account);
    if (strcmp(out->account, account))
        return pc_status_set(st, PC_ERR_TRUST,
                             "the server answered for %s with a device list of %s", account,
                             out->account);
    return 0;
}

int pc_dt_accept(pc_dt_pin *pin, const char *account, const Parley__V1__DeviceList *dl,
                 pc_status *st)
{
    /* two lists at a time: the one checked and the one before it (each ~700 bytes) */
    pdl_list buf[2], *prev = NULL, *cur;
    const pdl_list *anchor = pin->has_list ? &pin->list : NULL;
    const uint8_t *key;
    int anchored = 0;
    const char *why;

    if (!dl || dl->account_key.len != 32 || !dl->account_key.data)
        return pc_status_set(st, PC_ERR_PROTO, "the server sent no account key for %s",
                             account);
    if (pin->pinned && memcmp(pin->account_pk, dl->account_key.data, 32))
        return pc_status_set(st, PC_ERR_TRUST,
                             "the account key of %s is not the one pinned on first contact "
                             "(the server, or %s started over): its devices cannot be trusted; "
                             "compare safety numbers (parley safety-number %s), then accept "
                             "the new key with parley trust %s",
                             account, account, account, account);
    key = dl->account_key.data;
    if (!dl->n_lists || !dl->latest_version) {
        if (anchor)
            return pc_status_set(st, PC_ERR_TRUST,
                                 "the server withholds the device list of %s (version %llu "
                                 "was seen before): rolled back",
                                 account, (unsigned long long)anchor->version);
        return pc_status_set(st, PC_ERR_PROTO, "account %s has no signed device list",
                             account);
    }
    if (dl->n_lists > PARLEY_DEVICE_LIST_CHAIN_MAX)
        return pc_status_set(st, PC_ERR_PROTO, "the server sent %zu device lists of %s",
                             dl->n_lists, account);
    for (size_t i = 0; i < dl->n_lists; i++) {
        cur = &buf[i & 1];
        if (parse_one(dl->lists[i], key, account, cur, st) < 0)
            return -1;
        if (prev && pdl_check_next(prev, cur, &why) != 0)
            return pc_status_set(st, PC_ERR_TRUST,
                                 "device list version %llu of %s does not follow version %llu "
                                 "(%s): forked",
                                 (unsigned long long)cur->version, account,
                                 (unsigned long long)prev->version, why);
        if (anchor && !anchored) {
            if (cur->version == anchor->version) {
                if (memcmp(cur->hash, anchor->hash, PDL_HASH_BYTES))
                    return pc_status_set(st, PC_ERR_TRUST,
                                         "device list version %llu of %s differs from the "
                                         "one seen before: forked",
                                         (unsigned long long)cur->version, account);
                anchored = 1;
            } else if (cur->version == anchor->version + 1) {
                if (pdl_check_next(anchor, cur, &why) != 0)
                    return pc_status_set(st, PC_ERR_TRUST,
                                         "device list version %llu of %s does not follow the "
                                         "version %llu seen before (%s): forked",
                                         (unsigned long long)cur->version, account,
                                         (unsigned long long)anchor->version, why);
                anchored = 1;
            } else if (cur->version > anchor->version + 1) {
                return pc_status_set(st, PC_ERR_TRUST,
                                     "the device lists of %s skip from version %llu (seen "
                                     "before) to %llu: the chain cannot be checked",
                                     account, (unsigned long long)anchor->version,
                                     (unsigned long long)cur->version);
            }
            /* older than the anchor: chained to what follows, nothing more to check */
        }
        prev = cur;
    }
    if (anchor && prev->version < anchor->version)
        return pc_status_set(st, PC_ERR_TRUST,
                             "the device list of %s is version %llu, older than version %llu "
                             "seen before: rolled back",
                             account, (unsigned long long)prev->version,
                             (unsigned long long)anchor->version);
    /* a full page short of the latest: progress, and the caller asks for the next page */
    int more = prev->version < dl->latest_version &&
               dl->n_lists == PARLEY_DEVICE_LIST_CHAIN_MAX &&
               (!anchor || prev->version > anchor->version);
    if (prev->version != dl->latest_version && !more)
        return pc_status_set(st, PC_ERR_PROTO,
                             "the server says the device list of %s is at version %llu but "
                             "sent version %llu last",
                             account, (unsigned long long)dl->latest_version,
                             (unsigned long long)prev->version);
    pin->pinned = 1;
    memcpy(pin->account_pk, key, 32);
    pin->list = *prev;
    pin->has_list = 1;
    return more ? PC_DT_MORE : 0;
}

static int same_device(const pdl_device *d, const Parley__V1__DeviceInfo *di)
{
    return d->registration_id == di->registration_id && di->signing_key.len == 32 &&
           di->identity_key.len == 32 && !memcmp(d->signing_pk, di->signing_key.data, 32) &&
           !memcmp(d->identity_pk, di->identity_key.data, 32);
}

void pc_dt_ghosts(const pc_dt_pin *pin, const Parley__V1__DeviceList *dl, uint32_t *ids,
                  size_t cap, size_t *n)
{
    *n = 0;
    for (size_t i = 0; dl && i < dl->n_devices; i++) {
        const Parley__V1__DeviceInfo *di = dl->devices[i];
        const pdl_device *d = pin->has_list ? pdl_find(&pin->list, di->device_id) : NULL;
        if (d && same_device(d, di))
            continue;
        if (*n < cap)
            ids[*n] = di->device_id;
        (*n)++;
    }
}

Parley__V1__DeviceList *pc_dt_verified_devices(const pc_dt_pin *pin, const char *account)
{
    Parley__V1__DeviceList dl = PARLEY__V1__DEVICE_LIST__INIT, *out = NULL;
    Parley__V1__DeviceInfo dev[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    Parley__V1__DeviceInfo *devp[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    pdl_device keys[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    uint8_t *buf;
    size_t len;

    if (!pin->has_list)
        return NULL;
    /* a copy: the message points at bytes it does not own */
    memcpy(keys, pin->list.dev, sizeof keys);
    for (size_t i = 0; i < pin->list.n; i++) {
        parley__v1__device_info__init(&dev[i]);
        dev[i].device_id = keys[i].device_id;
        dev[i].registration_id = keys[i].registration_id;
        dev[i].signing_key.data = keys[i].signing_pk;
        dev[i].signing_key.len = 32;
        dev[i].identity_key.data = keys[i].identity_pk;
        dev[i].identity_key.len = 32;
        devp[i] = &dev[i];
    }
    dl.account = (char *)account;
    dl.n_devices = pin->list.n;
    dl.devices = devp;
    dl.account_key.data = (uint8_t *)pin->account_pk;
    dl.account_key.len = 32;
    dl.latest_version = pin->list.version;
    /* packed and unpacked so that the result frees like any received message */
    len = parley__v1__device_list__get_packed_size(&dl);
    buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    parley__v1__device_list__pack(&dl, buf);
    out = parley__v1__device_list__unpack(NULL, len, buf);
    free(buf);
    return out;
}

int pc_dt_ghost_status(pc_status *st, const char *account, const uint32_t *ids, size_t n,
                       const char *outcome)
{
    char list[64];
    size_t len = 0;

    list[0] = '\0';
    for (size_t i = 0; i < n && len + 12 < sizeof list; i++) {
        int w = snprintf(list + len, sizeof list - len, "%s%u", i ? "," : "", ids[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return pc_status_set(st, PC_ERR_TRUST,
                         "%s's device%s %s %s not in %s's signed device list (added by the "
                         "server?); %s",
                         account, n == 1 ? "" : "s", list, n == 1 ? "is" : "are", account,
                         outcome);
}
