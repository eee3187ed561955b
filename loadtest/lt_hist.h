/* lt_hist.h: a fixed-memory log-linear latency histogram in microseconds: exact below 64 us,
 * then 64 buckets per power of two (at most 1.6% error) up to 2^40 us (12 days). */
#ifndef LT_HIST_H
#define LT_HIST_H

#include <stdint.h>

#define LT_HIST_SUB_BITS 6
#define LT_HIST_SUB (1u << LT_HIST_SUB_BITS)
#define LT_HIST_MAX_EXP 40
#define LT_HIST_BUCKETS ((LT_HIST_MAX_EXP - LT_HIST_SUB_BITS + 2) * LT_HIST_SUB)

typedef struct {
    uint64_t count, sum, max;
    uint64_t b[LT_HIST_BUCKETS];
} lt_hist;

void lt_hist_add(lt_hist *h, uint64_t us);
/* The value below which p percent of the samples lie (the bucket's midpoint, capped at max);
 * 0 when empty. */
uint64_t lt_hist_pct(const lt_hist *h, double p);

#endif
