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

/* A live push that arrived while the queue drained. */
typedef struct gw_held {
    struct gw_held *next;
    uint64_t id;
    gw_out *frame;
} gw_held;

/* A drain in progress (c->drain.pass): exists from auth (pushes are held from then on) until
 * the drain ends. */
typedef struct gw_drain_pass {
    uint8_t running;  /* a drain pass runs */
    uint8_t querying; /* a page query is in flight */
    uint8_t waiting;  /* the next page waits for outbound space */
    uint8_t initial;  /* the first drain after auth: ends with QueueEmpty */
    uint8_t again;    /* run one more pass when this one reaches the end */
    uint8_t held_overflow; /* held pushes were dropped: the pass must query once more */
    uint64_t cursor;     /* highest id this pass delivered (or started after) */
    uint64_t pass_count; /* envelopes delivered by the current pass */
    gw_held *held, *held_tail;
    size_t held_count, held_bytes;
} gw_drain_pass;

uint64_t gw_drain_start_cursor(const gw_drain_state *d)
{
    /* every row up to it was delivered by a pass (or acked); clients drop the duplicates */
    return d->done_cursor;
}

static void gw_drain_drop_held(gw_drain_pass *p)
{
    gw_held *h = p->held;
    while (h) {
        gw_held *next = h->next;
        gw_out_free(h->frame);
        free(h);
        h = next;
    }
    p->held = p->held_tail = NULL;
    p->held_count = p->held_bytes = 0;
}

void gw_drain_free(gw_conn *c)
{
    gw_drain_pass *p = c->drain.pass;
    if (!p)
        return;
    gw_drain_drop_held(p);
    free(p);
    c->drain.pass = NULL;
}

int gw_drain_hold(gw_conn *c)
{
    if (!c->drain.pass && !(c->drain.pass = calloc(1, sizeof *c->drain.pass)))
        return -1;
    return 0;
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
    gw_conn_close(g, c, PWIRE_CLOSE_INTERNAL, "queue unavailable", 1);
}

static void gw_drain_next(gw *g, gw_conn *c)
{
    gw_drain_pass *d = c->drain.pass;
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
    gw_drain_pass *d = c->drain.pass;
    /* release held pushes the drain did not cover; the rest were just delivered from the
     * queue (ids are committed in order per device, so anything held at or below the cursor
     * was in a page). The pass goes first: a send below may close the connection. */
    gw_held *h = d->held;
    uint64_t cursor = d->cursor, count = d->pass_count;
    int initial = d->initial;
    c->drain.pass = NULL;
    free(d);
    c->drain.done_cursor = cursor;
    pmet_observe(g->m.drain_size, (double)count);
    plog_debug("drain_done", "conn=%llu envelopes=%" PRIu64 " cursor=%" PRIu64,
               (unsigned long long)c->id, count, cursor);
    while (h) {
        gw_held *next = h->next;
        if (h->id > cursor && !c->close_code) {
            if (h->id > c->drain.last_delivered)
                c->drain.last_delivered = h->id;
            pmet_inc(g->m.pushes, 1);
            gw_conn_send(g, c, h->frame);
        } else {
            gw_out_free(h->frame);
        }
        free(h);
        h = next;
    }
    if (initial && !c->close_code) {
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
    gw_drain_pass *d = c->drain.pass;
    d->cursor = (uint64_t)id;
    if (d->cursor > c->drain.last_delivered)
        c->drain.last_delivered = d->cursor;
    d->pass_count++;
    /* the last use of the pass here: a failed send closes c and frees it */
    return gw_conn_send_frame(g, c, &sf);
}

static void gw_drain_page_cb(PGresult *res, const char *err, void *ud)
{
    gw_drain_ctx *x = ud;
    gw *g = x->g;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    free(x);
    if (!c || c->close_code || !c->drain.pass)
        return;
    gw_drain_pass *d = c->drain.pass;
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
            d->cursor = gw_drain_start_cursor(&c->drain);
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
    if (gw_drain_hold(c) != 0) {
        gw_drain_fail(g, c, "out of memory");
        return;
    }
    gw_drain_pass *d = c->drain.pass;
    if (initial)
        d->initial = 1;
    if (d->running) {
        d->again = 1;
        return;
    }
    d->running = 1;
    d->again = 0;
    d->cursor = gw_drain_start_cursor(&c->drain);
    d->pass_count = 0;
    gw_drain_next(g, c);
}

void gw_drain_on_writable(gw *g, gw_conn *c)
{
    gw_drain_pass *d = c->drain.pass;
    if (d && d->running && d->waiting && !d->querying && !c->close_code &&
        c->out.bytes <= gw_drain_low_water(g))
        gw_drain_next(g, c);
}

void gw_drain_push(gw *g, gw_conn *c, uint64_t id, gw_out *frame)
{
    if (!frame || c->close_code || c->state != GW_CONN_AUTHED) {
        gw_out_free(frame);
        return;
    }
    gw_drain_pass *d = c->drain.pass;
    if (!d) {
        if (id > c->drain.last_delivered)
            c->drain.last_delivered = id;
        pmet_inc(g->m.pushes, 1);
        gw_conn_send(g, c, frame);
        return;
    }
    if (d->held_overflow) {
        gw_out_free(frame); /* the extra pass at the end of the drain finds it */
        return;
    }
    if (d->held_count >= PARLEY_DRAIN_PAGE || d->held_bytes + frame->len > gw_drain_held_max(g)) {
        gw_drain_drop_held(d);
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
