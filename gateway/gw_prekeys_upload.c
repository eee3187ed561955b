#include "gw_prekeys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_lookup.h"
#include "gw_prekeys_check.h"
#include "log.h"
#include "pgbin.h"
#include "prekey_sig.h"

#define GW_SQL_SIGNING_KEY                                                                     \
    "SELECT signing_key FROM devices WHERE account_id = $1 AND device_id = $2"
#define GW_SQL_UPLOAD                                                                          \
    "SELECT r_status, r_detail, r_otk_count, r_spk_id"                                         \
    " FROM parley_prekeys_upload($1, $2, $3, $4, $5, $6, $7, $8, $9)"

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    char account_id[24], device_id[16]; /* the uploading device, as query parameters */
    char account[PARLEY_NAME_MAX + 1];  /* for logs */
    int has_spk, replace;
    uint32_t spk_id;
    uint8_t spk_public[32], spk_signature[64];
    char *otk_ids;     /* owned: "{1,2,...}" */
    uint8_t *otk_keys; /* owned: 32 bytes per id */
    size_t otk_keys_len;
} gw_pk_up;

static void gw_pk_up_free(gw_pk_up *x)
{
    free(x->otk_ids);
    free(x->otk_keys);
    free(x);
}

static void gw_pk_up_stored_cb(PGresult *res, const char *err, void *ud)
{
    gw_pk_up *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_lookup_result(g, x->conn_id, x->request_id, res, err,
                                  "prekeys_upload_failed", "prekey service unavailable");
    if (!c)
        goto out;
    const uint8_t *st;
    size_t stlen;
    int64_t detail = 0, spk_id = 0;
    int32_t count = 0;
    if (PQntuples(res) != 1 || ppgbin_cell_bytes(res, 0, 0, &st, &stlen) ||
        ppgbin_cell_i32(res, 0, 2, &count) || ppgbin_cell_i64(res, 0, 3, &spk_id)) {
        plog_error("prekeys_upload_bad_row", "conn=%llu", (unsigned long long)c->id);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "could not store prekeys", 0);
        goto out;
    }
    if (!PQgetisnull(res, 0, 1))
        ppgbin_cell_i64(res, 0, 1, &detail);
    char why[160];
    why[0] = '\0';
#define GW_PK_IS(s) (stlen == sizeof s - 1 && memcmp(st, s, stlen) == 0)
    if (GW_PK_IS("ok")) {
        pmet_inc(g->m.prekey_uploads, 1);
        plog_info("prekeys_uploaded",
                  "conn=%llu account=%s device=%s one_time=%d signed_prekey=%lld replace=%d",
                  (unsigned long long)c->id, x->account, x->device_id, (int)count,
                  (long long)spk_id, x->replace);
        Parley__V1__PrekeysOk ok = PARLEY__V1__PREKEYS_OK__INIT;
        ok.one_time_count = count > 0 ? (uint32_t)count : 0;
        ok.signed_prekey_id = (uint32_t)spk_id;
        Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
        sf.request_id = x->request_id;
        sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_OK;
        sf.prekeys_ok = &ok;
        gw_conn_send_frame(g, c, &sf);
        goto out;
    } else if (GW_PK_IS("spk_conflict")) {
        snprintf(why, sizeof why, "signed prekey id %lld is stored with another key",
                 (long long)detail);
    } else if (GW_PK_IS("otk_conflict")) {
        snprintf(why, sizeof why, "one-time prekey id %lld is stored with another key",
                 (long long)detail);
    } else if (GW_PK_IS("pool_full")) {
        snprintf(why, sizeof why,
                 "the one-time prekey pool would hold %lld keys; at most %d per device",
                 (long long)detail, PARLEY_PREKEYS_POOL_MAX);
    } else if (GW_PK_IS("no_device")) {
        snprintf(why, sizeof why, "this device no longer exists");
    } else {
        plog_error("prekeys_upload_bad_status", "conn=%llu", (unsigned long long)c->id);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "could not store prekeys", 0);
        goto out;
    }
#undef GW_PK_IS
    plog_info("prekeys_upload_rejected", "conn=%llu account=%s device=%s why=\"%s\"",
              (unsigned long long)c->id, x->account, x->device_id, why);
    gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT, why, 0);
out:
    gw_pk_up_free(x);
}

/* Queues the store; on failure ends the lookup and frees x. */
static void gw_pk_up_store(gw *g, gw_conn *c, gw_pk_up *x)
{
    char spk_id[16], pool_max[16];
    snprintf(spk_id, sizeof spk_id, "%" PRIu32, x->spk_id);
    snprintf(pool_max, sizeof pool_max, "%d", PARLEY_PREKEYS_POOL_MAX);
    const char *params[] = {x->account_id,
                            x->device_id,
                            x->has_spk ? spk_id : NULL,
                            x->has_spk ? (const char *)x->spk_public : NULL,
                            x->has_spk ? (const char *)x->spk_signature : NULL,
                            x->otk_ids,
                            x->otk_keys ? (const char *)x->otk_keys : "",
                            x->replace ? "t" : "f",
                            pool_max};
    const int lengths[] = {0, 0, 0, 32, 64, 0, (int)x->otk_keys_len, 0, 0};
    const int formats[] = {0, 0, 0, 1, 1, 0, 1, 0, 0};
    if (ppg_query(g->pg, GW_SQL_UPLOAD, 9, params, lengths, formats, 1, gw_pk_up_stored_cb,
                  x) != 0) {
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "prekey service unavailable", 0);
        gw_pk_up_free(x);
    }
}

static void gw_pk_up_key_cb(PGresult *res, const char *err, void *ud)
{
    gw_pk_up *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_lookup_step(g, x->conn_id);
    if (!c) {
        gw_pk_up_free(x);
        return;
    }
    const uint8_t *key;
    size_t keylen;
    Parley__V1__ErrorCode code = 0;
    const char *why = NULL;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        code = gw_lookup_pg_failed("prekeys_key_lookup_failed", c->id, res, err);
        why = "prekey service unavailable";
    } else if (PQntuples(res) != 1 || ppgbin_cell_bytes(res, 0, 0, &key, &keylen) ||
               keylen != 32) {
        code = PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
        why = "this device no longer exists";
    } else if (ppksig_verify(x->spk_signature, x->spk_id, x->spk_public, key) != 0) {
        pmet_inc(g->m.prekey_invalid_signatures, 1);
        plog_info("prekeys_invalid_signature", "conn=%llu account=%s device=%s spk=%" PRIu32,
                  (unsigned long long)c->id, x->account, x->device_id, x->spk_id);
        code = PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE;
        why = "signed prekey signature does not verify with the device signing key";
    }
    if (why) {
        gw_lookup_fail(g, c, x->request_id, code, why, 0);
        gw_pk_up_free(x);
        return;
    }
    gw_pk_up_store(g, c, x);
}

void gw_prekeys_upload(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__UploadPrekeys *u = f->upload_prekeys;
    uint64_t rid = f->request_id;
    const char *why = NULL;
    if (gw_prekeys_check_upload(u, &why) != 0) {
        plog_debug("prekeys_upload_invalid", "conn=%llu why=\"%s\"", (unsigned long long)c->id,
                   why);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT, why, 0);
        return;
    }
    if (gw_lookup_begin(g, c, rid) != 0)
        return;
    gw_pk_up *x = calloc(1, sizeof *x);
    if (!x || gw_prekeys_upload_params(u, &x->otk_ids, &x->otk_keys, &x->otk_keys_len) != 0) {
        free(x);
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    snprintf(x->account_id, sizeof x->account_id, "%lld", (long long)c->account_id);
    snprintf(x->device_id, sizeof x->device_id, "%" PRIu32, c->device_id);
    snprintf(x->account, sizeof x->account, "%s", c->account);
    x->replace = u->replace_one_time != 0;
    if (u->signed_prekey) {
        x->has_spk = 1;
        x->spk_id = u->signed_prekey->id;
        memcpy(x->spk_public, u->signed_prekey->public_key.data, 32);
        memcpy(x->spk_signature, u->signed_prekey->signature.data, 64);
    }
    if (!x->has_spk) {
        gw_pk_up_store(g, c, x);
        return;
    }
    /* the signing key is not kept per connection (memory of idle connections): read it */
    const char *params[] = {x->account_id, x->device_id};
    if (ppg_query(g->pg, GW_SQL_SIGNING_KEY, 2, params, NULL, NULL, 1, gw_pk_up_key_cb, x) !=
        0) {
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "prekey service unavailable", 0);
        gw_pk_up_free(x);
    }
}
