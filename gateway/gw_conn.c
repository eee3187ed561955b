#include "gw_conn.h"

#include "gw_proto.h"
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gw.h"
#include "gw_drain.h"
#include "gw_frame.h"
#include "gw_provision.h"
#include "gw_reaper.h"
#include "gw_rx.h"
#include "gw_send.h"
#include "gw_server.h"
#include "log.h"
#include "wire.h"

#define GW_CONNS_MIN_CAP 64

size_t gw_outbound_max(const gw *g)
{
    return (size_t)g->cfg->outbound_max;
}

static size_t gw_hash_id(uint64_t id)
{
    /* splitmix64 finaliser: conn ids are sequential, buckets should not be */
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ULL;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebULL;
    id ^= id >> 31;
    return (size_t)id;
}

static size_t gw_hash_dev(const char *account, uint32_t device_id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)account; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    for (int i = 0; i < 4; i++) {
        h ^= (device_id >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

int gw_conns_init(gw_conns *t)
{
    memset(t, 0, sizeof *t);
    t->by_id = calloc(GW_CONNS_MIN_CAP, sizeof *t->by_id);
    t->by_dev = calloc(GW_CONNS_MIN_CAP, sizeof *t->by_dev);
    if (!t->by_id || !t->by_dev) {
        free(t->by_id);
        free(t->by_dev);
        t->by_id = t->by_dev = NULL;
        return -1;
    }
    t->id_cap = t->dev_cap = GW_CONNS_MIN_CAP;
    return 0;
}

static void gw_conn_free_mem(gw_conn *c)
{
    gw_drain_free(c);
    gw_outq_clear(&c->out);
    gw_rx_end(&c->rx);
    free(c->auth);
    free(c);
}

void gw_conns_free(gw_conns *t)
{
    if (t->by_id) {
        for (size_t i = 0; i < t->id_cap; i++) {
            gw_conn *c = t->by_id[i];
            while (c) {
                gw_conn *next = c->id_next;
                /* pending entries live in gw->pending, freed by their owner; here only memory */
                gw_conn_free_mem(c);
                c = next;
            }
        }
    }
    free(t->by_id);
    free(t->by_dev);
    memset(t, 0, sizeof *t);
}

gw_conn *gw_conns_get(const gw_conns *t, uint64_t id)
{
    if (!t->by_id)
        return NULL;
    for (gw_conn *c = t->by_id[gw_hash_id(id) & (t->id_cap - 1)]; c; c = c->id_next)
        if (c->id == id)
            return c;
    return NULL;
}

gw_conn *gw_conns_device(const gw_conns *t, const char *account, uint32_t device_id)
{
    if (!t->by_dev)
        return NULL;
    for (gw_conn *c = t->by_dev[gw_hash_dev(account, device_id) & (t->dev_cap - 1)]; c;
         c = c->dev_next)
        if (c->device_id == device_id && strcmp(c->account, account) == 0)
            return c;
    return NULL;
}

static int gw_conns_grow_id(gw_conns *t)
{
    size_t cap = t->id_cap * 2;
    gw_conn **nb = calloc(cap, sizeof *nb);
    if (!nb)
        return -1;
    for (size_t i = 0; i < t->id_cap; i++) {
        gw_conn *c = t->by_id[i];
        while (c) {
            gw_conn *next = c->id_next;
            size_t b = gw_hash_id(c->id) & (cap - 1);
            c->id_next = nb[b];
            nb[b] = c;
            c = next;
        }
    }
    free(t->by_id);
    t->by_id = nb;
    t->id_cap = cap;
    return 0;
}

static int gw_conns_grow_dev(gw_conns *t)
{
    size_t cap = t->dev_cap * 2;
    gw_conn **nb = calloc(cap, sizeof *nb);
    if (!nb)
        return -1;
    for (size_t i = 0; i < t->dev_cap; i++) {
        gw_conn *c = t->by_dev[i];
        while (c) {
            gw_conn *next = c->dev_next;
            size_t b = gw_hash_dev(c->account, c->device_id) & (cap - 1);
            c->dev_next = nb[b];
            nb[b] = c;
            c = next;
        }
    }
    free(t->by_dev);
    t->by_dev = nb;
    t->dev_cap = cap;
    return 0;
}

int gw_conns_add(gw_conns *t, gw_conn *c)
{
    /* a failed grow only makes chains longer */
    if (t->count + 1 > t->id_cap)
        (void)gw_conns_grow_id(t);
    size_t b = gw_hash_id(c->id) & (t->id_cap - 1);
    c->id_next = t->by_id[b];
    t->by_id[b] = c;
    t->count++;
    return 0;
}

void gw_conns_remove(gw_conns *t, gw_conn *c)
{
    gw_conn **pp = &t->by_id[gw_hash_id(c->id) & (t->id_cap - 1)];
    for (; *pp; pp = &(*pp)->id_next) {
        if (*pp == c) {
            *pp = c->id_next;
            c->id_next = NULL;
            t->count--;
            return;
        }
    }
}

void gw_conns_bind_device(gw_conns *t, gw_conn *c)
{
    if (c->in_dev_table)
        return;
    /* a table that cannot grow still works (chains get longer), so growth failure is no error */
    if (t->dev_count + 1 > t->dev_cap)
        (void)gw_conns_grow_dev(t);
    size_t b = gw_hash_dev(c->account, c->device_id) & (t->dev_cap - 1);
    c->dev_next = t->by_dev[b];
    t->by_dev[b] = c;
    c->in_dev_table = 1;
    t->dev_count++;
}

void gw_conns_unbind_device(gw_conns *t, gw_conn *c)
{
    if (!c->in_dev_table)
        return;
    gw_conn **pp = &t->by_dev[gw_hash_dev(c->account, c->device_id) & (t->dev_cap - 1)];
    for (; *pp; pp = &(*pp)->dev_next) {
        if (*pp == c) {
            *pp = c->dev_next;
            c->dev_next = NULL;
            c->in_dev_table = 0;
            t->dev_count--;
            return;
        }
    }
}

void gw_conns_each(const gw_conns *t, void (*fn)(gw_conn *c, void *ud), void *ud)
{
    gw_conns_visit(t, 0, t->id_cap, fn, ud);
}

size_t gw_conns_visit(const gw_conns *t, size_t first, size_t n, void (*fn)(gw_conn *c, void *ud),
                      void *ud)
{
    size_t visited = 0;
    if (!t->by_id || first >= t->id_cap)
        return 0;
    size_t end = n > t->id_cap - first ? t->id_cap : first + n;
    for (size_t i = first; i < end; i++) {
        for (gw_conn *c = t->by_id[i]; c; c = c->id_next) {
            fn(c, ud);
            visited++;
        }
    }
    return visited;
}

size_t gw_conns_buckets(const gw_conns *t)
{
    return t->id_cap;
}

gw_conn *gw_conn_new(gw *g, struct lws *wsi)
{
    gw_conn *c = calloc(1, sizeof *c);
    gw_conn_auth *a = calloc(1, sizeof *a);
    if (!c || !a) {
        free(c);
        free(a);
        return NULL;
    }
    c->id = ++g->next_conn_id;
    c->wsi = wsi;
    c->state = GW_CONN_OPEN;
    c->auth = a;
    a->conn = c;
    uint64_t now = pclock_mono_us();
    c->last_rx_s = gw_conn_now_s(g);
    gw_send_bucket_init(&c->send_bucket, now);
    gw_outq_init(&c->out);
    gw_peer_from_fd(&c->peer, lws_get_socket_fd(wsi));
    gw_conns_add(&g->conns, c);
    gw_conn_auth_list_append(g, c);
    pmet_add(g->m.connections, 1);
    return c;
}

void gw_conn_auth_list_append(gw *g, gw_conn *c)
{
    gw_conn_auth *a = c->auth;
    if (!a)
        return;
    gw_conn_auth_list_remove(g, c);
    /* appended, so the list stays ordered by the start of the timeout */
    a->opened_us = pclock_mono_us();
    a->next = NULL;
    a->prev = g->auth_tail;
    if (g->auth_tail)
        g->auth_tail->next = a;
    else
        g->auth_head = a;
    g->auth_tail = a;
    a->in_list = 1;
}

void gw_conn_auth_list_remove(gw *g, gw_conn *c)
{
    gw_conn_auth *a = c->auth;
    if (!a || !a->in_list)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else
        g->auth_head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        g->auth_tail = a->prev;
    a->prev = a->next = NULL;
    a->in_list = 0;
}

void gw_conn_auth_free(gw *g, gw_conn *c)
{
    gw_conn_auth_list_remove(g, c);
    free(c->auth);
    c->auth = NULL;
}

void gw_conn_destroy(gw *g, gw_conn *c)
{
    gw_conn_auth_list_remove(g, c);
    if (c->prov)
        gw_provision_conn_gone(g, c);
    gw_send_drop_conn(g, c);
    if (c->in_dev_table) {
        gw_conns_unbind_device(&g->conns, c);
    }
    if (c->state == GW_CONN_AUTHED)
        pmet_add(g->m.authenticated, -1);
    gw_conns_remove(&g->conns, c);
    pmet_add(g->m.connections, -1);
    gw_conn_free_mem(c);
}

int gw_conn_send(gw *g, gw_conn *c, gw_out *o)
{
    if (!o) {
        plog_error("gw_out_oom", "conn=%llu", (unsigned long long)c->id);
        gw_conn_close(g, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error", 0);
        return -1;
    }
    if (c->close_code) {
        gw_out_free(o);
        return -1;
    }
    int now = gw_server_write_now(g, c, o);
    if (now != 0)
        return now > 0 ? 0 : -1;
    if (gw_outq_push(&c->out, o, gw_outbound_max(g)) != 0) {
        plog_info("conn_too_slow", "conn=%llu queued_bytes=%zu frame_bytes=%zu",
                  (unsigned long long)c->id, c->out.bytes, o->len);
        gw_out_free(o);
        pmet_inc(g->m.closes_slow, 1);
        gw_conn_close(g, c, PWIRE_CLOSE_TOO_SLOW, "too slow", 0);
        return -1;
    }
    lws_callback_on_writable(c->wsi);
    return 0;
}

int gw_conn_send_frame(gw *g, gw_conn *c, const Parley__V1__ServerFrame *f)
{
    return gw_conn_send(g, c, gw_frame_pack(f));
}

int gw_conn_send_error(gw *g, gw_conn *c, uint64_t request_id, Parley__V1__ErrorCode code,
                       const char *message, uint32_t retry_after_ms)
{
    gw_metrics_error(&g->m, code);
    return gw_conn_send(g, c, gw_frame_error(request_id, code, message, retry_after_ms));
}

void gw_conn_close(gw *g, gw_conn *c, int code, const char *reason, int flush)
{
    if (c->close_code)
        return;
    c->close_code = (uint16_t)code;
    c->close_flush = flush ? 1 : 0;
    c->close_reason = reason ? reason : "";
    if (!flush)
        gw_outq_clear(&c->out);
    gw_drain_free(c);
    gw_conn_auth_list_remove(g, c);
    if (code == PWIRE_CLOSE_POLICY)
        pmet_inc(g->m.closes_policy, 1);
    plog_debug("conn_closing", "conn=%llu code=%d reason=\"%s\"", (unsigned long long)c->id,
               code, c->close_reason);
    lws_callback_on_writable(c->wsi);
    gw_reaper_add(g, c);
}

uint32_t gw_conn_now_s(const gw *g)
{
    return (uint32_t)(uv_now(g->loop) / 1000);
}
