/* server.c: the relay's sockets: the client-facing UDP listener, the relay sockets' receive
 * path, ChannelData and Data indications both ways, the expiry tick, the admin port, start and
 * stop. Packets are relayed in place in udpio's receive slots (a TURN header is written in
 * front of a peer's data) and leave in batches at the end of the loop's turn: no per-packet
 * allocation and no queueing beyond that (a full socket buffer drops the datagram, as UDP
 * may). */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "alloc.h"
#include "log.h"
#include "tcp.h"

#define TICK_MS 1000

/* what a datagram given to udpio is, for the metrics of its outcome */
enum { TAG_CONTROL, TAG_TO_PEER, TAG_TO_CLIENT };

void relay_refuse(relay *r, rref_reason why)
{
    if ((unsigned)why < RREF_COUNT && r->met.refusals[why])
        pmet_inc(r->met.refusals[why], 1);
}

/* udpio's report on each datagram: count is the payload bytes relayed */
static void on_sent(void *ud, unsigned tag, size_t count, int ok)
{
    relay *r = ud;
    if (!ok) {
        pmet_inc(r->met.send_errors, 1);
    } else if (tag == TAG_TO_PEER) {
        pmet_inc(r->met.pkts_to_peer, 1);
        pmet_inc(r->met.bytes_to_peer, count);
    } else if (tag == TAG_TO_CLIENT) {
        pmet_inc(r->met.pkts_to_client, 1);
        pmet_inc(r->met.bytes_to_client, count);
    }
}

int relay_send_to_client(relay *r, const struct sockaddr *client, rtcp_conn *conn,
                         const uint8_t *data, size_t len)
{
    if (conn)
        return rtcp_send(conn, data, len);
    return rudp_send(&r->udp, data, len, client, TAG_CONTROL, len);
}

static int send_to_peer(relay *r, ralloc *a, const struct sockaddr *peer, const uint8_t *data,
                        size_t len)
{
    if (!ralloc_spend(a, len, uv_now(r->loop))) {
        relay_refuse(r, RREF_BANDWIDTH);
        return -1;
    }
    return rudp_send(&a->sock, data, len, peer, TAG_TO_PEER, len);
}

/* A peer's datagram on a relay socket: to the client as ChannelData when a channel is bound
 * to the peer, else as a Data indication; dropped without a permission (RFC 8656 10.3). */
void relay_on_peer_recv(rudp *s, uint8_t *data, size_t dlen, const struct sockaddr *peer)
{
    ralloc *a = rudp_owner(s);
    relay *r = a->r;
    if (a->closing)
        return;
    uint64_t now = uv_now(r->loop);
    if (!ralloc_permitted(a, peer, now)) {
        relay_refuse(r, RREF_NO_PERMISSION);
        return;
    }
    if (!ralloc_spend(a, dlen, now)) {
        relay_refuse(r, RREF_BANDWIDTH);
        return;
    }
    const ralloc_chan *c = ralloc_channel_by_peer(a, peer, now);
    uint8_t *out;
    size_t olen;
    if (c) {
        out = data - STUN_CHDATA_HEADER_LEN;
        stun_chdata_header(out, c->number, dlen);
        olen = STUN_CHDATA_HEADER_LEN + dlen;
        if (a->conn) {
            /* over TCP ChannelData is padded to 4 (RFC 8656 12.5); the buffer has room */
            size_t padded = (dlen + 3) & ~(size_t)3;
            memset(data + dlen, 0, padded - dlen);
            olen = STUN_CHDATA_HEADER_LEN + padded;
        }
    } else {
        /* a Data indication is 48 bytes of header at most, then DATA and its padding */
        if (dlen > 0xFFFF - 64) {
            pmet_inc(r->met.send_errors, 1);
            return;
        }
        uint8_t tid[STUN_TID_LEN], hdr[RUDP_HEADROOM];
        memcpy(tid, r->tid_prefix, 4);
        r->tid_counter++;
        memcpy(tid + 4, &r->tid_counter, 8);
        stun_builder b;
        stun_build_begin(&b, hdr, sizeof hdr, TURN_DATA, STUN_INDICATION, tid);
        stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, peer);
        size_t hlen = stun_build_end(&b);
        size_t padded = (dlen + 3) & ~(size_t)3;
        if (hlen == 0 || hlen + 4 > sizeof hdr) {
            pmet_inc(r->met.send_errors, 1);
            return;
        }
        /* DATA's header, and the message length covering the data that is already in place */
        hdr[hlen] = (uint8_t)(STUN_A_DATA >> 8);
        hdr[hlen + 1] = (uint8_t)(STUN_A_DATA & 0xFF);
        hdr[hlen + 2] = (uint8_t)(dlen >> 8);
        hdr[hlen + 3] = (uint8_t)dlen;
        hlen += 4;
        size_t mlen = hlen - STUN_HEADER_LEN + padded;
        hdr[2] = (uint8_t)(mlen >> 8);
        hdr[3] = (uint8_t)mlen;
        out = data - hlen;
        memcpy(out, hdr, hlen);
        memset(data + dlen, 0, padded - dlen);
        olen = hlen + padded;
    }
    if (!a->conn) {
        rudp_send(&r->udp, out, olen, (const struct sockaddr *)&a->client, TAG_TO_CLIENT, dlen);
    } else if (rtcp_send(a->conn, out, olen) == 0) {
        pmet_inc(r->met.pkts_to_client, 1);
        pmet_inc(r->met.bytes_to_client, dlen);
    }
}

/* ChannelData from a client: to the channel's peer. Unknown or unbound channels are dropped
 * silently (RFC 8656 12.6). */
void relay_channel_data(relay *r, const struct sockaddr *client, rtcp_conn *conn,
                        const uint8_t *buf, size_t len)
{
    uint16_t ch;
    const uint8_t *data;
    size_t dlen;
    if (stun_chdata_parse(buf, len, &ch, &data, &dlen) != STUN_OK) {
        pmet_inc(r->met.malformed, 1);
        return;
    }
    ralloc *a = ralloc_find(r, client, conn);
    if (!a)
        return;
    uint64_t now = uv_now(r->loop);
    const ralloc_chan *c = ralloc_channel_by_number(a, ch, now);
    if (!c)
        return;
    const struct sockaddr *peer = (const struct sockaddr *)&c->peer;
    if (!ralloc_permitted(a, peer, now)) {
        relay_refuse(r, RREF_NO_PERMISSION);
        return;
    }
    send_to_peer(r, a, peer, data, dlen);
}

/* A Send indication from a client (no answer in any case, RFC 8656 10.2). */
void relay_send_indication(relay *r, const stun_msg *m, const struct sockaddr *client,
                           rtcp_conn *conn)
{
    ralloc *a = ralloc_find(r, client, conn);
    const stun_attr *pa = stun_find(m, STUN_A_XOR_PEER_ADDRESS);
    const stun_attr *da = stun_find(m, STUN_A_DATA);
    struct sockaddr_storage peer;
    if (!a || !pa || !da || stun_get_addr(m, pa, 1, &peer) != STUN_OK)
        return;
    if (!ralloc_permitted(a, (const struct sockaddr *)&peer, uv_now(r->loop))) {
        relay_refuse(r, RREF_NO_PERMISSION);
        return;
    }
    send_to_peer(r, a, (const struct sockaddr *)&peer, da->val, da->len);
}

static void on_listener_recv(rudp *s, uint8_t *p, size_t len, const struct sockaddr *client)
{
    relay *r = rudp_owner(s);
    if (r->stopping)
        return;
    if ((p[0] & 0xC0) == 0x40)
        relay_channel_data(r, client, NULL, p, len);
    else if ((p[0] & 0xC0) == 0)
        turn_handle(r, client, NULL, p, len);
    else
        pmet_inc(r->met.malformed, 1);
}

static void on_tick(uv_timer_t *t)
{
    relay *r = t->data;
    ralloc_expire(r, uv_now(r->loop));
    rtcp_expire(r, uv_now(r->loop));
}

static int parse_ip(const char *s, int port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(s, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(s, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return -1;
}

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    static const uint8_t zero[16] = {0};
    return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, zero, 16) == 0;
}

/* A UDP socket bound to addr (IPv6: dual-stack, as libuv's default was). 0 or a UV_E code. */
static int bind_udp(const struct sockaddr_storage *addr, int *ufd)
{
    socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int u = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u < 0)
        return uv_translate_sys_error(errno);
    if (bind(u, (const struct sockaddr *)addr, len) != 0) {
        int e = errno;
        close(u);
        return uv_translate_sys_error(e);
    }
    *ufd = u;
    return 0;
}

/* For listen_port 0: sockets bound to one port that is free for both UDP and TCP (the kernel
 * picks the UDP one; a TCP socket may hold the same number, so retry). 0 or a UV_E code. */
static int bind_pair(const struct sockaddr_storage *addr, int *ufd, int *tfd)
{
    const int tries = 64;
    struct sockaddr_storage ss = *addr;
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    for (int i = 0; i < tries; i++) {
        int u = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int t = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int on = 1;
        if (u < 0 || t < 0) {
            int e = errno;
            if (u >= 0)
                close(u);
            if (t >= 0)
                close(t);
            return uv_translate_sys_error(e);
        }
        if (ss.ss_family == AF_INET6) {
            (void)setsockopt(u, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
            (void)setsockopt(t, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        }
        (void)setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        struct sockaddr_storage got;
        socklen_t glen = sizeof got;
        if (bind(u, (const struct sockaddr *)addr, len) == 0 &&
            getsockname(u, (struct sockaddr *)&got, &glen) == 0 &&
            bind(t, (const struct sockaddr *)&got, len) == 0) {
            *ufd = u;
            *tfd = t;
            return 0;
        }
        close(u);
        close(t);
    }
    return UV_EADDRINUSE;
}

static int ready(void *ud)
{
    relay *r = ud;
    return r->udp_open && r->tcp_open && !r->stopping;
}

int relay_start(relay *r, uv_loop_t *loop, const relay_config *cfg)
{
    char err[160];
    r->loop = loop;
    r->cfg = cfg;
    if (parse_ip(cfg->listen_host, (int)cfg->listen_port, &r->listen_addr) != 0 ||
        parse_ip(cfg->relay_ip, 0, &r->relay_addr) != 0) {
        plog_error("config", "msg=\"listen_host and relay_ip must be numeric IP addresses\"");
        return -1;
    }
    const char *ext = cfg->external_ip && cfg->external_ip[0] ? cfg->external_ip : cfg->relay_ip;
    if (parse_ip(ext, 0, &r->ext_addr) != 0 || is_wildcard(&r->ext_addr)) {
        plog_error("config", "msg=\"external_ip (or relay_ip) must be a concrete IP address\"");
        return -1;
    }
    if (r->ext_addr.ss_family != r->relay_addr.ss_family) {
        plog_error("config", "msg=\"external_ip and relay_ip must be of the same family\"");
        return -1;
    }
    if (cfg->port_min > cfg->port_max) {
        plog_error("config", "msg=\"relay_port_min is above relay_port_max\"");
        return -1;
    }
    rpol_init(&r->pol);
    if (rpol_allow(&r->pol, cfg->allow_peers, err, sizeof err) != 0) {
        plog_error("config", "key=allow_peers msg=\"%s\"", err);
        return -1;
    }
    if (rauth_init(&r->auth, cfg->secrets, cfg->realm, (uint32_t)cfg->nonce_ttl_s, err,
                   sizeof err) != 0) {
        plog_error("config", "key=secrets msg=\"%s\"", err);
        return -1;
    }
    r->io = rudp_io_new(loop, on_sent, r);
    r->io_open = r->io != NULL;
    r->metrics = pmetrics_new();
    if (!r->io || !r->metrics || ralloc_table_init(r) != 0) {
        plog_error("start", "msg=\"out of memory\"");
        return -1;
    }
    randombytes_buf(r->tid_prefix, sizeof r->tid_prefix);
    rmet_init(&r->met, r->metrics);

    int ufd = -1, tfd = -1, rc;
    if (cfg->listen_port == 0)
        rc = bind_pair(&r->listen_addr, &ufd, &tfd);
    else
        rc = bind_udp(&r->listen_addr, &ufd);
    if (rc == 0) {
        rc = rudp_open(&r->udp, loop, r->io, ufd, on_listener_recv, r); /* takes ufd */
        r->udp_open = r->udp.open;
    }
    if (rc != 0) {
        plog_error("listen", "host=%s port=%lld err=%s", cfg->listen_host, cfg->listen_port,
                   uv_strerror(rc));
        if (tfd >= 0)
            close(tfd);
        return -1;
    }
    if (rtcp_start(r, tfd) != 0)
        return -1;
    uv_timer_init(loop, &r->tick);
    r->tick.data = r;
    r->tick_open = 1;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    if (cfg->admin.admin_port > 0) {
        r->admin = padmin_start(loop, cfg->admin.admin_host, (int)cfg->admin.admin_port, r->metrics, ready, r);
        if (!r->admin)
            return -1;
    }
    plog_info("listening", "udp_tcp=%s:%d relay_ip=%s external_ip=%s ports=%lld-%lld admin_port=%d",
              cfg->listen_host, relay_port(r), cfg->relay_ip, ext, cfg->port_min, cfg->port_max,
              padmin_port(r->admin));
    return 0;
}

int relay_port(const relay *r)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!r->udp_open || r->udp.fd < 0 || getsockname(r->udp.fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void maybe_stopped(relay *r)
{
    if (!r->udp_open && !r->tick_open && !r->tcp_open && !r->io_open && r->on_stopped)
        r->on_stopped(r);
}

static void on_udp_closed(uv_handle_t *h)
{
    relay *r = h->data;
    r->udp_open = 0;
    maybe_stopped(r);
}

static void on_io_closed(void *ud)
{
    relay *r = ud;
    r->io_open = 0;
    maybe_stopped(r);
}

static void on_tick_closed(uv_handle_t *h)
{
    relay *r = h->data;
    r->tick_open = 0;
    maybe_stopped(r);
}

void relay_tcp_closed(relay *r)
{
    r->tcp_open = 0;
    maybe_stopped(r);
}

void relay_stop(relay *r)
{
    if (r->stopping)
        return;
    r->stopping = 1;
    if (r->buckets)
        ralloc_table_close(r);
    if (r->admin) {
        padmin_stop(r->admin);
        r->admin = NULL;
    }
    int any = rtcp_stop(r);
    if (r->tick_open) {
        uv_close((uv_handle_t *)&r->tick, on_tick_closed);
        any = 1;
    }
    if (r->udp_open) {
        rudp_close(&r->udp, on_udp_closed);
        any = 1;
    }
    /* last: closing the sockets above sent what they had queued */
    if (r->io_open) {
        rudp_io_close(r->io, on_io_closed);
        any = 1;
    }
    if (!any && r->on_stopped)
        r->on_stopped(r);
}

void relay_free(relay *r)
{
    ralloc_table_free(r);
    pmetrics_free(r->metrics);
    r->metrics = NULL;
    rudp_io_free(r->io);
    r->io = NULL;
    rauth_clear(&r->auth);
}
