/* turn_client.c: one TURN allocation over UDP (turn_client.h). One request is in flight at a
 * time (a small queue behind it), which keeps the nonce handling simple: a 401 or 438 answer
 * updates realm/nonce and the same request goes again as a new transaction. */
#include "turn_client.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "stun.h"

#define TURN_DEFAULT_PORT 3478
/* a request with the longest USERNAME, REALM and NONCE STUN allows, and its attributes */
#define TURN_REQ_MAX 2304

typedef enum {
    ST_RESOLVING,
    ST_ALLOCATING,
    ST_READY,
    ST_FAILED,  /* on_error was called: nothing more happens until close */
    ST_CLOSING, /* deleting the allocation */
    ST_CLOSED,  /* handles closing */
} turn_state;

typedef enum {
    RQ_NONE,
    RQ_ALLOCATE,
    RQ_REFRESH,
    RQ_DELETE,
    RQ_PERMISSION,
    RQ_CHANNEL_BIND,
} turn_req_kind;

typedef struct {
    turn_req_kind kind;
    int peer; /* index into peers, for RQ_PERMISSION and RQ_CHANNEL_BIND */
} turn_req;

typedef struct {
    int used;
    struct sockaddr_storage addr;
    uint16_t channel;
    int permitted;
    int bound;
} turn_peer;

typedef struct {
    uv_udp_send_t req;
    size_t len;
    uint8_t data[]; /* owned by the send request: freed in its callback */
} turn_send;

struct pc_turn {
    uv_loop_t *loop;
    turn_state state;
    pc_turn_cbs cbs;
    void *arg;

    char host[PC_TURN_HOST_MAX];
    uint16_t port;
    struct sockaddr_storage server;
    char username[PARLEY_RELAY_STUN_USERNAME_MAX + 1];
    char password[PC_TURN_PASSWORD_MAX + 1];
    char realm[PARLEY_RELAY_STUN_REALM_MAX + 1];
    char nonce[PARLEY_RELAY_STUN_NONCE_MAX + 1];
    uint8_t key[STUN_LT_KEY_LEN];
    int have_key;
    int allocated; /* an Allocate succeeded: closing deletes it */
    uint32_t lifetime_s;
    uint32_t refresh_s;

    uv_getaddrinfo_t gai;
    int gai_pending;
    uv_udp_t udp;
    uv_timer_t rtx_timer;     /* retransmission of the request in flight */
    uv_timer_t refresh_timer; /* allocation refresh */
    uv_timer_t chan_timer;    /* channel (and permission) refresh */
    uv_timer_t close_timer;   /* bounded wait for the deletion's answer */
    int handles_open;

    /* the request in flight */
    turn_req cur;
    uint8_t tid[STUN_TID_LEN];
    uint8_t reqbuf[TURN_REQ_MAX];
    size_t reqlen;
    int tries;
    int auth_sent;   /* cur went with credentials at least once */
    int stale_count; /* 438 answers to cur in a row */

    turn_req queue[PC_TURN_QUEUE_MAX];
    size_t qhead, qlen;

    turn_peer peers[PC_TURN_PEERS_MAX];
    pc_turn_stats stats;
    uint8_t out[STUN_CHDATA_HEADER_LEN + PC_TURN_DATA_MAX + 64]; /* outgoing ChannelData/Send */
    uint8_t rx[PARLEY_RELAY_UDP_MAX_BYTES];
};

/* ---- URI ---- */

int pc_turn_uri_parse(const char *uri, char *host, size_t hostcap, uint16_t *port, pc_status *st)
{
    const char *p, *end, *q;
    size_t hlen;
    if (!uri || strncasecmp(uri, "turn:", 5) != 0)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: only turn: URIs are spoken",
                             uri ? uri : "(none)");
    p = uri + 5;
    q = strchr(p, '?');
    end = q ? q : p + strlen(p);
    if (q && strcasecmp(q, "?transport=udp") != 0)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: only transport=udp is spoken", uri);
    *port = TURN_DEFAULT_PORT;
    if (*p == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: unclosed [", uri);
        hlen = (size_t)(rb - p - 1);
        if (hlen == 0 || hlen >= hostcap)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: bad host", uri);
        memcpy(host, p + 1, hlen);
        host[hlen] = '\0';
        p = rb + 1;
        if (p < end && *p != ':')
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: junk after ]", uri);
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *hend = colon ? colon : end;
        hlen = (size_t)(hend - p);
        if (hlen == 0 || hlen >= hostcap)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: bad host", uri);
        memcpy(host, p, hlen);
        host[hlen] = '\0';
        p = hend;
    }
    if (p < end) { /* ":port" */
        unsigned long v = 0;
        const char *d = p + 1;
        if (d == end)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: empty port", uri);
        for (; d < end; d++) {
            if (*d < '0' || *d > '9' || v > 65535)
                return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: bad port", uri);
            v = v * 10 + (unsigned long)(*d - '0');
        }
        if (v == 0 || v > 65535)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN URI %s: bad port", uri);
        *port = (uint16_t)v;
    }
    return 0;
}

/* ---- small things ---- */

static int addr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return 0;
}

static size_t addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int find_peer(const pc_turn *t, const struct sockaddr *peer)
{
    for (int i = 0; i < PC_TURN_PEERS_MAX; i++)
        if (t->peers[i].used && addr_eq((const struct sockaddr *)&t->peers[i].addr, peer))
            return i;
    return -1;
}

static const char *req_name(turn_req_kind k)
{
    switch (k) {
    case RQ_ALLOCATE: return "Allocate";
    case RQ_REFRESH: return "Refresh";
    case RQ_DELETE: return "Refresh (delete)";
    case RQ_PERMISSION: return "CreatePermission";
    case RQ_CHANNEL_BIND: return "ChannelBind";
    default: return "request";
    }
}

/* long-term key = MD5(username ":" realm ":" password): MD5 from libcrypto because RFC 8489
 * mandates it and libsodium has none */
static int make_key(pc_turn *t)
{
    char buf[sizeof t->username + sizeof t->realm + sizeof t->password + 2];
    unsigned int klen = 0;
    int n = snprintf(buf, sizeof buf, "%s:%s:%s", t->username, t->realm, t->password);
    int ok = n > 0 && (size_t)n < sizeof buf &&
             EVP_Digest(buf, (size_t)n, t->key, &klen, EVP_md5(), NULL) == 1 &&
             klen == STUN_LT_KEY_LEN;
    sodium_memzero(buf, sizeof buf);
    t->have_key = ok;
    return ok ? 0 : -1;
}

/* ---- sending ---- */

static void on_sent(uv_udp_send_t *req, int status)
{
    turn_send *s = req->data;
    pc_turn *t = req->handle->data;
    if (status < 0 && t)
        t->stats.send_errors++;
    free(s);
}

/* Best effort: straight out when the socket takes it, else queued with a copy. */
static int udp_out(pc_turn *t, const uint8_t *data, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    const struct sockaddr *to = (const struct sockaddr *)&t->server;
    int rc = uv_udp_try_send(&t->udp, &b, 1, to);
    if (rc == (int)len)
        return 0;
    if (rc != UV_EAGAIN) {
        t->stats.send_errors++;
        return -1;
    }
    turn_send *s = malloc(sizeof *s + len);
    if (!s) {
        t->stats.send_errors++;
        return -1;
    }
    memcpy(s->data, data, len);
    s->len = len;
    s->req.data = s;
    b = uv_buf_init((char *)s->data, (unsigned)len);
    rc = uv_udp_send(&s->req, &t->udp, &b, 1, to, on_sent);
    if (rc < 0) {
        free(s);
        t->stats.send_errors++;
        return -1;
    }
    return 0;
}

/* Builds t->cur as a new transaction into reqbuf. 0 or -1. */
static int build_request(pc_turn *t)
{
    stun_builder b;
    uint16_t method;
    switch (t->cur.kind) {
    case RQ_ALLOCATE: method = TURN_ALLOCATE; break;
    case RQ_REFRESH:
    case RQ_DELETE: method = TURN_REFRESH; break;
    case RQ_PERMISSION: method = TURN_CREATE_PERMISSION; break;
    case RQ_CHANNEL_BIND: method = TURN_CHANNEL_BIND; break;
    default: return -1;
    }
    randombytes_buf(t->tid, sizeof t->tid);
    stun_build_begin(&b, t->reqbuf, sizeof t->reqbuf, method, STUN_REQUEST, t->tid);
    if (t->cur.kind == RQ_ALLOCATE) {
        stun_put_transport(&b, STUN_TRANSPORT_UDP);
        if (t->server.ss_family == AF_INET6)
            stun_put_family(&b, STUN_FAMILY_IPV6);
        stun_put_u32(&b, STUN_A_LIFETIME, t->lifetime_s);
    } else if (t->cur.kind == RQ_REFRESH) {
        stun_put_u32(&b, STUN_A_LIFETIME, t->lifetime_s);
    } else if (t->cur.kind == RQ_DELETE) {
        stun_put_u32(&b, STUN_A_LIFETIME, 0);
    } else {
        const turn_peer *p = &t->peers[t->cur.peer];
        if (t->cur.kind == RQ_CHANNEL_BIND)
            stun_put_channel(&b, p->channel);
        stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, (const struct sockaddr *)&p->addr);
    }
    if (t->have_key) {
        stun_put(&b, STUN_A_USERNAME, t->username, strlen(t->username));
        stun_put(&b, STUN_A_REALM, t->realm, strlen(t->realm));
        stun_put(&b, STUN_A_NONCE, t->nonce, strlen(t->nonce));
        stun_put_integrity(&b, t->key, sizeof t->key);
        t->auth_sent = 1;
    }
    stun_put_fingerprint(&b);
    t->reqlen = stun_build_end(&b);
    return t->reqlen ? 0 : -1;
}


static void copy_attr_str(char *dst, size_t cap, const stun_attr *a)
{
    size_t n = a->len < cap - 1 ? a->len : cap - 1;
    memcpy(dst, a->val, n);
    dst[n] = '\0';
}

/* ---- failure and closing ---- */

static void on_rtx(uv_timer_t *h);

static int failable(const pc_turn *t)
{
    return t->state == ST_RESOLVING || t->state == ST_ALLOCATING || t->state == ST_READY;
}

/* The allocation is unusable: stop everything and tell the caller once. */
static void fail(pc_turn *t, pc_status_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(pc_turn *t, pc_status_kind kind, const char *fmt, ...)
{
    char msg[PC_STATUS_MSG_MAX];
    va_list ap;
    pc_status st;
    if (!failable(t))
        return;
    t->state = ST_FAILED;
    t->cur.kind = RQ_NONE;
    t->qlen = 0;
    uv_timer_stop(&t->rtx_timer);
    uv_timer_stop(&t->refresh_timer);
    uv_timer_stop(&t->chan_timer);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_status_set(&st, kind, "%s", msg);
    if (t->cbs.on_error)
        t->cbs.on_error(t, &st, t->arg);
}

static void finalize(pc_turn *t)
{
    if (t->cbs.on_closed)
        t->cbs.on_closed(t, t->arg);
    sodium_memzero(t->password, sizeof t->password);
    sodium_memzero(t->key, sizeof t->key);
    free(t);
}

static void on_handle_closed(uv_handle_t *h)
{
    pc_turn *t = h->data;
    if (--t->handles_open == 0 && !t->gai_pending)
        finalize(t);
}

static void close_handles(pc_turn *t)
{
    if (t->state == ST_CLOSED)
        return;
    t->state = ST_CLOSED;
    t->cur.kind = RQ_NONE;
    if (t->gai_pending)
        uv_cancel((uv_req_t *)&t->gai);
    uv_udp_recv_stop(&t->udp);
    uv_close((uv_handle_t *)&t->udp, on_handle_closed);
    uv_close((uv_handle_t *)&t->rtx_timer, on_handle_closed);
    uv_close((uv_handle_t *)&t->refresh_timer, on_handle_closed);
    uv_close((uv_handle_t *)&t->chan_timer, on_handle_closed);
    uv_close((uv_handle_t *)&t->close_timer, on_handle_closed);
}

static void on_close_timer(uv_timer_t *h)
{
    close_handles(h->data);
}

/* ---- requests ---- */

/* Sends t->cur as a new transaction and arms its retransmission. */
static void send_current(pc_turn *t)
{
    if (build_request(t) < 0) {
        turn_req_kind k = t->cur.kind;
        t->cur.kind = RQ_NONE;
        if (k == RQ_DELETE)
            close_handles(t);
        else
            fail(t, PC_ERR_LOCAL, "TURN %s: could not build the request", req_name(k));
        return;
    }
    t->tries = 1;
    t->stats.requests++;
    udp_out(t, t->reqbuf, t->reqlen); /* a lost send is covered by retransmission */
    uv_timer_start(&t->rtx_timer, on_rtx, PC_TURN_RTO_MS, 0);
}

static void next_request(pc_turn *t)
{
    if (t->cur.kind != RQ_NONE || t->qlen == 0 || t->state != ST_READY)
        return;
    t->cur = t->queue[t->qhead];
    t->qhead = (t->qhead + 1) % PC_TURN_QUEUE_MAX;
    t->qlen--;
    t->auth_sent = 0;
    t->stale_count = 0;
    send_current(t);
}

static int enqueue(pc_turn *t, turn_req_kind kind, int peer)
{
    if (t->qlen == PC_TURN_QUEUE_MAX)
        return -1;
    t->queue[(t->qhead + t->qlen) % PC_TURN_QUEUE_MAX] = (turn_req){kind, peer};
    t->qlen++;
    return 0;
}

/* The retransmission timer; with nothing in flight it starts the next queued request (a zero
 * timeout defers that to the loop, out of the caller's call). */
static void on_rtx(uv_timer_t *h)
{
    pc_turn *t = h->data;
    uint64_t wait;
    if (t->cur.kind == RQ_NONE) {
        next_request(t);
        return;
    }
    if (t->tries >= PC_TURN_RC) {
        turn_req_kind k = t->cur.kind;
        t->cur.kind = RQ_NONE;
        if (k == RQ_DELETE)
            close_handles(t);
        else
            fail(t, PC_ERR_TIMEOUT, "TURN %s: no answer from the relay %s:%u", req_name(k),
                 t->host, (unsigned)t->port);
        return;
    }
    udp_out(t, t->reqbuf, t->reqlen);
    t->tries++;
    t->stats.retransmits++;
    wait = t->tries >= PC_TURN_RC ? (uint64_t)PC_TURN_RM * PC_TURN_RTO_MS
                                  : (uint64_t)PC_TURN_RTO_MS << (t->tries - 1);
    uv_timer_start(&t->rtx_timer, on_rtx, wait, 0);
}

static void kick(pc_turn *t)
{
    if (t->cur.kind == RQ_NONE && t->qlen && !uv_is_active((uv_handle_t *)&t->rtx_timer))
        uv_timer_start(&t->rtx_timer, on_rtx, 0, 0);
}

static void on_refresh_timer(uv_timer_t *h)
{
    pc_turn *t = h->data;
    if (enqueue(t, RQ_REFRESH, -1) < 0) {
        fail(t, PC_ERR_LOCAL, "TURN Refresh: request queue full");
        return;
    }
    next_request(t);
}

static void on_chan_timer(uv_timer_t *h)
{
    pc_turn *t = h->data;
    for (int i = 0; i < PC_TURN_PEERS_MAX; i++)
        if (t->peers[i].used && t->peers[i].bound && enqueue(t, RQ_CHANNEL_BIND, i) < 0) {
            fail(t, PC_ERR_LOCAL, "TURN ChannelBind: request queue full");
            return;
        }
    next_request(t);
}

/* ---- answers ---- */

static void handle_success(pc_turn *t, const turn_req *req, const stun_msg *m)
{
    if (req->kind == RQ_ALLOCATE || req->kind == RQ_REFRESH) {
        const stun_attr *la = stun_find(m, STUN_A_LIFETIME);
        uint32_t life = t->lifetime_s;
        if (la && stun_get_u32(la, &life) != STUN_OK)
            life = t->lifetime_s;
        if (life < 2)
            life = 2;
        /* at half the granted lifetime: room for a whole retransmission series before expiry */
        uint64_t after_ms = (uint64_t)life * 500;
        if (t->refresh_s && (uint64_t)t->refresh_s * 1000 < after_ms)
            after_ms = (uint64_t)t->refresh_s * 1000;
        uv_timer_start(&t->refresh_timer, on_refresh_timer, after_ms, 0);
    }
    if (req->kind == RQ_ALLOCATE) {
        const stun_attr *ra = stun_find(m, STUN_A_XOR_RELAYED_ADDRESS);
        const stun_attr *ma = stun_find(m, STUN_A_XOR_MAPPED_ADDRESS);
        struct sockaddr_storage relayed, mapped;
        memset(&mapped, 0, sizeof mapped);
        if (!ra || stun_get_addr(m, ra, 1, &relayed) != STUN_OK) {
            fail(t, PC_ERR_PROTO, "TURN Allocate: no relayed address in the answer");
            return;
        }
        if (ma && stun_get_addr(m, ma, 1, &mapped) != STUN_OK)
            memset(&mapped, 0, sizeof mapped);
        t->state = ST_READY;
        t->allocated = 1;
        if (t->cbs.on_ready)
            t->cbs.on_ready(t, (const struct sockaddr *)&relayed,
                            (const struct sockaddr *)&mapped, t->arg);
    } else if (req->kind == RQ_REFRESH) {
        t->stats.refreshes++;
    } else if (req->kind == RQ_PERMISSION) {
        t->peers[req->peer].permitted = 1;
    } else if (req->kind == RQ_CHANNEL_BIND) {
        turn_peer *p = &t->peers[req->peer];
        int first = !p->bound;
        p->bound = 1;
        p->permitted = 1;
        if (!uv_is_active((uv_handle_t *)&t->chan_timer))
            uv_timer_start(&t->chan_timer, on_chan_timer, PC_TURN_CHANNEL_REFRESH_S * 1000ull,
                           PC_TURN_CHANNEL_REFRESH_S * 1000ull);
        if (first && t->cbs.on_peer)
            t->cbs.on_peer(t, (const struct sockaddr *)&p->addr, t->arg);
    }
}

/* 401 (first try) and 438: take the realm and nonce and send the request again. 1 when it was
 * retried, 0 when the answer is final. */
static int retry_with_nonce(pc_turn *t, int code, const stun_msg *m)
{
    const stun_attr *ra = stun_find(m, STUN_A_REALM);
    const stun_attr *na = stun_find(m, STUN_A_NONCE);
    if (code == STUN_ERR_UNAUTHORIZED && t->auth_sent)
        return 0; /* our credentials were refused */
    if (code == STUN_ERR_STALE_NONCE && ++t->stale_count > PC_TURN_STALE_RETRIES)
        return 0;
    if (!na || (!ra && !t->realm[0]) || na->len > PARLEY_RELAY_STUN_NONCE_MAX ||
        (ra && ra->len > PARLEY_RELAY_STUN_REALM_MAX))
        return 0;
    if (code == STUN_ERR_STALE_NONCE)
        t->stats.stale_nonces++;
    copy_attr_str(t->nonce, sizeof t->nonce, na);
    if (ra)
        copy_attr_str(t->realm, sizeof t->realm, ra);
    if (make_key(t) < 0)
        return 0;
    send_current(t);
    return 1;
}

static void handle_response(pc_turn *t, const stun_msg *m)
{
    turn_req req = t->cur;
    if (req.kind == RQ_NONE || memcmp(m->tid, t->tid, STUN_TID_LEN) != 0)
        return; /* late answer to an earlier transaction */
    if (m->cls == STUN_SUCCESS) {
        /* an answer that fails integrity was not sent by the relay: wait for the real one */
        if (t->have_key && stun_check_integrity(m, t->key, sizeof t->key) != STUN_OK)
            return;
        uv_timer_stop(&t->rtx_timer);
        t->cur.kind = RQ_NONE;
        if (req.kind == RQ_DELETE) {
            close_handles(t);
            return;
        }
        handle_success(t, &req, m);
    } else {
        const stun_attr *ea = stun_find(m, STUN_A_ERROR_CODE);
        int code = 0;
        const char *reason = "";
        size_t rlen = 0;
        if (!ea || stun_get_error(ea, &code, &reason, &rlen) != STUN_OK)
            code = 0;
        uv_timer_stop(&t->rtx_timer);
        if ((code == STUN_ERR_UNAUTHORIZED || code == STUN_ERR_STALE_NONCE) &&
            retry_with_nonce(t, code, m))
            return;
        t->cur.kind = RQ_NONE;
        if (req.kind == RQ_DELETE) {
            close_handles(t);
            return;
        }
        fail(t, PC_ERR_SERVER, "TURN %s: relay answered %d %.*s", req_name(req.kind), code,
             (int)(rlen > 100 ? 100 : rlen), reason);
        return;
    }
    next_request(t);
}

static void handle_data_indication(pc_turn *t, const stun_msg *m)
{
    const stun_attr *pa = stun_find(m, STUN_A_XOR_PEER_ADDRESS);
    const stun_attr *da = stun_find(m, STUN_A_DATA);
    struct sockaddr_storage peer;
    if (!pa || !da || stun_get_addr(m, pa, 1, &peer) != STUN_OK)
        return;
    if (find_peer(t, (const struct sockaddr *)&peer) < 0)
        return;
    if (t->cbs.on_data)
        t->cbs.on_data(t, (const struct sockaddr *)&peer, da->val, da->len, t->arg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pc_turn *t = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)t->rx, sizeof t->rx);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    pc_turn *t = h->data;
    const uint8_t *d = (const uint8_t *)buf->base;
    stun_msg m;
    if (nread <= 0 || !from || (flags & UV_UDP_PARTIAL) || t->state == ST_CLOSED)
        return;
    if (!addr_eq(from, (const struct sockaddr *)&t->server))
        return; /* only the relay talks to this socket */
    if ((d[0] & 0xC0) == 0x40) {
        uint16_t ch;
        const uint8_t *data;
        size_t dlen;
        if (stun_chdata_parse(d, (size_t)nread, &ch, &data, &dlen) != STUN_OK)
            return;
        for (int i = 0; i < PC_TURN_PEERS_MAX; i++) {
            turn_peer *p = &t->peers[i];
            if (p->used && p->bound && p->channel == ch) {
                t->stats.chdata_received++;
                if (t->state == ST_READY && t->cbs.on_data)
                    t->cbs.on_data(t, (const struct sockaddr *)&p->addr, data, dlen, t->arg);
                return;
            }
        }
        return;
    }
    if (stun_parse(&m, d, (size_t)nread) != STUN_OK)
        return;
    if (m.cls == STUN_INDICATION && m.method == TURN_DATA) {
        if (t->state == ST_READY)
            handle_data_indication(t, &m);
    } else if (m.cls == STUN_SUCCESS || m.cls == STUN_ERROR_RESPONSE) {
        handle_response(t, &m);
    }
}

/* ---- setup ---- */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pc_turn *t = req->data;
    int rc;
    t->gai_pending = 0;
    if (t->state == ST_CLOSED) {
        uv_freeaddrinfo(res);
        if (t->handles_open == 0)
            finalize(t);
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        fail(t, PC_ERR_NET, "TURN relay %s: %s", t->host,
             uv_strerror(status < 0 ? status : UV_EAI_NONAME));
        return;
    }
    memset(&t->server, 0, sizeof t->server);
    memcpy(&t->server, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    if (t->server.ss_family == AF_INET6) {
        struct sockaddr_in6 any6;
        uv_ip6_addr("::", 0, &any6);
        rc = uv_udp_bind(&t->udp, (const struct sockaddr *)&any6, 0);
    } else {
        struct sockaddr_in any4;
        uv_ip4_addr("0.0.0.0", 0, &any4);
        rc = uv_udp_bind(&t->udp, (const struct sockaddr *)&any4, 0);
    }
    if (rc == 0)
        rc = uv_udp_recv_start(&t->udp, on_alloc, on_recv);
    if (rc < 0) {
        fail(t, PC_ERR_NET, "TURN: UDP socket: %s", uv_strerror(rc));
        return;
    }
    t->state = ST_ALLOCATING;
    t->cur = (turn_req){RQ_ALLOCATE, -1};
    t->auth_sent = 0;
    t->stale_count = 0;
    send_current(t);
}

pc_turn *pc_turn_new(uv_loop_t *loop, const pc_turn_config *cfg, const pc_turn_cbs *cbs,
                     void *arg, pc_status *st)
{
    char host[PC_TURN_HOST_MAX];
    char portstr[8];
    uint16_t port;
    struct addrinfo hints;
    pc_turn *t;
    int rc;
    if (!loop || !cfg || !cfg->username || !cfg->password) {
        pc_status_set(st, PC_ERR_LOCAL, "TURN: missing configuration");
        return NULL;
    }
    if (pc_turn_uri_parse(cfg->uri, host, sizeof host, &port, st) < 0)
        return NULL;
    if (!cfg->username[0] || strlen(cfg->username) > PARLEY_RELAY_STUN_USERNAME_MAX ||
        strlen(cfg->password) > PC_TURN_PASSWORD_MAX) {
        pc_status_set(st, PC_ERR_LOCAL, "TURN: username or password empty or too long");
        return NULL;
    }
    if (sodium_init() < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "libsodium did not initialise");
        return NULL;
    }
    t = calloc(1, sizeof *t);
    if (!t) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    t->loop = loop;
    if (cbs)
        t->cbs = *cbs;
    t->arg = arg;
    snprintf(t->host, sizeof t->host, "%s", host);
    t->port = port;
    snprintf(t->username, sizeof t->username, "%s", cfg->username);
    snprintf(t->password, sizeof t->password, "%s", cfg->password);
    t->lifetime_s = cfg->lifetime_s ? cfg->lifetime_s : PC_TURN_LIFETIME_S;
    t->refresh_s = cfg->refresh_s;
    t->state = ST_RESOLVING;
    t->cur.kind = RQ_NONE;
    uv_udp_init(loop, &t->udp);
    uv_timer_init(loop, &t->rtx_timer);
    uv_timer_init(loop, &t->refresh_timer);
    uv_timer_init(loop, &t->chan_timer);
    uv_timer_init(loop, &t->close_timer);
    t->udp.data = t->rtx_timer.data = t->refresh_timer.data = t->chan_timer.data =
        t->close_timer.data = t;
    t->handles_open = 5;
    t->gai.data = t;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_protocol = IPPROTO_UDP;
    snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
    t->gai_pending = 1;
    rc = uv_getaddrinfo(loop, &t->gai, on_resolved, t->host, portstr, &hints);
    if (rc < 0) {
        t->gai_pending = 0;
        memset(&t->cbs, 0, sizeof t->cbs); /* the caller gets NULL, never a callback */
        close_handles(t);
        pc_status_set(st, PC_ERR_NET, "TURN relay %s: %s", host, uv_strerror(rc));
        return NULL;
    }
    return t;
}

/* ---- the caller's operations ---- */

int pc_turn_add_peer(pc_turn *t, const struct sockaddr *peer, pc_status *st)
{
    int slot = -1;
    if (t->state != ST_READY)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: no allocation yet");
    if (!peer || (peer->sa_family != AF_INET && peer->sa_family != AF_INET6))
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: bad peer address");
    if (find_peer(t, peer) >= 0)
        return 0;
    for (int i = 0; i < PC_TURN_PEERS_MAX && slot < 0; i++)
        if (!t->peers[i].used)
            slot = i;
    if (slot < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: more than %d peers", PC_TURN_PEERS_MAX);
    if (t->qlen + 2 > PC_TURN_QUEUE_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: request queue full");
    turn_peer *p = &t->peers[slot];
    memset(p, 0, sizeof *p);
    memcpy(&p->addr, peer, addr_len(peer));
    p->used = 1;
    p->channel = (uint16_t)(STUN_CHANNEL_MIN + slot);
    enqueue(t, RQ_PERMISSION, slot);
    enqueue(t, RQ_CHANNEL_BIND, slot);
    kick(t);
    return 0;
}

int pc_turn_send(pc_turn *t, const struct sockaddr *peer, const uint8_t *data, size_t len,
                 pc_status *st)
{
    int i;
    size_t n;
    if (t->state != ST_READY)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: no allocation");
    if (len > PC_TURN_DATA_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: %zu bytes is more than %d", len,
                             PC_TURN_DATA_MAX);
    i = find_peer(t, peer);
    if (i < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "TURN: not a peer of this allocation");
    if (t->peers[i].bound) {
        stun_chdata_header(t->out, t->peers[i].channel, len);
        memcpy(t->out + STUN_CHDATA_HEADER_LEN, data, len);
        n = STUN_CHDATA_HEADER_LEN + len;
        t->stats.chdata_sent++;
    } else {
        stun_builder b;
        uint8_t tid[STUN_TID_LEN];
        randombytes_buf(tid, sizeof tid);
        stun_build_begin(&b, t->out, sizeof t->out, TURN_SEND, STUN_INDICATION, tid);
        stun_put_addr(&b, STUN_A_XOR_PEER_ADDRESS, 1, peer);
        stun_put(&b, STUN_A_DATA, data, len);
        n = stun_build_end(&b);
        if (!n)
            return pc_status_set(st, PC_ERR_LOCAL, "TURN: Send indication did not fit");
    }
    if (udp_out(t, t->out, n) < 0)
        return pc_status_set(st, PC_ERR_NET, "TURN: UDP send failed");
    return 0;
}

void pc_turn_close(pc_turn *t)
{
    pc_turn_cbs keep = {0};
    if (!t || t->state == ST_CLOSING || t->state == ST_CLOSED)
        return;
    keep.on_closed = t->cbs.on_closed;
    t->cbs = keep; /* nothing but on_closed from here on */
    uv_timer_stop(&t->refresh_timer);
    uv_timer_stop(&t->chan_timer);
    uv_timer_stop(&t->rtx_timer);
    t->qlen = 0;
    if (!t->allocated) {
        close_handles(t); /* nothing to delete (an Allocate in flight expires by itself) */
        return;
    }
    t->state = ST_CLOSING;
    t->cur = (turn_req){RQ_DELETE, -1};
    t->auth_sent = 0;
    t->stale_count = 0;
    send_current(t);
    if (t->state == ST_CLOSING)
        uv_timer_start(&t->close_timer, on_close_timer, PC_TURN_CLOSE_WAIT_MS, 0);
}

void pc_turn_get_stats(const pc_turn *t, pc_turn_stats *out)
{
    *out = t->stats;
}
