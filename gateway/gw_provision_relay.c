#include "gw_provision_relay.h"

#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_provision.h"
#include "keys.h"
#include "log.h"

typedef struct {
    gw *g;
    gw_provision_relay_cb cb;
    void *ud;
} gw_prov_relay_ctx;

static void gw_provision_relayed_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_prov_relay_ctx *x = privdata;
    redisReply *r = reply;
    int ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok) {
        char q[256];
        plog_warn("provision_relay_failed", "error=%s",
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
    }
    if (x->cb)
        x->cb(x->g, x->ud, ok);
    free(x);
}

/* XADD of InternalEvent{reply{conn_id, frame, request_id 0}} to the other gateway's stream. */
static int gw_provision_relay_remote(gw *g, const char *gateway_id, uint64_t conn_id,
                                     uint8_t *frame, size_t flen, gw_prov_relay_ctx *x)
{
    Parley__V1__InternalReply rep = PARLEY__V1__INTERNAL_REPLY__INIT;
    rep.conn_id = conn_id;
    rep.frame.data = frame;
    rep.frame.len = flen;
    Parley__V1__InternalEvent ev = PARLEY__V1__INTERNAL_EVENT__INIT;
    ev.body_case = PARLEY__V1__INTERNAL_EVENT__BODY_REPLY;
    ev.reply = &rep;
    char key[PKEYS_MAX];
    if (pkeys_delivery(key, gateway_id) < 0)
        return -1;
    size_t len = parley__v1__internal_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len);
    if (!buf)
        return -1;
    parley__v1__internal_event__pack(&ev, buf);
    const char *argv[] = {"XADD", key, "MAXLEN", "~", PKEYS_DELIVERY_MAXLEN, "*", PKEYS_FIELD,
                          (const char *)buf};
    const size_t argvlen[] = {4, strlen(key), 6, 1, strlen(PKEYS_DELIVERY_MAXLEN), 1,
                              strlen(PKEYS_FIELD), len};
    /* hiredis formats the command into its own buffer: buf is ours again on return */
    int rc = predis_cmd(g->redis, gw_provision_relayed_cb, x, 8, argv, argvlen);
    free(buf);
    return rc;
}

int gw_provision_relay(gw *g, const char *gateway_id, uint64_t conn_id,
                       const Parley__V1__ServerFrame *sf, gw_provision_relay_cb cb, void *ud)
{
    size_t flen = parley__v1__server_frame__get_packed_size(sf);
    uint8_t *frame = malloc(flen ? flen : 1);
    if (!frame)
        return -1;
    parley__v1__server_frame__pack(sf, frame);
    if (strcmp(gateway_id, g->id) == 0) {
        /* the same checks as a frame from another gateway */
        (void)gw_provision_deliver(g, conn_id, frame, flen); /* 0: it is a provisioning push */
        free(frame);
        if (cb)
            cb(g, ud, 1);
        return 0;
    }
    gw_prov_relay_ctx *x = malloc(sizeof *x);
    if (!x) {
        free(frame);
        return -1;
    }
    x->g = g;
    x->cb = cb;
    x->ud = ud;
    int rc = gw_provision_relay_remote(g, gateway_id, conn_id, frame, flen, x);
    free(frame);
    if (rc != 0)
        free(x);
    return rc;
}
