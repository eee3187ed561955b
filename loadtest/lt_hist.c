#include "lt_hist.h"

static unsigned lt_hist_idx(uint64_t v)
{
    unsigned e;

    if (v < LT_HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    if (e > LT_HIST_MAX_EXP)
        return LT_HIST_BUCKETS - 1;
    return (e - LT_HIST_SUB_BITS + 1) * LT_HIST_SUB +
           (unsigned)((v >> (e - LT_HIST_SUB_BITS)) & (LT_HIST_SUB - 1));
}

/* lowest value of bucket i, and its width */
static void lt_hist_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    unsigned e;

    if (i < LT_HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    e = i / LT_HIST_SUB + LT_HIST_SUB_BITS - 1;
    *width = 1ull << (e - LT_HIST_SUB_BITS);
    *lo = (1ull << e) + (uint64_t)(i % LT_HIST_SUB) * *width;
}

void lt_hist_add(lt_hist *h, uint64_t us)
{
    h->b[lt_hist_idx(us)]++;
    h->count++;
    h->sum += us;
    if (us > h->max)
        h->max = us;
}

uint64_t lt_hist_pct(const lt_hist *h, double p)
{
    uint64_t want, seen = 0;

    if (!h->count)
        return 0;
    want = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (want < 1)
        want = 1;
    if (want > h->count)
        want = h->count;
    for (unsigned i = 0; i < LT_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t lo, w, v;
            lt_hist_range(i, &lo, &w);
            v = lo + w / 2;
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
