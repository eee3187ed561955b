#include "gw_send.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "sendcheck.h"
#include "clock.h"
#include "gw.h"
#include "gw_overload.h"
#include "keys.h"
#include "log.h"

#define GW_SEND_RETRY_AFTER_MS 1000 /* hint with RATE_LIMITED for too many unanswered sends */

/* ---- rate limit --------------------------------------------------------------------------- */

#define GW_BUCKET_UNIT 1000000ULL /* one send, in bucket units */
#define GW_BUCKET_FULL ((uint64_t)PARLEY_SEND_BURST * GW_BUCKET_UNIT)

void gw_send_bucket_init(gw_send_bucket *b, uint64_t now_us)
{
    b->level = GW_BUCKET_FULL;
    b->last_us = now_us;
}

int gw_send_bucket_take(gw_send_bucket *b, uint64_t now_us, uint32_t *retry_after_ms)
{
    /* PARLEY_SEND_RATE_PER_S sends a second = that many units a microsecond */
    if (now_us > b->last_us) {
        uint64_t dt = now_us - b->last_us;
        if (dt >= GW_BUCKET_FULL / PARLEY_SEND_RATE_PER_S)
            b->level = GW_BUCKET_FULL;
        else if ((b->level += dt * PARLEY_SEND_RATE_PER_S) > GW_BUCKET_FULL)
            b->level = GW_BUCKET_FULL;
        b->last_us = now_us;
    }
    if (b->level >= GW_BUCKET_UNIT) {
        b->level -= GW_BUCKET_UNIT;
        return 0;
    }
    uint64_t wait_us = (GW_BUCKET_UNIT - b->level + PARLEY_SEND_RATE_PER_S - 1) /
                       PARLEY_SEND_RATE_PER_S;
    *retry_after_ms = (uint32_t)((wait_us + 999) / 1000);
    return -1;
}

/* ---- the pending table -------------------------------------------------------------------- */

_Static_assert(PARLEY_INGRESS_SHARDS_MAX <= 256, "gw_pending.shard is a uint8_t");

gw_pending *gw_pendings_add(gw_pendings *ps, gw_conn *c, uint64_t request_id, unsigned shard,
                            uint64_t now_us)
{
    gw_pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->seq = ++ps->next_seq;
    p->conn_id = c->id;
    p->request_id = request_id;
    p->shard = (uint8_t)(shard < PARLEY_INGRESS_SHARDS_MAX ? shard : 0);
    ps->shard_count[p->shard]++;
    p->started_us = now_us;
    p->prev = ps->tail;
    if (ps->tail)
        ps->tail->next = p;
    else
        ps->head = p;
    ps->tail = p;
    ps->count++;
    p->conn_next = c->pending;
    c->pending = p;
    c->npending++;
    return p;
}

/* Takes p off the global list it is on (waiting or orphans). */
static void gw_pendings_unlink_global(gw_pendings *ps, gw_pending *p)
{
    gw_pending **head = p->orphan ? &ps->orphan_head : &ps->head;
    gw_pending **tail = p->orphan ? &ps->orphan_tail : &ps->tail;
    if (p->prev)
        p->prev->next = p->next;
    else
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        *tail = p->prev;
    p->prev = p->next = NULL;
    if (p->orphan) {
        ps->orphans--;
    } else {
        ps->count--;
        ps->shard_count[p->shard]--;
    }
}

void gw_pendings_remove(gw_pendings *ps, gw_conn *c, gw_pending *p)
{
    gw_pendings_unlink_global(ps, p);
    if (c) {
        for (gw_pending **pp = &c->pending; *pp; pp = &(*pp)->conn_next) {
            if (*pp == p) {
                *pp = p->conn_next;
                c->npending--;
                break;
            }
        }
    }
    free(p);
}

gw_pending *gw_pendings_time_out(gw_pendings *ps, uint64_t now_us)
{
    gw_pending *p = ps->head;
    if (!p || now_us - p->started_us < (uint64_t)PARLEY_SEND_ANSWER_TIMEOUT_MS * 1000)
        return NULL;
    gw_pendings_unlink_global(ps, p);
    /* timeouts happen in started_us order: appending keeps the orphans ordered */
    p->orphan = 1;
    p->prev = ps->orphan_tail;
    if (ps->orphan_tail)
        ps->orphan_tail->next = p;
    else
        ps->orphan_head = p;
    ps->orphan_tail = p;
    ps->orphans++;
    return p;
}

gw_pending *gw_pendings_orphan_expired(const gw_pendings *ps, uint64_t now_us)
{
    gw_pending *p = ps->orphan_head;
    if (!p || now_us - p->started_us < (uint64_t)PARLEY_SEND_ORPHAN_MS * 1000)
        return NULL;
    return p;
}

gw_pending *gw_pendings_find(const gw_conn *c, uint64_t request_id)
{
    /* the connection's list is newest first; answers come in send order, so the oldest send
     * with this request id is the one answered */
    gw_pending *found = NULL;
    for (gw_pending *p = c->pending; p; p = p->conn_next)
        if (p->request_id == request_id)
            found = p;
    return found;
}

static void gw_pending_remove(gw *g, gw_conn *c, gw_pending *p)
{
    gw_pendings_remove(&g->pending, c, p);
    pmet_set(g->m.sends_pending, (double)g->pending.count);
}

typedef struct {
    gw *g;
    uint64_t conn_id, seq;
} gw_xadd_ctx;

static void gw_send_fail_seq(gw *g, uint64_t conn_id, uint64_t seq, const char *why)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (!c)
        return;
    for (gw_pending *p = c->pending; p; p = p->conn_next) {
        if (p->seq == seq) {
            uint64_t request_id = p->request_id;
            int answered = p->orphan; /* timed out already; not in Redis: release the slot */
            gw_pending_remove(g, c, p);
            if (!answered)
                gw_conn_send_error(g, c, request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE, why,
                                   0);
            return;
        }
    }
}

static void gw_send_xadd_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_xadd_ctx *x = privdata;
    redisReply *r = reply;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        char q[256];
        plog_warn("send_xadd_failed", "conn=%llu error=%s", (unsigned long long)x->conn_id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        gw_send_fail_seq(x->g, x->conn_id, x->seq, "message queue unavailable");
    } else {
        pmet_inc(x->g->m.sends_forwarded, 1);
    }
    free(x);
}

void gw_send_handle(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    uint64_t rid = f->request_id;
    if (g->draining) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__SHUTTING_DOWN,
                           "gateway is shutting down", 0);
        return;
    }
    /* one clock read per send: the rate limit, admission and the answer deadline */
    uint64_t now_us = pclock_mono_us();
    uint32_t retry_after_ms;
    if (gw_send_bucket_take(&c->send_bucket, now_us, &retry_after_ms) != 0) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED, "too many sends",
                           retry_after_ms);
        return;
    }
    char recipient[PARLEY_NAME_MAX + 1];
    const char *why = NULL;
    Parley__V1__ErrorCode code = psend_validate(f->send, recipient, &why);
    if (code != PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED) {
        gw_conn_send_error(g, c, rid, code, why, 0);
        return;
    }
    if (c->npending >= PARLEY_PENDING_SENDS_MAX) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                           "too many unanswered sends", GW_SEND_RETRY_AFTER_MS);
        return;
    }
    unsigned shard = pkeys_shard(recipient, (unsigned)g->cfg->backend.ingress_shards);
    if (gw_overload_admit(g, shard, now_us, &retry_after_ms) != GW_OVERLOAD_ADMIT) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "server overloaded: not queued; resend after retry_after_ms",
                           retry_after_ms);
        return;
    }

    /* the send as received, with the recipient in its normalised form (a shallow copy: the
     * envelopes stay owned by f) */
    Parley__V1__Send send = *f->send;
    send.recipient = recipient;
    Parley__V1__InternalSend is = PARLEY__V1__INTERNAL_SEND__INIT;
    is.gateway_id = g->id;
    is.conn_id = c->id;
    is.request_id = rid;
    is.sender = c->account;
    is.sender_device = c->device_id;
    is.send = &send;
    is.received_ms = pclock_wall_ms();
    size_t len = parley__v1__internal_send__get_packed_size(&is);
    uint8_t *buf = malloc(len ? len : 1);
    gw_xadd_ctx *x = malloc(sizeof *x);
    char key[PKEYS_MAX];
    if (!buf || !x || pkeys_ingress(key, shard) < 0) {
        free(buf);
        free(x);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    parley__v1__internal_send__pack(&is, buf);

    gw_pending *p = gw_pendings_add(&g->pending, c, rid, shard, now_us);
    pmet_set(g->m.sends_pending, (double)g->pending.count);
    if (!p) {
        free(buf);
        free(x);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->seq = p->seq;
    const char *argv[] = {"XADD", key, "*", PKEYS_FIELD, (const char *)buf};
    size_t argvlen[] = {4, strlen(key), 1, strlen(PKEYS_FIELD), len};
    int rc = predis_cmd(g->redis, gw_send_xadd_cb, x, 5, argv, argvlen);
    free(buf);
    if (rc != 0) {
        free(x);
        gw_pending_remove(g, c, p);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "message queue unavailable", 0);
        return;
    }
    gw_overload_forwarded(g, shard);
}

int gw_send_answered(gw *g, gw_conn *c, uint64_t request_id, uint64_t *latency_us)
{
    gw_pending *p = gw_pendings_find(c, request_id);
    if (!p)
        return -1;
    int late = p->orphan;
    unsigned shard = p->shard;
    *latency_us = pclock_mono_us() - p->started_us;
    gw_pending_remove(g, c, p);
    if (late)
        return -1;
    gw_overload_answered(g, shard);
    return 0;
}

void gw_send_drop_conn(gw *g, gw_conn *c)
{
    while (c->pending)
        gw_pending_remove(g, c, c->pending);
}

void gw_send_expire(gw *g, uint64_t now_us)
{
    gw_pending *p;
    while ((p = gw_pendings_time_out(&g->pending, now_us))) {
        pmet_set(g->m.sends_pending, (double)g->pending.count);
        pmet_inc(g->m.send_timeouts, 1);
        gw_conn *c = gw_conns_get(&g->conns, p->conn_id);
        if (!c) {
            gw_pendings_remove(&g->pending, NULL, p);
            continue;
        }
        plog_warn("send_timeout", "conn=%llu request_id=%llu", (unsigned long long)c->id,
                  (unsigned long long)p->request_id);
        gw_conn_send_error(g, c, p->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "no answer from the message service", 0);
    }
    while ((p = gw_pendings_orphan_expired(&g->pending, now_us)))
        gw_pendings_remove(&g->pending, gw_conns_get(&g->conns, p->conn_id), p);
}

void gw_send_free_all(gw *g)
{
    while (g->pending.head)
        gw_pending_remove(g, gw_conns_get(&g->conns, g->pending.head->conn_id),
                          g->pending.head);
    while (g->pending.orphan_head)
        gw_pending_remove(g, gw_conns_get(&g->conns, g->pending.orphan_head->conn_id),
                          g->pending.orphan_head);
}
