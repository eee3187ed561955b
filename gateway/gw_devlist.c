#include "gw_devlist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_frame.h"
#include "gw_lookup.h"
#include "log.h"
#include "pgbin.h"

#define GW_SQL_DEVLIST_CURRENT                                                                 \
    "SELECT a.account_key, a.devlist_version, l.body, l.signature FROM accounts a"             \
    " LEFT JOIN device_lists l ON l.account_id = a.id AND l.version = a.devlist_version"       \
    " WHERE a.username = $1"
#define GW_SQL_DEVLIST_APPLY                                                                   \
    "SELECT r_status, r_current, r_added, r_removed"                                           \
    " FROM parley_devlist_apply($1, $2::bigint, $3, $4, $5::integer[], $6::integer[], $7)"

/* One PublishDeviceList from reading the current list until the answer. */
typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    char account[PARLEY_NAME_MAX + 1];
    uint32_t device_id; /* the publisher; 0: an account session */
    uint8_t body[PARLEY_DEVICE_LIST_BODY_MAX], sig[PDL_SIG_BYTES];
    size_t len;
    pdl_list next;
} gw_devlist_ctx;

static void gw_devlist_refuse(gw *g, gw_conn *c, gw_devlist_ctx *x, Parley__V1__ErrorCode code,
                              const char *why)
{
    switch (code) {
    case PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE:
        pmet_inc(g->m.devlist_refused_signature, 1);
        break;
    case PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT:
        pmet_inc(g->m.devlist_refused_conflict, 1);
        break;
    case PARLEY__V1__ERROR_CODE__TOO_MANY_DEVICES:
        pmet_inc(g->m.devlist_refused_too_many, 1);
        break;
    default:
        pmet_inc(g->m.devlist_refused_invalid, 1);
        break;
    }
    plog_info("device_list_refused", "conn=%llu account=%s device=%" PRIu32 " code=%s why=\"%s\"",
              (unsigned long long)x->conn_id, x->account, x->device_id,
              gw_frame_error_name(code), why);
    gw_lookup_fail(g, c, x->request_id, code, why, 0);
}

static void gw_devlist_answer(gw *g, gw_conn *c, const gw_devlist_ctx *x, uint32_t *added,
                              size_t n_added, uint32_t *removed, size_t n_removed)
{
    Parley__V1__DeviceListOk ok = PARLEY__V1__DEVICE_LIST_OK__INIT;
    ok.version = x->next.version;
    ok.n_added = n_added;
    ok.added = added;
    ok.n_removed = n_removed;
    ok.removed = removed;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_DEVICE_LIST_OK;
    sf.device_list_ok = &ok;
    gw_conn_send_frame(g, c, &sf);
}

static void gw_devlist_applied_cb(PGresult *res, const char *err, void *ud)
{
    gw_devlist_ctx *x = ud;
    gw *g = x->g;
    /* committed or not, what follows does not depend on the publisher still being here */
    uint32_t added[PARLEY_MAX_DEVICES_PER_ACCOUNT], *removed = NULL;
    long n_added = -1, n_removed = -1;
    const char *status = NULL;
    int64_t current = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        !PQgetisnull(res, 0, 0)) {
        status = PQgetvalue(res, 0, 0);
        if (ppgbin_cell_i64(res, 0, 1, &current) != 0)
            status = NULL;
        n_added = ppgbin_i32_array(PQgetvalue(res, 0, 2), PQgetlength(res, 0, 2), added,
                                   PARLEY_MAX_DEVICES_PER_ACCOUNT);
        /* rows the list never had (written into the table by hand) go too, so the removed
         * rows are not bounded by the list size; an element takes 8 bytes of the array */
        size_t cap = (size_t)PQgetlength(res, 0, 3) / 8 + 1;
        removed = malloc(cap * sizeof *removed);
        if (removed)
            n_removed = ppgbin_i32_array(PQgetvalue(res, 0, 3), PQgetlength(res, 0, 3), removed,
                                         cap);
    }
    int applied = status && !strcmp(status, "ok");
    if (applied) {
        pmet_inc(g->m.devlist_published, 1);
        pmet_inc(g->m.devlist_devices_added, n_added > 0 ? (uint64_t)n_added : 0);
        pmet_inc(g->m.devlist_devices_removed, n_removed > 0 ? (uint64_t)n_removed : 0);
        plog_info("device_list_published",
                  "conn=%llu account=%s device=%" PRIu32 " version=%" PRIu64
                  " added=%ld removed=%ld",
                  (unsigned long long)x->conn_id, x->account, x->device_id, x->next.version,
                  n_added, n_removed);
        if (n_removed > 0)
            gw_devlist_kick(g, x->account, removed, (size_t)n_removed);
        else if (n_removed < 0)
            plog_error("device_list_removed_unreadable", "account=%s version=%" PRIu64
                       " msg=\"removed devices are not disconnected\"",
                       x->account, x->next.version);
    }
    gw_conn *c = gw_lookup_result(g, x->conn_id, x->request_id, res, err,
                                  "device_list_apply_failed", "device list service unavailable");
    if (!c)
        goto out;
    if (!status || n_added < 0 || n_removed < 0) {
        if (applied) {
            /* stored; only the answer's detail is lost */
            gw_devlist_answer(g, c, x, NULL, 0, NULL, 0);
            goto out;
        }
        plog_error("device_list_apply_bad_row", "conn=%llu", (unsigned long long)x->conn_id);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "could not store the device list", 0);
    } else if (!strcmp(status, "conflict")) {
        /* another publish of the same version committed since the current list was read */
        pmet_inc(g->m.devlist_refused_conflict, 1);
        plog_info("device_list_refused",
                  "conn=%llu account=%s device=%" PRIu32 " code=DEVICE_LIST_CONFLICT"
                  " why=\"current version is now %" PRId64 "\"",
                  (unsigned long long)x->conn_id, x->account, x->device_id, current);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__DEVICE_LIST_CONFLICT,
                           "the device list changed meanwhile: fetch it (GetDevices) and sign "
                           "again", 0);
    } else if (!applied) {
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT,
                           "no such account", 0);
    } else {
        gw_devlist_answer(g, c, x, added, (size_t)n_added, removed, (size_t)n_removed);
    }
out:
    free(removed);
    free(x);
}

static void gw_devlist_current_cb(PGresult *res, const char *err, void *ud)
{
    gw_devlist_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_lookup_step(g, x->conn_id);
    if (!c)
        goto out;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_lookup_fail(g, c, x->request_id,
                       gw_lookup_pg_failed("device_list_read_failed", c->id, res, err),
                       "device list service unavailable", 0);
        goto out;
    }
    if (PQntuples(res) != 1) {
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT,
                       "no such account", 0);
        goto out;
    }
    gw_devlist_stored s = {.account = x->account};
    size_t pk_len;
    int64_t cur;
    if (ppgbin_cell_bytes(res, 0, 0, &s.account_pk, &pk_len) || pk_len != 32 ||
        ppgbin_cell_i64(res, 0, 1, &cur) || cur < 0) {
        plog_error("device_list_bad_row", "conn=%llu", (unsigned long long)c->id);
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                       "could not read the device list", 0);
        goto out;
    }
    s.cur_version = (uint64_t)cur;
    if (ppgbin_cell_bytes(res, 0, 2, &s.cur_body, &s.cur_len) != 0)
        s.cur_body = NULL; /* version 0, or the row is missing: judged below */
    const char *why = "invalid device list";
    Parley__V1__ErrorCode code = gw_devlist_judge(&s, x->body, x->len, x->sig, sizeof x->sig,
                                                  &x->next, &why);
    if (code == PARLEY__V1__ERROR_CODE__INTERNAL)
        plog_error("device_list_stored_damaged", "account=%s version=%" PRIu64, x->account,
                   s.cur_version);
    if (code != PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        gw_devlist_refuse(g, c, x, code, why);
        goto out;
    }
    char ids[GW_DEVLIST_ARRAY_TEXT_MAX], regs[GW_DEVLIST_ARRAY_TEXT_MAX], version[24];
    uint8_t keys[PARLEY_MAX_DEVICES_PER_ACCOUNT * 64];
    if (gw_devlist_apply_params(&x->next, ids, regs, keys) != 0) {
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                       "could not store the device list", 0);
        goto out;
    }
    snprintf(version, sizeof version, "%" PRIu64, x->next.version);
    const char *params[] = {x->account, version, (const char *)x->body, (const char *)x->sig,
                            ids, regs, (const char *)keys};
    const int lengths[] = {0, 0, (int)x->len, PDL_SIG_BYTES, 0, 0, (int)(x->next.n * 64)};
    const int formats[] = {0, 0, 1, 1, 0, 0, 1};
    if (ppg_query(g->pg, GW_SQL_DEVLIST_APPLY, 7, params, lengths, formats, 1,
                  gw_devlist_applied_cb, x) != 0) {
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "device list service unavailable", 0);
        goto out;
    }
    return;
out:
    free(x);
}

void gw_devlist_publish(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__PublishDeviceList *p = f->publish_device_list;
    uint64_t rid = f->request_id;
    const char *bad = NULL;
    if (!p->list)
        bad = "PublishDeviceList needs a signed list";
    else if (!p->list->body.len || p->list->body.len > PARLEY_DEVICE_LIST_BODY_MAX)
        bad = "device list body empty or too large";
    else if (p->list->signature.len != PDL_SIG_BYTES)
        bad = "device list signature must be 64 bytes";
    if (bad) {
        pmet_inc(g->m.devlist_refused_invalid, 1);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT, bad, 0);
        return;
    }
    if (gw_lookup_begin(g, c, rid) != 0)
        return;
    gw_devlist_ctx *x = malloc(sizeof *x);
    if (!x) {
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    x->device_id = c->device_id;
    memcpy(x->account, c->account, sizeof x->account);
    x->len = p->list->body.len;
    memcpy(x->body, p->list->body.data, x->len);
    memcpy(x->sig, p->list->signature.data, PDL_SIG_BYTES);
    const char *params[] = {x->account};
    if (ppg_query(g->pg, GW_SQL_DEVLIST_CURRENT, 1, params, NULL, NULL, 1, gw_devlist_current_cb,
                  x) != 0) {
        free(x);
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "device list service unavailable", 0);
    }
}
