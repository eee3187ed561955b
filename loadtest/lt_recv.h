/* lt_recv.h: the receiving side of every device: envelopes are checked against the harness
 * header (ours, this run, this recipient), accounted once per message (lt_track: latency,
 * duplicates, live or queued), and acknowledged. Acks are batched per device: an Ack frame of
 * up to PARLEY_MAX_ACK_IDS ids goes out when that many are waiting, else on the next flush
 * (every LT_ACK_FLUSH_MS); each Ack asks for an AckOk, and at most
 * PARLEY_PENDING_ACK_IDS_MAX ids per connection are unanswered, so the gateway never has to
 * refuse one. */
#ifndef LT_RECV_H
#define LT_RECV_H

#include "lt_run.h"

#define LT_ACK_FLUSH_MS 10

void lt_acks_init(lt_run *r);
/* A push or an unmatched frame on device dev's connection. */
void lt_recv_frame(lt_run *r, uint32_t dev, const Parley__V1__ServerFrame *f);
void lt_recv_dev_up(lt_run *r, uint32_t dev);
void lt_recv_dev_down(lt_run *r, uint32_t dev);
/* Sends waiting acks of every device that has some. */
void lt_acks_flush(lt_run *r);
/* 1 when no ack is waiting or unanswered. */
int lt_acks_idle(const lt_run *r);
/* Releases dev's ack state (after its connection is gone for good). */
void lt_recv_dev_free(lt_run *r, uint32_t dev);
void lt_acks_free(lt_run *r);

#endif
