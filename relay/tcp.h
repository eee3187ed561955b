/* tcp.h: TURN clients over TCP (RFC 8656 with RFC 8489's framing): the listener on the same
 * port as the UDP one, and per connection a fixed input buffer (one whole frame) and a fixed
 * output buffer, both allocated once when the connection is accepted. Messages to a client are
 * written at once when the socket takes them, else queued whole; a message that does not fit
 * the queue is dropped whole (the stream stays framed) and counted. Closing the connection
 * deletes its allocation. */
#ifndef PARLEY_RELAY_TCP_H
#define PARLEY_RELAY_TCP_H

#include "relay.h"

/* Listens on the UDP listener's address and port; fd: a TCP socket already bound there, or -1
 * to bind one (taken over in any case). 0, or -1 (logged). */
int rtcp_start(relay *r, int fd);
/* Closes the listener and every connection; returns non-zero when the listener's close is
 * pending (relay_tcp_closed is called when done). */
int rtcp_stop(relay *r);
/* Queues one whole message. 0, or -1 when dropped. */
int rtcp_send(rtcp_conn *c, const uint8_t *data, size_t len);
/* The connection's allocation was created / is being deleted. */
void rtcp_attach(rtcp_conn *c, ralloc *a);
void rtcp_detach(rtcp_conn *c, ralloc *a);
/* Closes connections idle without an allocation (the 1 s tick). */
void rtcp_expire(relay *r, uint64_t now);

#endif
