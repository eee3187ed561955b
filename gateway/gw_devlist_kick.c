#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_devlist.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

/* Takes every KEYS[i] (presence of a removed device) and deletes it in one step, so no refresh
 * in between can keep it. Returns the values, "" where a key was absent. */
#define GW_LUA_TAKE                                                                            \
    "local r = {} "                                                                            \
    "for i, k in ipairs(KEYS) do "                                                             \
    "local v = redis.call('GET', k) "                                                          \
    "if v then redis.call('DEL', k) r[i] = v else r[i] = '' end end "                          \
    "return r"

typedef struct {
    gw *g;
    char account[PARLEY_NAME_MAX + 1];
    size_t n;
    uint32_t ids[];
} gw_devlist_kick_ctx;

static void gw_devlist_close_local(gw *g, const char *account, uint32_t device_id)
{
    gw_conn *c = gw_conns_device(&g->conns, account, device_id);
    if (!c || c->close_code)
        return;
    pmet_inc(g->m.closes_removed, 1);
    plog_info("conn_device_removed", "conn=%llu account=%s device=%" PRIu32,
              (unsigned long long)c->id, account, device_id);
    /* what was queued (a self-removal's DeviceListOk) goes out before the close */
    gw_conn_close(g, c, PWIRE_CLOSE_DEVICE_REMOVED, "device removed from the account", 1);
}

static void gw_devlist_send_kick(gw *g, const char *account, uint32_t device_id,
                                 const char *gateway_id)
{
    Parley__V1__InternalKick kick = PARLEY__V1__INTERNAL_KICK__INIT;
    kick.account = (char *)account;
    kick.device_id = device_id;
    kick.conn_id = 0; /* whichever connection of the device that gateway holds */
    kick.close_code = PWIRE_CLOSE_DEVICE_REMOVED;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_KICK;
    ev.kick = &kick;
    if (gw_events_send_to(g, gateway_id, &ev, "kick_removed") != 0) {
        plog_warn("kick_removed_failed", "account=%s device=%" PRIu32 " gateway=%s", account,
                  device_id, gateway_id);
        return;
    }
    pmet_inc(g->m.kicks_sent, 1);
    plog_info("kick_sent", "account=%s device=%" PRIu32 " gateway=%s reason=removed", account,
              device_id, gateway_id);
}

static void gw_devlist_taken_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_devlist_kick_ctx *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != x->n) {
        char q[256];
        /* a connection of the device on another gateway stays open then; its device row is
         * gone, so nothing is queued for it and it cannot authenticate again */
        plog_warn("kick_removed_presence_failed", "account=%s error=%s", x->account,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        free(x);
        return;
    }
    for (size_t i = 0; i < x->n; i++) {
        const redisReply *v = r->element[i];
        char other[PARLEY_GATEWAY_ID_MAX + 1];
        uint64_t conn_id;
        if (v->type != REDIS_REPLY_STRING || v->len == 0 ||
            gw_presence_parse(v->str, v->len, other, sizeof other, &conn_id) != 0)
            continue;
        if (strcmp(other, g->id) != 0)
            gw_devlist_send_kick(g, x->account, x->ids[i], other);
    }
    free(x);
}

void gw_devlist_kick(gw *g, const char *account, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gw_devlist_close_local(g, account, ids[i]);
    if (n == 0)
        return;
    gw_devlist_kick_ctx *x = malloc(sizeof *x + n * sizeof x->ids[0]);
    /* EVAL script numkeys key... */
    const char **argv = calloc(n + 3, sizeof *argv);
    size_t *argvlen = calloc(n + 3, sizeof *argvlen);
    char (*keys)[PKEYS_MAX] = calloc(n, sizeof *keys);
    char numkeys[24];
    int ok = x && argv && argvlen && keys;
    if (ok) {
        x->g = g;
        snprintf(x->account, sizeof x->account, "%s", account);
        x->n = n;
        memcpy(x->ids, ids, n * sizeof ids[0]);
        snprintf(numkeys, sizeof numkeys, "%zu", n);
        argv[0] = "EVAL";
        argv[1] = GW_LUA_TAKE;
        argv[2] = numkeys;
        for (size_t i = 0; i < n && ok; i++) {
            ok = pkeys_presence(keys[i], account, ids[i]) >= 0;
            argv[3 + i] = keys[i];
        }
    }
    if (ok) {
        for (size_t i = 0; i < n + 3; i++)
            argvlen[i] = strlen(argv[i]);
        ok = predis_cmd(g->redis, gw_devlist_taken_cb, x, (int)(n + 3), argv, argvlen) == 0;
    }
    if (!ok) {
        plog_warn("kick_removed_presence_failed", "account=%s error=%s", account,
                  x && argv && argvlen && keys ? "redis unavailable" : "out of memory");
        free(x);
    }
    free(argv);
    free(argvlen);
    free(keys);
}
