#include "gw_prekeys_low.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "keys.h"
#include "log.h"

/* KEYS[1] the per-device push window, KEYS[2] the device's presence; ARGV[1] the window (ms).
 * Returns the presence value when this call opened a window and the device is online, else
 * nil. */
#define GW_LUA_LOW                                                                             \
    "if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then "                            \
    "return redis.call('GET', KEYS[2]) end "                                                   \
    "return false"

typedef struct {
    gw *g;
    char account[PARLEY_NAME_MAX + 1];
    uint32_t device_id, count;
} gw_pk_low_ctx;

static void gw_pk_low_deliver(gw *g, const char *account, uint32_t device_id, uint32_t count)
{
    gw_conn *c = gw_conns_device(&g->conns, account, device_id);
    /* not before AuthOk (c->auth is freed once it is sent): AuthOk carries the count anyway */
    if (!c || c->close_code || c->state != GW_CONN_AUTHED || c->auth)
        return;
    Parley__V1__PrekeysLow low = PARLEY__V1__PREKEYS_LOW__INIT;
    low.one_time_count = count;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_LOW;
    sf.prekeys_low = &low;
    if (gw_conn_send_frame(g, c, &sf) == 0) {
        pmet_inc(g->m.prekey_low_pushes, 1);
        plog_debug("prekeys_low_pushed", "conn=%llu account=%s device=%" PRIu32 " count=%" PRIu32,
                   (unsigned long long)c->id, account, device_id, count);
    }
}

static void gw_pk_low_route(gw *g, const gw_pk_low_ctx *x, const char *other_gw)
{
    Parley__V1__PrekeysLow low = PARLEY__V1__PREKEYS_LOW__INIT;
    low.one_time_count = x->count;
    Parley__V1__InternalPrekeysLow il = PARLEY__V1__INTERNAL_PREKEYS_LOW__INIT;
    il.account = (char *)x->account;
    il.device_id = x->device_id;
    il.low = &low;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_PREKEYS_LOW;
    ev.prekeys_low = &il;
    if (gw_events_send_to(g, other_gw, &ev, "prekeys_low") == 0)
        plog_debug("prekeys_low_routed", "account=%s device=%" PRIu32 " gateway=%s", x->account,
                   x->device_id, other_gw);
}

static void gw_pk_low_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_pk_low_ctx *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    char other[PARLEY_GATEWAY_ID_MAX + 1];
    uint64_t conn_id;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_warn("prekeys_low_failed", "account=%s device=%" PRIu32 " error=%s", x->account,
                  x->device_id, plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
    } else if (r->type == REDIS_REPLY_STRING &&
               gw_presence_parse(r->str, r->len, other, sizeof other, &conn_id) == 0) {
        if (strcmp(other, g->id) == 0)
            gw_pk_low_deliver(g, x->account, x->device_id, x->count);
        else
            gw_pk_low_route(g, x, other);
    }
    /* nil: pushed within the interval already, or offline */
    free(x);
}

void gw_prekeys_low_notify(gw *g, const char *account, uint32_t device_id,
                           uint32_t one_time_count)
{
    char who[PARLEY_NAME_MAX + 16], window[PKEYS_MAX], presence[PKEYS_MAX], ms[24];
    snprintf(who, sizeof who, "%s:%" PRIu32, account, device_id);
    if (pkeys_ratelimit(window, "prekeys_low", who) < 0 ||
        pkeys_presence(presence, account, device_id) < 0)
        return;
    gw_pk_low_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return;
    x->g = g;
    snprintf(x->account, sizeof x->account, "%s", account);
    x->device_id = device_id;
    x->count = one_time_count;
    snprintf(ms, sizeof ms, "%d", PARLEY_PREKEYS_LOW_PUSH_INTERVAL_S * 1000);
    const char *argv[] = {"EVAL", GW_LUA_LOW, "2", window, presence, ms};
    const size_t argvlen[] = {4, strlen(GW_LUA_LOW), 1, strlen(window), strlen(presence),
                              strlen(ms)};
    if (predis_cmd(g->redis, gw_pk_low_cb, x, 6, argv, argvlen) != 0)
        free(x); /* Redis down: AuthOk tells the device at its next login */
}

void gw_prekeys_low_apply(gw *g, const Parley__V1__InternalPrekeysLow *low)
{
    if (!low->account || !low->low)
        return;
    gw_pk_low_deliver(g, low->account, low->device_id, low->low->one_time_count);
}
