#include "gw_outq.h"

#include "gw_proto.h"
#include <libwebsockets.h>
#include <stdlib.h>

gw_out *gw_out_new(size_t len)
{
    gw_out *o = malloc(sizeof *o + LWS_PRE + len);
    if (!o)
        return NULL;
    o->next = NULL;
    o->len = len;
    return o;
}

unsigned char *gw_out_payload(gw_out *o)
{
    return o->buf + LWS_PRE;
}

void gw_out_free(gw_out *o)
{
    free(o);
}

void gw_outq_init(gw_outq *q)
{
    q->head = q->tail = NULL;
    q->bytes = 0;
    q->count = 0;
}

int gw_outq_push(gw_outq *q, gw_out *o, size_t max)
{
    if (o->len > max || q->bytes > max - o->len)
        return -1;
    o->next = NULL;
    if (q->tail)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    q->bytes += o->len;
    q->count++;
    return 0;
}

gw_out *gw_outq_peek(const gw_outq *q)
{
    return q->head;
}

gw_out *gw_outq_pop(gw_outq *q)
{
    gw_out *o = q->head;
    if (!o)
        return NULL;
    q->head = o->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= o->len;
    q->count--;
    o->next = NULL;
    return o;
}

void gw_outq_clear(gw_outq *q)
{
    gw_out *o;
    while ((o = gw_outq_pop(q)))
        gw_out_free(o);
}
