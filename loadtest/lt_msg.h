/* lt_msg.h: logical messages in flight, from their first Send until the server's final
 * answer. A Send is built here (client_id from the run id and the sequence number, one
 * envelope for the recipient's device 1 with its registration id from the pool, the payload
 * of lt_payload.h) and sent on the sender's connection with a request id. Answers:
 * SendResult -> accepted (duplicate=true counts once); RATE_LIMITED, UNAVAILABLE,
 * SHUTTING_DOWN -> "retried", sent again with the same client_id after retry_after_ms (or a
 * jittered backoff); any other error, INTERNAL included -> "rejected" by code. A send whose
 * connection dropped before the answer is sent again, same client_id, once the sender is back
 * up ("resends"). At most LT_SENDER_INFLIGHT_MAX messages are in flight per sender. */
#ifndef LT_MSG_H
#define LT_MSG_H

#include "lt_run.h"

int lt_msgs_init(lt_run *r);
void lt_msgs_free(lt_run *r);
/* A new message from sender (up) to recipient: 0, or -1 when out of memory. */
int lt_msg_new(lt_run *r, uint32_t sender, uint32_t recipient);
/* Sender dev is up (again): resend what waits for that. */
void lt_msg_dev_up(lt_run *r, uint32_t dev);
/* Every few ms: retries that are due. */
void lt_msgs_tick(lt_run *r);
/* Messages without a final answer yet. */
uint32_t lt_msgs_live(const lt_run *r);

#endif
