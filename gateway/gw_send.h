/* gw_send.h: Send frames: the per-connection rate limit, bounds validation, admission when the
 * cluster is overloaded (gw_overload.h), XADD of an InternalSend to the recipient's ingress
 * shard, and the table of sends waiting for their fanout answer (answered UNAVAILABLE after
 * PARLEY_SEND_ANSWER_TIMEOUT_MS). The answer itself arrives through the delivery stream
 * (gw_events). A timed-out send stays in Redis, so it becomes an orphan that still holds one of
 * the connection's PARLEY_PENDING_SENDS_MAX slots until its late answer arrives (and is
 * dropped) or PARLEY_SEND_ORPHAN_MS after it was sent. */
#ifndef PARLEY_GW_SEND_H
#define PARLEY_GW_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "gw_proto.h"

struct gw;
struct gw_conn;


typedef struct gw_pending {
    struct gw_pending *prev, *next; /* global list, oldest first (deadlines are in order) */
    struct gw_pending *conn_next;   /* the connection's list */
    uint64_t seq;                   /* unique, names the entry across async calls */
    uint64_t conn_id, request_id;
    uint64_t started_us;
    int orphan;    /* answered UNAVAILABLE (timeout); on the orphan list */
    uint8_t shard; /* ingress shard the send went to (< PARLEY_INGRESS_SHARDS_MAX) */
} gw_pending;

/* Two global lists, both ordered by started_us: sends waiting for an answer (count, the
 * shutdown waits for these) and orphans. Every entry is also on its connection's list. */
typedef struct {
    gw_pending *head, *tail;
    size_t count;
    uint32_t shard_count[PARLEY_INGRESS_SHARDS_MAX]; /* count, by ingress shard */
    gw_pending *orphan_head, *orphan_tail;
    size_t orphans;
    uint64_t next_seq;
} gw_pendings;

/* Token bucket of a connection's Send frames, in millionths of a send. */
typedef struct {
    uint64_t level;
    uint64_t last_us;
} gw_send_bucket;


/* The bucket starts full (PARLEY_SEND_BURST sends). */
void gw_send_bucket_init(gw_send_bucket *b, uint64_t now_us);
/* Takes one send at now_us (monotonic). Returns 0, or -1 with *retry_after_ms (>= 1) set to the
 * wait until one is available. Pure. */
int gw_send_bucket_take(gw_send_bucket *b, uint64_t now_us, uint32_t *retry_after_ms);

/* The pending table (pure: no I/O, no metrics). add returns NULL on OOM. remove unlinks p from
 * both lists and frees it (c: p's connection, or NULL when it is gone). */
gw_pending *gw_pendings_add(gw_pendings *ps, struct gw_conn *c, uint64_t request_id,
                            unsigned shard, uint64_t now_us);
void gw_pendings_remove(gw_pendings *ps, struct gw_conn *c, gw_pending *p);
/* The oldest waiting entry past PARLEY_SEND_ANSWER_TIMEOUT_MS, moved to the orphans (still counted in its
 * connection's npending), or NULL. */
gw_pending *gw_pendings_time_out(gw_pendings *ps, uint64_t now_us);
/* The oldest orphan older than PARLEY_SEND_ORPHAN_MS (still linked), or NULL. */
gw_pending *gw_pendings_orphan_expired(const gw_pendings *ps, uint64_t now_us);
/* c's oldest entry (waiting or orphan) with request_id, or NULL. */
gw_pending *gw_pendings_find(const struct gw_conn *c, uint64_t request_id);

/* Handles a Send frame of an authenticated connection (f stays the caller's). */
void gw_send_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

/* A fanout answer for (conn, request_id) arrived: removes the pending entry (an orphan too).
 * Returns 0 and sets *latency_us when one was waiting, -1 otherwise (late or unknown: the
 * answer is dropped). */
int gw_send_answered(struct gw *g, struct gw_conn *c, uint64_t request_id, uint64_t *latency_us);
/* Drops every pending entry of c (it is closing). */
void gw_send_drop_conn(struct gw *g, struct gw_conn *c);
/* Frees every entry without answering (process exit). */
void gw_send_free_all(struct gw *g);
/* Answers UNAVAILABLE for every entry past its deadline (it becomes an orphan) and releases
 * expired orphans. Called from the gateway tick. */
void gw_send_expire(struct gw *g, uint64_t now_us);

#endif
