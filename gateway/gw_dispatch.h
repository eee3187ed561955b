/* gw_dispatch.h: what happens with one complete inbound WebSocket message: decoding, the bad
 * frame counter, the auth gate and routing to the request handlers (Ping is answered here). */
#ifndef PARLEY_GW_DISPATCH_H
#define PARLEY_GW_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

struct gw;
struct gw_conn;

/* binary: the message came as a binary (not text) WebSocket message. */
void gw_dispatch_message(struct gw *g, struct gw_conn *c, const uint8_t *buf, size_t len,
                         int binary);
/* An inbound message exceeded PARLEY_MAX_FRAME_BYTES: FRAME_TOO_LARGE, close 1009. */
void gw_dispatch_too_large(struct gw *g, struct gw_conn *c);

#endif
