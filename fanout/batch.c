/* batch.c: one batch's way through the fanout: store (one PostgreSQL call), route (replies,
 * pushes, XACK + XDEL), metrics, then the next read. A batch holds entries of one shard and
 * occupies that shard's lane until it is acked or dropped; a stop waits for every lane. A
 * failure at either step drops the batch from memory and marks its shard so that the next read
 * there takes this consumer's pending entries: Redis keeps the entries, PostgreSQL answers the
 * already-stored sends as duplicates. */
#include "fanout.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define RETRY_STORE_MS 1000
#define RETRY_ROUTE_MS 500

pfo_batch *pfo_batch_new(pfo *f, unsigned shard, size_t cap)
{
    pfo_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->f = f;
    b->shard = shard;
    b->e = calloc(cap ? cap : 1, sizeof *b->e);
    b->sends = calloc(cap ? cap : 1, sizeof *b->sends);
    if (!b->e || !b->sends) {
        free(b->e);
        free(b->sends);
        free(b);
        return NULL;
    }
    return b;
}

pfo_entry *pfo_batch_add(pfo_batch *b)
{
    return &b->e[b->n++];
}

void pfo_batch_free(pfo_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        if (b->e[i].msg)
            parley__v1__internal_send__free_unpacked(b->e[i].msg, NULL);
        pfo_result_clear(&b->e[i].res);
    }
    pfo_store_params_free(&b->params);
    free(b->e);
    free(b->sends);
    free(b->pushes);
    free(b);
}

static void end(pfo *f, pfo_batch *b)
{
    f->lane[b->shard] = NULL;
    f->busy--;
    f->held -= b->n;
    pfo_batch_free(b);
    pfo_consume_next(f);
    pfo_maybe_stopped(f);
}

static void count(pfo *f, const pfo_batch *b)
{
    pmet_inc(f->met.batches, 1);
    pmet_inc(f->met.entries, b->n);
    for (size_t i = 0; i < b->n; i++) {
        const pfo_entry *e = &b->e[i];
        if (!e->msg)
            continue;
        switch (e->res.status) {
        case PFO_ACCEPTED:
            pmet_inc(f->met.accepted, 1);
            pmet_inc(f->met.envelopes, e->res.n_stored);
            break;
        case PFO_DUPLICATE:
            pmet_inc(f->met.duplicates, 1);
            break;
        default:
            if (e->res.status < PFO_STATUS_COUNT && f->met.rejected[e->res.status])
                pmet_inc(f->met.rejected[e->res.status], 1);
            break;
        }
    }
    pmet_observe(f->met.batch_seconds, (double)(pclock_mono_us() - b->t_start_us) / 1e6);
}

static void routed(pfo_batch *b, int failed)
{
    pfo *f = b->f;
    if (failed) {
        pmet_inc(f->met.route_failures, 1);
        f->route_down = 1; /* route.c logged the first failure of this outage */
        f->pending[b->shard] = 1;
        pfo_consume_retry(f, RETRY_ROUTE_MS);
    } else {
        if (f->route_down) {
            f->route_down = 0;
            plog_info("route_recovered", "entries=%zu", b->n);
        }
        count(f, b);
    }
    end(f, b);
}

static void stored(pfo_batch *b, int failed)
{
    pfo *f = b->f;
    if (failed) {
        pmet_inc(f->met.store_failures, 1);
        f->pg_down = 1; /* store.c logged the first failure of this outage */
        f->pending[b->shard] = 1;
        pfo_consume_retry(f, RETRY_STORE_MS);
        end(f, b);
        return;
    }
    if (f->pg_down && b->nsends > 0) {
        f->pg_down = 0;
        plog_info("store_recovered", "entries=%zu", b->n);
    }
    pfo_route_run(f, b, routed);
}

void pfo_batch_start(pfo *f, pfo_batch *b)
{
    f->lane[b->shard] = b;
    f->busy++;
    f->held += b->n;
    b->t_start_us = pclock_mono_us();
    pmet_observe(f->met.batch_size, (double)b->n);
    b->nsends = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->e[i].msg && b->e[i].to_store)
            b->sends[b->nsends++] = &b->e[i];
    pfo_store_run(f, b, stored);
}
