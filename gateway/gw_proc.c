#include "gw_proc.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gw.h"
#include "log.h"

#define GW_PROC_SAMPLE_US 1000000
/* trim when at least this many connections, and an eighth of the high mark, went away */
#define GW_PROC_TRIM_MIN_DROP 1000
#define GW_PROC_TRIM_EVERY_US (10 * 1000000ULL)

static uint64_t gw_proc_rlim(rlim_t v)
{
    return v == RLIM_INFINITY ? UINT64_MAX : (uint64_t)v;
}

void gw_proc_nofile_plan(uint64_t soft, uint64_t hard, uint64_t need, uint64_t cap,
                         uint64_t *want_hard, uint64_t *want_soft)
{
    *want_hard = hard < need ? need : hard;
    uint64_t top = *want_hard < cap ? *want_hard : cap;
    *want_soft = soft > top ? soft : top;
}

uint64_t gw_proc_raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        plog_warn("fd_limit_unknown", "error=\"%s\"", strerror(errno));
        return 0;
    }
    uint64_t soft = gw_proc_rlim(rl.rlim_cur), hard = gw_proc_rlim(rl.rlim_max);
    uint64_t want_hard, want_soft;
    gw_proc_nofile_plan(soft, hard, need, PARLEY_GW_NOFILE_MAX, &want_hard, &want_soft);
    const char *hard_note = "";
    if (want_hard > hard) {
        struct rlimit up = {rl.rlim_cur, (rlim_t)want_hard};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            hard = want_hard;
        else
            hard_note = " (raising the hard limit needs CAP_SYS_RESOURCE, or LimitNOFILE=)";
    }
    /* the soft limit goes as far as the hard limit we ended up with allows */
    gw_proc_nofile_plan(soft, hard, 0, PARLEY_GW_NOFILE_MAX, &want_hard, &want_soft);
    if (want_soft > soft) {
        struct rlimit up = {(rlim_t)want_soft, hard == UINT64_MAX ? RLIM_INFINITY : (rlim_t)hard};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            soft = want_soft;
        else
            plog_warn("fd_limit_raise_failed", "soft=%llu error=\"%s\"",
                      (unsigned long long)want_soft, strerror(errno));
    }
    if (soft < need)
        plog_warn("fd_limit_low",
                  "soft=%llu hard=%llu needed=%llu msg=\"max_connections is lowered to fit%s\"",
                  (unsigned long long)soft, (unsigned long long)hard, (unsigned long long)need,
                  hard_note);
    else
        plog_info("fd_limit", "soft=%llu hard=%llu needed=%llu", (unsigned long long)soft,
                  (unsigned long long)hard, (unsigned long long)need);
    return soft;
}

uint64_t gw_proc_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? resident * (uint64_t)page : 0;
}

int gw_proc_trim_due(size_t high, size_t now, int again, uint64_t since_last_trim_us)
{
    size_t drop = high / 8 > GW_PROC_TRIM_MIN_DROP ? high / 8 : GW_PROC_TRIM_MIN_DROP;
    return (again || high >= now + drop) && since_last_trim_us >= GW_PROC_TRIM_EVERY_US;
}

void gw_proc_tick(gw *g, uint64_t now_us)
{
    gw_proc *p = &g->proc;
    if (g->conns.count > p->conns_high)
        p->conns_high = g->conns.count;
    if (now_us < p->next_sample_us)
        return;
    p->next_sample_us = now_us + GW_PROC_SAMPLE_US;
    uint64_t rss = gw_proc_rss_bytes();
    if (gw_proc_trim_due(p->conns_high, g->conns.count, p->trim_again,
                         now_us - p->last_trim_us)) {
        /* connections that are still closing free memory after this trim: a trim for a drop
         * is followed by one more (which is followed by none) */
        p->trim_again = !p->trim_again;
        /* the memory of the connections that went away is free but still mapped */
        malloc_trim(0);
        uint64_t after = gw_proc_rss_bytes();
        pmet_inc(g->m.heap_trims, 1);
        plog_info("heap_trimmed", "connections=%zu high=%zu rss_before=%llu rss_after=%llu",
                  g->conns.count, p->conns_high, (unsigned long long)rss,
                  (unsigned long long)after);
        rss = after;
        p->conns_high = g->conns.count;
        p->last_trim_us = now_us;
    }
    pmet_set(g->m.rss_bytes, (double)rss);
}
