#include "gw_presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_drain.h"
#include "gw_sweep.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

#define GW_PRESENCE_VAL_MAX (PARLEY_GATEWAY_ID_MAX + 24)

/* Sets the key unless it names another connection (a newer one, which won with SET .. GET).
 * Returns 1 when the key is ours now, 0 when it belongs to someone else. */
#define GW_LUA_CLAIM                                                                           \
    "local v = redis.call('GET', KEYS[1]) "                                                    \
    "if v == false or v == ARGV[1] then "                                                      \
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end "                         \
    "return 0"
#define GW_LUA_RELEASE                                                                         \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "     \
    "return 0"

int gw_presence_parse(const char *v, size_t len, char *gw_buf, size_t gw_size, uint64_t *conn_id)
{
    const char *slash = NULL;
    for (size_t i = 0; i < len; i++)
        if (v[i] == '/')
            slash = v + i;
    if (!slash || slash == v || (size_t)(slash - v) >= gw_size)
        return -1;
    const char *d = slash + 1, *end = v + len;
    if (d == end || end - d > 20)
        return -1;
    uint64_t n = 0;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        uint64_t next = n * 10 + (uint64_t)(*d - '0');
        if (next / 10 != n)
            return -1;
        n = next;
    }
    memcpy(gw_buf, v, (size_t)(slash - v));
    gw_buf[slash - v] = '\0';
    *conn_id = n;
    return 0;
}

static int gw_presence_key_val(const gw *g, const gw_conn *c, char key[PKEYS_MAX],
                               char val[GW_PRESENCE_VAL_MAX])
{
    if (pkeys_presence(key, c->account, c->device_id) < 0)
        return -1;
    int n = snprintf(val, GW_PRESENCE_VAL_MAX, "%s/%llu", g->id, (unsigned long long)c->id);
    return (n < 0 || n >= GW_PRESENCE_VAL_MAX) ? -1 : 0;
}

/* ---- the scripts, by SHA1 once Redis has them ----------------------------------------------
 * Refreshes run at ~connections/20 a second: EVALSHA spares Redis hashing, and the link
 * carrying, the script body each time. Until SCRIPT LOAD answered (and after a NOSCRIPT: Redis
 * lost its script cache without a reconnect) the body goes with EVAL. */

static void gw_presence_loaded_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    char *sha = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_STRING && r->len == GW_PRESENCE_SHA_LEN)
        memcpy(sha, r->str, GW_PRESENCE_SHA_LEN + 1);
    else if (r && r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_warn("presence_script_load_failed", "error=%s", plog_q(q, sizeof q, r->str));
    }
}

static void gw_presence_load_scripts(gw *g)
{
    gw_presence_scripts *s = &g->scripts;
    s->claim_sha[0] = s->release_sha[0] = '\0';
    const char *a1[] = {"SCRIPT", "LOAD", GW_LUA_CLAIM};
    const size_t l1[] = {6, 4, strlen(GW_LUA_CLAIM)};
    const char *a2[] = {"SCRIPT", "LOAD", GW_LUA_RELEASE};
    const size_t l2[] = {6, 4, strlen(GW_LUA_RELEASE)};
    /* not sent (Redis down): the next on_up loads them */
    (void)predis_cmd(g->redis, gw_presence_loaded_cb, s->claim_sha, 3, a1, l1);
    (void)predis_cmd(g->redis, gw_presence_loaded_cb, s->release_sha, 3, a2, l2);
}

/* A script reply was an error: after NOSCRIPT the scripts are loaded again. */
static void gw_presence_script_error(gw *g, const redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
        g->scripts.claim_sha[0]) {
        plog_warn("presence_scripts_lost", "msg=\"loading them again\"");
        gw_presence_load_scripts(g);
    }
}

/* EVAL(SHA) of script with KEYS[1] = key and up to two ARGV. */
static int gw_presence_eval(gw *g, const char *script, const char *sha, redisCallbackFn *cb,
                            void *ud, const char *key, const char *a1, const char *a2)
{
    const char *argv[6] = {sha[0] ? "EVALSHA" : "EVAL", sha[0] ? sha : script, "1", key, a1, a2};
    const size_t argvlen[6] = {strlen(argv[0]), strlen(argv[1]), 1, strlen(key), strlen(a1),
                               a2 ? strlen(a2) : 0};
    return predis_cmd(g->redis, cb, ud, a2 ? 6 : 5, argv, argvlen);
}

static void gw_presence_ignore_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_warn("presence_redis_error", "error=%s", plog_q(q, sizeof q, r->str));
        gw_presence_script_error(privdata, r);
    }
}

/* ---- claim on auth ------------------------------------------------------------------------ */

typedef struct {
    gw *g;
    uint64_t conn_id;
    void (*done)(gw *g, uint64_t conn_id);
} gw_claim_ctx;

static void gw_presence_kick(gw *g, const gw_conn *c, const char *other_gw, uint64_t other_conn)
{
    Parley__V1__InternalKick kick = PARLEY__V1__INTERNAL_KICK__INIT;
    kick.account = (char *)c->account;
    kick.device_id = c->device_id;
    kick.conn_id = other_conn;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_KICK;
    ev.kick = &kick;
    if (gw_events_send_to(g, other_gw, &ev, "kick") == 0) {
        pmet_inc(g->m.kicks_sent, 1);
        plog_info("kick_sent", "account=%s device=%" PRIu32 " gateway=%s conn=%llu", c->account,
                  c->device_id, other_gw, (unsigned long long)other_conn);
    }
}

static void gw_presence_claim_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_claim_ctx *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        pmet_inc(g->m.presence_failures, 1);
        char q[256];
        plog_warn("presence_claim_failed", "conn=%llu error=%s", (unsigned long long)x->conn_id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
    } else if (c && r->type == REDIS_REPLY_STRING) {
        char other_gw[PARLEY_GATEWAY_ID_MAX + 1];
        uint64_t other_conn;
        if (gw_presence_parse(r->str, r->len, other_gw, sizeof other_gw, &other_conn) != 0) {
            plog_warn("presence_bad_value", "conn=%llu", (unsigned long long)c->id);
        } else if (strcmp(other_gw, g->id) != 0) {
            gw_presence_kick(g, c, other_gw, other_conn);
        } else if (other_conn != c->id) {
            gw_conn *old = gw_conns_get(&g->conns, other_conn);
            /* already closing (auth replaced it locally): counted and closed once */
            if (old && old != c && !old->close_code && old->device_id == c->device_id &&
                strcmp(old->account, c->account) == 0) {
                pmet_inc(g->m.closes_replaced, 1);
                gw_conn_close(g, old, PWIRE_CLOSE_REPLACED, "replaced by a newer connection", 0);
            }
        }
    }
    x->done(g, x->conn_id);
    free(x);
}

void gw_presence_claim(gw *g, gw_conn *c, void (*done)(gw *g, uint64_t conn_id))
{
    char key[PKEYS_MAX], val[GW_PRESENCE_VAL_MAX];
    gw_claim_ctx *x = malloc(sizeof *x);
    if (!x || gw_presence_key_val(g, c, key, val) != 0) {
        free(x);
        pmet_inc(g->m.presence_failures, 1);
        done(g, c->id);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->done = done;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", PKEYS_PRESENCE_TTL_S);
    const char *argv[] = {"SET", key, val, "EX", ttl, "GET"};
    const size_t argvlen[] = {3, strlen(key), strlen(val), 2, strlen(ttl), 3};
    if (predis_cmd(g->redis, gw_presence_claim_cb, x, 6, argv, argvlen) != 0) {
        /* Redis is down: go on; the reconnect re-claims presence and re-drains */
        free(x);
        pmet_inc(g->m.presence_failures, 1);
        done(g, c->id);
    }
}

/* ---- release on close --------------------------------------------------------------------- */

void gw_presence_release(gw *g, const gw_conn *c)
{
    char key[PKEYS_MAX], val[GW_PRESENCE_VAL_MAX];
    if (c->state != GW_CONN_AUTHED || c->account_session ||
        gw_presence_key_val(g, c, key, val) != 0)
        return;
    if (gw_presence_eval(g, GW_LUA_RELEASE, g->scripts.release_sha, gw_presence_ignore_cb, g,
                         key, val, NULL) != 0)
        pmet_inc(g->m.presence_failures, 1); /* the key expires by itself */
}

/* ---- refresh and re-claim ----------------------------------------------------------------- */

typedef struct {
    gw *g;
    uint64_t conn_id;
    int redrain;
} gw_refresh_ctx;

static void gw_presence_refresh_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_refresh_ctx *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        pmet_inc(g->m.presence_failures, 1);
        char q[256];
        plog_warn("presence_refresh_failed", "conn=%llu error=%s", (unsigned long long)x->conn_id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        gw_presence_script_error(g, r);
    } else if (c && !c->close_code && c->state == GW_CONN_AUTHED) {
        if (r->integer == 0) {
            /* a newer connection of this device holds the key (its kick may be lost) */
            pmet_inc(g->m.closes_replaced, 1);
            plog_info("conn_superseded", "conn=%llu account=%s device=%" PRIu32,
                      (unsigned long long)c->id, c->account, c->device_id);
            gw_conn_close(g, c, PWIRE_CLOSE_REPLACED, "replaced by a newer connection", 0);
        } else if (x->redrain) {
            gw_drain_start(g, c, 0);
        }
    }
    free(x);
}

void gw_presence_refresh(gw *g, gw_conn *c, int redrain)
{
    /* an account session has no presence: nothing is delivered to it */
    if (c->close_code || c->state != GW_CONN_AUTHED || c->account_session)
        return;
    char key[PKEYS_MAX], val[GW_PRESENCE_VAL_MAX], ttl[16];
    gw_refresh_ctx *x = malloc(sizeof *x);
    if (!x || gw_presence_key_val(g, c, key, val) != 0) {
        free(x);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->redrain = redrain;
    snprintf(ttl, sizeof ttl, "%d", PKEYS_PRESENCE_TTL_S);
    if (gw_presence_eval(g, GW_LUA_CLAIM, g->scripts.claim_sha, gw_presence_refresh_cb, x, key,
                         val, ttl) != 0) {
        free(x);
        pmet_inc(g->m.presence_failures, 1);
    }
}

void gw_presence_on_up(predis *r, void *ud)
{
    (void)r;
    /* Redis may have lost presence and delivery entries (and its script cache) while we were
     * away: every connection is re-claimed and re-drained, spread over the following ticks */
    gw_presence_load_scripts(ud);
    gw_sweep_reclaim(ud);
}
