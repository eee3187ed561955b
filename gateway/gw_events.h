/* gw_events.h: the reader of this gateway's delivery stream parley:gw:{gateway_id} (XREAD BLOCK
 * on its own Redis connection): fanout replies are forwarded to their connection, pushes go to
 * the (account, device) connection (held while it drains), kicks close replaced connections,
 * prekey-low notices become PrekeysLow pushes (gw_prekeys_low.h). Also the writer of the small
 * events this gateway sends to another gateway's delivery stream. */
#ifndef PARLEY_GW_EVENTS_H
#define PARLEY_GW_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "gw_proto.h"

struct gw;
struct predis;

typedef struct {
    char last_id[48]; /* stream id after which the next XREAD reads; "" until known */
    unsigned gen;     /* bumped on every (re)connect; stale callbacks stop their chain */
    int stopped;
    uv_timer_t retry; /* restarts the chain after a Redis error reply */
    int retry_init;
} gw_events;

int gw_events_init(struct gw *g);
/* on_up callback of the blocking Redis connection: (re)starts the read chain. */
void gw_events_on_up(struct predis *r, void *ud);
/* Ends the chain and closes the retry timer (handles close on the loop). */
void gw_events_stop(struct gw *g);

/* Queues ev (a kick or a prekey-low notice: at most GW_EVENTS_SEND_MAX bytes packed) on the
 * delivery stream of gateway gateway_id. Returns 0 when it went to Redis; an error reply comes
 * later and is logged with what (a string literal) naming the event. */
#define GW_EVENTS_SEND_MAX 256
int gw_events_send_to(struct gw *g, const char *gateway_id, const Parley__V1__InternalEvent *ev,
                      const char *what);

/* Applies one decoded event (exposed for tests). */
void gw_events_apply(struct gw *g, const Parley__V1__InternalEvent *ev);

#endif
