/* gw_rx.h: reassembly of one inbound WebSocket message from the pieces libwebsockets hands
 * over (at most PARLEY_GW_RX_BUFFER bytes each; a message may also span several WebSocket
 * frames). A message that arrives in one piece is used where it lies, without a copy; only a
 * message in several pieces gets a buffer, sized from the frame length lws announces, and the
 * buffer is freed when the message is complete, so an idle connection holds none. Pure (no lws
 * calls): the caller passes what lws says about each piece. */
#ifndef PARLEY_GW_RX_H
#define PARLEY_GW_RX_H

#include <stddef.h>
#include <stdint.h>

/* A message in progress (owned by its connection, NULL between messages). */
typedef struct gw_rx {
    size_t len;      /* message bytes so far (text: counted, not kept) */
    size_t cap;      /* room in data */
    uint8_t binary;  /* of the message's first frame */
    uint8_t skip;    /* over the limit: the rest is discarded */
    unsigned char data[];
} gw_rx;

typedef enum {
    GW_RX_MORE = 0,  /* the message continues */
    GW_RX_SKIP,      /* the message just went over max: its rest is discarded (once per message) */
    GW_RX_MESSAGE,   /* a whole message: see gw_rx_piece */
    GW_RX_TOO_LARGE, /* a message over max ended */
    GW_RX_NOMEM,     /* out of memory: the message is lost (*rx freed) */
} gw_rx_status;

/* One piece of a message: in/len its bytes, binary whether the message is binary (read on the
 * first piece), final whether it is the message's last piece, remaining what is left of the
 * current WebSocket frame (a sizing hint). On GW_RX_MESSAGE, *msg and *msg_len name the message
 * (in `in` itself when it came whole, else in (*rx)->data) and *msg_binary its kind; they stay
 * valid until gw_rx_end. After GW_RX_MESSAGE and GW_RX_TOO_LARGE call gw_rx_end. */
gw_rx_status gw_rx_piece(gw_rx **rx, const uint8_t *in, size_t len, int binary, int final,
                         size_t remaining, size_t max, const uint8_t **msg, size_t *msg_len,
                         int *msg_binary);
/* Frees the message buffer (NULL after). */
void gw_rx_end(gw_rx **rx);

#endif
