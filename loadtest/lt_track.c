#include "lt_track.h"

#include <stdlib.h>
#include <string.h>

void lt_track_init(lt_track *t, uint64_t t0_us)
{
    memset(t, 0, sizeof *t);
    t->t0_us = t0_us;
}

void lt_track_free(lt_track *t)
{
    free(t->acc);
    free(t->del);
    lt_timeline_free(&t->tl);
    t->acc = t->del = NULL;
}

static lt_second *lt_track_sec(lt_track *t, uint64_t now_us)
{
    lt_second *s = lt_timeline_at(&t->tl, (size_t)((now_us - t->t0_us) / 1000000u));
    if (!s)
        t->oom = 1;
    return s;
}

/* Makes room for bit seq in both bitmaps. */
static int lt_track_grow(lt_track *t, uint64_t seq)
{
    uint64_t need = seq / 64 + 1, words = t->words ? t->words : 1024;
    uint64_t *a, *d;

    if (need <= t->words)
        return 0;
    while (words < need)
        words *= 2;
    a = realloc(t->acc, words * 8);
    if (!a) {
        t->oom = 1;
        return -1;
    }
    t->acc = a;
    d = realloc(t->del, words * 8);
    if (!d) {
        t->oom = 1;
        return -1;
    }
    t->del = d;
    memset(t->acc + t->words, 0, (words - t->words) * 8);
    memset(t->del + t->words, 0, (words - t->words) * 8);
    t->words = words;
    return 0;
}

static int lt_bit(const uint64_t *m, uint64_t i)
{
    return (int)(m[i / 64] >> (i % 64) & 1);
}

static void lt_set(uint64_t *m, uint64_t i)
{
    m[i / 64] |= 1ull << (i % 64);
}

uint64_t lt_track_sent(lt_track *t, uint64_t now_us)
{
    lt_second *s = lt_track_sec(t, now_us);

    lt_track_grow(t, t->sent);
    if (s)
        s->sent++;
    return t->sent++;
}

/* Nothing was delivered since stall_since while messages were outstanding: that gap is a
 * stall, possibly the longest. */
static void lt_track_stall_end(lt_track *t, uint64_t now_us)
{
    if (t->outstanding && now_us - t->stall_since_us > t->stall_max_us)
        t->stall_max_us = now_us - t->stall_since_us;
}

void lt_track_accepted(lt_track *t, uint64_t seq, uint64_t now_us)
{
    lt_second *s;

    if (seq >= t->sent || seq / 64 >= t->words || lt_bit(t->acc, seq))
        return;
    lt_set(t->acc, seq);
    t->accepted++;
    t->last_accept_us = now_us;
    if ((s = lt_track_sec(t, now_us)))
        s->accepted++;
    if (lt_bit(t->del, seq)) {
        t->delivered_unaccepted--;
        return;
    }
    if (!t->outstanding++)
        t->stall_since_us = now_us;
}

int lt_track_delivered(lt_track *t, uint64_t seq, uint64_t sent_us, int queued, uint64_t now_us)
{
    uint64_t lat = now_us > sent_us ? now_us - sent_us : 0;
    lt_second *s;

    if (seq >= t->sent || seq / 64 >= t->words) {
        t->misrouted++;
        return 0;
    }
    if (lt_bit(t->del, seq)) {
        t->duplicates++;
        return 1;
    }
    lt_set(t->del, seq);
    t->delivered++;
    t->last_delivery_us = now_us;
    if ((s = lt_track_sec(t, now_us)))
        s->delivered++;
    lt_hist_add(&t->all, lat);
    lt_hist_add(queued ? &t->queued : &t->live, lat);
    lt_track_stall_end(t, now_us);
    t->stall_since_us = now_us;
    if (lt_bit(t->acc, seq))
        t->outstanding--;
    else
        t->delivered_unaccepted++;
    return 0;
}

void lt_track_up(lt_track *t, uint32_t up, uint64_t now_us)
{
    lt_second *s = lt_track_sec(t, now_us);
    if (s && up > s->up)
        s->up = up;
}

uint64_t lt_track_lost(const lt_track *t, uint64_t *samples, unsigned *nsamples)
{
    uint64_t lost = 0;

    *nsamples = 0;
    for (uint64_t w = 0; w < t->words && w * 64 < t->sent; w++) {
        uint64_t m = t->acc[w] & ~t->del[w];
        while (m) {
            int b = __builtin_ctzll(m);
            if (*nsamples < LT_LOST_SAMPLES)
                samples[(*nsamples)++] = w * 64 + (uint64_t)b;
            lost++;
            m &= m - 1;
        }
    }
    return lost;
}

void lt_track_finish(lt_track *t, uint64_t now_us)
{
    lt_track_stall_end(t, now_us);
}
