#include "gw_devices.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gw.h"
#include "gw_lookup.h"
#include "log.h"
#include "pgbin.h"

/* One statement, one snapshot: row kind 0 is the account (devlist_version, account_key), kind
 * 1 a device row (device_id, registration_id, signing_key, identity_key), kind 2 a signed list
 * (version, body, signature): versions from known_version (0: the current one) up to the
 * current one, at most $3 of them, the oldest: a client further behind pages through the chain
 * from where it stands, asking again from the newest one it got. */
#define GW_SQL_DEVICES                                                                         \
    "WITH a AS (SELECT id, account_key, devlist_version FROM accounts WHERE username = $1)"     \
    " SELECT 0 AS k, a.devlist_version AS n, 0 AS reg, a.account_key AS b1, NULL::bytea AS b2"  \
    " FROM a"                                                                                  \
    " UNION ALL SELECT 1, d.device_id::bigint, d.registration_id, d.signing_key, d.identity_key" \
    " FROM a JOIN devices d ON d.account_id = a.id"                                            \
    " UNION ALL SELECT 2, l.version, 0, l.body, l.signature FROM a CROSS JOIN LATERAL"         \
    " (SELECT x.version, x.body, x.signature FROM device_lists x WHERE x.account_id = a.id"    \
    " AND x.version <= a.devlist_version AND x.version >= CASE WHEN $2::bigint = 0"            \
    " THEN a.devlist_version ELSE $2::bigint END ORDER BY x.version LIMIT $3::integer) l"      \
    " ORDER BY 1, 2"

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
    Parley__V1__SignedDeviceList *lists = calloc((size_t)n, sizeof *lists);
    Parley__V1__SignedDeviceList **lptrs = calloc((size_t)n, sizeof *lptrs);
    if (!infos || !ptrs || !lists || !lptrs) {
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "out of memory", 0);
        goto done;
    }
    Parley__V1__DeviceList list = PARLEY__V1__DEVICE_LIST__INIT;
    list.account = x->account;
    size_t k = 0, nl = 0;
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        int32_t kind, reg;
        int64_t num;
        const uint8_t *b1, *b2;
        size_t l1, l2;
        if (ppgbin_cell_i32(res, i, 0, &kind) || ppgbin_cell_i64(res, i, 1, &num) ||
            ppgbin_cell_i32(res, i, 2, &reg) || ppgbin_cell_bytes(res, i, 3, &b1, &l1) ||
            (kind != 0 && ppgbin_cell_bytes(res, i, 4, &b2, &l2))) {
            bad = 1;
        } else if (kind == 0) {
            list.latest_version = (uint64_t)num;
            list.account_key.data = (uint8_t *)b1;
            list.account_key.len = l1;
        } else if (kind == 1) {
            Parley__V1__DeviceInfo *d = &infos[k];
            parley__v1__device_info__init(d);
            d->device_id = (uint32_t)num;
            d->registration_id = (uint32_t)reg;
            d->signing_key.data = (uint8_t *)b1;
            d->signing_key.len = l1;
            d->identity_key.data = (uint8_t *)b2;
            d->identity_key.len = l2;
            ptrs[k++] = d;
        } else {
            Parley__V1__SignedDeviceList *s = &lists[nl];
            parley__v1__signed_device_list__init(s);
            s->body.data = (uint8_t *)b1;
            s->body.len = l1;
            s->signature.data = (uint8_t *)b2;
            s->signature.len = l2;
            lptrs[nl++] = s;
        }
    }
    if (bad) {
        plog_error("devices_bad_row", "conn=%llu account=%s", (unsigned long long)c->id,
                   x->account);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "could not read the devices", 0);
        goto done;
    }
    list.n_devices = k;
    list.devices = ptrs;
    list.n_lists = nl;
    list.lists = lptrs;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_DEVICES;
    sf.devices = &list;
    gw_conn_send_frame(g, c, &sf);
done:
    free(infos);
    free(ptrs);
    free(lists);
    free(lptrs);
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
    char known[24], cap[16];
    snprintf(known, sizeof known, "%" PRIu64, f->get_devices->known_version);
    snprintf(cap, sizeof cap, "%d", PARLEY_DEVICE_LIST_CHAIN_MAX);
    const char *params[] = {x->account, known, cap};
    if (ppg_query(g->pg, GW_SQL_DEVICES, 3, params, NULL, NULL, 1, gw_devices_cb, x) != 0) {
        free(x);
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "account service unavailable", 0);
    }
}
