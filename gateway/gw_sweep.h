/* gw_sweep.h: the periodic work over every connection, spread over the gateway tick instead of
 * done in one burst: each connection is visited once per PKEYS_PRESENCE_REFRESH_S, a slice of
 * the connection table per tick, to refresh its presence key and keep the socket alive (a
 * WebSocket ping after PARLEY_GW_KEEPALIVE_IDLE_S without a frame from the client, a close
 * after PARLEY_GW_KEEPALIVE_HANGUP_S). After a Redis reconnect a second cursor re-claims
 * presence and re-drains every connection, at most PARLEY_GW_RECLAIM_PER_S a second, so that
 * neither Redis nor PostgreSQL get one request per connection at once. */
#ifndef PARLEY_GW_SWEEP_H
#define PARLEY_GW_SWEEP_H

#include <stddef.h>
#include <stdint.h>

struct gw;

typedef struct {
    size_t cursor;       /* next bucket of the refresh round */
    uint64_t acc;        /* bucket-microseconds not yet turned into whole buckets */
    uint64_t last_us;    /* of the previous tick, 0 before the first */
    int reclaiming;      /* a re-claim round runs */
    size_t reclaim_cursor;
    uint64_t reclaim_acc; /* connection-microseconds of re-claim budget */
} gw_sweep;

/* Does the share of the work due since the previous call. */
void gw_sweep_tick(struct gw *g, uint64_t now_us);
/* Starts (or restarts) a re-claim round over every connection. */
void gw_sweep_reclaim(struct gw *g);

/* Buckets of an n-bucket table a refresh round of period_us covers in dt_us, with *acc carrying
 * the remainder between calls (pure). */
size_t gw_sweep_share(size_t n, uint64_t dt_us, uint64_t period_us, uint64_t *acc);

#endif
