/* gw_ack.h: Ack frames. Acks of every connection are batched and flushed as ONE statement
 * (parley_gw_ack in deploy/sql/003_gateway.sql) that deletes only rows of the acking device and
 * decrements queue_len. An Ack with request_id != 0 is answered AckOk{count} once that statement
 * committed. Each connection may have PARLEY_PENDING_ACK_IDS_MAX ack ids queued or in flight
 * (more -> RATE_LIMITED for that connection only); with PARLEY_ACK_STATEMENTS_MAX statements in flight
 * the batch waits for one of them to answer. */
#ifndef PARLEY_GW_ACK_H
#define PARLEY_GW_ACK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gw_proto.h"

struct gw;
struct gw_conn;

typedef struct {
    uint64_t conn_id, request_id;
    uint32_t units; /* charged to the connection's ack_ids until the statement answers */
} gw_ack_req;

/* One batch: parallel arrays, one entry per acked id; req indexes reqs. */
typedef struct {
    int64_t *account_ids;
    uint32_t *device_ids;
    uint64_t *ids;
    uint32_t *req;
    size_t n, cap;
    gw_ack_req *reqs;
    size_t nreqs, reqs_cap;
} gw_ack_batch;

typedef struct {
    gw_ack_batch cur;
    uv_timer_t timer;
    int timer_init, timer_armed;
    unsigned inflight; /* flushes whose statement has not answered yet */
    int deferred;      /* a flush waits for a statement to answer */
} gw_acks;

int gw_ack_init(struct gw *g);
/* Handles an Ack frame of an authenticated connection (f stays the caller's). */
void gw_ack_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
/* Runs the current batch now (shutdown). */
void gw_ack_flush(struct gw *g);
/* Closes the timer (handles close on the loop) and frees an unflushed batch. */
void gw_ack_close(struct gw *g);

/* What an Ack of nids ids costs a connection: one unit per id, one for an empty Ack. Pure. */
uint32_t gw_ack_units(size_t nids);
/* Batch helpers, pure (unit tested). add returns -1 on OOM. */
void gw_ack_batch_init(gw_ack_batch *b);
int gw_ack_batch_add(gw_ack_batch *b, uint64_t conn_id, uint64_t request_id, int64_t account_id,
                     uint32_t device_id, const uint64_t *ids, size_t nids);
void gw_ack_batch_free(gw_ack_batch *b);
/* Postgres array literals "{1,2,3}" of the batch columns (malloc'd, caller frees); -1 on OOM. */
int gw_ack_batch_arrays(const gw_ack_batch *b, char **accounts, char **devices, char **ids,
                        char **reqs);

#endif
