#include "gw_sweep.h"

#include <libwebsockets.h>

#include "gw.h"
#include "gw_presence.h"
#include "keys.h"
#include "log.h"
#include "wire.h"

#define GW_SWEEP_PERIOD_US ((uint64_t)PKEYS_PRESENCE_REFRESH_S * 1000000)
/* a tick late by more than this (a stalled loop) does not buy a burst of work */
#define GW_SWEEP_MAX_DT_US 1000000

size_t gw_sweep_share(size_t n, uint64_t dt_us, uint64_t period_us, uint64_t *acc)
{
    *acc += (uint64_t)n * dt_us;
    uint64_t share = *acc / period_us;
    *acc -= share * period_us;
    return (size_t)share;
}

static void gw_sweep_keepalive(gw *g, gw_conn *c, uint32_t now_s)
{
    uint32_t idle = now_s - c->last_rx_s;
    if (idle >= PARLEY_GW_KEEPALIVE_HANGUP_S) {
        plog_info("keepalive_timeout", "conn=%llu idle_s=%u", (unsigned long long)c->id, idle);
        pmet_inc(g->m.closes_keepalive, 1);
        gw_conn_close(g, c, PWIRE_CLOSE_GOING_AWAY, "keepalive timeout", 0);
    } else if (idle >= PARLEY_GW_KEEPALIVE_IDLE_S && !c->ping_due) {
        c->ping_due = 1;
        lws_callback_on_writable(c->wsi);
    }
}

typedef struct {
    gw *g;
    uint32_t now_s;
    int presence;
} gw_sweep_ctx;

static void gw_sweep_visit(gw_conn *c, void *ud)
{
    gw_sweep_ctx *x = ud;
    if (c->close_code)
        return;
    gw_sweep_keepalive(x->g, c, x->now_s);
    if (x->presence && !c->close_code && c->state == GW_CONN_AUTHED)
        gw_presence_refresh(x->g, c, 0);
}

static void gw_reclaim_visit(gw_conn *c, void *ud)
{
    gw_sweep_ctx *x = ud;
    if (!c->close_code && c->state == GW_CONN_AUTHED)
        gw_presence_refresh(x->g, c, 1);
}

static void gw_sweep_reclaim_step(gw *g, gw_sweep *s, uint64_t dt_us)
{
    size_t budget = gw_sweep_share(PARLEY_GW_RECLAIM_PER_S, dt_us, 1000000, &s->reclaim_acc);
    gw_sweep_ctx x = {g, 0, 1};
    size_t buckets = gw_conns_buckets(&g->conns);
    /* whole buckets at a time: chains are short, so the budget is overrun by a few at most */
    size_t done = 0;
    while (done < budget && s->reclaim_cursor < buckets)
        done += gw_conns_visit(&g->conns, s->reclaim_cursor++, 1, gw_reclaim_visit, &x);
    if (s->reclaim_cursor >= buckets) {
        s->reclaiming = 0;
        plog_info("presence_reclaimed", "connections=%zu", g->conns.dev_count);
    }
}

void gw_sweep_tick(gw *g, uint64_t now_us)
{
    gw_sweep *s = &g->sweep;
    uint64_t dt = s->last_us && now_us > s->last_us ? now_us - s->last_us : 0;
    s->last_us = now_us;
    if (dt > GW_SWEEP_MAX_DT_US)
        dt = GW_SWEEP_MAX_DT_US;
    size_t buckets = gw_conns_buckets(&g->conns);
    size_t n = gw_sweep_share(buckets, dt, GW_SWEEP_PERIOD_US, &s->acc);
    /* a Redis outage pauses presence (the reconnect re-claims everything), not the keepalive */
    gw_sweep_ctx x = {g, gw_conn_now_s(g), predis_up(g->redis)};
    while (n > 0) {
        if (s->cursor >= buckets)
            s->cursor = 0;
        size_t step = n < buckets - s->cursor ? n : buckets - s->cursor;
        gw_conns_visit(&g->conns, s->cursor, step, gw_sweep_visit, &x);
        s->cursor += step;
        n -= step;
    }
    if (s->reclaiming && predis_up(g->redis))
        gw_sweep_reclaim_step(g, s, dt);
}

void gw_sweep_reclaim(gw *g)
{
    gw_sweep *s = &g->sweep;
    if (g->conns.dev_count)
        plog_info("presence_reclaim", "connections=%zu", g->conns.dev_count);
    s->reclaiming = 1;
    s->reclaim_cursor = 0;
    /* the first slice goes at the next tick without waiting for budget to build up */
    s->reclaim_acc = 1000000 / 10 * (uint64_t)PARLEY_GW_RECLAIM_PER_S;
}
