#include "lt_msg.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_dev.h"
#include "lt_payload.h"
#include "lt_rand.h"

/* Delays before a retry when the error carries no retry_after_ms: the first, doubled for
 * every further send of the same message up to LT_RETRY_MAX_MS, then jittered (+-25%), so an
 * overloaded cluster is not answered with a synchronised storm of resends. */
#define LT_RETRY_RATE_MS 100
#define LT_RETRY_UNAVAILABLE_MS 500
#define LT_RETRY_SHUTDOWN_MS 200
#define LT_RETRY_MAX_MS 4000

/* Answers carry only the message index; this is the run it indexes into. */
static lt_run *lt_msg_run;

static uint64_t lt_msg_now_ms(const lt_run *r)
{
    return lt_now_us(r) / 1000u;
}

/* ---- pool of message records ------------------------------------------------------------ */

static uint32_t lt_msg_alloc(lt_msgs *ms)
{
    uint32_t mi;

    if (ms->free_head == LT_NIL) {
        uint32_t cap = ms->cap ? ms->cap * 2 : 4096;
        lt_msg *nm;
        if (cap > LT_NIL / 2 || !(nm = realloc(ms->m, (size_t)cap * sizeof *nm)))
            return LT_NIL;
        for (uint32_t k = ms->cap; k < cap; k++) {
            nm[k].state = LT_M_FREE;
            nm[k].next = k + 1 < cap ? k + 1 : LT_NIL;
        }
        ms->m = nm;
        ms->free_head = ms->cap;
        ms->cap = cap;
    }
    mi = ms->free_head;
    ms->free_head = ms->m[mi].next;
    ms->live++;
    return mi;
}

/* The message is answered for good: off its sender's list and back to the pool. */
static void lt_msg_release(lt_run *r, uint32_t mi)
{
    lt_msgs *ms = &r->ms;
    lt_msg *m = &ms->m[mi];
    lt_dev *d = &r->dv.d[m->sender];
    uint32_t *pp = &d->msgs;

    while (*pp != LT_NIL && *pp != mi)
        pp = &ms->m[*pp].next;
    if (*pp == mi)
        *pp = m->next;
    d->inflight--;
    m->state = LT_M_FREE;
    m->next = ms->free_head;
    ms->free_head = mi;
    ms->live--;
}

/* ---- retry heap (by due time) ---------------------------------------------------------- */

static int lt_heap_push(lt_msgs *ms, uint64_t due_ms, uint32_t mi)
{
    uint32_t k;

    if (ms->nheap == ms->heap_cap) {
        uint32_t cap = ms->heap_cap ? ms->heap_cap * 2 : 1024;
        lt_retry *nh = realloc(ms->heap, (size_t)cap * sizeof *nh);
        if (!nh)
            return -1;
        ms->heap = nh;
        ms->heap_cap = cap;
    }
    k = ms->nheap++;
    while (k && ms->heap[(k - 1) / 2].due_ms > due_ms) {
        ms->heap[k] = ms->heap[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    ms->heap[k].due_ms = due_ms;
    ms->heap[k].msg = mi;
    return 0;
}

static void lt_heap_pop(lt_msgs *ms)
{
    lt_retry last = ms->heap[--ms->nheap];
    uint32_t k = 0;

    for (;;) {
        uint32_t c = 2 * k + 1;
        if (c >= ms->nheap)
            break;
        if (c + 1 < ms->nheap && ms->heap[c + 1].due_ms < ms->heap[c].due_ms)
            c++;
        if (ms->heap[c].due_ms >= last.due_ms)
            break;
        ms->heap[k] = ms->heap[c];
        k = c;
    }
    if (ms->nheap)
        ms->heap[k] = last;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void lt_msg_on_answer(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                             void *ud);

/* Puts message mi on its sender's connection, or leaves it waiting for the sender to be up. */
static void lt_msg_transmit(lt_run *r, uint32_t mi)
{
    lt_msgs *ms = &r->ms;
    lt_msg *m = &ms->m[mi];
    pc_conn *c = lt_dev_conn(r, m->sender);
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__Send snd = PARLEY__V1__SEND__INIT;
    Parley__V1__OutEnvelope env = PARLEY__V1__OUT_ENVELOPE__INIT, *envp = &env;
    lt_hdr h;
    pc_status st;

    m->state = LT_M_RESEND;
    if (!c)
        return;
    h.flags = m->flags;
    h.run_id = r->run_id;
    h.seq = m->seq;
    h.sent_us = m->sent_us;
    h.sender = m->sender;
    h.recipient = m->recipient;
    lt_payload_fill(ms->buf, r->o->payload, &h);
    env.device_id = 1;
    env.registration_id = r->pool.reg_id[m->recipient];
    env.content.data = ms->buf;
    env.content.len = r->o->payload;
    snd.client_id = lt_payload_client_id(r->run_id, m->seq);
    snd.recipient = (char *)lt_pool_name(&r->pool, m->recipient);
    snd.n_envelopes = 1;
    snd.envelopes = &envp;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_SEND;
    f.send = &snd;
    if (pc_conn_request(c, &f, lt_msg_on_answer, (void *)(uintptr_t)mi, &st) < 0)
        return; /* the connection is closing: its close brings the sender back later */
    m->state = LT_M_WAIT;
    if (m->sends < UINT16_MAX)
        m->sends++;
}

static void lt_msg_on_answer(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                             void *ud)
{
    lt_run *r = lt_msg_run;
    uint32_t mi = (uint32_t)(uintptr_t)ud;
    lt_msg *m = &r->ms.m[mi];
    const Parley__V1__Error *e;

    (void)c;
    (void)st;
    if (m->state != LT_M_WAIT)
        return;
    if (!f) {
        /* the connection went before the answer: same client_id once the sender is back */
        m->state = LT_M_RESEND;
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT && f->send_result) {
        if (f->send_result->duplicate)
            r->tr.dup_answers++;
        lt_track_accepted(&r->tr, m->seq, pclock_mono_us());
        lt_msg_release(r, mi);
        return;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_ERROR || !(e = f->error)) {
        lt_reasons_add(&r->tr.rejected, "UNEXPECTED_ANSWER", "the server answered a Send with "
                                                             "neither SendResult nor Error", 1);
        lt_msg_release(r, mi);
        return;
    }
    if (pc_error_retryable(e->code)) {
        uint64_t delay = e->retry_after_ms;
        if (!delay) {
            delay = e->code == PARLEY__V1__ERROR_CODE__RATE_LIMITED  ? LT_RETRY_RATE_MS
                    : e->code == PARLEY__V1__ERROR_CODE__UNAVAILABLE ? LT_RETRY_UNAVAILABLE_MS
                                                                      : LT_RETRY_SHUTDOWN_MS;
            for (unsigned k = 1; k < m->sends && delay < LT_RETRY_MAX_MS; k++)
                delay *= 2;
            if (delay > LT_RETRY_MAX_MS)
                delay = LT_RETRY_MAX_MS;
            delay = delay * 3 / 4 + lt_rand_below((uint32_t)(delay / 2) + 1);
        }
        lt_reasons_add(&r->tr.retried, pc_error_name(e->code), e->message, 1);
        m->state = LT_M_RETRY;
        if (lt_heap_push(&r->ms, lt_msg_now_ms(r) + delay, mi) < 0)
            m->state = LT_M_RESEND; /* out of memory: at least retry on the next reconnect */
        return;
    }
    lt_reasons_add(&r->tr.rejected, pc_error_name(e->code), e->message, 1);
    lt_msg_release(r, mi);
}

int lt_msg_new(lt_run *r, uint32_t sender, uint32_t recipient)
{
    lt_msgs *ms = &r->ms;
    lt_dev *d = &r->dv.d[sender];
    uint32_t mi = lt_msg_alloc(ms);
    uint64_t now = pclock_mono_us();
    lt_msg *m;

    if (mi == LT_NIL)
        return -1;
    m = &ms->m[mi];
    m->seq = lt_track_sent(&r->tr, now);
    m->sent_us = now;
    m->sender = sender;
    m->recipient = recipient;
    m->flags = r->dv.d[recipient].state == LT_D_UP ? 0 : LT_HDR_OFFLINE;
    m->sends = 0;
    m->next = d->msgs;
    d->msgs = mi;
    d->inflight++;
    lt_msg_transmit(r, mi);
    return 0;
}

void lt_msg_dev_up(lt_run *r, uint32_t dev)
{
    lt_msgs *ms = &r->ms;

    for (uint32_t mi = r->dv.d[dev].msgs; mi != LT_NIL; mi = ms->m[mi].next)
        if (ms->m[mi].state == LT_M_RESEND) {
            if (ms->m[mi].sends)
                r->tr.resends++;
            lt_msg_transmit(r, mi);
        }
}

void lt_msgs_tick(lt_run *r)
{
    lt_msgs *ms = &r->ms;
    uint64_t now = lt_msg_now_ms(r);

    while (ms->nheap && ms->heap[0].due_ms <= now) {
        uint32_t mi = ms->heap[0].msg;
        lt_heap_pop(ms);
        if (ms->m[mi].state == LT_M_RETRY)
            lt_msg_transmit(r, mi);
    }
}

uint32_t lt_msgs_live(const lt_run *r)
{
    return r->ms.live;
}

int lt_msgs_init(lt_run *r)
{
    lt_msgs *ms = &r->ms;

    memset(ms, 0, sizeof *ms);
    lt_msg_run = r;
    ms->free_head = LT_NIL;
    ms->buf = malloc(r->o->payload);
    return ms->buf ? 0 : -1;
}

void lt_msgs_free(lt_run *r)
{
    lt_msgs *ms = &r->ms;

    free(ms->m);
    free(ms->heap);
    free(ms->buf);
    memset(ms, 0, sizeof *ms);
}
