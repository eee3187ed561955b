#include "gw_auth.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "gw.h"
#include "gw_drain.h"
#include "gw_frame.h"
#include "gw_presence.h"
#include "keys.h"
#include "log.h"
#include "pgbin.h"
#include "wire.h"

#define GW_SQL_AUTH                                                                            \
    "SELECT a.id, d.signing_key, d.queue_len, coalesce(p.otk_count, 0),"                       \
    " coalesce(p.spk_id, 0) FROM accounts a"                                                   \
    " JOIN devices d ON d.account_id = a.id"                                                   \
    " LEFT JOIN device_prekeys p ON p.account_id = d.account_id AND p.device_id = d.device_id" \
    " WHERE a.username = $1 AND d.device_id = $2"
/* an account session: the account key signs instead of a device key */
#define GW_SQL_AUTH_ACCOUNT "SELECT a.id, a.account_key FROM accounts a WHERE a.username = $1"

/* ---- challenge ---------------------------------------------------------------------------- */

int gw_auth_send_challenge(gw *g, gw_conn *c)
{
    gw_conn_auth *a = c->auth;
    if (!a)
        return -1;
    randombytes_buf(a->challenge, sizeof a->challenge);
    a->has_challenge = 1;
    Parley__V1__Challenge ch = PARLEY__V1__CHALLENGE__INIT;
    ch.nonce.data = a->challenge;
    ch.nonce.len = sizeof a->challenge;
    ch.gateway_id = g->id;
    ch.pow_difficulty = (uint32_t)g->cfg->pow_difficulty;
    ch.server_time_ms = pclock_wall_ms();
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE;
    sf.challenge = &ch;
    return gw_conn_send_frame(g, c, &sf);
}

/* A fresh challenge after a Register answer. The auth timeout restarts only after a successful
 * Register: were it restarted after errors, a bad Register every few seconds would keep an
 * unauthenticated socket open for ever. */
void gw_auth_rechallenge(gw *g, gw_conn *c, int registered)
{
    if (c->close_code || c->state != GW_CONN_OPEN)
        return;
    if (registered)
        gw_conn_auth_list_append(g, c);
    gw_auth_send_challenge(g, c);
}

void gw_auth_expire(gw *g, uint64_t now_us)
{
    while (g->auth_head &&
           now_us - g->auth_head->opened_us >= (uint64_t)PARLEY_AUTH_TIMEOUT_MS * 1000) {
        gw_conn *c = g->auth_head->conn;
        gw_conn_auth_list_remove(g, c);
        char peer[GW_PEER_TEXT_MAX];
        plog_info("auth_timeout", "conn=%llu peer=%s", (unsigned long long)c->id,
                  gw_peer_text(&c->peer, peer));
        gw_conn_close(g, c, PWIRE_CLOSE_POLICY, "authentication timeout", 1);
    }
}

/* ---- AuthAnswer --------------------------------------------------------------------------- */

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    char account[PARLEY_NAME_MAX + 1];
    uint32_t device_id;
    uint8_t transcript[PAUTH_TRANSCRIPT_MAX];
    size_t tlen;
    uint8_t sig[64];
} gw_auth_ctx;

static void gw_auth_fail(gw *g, gw_conn *c, uint64_t request_id, const char *why)
{
    char peer[GW_PEER_TEXT_MAX];
    plog_info("auth_failed", "conn=%llu peer=%s why=\"%s\"", (unsigned long long)c->id,
              gw_peer_text(&c->peer, peer), why);
    pmet_inc(g->m.auth_failed, 1);
    gw_conn_send_error(g, c, request_id, PARLEY__V1__ERROR_CODE__AUTH_FAILED,
                       "authentication failed", 0);
    gw_conn_close(g, c, PWIRE_CLOSE_POLICY, "authentication failed", 1);
}

static void gw_auth_unavailable(gw *g, gw_conn *c, uint64_t request_id)
{
    gw_conn_send_error(g, c, request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                       "account service unavailable", 0);
    gw_conn_close(g, c, PWIRE_CLOSE_INTERNAL, "backend unavailable", 1);
}

static void gw_auth_presence_done(gw *g, uint64_t conn_id)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (!c || c->close_code || c->state != GW_CONN_AUTHED || !c->auth)
        return;
    Parley__V1__AuthOk ok = PARLEY__V1__AUTH_OK__INIT;
    ok.account = c->account;
    ok.device_id = c->device_id;
    ok.queued = c->auth->queued;
    ok.one_time_prekeys = c->auth->one_time_prekeys;
    ok.signed_prekey_id = c->auth->signed_prekey_id;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = c->auth->request_id;
    /* what only authentication needed goes before the connection settles down */
    gw_conn_auth_free(g, c);
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK;
    sf.auth_ok = &ok;
    if (gw_conn_send_frame(g, c, &sf) == 0)
        gw_drain_start(g, c, 1);
}

/* The connection an AuthAnswer lookup (device or account) answers, or NULL when there is
 * nothing more to do: it is gone, or the lookup failed and the connection was answered. */
static gw_conn *gw_auth_lookup_conn(const gw_auth_ctx *x, PGresult *res, const char *err)
{
    gw *g = x->g;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!c || c->close_code || c->state != GW_CONN_AUTHING)
        return NULL;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        char q[256];
        plog_error("auth_lookup_failed", "conn=%llu error=%s", (unsigned long long)c->id,
                   plog_q(q, sizeof q, ppg_why(res, err)));
        gw_auth_unavailable(g, c, x->request_id);
        return NULL;
    }
    return c;
}

/* AuthAnswer device_id 0 checked against the account key: the connection may only GetDevices,
 * PublishDeviceList and Ping (gw_dispatch.c). No presence (nothing is delivered to it), no
 * queue, not in the device table. */
static void gw_auth_account_cb(PGresult *res, const char *err, void *ud)
{
    gw_auth_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_auth_lookup_conn(x, res, err);
    if (!c)
        goto out;
    int64_t account_id;
    const uint8_t *pk;
    size_t pklen;
    if (PQntuples(res) != 1) {
        gw_auth_fail(g, c, x->request_id, "unknown account");
        goto out;
    }
    if (ppgbin_cell_i64(res, 0, 0, &account_id) || ppgbin_cell_bytes(res, 0, 1, &pk, &pklen) ||
        pklen != 32) {
        plog_error("auth_lookup_bad_row", "conn=%llu", (unsigned long long)c->id);
        gw_auth_unavailable(g, c, x->request_id);
        goto out;
    }
    if (pauth_verify(x->sig, x->transcript, x->tlen, pk) != 0) {
        gw_auth_fail(g, c, x->request_id, "bad account signature");
        goto out;
    }
    snprintf(c->account, sizeof c->account, "%s", x->account);
    c->device_id = 0;
    c->account_id = account_id;
    c->account_session = 1;
    c->state = GW_CONN_AUTHED;
    gw_conn_auth_free(g, c);
    pmet_add(g->m.authenticated, 1);
    pmet_inc(g->m.auth_ok, 1);
    pmet_inc(g->m.account_sessions, 1);
    plog_info("auth_ok", "conn=%llu account=%s device=0 session=account",
              (unsigned long long)c->id, c->account);
    Parley__V1__AuthOk ok = PARLEY__V1__AUTH_OK__INIT;
    ok.account = c->account;
    ok.device_id = 0;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK;
    sf.auth_ok = &ok;
    gw_conn_send_frame(g, c, &sf);
out:
    free(x);
}

static void gw_auth_lookup_cb(PGresult *res, const char *err, void *ud)
{
    gw_auth_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_auth_lookup_conn(x, res, err);
    if (!c)
        goto out;
    int64_t account_id;
    int32_t queue_len, otk_count;
    int64_t spk_id;
    const uint8_t *pk;
    size_t pklen;
    if (PQntuples(res) != 1) {
        gw_auth_fail(g, c, x->request_id, "unknown account or device");
        goto out;
    }
    if (ppgbin_cell_i64(res, 0, 0, &account_id) || ppgbin_cell_bytes(res, 0, 1, &pk, &pklen) ||
        pklen != 32 || ppgbin_cell_i32(res, 0, 2, &queue_len) ||
        ppgbin_cell_i32(res, 0, 3, &otk_count) || ppgbin_cell_i64(res, 0, 4, &spk_id)) {
        plog_error("auth_lookup_bad_row", "conn=%llu", (unsigned long long)c->id);
        gw_auth_unavailable(g, c, x->request_id);
        goto out;
    }
    if (pauth_verify(x->sig, x->transcript, x->tlen, pk) != 0) {
        gw_auth_fail(g, c, x->request_id, "bad signature");
        goto out;
    }
    /* hold live pushes from now on: they must not overtake AuthOk or the drain */
    if (gw_drain_hold(c) != 0) {
        plog_error("auth_oom", "conn=%llu", (unsigned long long)c->id);
        gw_auth_unavailable(g, c, x->request_id);
        goto out;
    }

    /* a newer connection of a device replaces the older one */
    gw_conn *old = gw_conns_device(&g->conns, x->account, x->device_id);
    if (old && old != c) {
        gw_conns_unbind_device(&g->conns, old);
        pmet_inc(g->m.closes_replaced, 1);
        plog_info("conn_replaced", "conn=%llu by=%llu", (unsigned long long)old->id,
                  (unsigned long long)c->id);
        gw_conn_close(g, old, PWIRE_CLOSE_REPLACED, "replaced by a newer connection", 0);
    }
    snprintf(c->account, sizeof c->account, "%s", x->account);
    c->device_id = x->device_id;
    c->account_id = account_id;
    c->auth->request_id = x->request_id;
    c->auth->queued = queue_len > 0 ? (uint64_t)queue_len : 0;
    c->auth->one_time_prekeys = otk_count > 0 ? (uint32_t)otk_count : 0;
    c->auth->signed_prekey_id = (uint32_t)spk_id;
    c->state = GW_CONN_AUTHED;
    gw_conn_auth_list_remove(g, c);
    gw_conns_bind_device(&g->conns, c);
    pmet_add(g->m.authenticated, 1);
    pmet_inc(g->m.auth_ok, 1);
    plog_info("auth_ok", "conn=%llu account=%s device=%" PRIu32 " queued=%d",
              (unsigned long long)c->id, c->account, c->device_id, (int)queue_len);
    gw_presence_claim(g, c, gw_auth_presence_done);
out:
    free(x);
}

/* Consumes the connection's challenge for an AuthAnswer or Register: single use, whatever the
 * outcome. Returns -1 when the request was already answered (draining, or no challenge). */
int gw_auth_take_challenge(gw *g, gw_conn *c, uint64_t rid)
{
    if (g->draining) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__SHUTTING_DOWN,
                           "gateway is shutting down", 0);
        gw_conn_close(g, c, PWIRE_CLOSE_GOING_AWAY, "going away", 1);
        return -1;
    }
    if (!c->auth || !c->auth->has_challenge || c->state != GW_CONN_OPEN) {
        gw_auth_fail(g, c, rid, "challenge already used");
        return -1;
    }
    c->auth->has_challenge = 0;
    return 0;
}

void gw_auth_answer(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__AuthAnswer *a = f->auth;
    uint64_t rid = f->request_id;
    if (gw_auth_take_challenge(g, c, rid) != 0)
        return;

    gw_auth_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        gw_auth_unavailable(g, c, rid);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    x->device_id = a->device_id;
    uint64_t now = pclock_wall_ms();
    uint64_t skew = a->timestamp_ms > now ? a->timestamp_ms - now : now - a->timestamp_ms;
    const char *why = NULL;
    if (!a->account || pauth_name_normalize(a->account, x->account) != 0)
        why = "invalid account name";
    else if (a->device_id > INT32_MAX) /* 0: an account session */
        why = "invalid device id";
    else if (a->signature.len != sizeof x->sig)
        why = "bad signature length";
    else if (skew > PARLEY_AUTH_SKEW_MS)
        why = "timestamp out of range";
    else if (!(x->tlen = pauth_auth_transcript(x->transcript, c->auth->challenge, g->id, x->account,
                                               a->device_id, a->timestamp_ms)))
        why = "transcript too long";
    if (why) {
        free(x);
        gw_auth_fail(g, c, rid, why);
        return;
    }
    memcpy(x->sig, a->signature.data, sizeof x->sig);

    char dev[16];
    snprintf(dev, sizeof dev, "%" PRIu32, a->device_id);
    const char *params[] = {x->account, dev};
    c->state = GW_CONN_AUTHING;
    int rc = a->device_id == 0
                 ? ppg_query(g->pg, GW_SQL_AUTH_ACCOUNT, 1, params, NULL, NULL, 1,
                             gw_auth_account_cb, x)
                 : ppg_query(g->pg, GW_SQL_AUTH, 2, params, NULL, NULL, 1, gw_auth_lookup_cb, x);
    if (rc != 0) {
        plog_warn("auth_lookup_unavailable", "conn=%llu", (unsigned long long)c->id);
        free(x);
        gw_auth_unavailable(g, c, rid);
    }
}

/* ---- Register ----------------------------------------------------------------------------- */
