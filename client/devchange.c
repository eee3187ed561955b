#include "devchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "session.h"

/* DEVICE_LIST_CONFLICT answers (another device changed the list between our fetch and our
 * publish) retried with a fresh fetch before the caller hears of it */
#define CONFLICT_RETRIES 2

typedef struct {
    pc_conn *c;
    pc_dt_pin *pin;
    const pc_keys *k;
    char account[PARLEY_NAME_MAX + 1];
    pc_devchange ch;
    pc_devchange_cb cb;
    void *ud;
    int conflicts;
    int upgrade_only;     /* pc_devchange_upgrade_start: publish only a first list */
    pdl_list base;        /* the version the change starts from (version 0: none signed yet) */
    pdl_list next;        /* the version being published */
    uint32_t device_id;   /* added or removed */
} dc_op;

static int fetch(dc_op *op, pc_status *st);

static void done(dc_op *op, const pc_status *st)
{
    pc_devchange_cb cb = op->cb;
    void *ud = op->ud;
    uint32_t id = op->device_id;

    if (st->kind == PC_OK) {
        /* the pin outlives op: the callback gets the pinned copy */
        cb(st, &op->pin->list, id, ud);
    } else {
        cb(st, NULL, 0, ud);
    }
    free(op);
}

static void fail_op(dc_op *op, const pc_status *st)
{
    done(op, st);
}

/* The refusal of a device to add because op's account has the most devices already; -1. */
static int too_many(const dc_op *op, pc_status *st)
{
    pc_status_set(st, PC_ERR_SERVER,
                  "%s already has %d devices (the most): remove one first (parley devices "
                  "remove ID)",
                  op->account, PARLEY_MAX_DEVICES_PER_ACCOUNT);
    st->server_code = PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES;
    return -1;
}

static void unexpected(const Parley__V1__ServerFrame *f, const char *req, pc_status *r)
{
    pc_status_set(r, PC_ERR_PROTO, "unexpected answer to %s (frame %d)", req, (int)f->body_case);
}

/* f when it is the answer of body case want to request req (a name); else NULL with *r the
 * failure: the connection's (st), the server's Error, or an unexpected frame. */
static const Parley__V1__ServerFrame *answer(const Parley__V1__ServerFrame *f,
                                             const pc_status *st, int want, const char *req,
                                             pc_status *r)
{
    if (!f) {
        *r = *st;
        return NULL;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        pc_status_from_error(r, f->error);
        return NULL;
    }
    if ((int)f->body_case == want)
        return f;
    unexpected(f, req, r);
    return NULL;
}

static void on_published(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                         void *ud)
{
    dc_op *op = ud;
    pc_status r;

    (void)c;
    if (!answer(f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICE_LIST_OK, "PublishDeviceList", &r)) {
        int code = f && r.kind == PC_ERR_SERVER ? r.server_code : 0;
        if (code == PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT &&
            op->conflicts++ < CONFLICT_RETRIES) {
            if (fetch(op, &r) == 0)
                return;
        } else if (code == PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES) {
            too_many(op, &r);
        } else if (code == PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT) {
            pc_status_set(&r, PC_ERR_SERVER,
                          "the device list of %s keeps changing under us: try again",
                          op->account);
            r.server_code = code;
        }
        fail_op(op, &r);
        return;
    }
    if (!f->device_list_ok || f->device_list_ok->version != op->next.version) {
        unexpected(f, "PublishDeviceList", &r);
        fail_op(op, &r);
        return;
    }
    op->pin->list = op->next;
    op->pin->has_list = 1;
    pc_status_ok(&r);
    done(op, &r);
}

/* The next version from op->base, or -1 with st set. */
static int make_next(dc_op *op, pc_status *st)
{
    const pdl_list *cur = &op->base;
    pdl_list *n = &op->next;

    *n = *cur;
    n->version = cur->version + 1;
    n->has_prev = cur->version > 0; /* version 1 has no previous hash */
    memset(n->prev_hash, 0, PDL_HASH_BYTES);
    if (n->has_prev)
        memcpy(n->prev_hash, cur->hash, PDL_HASH_BYTES);
    n->timestamp_ms = pclock_wall_ms();
    if (op->upgrade_only)
        return 0;
    if (op->ch.add) {
        if (cur->n >= PARLEY_MAX_DEVICES_PER_ACCOUNT)
            return too_many(op, st);
        for (size_t i = 0; i < cur->n; i++)
            if (!memcmp(cur->dev[i].signing_pk, op->ch.dev.signing_pk, 32) ||
                !memcmp(cur->dev[i].identity_pk, op->ch.dev.identity_pk, 32))
                return pc_status_set(st, PC_ERR_LOCAL,
                                     "device %u of %s already has these keys",
                                     cur->dev[i].device_id, op->account);
        /* ids are never reused: one above the highest the account ever had */
        op->device_id = cur->max_device_id + 1;
        n->dev[n->n] = op->ch.dev;
        n->dev[n->n].device_id = op->device_id;
        n->n++;
        n->max_device_id = op->device_id;
        return 0;
    }
    for (size_t i = 0; i < n->n; i++) {
        if (n->dev[i].device_id != op->ch.remove_id)
            continue;
        if (n->n == 1)
            return pc_status_set(st, PC_ERR_LOCAL,
                                 "device %u is the last device of %s: it cannot be removed",
                                 op->ch.remove_id, op->account);
        memmove(&n->dev[i], &n->dev[i + 1], (n->n - i - 1) * sizeof n->dev[0]);
        n->n--;
        op->device_id = op->ch.remove_id;
        return 0;
    }
    return pc_status_set(st, PC_ERR_LOCAL, "%s has no device %u", op->account,
                         op->ch.remove_id);
}

static int publish(dc_op *op, pc_status *st)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__PublishDeviceList p = PARLEY__V1__PUBLISH_DEVICE_LIST__INIT;
    Parley__V1__SignedDeviceList s = PARLEY__V1__SIGNED_DEVICE_LIST__INIT;
    uint8_t sig[PDL_SIG_BYTES], *body;
    size_t len;
    const char *why = NULL;
    pdl_list check;
    int rc;

    if (make_next(op, st) < 0)
        return -1;
    if (pdl_encode(&op->next, &body, &len) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "cannot encode the device list of %s",
                             op->account);
    /* the list must pass what the server and every other client check */
    if (pdl_parse(body, len, &check, &why) != 0 ||
        pdl_check_next(op->base.version ? &op->base : NULL, &check, &why) != 0) {
        free(body);
        return pc_status_set(st, PC_ERR_LOCAL, "the next device list of %s is invalid: %s",
                             op->account, why ? why : "?");
    }
    pdl_sign(sig, body, len, op->k->account_sk);
    s.body.data = body;
    s.body.len = len;
    s.signature.data = sig;
    s.signature.len = sizeof sig;
    p.list = &s;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PUBLISH_DEVICE_LIST;
    f.publish_device_list = &p;
    rc = pc_conn_request(op->c, &f, on_published, op, st);
    free(body);
    return rc;
}

/* Trust on upgrade: the account has no signed list (registered before migration 008), so
 * there is nothing to verify the server's device rows against. A device holding the account
 * key takes them as they are for version 0 of op->base, on two conditions that an honest
 * server always meets: the account key is this device's, and this device is among the rows
 * (or is the one being added, by a recovered device in an account session). From version 1 on,
 * every change is verified as usual. */
static int unsigned_base(dc_op *op, const Parley__V1__DeviceList *dl, pc_status *st)
{
    pdl_list *b = &op->base;
    int self = op->ch.add && !memcmp(op->ch.dev.signing_pk, op->k->signing_pk, 32);

    if (dl->account_key.len != 32 || memcmp(dl->account_key.data, op->k->account_pk, 32))
        return pc_status_set(st, PC_ERR_TRUST,
                             "the server's account key of %s is not this device's account key: "
                             "its device list cannot be signed",
                             op->account);
    if (dl->n_devices > PARLEY_MAX_DEVICES_PER_ACCOUNT)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "%s has %zu devices on the server, more than a device list may "
                             "hold (%d): its first device list cannot be signed",
                             op->account, dl->n_devices, PARLEY_MAX_DEVICES_PER_ACCOUNT);
    memset(b, 0, sizeof *b);
    snprintf(b->account, sizeof b->account, "%s", op->account);
    for (size_t i = 0; i < dl->n_devices; i++) {
        const Parley__V1__DeviceInfo *di = dl->devices[i];
        pdl_device d;
        size_t j;

        if (di->signing_key.len != 32 || di->identity_key.len != 32)
            return pc_status_set(st, PC_ERR_PROTO, "the server sent a device of %s without keys",
                                 op->account);
        d.device_id = di->device_id;
        d.registration_id = di->registration_id;
        memcpy(d.signing_pk, di->signing_key.data, 32);
        memcpy(d.identity_pk, di->identity_key.data, 32);
        if (!memcmp(d.signing_pk, op->k->signing_pk, 32))
            self = 1;
        /* in id order, as a list holds them */
        for (j = b->n; j > 0 && b->dev[j - 1].device_id > d.device_id; j--)
            b->dev[j] = b->dev[j - 1];
        b->dev[j] = d;
        b->n++;
        if (d.device_id > b->max_device_id)
            b->max_device_id = d.device_id;
    }
    if (!self)
        return pc_status_set(st, PC_ERR_TRUST,
                             "the server's devices of %s do not include this device: its first "
                             "device list is not signed",
                             op->account);
    return 0;
}

static int fetch(dc_op *op, pc_status *st);

static void on_devices(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                       void *ud)
{
    dc_op *op = ud;
    pc_status r;

    (void)c;
    if (!answer(f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICES, "GetDevices", &r)) {
        fail_op(op, &r);
        return;
    }
    if (!f->devices) {
        unexpected(f, "GetDevices", &r);
        fail_op(op, &r);
        return;
    }
    if (!op->pin->has_list && !f->devices->n_lists && !f->devices->latest_version) {
        /* an account from before signed lists: its first list is signed here */
        if (unsigned_base(op, f->devices, &r) < 0 || publish(op, &r) < 0)
            fail_op(op, &r);
        return;
    }
    int rc = pc_dt_accept(op->pin, op->account, f->devices, &r);
    if (rc < 0) {
        fail_op(op, &r);
        return;
    }
    if (rc == PC_DT_MORE) { /* a page of a longer chain: on from there */
        if (fetch(op, &r) < 0)
            fail_op(op, &r);
        return;
    }
    if (op->upgrade_only) { /* the account has a list: nothing to sign */
        pc_status_ok(&r);
        done(op, &r);
        return;
    }
    op->base = op->pin->list;
    if (publish(op, &r) < 0)
        fail_op(op, &r);
}

static int fetch(dc_op *op, pc_status *st)
{
    return pc_get_devices(op->c, op->account, op->pin->has_list ? op->pin->list.version : 0,
                          on_devices, op, st);
}

static int start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k, const char *account,
                 const pc_devchange *ch, int upgrade_only, pc_devchange_cb cb, void *ud,
                 pc_status *st)
{
    dc_op *op;

    if (!k->has_account_sk)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "only a device holding the account key (the first device, or one "
                             "recovered from a kit) can change the device list");
    if (strlen(account) > PARLEY_NAME_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "invalid account name %s", account);
    /* the device holds the account key: nothing but that key may be pinned */
    if (pin->pinned && memcmp(pin->account_pk, k->account_pk, 32))
        return pc_status_set(st, PC_ERR_TRUST,
                             "the account key pinned for %s is not this device's account key",
                             account);
    if (!(op = calloc(1, sizeof *op)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (!pin->pinned) {
        pin->pinned = 1;
        memcpy(pin->account_pk, k->account_pk, 32);
    }
    op->c = c;
    op->pin = pin;
    op->k = k;
    snprintf(op->account, sizeof op->account, "%s", account);
    op->ch = *ch;
    op->upgrade_only = upgrade_only;
    op->cb = cb;
    op->ud = ud;
    if (fetch(op, st) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

int pc_devchange_start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k, const char *account,
                       const pc_devchange *ch, pc_devchange_cb cb, void *ud, pc_status *st)
{
    return start(c, pin, k, account, ch, 0, cb, ud, st);
}

int pc_devchange_upgrade_start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k,
                               const char *account, pc_devchange_cb cb, void *ud, pc_status *st)
{
    pc_devchange none;

    memset(&none, 0, sizeof none);
    return start(c, pin, k, account, &none, 1, cb, ud, st);
}
