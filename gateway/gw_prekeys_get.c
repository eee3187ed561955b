#include "gw_prekeys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gw.h"
#include "gw_lookup.h"
#include "gw_prekeys_check.h"
#include "gw_prekeys_low.h"
#include "keys.h"
#include "log.h"
#include "pgbin.h"

#define GW_SQL_CLAIM                                                                           \
    "SELECT r_device_id, r_registration_id, r_signing_key, r_identity_key, r_spk_id,"          \
    " r_spk_public, r_spk_signature, r_otk_id, r_otk_public, r_otk_left"                       \
    " FROM parley_prekeys_claim($1, $2, $3, $4)"

/* Two fixed windows: KEYS[1] the requesting device's, KEYS[2] the target account's; ARGV the
 * window (ms) and the two limits. The target's window counts only requests that passed the
 * requester's, so one requester over its limit cannot use up a target's budget. Returns {0}
 * when both passed, else {1 or 2 (the window exceeded), ms left in it}. */
#define GW_LUA_FETCH_LIMIT                                                                     \
    "local function hit(k) "                                                                   \
    "local n = redis.call('INCR', k) "                                                         \
    "if n == 1 then redis.call('PEXPIRE', k, ARGV[1]) end "                                    \
    "local t = redis.call('PTTL', k) "                                                         \
    "if t < 0 then redis.call('PEXPIRE', k, ARGV[1]) t = tonumber(ARGV[1]) end "               \
    "return n, t end "                                                                         \
    "local n, t = hit(KEYS[1]) "                                                               \
    "if n > tonumber(ARGV[2]) then return {1, t} end "                                         \
    "n, t = hit(KEYS[2]) "                                                                     \
    "if n > tonumber(ARGV[3]) then return {2, t} end "                                         \
    "return {0, 0}"
#define GW_PK_WINDOW_MS "60000"

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    char account[PARLEY_NAME_MAX + 1];          /* the target, normalised */
    char devices[GW_PREKEYS_DEVICES_TEXT_MAX]; /* "" = every device */
    char req_account_id[24], req_device[16];    /* the requester, excluded from the answer */
} gw_pk_get;

/* One bundle of the answer, with the messages it points to. */
typedef struct {
    Parley__V1__PrekeyBundle b;
    Parley__V1__SignedPrekey spk;
    Parley__V1__OneTimePrekey otk;
    int32_t left; /* the device's one-time prekeys after the claim */
} gw_pk_row;

/* Fills r from row i (pointing into res); returns 0, or -1 for the "no device matched" row or a
 * malformed one. */
static int gw_pk_bundle(const PGresult *res, int i, gw_pk_row *r)
{
    Parley__V1__PrekeyBundle *b = &r->b;
    Parley__V1__SignedPrekey *spk = &r->spk;
    Parley__V1__OneTimePrekey *otk = &r->otk;
    int32_t dev, reg;
    const uint8_t *sk, *ik;
    size_t sklen, iklen;
    if (ppgbin_cell_i32(res, i, 0, &dev) || ppgbin_cell_i32(res, i, 1, &reg) ||
        ppgbin_cell_bytes(res, i, 2, &sk, &sklen) || ppgbin_cell_bytes(res, i, 3, &ik, &iklen) ||
        ppgbin_cell_i32(res, i, 9, &r->left))
        return -1;
    parley__v1__prekey_bundle__init(b);
    b->device_id = (uint32_t)dev;
    b->registration_id = (uint32_t)reg;
    b->signing_key.data = (uint8_t *)sk;
    b->signing_key.len = sklen;
    b->identity_key.data = (uint8_t *)ik;
    b->identity_key.len = iklen;
    int64_t id;
    const uint8_t *p, *s;
    size_t plen, slen;
    if (!ppgbin_cell_i64(res, i, 4, &id) && !ppgbin_cell_bytes(res, i, 5, &p, &plen) &&
        !ppgbin_cell_bytes(res, i, 6, &s, &slen)) {
        parley__v1__signed_prekey__init(spk);
        spk->id = (uint32_t)id;
        spk->public_key.data = (uint8_t *)p;
        spk->public_key.len = plen;
        spk->signature.data = (uint8_t *)s;
        spk->signature.len = slen;
        b->signed_prekey = spk;
    }
    if (!ppgbin_cell_i64(res, i, 7, &id) && !ppgbin_cell_bytes(res, i, 8, &p, &plen)) {
        parley__v1__one_time_prekey__init(otk);
        otk->id = (uint32_t)id;
        otk->public_key.data = (uint8_t *)p;
        otk->public_key.len = plen;
        b->one_time_prekey = otk;
    }
    return 0;
}

static void gw_pk_get_claimed_cb(PGresult *res, const char *err, void *ud)
{
    gw_pk_get *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_lookup_result(g, x->conn_id, x->request_id, res, err,
                                  "prekeys_claim_failed", "prekey service unavailable");
    /* one-time prekeys claimed for a connection that went away are lost: harmless, the
     * device has more and tops up */
    if (!c)
        goto out;
    int n = PQntuples(res);
    if (n == 0) {
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT,
                           "no such account", 0);
        goto out;
    }
    gw_pk_row *rows = calloc((size_t)n, sizeof *rows);
    Parley__V1__PrekeyBundle **ptrs = calloc((size_t)n, sizeof *ptrs);
    if (!rows || !ptrs) {
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "out of memory", 0);
        goto free_all;
    }
    size_t k = 0, with_otk = 0;
    for (int i = 0; i < n; i++)
        if (gw_pk_bundle(res, i, &rows[k]) == 0) {
            with_otk += rows[k].b.one_time_prekey != NULL;
            ptrs[k] = &rows[k].b;
            k++;
        }
    Parley__V1__PrekeyBundles list = PARLEY__V1__PREKEY_BUNDLES__INIT;
    list.account = x->account;
    list.n_bundles = k;
    list.bundles = ptrs;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_BUNDLES;
    sf.bundles = &list;
    gw_conn_send_frame(g, c, &sf);
    pmet_inc(g->m.prekey_fetches, 1);
    pmet_inc(g->m.prekey_bundles_otk, with_otk);
    pmet_inc(g->m.prekey_bundles_no_otk, k - with_otk);
    plog_debug("prekeys_fetched", "conn=%llu target=%s bundles=%zu one_time=%zu",
               (unsigned long long)c->id, x->account, k, with_otk);
    for (size_t i = 0; i < k; i++)
        if (rows[i].left <= PARLEY_PREKEYS_LOW_WATER)
            gw_prekeys_low_notify(g, x->account, rows[i].b.device_id, (uint32_t)rows[i].left);
free_all:
    free(rows);
    free(ptrs);
out:
    free(x);
}

static void gw_pk_get_limit_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_pk_get *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_lookup_step(g, x->conn_id);
    if (!c) {
        free(x);
        return;
    }
    const char *why = NULL;
    Parley__V1__ErrorCode code = PARLEY__V1__ERROR_CODE__RATE_LIMITED;
    uint32_t retry = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        char q[256];
        plog_warn("prekeys_ratelimit_failed", "conn=%llu error=%s", (unsigned long long)c->id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        code = PARLEY__V1__ERROR_CODE__UNAVAILABLE;
        why = "rate limiter unavailable";
    } else if (r->element[0]->integer != 0) {
        long long ttl = r->element[1]->integer;
        retry = ttl > 0 ? (uint32_t)ttl : 1000;
        if (r->element[0]->integer == 1) {
            pmet_inc(g->m.prekey_limited_requester, 1);
            why = "too many prekey fetches from this device";
        } else {
            pmet_inc(g->m.prekey_limited_target, 1);
            why = "too many prekey fetches for this account";
        }
        plog_info("prekeys_rate_limited", "conn=%llu target=%s why=\"%s\"",
                  (unsigned long long)c->id, x->account, why);
    }
    if (why) {
        gw_lookup_fail(g, c, x->request_id, code, why, retry);
        free(x);
        return;
    }
    const char *params[] = {x->account, x->req_account_id, x->req_device,
                            x->devices[0] ? x->devices : NULL};
    if (ppg_query(g->pg, GW_SQL_CLAIM, 4, params, NULL, NULL, 1, gw_pk_get_claimed_cb, x) != 0) {
        gw_lookup_fail(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "prekey service unavailable", 0);
        free(x);
    }
}

void gw_prekeys_get(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__GetPrekeys *q = f->get_prekeys;
    uint64_t rid = f->request_id;
    char devices[GW_PREKEYS_DEVICES_TEXT_MAX];
    if (gw_prekeys_device_list(q->device_ids, q->n_device_ids, devices) != 0) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                           "too many device ids (at most 8)", 0);
        return;
    }
    _Static_assert(PARLEY_PREKEYS_FETCH_DEVICES_MAX == 8, "message above");
    if (gw_lookup_begin(g, c, rid) != 0)
        return;
    gw_pk_get *x = calloc(1, sizeof *x);
    if (!x) {
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    if (!q->account || pauth_name_normalize(q->account, x->account) != 0) {
        free(x);
        /* an invalid name can never have been registered */
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT, "no such account", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    memcpy(x->devices, devices, sizeof devices);
    snprintf(x->req_account_id, sizeof x->req_account_id, "%lld", (long long)c->account_id);
    snprintf(x->req_device, sizeof x->req_device, "%" PRIu32, c->device_id);

    char who[PARLEY_NAME_MAX + 16], kreq[PKEYS_MAX], ktarget[PKEYS_MAX], lreq[24], ltarget[24];
    snprintf(who, sizeof who, "%s:%" PRIu32, c->account, c->device_id);
    snprintf(lreq, sizeof lreq, "%lld", g->cfg->prekey_fetch_rate_per_minute);
    snprintf(ltarget, sizeof ltarget, "%lld", g->cfg->prekey_target_rate_per_minute);
    if (pkeys_ratelimit(kreq, "prekeys_req", who) < 0 ||
        pkeys_ratelimit(ktarget, "prekeys_target", x->account) < 0) {
        free(x);
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "key too long", 0);
        return;
    }
    const char *argv[] = {"EVAL", GW_LUA_FETCH_LIMIT, "2", kreq, ktarget, GW_PK_WINDOW_MS,
                          lreq, ltarget};
    const size_t argvlen[] = {4, strlen(GW_LUA_FETCH_LIMIT), 1, strlen(kreq), strlen(ktarget),
                              strlen(GW_PK_WINDOW_MS), strlen(lreq), strlen(ltarget)};
    if (predis_cmd(g->redis, gw_pk_get_limit_cb, x, 8, argv, argvlen) != 0) {
        free(x);
        /* fail closed, like registration: without the limiter nothing bounds the claims */
        gw_lookup_fail(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "rate limiter unavailable", 0);
    }
}
