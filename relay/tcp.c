/* tcp.c: TURN over TCP (see tcp.h). */
#include "tcp.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

struct rtcp_conn {
    uv_tcp_t h;
    relay *r;
    rtcp_conn *prev, *next;
    struct sockaddr_storage peer;
    ralloc *alloc;
    uint64_t last_active;
    uint8_t *in; /* PARLEY_RELAY_TCP_INBUF: the unparsed front of the stream */
    size_t inlen;
    uint8_t *out; /* PARLEY_RELAY_TCP_OUTBUF: [out_start, out_end) waits to be written */
    size_t out_start, out_end;
    uv_write_t wr;
    size_t wlen; /* bytes of the write in flight */
    int writing;
    int closing;
};

static void on_conn_closed(uv_handle_t *h)
{
    rtcp_conn *c = h->data;
    free(c->in);
    free(c->out);
    free(c);
}

static void conn_close(rtcp_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    relay *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else if (r->conns == c)
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    r->nconns--;
    pmet_set(r->met.tcp_conns, (double)r->nconns);
    if (c->alloc)
        ralloc_delete(c->alloc); /* detaches itself */
    uv_close((uv_handle_t *)&c->h, on_conn_closed);
}

void rtcp_attach(rtcp_conn *c, ralloc *a) { c->alloc = a; }

void rtcp_detach(rtcp_conn *c, ralloc *a)
{
    if (c->alloc == a)
        c->alloc = NULL;
}

static void flush(rtcp_conn *c);

static void on_written(uv_write_t *req, int status)
{
    rtcp_conn *c = req->data;
    c->writing = 0;
    if (c->closing)
        return;
    if (status < 0) {
        plog_debug("tcp_write", "err=%s", uv_strerror(status));
        conn_close(c);
        return;
    }
    c->out_start += c->wlen;
    if (c->out_start == c->out_end)
        c->out_start = c->out_end = 0;
    flush(c);
}

static void flush(rtcp_conn *c)
{
    if (c->writing || c->out_end == c->out_start || c->closing)
        return;
    c->wlen = c->out_end - c->out_start;
    uv_buf_t b = uv_buf_init((char *)c->out + c->out_start, (unsigned)c->wlen);
    c->wr.data = c;
    int rc = uv_write(&c->wr, (uv_stream_t *)&c->h, &b, 1, on_written);
    if (rc != 0) {
        plog_debug("tcp_write", "err=%s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    c->writing = 1;
}

int rtcp_send(rtcp_conn *c, const uint8_t *data, size_t len)
{
    relay *r = c->r;
    if (c->closing)
        return -1;
    if (c->out_end == c->out_start) {
        /* nothing queued: straight to the socket, and queue what it did not take */
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->h, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return -1;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return 0;
        /* the queue is empty and larger than any message: the rest always fits */
        c->out_start = c->out_end = 0;
    } else if (len > PARLEY_RELAY_TCP_OUTBUF - c->out_end) {
        /* compact, unless a write from the queue is in flight (its bytes must not move) */
        if (!c->writing && c->out_start > 0) {
            memmove(c->out, c->out + c->out_start, c->out_end - c->out_start);
            c->out_end -= c->out_start;
            c->out_start = 0;
        }
        if (len > PARLEY_RELAY_TCP_OUTBUF - c->out_end) {
            pmet_inc(r->met.send_errors, 1);
            return -1; /* a whole message dropped: the stream stays framed */
        }
    }
    memcpy(c->out + c->out_end, data, len);
    c->out_end += len;
    flush(c);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    rtcp_conn *c = h->data;
    buf->base = (char *)c->in + c->inlen;
    buf->len = PARLEY_RELAY_TCP_INBUF - c->inlen;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    rtcp_conn *c = s->data;
    relay *r = c->r;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->inlen += (size_t)nread;
    c->last_active = uv_now(r->loop);
    size_t off = 0;
    while (!c->closing && off < c->inlen) {
        const uint8_t *p = c->in + off;
        size_t avail = c->inlen - off;
        long fl = stun_frame_len(p, avail);
        if (fl < 0 || fl > PARLEY_RELAY_TCP_INBUF) {
            pmet_inc(r->met.malformed, 1);
            conn_close(c);
            return;
        }
        if (fl == 0 || (size_t)fl > avail)
            break;
        if ((p[0] & 0xC0) == 0x40)
            relay_channel_data(r, (const struct sockaddr *)&c->peer, c, p, (size_t)fl);
        else
            turn_handle(r, (const struct sockaddr *)&c->peer, c, p, (size_t)fl);
        off += (size_t)fl;
    }
    if (c->closing)
        return;
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
}

static void on_connection(uv_stream_t *server, int status)
{
    relay *r = server->data;
    if (status < 0) {
        plog_warn("tcp_accept", "err=%s", uv_strerror(status));
        return;
    }
    rtcp_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->r = r;
    uv_tcp_init(r->loop, &c->h);
    c->h.data = c;
    c->in = malloc(PARLEY_RELAY_TCP_INBUF);
    c->out = malloc(PARLEY_RELAY_TCP_OUTBUF);
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    pmet_set(r->met.tcp_conns, (double)r->nconns);
    c->last_active = uv_now(r->loop);
    int len = sizeof c->peer;
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0 || !c->in || !c->out ||
        uv_tcp_getpeername(&c->h, (struct sockaddr *)&c->peer, &len) != 0) {
        conn_close(c);
        return;
    }
    if (r->nconns > (size_t)r->cfg->max_tcp || r->stopping) {
        relay_refuse(r, RREF_CAPACITY);
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->h, 1);
    if (uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read) != 0)
        conn_close(c);
}

int rtcp_start(relay *r, int fd)
{
    struct sockaddr_storage ss = r->listen_addr;
    int port = relay_port(r); /* the UDP port, also when it was picked by the kernel */
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    uv_tcp_init(r->loop, &r->tcp);
    r->tcp.data = r;
    r->tcp_open = 1;
    int rc = fd >= 0 ? uv_tcp_open(&r->tcp, fd)
                     : uv_tcp_bind(&r->tcp, (const struct sockaddr *)&ss, 0);
    if (rc != 0 && fd >= 0)
        close(fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&r->tcp, PARLEY_RELAY_TCP_BACKLOG, on_connection);
    if (rc != 0) {
        plog_error("listen", "transport=tcp port=%d err=%s", port, uv_strerror(rc));
        return -1;
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h) { relay_tcp_closed(h->data); }

int rtcp_stop(relay *r)
{
    while (r->conns)
        conn_close(r->conns);
    if (!r->tcp_open)
        return 0;
    uv_close((uv_handle_t *)&r->tcp, on_listener_closed);
    return 1;
}

void rtcp_expire(relay *r, uint64_t now)
{
    rtcp_conn *next;
    for (rtcp_conn *c = r->conns; c; c = next) {
        next = c->next;
        if (!c->alloc && now - c->last_active >= PARLEY_RELAY_TCP_IDLE_S * 1000ull)
            conn_close(c);
    }
}
