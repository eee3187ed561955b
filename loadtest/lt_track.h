/* lt_track.h: the message accounting of a run, by sequence number: which messages were
 * accepted and which delivered (two bitmaps), duplicates, latency histograms (all, live,
 * queued), the longest delivery stall, and the per-second timeline. Memory is two bits per
 * message sent plus fixed-size histograms. */
#ifndef LT_TRACK_H
#define LT_TRACK_H

#include <stdint.h>

#include "lt_hist.h"
#include "lt_stats.h"

#define LT_LOST_SAMPLES 16

typedef struct {
    uint64_t *acc, *del; /* bit per sequence number */
    uint64_t words;      /* allocated 64-bit words of each */
    uint64_t sent;       /* sequence numbers handed out: 0 .. sent-1 */
    uint64_t accepted, delivered, duplicates, dup_answers, resends;
    uint64_t delivered_unaccepted; /* delivered, answer not (yet) seen */
    uint64_t outstanding;          /* accepted, not delivered */
    uint64_t foreign;              /* envelopes not from this run (older runs, other tools) */
    uint64_t misrouted;            /* ours, but for another device */
    lt_reasons rejected, retried;
    lt_hist all, live, queued;
    uint64_t stall_since_us, stall_max_us, last_delivery_us, last_accept_us;
    lt_timeline tl;
    uint64_t t0_us;               /* second 0 of the timeline */
    int oom;
} lt_track;

/* t0_us: the run's start (CLOCK_MONOTONIC us). */
void lt_track_init(lt_track *t, uint64_t t0_us);
void lt_track_free(lt_track *t);
/* A new message: its sequence number. */
uint64_t lt_track_sent(lt_track *t, uint64_t now_us);
/* The server accepted seq (counted once however often it is answered). */
void lt_track_accepted(lt_track *t, uint64_t seq, uint64_t now_us);
/* seq arrived; queued: at its recipient through the queue rather than a live push. Returns 1
 * when it had arrived before (a duplicate), else 0. */
int lt_track_delivered(lt_track *t, uint64_t seq, uint64_t sent_us, int queued,
                       uint64_t now_us);
/* Another connected device this second (for the timeline's "up"). */
void lt_track_up(lt_track *t, uint32_t up, uint64_t now_us);
/* Accepted but never delivered; fills up to LT_LOST_SAMPLES sequence numbers. */
uint64_t lt_track_lost(const lt_track *t, uint64_t *samples, unsigned *nsamples);
/* Ends the open stall at now (call once when the run ends). */
void lt_track_finish(lt_track *t, uint64_t now_us);

#endif
