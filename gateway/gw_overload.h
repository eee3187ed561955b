/* gw_overload.h: admission control of Send frames, so that a cluster sent more than it can
 * commit answers the excess at once instead of queueing it past the send answer timeout.
 *
 * Signals, per ingress shard (fanout reads the shards side by side, a share of a batch from
 * each, so one busy shard can make its sends wait long while the others are empty):
 *  - the backlog: every gateway tick (100 ms) one XLEN per shard, pipelined on the command
 *    connection. Fanout deletes an entry once its batch is committed and answered, so this is
 *    what the whole cluster still has to do there (waiting plus being processed). Between two
 *    samples the sends this gateway wrote since the sample's request are added (they reach
 *    Redis after the XLEN on the same connection); other gateways' are not, so the estimate
 *    runs behind by at most one tick of their writes.
 *  - the expected wait: this gateway's sends to the shard still waiting for an answer, divided
 *    by its rate of answers from that shard (smoothed over a few seconds, and known from the
 *    first answer after the shard was idle here). Fanout takes a shard's entries in order, so
 *    this is about the wait a send admitted now would see, at whatever throughput the cluster
 *    has just now. Each admitted send counts at once, so the limit holds within a tick,
 *    however many sends arrive.
 *
 * A new send is shed, answered Error{UNAVAILABLE, retry_after_ms} without being queued, while
 *  - the backlog of all shards together is at least ingress_backlog_max ("ingress_backlog"), or
 *  - this gateway's own unanswered sends reach ingress_backlog_max ("gateway_pending": a
 *    backstop when samples stop arriving or answers back up on their way here), or
 *  - its shard holds at least its share of a fanout batch (PARLEY_FANOUT_BATCH_MAX, or
 *    ingress_backlog_max when lower, divided by the shards), the shard's expected wait is known
 *    and exceeds PARLEY_GW_SHED_WAIT_MS, and this gateway has at least a few
 *    (GW_OVERLOAD_WINDOW_MIN) sends to the shard waiting ("answer_wait"). Below that share a
 *    healthy cluster's sends never wait (they go with the next read), nor does a send whose
 *    answer was lost; below the few, a gateway that sends little has no rate to judge by.
 * Nothing else is ever shed: acks, drains, pushes and device lookups make the backlog smaller
 * or do not touch it.
 *
 * retry_after_ms grows with the ratio of sends to the shard offered to those admitted (both
 * smoothed), from PARLEY_GW_SHED_RETRY_BASE_MS to PARLEY_GW_SHED_RETRY_MAX_MS, and is jittered
 * down by up to half so that shed clients do not come back in lockstep. One log line when
 * shedding starts, one when for GW_OVERLOAD_QUIET_MS no send was shed and the limits held (an
 * episode does not end just because the shed clients are waiting). */
#ifndef PARLEY_GW_OVERLOAD_H
#define PARLEY_GW_OVERLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"

struct gw;

typedef enum {
    GW_OVERLOAD_ADMIT = 0,
    GW_OVERLOAD_BACKLOG, /* the ingress streams hold ingress_backlog_max sends */
    GW_OVERLOAD_PENDING, /* this gateway waits for ingress_backlog_max answers */
    GW_OVERLOAD_WAIT,    /* an answer from the shard would take over PARLEY_GW_SHED_WAIT_MS */
} gw_overload_verdict;

/* What one decision looks at. */
typedef struct {
    uint64_t backlog;           /* estimate, all shards */
    uint64_t pending;           /* this gateway's sends waiting for an answer */
    uint64_t max;               /* ingress_backlog_max */
    unsigned shards;            /* ingress_shards */
    uint64_t shard_backlog;     /* estimate, the send's shard */
    uint64_t shard_pending;     /* this gateway's waiting sends to that shard */
    double shard_answers_per_s; /* this gateway's answers from that shard, smoothed; < 0 while
                                   not known (no answer yet since the shard was idle here) */
} gw_overload_signals;

/* Rates of one shard as seen here: per tick, and smoothed (per tick). */
typedef struct {
    uint32_t tick_offered, tick_admitted, tick_answered;
    double offered, admitted;
    double answered, spell; /* gw_overload_answer_step's state */
    double answer_rate;     /* its result: answers per tick, < 0 while not known */
} gw_overload_rates;

/* One shard's XLEN request in flight (the callback needs both). */
typedef struct {
    struct gw *g;
    unsigned shard;
} gw_overload_xlen;

typedef struct {
    /* the sample in force, per shard: XLEN, and this gateway's XADDs when it was requested */
    uint64_t backlog[PARLEY_INGRESS_SHARDS_MAX];
    uint64_t xadds_at_sample[PARLEY_INGRESS_SHARDS_MAX];
    uint64_t xadds[PARLEY_INGRESS_SHARDS_MAX]; /* XADDs this gateway issued, ever */
    int known;                                 /* a sample has arrived since start */

    /* the poll in flight (at most one) */
    int polling;
    unsigned poll_left; /* XLEN answers still due */
    int poll_failed;
    int failing; /* the previous poll failed too (its error is logged once) */
    uint64_t poll_len[PARLEY_INGRESS_SHARDS_MAX], poll_xadds[PARLEY_INGRESS_SHARDS_MAX];
    gw_overload_xlen poll_ctx[PARLEY_INGRESS_SHARDS_MAX];

    gw_overload_rates rates[PARLEY_INGRESS_SHARDS_MAX];

    /* the shedding episode */
    int shedding;
    uint64_t since_us, last_shed_us, shed;
    uint64_t last_over_us; /* last tick that found the limits exceeded */
    uint32_t retry_max_ms; /* longest retry_after_ms of the episode */
} gw_overload;

/* Decides about one send (pure). */
gw_overload_verdict gw_overload_judge(const gw_overload_signals *s);
/* retry_after_ms before jitter (pure): PARLEY_GW_SHED_RETRY_BASE_MS times offered/admitted,
 * within [BASE, MAX]; MAX when nothing is admitted. */
uint32_t gw_overload_retry_ms(double offered, double admitted);
/* The jittered hint (pure): r - (u mod (r/2 + 1)), so within [r - r/2, r]. */
uint32_t gw_overload_jitter(uint32_t r, uint32_t u);
/* One step of the smoothing (pure): avg moved towards this tick's count. */
double gw_overload_smooth(double avg, uint64_t tick_count);
/* One tick of a shard's answer rate (pure). While the shard is busy here (sends waiting or
 * answers arriving) *avg is smoothed towards the tick's answers and *spell, the weight of this
 * busy spell in it, towards 1; an idle tick starts afresh. Returns answers per tick corrected
 * for a spell shorter than the smoothing's memory (so a burst into an idle gateway is judged
 * by its first answers, not by a slow climb from zero), or -1 while the spell has had no
 * answer yet. */
double gw_overload_answer_step(double *avg, double *spell, uint64_t tick_answers, int busy);

/* Called for every Send frame to shard that passed the per-connection checks:
 * GW_OVERLOAD_ADMIT, or the reason it is shed with *retry_after_ms set (counted, the episode
 * logged). */
gw_overload_verdict gw_overload_admit(struct gw *g, unsigned shard, uint64_t now_us,
                                      uint32_t *retry_after_ms);
/* An admitted send was written (XADD issued) to shard's ingress stream. */
void gw_overload_forwarded(struct gw *g, unsigned shard);
/* Fanout answered one of this gateway's sends to shard in time. */
void gw_overload_answered(struct gw *g, unsigned shard);
/* From the gateway tick (every GW_OVERLOAD_TICK_MS): polls the backlog, smooths the rates,
 * ends a quiet episode. */
void gw_overload_tick(struct gw *g, uint64_t now_us);

/* The gateway tick the smoothed rates count in. */
#define GW_OVERLOAD_TICK_MS 100

#endif
