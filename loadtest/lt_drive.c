#include "lt_drive.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_dev.h"
#include "lt_msg.h"
#include "lt_proc.h"
#include "lt_progress.h"
#include "lt_rand.h"
#include "lt_recv.h"

/* chat: one device's time offline, in ms after the start of sending */
typedef struct {
    uint32_t dev;
    uint32_t off_ms;
} lt_offline;

/* What the phases need beyond lt_run; one run per process. */
static struct {
    uv_timer_t tick, pace, progress;
    int handles;            /* open handles above, closed at the end */
    uint32_t wanted;        /* devices that should be up in CONNECT */
    uint32_t cursor;        /* round-robin over senders */
    lt_offline *off;        /* chat: sorted by off_ms */
    uint32_t noff, off_next, on_next;
    uint32_t off_ms_len;    /* offline_seconds in ms */
} lt_drv;

static uint64_t lt_phase_elapsed_us(const lt_run *r)
{
    return pclock_mono_us() - r->phase_us;
}

static void lt_phase_set(lt_run *r, lt_phase p)
{
    r->phase = p;
    r->phase_us = pclock_mono_us();
}

/* ---- /proc readings --------------------------------------------------------------------- */

static void lt_read_gateways(lt_run *r, int after)
{
    lt_meas *m = &r->m;

    for (unsigned k = 0; k < r->o->ngw_pids; k++) {
        int pid = r->o->gw_pids[k];
        if (after) {
            m->gw_rss_after_kb[k] = lt_proc_rss_kb(pid);
            m->gw_conns[k] = 0;
        } else {
            m->gw_rss_before_kb[k] = lt_proc_rss_kb(pid);
        }
    }
    if (!after)
        return;
    for (uint32_t i = 0; i < r->dv.n; i++)
        if (r->dv.d[i].state == LT_D_UP && r->dv.d[i].server < r->o->ngw_pids)
            m->gw_conns[r->dv.d[i].server]++;
    m->gw_after_done = 1;
}

static void lt_read_cpu(lt_run *r, int end)
{
    for (unsigned k = 0; k < r->o->ngw_pids; k++) {
        double c = lt_proc_cpu_s(r->o->gw_pids[k]);
        if (end)
            r->m.gw_cpu_end[k] = c;
        else
            r->m.gw_cpu_start[k] = c;
    }
    if (end)
        r->m.self_cpu_end = lt_proc_cpu_s(0);
    else
        r->m.self_cpu_start = lt_proc_cpu_s(0);
}

/* ---- who sends to whom ------------------------------------------------------------------- */

/* chat: groups of --group consecutive devices (the last one takes the remainder); each member
 * sends to the others of its group in turn */
static uint32_t lt_chat_peer(lt_run *r, uint32_t i)
{
    uint32_t n = r->dv.n, k = r->o->group, ngroups = n / k ? n / k : 1;
    uint32_t g = i / k < ngroups ? i / k : ngroups - 1;
    uint32_t start = g * k, size = g == ngroups - 1 ? n - start : k;
    lt_dev *d = &r->dv.d[i];
    uint32_t off = 1 + d->rr % (size - 1);

    d->rr = (uint8_t)(off % (size - 1)); /* size <= 2 * LT_GROUP_MAX - 1: fits */
    return start + (i - start + off) % size;
}

/* The next sender in turn that is up and has room, and its recipient; 0 when none is ready. */
static int lt_pick(lt_run *r, uint32_t *sender, uint32_t *recipient)
{
    int burst = r->o->scenario == LT_SC_BURST;
    uint32_t first = burst ? 1 : 0, count = burst ? r->o->senders : r->dv.n;
    uint32_t tries = count < 4096 ? count : 4096;

    for (uint32_t t = 0; t < tries; t++) {
        uint32_t i = first + lt_drv.cursor % count;
        lt_dev *d = &r->dv.d[i];
        lt_drv.cursor = (lt_drv.cursor + 1) % count;
        if (d->state != LT_D_UP || d->inflight >= LT_SENDER_INFLIGHT_MAX)
            continue;
        *sender = i;
        *recipient = burst ? 0 : lt_chat_peer(r, i);
        return 1;
    }
    return 0;
}

/* Every LT_PACE_MS: the sends due by now at --rate (a backlog is caught up at most a tenth of
 * a second's worth at a time). */
static void lt_pace_cb(uv_timer_t *t)
{
    lt_run *r = t->data;
    double el, rate = r->o->rate;
    uint64_t target, due, cap;

    if (!r->sending)
        return;
    el = (double)(pclock_mono_us() - r->send_start_us) / 1e6;
    target = (uint64_t)(el * rate);
    if (r->o->scenario == LT_SC_BURST && target > r->o->messages)
        target = r->o->messages;
    if (target <= r->tr.sent)
        return;
    due = target - r->tr.sent;
    cap = (uint64_t)(rate / 10) + 1;
    if (due > cap)
        due = cap;
    for (uint64_t k = 0; k < due; k++) {
        uint32_t s, rc;
        if (!lt_pick(r, &s, &rc))
            break;
        if (lt_msg_new(r, s, rc) < 0) {
            lt_fatal(r, "out of memory for messages in flight");
            break;
        }
    }
}

/* ---- chat: devices going offline ---------------------------------------------------------- */

static int lt_off_cmp(const void *a, const void *b)
{
    const lt_offline *x = a, *y = b;
    return x->off_ms < y->off_ms ? -1 : x->off_ms > y->off_ms;
}

static int lt_offline_plan(lt_run *r)
{
    uint32_t n = r->dv.n, k = (uint32_t)llround(r->o->offline_fraction * n), *idx;
    double span = r->o->seconds - r->o->offline_seconds;

    lt_drv.off_ms_len = (uint32_t)(r->o->offline_seconds * 1000);
    if (!k)
        return 0;
    idx = malloc((size_t)n * sizeof *idx);
    lt_drv.off = malloc((size_t)k * sizeof *lt_drv.off);
    if (!idx || !lt_drv.off) {
        free(idx);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++)
        idx[i] = i;
    for (uint32_t i = 0; i < k; i++) { /* the first k of a Fisher-Yates shuffle */
        uint32_t j = i + lt_rand_below(n - i), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        lt_drv.off[i].dev = idx[i];
        lt_drv.off[i].off_ms = (uint32_t)((span > 0 ? lt_rand01() * span : 0) * 1000);
    }
    free(idx);
    qsort(lt_drv.off, k, sizeof *lt_drv.off, lt_off_cmp);
    lt_drv.noff = k;
    return 0;
}

static void lt_offline_step(lt_run *r)
{
    uint64_t el_ms = (pclock_mono_us() - r->send_start_us) / 1000;

    while (lt_drv.off_next < lt_drv.noff && lt_drv.off[lt_drv.off_next].off_ms <= el_ms)
        lt_dev_want(r, lt_drv.off[lt_drv.off_next++].dev, 0);
    /* the same order: every device stays offline equally long */
    while (lt_drv.on_next < lt_drv.off_next &&
           lt_drv.off[lt_drv.on_next].off_ms + (uint64_t)lt_drv.off_ms_len <= el_ms)
        lt_dev_want(r, lt_drv.off[lt_drv.on_next++].dev, 1);
}

/* ---- phases ----------------------------------------------------------------------------- */

static void lt_start_sending(lt_run *r)
{
    r->sending = 1;
    r->send_start_us = pclock_mono_us();
    uv_timer_start(&lt_drv.pace, lt_pace_cb, LT_PACE_MS, LT_PACE_MS);
}

static void lt_stop_sending(lt_run *r)
{
    if (!r->sending)
        return;
    r->sending = 0;
    r->send_end_us = pclock_mono_us();
    uv_timer_stop(&lt_drv.pace);
}

static void lt_enter_settle(lt_run *r)
{
    lt_stop_sending(r);
    for (uint32_t i = 0; i < r->dv.n; i++)
        lt_dev_want(r, i, 1);
    lt_drv.off_next = lt_drv.on_next = lt_drv.noff;
    lt_phase_set(r, LT_PH_SETTLE);
}

static void lt_enter_close(lt_run *r)
{
    uint64_t now = pclock_mono_us();

    lt_stop_sending(r);
    if (r->phase == LT_PH_CONNECT || r->phase == LT_PH_RUN || r->phase == LT_PH_DRAIN ||
        r->phase == LT_PH_SETTLE)
        r->m.t_run_end_us = now;
    lt_read_cpu(r, 1);
    lt_track_finish(&r->tr, now);
    lt_phase_set(r, LT_PH_CLOSE);
    for (uint32_t i = 0; i < r->dv.n; i++)
        lt_dev_want(r, i, 0);
}

static void lt_close_handles(lt_run *r);

static void lt_step(lt_run *r)
{
    uint64_t now = pclock_mono_us(), el = lt_phase_elapsed_us(r);
    int all_answered = !lt_msgs_live(r) && !r->tr.outstanding;

    if (r->phase < LT_PH_CLOSE && (r->exit_code || r->interrupted || now >= r->deadline_us)) {
        if (now >= r->deadline_us && !r->exit_code && !r->interrupted)
            r->deadline_hit = 1;
        lt_enter_close(r);
    }
    switch (r->phase) {
    case LT_PH_CONNECT:
        if (r->dv.up >= lt_drv.wanted || el >= (uint64_t)(r->o->connect_timeout * 1e6)) {
            if (!r->dv.up) {
                const lt_reason *why = r->dv.fail.n ? &r->dv.fail.r[0] : NULL;
                lt_fatal(r, "no device could connect to %s within %.0f s%s%s%s%s",
                         r->servers[0].url, r->o->connect_timeout, why ? ": " : "",
                         why ? why->name : "", why && why->example[0] ? ": " : "",
                         why ? why->example : "");
                lt_enter_close(r);
                break;
            }
            r->dv.t_all_up_us = r->dv.up >= lt_drv.wanted ? now : 0;
            r->m.self_rss_up_kb = lt_proc_rss_kb(0);
            if (r->o->scenario != LT_SC_CONNECT)
                lt_read_gateways(r, 1);
            lt_phase_set(r, LT_PH_RUN);
            if (r->o->scenario != LT_SC_CONNECT)
                lt_start_sending(r);
        }
        break;
    case LT_PH_RUN:
        if (r->o->scenario == LT_SC_CONNECT) {
            if (el >= (uint64_t)(r->o->seconds * 1e6)) {
                lt_read_gateways(r, 1);
                lt_enter_close(r);
            }
        } else if (r->o->scenario == LT_SC_CHAT) {
            lt_offline_step(r);
            if (el >= (uint64_t)(r->o->seconds * 1e6))
                lt_enter_settle(r);
        } else if (r->tr.sent >= r->o->messages) {
            lt_stop_sending(r);
            if (!lt_msgs_live(r)) {
                r->burst_drain_start_us = now;
                lt_phase_set(r, LT_PH_DRAIN);
                lt_dev_want(r, 0, 1);
            }
        }
        break;
    case LT_PH_DRAIN:
        if (all_answered && r->burst_recipient_up) {
            r->burst_drain_end_us = r->tr.last_delivery_us > r->burst_drain_start_us
                                        ? r->tr.last_delivery_us
                                        : now;
            lt_enter_settle(r);
        } else if (el >= (uint64_t)(r->o->grace * 1e6)) {
            lt_enter_settle(r);
        }
        break;
    case LT_PH_SETTLE:
        if ((all_answered && lt_acks_idle(r)) || el >= (uint64_t)(r->o->grace * 1e6))
            lt_enter_close(r);
        break;
    case LT_PH_CLOSE:
        if (!lt_devs_sockets(r) || el >= LT_CLOSE_WAIT_S * 1000000ull) {
            lt_phase_set(r, LT_PH_DONE);
            lt_close_handles(r);
            uv_stop(r->loop);
        }
        break;
    default:
        break;
    }
}

static void lt_tick_cb(uv_timer_t *t)
{
    lt_run *r = t->data;

    lt_devs_tick(r);
    lt_msgs_tick(r);
    lt_acks_flush(r);
    lt_step(r);
}

static void lt_progress_cb(uv_timer_t *t)
{
    lt_run *r = t->data;

    lt_track_up(&r->tr, r->dv.up, pclock_mono_us());
    if (!r->o->quiet)
        lt_progress_run(r);
}

static void lt_handle_closed(uv_handle_t *h)
{
    (void)h;
    lt_drv.handles--;
}

static void lt_close_handles(lt_run *r)
{
    (void)r;
    uv_close((uv_handle_t *)&lt_drv.tick, lt_handle_closed);
    uv_close((uv_handle_t *)&lt_drv.pace, lt_handle_closed);
    uv_close((uv_handle_t *)&lt_drv.progress, lt_handle_closed);
    free(lt_drv.off);
    lt_drv.off = NULL;
}

void lt_drive_dev_up(lt_run *r, uint32_t i, const Parley__V1__AuthOk *ok)
{
    if (r->o->scenario == LT_SC_BURST && i == 0 && r->phase == LT_PH_DRAIN &&
        !r->burst_recipient_up) {
        r->burst_recipient_up = 1;
        r->burst_queued_at_auth = ok->queued;
    }
}

void lt_drive(lt_run *r)
{
    uint32_t first = r->o->scenario == LT_SC_BURST ? 1 : 0;
    double bound = r->o->connect_timeout + r->o->seconds + r->o->grace;

    memset(&lt_drv, 0, sizeof lt_drv);
    if (r->o->scenario == LT_SC_BURST)
        bound += r->o->grace; /* the drain has its own grace */
    r->deadline_us = pclock_mono_us() + (uint64_t)(bound * 1e6);
    if (r->o->scenario == LT_SC_CHAT && lt_offline_plan(r) < 0)
        lt_fatal(r, "out of memory for the offline plan");

    uv_timer_init(r->loop, &lt_drv.tick);
    uv_timer_init(r->loop, &lt_drv.pace);
    uv_timer_init(r->loop, &lt_drv.progress);
    lt_drv.handles = 3;
    lt_drv.tick.data = lt_drv.pace.data = lt_drv.progress.data = r;

    lt_read_gateways(r, 0);
    lt_read_cpu(r, 0);
    r->m.t_run_start_us = pclock_mono_us();
    lt_phase_set(r, LT_PH_CONNECT);
    for (uint32_t i = first; i < r->dv.n; i++)
        lt_dev_want(r, i, 1);
    lt_drv.wanted = r->dv.n - first;
    uv_timer_start(&lt_drv.tick, lt_tick_cb, LT_TICK_MS, LT_TICK_MS);
    uv_timer_start(&lt_drv.progress, lt_progress_cb, 1000, 1000);
    lt_tick_cb(&lt_drv.tick);
    uv_run(r->loop, UV_RUN_DEFAULT);
}
