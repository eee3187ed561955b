/* udpio.c: batched UDP reads and writes of the relay's sockets (see udpio.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg, sendmmsg */
#endif
#include "udpio.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

#define SLOT_BYTES (RUDP_HEADROOM + PARLEY_RELAY_UDP_MAX_BYTES + RUDP_TAILROOM)
#define BATCH      PARLEY_RELAY_UDP_BATCH
#define SLOTS      PARLEY_RELAY_UDP_SLOTS

struct rudp_io {
    uv_check_t check; /* flushes the queue once the loop's I/O callbacks of a turn are done */
    rudp_sent_cb sent;
    void *ud;
    void (*closed)(void *ud);
    /* receive side: SLOTS slots of SLOT_BYTES in one block; [0, used) may hold queued data */
    uint8_t *slots;
    size_t used;
    int in_batch;     /* a batch's datagrams are being handled: slots up to used stay taken */
    struct mmsghdr rmsg[SLOTS];
    struct iovec riov[SLOTS];
    struct sockaddr_storage rfrom[SLOTS];
    /* send queue: datagrams in the slots, with their socket and the caller's tag and count */
    size_t nq;
    struct mmsghdr qmsg[SLOTS];
    struct iovec qiov[SLOTS];
    struct sockaddr_storage qto[SLOTS];
    int qfd[SLOTS];
    unsigned qtag[SLOTS];
    size_t qcount[SLOTS];
    /* flush scratch: one socket's entries gathered, and which entries are done */
    struct mmsghdr gmsg[SLOTS];
    size_t gidx[SLOTS];
    uint8_t qdone[SLOTS];
};

static socklen_t addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static void on_check(uv_check_t *h)
{
    rudp_io_flush(h->data);
}

rudp_io *rudp_io_new(uv_loop_t *loop, rudp_sent_cb sent, void *ud)
{
    rudp_io *io = calloc(1, sizeof *io);
    if (!io)
        return NULL;
    /* virtual: a slot's pages are touched only as far as its datagrams reach */
    io->slots = malloc((size_t)SLOTS * SLOT_BYTES);
    if (!io->slots) {
        free(io);
        return NULL;
    }
    io->sent = sent;
    io->ud = ud;
    for (size_t i = 0; i < SLOTS; i++) {
        io->riov[i].iov_base = io->slots + i * SLOT_BYTES + RUDP_HEADROOM;
        io->riov[i].iov_len = PARLEY_RELAY_UDP_MAX_BYTES;
        io->rmsg[i].msg_hdr.msg_iov = &io->riov[i];
        io->rmsg[i].msg_hdr.msg_iovlen = 1;
        io->rmsg[i].msg_hdr.msg_name = &io->rfrom[i];
        io->qmsg[i].msg_hdr.msg_iov = &io->qiov[i];
        io->qmsg[i].msg_hdr.msg_iovlen = 1;
        io->qmsg[i].msg_hdr.msg_name = &io->qto[i];
    }
    uv_check_init(loop, &io->check);
    io->check.data = io;
    uv_check_start(&io->check, on_check);
    /* the queue alone must not keep the loop running */
    uv_unref((uv_handle_t *)&io->check);
    return io;
}

static void on_io_closed(uv_handle_t *h)
{
    rudp_io *io = h->data;
    if (io->closed)
        io->closed(io->ud);
}

void rudp_io_close(rudp_io *io, void (*closed)(void *ud))
{
    rudp_io_flush(io);
    io->closed = closed;
    uv_close((uv_handle_t *)&io->check, on_io_closed);
}

void rudp_io_free(rudp_io *io)
{
    if (!io)
        return;
    free(io->slots);
    free(io);
}

void *rudp_owner(const rudp *s)
{
    return s->poll.data;
}

/* Sends the n gathered entries (gmsg, gidx), all on fd; a datagram the kernel refuses is
 * dropped and the rest still tried. */
static void send_gathered(rudp_io *io, int fd, size_t n)
{
    size_t k = 0;
    while (k < n) {
        int sent = sendmmsg(fd, &io->gmsg[k], (unsigned)(n - k), MSG_DONTWAIT);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent <= 0) {
            io->sent(io->ud, io->qtag[io->gidx[k]], io->qcount[io->gidx[k]], 0);
            k++;
            continue;
        }
        for (size_t i = k; i < k + (size_t)sent; i++)
            io->sent(io->ud, io->qtag[io->gidx[i]], io->qcount[io->gidx[i]], 1);
        k += (size_t)sent;
    }
}

void rudp_io_flush(rudp_io *io)
{
    size_t n = io->nq;
    /* datagrams of one socket leave together, in the order they were queued */
    memset(io->qdone, 0, n);
    for (size_t i = 0; i < n; i++) {
        if (io->qdone[i])
            continue;
        size_t g = 0;
        for (size_t j = i; j < n; j++) {
            if (io->qdone[j] || io->qfd[j] != io->qfd[i])
                continue;
            io->gmsg[g] = io->qmsg[j];
            io->gidx[g++] = j;
            io->qdone[j] = 1;
        }
        send_gathered(io, io->qfd[i], g);
    }
    io->nq = 0;
    /* nothing queued points into the slots any more; a batch being handled still uses its own */
    if (!io->in_batch)
        io->used = 0;
}

int rudp_send(rudp *s, const uint8_t *data, size_t len, const struct sockaddr *to, unsigned tag,
              size_t count)
{
    rudp_io *io = s->io;
    if (!io)
        return -1; /* never opened: nobody counts this socket's datagrams */
    if (s->closing || s->fd < 0) {
        io->sent(io->ud, tag, count, 0);
        return -1;
    }
    /* as integers: ordering pointers into different objects is undefined in C */
    uintptr_t d = (uintptr_t)data, lo = (uintptr_t)io->slots;
    int in_slot = d >= lo && d - lo < (uintptr_t)SLOTS * SLOT_BYTES;
    if (in_slot && io->nq < SLOTS) {
        size_t q = io->nq++;
        io->qiov[q].iov_base = (void *)data;
        io->qiov[q].iov_len = len;
        memcpy(&io->qto[q], to, addr_len(to));
        io->qmsg[q].msg_hdr.msg_namelen = addr_len(to);
        io->qfd[q] = s->fd;
        io->qtag[q] = tag;
        io->qcount[q] = count;
        return 0;
    }
    /* keep the order of what one socket sends: the queue goes first (the queue is never full
     * for slot data: each received datagram queues at most one) */
    rudp_io_flush(io);
    ssize_t n;
    do
        n = sendto(s->fd, data, len, MSG_DONTWAIT, to, addr_len(to));
    while (n < 0 && errno == EINTR);
    io->sent(io->ud, tag, count, n >= 0);
    return n >= 0 ? 0 : -1;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    rudp *s = (rudp *)h;
    rudp_io *io = s->io;
    if (status < 0) {
        /* libuv stopped watching the socket (POLLERR, which an unconnected UDP socket does
         * not raise without IP_RECVERR): it receives nothing more until it is closed */
        plog_error("udp_poll", "fd=%d err=%s", s->fd, uv_strerror(status));
        return;
    }
    if (!(events & UV_READABLE))
        return;
    /* a few batches per wakeup, then the other sockets get their turn (level-triggered: what
     * is left wakes us again) */
    for (int round = 0; round < PARLEY_RELAY_UDP_BATCHES_PER_WAKE && !s->closing; round++) {
        /* the slots in use hold queued datagrams: send them first when a batch would not fit */
        if (SLOTS - io->used < BATCH)
            rudp_io_flush(io);
        struct mmsghdr *m = &io->rmsg[io->used];
        for (size_t i = 0; i < BATCH; i++)
            m[i].msg_hdr.msg_namelen = sizeof io->rfrom[0];
        int n = recvmmsg(s->fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN; other errors of an unconnected UDP socket are not ours to act on */
        size_t first = io->used;
        io->used += (size_t)n;
        io->in_batch = 1;
        for (size_t i = first; i < first + (size_t)n && !s->closing; i++) {
            size_t len = io->rmsg[i].msg_len;
            if (len == 0 || (io->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC))
                continue;
            s->on_recv(s, (uint8_t *)io->riov[i].iov_base, len,
                       (const struct sockaddr *)&io->rfrom[i]);
        }
        io->in_batch = 0;
        if (n < BATCH)
            return;
    }
}

int rudp_open(rudp *s, uv_loop_t *loop, rudp_io *io, int fd, rudp_recv_cb cb, void *owner)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    s->io = io;
    s->on_recv = cb;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return uv_translate_sys_error(e);
    }
    int rc = uv_poll_init_socket(loop, &s->poll, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    s->poll.data = owner;
    s->fd = fd;
    s->open = 1;
    /* on failure the handle exists: s->open tells the caller to rudp_close it */
    return uv_poll_start(&s->poll, UV_READABLE, on_poll);
}

void rudp_close(rudp *s, uv_close_cb cb)
{
    if (!s->open || s->closing)
        return;
    rudp_io_flush(s->io);
    s->closing = 1;
    uv_close((uv_handle_t *)&s->poll, cb);
    /* libuv stopped watching fd in uv_close; it never closes a polled fd itself */
    close(s->fd);
    s->fd = -1;
}
