#include "gw_reaper.h"

#include <libwebsockets.h>
#include <stdlib.h>

#include "clock.h"
#include "gw.h"
#include "gw_rx.h"
#include "log.h"

static void gw_reaper_push(gw *g, gw_conn *c, int oversized)
{
    gw_reap *r = malloc(sizeof *r);
    if (!r) {
        /* lws's own timeout does the same job, only at a higher cost per insert */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, PARLEY_CLOSE_BACKSTOP_S);
        return;
    }
    r->next = NULL;
    r->conn_id = c->id;
    r->deadline_us = pclock_mono_us() + (uint64_t)PARLEY_CLOSE_BACKSTOP_S * 1000000;
    r->oversized = oversized;
    gw_reaper *q = &g->reaper;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->count++;
}

void gw_reaper_add(gw *g, gw_conn *c)
{
    gw_reaper_push(g, c, 0);
}

void gw_reaper_add_oversized(gw *g, gw_conn *c)
{
    gw_reaper_push(g, c, 1);
}

void gw_reaper_expire(gw *g, uint64_t now_us)
{
    gw_reaper *q = &g->reaper;
    while (q->head && q->head->deadline_us <= now_us) {
        gw_reap *r = q->head;
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        q->count--;
        gw_conn *c = gw_conns_get(&g->conns, r->conn_id);
        /* an oversized message that ended was answered with a close, which has its own entry */
        int cut = c && (r->oversized ? (c->rx && c->rx->skip && !c->close_code) : 1);
        free(r);
        if (!cut)
            continue;
        plog_debug("conn_cut", "conn=%llu", (unsigned long long)c->id);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

void gw_reaper_free(gw_reaper *q)
{
    while (q->head) {
        gw_reap *r = q->head;
        q->head = r->next;
        free(r);
    }
    q->tail = NULL;
    q->count = 0;
}
