#include "lt_recv.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_dev.h"
#include "lt_payload.h"

/* Ack ids of one device: waiting to be sent, and sent but not yet answered. */
struct lt_ackq {
    uint64_t *ids;
    uint32_t n, cap;
    uint32_t inflight;
};

/* AckOk callbacks carry the device and the count packed in their user data. */
#define LT_ACK_COUNT_BITS 12
static lt_run *lt_recv_run;

static void lt_ackq_drop(lt_run *r, lt_dev *d)
{
    struct lt_ackq *q = d->ackq;

    if (!q)
        return;
    r->ak.pending -= q->n;
    r->ak.inflight -= q->inflight;
    free(q->ids);
    free(q);
    d->ackq = NULL;
}

static void lt_ack_on_answer(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                             void *ud)
{
    lt_run *r = lt_recv_run;
    uintptr_t v = (uintptr_t)ud;
    uint32_t dev = (uint32_t)(v >> LT_ACK_COUNT_BITS);
    uint32_t k = (uint32_t)(v & ((1u << LT_ACK_COUNT_BITS) - 1));
    lt_dev *d = &r->dv.d[dev];
    struct lt_ackq *q = d->ackq;

    (void)c;
    (void)st;
    if (!q)
        return;
    if (k > q->inflight)
        k = q->inflight;
    q->inflight -= k;
    r->ak.inflight -= k;
    /* a refused Ack or a lost connection leaves those envelopes queued on the server: they
     * come again after a reconnect, count as duplicates and are acked then */
    if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR)
        r->ak.errors++;
    if (!q->n && !q->inflight && !(d->flags & LT_DF_DIRTY))
        lt_ackq_drop(r, d);
}

/* Sends what device dev may send now; returns 1 when ids are left waiting. */
static int lt_ack_flush_dev(lt_run *r, uint32_t dev)
{
    lt_dev *d = &r->dv.d[dev];
    struct lt_ackq *q = d->ackq;
    pc_conn *c = lt_dev_conn(r, dev);

    if (!q)
        return 0;
    while (c && q->n && q->inflight < PARLEY_PENDING_ACK_IDS_MAX) {
        Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
        Parley__V1__Ack a = PARLEY__V1__ACK__INIT;
        uint32_t k = q->n;
        pc_status st;

        if (k > PARLEY_MAX_ACK_IDS)
            k = PARLEY_MAX_ACK_IDS;
        if (k > PARLEY_PENDING_ACK_IDS_MAX - q->inflight)
            k = PARLEY_PENDING_ACK_IDS_MAX - q->inflight;
        a.n_envelope_ids = k;
        a.envelope_ids = q->ids;
        f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_ACK;
        f.ack = &a;
        if (pc_conn_request(c, &f, lt_ack_on_answer,
                            (void *)((uintptr_t)dev << LT_ACK_COUNT_BITS | k), &st) < 0)
            break;
        memmove(q->ids, q->ids + k, (q->n - k) * sizeof *q->ids);
        q->n -= k;
        q->inflight += k;
        r->ak.pending -= k;
        r->ak.inflight += k;
        r->ak.frames++;
        r->ak.ids += k;
    }
    return q->n > 0;
}

static void lt_ack_mark(lt_run *r, uint32_t dev)
{
    lt_acks *ak = &r->ak;
    lt_dev *d = &r->dv.d[dev];

    if (d->flags & LT_DF_DIRTY)
        return;
    if (ak->ndirty == ak->cap) {
        uint32_t cap = ak->cap ? ak->cap * 2 : 1024;
        uint32_t *nd = realloc(ak->dirty, cap * sizeof *nd);
        if (!nd)
            return; /* flushed when its queue fills up instead */
        ak->dirty = nd;
        ak->cap = cap;
    }
    ak->dirty[ak->ndirty++] = dev;
    d->flags |= LT_DF_DIRTY;
}

static void lt_ack_add(lt_run *r, uint32_t dev, uint64_t id)
{
    lt_dev *d = &r->dv.d[dev];
    struct lt_ackq *q = d->ackq;

    if (!q && !(q = d->ackq = calloc(1, sizeof *q)))
        return;
    if (q->n == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 16;
        uint64_t *ni = realloc(q->ids, cap * sizeof *ni);
        if (!ni)
            return;
        q->ids = ni;
        q->cap = cap;
    }
    q->ids[q->n++] = id;
    r->ak.pending++;
    if (q->n >= PARLEY_MAX_ACK_IDS)
        lt_ack_flush_dev(r, dev);
    if (q->n)
        lt_ack_mark(r, dev);
}

static void lt_recv_envelope(lt_run *r, uint32_t dev, const Parley__V1__Envelope *e)
{
    lt_dev *d = &r->dv.d[dev];
    lt_hdr h;

    if (lt_payload_parse(e->content.data, e->content.len, &h) < 0 || h.run_id != r->run_id)
        r->tr.foreign++;
    else if (h.recipient != dev)
        r->tr.misrouted++;
    else
        lt_track_delivered(&r->tr, h.seq, h.sent_us,
                           (h.flags & LT_HDR_OFFLINE) || !(d->flags & LT_DF_LIVE),
                           pclock_mono_us());
    lt_ack_add(r, dev, e->id);
}

void lt_recv_frame(lt_run *r, uint32_t dev, const Parley__V1__ServerFrame *f)
{
    switch (f->body_case) {
    case PARLEY__V1__SERVER_FRAME__BODY_ENVELOPE:
        if (f->envelope)
            lt_recv_envelope(r, dev, f->envelope);
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_QUEUE_EMPTY:
        r->dv.d[dev].flags |= LT_DF_LIVE;
        break;
    case PARLEY__V1__SERVER_FRAME__BODY_ERROR:
        r->ak.unsolicited++;
        break;
    default:
        break;
    }
}

void lt_recv_dev_up(lt_run *r, uint32_t dev)
{
    if (r->dv.d[dev].ackq && r->dv.d[dev].ackq->n)
        lt_ack_mark(r, dev);
}

void lt_recv_dev_down(lt_run *r, uint32_t dev)
{
    (void)r;
    (void)dev; /* waiting ids stay: they are this device's, valid on its next connection */
}

void lt_acks_flush(lt_run *r)
{
    lt_acks *ak = &r->ak;
    uint32_t keep = 0;

    for (uint32_t k = 0; k < ak->ndirty; k++) {
        uint32_t dev = ak->dirty[k];
        lt_dev *d = &r->dv.d[dev];
        if (lt_ack_flush_dev(r, dev)) {
            ak->dirty[keep++] = dev;
            continue;
        }
        d->flags &= (uint8_t)~LT_DF_DIRTY;
        if (d->ackq && !d->ackq->n && !d->ackq->inflight)
            lt_ackq_drop(r, d);
    }
    ak->ndirty = keep;
}

int lt_acks_idle(const lt_run *r)
{
    return !r->ak.pending && !r->ak.inflight;
}

void lt_recv_dev_free(lt_run *r, uint32_t dev)
{
    lt_ackq_drop(r, &r->dv.d[dev]);
}

void lt_acks_init(lt_run *r)
{
    memset(&r->ak, 0, sizeof r->ak);
    lt_recv_run = r;
}

void lt_acks_free(lt_run *r)
{
    free(r->ak.dirty);
    r->ak.dirty = NULL;
    r->ak.ndirty = r->ak.cap = 0;
}
