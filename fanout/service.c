/* service.c: the fanout process's parts (metrics, two Redis connections, the PostgreSQL pool,
 * the admin listener, timers) and their lifecycle: start, readiness, graceful stop. */
#include "fanout.h"

#include <stdlib.h>

#include "admin.h"
#include "log.h"
#include "pg.h"
#include "redis.h"

#define PRUNE_FIRST_MS 10000
#define PRUNE_EVERY_MS 60000

static void claim_tick(uv_timer_t *t)
{
    pfo_consume_claim(t->data);
    pfo_consume_backlog(t->data);
}

/* the slow housekeeping: old idempotency records, consumers of exited fanouts */
static void prune_tick(uv_timer_t *t)
{
    pfo_store_prune(t->data);
    pfo_consume_forget(t->data);
}

int pfo_start(pfo *f, uv_loop_t *loop, const pfo_config *cfg, const char *consumer)
{
    f->loop = loop;
    f->cfg = cfg;
    f->consumer = consumer;
    f->nshards = (unsigned)cfg->backend.ingress_shards;
    /* first, so that pfo_stop can always close them */
    uv_timer_init(loop, &f->retry_timer);
    uv_timer_init(loop, &f->claim_timer);
    uv_timer_init(loop, &f->prune_timer);
    f->retry_timer.data = f->claim_timer.data = f->prune_timer.data = f;

    f->registry = pmetrics_new();
    if (!f->registry || pfo_consume_init(f) != 0) {
        plog_error("start_failed", "reason=out_of_memory");
        return -1;
    }
    pfo_metrics_init(&f->met, f->registry);
    f->rd_read = predis_new(loop, cfg->backend.redis_host, (int)cfg->backend.redis_port, pfo_consume_on_up, f);
    f->rd_cmd = predis_new(loop, cfg->backend.redis_host, (int)cfg->backend.redis_port, NULL, NULL);
    f->pg = ppg_new(loop, cfg->backend.pg, (int)cfg->backend.pg_pool);
    if (!f->rd_read || !f->rd_cmd || !f->pg) {
        plog_error("start_failed", "reason=out_of_memory");
        return -1;
    }
    if (cfg->admin.admin_port > 0) {
        f->admin = padmin_start(loop, cfg->admin.admin_host, (int)cfg->admin.admin_port, f->registry,
                                pfo_ready, f);
        if (!f->admin)
            return -1; /* padmin_start logged why */
    }
    uint64_t claim_every = (uint64_t)cfg->claim_idle_ms / 2;
    uv_timer_start(&f->claim_timer, claim_tick, claim_every, claim_every);
    uv_timer_start(&f->prune_timer, prune_tick, PRUNE_FIRST_MS, PRUNE_EVERY_MS);
    plog_info("started", "fanout_id=%s shards=%u queue_max=%lld claim_idle_ms=%lld",
              consumer, f->nshards, cfg->queue_max, cfg->claim_idle_ms);
    /* reading starts when the reading connection is up (pfo_consume_on_up) */
    return 0;
}

int pfo_ready(void *ud)
{
    const pfo *f = ud;
    return !f->stopping && predis_up(f->rd_read) && predis_up(f->rd_cmd) && ppg_up(f->pg) > 0;
}

static void close_all(uv_timer_t *t)
{
    pfo *f = t->data;
    if (f->admin)
        padmin_stop(f->admin);
    f->admin = NULL;
    predis_close(f->rd_read);
    predis_close(f->rd_cmd);
    ppg_close(f->pg);
    uv_close((uv_handle_t *)&f->retry_timer, NULL);
    uv_close((uv_handle_t *)&f->claim_timer, NULL);
    uv_close((uv_handle_t *)&f->prune_timer, NULL);
    plog_info("stopped", "%s", "");
    if (f->on_stopped)
        f->on_stopped(f);
}

void pfo_stop(pfo *f)
{
    if (f->stopping)
        return;
    f->stopping = 1;
    plog_info("stopping", "batches_in_flight=%u read_in_flight=%d", f->busy, f->reading);
    uv_timer_stop(&f->retry_timer);
    uv_timer_stop(&f->claim_timer);
    uv_timer_stop(&f->prune_timer);
    pfo_maybe_stopped(f);
}

void pfo_maybe_stopped(pfo *f)
{
    if (!f->stopping || f->stopped || f->reading || f->busy)
        return;
    f->stopped = 1;
    /* from the next loop turn: we may be inside a Redis or PostgreSQL callback here */
    uv_timer_start(&f->retry_timer, close_all, 0, 0);
}

void pfo_free(pfo *f)
{
    pfo_consume_free(f);
    pmetrics_free(f->registry);
    f->registry = NULL;
}
