#include "lt_dev.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_drive.h"
#include "lt_msg.h"
#include "lt_rand.h"
#include "lt_recv.h"
#include "wire.h"

#define LT_BACKOFF_FIRST_MS 100
#define LT_BACKOFF_MAX_MS 2000

/* The connection callbacks carry only a device index; this is the run they index into. */
static lt_run *lt_dev_run;

static uint64_t lt_dev_now_ms(const lt_run *r)
{
    return lt_now_us(r) / 1000u;
}

/* A short name for why a connection failed or went away, for the counts by reason. */
static void lt_dev_reason(const pc_status *st, char *out, size_t cap)
{
    switch (st->kind) {
    case PC_ERR_SERVER:
        snprintf(out, cap, "%s", pc_error_name(st->server_code));
        break;
    case PC_ERR_NET:
        if (st->close_code)
            snprintf(out, cap, "close %d", st->close_code);
        else if (strstr(st->msg, "refused"))
            snprintf(out, cap, "refused");
        else if (strstr(st->msg, "timed out") || strstr(st->msg, "timeout"))
            snprintf(out, cap, "timeout");
        else
            snprintf(out, cap, "network");
        break;
    case PC_ERR_TIMEOUT:
        snprintf(out, cap, "timeout");
        break;
    case PC_ERR_PROTO:
        snprintf(out, cap, "protocol");
        break;
    default:
        snprintf(out, cap, "local");
        break;
    }
}

/* ---- lists: connect queue, backoff wheel, attempt slots --------------------------------- */

static void lt_queue_push(lt_devs *dv, uint32_t i)
{
    dv->d[i].link = LT_NIL;
    dv->d[i].state = LT_D_QUEUED;
    if (dv->q_tail == LT_NIL)
        dv->q_head = i;
    else
        dv->d[dv->q_tail].link = i;
    dv->q_tail = i;
}

static uint32_t lt_queue_pop(lt_devs *dv)
{
    uint32_t i = dv->q_head;

    if (i == LT_NIL)
        return LT_NIL;
    dv->q_head = dv->d[i].link;
    if (dv->q_head == LT_NIL)
        dv->q_tail = LT_NIL;
    dv->d[i].link = LT_NIL;
    return i;
}

/* Reconnect later, to the next server: jittered between half and all of the backoff. */
static void lt_dev_backoff(lt_run *r, uint32_t i)
{
    lt_devs *dv = &r->dv;
    lt_dev *d = &dv->d[i];
    unsigned step = d->backoff < 5 ? d->backoff : 5, base, delay, k, slot;

    base = LT_BACKOFF_FIRST_MS << step;
    if (base > LT_BACKOFF_MAX_MS)
        base = LT_BACKOFF_MAX_MS;
    delay = base / 2 + lt_rand_below(base / 2 + 1);
    if (d->backoff < 255)
        d->backoff++;
    d->server = (uint8_t)((d->server + 1) % r->nservers);
    k = (delay + LT_WHEEL_MS - 1) / LT_WHEEL_MS;
    if (k < 1)
        k = 1;
    slot = (dv->wheel_pos + k) % LT_WHEEL;
    d->state = LT_D_BACKOFF;
    d->link = dv->wheel[slot];
    dv->wheel[slot] = i;
}

static void lt_slot_release(lt_devs *dv, lt_dev *d)
{
    if (d->slot == LT_NIL)
        return;
    dv->slots[d->slot].dev = LT_NIL;
    dv->slots[d->slot].next_free = dv->slot_free;
    dv->slot_free = d->slot;
    dv->slots_used--;
    d->slot = LT_NIL;
}

/* ---- the connection went away ------------------------------------------------------------ */

/* Device i has no connection any more. st says why (NULL: we ended it on purpose). Reconnects
 * when it should be online. */
static void lt_dev_gone(lt_run *r, uint32_t i, const pc_status *st)
{
    lt_devs *dv = &r->dv;
    lt_dev *d = &dv->d[i];
    pc_conn *c = d->conn;
    char why[LT_REASON_NAME];

    if (st)
        lt_dev_reason(st, why, sizeof why);
    switch (d->state) {
    case LT_D_CONNECTING:
        dv->connecting--;
        if (st)
            lt_reasons_add(&dv->fail, why, st->msg, 1);
        break;
    case LT_D_UP:
        dv->up--;
        if (st)
            lt_reasons_add(&dv->drops, why, st->msg, 1);
        break;
    case LT_D_CLOSING:
        dv->closing--;
        break;
    default:
        break;
    }
    d->conn = NULL;
    d->flags &= (uint8_t)~LT_DF_LIVE;
    d->state = LT_D_IDLE;
    /* cancels what waits on c: the auth (ignored), sends (to be resent), acks in flight */
    pc_conn_free(c);
    lt_slot_release(dv, d);
    lt_recv_dev_down(r, i);
    if (!(d->flags & LT_DF_WANT) || r->phase >= LT_PH_CLOSE)
        return;
    if (st)
        lt_dev_backoff(r, i);
    else
        lt_queue_push(dv, i);
}

/* ---- connection callbacks ----------------------------------------------------------------- */

static void lt_dev_on_frame(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    lt_run *r = lt_dev_run;
    uint32_t i = (uint32_t)(uintptr_t)ud;

    if (r->dv.d[i].conn == c)
        lt_recv_frame(r, i, f);
}

static void lt_dev_on_close(pc_conn *c, const pc_status *st, void *ud)
{
    lt_run *r = lt_dev_run;
    uint32_t i = (uint32_t)(uintptr_t)ud;

    if (r->dv.d[i].conn != c) {
        pc_conn_free(c);
        return;
    }
    lt_dev_gone(r, i, r->dv.d[i].state == LT_D_CLOSING ? NULL : st);
}

static void lt_dev_on_auth(pc_conn *c, const pc_status *st, const Parley__V1__AuthOk *ok,
                           void *ud)
{
    lt_run *r = lt_dev_run;
    lt_devs *dv = &r->dv;
    uint32_t i = (uint32_t)(uintptr_t)ud;
    lt_dev *d = &dv->d[i];

    if (d->conn != c || d->state != LT_D_CONNECTING)
        return;
    if (!ok) {
        /* a dropped connection is reported by on_close, which follows */
        if (st->kind == PC_ERR_NET)
            return;
        if (st->kind == PC_ERR_SERVER &&
            st->server_code == PARLEY__V1__ERROR_CODE__AUTH_FAILED) {
            if (i < r->pool.loaded)
                lt_fatal(r, "device %s of %s was refused (AUTH_FAILED): the pool does not "
                            "match this server: delete %s",
                         lt_pool_name(&r->pool, i), r->pool.path, r->pool.path);
            else
                lt_fatal(r, "device %s, registered by this run, was refused (AUTH_FAILED)",
                         lt_pool_name(&r->pool, i));
        }
        lt_dev_gone(r, i, st);
        return;
    }
    lt_slot_release(dv, d);
    dv->connecting--;
    d->state = LT_D_UP;
    d->backoff = 0;
    d->flags &= (uint8_t)~LT_DF_LIVE;
    if (++dv->up > dv->max_up)
        dv->max_up = dv->up;
    if (d->flags & LT_DF_EVER_UP) {
        dv->reconnects++;
    } else {
        d->flags |= LT_DF_EVER_UP;
        dv->ever_up++;
    }
    lt_track_up(&r->tr, dv->up, pclock_mono_us());
    lt_recv_dev_up(r, i);
    lt_msg_dev_up(r, i);
    lt_drive_dev_up(r, i, ok);
}

/* ---- attempts --------------------------------------------------------------------------- */

static void lt_dev_start(lt_run *r, uint32_t i)
{
    static const pc_conn_events ev = { NULL, lt_dev_on_frame, lt_dev_on_close };
    lt_devs *dv = &r->dv;
    lt_dev *d = &dv->d[i];
    const lt_server *sv = &r->servers[d->server];
    void *ud = (void *)(uintptr_t)i;
    uint32_t s = dv->slot_free;
    pc_status st;
    pc_conn *c;

    dv->slot_free = dv->slots[s].next_free;
    dv->slots_used++;
    dv->slots[s].dev = i;
    lt_pool_identity(&r->pool, i, &dv->slots[s].id);
    d->slot = s;
    d->t_ms = (uint32_t)lt_dev_now_ms(r);
    d->state = LT_D_CONNECTING;
    dv->connecting++;
    dv->attempts++;
    if (!dv->t_first_attempt_us)
        dv->t_first_attempt_us = pclock_mono_us();
    c = pc_conn_open_from(r->ctx, sv->url, sv->v6 || !r->nsrc ? NULL : r->src[d->src], &ev, ud,
                          &st);
    if (!c) {
        lt_fatal(r, "cannot open a connection to %s: %s", sv->url, st.msg);
        lt_dev_gone(r, i, &st);
        return;
    }
    d->conn = c;
    if (pc_auth_start(c, &dv->slots[s].id, lt_dev_on_auth, ud, &st) < 0)
        lt_dev_gone(r, i, &st);
}

void lt_dev_want(lt_run *r, uint32_t i, int online)
{
    lt_devs *dv = &r->dv;
    lt_dev *d = &dv->d[i];

    if (online) {
        if (d->flags & LT_DF_WANT)
            return;
        d->flags |= LT_DF_WANT;
        d->backoff = 0;
        if (d->state == LT_D_IDLE)
            lt_queue_push(dv, i);
        /* QUEUED and BACKOFF go on; CLOSING reconnects once closed */
        return;
    }
    if (!(d->flags & LT_DF_WANT))
        return;
    d->flags &= (uint8_t)~LT_DF_WANT;
    switch (d->state) {
    case LT_D_CONNECTING:
        lt_dev_gone(r, i, NULL);
        break;
    case LT_D_UP:
        dv->up--;
        dv->closing++;
        d->state = LT_D_CLOSING;
        pc_conn_close(d->conn, PWIRE_CLOSE_NORMAL, "bye");
        break;
    default:
        break; /* QUEUED and BACKOFF drop out when their turn comes */
    }
}

/* Attempts that hang (they hold an attempt slot): given up on after LT_ATTEMPT_TIMEOUT_MS.
 * Closing connections are not timed here; the run's closing phase waits LT_CLOSE_WAIT_S at
 * most. */
static void lt_devs_sweep(lt_run *r, uint64_t now_ms)
{
    lt_devs *dv = &r->dv;

    for (uint32_t s = 0; s < dv->nslots; s++) {
        uint32_t i = dv->slots[s].dev;
        if (i != LT_NIL && now_ms > dv->d[i].t_ms &&
            now_ms - dv->d[i].t_ms > LT_ATTEMPT_TIMEOUT_MS) {
            pc_status st;
            pc_status_set(&st, PC_ERR_TIMEOUT, "no AuthOk %d ms after connecting",
                          LT_ATTEMPT_TIMEOUT_MS);
            lt_dev_gone(r, i, &st);
        }
    }
}

void lt_devs_tick(lt_run *r)
{
    static uint64_t last_sweep_ms;
    lt_devs *dv = &r->dv;
    uint64_t now_ms = lt_dev_now_ms(r);
    uint32_t i;

    while (dv->wheel_ms <= now_ms) {
        i = dv->wheel[dv->wheel_pos];
        dv->wheel[dv->wheel_pos] = LT_NIL;
        while (i != LT_NIL) {
            uint32_t next = dv->d[i].link;
            if (dv->d[i].flags & LT_DF_WANT && r->phase < LT_PH_CLOSE)
                lt_queue_push(dv, i);
            else
                dv->d[i].state = LT_D_IDLE;
            i = next;
        }
        dv->wheel_pos = (dv->wheel_pos + 1) % LT_WHEEL;
        dv->wheel_ms += LT_WHEEL_MS;
    }
    while (dv->slots_used < dv->nslots && (i = lt_queue_pop(dv)) != LT_NIL) {
        if (!(dv->d[i].flags & LT_DF_WANT) || r->phase >= LT_PH_CLOSE) {
            dv->d[i].state = LT_D_IDLE;
            continue;
        }
        lt_dev_start(r, i);
    }
    now_ms = lt_dev_now_ms(r); /* attempts just started must not look older than now */
    if (now_ms - last_sweep_ms >= 1000) {
        last_sweep_ms = now_ms;
        lt_devs_sweep(r, now_ms);
    }
}

int lt_devs_init(lt_run *r)
{
    lt_devs *dv = &r->dv;
    uint32_t n = r->pool.n;

    memset(dv, 0, sizeof *dv);
    lt_dev_run = r;
    dv->n = n;
    dv->d = calloc(n ? n : 1, sizeof *dv->d);
    dv->nslots = r->o->concurrency;
    dv->slots = calloc(dv->nslots, sizeof *dv->slots);
    if (!dv->d || !dv->slots)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        lt_dev *d = &dv->d[i];
        d->link = d->msgs = d->slot = LT_NIL;
        d->src = (uint16_t)(r->nsrc ? i % r->nsrc : 0);
        d->server = (uint8_t)(i % r->nservers);
    }
    for (uint32_t s = 0; s < dv->nslots; s++) {
        dv->slots[s].dev = LT_NIL;
        dv->slots[s].next_free = s + 1 < dv->nslots ? s + 1 : LT_NIL;
    }
    dv->slot_free = 0;
    dv->q_head = dv->q_tail = LT_NIL;
    for (unsigned w = 0; w < LT_WHEEL; w++)
        dv->wheel[w] = LT_NIL;
    dv->wheel_ms = lt_dev_now_ms(r);
    return 0;
}

void lt_devs_free(lt_run *r)
{
    lt_devs *dv = &r->dv;

    /* first every conn (their cancelled callbacks still find the devices' state), then the
     * ack state they may have touched */
    for (uint32_t i = 0; dv->d && i < dv->n; i++) {
        pc_conn *c = dv->d[i].conn;
        dv->d[i].conn = NULL;
        pc_conn_free(c);
    }
    for (uint32_t i = 0; dv->d && i < dv->n; i++)
        lt_recv_dev_free(r, i);
    if (dv->slots)
        for (uint32_t s = 0; s < dv->nslots; s++)
            sodium_memzero(&dv->slots[s].id, sizeof dv->slots[s].id);
    free(dv->d);
    free(dv->slots);
    dv->d = NULL;
    dv->slots = NULL;
}

uint32_t lt_devs_sockets(const lt_run *r)
{
    return r->dv.up + r->dv.connecting + r->dv.closing;
}

pc_conn *lt_dev_conn(const lt_run *r, uint32_t i)
{
    const lt_dev *d = &r->dv.d[i];
    return d->state == LT_D_UP ? d->conn : NULL;
}
