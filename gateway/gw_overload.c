#include "gw_overload.h"

#include <hiredis/hiredis.h>
#include <sodium.h>
#include <string.h>

#include "gw.h"
#include "keys.h"
#include "log.h"

/* an episode ends (and logs) when for this long no send was shed and none would have been: short
 * enough to say when the cluster caught up, long enough that load just at capacity does not
 * log twice a second */
#define GW_OVERLOAD_QUIET_MS 2000
/* weight of one tick's count in the smoothed rates: about four seconds of memory at 100 ms
 * ticks. Fanout answers a whole batch at once, a batch every second or so under load: a
 * shorter memory swings with every batch and lets a wave of sends in after each */
#define GW_OVERLOAD_SMOOTH_DIV 40.0

/* sends to one shard a gateway may always have waiting, whatever its answer rate: a gateway
 * that sends little (or has just started) has no rate to judge by, and must not be held to one
 * send at a time while busier gateways keep the shard's queue filled */
#define GW_OVERLOAD_WINDOW_MIN 16

_Static_assert(PARLEY_GW_SHED_RETRY_BASE_MS > 0 &&
                   PARLEY_GW_SHED_RETRY_BASE_MS <= PARLEY_GW_SHED_RETRY_MAX_MS,
               "shed retry bounds");

/* ---- pure parts --------------------------------------------------------------------------- */

gw_overload_verdict gw_overload_judge(const gw_overload_signals *s)
{
    if (s->backlog >= s->max)
        return GW_OVERLOAD_BACKLOG;
    if (s->pending >= s->max)
        return GW_OVERLOAD_PENDING;
    /* less than the shard's share of a batch is no queue to wait for: it goes with the next
     * read */
    uint64_t batch = s->max < PARLEY_FANOUT_BATCH_MAX ? s->max : PARLEY_FANOUT_BATCH_MAX;
    uint64_t share = s->shards > 1 ? batch / s->shards : batch;
    /* pending / rate > wait, without dividing by a rate of zero */
    if (s->shard_backlog >= (share ? share : 1) && s->shard_pending >= GW_OVERLOAD_WINDOW_MIN &&
        s->shard_answers_per_s >= 0 &&
        (double)s->shard_pending * 1000.0 > s->shard_answers_per_s * PARLEY_GW_SHED_WAIT_MS)
        return GW_OVERLOAD_WAIT;
    return GW_OVERLOAD_ADMIT;
}

uint32_t gw_overload_retry_ms(double offered, double admitted)
{
    const double top = (double)PARLEY_GW_SHED_RETRY_MAX_MS / PARLEY_GW_SHED_RETRY_BASE_MS;
    if (!(admitted > 0) || offered / admitted >= top)
        return PARLEY_GW_SHED_RETRY_MAX_MS;
    double ratio = offered / admitted;
    if (!(ratio > 1))
        return PARLEY_GW_SHED_RETRY_BASE_MS;
    return (uint32_t)(PARLEY_GW_SHED_RETRY_BASE_MS * ratio);
}

uint32_t gw_overload_jitter(uint32_t r, uint32_t u)
{
    return r - u % (r / 2 + 1);
}

double gw_overload_smooth(double avg, uint64_t tick_count)
{
    return avg + ((double)tick_count - avg) / GW_OVERLOAD_SMOOTH_DIV;
}

double gw_overload_answer_step(double *avg, double *spell, uint64_t tick_answers, int busy)
{
    if (!busy && tick_answers == 0) {
        *avg = *spell = 0;
        return -1;
    }
    *avg = gw_overload_smooth(*avg, tick_answers);
    *spell += (1.0 - *spell) / GW_OVERLOAD_SMOOTH_DIV;
    return *avg > 0 ? *avg / *spell : -1;
}

/* ---- the backlog sample ------------------------------------------------------------------- */

static unsigned gw_overload_shards(const gw *g)
{
    unsigned n = (unsigned)g->cfg->backend.ingress_shards;
    return n < PARLEY_INGRESS_SHARDS_MAX ? n : PARLEY_INGRESS_SHARDS_MAX;
}

/* A shard's backlog estimate: its sample plus own sends since. */
static uint64_t gw_overload_shard_estimate(const gw_overload *o, unsigned shard)
{
    if (!o->known)
        return 0;
    return o->backlog[shard] + (o->xadds[shard] - o->xadds_at_sample[shard]);
}

static void gw_overload_poll_done(gw *g)
{
    gw_overload *o = &g->overload;
    o->polling = 0;
    o->failing = o->poll_failed;
    if (o->poll_failed)
        return; /* keep the previous sample; a failing Redis fails the XADDs too */
    uint64_t sum = 0;
    for (unsigned i = 0; i < gw_overload_shards(g); i++) {
        o->backlog[i] = o->poll_len[i];
        o->xadds_at_sample[i] = o->poll_xadds[i];
        sum += o->poll_len[i];
    }
    o->known = 1;
    pmet_set(g->m.ingress_backlog, (double)sum);
}

static void gw_overload_xlen_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_overload_xlen *x = privdata;
    gw *g = x->g;
    gw_overload *o = &g->overload;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        o->poll_len[x->shard] = (uint64_t)r->integer;
    } else {
        /* NULL: disconnected (logged as redis_down); anything else once per failing spell */
        if (r && !o->poll_failed && !o->failing) {
            char q[256];
            plog_warn("ingress_backlog_unknown", "error=%s",
                      plog_q(q, sizeof q, r->type == REDIS_REPLY_ERROR && r->str ? r->str
                                                                           : "unexpected reply"));
        }
        o->poll_failed = 1;
    }
    if (--o->poll_left == 0)
        gw_overload_poll_done(g);
}

static void gw_overload_poll(gw *g)
{
    gw_overload *o = &g->overload;
    if (o->polling || !predis_up(g->redis))
        return;
    o->polling = 1;
    o->poll_left = 1; /* held until every command is out: an answer cannot finish the poll early */
    o->poll_failed = 0;
    for (unsigned i = 0; i < gw_overload_shards(g); i++) {
        char key[PKEYS_MAX];
        if (pkeys_ingress(key, i) < 0) {
            o->poll_failed = 1;
            break;
        }
        o->poll_xadds[i] = o->xadds[i];
        o->poll_ctx[i] = (gw_overload_xlen){g, i};
        const char *argv[] = {"XLEN", key};
        const size_t argvlen[] = {4, strlen(key)};
        if (predis_cmd(g->redis, gw_overload_xlen_cb, &o->poll_ctx[i], 2, argv, argvlen) != 0) {
            o->poll_failed = 1;
            break;
        }
        o->poll_left++;
    }
    if (--o->poll_left == 0)
        gw_overload_poll_done(g);
}

/* ---- admission ---------------------------------------------------------------------------- */

static const char *gw_overload_reason(gw_overload_verdict v)
{
    switch (v) {
    case GW_OVERLOAD_BACKLOG:
        return "ingress_backlog";
    case GW_OVERLOAD_WAIT:
        return "answer_wait";
    default:
        return "gateway_pending";
    }
}

static pmet_counter *gw_overload_counter(gw *g, gw_overload_verdict v)
{
    switch (v) {
    case GW_OVERLOAD_BACKLOG:
        return g->m.shed_backlog;
    case GW_OVERLOAD_WAIT:
        return g->m.shed_wait;
    default:
        return g->m.shed_pending;
    }
}

static gw_overload_signals gw_overload_now(const gw *g, unsigned shard)
{
    const gw_overload *o = &g->overload;
    const gw_overload_rates *rt = &o->rates[shard];
    gw_overload_signals s = {
        .pending = g->pending.count,
        .max = (uint64_t)g->cfg->ingress_backlog_max,
        .shards = gw_overload_shards(g),
        .shard_backlog = gw_overload_shard_estimate(o, shard),
        .shard_pending = g->pending.shard_count[shard],
        .shard_answers_per_s = rt->spell > 0 && rt->answer_rate >= 0
                                   ? rt->answer_rate * (1000.0 / GW_OVERLOAD_TICK_MS)
                                   : -1, /* before the first tick too */
    };
    for (unsigned i = 0; i < s.shards; i++)
        s.backlog += gw_overload_shard_estimate(o, i);
    return s;
}

gw_overload_verdict gw_overload_admit(gw *g, unsigned shard, uint64_t now_us,
                                      uint32_t *retry_after_ms)
{
    gw_overload *o = &g->overload;
    if (shard >= gw_overload_shards(g))
        return GW_OVERLOAD_ADMIT; /* cannot happen: pkeys_shard is below ingress_shards */
    gw_overload_rates *rt = &o->rates[shard];
    rt->tick_offered++;
    gw_overload_signals s = gw_overload_now(g, shard);
    gw_overload_verdict v = gw_overload_judge(&s);
    if (v == GW_OVERLOAD_ADMIT)
        return v;

    uint32_t r = gw_overload_retry_ms(rt->offered, rt->admitted);
    *retry_after_ms = gw_overload_jitter(r, randombytes_random());
    pmet_inc(gw_overload_counter(g, v), 1);
    if (!o->shedding) {
        o->shedding = 1;
        o->since_us = now_us;
        o->shed = 0;
        o->retry_max_ms = 0;
        pmet_set(g->m.shedding, 1);
        plog_warn("overload_shedding_start",
                  "reason=%s shard=%u ingress_backlog=%llu shard_backlog=%llu "
                  "ingress_backlog_max=%llu sends_pending=%llu shard_pending=%llu "
                  "shard_answers_per_s=%.0f retry_after_ms=%u",
                  gw_overload_reason(v), shard, (unsigned long long)s.backlog,
                  (unsigned long long)s.shard_backlog, (unsigned long long)s.max,
                  (unsigned long long)s.pending, (unsigned long long)s.shard_pending,
                  s.shard_answers_per_s, (unsigned)*retry_after_ms);
    }
    o->shed++;
    o->last_shed_us = now_us;
    if (*retry_after_ms > o->retry_max_ms)
        o->retry_max_ms = *retry_after_ms;
    return v;
}

void gw_overload_forwarded(gw *g, unsigned shard)
{
    if (shard >= PARLEY_INGRESS_SHARDS_MAX)
        return;
    g->overload.xadds[shard]++;
    g->overload.rates[shard].tick_admitted++;
}

void gw_overload_answered(gw *g, unsigned shard)
{
    if (shard < PARLEY_INGRESS_SHARDS_MAX)
        g->overload.rates[shard].tick_answered++;
}

void gw_overload_tick(gw *g, uint64_t now_us)
{
    gw_overload *o = &g->overload;
    unsigned n = gw_overload_shards(g);
    gw_overload_poll(g);
    int over = 0;
    for (unsigned i = 0; i < n; i++) {
        gw_overload_rates *rt = &o->rates[i];
        rt->offered = gw_overload_smooth(rt->offered, rt->tick_offered);
        rt->admitted = gw_overload_smooth(rt->admitted, rt->tick_admitted);
        rt->answer_rate = gw_overload_answer_step(&rt->answered, &rt->spell, rt->tick_answered,
                                                  g->pending.shard_count[i] > 0);
        rt->tick_offered = rt->tick_admitted = rt->tick_answered = 0;
        if (o->shedding && !over) {
            /* over the limits still, even if no send came to be shed (clients wait for
             * retry_after_ms) */
            gw_overload_signals s = gw_overload_now(g, i);
            over = gw_overload_judge(&s) != GW_OVERLOAD_ADMIT;
        }
    }
    if (!o->shedding)
        return;
    if (over)
        o->last_over_us = now_us;
    uint64_t last = o->last_over_us > o->last_shed_us ? o->last_over_us : o->last_shed_us;
    if (now_us - last >= (uint64_t)GW_OVERLOAD_QUIET_MS * 1000) {
        o->shedding = 0;
        pmet_set(g->m.shedding, 0);
        uint64_t backlog = 0;
        for (unsigned i = 0; i < n; i++)
            backlog += o->backlog[i];
        plog_info("overload_shedding_stop",
                  "shed=%llu seconds=%.1f ingress_backlog=%llu sends_pending=%zu "
                  "retry_after_ms_max=%u",
                  (unsigned long long)o->shed, (double)(last - o->since_us) / 1e6,
                  (unsigned long long)backlog, g->pending.count, (unsigned)o->retry_max_ms);
    }
}
