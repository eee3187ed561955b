/* gw_outq.h: a connection's outbound FIFO of packed frames, counted in payload bytes so the
 * connection can be cut off when a client stops reading. Each item carries LWS_PRE bytes of
 * headroom in front of its payload, as lws_write needs. Pure data structure (no lws calls). */
#ifndef PARLEY_GW_OUTQ_H
#define PARLEY_GW_OUTQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_out {
    struct gw_out *next;
    size_t len;           /* payload bytes */
    unsigned char buf[];  /* LWS_PRE headroom, then len payload bytes */
} gw_out;

typedef struct {
    gw_out *head, *tail;
    size_t bytes; /* sum of len over the queue */
    size_t count;
} gw_outq;

/* Allocates an item with room for len payload bytes (caller owns it until pushed). NULL on OOM. */
gw_out *gw_out_new(size_t len);
unsigned char *gw_out_payload(gw_out *o);
void gw_out_free(gw_out *o);

void gw_outq_init(gw_outq *q);
/* Appends o (the queue takes it) unless the queue would then hold more than max bytes: then
 * returns -1 and o is untouched (still the caller's). */
int gw_outq_push(gw_outq *q, gw_out *o, size_t max);
/* The head item, or NULL; stays queued. */
gw_out *gw_outq_peek(const gw_outq *q);
/* Removes and returns the head (caller frees), or NULL. */
gw_out *gw_outq_pop(gw_outq *q);
/* Frees every queued item. */
void gw_outq_clear(gw_outq *q);

#endif
