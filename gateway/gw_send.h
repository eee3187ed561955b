/* gw_send.h: Send frames: bounds validation, XADD of an InternalSend to the recipient's ingress
 * shard, and the table of sends waiting for their fanout answer (answered UNAVAILABLE after
 * GW_SEND_TIMEOUT_MS). The answer itself arrives through the delivery stream (gw_events). */
#ifndef PARLEY_GW_SEND_H
#define PARLEY_GW_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "gw_proto.h"

struct gw;
struct gw_conn;

#define GW_SEND_TIMEOUT_MS 10000 /* BRIEF: no fanout answer in 10 s -> UNAVAILABLE */

typedef struct gw_pending {
    struct gw_pending *prev, *next; /* global list, oldest first (deadlines are in order) */
    struct gw_pending *conn_next;   /* the connection's list */
    uint64_t seq;                   /* unique, names the entry across async calls */
    uint64_t conn_id, request_id;
    uint64_t started_us;
} gw_pending;

typedef struct {
    gw_pending *head, *tail;
    size_t count;
    uint64_t next_seq;
} gw_pendings;

/* Checks the bounds of a Send. On success returns PARLEY__V1__ERROR_CODE__ERROR_UNSPECIFIED
 * and writes the normalised recipient; otherwise the error code to answer with (*why says
 * which check failed, a static string). Pure. */
Parley__V1__ErrorCode gw_send_validate(const Parley__V1__Send *s,
                                       char recipient[PARLEY_NAME_MAX + 1], const char **why);

/* Handles a Send frame of an authenticated connection (f stays the caller's). */
void gw_send_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

/* A fanout answer for (conn, request_id) arrived: removes the pending entry. Returns 0 and sets
 * *latency_us when one was pending, -1 otherwise (late or unknown). */
int gw_send_answered(struct gw *g, struct gw_conn *c, uint64_t request_id, uint64_t *latency_us);
/* Drops every pending entry of c (it is closing). */
void gw_send_drop_conn(struct gw *g, struct gw_conn *c);
/* Frees every entry without answering (process exit). */
void gw_send_free_all(struct gw *g);
/* Answers UNAVAILABLE for every entry past its deadline. Called from the gateway tick. */
void gw_send_expire(struct gw *g, uint64_t now_us);

#endif
