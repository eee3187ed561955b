#include "gw_drain.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_frame.h"
#include "pgbin.h"
#include "log.h"
#include "wire.h"

#define GW_SQL_DRAIN                                                                           \
    "SELECT id, sender, sender_device, created_ms, urgent, content"                            \
    " FROM parley_gw_drain($1, $2, $3, $4, $5)"

/* The next page is fetched once the queue is down to a quarter of outbound_max, and may bring
 * about half of it: a page plus one oversized row plus replies stays under the limit. */
static size_t gw_drain_low_water(const gw *g)
{
    return gw_outbound_max(g) / 4;
}

static size_t gw_drain_budget(const gw *g)
{
    return gw_outbound_max(g) / 2;
}

/* Held pushes may use at most this much memory before they are dropped (and re-queried). */
static size_t gw_drain_held_max(const gw *g)
{
    return gw_outbound_max(g) / 2;
}

uint64_t gw_drain_start_cursor(const gw_drain_state *d)
{
    /* every row up to it was delivered by a pass (or acked); clients drop the duplicates */
    return d->done_cursor;
}

void gw_drain_free(gw_conn *c)
{
    gw_held *h = c->drain.held;
    while (h) {
        gw_held *next = h->next;
        gw_out_free(h->frame);
        free(h);
        h = next;
    }
    c->drain.held = c->drain.held_tail = NULL;
    c->drain.held_count = c->drain.held_bytes = 0;
}

typedef struct {
    gw *g;
    uint64_t conn_id;
} gw_drain_ctx;

static void gw_drain_page_cb(PGresult *res, const char *err, void *ud);

static void gw_drain_fail(gw *g, gw_conn *c, const char *why)
{
    char q[256];
    plog_error("drain_failed", "conn=%llu error=%s", (unsigned long long)c->id,
               plog_q(q, sizeof q, why));
    c->drain.running = 0;
    c->drain.querying = 0;
    gw_conn_close(g, c, PWIRE_CLOSE_INTERNAL, "queue unavailable", 1);
}

static void gw_drain_next(gw *g, gw_conn *c)
{
    gw_drain_state *d = &c->drain;
    d->waiting = 0;
    if (c->out.bytes > gw_drain_low_water(g)) {
        d->waiting = 1; /* resumed by gw_drain_on_writable */
        return;
    }
    gw_drain_ctx *x = malloc(sizeof *x);
    if (!x) {
        gw_drain_fail(g, c, "out of memory");
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    char acc[24], dev[16], after[24], rows[16], bytes[24];
    snprintf(acc, sizeof acc, "%" PRId64, c->account_id);
    snprintf(dev, sizeof dev, "%" PRIu32, c->device_id);
    snprintf(after, sizeof after, "%" PRIu64, d->cursor);
    snprintf(rows, sizeof rows, "%d", PARLEY_DRAIN_PAGE);
    snprintf(bytes, sizeof bytes, "%zu", gw_drain_budget(g));
    const char *params[] = {acc, dev, after, rows, bytes};
    d->querying = 1;
    if (ppg_query(g->pg, GW_SQL_DRAIN, 5, params, NULL, NULL, 1, gw_drain_page_cb, x) != 0) {
        free(x);
        gw_drain_fail(g, c, "database unavailable");
    }
}

static void gw_drain_finish(gw *g, gw_conn *c)
{
    gw_drain_state *d = &c->drain;
    /* release held pushes the drain did not cover; the rest were just delivered from the
     * queue (ids are committed in order per device, so anything held at or below the cursor
     * was in a page) */
    gw_held *h = d->held;
    d->held = d->held_tail = NULL;
    d->held_count = d->held_bytes = 0;
    d->active = 0;
    d->running = 0;
    d->done_cursor = d->cursor;
    pmet_observe(g->m.drain_size, (double)d->pass_count);
    plog_debug("drain_done", "conn=%llu envelopes=%" PRIu64 " cursor=%" PRIu64,
               (unsigned long long)c->id, d->pass_count, d->cursor);
    while (h) {
        gw_held *next = h->next;
        if (h->id > d->cursor && !c->close_code) {
            if (h->id > d->last_delivered)
                d->last_delivered = h->id;
            pmet_inc(g->m.pushes, 1);
            gw_conn_send(g, c, h->frame);
        } else {
            gw_out_free(h->frame);
        }
        free(h);
        h = next;
    }
    if (d->initial && !c->close_code) {
        d->initial = 0;
        Parley__V1__QueueEmpty qe = PARLEY__V1__QUEUE_EMPTY__INIT;
        Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
        sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_QUEUE_EMPTY;
        sf.queue_empty = &qe;
        gw_conn_send_frame(g, c, &sf);
    }
}

static int gw_drain_row(gw *g, gw_conn *c, PGresult *res, int row)
{
    int64_t id, created_ms;
    int32_t sender_device;
    int urgent;
    const uint8_t *sender, *content;
    size_t sender_len, content_len;
    if (ppgbin_cell_i64(res, row, 0, &id) || ppgbin_cell_bytes(res, row, 1, &sender, &sender_len) ||
        ppgbin_cell_i32(res, row, 2, &sender_device) || ppgbin_cell_i64(res, row, 3, &created_ms) ||
        ppgbin_cell_bool(res, row, 4, &urgent) || ppgbin_cell_bytes(res, row, 5, &content, &content_len) ||
        sender_len > PARLEY_NAME_MAX || id <= 0)
        return -1;
    char sender_name[PARLEY_NAME_MAX + 1];
    memcpy(sender_name, sender, sender_len);
    sender_name[sender_len] = '\0';
    Parley__V1__Envelope env = PARLEY__V1__ENVELOPE__INIT;
    env.id = (uint64_t)id;
    env.sender = sender_name;
    env.sender_device = (uint32_t)sender_device;
    env.timestamp_ms = created_ms > 0 ? (uint64_t)created_ms : 0;
    env.content.data = (uint8_t *)content;
    env.content.len = content_len;
    env.urgent = urgent;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE;
    sf.envelope = &env;
    c->drain.cursor = (uint64_t)id;
    if (c->drain.cursor > c->drain.last_delivered)
        c->drain.last_delivered = c->drain.cursor;
    c->drain.pass_count++;
    return gw_conn_send_frame(g, c, &sf);
}

static void gw_drain_page_cb(PGresult *res, const char *err, void *ud)
{
    gw_drain_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    free(x);
    if (!c || c->close_code)
        return;
    gw_drain_state *d = &c->drain;
    d->querying = 0;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_drain_fail(g, c, ppg_why(res, err));
        return;
    }
    int n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        if (gw_drain_row(g, c, res, i) != 0) {
            if (!c->close_code)
                gw_drain_fail(g, c, "bad envelope row");
            return;
        }
    }
    pmet_inc(g->m.drained, (uint64_t)n);
    if (n > 0) {
        gw_drain_next(g, c);
        return;
    }
    if (d->held_overflow || d->again) {
        /* pushes were dropped while holding: query on from the cursor; a re-drain was asked
         * for: start over like gw_drain_start. Never from last_delivered: live pushes raise
         * it out of id order, past envelopes whose pushes were lost. */
        d->held_overflow = 0;
        if (d->again)
            d->cursor = gw_drain_start_cursor(d);
        d->again = 0;
        gw_drain_next(g, c);
        return;
    }
    gw_drain_finish(g, c);
}

void gw_drain_start(gw *g, gw_conn *c, int initial)
{
    if (c->close_code || c->state != GW_CONN_AUTHED)
        return;
    gw_drain_state *d = &c->drain;
    if (initial)
        d->initial = 1;
    if (d->running) {
        d->again = 1;
        return;
    }
    d->running = 1;
    d->active = 1;
    d->again = 0;
    d->cursor = gw_drain_start_cursor(d);
    d->pass_count = 0;
    gw_drain_next(g, c);
}

void gw_drain_on_writable(gw *g, gw_conn *c)
{
    gw_drain_state *d = &c->drain;
    if (d->running && d->waiting && !d->querying && !c->close_code &&
        c->out.bytes <= gw_drain_low_water(g))
        gw_drain_next(g, c);
}

void gw_drain_push(gw *g, gw_conn *c, uint64_t id, gw_out *frame)
{
    gw_drain_state *d = &c->drain;
    if (!frame || c->close_code || c->state != GW_CONN_AUTHED) {
        gw_out_free(frame);
        return;
    }
    if (!d->active) {
        if (id > d->last_delivered)
            d->last_delivered = id;
        pmet_inc(g->m.pushes, 1);
        gw_conn_send(g, c, frame);
        return;
    }
    if (d->held_overflow) {
        gw_out_free(frame); /* the extra pass at the end of the drain finds it */
        return;
    }
    if (d->held_count >= PARLEY_DRAIN_PAGE || d->held_bytes + frame->len > gw_drain_held_max(g)) {
        gw_drain_free(c);
        d->held_overflow = 1;
        gw_out_free(frame);
        return;
    }
    gw_held *h = malloc(sizeof *h);
    if (!h) {
        d->held_overflow = 1;
        gw_out_free(frame);
        return;
    }
    h->next = NULL;
    h->id = id;
    h->frame = frame;
    if (d->held_tail)
        d->held_tail->next = h;
    else
        d->held = h;
    d->held_tail = h;
    d->held_count++;
    d->held_bytes += frame->len;
    pmet_inc(g->m.pushes_held, 1);
}
