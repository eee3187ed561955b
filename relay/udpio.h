/* udpio.h: the relay's UDP sockets (the client-facing listener and every allocation's relay
 * socket), read and written in batches. Readiness comes from a uv_poll_t; each wakeup reads
 * with recvmmsg into the free part of one fixed array of receive slots shared by every socket.
 * Datagrams relayed in place (they still lie in a receive slot) are queued, and the queue
 * leaves with sendmmsg, one call per destination socket, once the loop has run every I/O
 * callback of its turn (a uv_check handle) or when the slots run out: the datagrams that 40
 * relay sockets hand to the one listener in a turn leave in one call. Any other datagram (a
 * STUN answer built elsewhere) leaves at once, after the queue. The slots and the queue are
 * allocated once by rudp_io_new: nothing is allocated per packet. Linux only (recvmmsg and
 * sendmmsg). */
#ifndef PARLEY_RELAY_UDPIO_H
#define PARLEY_RELAY_UDPIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* Writable room around a received datagram: in front for a TURN header (a Data indication's
 * is at most 20 + 24 + 4 bytes), behind for padding to 4. */
#define RUDP_HEADROOM 64
#define RUDP_TAILROOM 4

typedef struct rudp rudp;
typedef struct rudp_io rudp_io;

/* One datagram received on s. data may be changed in place, RUDP_HEADROOM bytes in front and
 * RUDP_TAILROOM behind included, and passed to rudp_send until the callback returns. */
typedef void (*rudp_recv_cb)(rudp *s, uint8_t *data, size_t len, const struct sockaddr *from);
/* Called once per datagram given to rudp_send: it left (ok = 1) or was dropped (ok = 0). tag
 * and count are what the caller passed (e.g. a direction and the payload bytes it carries). */
typedef void (*rudp_sent_cb)(void *ud, unsigned tag, size_t count, int ok);

struct rudp {
    uv_poll_t poll; /* poll.data: the owner's pointer given to rudp_open */
    int fd;
    int open;    /* the poll handle exists and must be closed with rudp_close */
    int closing;
    rudp_io *io;
    rudp_recv_cb on_recv;
};

/* The shared slots and send queue, with the loop's check handle that flushes it (malloc'd;
 * rudp_io_close, then rudp_io_free once closed). NULL when out of memory. */
rudp_io *rudp_io_new(uv_loop_t *loop, rudp_sent_cb sent, void *ud);
/* Sends what is queued and closes the check handle; closed(ud) runs when it is closed. */
void rudp_io_close(rudp_io *io, void (*closed)(void *ud));
void rudp_io_free(rudp_io *io);

/* Watches fd (a bound UDP socket, made non-blocking here) for datagrams; s takes fd over. 0, or
 * a UV_E code: then s->open tells whether s must still be closed with rudp_close (else fd is
 * closed already and s holds nothing). */
int rudp_open(rudp *s, uv_loop_t *loop, rudp_io *io, int fd, rudp_recv_cb cb, void *owner);
/* Sends what is queued (some may be for s), stops watching, closes fd; cb runs when the handle
 * is closed (its data is the owner). */
void rudp_close(rudp *s, uv_close_cb cb);
/* The owner pointer given to rudp_open. */
void *rudp_owner(const rudp *s);

/* Sends one datagram from s to `to`: queued when data lies in a receive slot, else sent now.
 * sent is called for it with tag and count, now or when the queue is sent. 0, or -1 when it
 * was dropped already. */
int rudp_send(rudp *s, const uint8_t *data, size_t len, const struct sockaddr *to, unsigned tag,
              size_t count);
/* Sends what is queued (done once per loop turn, and before a socket closes). */
void rudp_io_flush(rudp_io *io);

#endif
