/* gw_reaper.h: the backstop of connections that should go away: one still open
 * PARLEY_CLOSE_BACKSTOP_S after gw_conn_close (a peer that never reads its close frame), or
 * after it began an oversized message that never ends, is cut. The entries form a FIFO (one
 * fixed delay keeps it ordered by deadline), so adding is O(1); lws 4.1's per-connection
 * timeouts share one sorted list whose insert walks it, which closing many connections at once
 * (a drain) would turn quadratic. */
#ifndef PARLEY_GW_REAPER_H
#define PARLEY_GW_REAPER_H

#include <stddef.h>
#include <stdint.h>

struct gw;
struct gw_conn;

typedef struct gw_reap {
    struct gw_reap *next;
    uint64_t conn_id;
    uint64_t deadline_us;
    int oversized; /* for a message being discarded, not a close */
} gw_reap;

typedef struct {
    gw_reap *head, *tail;
    size_t count;
} gw_reaper;

/* c is closing (gw_conn_close) / discarding an oversized message. */
void gw_reaper_add(struct gw *g, struct gw_conn *c);
void gw_reaper_add_oversized(struct gw *g, struct gw_conn *c);
/* Cuts the connections whose deadline passed. Called from the gateway tick, outside lws
 * callbacks. */
void gw_reaper_expire(struct gw *g, uint64_t now_us);
/* Frees every entry (process exit). */
void gw_reaper_free(gw_reaper *r);

#endif
