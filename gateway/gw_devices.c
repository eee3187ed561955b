#include "gw_devices.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gw.h"
#include "gw_lookup.h"
#include "pgbin.h"

#define GW_SQL_DEVICES                                                                         \
    "SELECT d.device_id, d.registration_id, d.signing_key, d.identity_key FROM accounts a"     \
    " LEFT JOIN devices d ON d.account_id = a.id WHERE a.username = $1 ORDER BY d.device_id"

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    char account[PARLEY_NAME_MAX + 1];
} gw_devices_ctx;

static void gw_devices_cb(PGresult *res, const char *err, void *ud)
{
    gw_devices_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_lookup_result(g, x->conn_id, x->request_id, res, err,
                                  "devices_lookup_failed", "account service unavailable");
    if (!c)
        goto out;
    int n = PQntuples(res);
    if (n == 0) {
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT,
                           "no such account", 0);
        goto out;
    }
    Parley__V1__DeviceInfo *infos = calloc((size_t)n, sizeof *infos);
    Parley__V1__DeviceInfo **ptrs = calloc((size_t)n, sizeof *ptrs);
    if (!infos || !ptrs) {
        free(infos);
        free(ptrs);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "out of memory", 0);
        goto out;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int32_t dev, reg;
        const uint8_t *sk, *ik;
        size_t sklen, iklen;
        /* an account without devices comes back as one row of NULLs */
        if (ppgbin_cell_i32(res, i, 0, &dev) || ppgbin_cell_i32(res, i, 1, &reg) ||
            ppgbin_cell_bytes(res, i, 2, &sk, &sklen) || ppgbin_cell_bytes(res, i, 3, &ik, &iklen))
            continue;
        Parley__V1__DeviceInfo *d = &infos[k];
        parley__v1__device_info__init(d);
        d->device_id = (uint32_t)dev;
        d->registration_id = (uint32_t)reg;
        d->signing_key.data = (uint8_t *)sk;
        d->signing_key.len = sklen;
        d->identity_key.data = (uint8_t *)ik;
        d->identity_key.len = iklen;
        ptrs[k++] = d;
    }
    Parley__V1__DeviceList list = PARLEY__V1__DEVICE_LIST__INIT;
    list.account = x->account;
    list.n_devices = k;
    list.devices = ptrs;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_DEVICES;
    sf.devices = &list;
    gw_conn_send_frame(g, c, &sf);
    free(infos);
    free(ptrs);
out:
    free(x);
}

void gw_devices_handle(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    uint64_t rid = f->request_id;
    if (gw_lookup_begin(g, c, rid) != 0)
        return;
    gw_devices_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    const char *name = f->get_devices->account;
    if (!name || pauth_name_normalize(name, x->account) != 0) {
        free(x);
        /* an invalid name can never have been registered */
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT, "no such account", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    const char *params[] = {x->account};
    if (ppg_query(g->pg, GW_SQL_DEVICES, 1, params, NULL, NULL, 1, gw_devices_cb, x) != 0) {
        free(x);
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "account service unavailable", 0);
    }
}
