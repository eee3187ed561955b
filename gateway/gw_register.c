#include "gw_register.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "devlist.h"
#include "gw.h"
#include "gw_auth.h"
#include "gw_frame.h"
#include "keys.h"
#include "log.h"
#include "pgbin.h"
#include "wire.h"

/* the account, its device 1 and its signed list version 1: one statement, one transaction */
#define GW_SQL_REGISTER                                                                        \
    "WITH a AS (INSERT INTO accounts (username, account_key, devlist_version)"                 \
    " VALUES ($1, $2, 1) RETURNING id),"                                                       \
    " d AS (INSERT INTO devices (account_id, device_id, registration_id, signing_key,"         \
    " identity_key) SELECT id, 1, $3, $4, $5 FROM a)"                                          \
    " INSERT INTO device_lists (account_id, version, body, signature) SELECT id, 1, $6, $7 FROM a"

/* Fixed window per source address: the first hit of a window starts its 60 s expiry. Returns
 * {count, ms left in the window}. */
#define GW_LUA_RATELIMIT                                                                       \
    "local n = redis.call('INCR', KEYS[1]) "                                                   \
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "                              \
    "local t = redis.call('PTTL', KEYS[1]) "                                                   \
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "         \
    "return {n, t}"
#define GW_RATELIMIT_WINDOW_MS "60000"
#define GW_RATELIMIT_V6_PREFIX_BYTES 8 /* an IPv6 source counts as its /64 */

void gw_register_rate_subject(const char *peer, char *out, size_t size)
{
    if (size == 0)
        return;
    char addr[INET6_ADDRSTRLEN];
    unsigned char a6[16];
    /* a scope ("fe80::1%eth0") is not part of the address */
    size_t n = strcspn(peer, "%");
    if (n < sizeof addr) {
        memcpy(addr, peer, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, a6) == 1) {
            static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            char text[INET6_ADDRSTRLEN];
            if (memcmp(a6, v4mapped, sizeof v4mapped) == 0) {
                if (inet_ntop(AF_INET, a6 + 12, text, sizeof text)) {
                    snprintf(out, size, "%s", text);
                    return;
                }
            } else {
                memset(a6 + GW_RATELIMIT_V6_PREFIX_BYTES, 0, 16 - GW_RATELIMIT_V6_PREFIX_BYTES);
                if (inet_ntop(AF_INET6, a6, text, sizeof text)) {
                    snprintf(out, size, "%s/%d", text, GW_RATELIMIT_V6_PREFIX_BYTES * 8);
                    return;
                }
            }
        }
    }
    snprintf(out, size, "%s", peer);
}

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    uint8_t challenge[PARLEY_CHALLENGE_BYTES];
    char username[PARLEY_NAME_MAX + 1];
    uint8_t account_key[32], signing_key[32], identity_key[32];
    uint8_t account_sig[64], device_sig[64];
    uint32_t registration_id;
    uint64_t pow_nonce;
    uint8_t list_body[PARLEY_DEVICE_LIST_BODY_MAX], list_sig[PDL_SIG_BYTES];
    size_t list_len;
} gw_reg_ctx;

/* Register's signed device list must be version 1 of this account with exactly the
 * registering device as device 1. Returns 0, or the error code with *why. */
static Parley__V1__ErrorCode gw_reg_check_list(const gw_reg_ctx *x, const char **why)
{
    pdl_list l;
    if (!x->list_len) {
        *why = "Register needs the account's first signed device list (device_list)";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    if (pdl_parse(x->list_body, x->list_len, &l, why) != 0)
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    if (pdl_verify(x->list_sig, sizeof x->list_sig, x->list_body, x->list_len,
                   x->account_key) != 0) {
        *why = "the device list is not signed by the account key";
        return PARLEY__V1__ERROR_CODE__INVALID_SIGNATURE;
    }
    const pdl_device *d = &l.dev[0];
    if (strcmp(l.account, x->username) != 0 || l.version != 1 || l.n != 1 ||
        l.max_device_id != 1 || d->device_id != 1 ||
        d->registration_id != x->registration_id ||
        memcmp(d->signing_pk, x->signing_key, 32) != 0 ||
        memcmp(d->identity_pk, x->identity_key, 32) != 0) {
        *why = "the first device list must be version 1 of this account listing exactly this "
               "device as device 1";
        return PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT;
    }
    return PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED;
}

/* Answers a Register and offers a fresh challenge. */
static void gw_reg_error(gw *g, gw_conn *c, uint64_t rid, Parley__V1__ErrorCode code,
                         const char *why, uint32_t retry_after_ms)
{
    char peer[GW_PEER_TEXT_MAX];
    plog_info("register_rejected", "conn=%llu peer=%s code=%s why=\"%s\"",
              (unsigned long long)c->id, gw_peer_text(&c->peer, peer), gw_frame_error_name(code),
              why);
    gw_conn_send_error(g, c, rid, code, why, retry_after_ms);
    gw_auth_rechallenge(g, c, 0);
}

static void gw_reg_insert_cb(PGresult *res, const char *err, void *ud)
{
    gw_reg_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!c || c->close_code)
        goto out;
    if (!res) {
        char q[256];
        plog_error("register_insert_failed", "conn=%llu error=%s", (unsigned long long)c->id,
                   plog_q(q, sizeof q, ppg_why(res, err)));
        gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                     "account service unavailable", 0);
        goto out;
    }
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        if (strcmp(ppg_sqlstate(res), "23505") == 0) {
            gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__NAME_TAKEN,
                         "name already taken", 0);
        } else {
            char q[256];
            plog_error("register_insert_failed", "conn=%llu sqlstate=%s error=%s",
                       (unsigned long long)c->id, plog_q(q, 16, ppg_sqlstate(res)),
                       plog_q(q + 16, sizeof q - 16, ppg_why(res, err)));
            gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                         "could not register", 0);
        }
        goto out;
    }
    pmet_inc(g->m.registers, 1);
    plog_info("registered", "conn=%llu account=%s", (unsigned long long)c->id, x->username);
    Parley__V1__RegisterOk ok = PARLEY__V1__REGISTER_OK__INIT;
    ok.username = x->username;
    ok.device_id = 1;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_REGISTER_OK;
    sf.register_ok = &ok;
    if (gw_conn_send_frame(g, c, &sf) == 0)
        gw_auth_rechallenge(g, c, 1);
out:
    free(x);
}

/* The rate limit passed: proof of work, signatures, then the insert. */
static void gw_reg_check_and_insert(gw *g, gw_conn *c, gw_reg_ctx *x)
{
    if (pauth_pow_check(x->challenge, x->username, x->pow_nonce,
                        (unsigned)g->cfg->pow_difficulty) != 0) {
        gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__POW_FAILED,
                     "proof of work does not meet the difficulty", 0);
        free(x);
        return;
    }
    uint8_t t[PAUTH_TRANSCRIPT_MAX];
    size_t tlen = pauth_register_transcript(t, x->challenge, x->username, x->account_key,
                                            x->signing_key, x->identity_key, x->registration_id);
    if (!tlen || pauth_verify(x->account_sig, t, tlen, x->account_key) != 0 ||
        pauth_verify(x->device_sig, t, tlen, x->signing_key) != 0) {
        gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__AUTH_FAILED,
                     "bad registration signature", 0);
        free(x);
        return;
    }
    const char *why = NULL;
    Parley__V1__ErrorCode lc = gw_reg_check_list(x, &why);
    if (lc != PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        gw_reg_error(g, c, x->request_id, lc, why, 0);
        free(x);
        return;
    }
    char reg[16];
    snprintf(reg, sizeof reg, "%" PRIu32, x->registration_id);
    const char *params[] = {x->username,
                            (const char *)x->account_key,
                            reg,
                            (const char *)x->signing_key,
                            (const char *)x->identity_key,
                            (const char *)x->list_body,
                            (const char *)x->list_sig};
    const int lengths[] = {0, 32, 0, 32, 32, (int)x->list_len, PDL_SIG_BYTES};
    const int formats[] = {0, 1, 0, 1, 1, 1, 1};
    uint64_t rid = x->request_id;
    if (ppg_query(g->pg, GW_SQL_REGISTER, 7, params, lengths, formats, 1, gw_reg_insert_cb, x) !=
        0) {
        free(x);
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                     "account service unavailable", 0);
    }
}

static void gw_reg_ratelimit_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_reg_ctx *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!c || c->close_code) {
        free(x);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        char q[256];
        plog_warn("register_ratelimit_failed", "conn=%llu error=%s", (unsigned long long)c->id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                     "rate limiter unavailable", 0);
        free(x);
        return;
    }
    long long n = r->element[0]->integer, ttl = r->element[1]->integer;
    if (n > g->cfg->register_rate_per_minute) {
        uint32_t retry = ttl > 0 ? (uint32_t)ttl : 1000;
        gw_reg_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                     "too many registrations from this address", retry);
        free(x);
        return;
    }
    gw_reg_check_and_insert(g, c, x);
}

void gw_register(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__Register *r = f->register_;
    uint64_t rid = f->request_id;
    if (gw_auth_take_challenge(g, c, rid) != 0)
        return;

    if (r->account_key.len != 32 || r->device_signing_key.len != 32 ||
        r->device_identity_key.len != 32 || r->account_signature.len != 64 ||
        r->device_signature.len != 64) {
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                     "keys must be 32 bytes and signatures 64 bytes", 0);
        return;
    }
    /* checked for content after the proof of work and the signatures: a malformed one is
     * refused here, before any work */
    if (r->device_list && (r->device_list->body.len > PARLEY_DEVICE_LIST_BODY_MAX ||
                           r->device_list->signature.len != PDL_SIG_BYTES)) {
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                     "device list body too large or signature not 64 bytes", 0);
        return;
    }
    if (r->registration_id == 0 || r->registration_id > PARLEY_REGISTRATION_ID_MAX) {
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                     "registration_id out of range", 0);
        return;
    }
    gw_reg_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    if (!r->username || pauth_name_normalize(r->username, x->username) != 0) {
        free(x);
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_NAME,
                     "names are 3..32 of a-z 0-9 _ .", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    memcpy(x->challenge, c->auth->challenge, sizeof x->challenge);
    memcpy(x->account_key, r->account_key.data, 32);
    memcpy(x->signing_key, r->device_signing_key.data, 32);
    memcpy(x->identity_key, r->device_identity_key.data, 32);
    memcpy(x->account_sig, r->account_signature.data, 64);
    memcpy(x->device_sig, r->device_signature.data, 64);
    x->registration_id = r->registration_id;
    x->pow_nonce = r->pow_nonce;
    if (r->device_list) {
        x->list_len = r->device_list->body.len;
        memcpy(x->list_body, r->device_list->body.data, x->list_len);
        memcpy(x->list_sig, r->device_list->signature.data, PDL_SIG_BYTES);
    }

    char key[PKEYS_MAX], peer[GW_PEER_TEXT_MAX], subject[GW_PEER_TEXT_MAX + 8];
    gw_register_rate_subject(gw_peer_text(&c->peer, peer), subject, sizeof subject);
    if (pkeys_ratelimit(key, "register", subject) < 0) {
        free(x);
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "bad source address", 0);
        return;
    }
    const char *argv[] = {"EVAL", GW_LUA_RATELIMIT, "1", key, GW_RATELIMIT_WINDOW_MS};
    const size_t argvlen[] = {4, strlen(argv[1]), 1, strlen(key), strlen(argv[4])};
    if (predis_cmd(g->redis, gw_reg_ratelimit_cb, x, 5, argv, argvlen) != 0) {
        free(x);
        gw_reg_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE, "rate limiter unavailable",
                     0);
    }
}
