/* gw_proc.h: the gateway process's own resources: the descriptor limit (RLIMIT_NOFILE, raised
 * at start so that max_connections sockets fit), the resident memory it reports in /metrics,
 * and giving freed heap back to the kernel after many connections went away at once (glibc
 * keeps it otherwise, and the RSS of a gateway would stay at its highest for ever). */
#ifndef PARLEY_GW_PROC_H
#define PARLEY_GW_PROC_H

#include <stddef.h>
#include <stdint.h>

struct gw;

typedef struct {
    uint64_t next_sample_us;
    size_t conns_high;     /* most connections since the last trim */
    uint64_t last_trim_us;
    int trim_again;        /* one more trim later: closing connections free memory after it */
} gw_proc;

/* What to ask for (pure): the hard limit (raised to need when below it; the kernel refuses
 * without CAP_SYS_RESOURCE) and the soft limit (up to the hard one, at most cap, never lowered).
 * UINT64_MAX stands for RLIM_INFINITY. */
void gw_proc_nofile_plan(uint64_t soft, uint64_t hard, uint64_t need, uint64_t cap,
                         uint64_t *want_hard, uint64_t *want_soft);
/* Raises RLIMIT_NOFILE as planned for need descriptors and logs the outcome (a warning when
 * the result is below need). Returns the soft limit in force. Call before the lws context is
 * created: it sizes its descriptor tables from the limit. */
uint64_t gw_proc_raise_nofile(uint64_t need);
/* Resident set size of this process in bytes; 0 when unknown. */
uint64_t gw_proc_rss_bytes(void);
/* Whether to trim now (pure): connections fell well below their high mark, or a follow-up trim
 * is pending (again), and the last trim is long enough ago. */
int gw_proc_trim_due(size_t high, size_t now, int again, uint64_t since_last_trim_us);
/* Samples the RSS into /metrics once a second and trims the heap when due. */
void gw_proc_tick(struct gw *g, uint64_t now_us);

#endif
