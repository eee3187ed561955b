#include "prekeys.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"

/* ---- upload ------------------------------------------------------------------------------- */

typedef struct {
    pc_prekeys_upload_cb cb;
    void *ud;
} upload_op;

static void upload_on_response(pc_conn *c, const Parley__V1__ServerFrame *f,
                               const pc_status *st, void *ud)
{
    upload_op op = *(upload_op *)ud;
    pc_status r;

    free(ud);
    if (!f) {
        op.cb(c, st, NULL, op.ud);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_OK && f->prekeys_ok) {
        pc_prekeys_counts counts = { f->prekeys_ok->one_time_count,
                                     f->prekeys_ok->signed_prekey_id };
        pc_status_ok(&r);
        op.cb(c, &r, &counts, op.ud);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error)
        pc_status_from_error(&r, f->error);
    else
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to UploadPrekeys (frame %d)",
                      (int)f->body_case);
    op.cb(c, &r, NULL, op.ud);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int check_opks(const pc_prekeys_opk *opks, size_t n, pc_status *st)
{
    uint32_t ids[PARLEY_PREKEYS_UPLOAD_MAX];

    if (n > PARLEY_PREKEYS_UPLOAD_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "at most %d one-time prekeys per upload",
                             PARLEY_PREKEYS_UPLOAD_MAX);
    if (n && !opks)
        return pc_status_set(st, PC_ERR_LOCAL, "no one-time prekeys given");
    for (size_t i = 0; i < n; i++) {
        if (opks[i].id == 0)
            return pc_status_set(st, PC_ERR_LOCAL, "one-time prekey id 0");
        ids[i] = opks[i].id;
    }
    qsort(ids, n, sizeof ids[0], cmp_u32);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1])
            return pc_status_set(st, PC_ERR_LOCAL, "one-time prekey id %u twice",
                                 (unsigned)ids[i]);
    return 0;
}

int pc_prekeys_upload(pc_conn *c, const pc_prekeys_spk *spk, const pc_prekeys_opk *opks,
                      size_t n, int replace_one_time, pc_prekeys_upload_cb cb, void *ud,
                      pc_status *st)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__UploadPrekeys u = PARLEY__V1__UPLOAD_PREKEYS__INIT;
    Parley__V1__SignedPrekey s = PARLEY__V1__SIGNED_PREKEY__INIT;
    Parley__V1__OneTimePrekey items[PARLEY_PREKEYS_UPLOAD_MAX];
    Parley__V1__OneTimePrekey *ptrs[PARLEY_PREKEYS_UPLOAD_MAX];
    upload_op *op;

    if (!c || !cb)
        return pc_status_set(st, PC_ERR_LOCAL, "no connection or callback");
    if (check_opks(opks, n, st) < 0)
        return -1;
    if (spk) {
        if (spk->id == 0)
            return pc_status_set(st, PC_ERR_LOCAL, "signed prekey id 0");
        s.id = spk->id;
        s.public_key.data = (uint8_t *)spk->pk;
        s.public_key.len = 32;
        s.signature.data = (uint8_t *)spk->sig;
        s.signature.len = 64;
        u.signed_prekey = &s;
    }
    for (size_t i = 0; i < n; i++) {
        parley__v1__one_time_prekey__init(&items[i]);
        items[i].id = opks[i].id;
        items[i].public_key.data = (uint8_t *)opks[i].pk;
        items[i].public_key.len = 32;
        ptrs[i] = &items[i];
    }
    u.n_one_time_prekeys = n;
    u.one_time_prekeys = n ? ptrs : NULL;
    u.replace_one_time = replace_one_time != 0;
    op = malloc(sizeof *op);
    if (!op)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    op->cb = cb;
    op->ud = ud;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_UPLOAD_PREKEYS;
    f.upload_prekeys = &u;
    if (pc_conn_request(c, &f, upload_on_response, op, st) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- fetch -------------------------------------------------------------------------------- */

void pc_prekey_bundles_free(pc_prekey_bundles *b)
{
    if (!b)
        return;
    free(b->bundles);
    free(b);
}

static int copy_key(uint8_t *dst, const ProtobufCBinaryData *src, size_t len)
{
    if (src->len != len || !src->data)
        return -1;
    memcpy(dst, src->data, len);
    return 0;
}

int pc_prekeys_parse_bundles(const Parley__V1__PrekeyBundles *m, pc_prekey_bundles **out,
                             pc_status *st)
{
    pc_prekey_bundles *b;

    *out = NULL;
    if (m->n_bundles > PARLEY_MAX_DEVICES_PER_ACCOUNT)
        return pc_status_set(st, PC_ERR_PROTO, "%zu prekey bundles (at most %d)", m->n_bundles,
                             PARLEY_MAX_DEVICES_PER_ACCOUNT);
    b = calloc(1, sizeof *b);
    if (!b || (m->n_bundles && !(b->bundles = calloc(m->n_bundles, sizeof *b->bundles)))) {
        free(b);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    if (m->account && pauth_name_normalize(m->account, b->account) < 0)
        b->account[0] = '\0';
    for (size_t i = 0; i < m->n_bundles; i++) {
        const Parley__V1__PrekeyBundle *in = m->bundles[i];
        pc_prekey_bundle *o = &b->bundles[i];

        /* ascending as promised (docs/PROTOCOL.md), which also rules out a device twice */
        if (!in || in->device_id == 0 || (i && in->device_id <= b->bundles[i - 1].device_id) ||
            copy_key(o->signing_pk, &in->signing_key, 32) < 0 ||
            copy_key(o->identity_pk, &in->identity_key, 32) < 0)
            goto bad;
        o->device_id = in->device_id;
        o->registration_id = in->registration_id;
        if (in->signed_prekey) {
            if (in->signed_prekey->id == 0 ||
                copy_key(o->spk_pk, &in->signed_prekey->public_key, 32) < 0 ||
                copy_key(o->spk_sig, &in->signed_prekey->signature, 64) < 0)
                goto bad;
            o->has_spk = 1;
            o->spk_id = in->signed_prekey->id;
        }
        if (in->one_time_prekey) {
            if (in->one_time_prekey->id == 0 ||
                copy_key(o->opk_pk, &in->one_time_prekey->public_key, 32) < 0)
                goto bad;
            o->has_opk = 1;
            o->opk_id = in->one_time_prekey->id;
        }
        b->n++;
    }
    *out = b;
    return 0;
bad:
    pc_prekey_bundles_free(b);
    return pc_status_set(st, PC_ERR_PROTO, "malformed prekey bundle from the server");
}

typedef struct {
    pc_prekeys_fetch_cb cb;
    void *ud;
} fetch_op;

static void fetch_on_response(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                              void *ud)
{
    fetch_op op = *(fetch_op *)ud;
    pc_prekey_bundles *b;
    pc_status r;

    free(ud);
    if (!f) {
        op.cb(c, st, NULL, op.ud);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_BUNDLES && f->bundles) {
        if (pc_prekeys_parse_bundles(f->bundles, &b, &r) < 0) {
            op.cb(c, &r, NULL, op.ud);
            return;
        }
        pc_status_ok(&r);
        op.cb(c, &r, b, op.ud);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error)
        pc_status_from_error(&r, f->error);
    else
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to GetPrekeys (frame %d)",
                      (int)f->body_case);
    op.cb(c, &r, NULL, op.ud);
}

int pc_prekeys_fetch(pc_conn *c, const char *account, const uint32_t *device_ids, size_t n,
                     pc_prekeys_fetch_cb cb, void *ud, pc_status *st)
{
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__GetPrekeys g = PARLEY__V1__GET_PREKEYS__INIT;
    fetch_op *op;

    if (!c || !cb || !account)
        return pc_status_set(st, PC_ERR_LOCAL, "no connection, account or callback");
    if (n > PARLEY_PREKEYS_FETCH_DEVICES_MAX || (n && !device_ids))
        return pc_status_set(st, PC_ERR_LOCAL, "at most %d device ids per fetch",
                             PARLEY_PREKEYS_FETCH_DEVICES_MAX);
    op = malloc(sizeof *op);
    if (!op)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    op->cb = cb;
    op->ud = ud;
    g.account = (char *)account;
    g.n_device_ids = n;
    g.device_ids = n ? (uint32_t *)device_ids : NULL;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_GET_PREKEYS;
    f.get_prekeys = &g;
    if (pc_conn_request(c, &f, fetch_on_response, op, st) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

/* ---- push --------------------------------------------------------------------------------- */

int pc_prekeys_low_push(const Parley__V1__ServerFrame *f, uint32_t *one_time_count)
{
    if (!f || f->body_case != PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_LOW || !f->prekeys_low)
        return 0;
    *one_time_count = f->prekeys_low->one_time_count;
    return 1;
}
