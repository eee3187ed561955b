#include "gw_events.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_drain.h"
#include "gw_frame.h"
#include "gw_prekeys_low.h"
#include "gw_provision.h"
#include "gw_send.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

#define GW_EVENTS_COUNT "256"     /* entries per XREAD */
#define GW_EVENTS_BLOCK_MS "5000" /* XREAD BLOCK; the connection is ours alone */
#define GW_EVENTS_RETRY_MS 1000   /* after an error reply */

typedef struct {
    gw *g;
    unsigned gen;
} gw_ev_ctx;

static void gw_events_read(gw *g);

/* ---- applying events ---------------------------------------------------------------------- */

static void gw_events_reply(gw *g, const Parley__V1__InternalReply *r)
{
    gw_conn *c = gw_conns_get(&g->conns, r->conn_id);
    uint64_t latency_us;
    if (!c || c->close_code) {
        pmet_inc(g->m.send_late_replies, 1);
        return;
    }
    if (gw_send_answered(g, c, r->request_id, &latency_us) != 0) {
        /* already answered UNAVAILABLE (timeout): the client resends with the same client_id */
        pmet_inc(g->m.send_late_replies, 1);
        return;
    }
    pmet_observe(g->m.send_latency, (double)latency_us / 1e6);
    pmet_inc(g->m.send_replies, 1);
    gw_conn_send(g, c, gw_frame_raw(r->frame.data, r->frame.len));
}

static void gw_events_push(gw *g, const Parley__V1__InternalPush *p)
{
    if (!p->account || !p->envelope)
        return;
    gw_conn *c = gw_conns_device(&g->conns, p->account, p->device_id);
    if (!c || c->close_code || c->state != GW_CONN_AUTHED)
        return; /* not here (any more): the envelope waits in the queue */
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE;
    sf.envelope = p->envelope;
    gw_drain_push(g, c, p->envelope->id, gw_frame_pack(&sf));
}

static void gw_events_kick(gw *g, const Parley__V1__InternalKick *k)
{
    pmet_inc(g->m.kicks_received, 1);
    if (!k->account)
        return;
    /* conn_id 0 (a removed device): whichever connection of the device is here */
    gw_conn *c = k->conn_id ? gw_conns_get(&g->conns, k->conn_id)
                            : gw_conns_device(&g->conns, k->account, k->device_id);
    if (!c || c->close_code || c->state != GW_CONN_AUTHED || c->account_session ||
        c->device_id != k->device_id || strcmp(c->account, k->account) != 0)
        return;
    if (k->close_code == PWIRE_CLOSE_DEVICE_REMOVED) {
        plog_info("conn_device_removed", "conn=%llu account=%s device=%" PRIu32,
                  (unsigned long long)c->id, c->account, c->device_id);
        pmet_inc(g->m.closes_removed, 1);
        gw_conn_close(g, c, PWIRE_CLOSE_DEVICE_REMOVED, "device removed from the account", 0);
        return;
    }
    plog_info("conn_kicked", "conn=%llu account=%s device=%" PRIu32, (unsigned long long)c->id,
              c->account, c->device_id);
    pmet_inc(g->m.closes_replaced, 1);
    gw_conn_close(g, c, PWIRE_CLOSE_REPLACED, "replaced by a newer connection", 0);
}

/* A reply with request_id 0 may answer no request: a push another gateway relayed for a
 * provisioning channel (gw_provision.h). Returns 1 when it was one. */
static int gw_events_relayed(gw *g, const Parley__V1__InternalReply *r)
{
    return r->request_id == 0 &&
           gw_provision_deliver(g, r->conn_id, r->frame.data, r->frame.len) == 0;
}

void gw_events_apply(gw *g, const Parley__V1__InternalEvent *ev)
{
    switch (ev->body_case) {
    case PARLEY__V1__INTERNAL_EVENT__BODY_REPLY:
        if (ev->reply && !gw_events_relayed(g, ev->reply))
            gw_events_reply(g, ev->reply);
        break;
    case PARLEY__V1__INTERNAL_EVENT__BODY_PUSH:
        if (ev->push)
            gw_events_push(g, ev->push);
        break;
    case PARLEY__V1__INTERNAL_EVENT__BODY_KICK:
        if (ev->kick)
            gw_events_kick(g, ev->kick);
        break;
    case PARLEY__V1__INTERNAL_EVENT__BODY_PREKEYS_LOW:
        if (ev->prekeys_low)
            gw_prekeys_low_apply(g, ev->prekeys_low);
        break;
    default:
        pmet_inc(g->m.events_bad, 1);
        break;
    }
}

static void gw_events_entry(gw *g, const redisReply *e)
{
    /* [id, [field, value, ...]] */
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    snprintf(g->events.last_id, sizeof g->events.last_id, "%s", e->element[0]->str);
    const redisReply *kv = e->element[1];
    if (kv->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            strcmp(k->str, PKEYS_FIELD) != 0)
            continue;
        Parley__V1__InternalEvent *ev =
            parley__v1__internal_event__unpack(NULL, v->len, (const uint8_t *)v->str);
        if (!ev) {
            pmet_inc(g->m.events_bad, 1);
            plog_warn("delivery_bad_entry", "id=%s", g->events.last_id);
            continue;
        }
        gw_events_apply(g, ev);
        parley__v1__internal_event__free_unpacked(ev, NULL);
    }
}

/* ---- events to other gateways ------------------------------------------------------------- */

static void gw_events_sent_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_warn("delivery_send_failed", "what=%s error=%s", (const char *)privdata,
                  plog_q(q, sizeof q, r->str));
    }
}

int gw_events_send_to(gw *g, const char *gateway_id, const Parley__V1__InternalEvent *ev,
                      const char *what)
{
    uint8_t buf[GW_EVENTS_SEND_MAX];
    size_t len = parley__v1__internal_event__get_packed_size(ev);
    char key[PKEYS_MAX];
    if (len > sizeof buf || pkeys_delivery(key, gateway_id) < 0)
        return -1;
    parley__v1__internal_event__pack(ev, buf);
    const char *argv[] = {"XADD", key, "MAXLEN", "~", PKEYS_DELIVERY_MAXLEN, "*", PKEYS_FIELD,
                          (const char *)buf};
    const size_t argvlen[] = {4, strlen(key), 6, 1, strlen(PKEYS_DELIVERY_MAXLEN), 1,
                              strlen(PKEYS_FIELD), len};
    return predis_cmd(g->redis, gw_events_sent_cb, (void *)what, 8, argv, argvlen);
}

/* ---- the read chain ----------------------------------------------------------------------- */

static void gw_events_retry_cb(uv_timer_t *t)
{
    gw *g = t->data;
    if (!g->events.stopped)
        gw_events_read(g);
}

static void gw_events_retry_later(gw *g)
{
    if (g->events.retry_init && !g->events.stopped)
        uv_timer_start(&g->events.retry, gw_events_retry_cb, GW_EVENTS_RETRY_MS, 0);
}

static void gw_events_read_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_ev_ctx *x = privdata;
    gw *g = x->g;
    unsigned gen = x->gen;
    free(x);
    redisReply *r = reply;
    if (!r || gen != g->events.gen || g->events.stopped)
        return; /* disconnected: gw_events_on_up restarts the chain */
    if (r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_error("delivery_read_failed", "error=%s", plog_q(q, sizeof q, r->str));
        gw_events_retry_later(g);
        return;
    }
    /* nil on BLOCK timeout; else [[key, [entries]]] */
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *st = r->element[s];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
                st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t i = 0; i < st->element[1]->elements; i++)
                gw_events_entry(g, st->element[1]->element[i]);
        }
    }
    gw_events_read(g);
}

static void gw_events_read(gw *g)
{
    gw_ev_ctx *x = malloc(sizeof *x);
    if (!x) {
        gw_events_retry_later(g);
        return;
    }
    x->g = g;
    x->gen = g->events.gen;
    const char *id = g->events.last_id[0] ? g->events.last_id : "$";
    const char *argv[] = {"XREAD", "COUNT", GW_EVENTS_COUNT, "BLOCK", GW_EVENTS_BLOCK_MS,
                          "STREAMS", g->delivery_key, id};
    const size_t argvlen[] = {5, 5, strlen(GW_EVENTS_COUNT), 5, strlen(GW_EVENTS_BLOCK_MS), 7,
                              strlen(g->delivery_key), strlen(id)};
    if (predis_cmd(g->redis_block, gw_events_read_cb, x, 8, argv, argvlen) != 0)
        free(x); /* not connected: on_up restarts */
}

static void gw_events_start_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_ev_ctx *x = privdata;
    gw *g = x->g;
    unsigned gen = x->gen;
    free(x);
    redisReply *r = reply;
    if (!r || gen != g->events.gen || g->events.stopped)
        return;
    if (r->type == REDIS_REPLY_ARRAY) {
        /* XREVRANGE + - COUNT 1: the newest entry, or none */
        if (r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements >= 1 && r->element[0]->element[0]->type == REDIS_REPLY_STRING)
            snprintf(g->events.last_id, sizeof g->events.last_id, "%s",
                     r->element[0]->element[0]->str);
        else
            snprintf(g->events.last_id, sizeof g->events.last_id, "0-0");
    } else {
        char q[256];
        plog_warn("delivery_start_failed", "error=%s", plog_q(q, sizeof q, r->str));
    }
    plog_info("delivery_reading", "stream=%s after=%s", g->delivery_key,
              g->events.last_id[0] ? g->events.last_id : "$");
    gw_events_read(g);
}

int gw_events_init(gw *g)
{
    memset(&g->events, 0, sizeof g->events);
    if (uv_timer_init(g->loop, &g->events.retry) != 0)
        return -1;
    g->events.retry.data = g;
    g->events.retry_init = 1;
    return 0;
}

void gw_events_on_up(predis *r, void *ud)
{
    gw *g = ud;
    (void)r;
    g->events.gen++;
    if (g->events.stopped)
        return;
    if (g->events.retry_init)
        uv_timer_stop(&g->events.retry);
    if (g->events.last_id[0]) {
        /* continue after the last entry seen: nothing in between is lost */
        gw_events_read(g);
        return;
    }
    /* first connect: start after the newest existing entry ("$" without the gap between two
     * XREAD calls) */
    gw_ev_ctx *x = malloc(sizeof *x);
    if (!x) {
        gw_events_retry_later(g);
        return;
    }
    x->g = g;
    x->gen = g->events.gen;
    const char *argv[] = {"XREVRANGE", g->delivery_key, "+", "-", "COUNT", "1"};
    const size_t argvlen[] = {9, strlen(g->delivery_key), 1, 1, 5, 1};
    if (predis_cmd(g->redis_block, gw_events_start_cb, x, 6, argv, argvlen) != 0)
        free(x);
}

void gw_events_stop(gw *g)
{
    g->events.stopped = 1;
    g->events.gen++;
    if (g->events.retry_init && !uv_is_closing((uv_handle_t *)&g->events.retry))
        uv_close((uv_handle_t *)&g->events.retry, NULL);
}
