#include "gw_ack.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"

#define GW_SQL_ACK                                                                             \
    "SELECT req, deleted FROM parley_gw_ack($1::bigint[], $2::integer[], $3::bigint[],"        \
    " $4::integer[])"

/* Batching knobs (not limits): acks wait at most GW_ACK_FLUSH_MS for company; a batch of
 * GW_ACK_FLUSH_IDS ids goes at once; with PARLEY_ACK_STATEMENTS_MAX statements unanswered (the
 * database is slow) the batch grows until one answers, bounded by the per-connection limit. */
#define GW_ACK_FLUSH_MS 5
#define GW_ACK_FLUSH_IDS (4 * PARLEY_MAX_ACK_IDS)
#define GW_ACK_RETRY_AFTER_MS 1000

uint32_t gw_ack_units(size_t nids)
{
    return nids ? (uint32_t)nids : 1;
}

void gw_ack_batch_init(gw_ack_batch *b)
{
    memset(b, 0, sizeof *b);
}

void gw_ack_batch_free(gw_ack_batch *b)
{
    free(b->account_ids);
    free(b->device_ids);
    free(b->ids);
    free(b->req);
    free(b->reqs);
    gw_ack_batch_init(b);
}

static int gw_ack_reserve(gw_ack_batch *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + more)
        cap *= 2;
    int64_t *a = realloc(b->account_ids, cap * sizeof *a);
    if (!a)
        return -1;
    b->account_ids = a;
    uint32_t *d = realloc(b->device_ids, cap * sizeof *d);
    if (!d)
        return -1;
    b->device_ids = d;
    uint64_t *i = realloc(b->ids, cap * sizeof *i);
    if (!i)
        return -1;
    b->ids = i;
    uint32_t *r = realloc(b->req, cap * sizeof *r);
    if (!r)
        return -1;
    b->req = r;
    b->cap = cap;
    return 0;
}

int gw_ack_batch_add(gw_ack_batch *b, uint64_t conn_id, uint64_t request_id, int64_t account_id,
                     uint32_t device_id, const uint64_t *ids, size_t nids)
{
    if (b->nreqs == b->reqs_cap) {
        size_t cap = b->reqs_cap ? b->reqs_cap * 2 : 16;
        gw_ack_req *r = realloc(b->reqs, cap * sizeof *r);
        if (!r)
            return -1;
        b->reqs = r;
        b->reqs_cap = cap;
    }
    if (gw_ack_reserve(b, nids) != 0)
        return -1;
    uint32_t req = (uint32_t)b->nreqs;
    b->reqs[b->nreqs++] = (gw_ack_req){conn_id, request_id, gw_ack_units(nids)};
    for (size_t k = 0; k < nids; k++) {
        /* ids are bigserial: 0 and values above INT64_MAX name no row (and would not parse) */
        if (ids[k] == 0 || ids[k] > (uint64_t)INT64_MAX)
            continue;
        b->account_ids[b->n] = account_id;
        b->device_ids[b->n] = device_id;
        b->ids[b->n] = ids[k];
        b->req[b->n] = req;
        b->n++;
    }
    return 0;
}

/* "{v1,v2,...}" of one column (malloc'd). */
static char *gw_ack_array(const gw_ack_batch *b, int col)
{
    size_t cap = 3 + b->n * 21;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < b->n; i++) {
        int w;
        switch (col) {
        case 0:
            w = snprintf(s + o, cap - o, "%s%" PRId64, i ? "," : "", b->account_ids[i]);
            break;
        case 1:
            w = snprintf(s + o, cap - o, "%s%" PRIu32, i ? "," : "", b->device_ids[i]);
            break;
        case 2:
            w = snprintf(s + o, cap - o, "%s%" PRIu64, i ? "," : "", b->ids[i]);
            break;
        default:
            w = snprintf(s + o, cap - o, "%s%" PRIu32, i ? "," : "", b->req[i]);
            break;
        }
        if (w < 0 || (size_t)w >= cap - o) {
            free(s);
            return NULL;
        }
        o += (size_t)w;
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

int gw_ack_batch_arrays(const gw_ack_batch *b, char **accounts, char **devices, char **ids,
                        char **reqs)
{
    *accounts = gw_ack_array(b, 0);
    *devices = gw_ack_array(b, 1);
    *ids = gw_ack_array(b, 2);
    *reqs = gw_ack_array(b, 3);
    if (!*accounts || !*devices || !*ids || !*reqs) {
        free(*accounts);
        free(*devices);
        free(*ids);
        free(*reqs);
        *accounts = *devices = *ids = *reqs = NULL;
        return -1;
    }
    return 0;
}

/* ---- flushing ----------------------------------------------------------------------------- */

typedef struct {
    gw *g;
    gw_ack_batch b;
} gw_ack_flight;

static void gw_ack_answer(gw *g, gw_ack_batch *b, const uint32_t *counts, int ok)
{
    for (size_t r = 0; r < b->nreqs; r++) {
        gw_conn *c = gw_conns_get(&g->conns, b->reqs[r].conn_id);
        if (!c)
            continue;
        c->ack_ids -= b->reqs[r].units;
        if (b->reqs[r].request_id == 0)
            continue;
        if (!ok) {
            gw_conn_send_error(g, c, b->reqs[r].request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                               "could not delete acknowledged envelopes", 0);
            continue;
        }
        Parley__V1__AckOk ack = PARLEY__V1__ACK_OK__INIT;
        ack.count = counts ? counts[r] : 0;
        Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
        sf.request_id = b->reqs[r].request_id;
        sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_ACK_OK;
        sf.ack_ok = &ack;
        gw_conn_send_frame(g, c, &sf);
    }
}

static void gw_ack_cb(PGresult *res, const char *err, void *ud)
{
    gw_ack_flight *f = ud;
    gw *g = f->g;
    g->acks.inflight--;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pmet_inc(g->m.ack_failures, 1);
        const char *m = err ? err : (res ? PQresultErrorMessage(res) : "unknown");
        char q[256];
        plog_error("ack_flush_failed", "ids=%zu error=%s", f->b.n, plog_q(q, sizeof q, m));
        gw_ack_answer(g, &f->b, NULL, 0);
    } else {
        uint32_t *counts = calloc(f->b.nreqs ? f->b.nreqs : 1, sizeof *counts);
        uint64_t total = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            long req = strtol(PQgetvalue(res, i, 0), NULL, 10);
            unsigned long long n = strtoull(PQgetvalue(res, i, 1), NULL, 10);
            if (counts && req >= 0 && (size_t)req < f->b.nreqs)
                counts[req] = (uint32_t)n;
            total += n;
        }
        pmet_inc(g->m.acks_deleted, total);
        gw_ack_answer(g, &f->b, counts, 1);
        free(counts);
    }
    gw_ack_batch_free(&f->b);
    free(f);
    if (g->acks.deferred)
        gw_ack_flush(g);
}

void gw_ack_flush(gw *g)
{
    gw_acks *a = &g->acks;
    if (a->timer_armed) {
        uv_timer_stop(&a->timer);
        a->timer_armed = 0;
    }
    a->deferred = 0;
    if (a->cur.nreqs == 0)
        return;
    if (a->inflight >= PARLEY_ACK_STATEMENTS_MAX) {
        a->deferred = 1; /* gw_ack_cb flushes when a statement answers */
        return;
    }
    gw_ack_flight *f = malloc(sizeof *f);
    if (!f) {
        gw_ack_answer(g, &a->cur, NULL, 0);
        gw_ack_batch_free(&a->cur);
        return;
    }
    f->g = g;
    f->b = a->cur;
    gw_ack_batch_init(&a->cur);
    char *acc, *dev, *ids, *reqs;
    if (gw_ack_batch_arrays(&f->b, &acc, &dev, &ids, &reqs) != 0) {
        gw_ack_answer(g, &f->b, NULL, 0);
        gw_ack_batch_free(&f->b);
        free(f);
        return;
    }
    const char *params[] = {acc, dev, ids, reqs};
    pmet_inc(g->m.ack_flushes, 1);
    int rc = ppg_query(g->pg, GW_SQL_ACK, 4, params, NULL, NULL, 0, gw_ack_cb, f);
    free(acc);
    free(dev);
    free(ids);
    free(reqs);
    if (rc != 0) {
        pmet_inc(g->m.ack_failures, 1);
        plog_warn("ack_flush_unavailable", "ids=%zu", f->b.n);
        gw_ack_answer(g, &f->b, NULL, 0);
        gw_ack_batch_free(&f->b);
        free(f);
        return;
    }
    a->inflight++;
}

static void gw_ack_timer_cb(uv_timer_t *t)
{
    gw *g = t->data;
    g->acks.timer_armed = 0;
    gw_ack_flush(g);
}

int gw_ack_init(gw *g)
{
    gw_ack_batch_init(&g->acks.cur);
    if (uv_timer_init(g->loop, &g->acks.timer) != 0)
        return -1;
    g->acks.timer.data = g;
    g->acks.timer_init = 1;
    return 0;
}

void gw_ack_close(gw *g)
{
    if (g->acks.timer_init && !uv_is_closing((uv_handle_t *)&g->acks.timer))
        uv_close((uv_handle_t *)&g->acks.timer, NULL);
    g->acks.timer_armed = 0;
    g->acks.deferred = 0;
    gw_ack_batch_free(&g->acks.cur);
}

void gw_ack_handle(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    const Parley__V1__Ack *a = f->ack;
    uint64_t rid = f->request_id;
    if (a->n_envelope_ids > PARLEY_MAX_ACK_IDS) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INVALID_ARGUMENT,
                           "too many envelope ids in one ack", 0);
        return;
    }
    if (a->n_envelope_ids == 0 && rid == 0)
        return;
    uint32_t units = gw_ack_units(a->n_envelope_ids);
    if (c->ack_ids + units > PARLEY_PENDING_ACK_IDS_MAX) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                           "too many unconfirmed acks", GW_ACK_RETRY_AFTER_MS);
        return;
    }
    if (gw_ack_batch_add(&g->acks.cur, c->id, rid, c->account_id, c->device_id, a->envelope_ids,
                         a->n_envelope_ids) != 0) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    c->ack_ids += units;
    pmet_inc(g->m.acks, a->n_envelope_ids);
    if (g->acks.cur.n >= GW_ACK_FLUSH_IDS) {
        gw_ack_flush(g);
    } else if (!g->acks.timer_armed && g->acks.timer_init) {
        g->acks.timer_armed = 1;
        uv_timer_start(&g->acks.timer, gw_ack_timer_cb, GW_ACK_FLUSH_MS, 0);
    }
}
