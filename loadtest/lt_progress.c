#include "lt_progress.h"

#include <stdio.h>

#include "clock.h"
#include "lt_msg.h"

static const char *lt_phase_name(lt_phase p)
{
    static const char *names[] = { "register", "connect", "run", "drain", "settle", "close",
                                   "done" };
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

void lt_progress_register(const lt_run *r, uint32_t want)
{
    static uint64_t last_us, last_n;
    uint64_t now = pclock_mono_us();
    double dt;

    if (now - last_us < 1000000)
        return;
    dt = last_us ? (double)(now - last_us) / 1e6 : 1;
    fprintf(stderr, "[%6.1fs] register  %u/%u devices in the pool (%.0f/s)\n",
            (double)lt_now_us(r) / 1e6, r->pool.n, want, (double)(r->pool.n - last_n) / dt);
    last_us = now;
    last_n = r->pool.n;
}

void lt_progress_run(const lt_run *r)
{
    static uint64_t last_us, last_sent, last_acc, last_del, last_att;
    uint64_t now = pclock_mono_us();
    double dt = last_us ? (double)(now - last_us) / 1e6 : 1;
    const lt_track *t = &r->tr;

    fprintf(stderr,
            "[%6.1fs] %-8s up %u/%u (+%.0f attempts/s)  sent %.0f/s  acc %.0f/s  del %.0f/s  "
            "outstanding %llu  inflight %u  p99 live %.1f ms  fail %llu drop %llu rej %llu "
            "retry %llu\n",
            (double)lt_now_us(r) / 1e6, lt_phase_name(r->phase), r->dv.up, r->dv.n,
            (double)(r->dv.attempts - last_att) / dt, (double)(t->sent - last_sent) / dt,
            (double)(t->accepted - last_acc) / dt, (double)(t->delivered - last_del) / dt,
            (unsigned long long)t->outstanding, lt_msgs_live(r),
            (double)lt_hist_pct(&t->live, 99) / 1000.0, (unsigned long long)r->dv.fail.total,
            (unsigned long long)r->dv.drops.total, (unsigned long long)t->rejected.total,
            (unsigned long long)t->retried.total);
    last_us = now;
    last_sent = t->sent;
    last_acc = t->accepted;
    last_del = t->delivered;
    last_att = r->dv.attempts;
}
