#include "gw_provision.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gw.h"
#include "gw_frame.h"
#include "gw_provision_id.h"
#include "gw_provision_relay.h"
#include "gw_register.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

#define GW_PROV_KEY_SIZE (sizeof PKEYS_PROVISION_PREFIX + PARLEY_LINK_CHANNEL_ID_LEN)
#define GW_PROV_OPEN_WINDOW_MS "60000"
#define GW_PROV_JOIN_WINDOW_S 60
#define GW_PROV_NUM_MAX 24 /* a uint64 or long long in decimal, with NUL */

/* Opens and joins are rare (a person linking a device), so the scripts go in full with every
 * EVAL (Redis caches them) rather than by SHA1, which would need reloading after Redis loses
 * its script cache. */

/* KEYS: the source's open window, the channel; ARGV: window ms, opens allowed per window, TTL
 * s, gateway id, conn id, data. {-1, ms left} over the limit, {0, 0} when the id is taken,
 * {1, 0} when created. The window is the registration limiter's (gw_register.c) under its own
 * key. */
#define GW_LUA_PROV_OPEN                                                                       \
    "local n = redis.call('INCR', KEYS[1]) "                                                   \
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "                              \
    "local t = redis.call('PTTL', KEYS[1]) "                                                   \
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "         \
    "if n > tonumber(ARGV[2]) then return {-1, t} end "                                        \
    "if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end "                            \
    "redis.call('HSET', KEYS[2], 'og', ARGV[4], 'oc', ARGV[5], 'od', ARGV[6]) "                \
    "redis.call('EXPIRE', KEYS[2], ARGV[3]) "                                                  \
    "return {1, 0}"

/* KEYS: the channel; ARGV: the joiner's gateway id and conn id. Claims the single joiner slot:
 * {og, oc, od}, or 0 when the channel is unknown, expired or taken. */
#define GW_LUA_PROV_JOIN                                                                       \
    "local v = redis.call('HMGET', KEYS[1], 'og', 'oc', 'od', 'jg') "                          \
    "if not v[1] or v[4] then return 0 end "                                                   \
    "redis.call('HSET', KEYS[1], 'jg', ARGV[1], 'jc', ARGV[2]) "                               \
    "return {v[1], v[2], v[3]}"

/* KEYS: the channel; ARGV: gateway id, conn id, role "o" or "j". The opener leaving deletes
 * the channel; the joiner leaving marks its slot left (jc "0"), still taken. Only when the
 * channel still names that connection in that role. */
#define GW_LUA_PROV_GONE                                                                       \
    "local p = ARGV[3] "                                                                       \
    "if redis.call('HGET', KEYS[1], p .. 'g') ~= ARGV[1] or "                                  \
    "   redis.call('HGET', KEYS[1], p .. 'c') ~= ARGV[2] then return 0 end "                   \
    "if p == 'o' then return redis.call('DEL', KEYS[1]) end "                                  \
    "redis.call('HSET', KEYS[1], 'jc', '0') "                                                  \
    "return 1"

enum { GW_PROV_NONE = 0, GW_PROV_OPENER, GW_PROV_JOINER };

/* One connection's part in provisioning (c->prov). */
typedef struct gw_provision {
    gw_conn *conn;
    struct gw_provision *prev, *next; /* g->provs while the opened channel lives */
    uint64_t expires_us;              /* monotonic clock */
    uint32_t join_window_s;           /* loop time (s) the current join window began */
    uint16_t joins;                   /* in that window */
    uint16_t sends;                   /* relayed for this channel, or on their way */
    uint8_t role;
    uint8_t busy; /* an open or join waits for Redis */
    uint8_t in_list;
    char channel[GW_PROVISION_ID_SIZE]; /* once opened or joined */
} gw_provision;

/* An open, join or send waiting for Redis. */
typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
    uint8_t role; /* of the sender (send) */
    char channel[GW_PROVISION_ID_SIZE];
    size_t len;
    uint8_t data[]; /* the joiner's data (join), the message (send) */
} gw_prov_req;

static void gw_prov_key(char out[GW_PROV_KEY_SIZE], const char *channel)
{
    snprintf(out, GW_PROV_KEY_SIZE, PKEYS_PROVISION_PREFIX "%s", channel);
}

/* c->prov, allocated on first use; NULL on OOM. */
static gw_provision *gw_prov_state(gw_conn *c)
{
    if (!c->prov) {
        c->prov = calloc(1, sizeof *c->prov);
        if (c->prov)
            c->prov->conn = c;
    }
    return c->prov;
}

static void gw_prov_error(gw *g, gw_conn *c, uint64_t rid, Parley__V1__ErrorCode code,
                          const char *msg, uint32_t retry_ms)
{
    gw_conn_send_error(g, c, rid, code, msg, retry_ms);
}

/* Redis could not be asked, or did not answer. */
static void gw_prov_unavailable(gw *g, gw_conn *c, uint64_t rid)
{
    gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE, "link service unavailable", 0);
}

/* Owned by the caller (free); NULL after answering the request on OOM. */
static gw_prov_req *gw_prov_req_new(gw *g, gw_conn *c, uint64_t request_id,
                                    const ProtobufCBinaryData *data)
{
    size_t len = data ? data->len : 0;
    gw_prov_req *x = calloc(1, sizeof *x + len);
    if (!x) {
        gw_prov_error(g, c, request_id, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return NULL;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = request_id;
    x->len = len;
    if (len)
        memcpy(x->data, data->data, len);
    return x;
}

/* 1 when len is within PARLEY_PROVISION_DATA_MAX, else 0 after answering the request. */
static int gw_prov_data_ok(gw *g, gw_conn *c, uint64_t rid, size_t len)
{
    if (len <= PARLEY_PROVISION_DATA_MAX)
        return 1;
    gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                  "provisioning data longer than 4096 bytes", 0);
    return 0;
}

/* c's provisioning state for an open or a join: NULL after answering the request when c has
 * a channel already (or one on its way) or on OOM. */
static gw_provision *gw_prov_idle_state(gw *g, gw_conn *c, uint64_t rid)
{
    gw_provision *p = gw_prov_state(c);
    if (!p) {
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return NULL;
    }
    if (p->role != GW_PROV_NONE || p->busy) {
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                      "one provisioning channel per connection", 0);
        return NULL;
    }
    return p;
}

/* A Redis command of conn_id's request failed (r: its reply, NULL when disconnected): logged
 * as event, and the request answered when c (may be NULL) is still there. */
static void gw_prov_redis_failed(gw *g, gw_conn *c, const gw_prov_req *x, const char *event,
                                 const redisReply *r)
{
    char q[256];
    plog_warn(event, "conn=%llu error=%s", (unsigned long long)x->conn_id,
              plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
    if (c && !c->close_code)
        gw_prov_unavailable(g, c, x->request_id);
}

/* ---- the expiry list of openers ----------------------------------------------------------- */

static void gw_prov_list_append(gw *g, gw_provision *p)
{
    p->prev = g->provs.tail;
    p->next = NULL;
    if (g->provs.tail)
        g->provs.tail->next = p;
    else
        g->provs.head = p;
    g->provs.tail = p;
    p->in_list = 1;
    g->provs.count++;
    pmet_add(g->m.prov_channels, 1);
}

static void gw_prov_list_remove(gw *g, gw_provision *p)
{
    if (!p->in_list)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        g->provs.head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        g->provs.tail = p->prev;
    p->prev = p->next = NULL;
    p->in_list = 0;
    g->provs.count--;
    pmet_add(g->m.prov_channels, -1);
}

void gw_provision_expire(gw *g, uint64_t now_us)
{
    while (g->provs.head && g->provs.head->expires_us <= now_us) {
        gw_provision *p = g->provs.head;
        gw_conn *c = p->conn;
        gw_prov_list_remove(g, p);
        pmet_inc(g->m.prov_expired, 1);
        plog_info("provision_expired", "conn=%llu", (unsigned long long)c->id);
        /* the channel was its leave from the auth timeout; Redis dropped the channel itself */
        if (c->state == GW_CONN_OPEN && !c->close_code) {
            gw_conn_send_error(g, c, 0, PARLEY__V1__ERROR_CODE__LINK_NOT_FOUND,
                               "the link code expired", 0);
            gw_conn_close(g, c, PWIRE_CLOSE_POLICY, "link code expired", 1);
        }
    }
}

/* ---- leaving ------------------------------------------------------------------------------ */

/* The connection conn_id of this gateway no longer takes part in channel as role ("o", "j"). */
static void gw_prov_forget(gw *g, const char *channel, const char *role, uint64_t conn_id)
{
    char key[GW_PROV_KEY_SIZE], conn[GW_PROV_NUM_MAX];
    gw_prov_key(key, channel);
    snprintf(conn, sizeof conn, "%llu", (unsigned long long)conn_id);
    const char *argv[] = {"EVAL", GW_LUA_PROV_GONE, "1", key, g->id, conn, role};
    const size_t argvlen[] = {4, strlen(GW_LUA_PROV_GONE), 1, strlen(key), strlen(g->id),
                              strlen(conn), strlen(role)};
    if (predis_cmd(g->redis, NULL, NULL, 7, argv, argvlen) != 0)
        plog_warn("provision_forget_failed", "conn=%llu msg=\"Redis down; the channel expires "
                  "by itself\"", (unsigned long long)conn_id);
}

void gw_provision_conn_gone(gw *g, gw_conn *c)
{
    gw_provision *p = c->prov;
    c->prov = NULL;
    if (!p)
        return;
    gw_prov_list_remove(g, p);
    if (p->role == GW_PROV_OPENER)
        gw_prov_forget(g, p->channel, "o", c->id);
    else if (p->role == GW_PROV_JOINER)
        gw_prov_forget(g, p->channel, "j", c->id);
    free(p);
}

/* ---- ProvisionOpen ------------------------------------------------------------------------ */

static void gw_prov_answer_opened(gw *g, gw_conn *c, uint64_t rid, const char *channel)
{
    Parley__V1__ProvisionOpened o = PARLEY__V1__PROVISION_OPENED__INIT;
    o.channel_id = (char *)channel;
    o.expires_ms = pclock_wall_ms() + (uint64_t)PARLEY_LINK_TTL_S * 1000;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = rid;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PROVISION_OPENED;
    sf.provision_opened = &o;
    gw_conn_send_frame(g, c, &sf);
}

static void gw_prov_opened_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_prov_req *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    gw_provision *p = c ? c->prov : NULL;
    if (p)
        p->busy = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        gw_prov_redis_failed(g, c, x, "provision_open_failed", r);
        goto out;
    }
    long long res = r->element[0]->integer, ttl = r->element[1]->integer;
    if (res == 1 && (!c || c->close_code || !p)) {
        gw_prov_forget(g, x->channel, "o", x->conn_id); /* nobody to hold it open */
        goto out;
    }
    if (!c || c->close_code)
        goto out;
    if (res < 0) {
        pmet_inc(g->m.prov_open_limited, 1);
        gw_prov_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                      "too many link codes from this address", ttl > 0 ? (uint32_t)ttl : 1000);
        goto out;
    }
    if (res == 0) {
        /* 40 random bits met a live channel: the client opens again */
        plog_warn("provision_id_collision", "conn=%llu", (unsigned long long)c->id);
        gw_prov_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                      "channel id in use; open again", 0);
        goto out;
    }
    p->role = GW_PROV_OPENER;
    memcpy(p->channel, x->channel, sizeof p->channel);
    p->expires_us = pclock_mono_us() + (uint64_t)PARLEY_LINK_TTL_S * 1000000;
    gw_prov_list_append(g, p);
    /* waiting for the approval takes minutes: the channel's life replaces the auth timeout */
    gw_conn_auth_list_remove(g, c);
    pmet_inc(g->m.prov_opened, 1);
    plog_info("provision_opened", "conn=%llu", (unsigned long long)c->id);
    plog_debug("provision_channel", "conn=%llu channel=%s role=opener", (unsigned long long)c->id,
               p->channel);
    gw_prov_answer_opened(g, c, x->request_id, p->channel);
out:
    free(x);
}

void gw_provision_open(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__ProvisionOpen *o = f->provision_open;
    uint64_t rid = f->request_id;
    if (!gw_prov_data_ok(g, c, rid, o->data.len))
        return;
    if (g->draining) {
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__SHUTTING_DOWN,
                      "gateway is shutting down", 0);
        return;
    }
    gw_provision *p = gw_prov_idle_state(g, c, rid);
    if (!p)
        return;
    gw_prov_req *x = gw_prov_req_new(g, c, rid, NULL);
    if (!x)
        return;
    uint8_t rnd[PARLEY_LINK_CHANNEL_ID_LEN];
    randombytes_buf(rnd, sizeof rnd);
    gw_provision_id_make(x->channel, rnd);

    char rl[PKEYS_MAX], key[GW_PROV_KEY_SIZE], peer[GW_PEER_TEXT_MAX],
        subject[GW_PEER_TEXT_MAX + 8], limit[GW_PROV_NUM_MAX], ttl[GW_PROV_NUM_MAX],
        conn[GW_PROV_NUM_MAX];
    gw_register_rate_subject(gw_peer_text(&c->peer, peer), subject, sizeof subject);
    if (pkeys_ratelimit(rl, PKEYS_RL_PROVISION_OPEN, subject) < 0) {
        free(x);
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "bad source address", 0);
        return;
    }
    gw_prov_key(key, x->channel);
    snprintf(limit, sizeof limit, "%lld", g->cfg->register_rate_per_minute);
    snprintf(ttl, sizeof ttl, "%d", PARLEY_LINK_TTL_S);
    snprintf(conn, sizeof conn, "%llu", (unsigned long long)c->id);
    const char *argv[] = {"EVAL", GW_LUA_PROV_OPEN, "2", rl, key, GW_PROV_OPEN_WINDOW_MS, limit,
                          ttl, g->id, conn, (const char *)o->data.data};
    const size_t argvlen[] = {4, strlen(GW_LUA_PROV_OPEN), 1, strlen(rl), strlen(key),
                              strlen(GW_PROV_OPEN_WINDOW_MS), strlen(limit), strlen(ttl),
                              strlen(g->id), strlen(conn), o->data.len};
    if (o->data.len == 0)
        argv[10] = "";
    if (predis_cmd(g->redis, gw_prov_opened_cb, x, 11, argv, argvlen) != 0) {
        free(x);
        gw_prov_unavailable(g, c, rid);
        return;
    }
    p->busy = 1;
}

/* ---- ProvisionJoin ------------------------------------------------------------------------ */

static void gw_prov_not_found(gw *g, gw_conn *c, uint64_t rid)
{
    pmet_inc(g->m.prov_join_not_found, 1);
    gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__LINK_NOT_FOUND,
                  "unknown, expired or already used link code", 0);
}

static int gw_prov_parse_conn(const redisReply *r, uint64_t *out)
{
    if (!r || r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= GW_PROV_NUM_MAX)
        return -1;
    char *end;
    unsigned long long v = strtoull(r->str, &end, 10);
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static void gw_prov_joined_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_prov_req *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    gw_provision *p = c ? c->prov : NULL;
    if (p)
        p->busy = 0;
    if (!r || (r->type != REDIS_REPLY_ARRAY && r->type != REDIS_REPLY_INTEGER)) {
        gw_prov_redis_failed(g, c, x, "provision_join_failed", r);
        goto out;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (c && !c->close_code)
            gw_prov_not_found(g, c, x->request_id);
        goto out;
    }
    uint64_t opener_conn;
    if (r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        gw_prov_parse_conn(r->element[1], &opener_conn) != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING) {
        plog_error("provision_bad_channel", "conn=%llu", (unsigned long long)x->conn_id);
        if (c && !c->close_code)
            gw_prov_not_found(g, c, x->request_id);
        goto out;
    }
    if (!c || c->close_code || !p) {
        gw_prov_forget(g, x->channel, "j", x->conn_id);
        goto out;
    }
    p->role = GW_PROV_JOINER;
    p->sends = 0;
    memcpy(p->channel, x->channel, sizeof p->channel);
    pmet_inc(g->m.prov_joined, 1);
    plog_info("provision_joined", "conn=%llu account=%s device=%" PRIu32,
              (unsigned long long)c->id, c->account, c->device_id);
    plog_debug("provision_channel", "conn=%llu channel=%s role=joiner", (unsigned long long)c->id,
               p->channel);

    Parley__V1__ProvisionPeer peer = PARLEY__V1__PROVISION_PEER__INIT;
    peer.channel_id = p->channel;
    peer.data.data = (uint8_t *)r->element[2]->str;
    peer.data.len = r->element[2]->len;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = x->request_id;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER;
    sf.provision_peer = &peer;
    gw_conn_send_frame(g, c, &sf);

    /* the opener learns the joiner's data; a failure leaves the joiner waiting for the
     * opener's first message, which its own timeout ends */
    peer.data.data = x->data;
    peer.data.len = x->len;
    sf.request_id = 0;
    if (gw_provision_relay(g, r->element[0]->str, opener_conn, &sf, NULL, NULL) != 0)
        plog_warn("provision_peer_relay_failed", "conn=%llu", (unsigned long long)c->id);
    else
        pmet_inc(g->m.prov_relayed, 1);
out:
    free(x);
}

void gw_provision_join(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__ProvisionJoin *j = f->provision_join;
    uint64_t rid = f->request_id;
    if (!gw_prov_data_ok(g, c, rid, j->data.len))
        return;
    gw_provision *p = gw_prov_idle_state(g, c, rid);
    if (!p)
        return;
    /* every try counts, found or not: it is guessing that the limit is for */
    uint32_t now_s = gw_conn_now_s(g);
    if (p->joins == 0 || now_s - p->join_window_s >= GW_PROV_JOIN_WINDOW_S) {
        p->join_window_s = now_s;
        p->joins = 0;
    }
    if (p->joins >= PARLEY_LINK_JOINS_PER_MINUTE) {
        uint32_t left_s = GW_PROV_JOIN_WINDOW_S - (now_s - p->join_window_s);
        pmet_inc(g->m.prov_join_limited, 1);
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                      "too many link codes tried on this connection", left_s * 1000);
        return;
    }
    p->joins++;
    gw_prov_req *x = gw_prov_req_new(g, c, rid, &j->data);
    if (!x)
        return;
    if (gw_provision_id_parse(j->channel_id, x->channel) != 0) {
        free(x);
        gw_prov_not_found(g, c, rid);
        return;
    }
    char key[GW_PROV_KEY_SIZE], conn[GW_PROV_NUM_MAX];
    gw_prov_key(key, x->channel);
    snprintf(conn, sizeof conn, "%llu", (unsigned long long)c->id);
    const char *argv[] = {"EVAL", GW_LUA_PROV_JOIN, "1", key, g->id, conn};
    const size_t argvlen[] = {4, strlen(GW_LUA_PROV_JOIN), 1, strlen(key), strlen(g->id),
                              strlen(conn)};
    if (predis_cmd(g->redis, gw_prov_joined_cb, x, 6, argv, argvlen) != 0) {
        free(x);
        gw_prov_unavailable(g, c, rid);
        return;
    }
    p->busy = 1;
}

/* ---- ProvisionSend ------------------------------------------------------------------------ */

/* Only relayed messages count against PARLEY_PROVISION_SENDS_MAX: a send is counted when it
 * goes to Redis (so pipelined sends cannot overrun the limit) and given back when it is refused
 * or fails after that. */
static void gw_prov_send_uncount(gw *g, uint64_t conn_id)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (c && c->prov && c->prov->sends > 0)
        c->prov->sends--;
}

static void gw_prov_sent(gw *g, void *ud, int ok)
{
    gw_prov_req *x = ud;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (ok)
        pmet_inc(g->m.prov_relayed, 1);
    else
        gw_prov_send_uncount(g, x->conn_id);
    if (c && !c->close_code) {
        if (ok) {
            Parley__V1__ProvisionSent sent = PARLEY__V1__PROVISION_SENT__INIT;
            Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
            sf.request_id = x->request_id;
            sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PROVISION_SENT;
            sf.provision_sent = &sent;
            gw_conn_send_frame(g, c, &sf);
        } else {
            gw_prov_unavailable(g, c, x->request_id);
        }
    }
    free(x);
}

static int gw_prov_is(const redisReply *gwr, const redisReply *connr, const char *gateway_id,
                      uint64_t conn_id)
{
    uint64_t v;
    return gwr->type == REDIS_REPLY_STRING && strcmp(gwr->str, gateway_id) == 0 &&
           gw_prov_parse_conn(connr, &v) == 0 && v == conn_id;
}

/* HMGET og oc jg jc answered: relay to the other side. */
static void gw_prov_peer_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_prov_req *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!c || c->close_code) {
        free(x);
        return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        gw_prov_send_uncount(g, c->id);
        gw_prov_redis_failed(g, c, x, "provision_send_failed", r);
        free(x);
        return;
    }
    redisReply **v = r->element; /* og oc jg jc */
    const char *why = NULL;
    int self = x->role == GW_PROV_OPENER ? 0 : 2, other = 2 - self;
    uint64_t peer_conn = 0;
    if (v[0]->type != REDIS_REPLY_STRING)
        why = "the provisioning channel is gone (expired, or its opener left)";
    else if (!gw_prov_is(v[self], v[self + 1], g->id, c->id))
        why = "not a member of this provisioning channel";
    else if (v[other]->type != REDIS_REPLY_STRING)
        why = "no device has joined this provisioning channel yet";
    else if (gw_prov_parse_conn(v[other + 1], &peer_conn) != 0 || peer_conn == 0)
        why = "the other side left the provisioning channel";
    if (why) {
        gw_prov_send_uncount(g, c->id);
        gw_prov_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__LINK_NOT_FOUND, why, 0);
        free(x);
        return;
    }
    Parley__V1__ProvisionData d = PARLEY__V1__PROVISION_DATA__INIT;
    d.channel_id = x->channel;
    d.data.data = x->data;
    d.data.len = x->len;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PROVISION_DATA;
    sf.provision_data = &d;
    uint64_t rid = x->request_id;
    /* gw_prov_sent frees x, at once when the peer is on this gateway */
    if (gw_provision_relay(g, v[other]->str, peer_conn, &sf, gw_prov_sent, x) != 0) {
        free(x);
        gw_prov_send_uncount(g, c->id);
        gw_prov_unavailable(g, c, rid);
    }
}

void gw_provision_send(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__ProvisionSend *s = f->provision_send;
    uint64_t rid = f->request_id;
    if (!gw_prov_data_ok(g, c, rid, s->data.len))
        return;
    gw_provision *p = c->prov;
    char channel[GW_PROVISION_ID_SIZE];
    if (!p || p->role == GW_PROV_NONE || gw_provision_id_parse(s->channel_id, channel) != 0 ||
        strcmp(channel, p->channel) != 0) {
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__LINK_NOT_FOUND,
                      "not a member of this provisioning channel", 0);
        return;
    }
    if (p->sends >= PARLEY_PROVISION_SENDS_MAX) {
        gw_prov_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                      "at most 16 messages per provisioning channel", 0);
        return;
    }
    gw_prov_req *x = gw_prov_req_new(g, c, rid, &s->data);
    if (!x)
        return;
    x->role = p->role;
    memcpy(x->channel, p->channel, sizeof x->channel);
    char key[GW_PROV_KEY_SIZE];
    gw_prov_key(key, p->channel);
    const char *argv[] = {"HMGET", key, "og", "oc", "jg", "jc"};
    const size_t argvlen[] = {5, strlen(key), 2, 2, 2, 2};
    if (predis_cmd(g->redis, gw_prov_peer_cb, x, 6, argv, argvlen) != 0) {
        free(x);
        gw_prov_unavailable(g, c, rid);
        return;
    }
    p->sends++;
}

/* ---- pushes from the other side ----------------------------------------------------------- */

int gw_provision_deliver(gw *g, uint64_t conn_id, const uint8_t *frame, size_t len)
{
    Parley__V1__ServerFrame *sf = parley__v1__server_frame__unpack(NULL, len, frame);
    const char *channel = NULL;
    int want_opener = 0;
    if (!sf)
        return -1;
    if (sf->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_PEER && sf->provision_peer) {
        channel = sf->provision_peer->channel_id;
        want_opener = 1;
    } else if (sf->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_DATA &&
               sf->provision_data) {
        channel = sf->provision_data->channel_id;
    } else {
        parley__v1__server_frame__free_unpacked(sf, NULL);
        return -1;
    }
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    gw_provision *p = c ? c->prov : NULL;
    /* a connection id names another connection after a gateway restart: the channel must match */
    if (p && !c->close_code && p->role != GW_PROV_NONE &&
        (!want_opener || p->role == GW_PROV_OPENER) && channel &&
        strcmp(channel, p->channel) == 0)
        gw_conn_send(g, c, gw_frame_raw(frame, len));
    else
        pmet_inc(g->m.prov_dropped, 1);
    parley__v1__server_frame__free_unpacked(sf, NULL);
    return 0;
}
