#include "gw_presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_drain.h"
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

static void gw_presence_ignore_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    (void)privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        {
        char q[256];
        plog_warn("presence_redis_error", "error=%s", plog_q(q, sizeof q, r->str));
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
    uint8_t buf[256];
    size_t len = parley__v1__internal_event__get_packed_size(&ev);
    char key[PKEYS_MAX];
    if (len > sizeof buf || pkeys_delivery(key, other_gw) < 0)
        return;
    parley__v1__internal_event__pack(&ev, buf);
    const char *argv[] = {"XADD", key, "MAXLEN", "~", PKEYS_DELIVERY_MAXLEN, "*", PKEYS_FIELD,
                          (const char *)buf};
    const size_t argvlen[] = {4, strlen(key), 6, 1, strlen(PKEYS_DELIVERY_MAXLEN), 1,
                              strlen(PKEYS_FIELD), len};
    if (predis_cmd(g->redis, gw_presence_ignore_cb, NULL, 8, argv, argvlen) == 0) {
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
    if (c->state != GW_CONN_AUTHED || gw_presence_key_val(g, c, key, val) != 0)
        return;
    const char *argv[] = {"EVAL", GW_LUA_RELEASE, "1", key, val};
    const size_t argvlen[] = {4, strlen(GW_LUA_RELEASE), 1, strlen(key), strlen(val)};
    if (predis_cmd(g->redis, gw_presence_ignore_cb, NULL, 5, argv, argvlen) != 0)
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

static void gw_presence_refresh_one(gw *g, gw_conn *c, int redrain)
{
    if (c->close_code || c->state != GW_CONN_AUTHED)
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
    const char *argv[] = {"EVAL", GW_LUA_CLAIM, "1", key, val, ttl};
    const size_t argvlen[] = {4, strlen(GW_LUA_CLAIM), 1, strlen(key), strlen(val), strlen(ttl)};
    if (predis_cmd(g->redis, gw_presence_refresh_cb, x, 6, argv, argvlen) != 0) {
        free(x);
        pmet_inc(g->m.presence_failures, 1);
    }
}

typedef struct {
    gw *g;
    int redrain;
} gw_each_ctx;

static void gw_presence_each(gw_conn *c, void *ud)
{
    gw_each_ctx *e = ud;
    gw_presence_refresh_one(e->g, c, e->redrain);
}

static void gw_presence_timer_cb(uv_timer_t *t)
{
    gw *g = t->data;
    if (!predis_up(g->redis))
        return;
    gw_each_ctx e = {g, 0};
    gw_conns_each(&g->conns, gw_presence_each, &e);
}

void gw_presence_on_up(predis *r, void *ud)
{
    (void)r;
    gw *g = ud;
    /* Redis may have lost presence and delivery entries while we were away */
    if (g->conns.dev_count)
        plog_info("presence_reclaim", "connections=%zu", g->conns.dev_count);
    gw_each_ctx e = {g, 1};
    gw_conns_each(&g->conns, gw_presence_each, &e);
}

int gw_presence_start(gw *g)
{
    if (uv_timer_init(g->loop, &g->presence) != 0)
        return -1;
    g->presence_init = 1;
    g->presence.data = g;
    uint64_t every = (uint64_t)PKEYS_PRESENCE_REFRESH_S * 1000;
    return uv_timer_start(&g->presence, gw_presence_timer_cb, every, every) == 0 ? 0 : -1;
}

void gw_presence_stop(gw *g)
{
    if (g->presence_init && !uv_is_closing((uv_handle_t *)&g->presence))
        uv_close((uv_handle_t *)&g->presence, NULL);
}
