/* gw_drain.h: delivery of a device's queued envelopes after auth (and again after a Redis
 * reconnect): pages from parley_gw_drain in id order, each page sized to the connection's free
 * outbound space, then QueueEmpty; live pushes that arrive meanwhile are held and released
 * after the drain when their id is above the last drained one. The state of a drain in
 * progress is allocated for its duration only. */
#ifndef PARLEY_GW_DRAIN_H
#define PARLEY_GW_DRAIN_H

#include <stdint.h>

#include "gw_conn.h"
#include "gw_outq.h"
#include "gw_proto.h"

struct gw;
struct gw_conn;

/* Starts a pass (initial: ends with QueueEmpty). During a pass, requests another pass. */
void gw_drain_start(struct gw *g, struct gw_conn *c, int initial);
/* Outbound space was freed: continues a pass that waits for it. */
void gw_drain_on_writable(struct gw *g, struct gw_conn *c);
/* A live push for c: sent, or held while c drains. Takes frame. */
void gw_drain_push(struct gw *g, struct gw_conn *c, uint64_t id, gw_out *frame);
/* Where a pass starts: after the cursor of the last completed pass (0 before the first), not
 * after the highest pushed id. Pure. */
uint64_t gw_drain_start_cursor(const gw_drain_state *d);
/* From now on live pushes are held until a drain ends (called at auth, before AuthOk).
 * Returns -1 on OOM. */
int gw_drain_hold(struct gw_conn *c);
/* Ends any drain of c (it is closing): held pushes and the pass are freed. */
void gw_drain_free(struct gw_conn *c);

#endif
