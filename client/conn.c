#include "conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctx_internal.h"
#include "url.h"
#include "wire.h"

enum { ST_CONNECTING, ST_OPEN, ST_CLOSED };

/* A close frame's payload is at most 125 bytes, 2 of them the code. */
#define CLOSE_REASON_MAX 123
/* lws's opcode for a close frame: internal to lws (its public enum stops short of it) and
 * unchanged since lws 2.x. */
#define PC_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

typedef struct pc_out {
    struct pc_out *next;
    size_t len;
    int binary;
    uint8_t buf[]; /* LWS_PRE bytes of headroom for lws, then the message */
} pc_out;

typedef struct pc_req {
    struct pc_req *next;
    uint64_t id;
    pc_response_cb cb;
    void *ud;
} pc_req;

struct pc_conn {
    pc_ctx *ctx;
    struct pc_conn *prev, *next;   /* ctx->conns */
    struct pc_conn *defer_next;    /* ctx->deferred */
    int deferred;
    struct lws *wsi;
    pc_conn_events ev;
    void *ud;
    char *url;
    pc_url u;
    int state;
    int opening;      /* inside lws_client_connect_via_info: nothing may be reported yet */
    int busy;         /* user callbacks on the stack: memory must stay */
    int freed;        /* pc_conn_free was called: memory goes when wsi and busy are gone */
    int notify_close; /* the close is reported from the deferred timer */
    pc_status close_st;
    pc_status local_err; /* why we closed the socket ourselves, if we did */
    int peer_code;
    char peer_reason[CLOSE_REASON_MAX + 1];

    pc_out *out_head, *out_tail;
    size_t out_bytes;
    int close_requested;
    int close_code;
    char close_reason[CLOSE_REASON_MAX + 1];

    uint8_t *rx;
    size_t rx_len, rx_cap;
    int rx_binary, rx_too_big;

    uint64_t next_id;
    pc_req *reqs;

    int have_ch;
    pc_challenge ch;
    pc_challenge_cb ch_cb;
    void *ch_ud;
};

/* ---- memory ---------------------------------------------------------------------------- */

static void drop_queues(pc_conn *c)
{
    while (c->out_head) {
        pc_out *o = c->out_head;
        c->out_head = o->next;
        free(o);
    }
    c->out_tail = NULL;
    c->out_bytes = 0;
    while (c->reqs) {
        pc_req *r = c->reqs;
        c->reqs = r->next;
        free(r);
    }
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

static void unlink_ctx(pc_conn *c)
{
    if (!c->ctx)
        return;
    if (c->deferred) {
        pc_conn **pp = &c->ctx->deferred;
        while (*pp && *pp != c)
            pp = &(*pp)->defer_next;
        if (*pp)
            *pp = c->defer_next;
        c->deferred = 0;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        c->ctx->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->ctx = NULL;
}

static void release(pc_conn *c)
{
    unlink_ctx(c);
    drop_queues(c);
    free(c->url);
    free(c);
}

static void maybe_release(pc_conn *c)
{
    if (c->freed && !c->wsi && !c->busy)
        release(c);
}

/* ---- close reporting -------------------------------------------------------------------- */

static void report_close(pc_conn *c, const pc_status *st)
{
    pc_req *reqs = c->reqs;

    c->reqs = NULL;
    c->busy++;
    if (c->ch_cb && !c->freed) {
        pc_challenge_cb cb = c->ch_cb;
        c->ch_cb = NULL;
        cb(c, NULL, st, c->ch_ud);
    }
    while (reqs) {
        pc_req *r = reqs;
        reqs = r->next;
        if (!c->freed)
            r->cb(c, NULL, st, r->ud);
        free(r);
    }
    if (!c->freed && c->ev.on_close)
        c->ev.on_close(c, st, c->ud);
    c->busy--;
    maybe_release(c);
}

static void defer(pc_conn *c)
{
    pc_conn **pp;

    if (c->deferred || !c->ctx)
        return;
    c->deferred = 1;
    c->defer_next = NULL;
    pp = &c->ctx->deferred;
    while (*pp)
        pp = &(*pp)->defer_next;
    *pp = c;
    pc_ctx_kick(c->ctx);
}

void pc_conn_run_deferred(pc_ctx *ctx)
{
    pc_conn *c;

    while ((c = ctx->deferred)) {
        ctx->deferred = c->defer_next;
        c->deferred = 0;
        if (c->notify_close) {
            c->notify_close = 0;
            report_close(c, &c->close_st); /* may release c */
        }
    }
}

static void dispatch(pc_conn *c, const Parley__V1__ServerFrame *f);
static void salvage(pc_conn *c, struct lws *wsi);

/* The socket of wsi is gone (failed, closed, or destroyed): say why, once. */
static void on_gone(pc_conn *c, struct lws *wsi, const char *lws_msg)
{
    pc_status st;
    int was_open = c->state == ST_OPEN;

    /* no close frame seen: maybe a reset made lws skip what the server sent last */
    if (wsi && was_open && !c->peer_code && !c->freed)
        salvage(c, wsi);
    /* lws may still call back for wsi (WSI_DESTROY), possibly after c is freed: cut it off.
     * wsi can differ from c->wsi when the connect failed inside lws_client_connect_via_info. */
    if (wsi)
        lws_set_wsi_user(wsi, NULL);
    if (c->wsi && c->wsi != wsi)
        lws_set_wsi_user(c->wsi, NULL);
    c->wsi = NULL;
    if (c->state == ST_CLOSED) {
        maybe_release(c);
        return;
    }
    c->state = ST_CLOSED;
    pc_status_ok(&st);
    if (c->local_err.kind != PC_OK) {
        st = c->local_err;
    } else if (c->peer_code) {
        st.kind = PC_ERR_NET;
        st.close_code = c->peer_code;
        snprintf(st.msg, sizeof st.msg, "connection closed by server with code %d%s%s",
                 c->peer_code, c->peer_reason[0] ? ": " : "", c->peer_reason);
    } else if (c->close_requested) {
        st.kind = PC_ERR_NET;
        snprintf(st.msg, sizeof st.msg, "connection closed");
    } else {
        st.kind = PC_ERR_NET;
        /* lws reports a refused TCP connect as "closed before established" */
        if (!was_open && (!lws_msg || !*lws_msg || strstr(lws_msg, "before established")))
            snprintf(st.msg, sizeof st.msg, "connection refused or closed before the handshake");
        else if (!was_open && strstr(lws_msg, "SSL"))
            snprintf(st.msg, sizeof st.msg,
                     "TLS handshake failed (certificate not trusted or not for this host): %s",
                     lws_msg);
        else
            snprintf(st.msg, sizeof st.msg, "%s",
                     lws_msg && *lws_msg ? lws_msg : was_open ? "connection lost"
                                                              : "connection failed");
    }
    if (c->freed) {
        maybe_release(c);
        return;
    }
    c->close_st = st;
    c->notify_close = 1;
    if (c->opening) {
        defer(c);
        return;
    }
    c->notify_close = 0;
    report_close(c, &st);
}

/* ---- incoming ------------------------------------------------------------------------- */

static void store_challenge(pc_conn *c, const Parley__V1__Challenge *ch)
{
    size_t gl = strlen(ch->gateway_id ? ch->gateway_id : "");

    memset(&c->ch, 0, sizeof c->ch);
    memcpy(c->ch.nonce, ch->nonce.data, PARLEY_CHALLENGE_BYTES);
    if (gl > PARLEY_GATEWAY_ID_MAX)
        gl = PARLEY_GATEWAY_ID_MAX;
    memcpy(c->ch.gateway_id, ch->gateway_id, gl);
    c->ch.pow_difficulty = ch->pow_difficulty;
    c->ch.server_time_ms = ch->server_time_ms;
    c->have_ch = 1;
}

static void give_challenge(pc_conn *c)
{
    pc_challenge_cb cb = c->ch_cb;

    if (!c->have_ch || !cb || c->freed)
        return;
    c->ch_cb = NULL;
    c->have_ch = 0;
    c->busy++;
    cb(c, &c->ch, NULL, c->ch_ud);
    c->busy--;
}

static pc_req *take_req(pc_conn *c, uint64_t id)
{
    pc_req **pp = &c->reqs;

    while (*pp) {
        pc_req *r = *pp;
        if (r->id == id) {
            *pp = r->next;
            return r;
        }
        pp = &r->next;
    }
    return NULL;
}

static void dispatch(pc_conn *c, const Parley__V1__ServerFrame *f)
{
    pc_req *r;

    c->busy++;
    if (c->ev.on_tap)
        c->ev.on_tap(c, f, c->ud);
    if (c->freed)
        goto out;
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE) {
        store_challenge(c, f->challenge);
        give_challenge(c);
    } else if (f->request_id && (r = take_req(c, f->request_id))) {
        pc_status ok;
        pc_status_ok(&ok);
        r->cb(c, f, &ok, r->ud);
        free(r);
    } else if (c->ev.on_frame) {
        c->ev.on_frame(c, f, c->ud);
    }
out:
    c->busy--;
}

/* lws 4.1.6 on a libuv loop drops the close frame of lws_close_reason() + return -1 (the peer
 * only sees the TCP close), so callers write it here and then return -1 to drop the socket. */
static void write_close(struct lws *wsi, int code, const char *reason)
{
    uint8_t buf[LWS_PRE + 2 + CLOSE_REASON_MAX];
    size_t rl = strlen(reason);

    if (rl > CLOSE_REASON_MAX)
        rl = CLOSE_REASON_MAX;
    buf[LWS_PRE] = (uint8_t)(code >> 8);
    buf[LWS_PRE + 1] = (uint8_t)code;
    memcpy(buf + LWS_PRE + 2, reason, rl);
    lws_write(wsi, buf + LWS_PRE, 2 + rl, PC_LWS_WRITE_CLOSE);
}

/* Closes the socket with code (returns -1 for the lws callback to return). */
static int fail_local(pc_conn *c, struct lws *wsi, int code, pc_status_kind kind, const char *msg)
{
    pc_status_set(&c->local_err, kind, "%s", msg);
    write_close(wsi, code, msg);
    return -1;
}

static int on_receive(pc_conn *c, struct lws *wsi, const uint8_t *in, size_t len)
{
    Parley__V1__ServerFrame *f;
    /* a message that arrives in one piece (the usual case) is decoded where lws holds it: no
     * copy and no allocation per frame */
    int whole = lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi);

    if (lws_is_first_fragment(wsi)) {
        c->rx_len = 0;
        c->rx_too_big = 0;
        c->rx_binary = lws_frame_is_binary(wsi);
    }
    if (!c->rx_too_big && c->rx_len + len > PARLEY_MAX_FRAME_BYTES)
        c->rx_too_big = 1;
    if (!c->rx_too_big && len && !whole) {
        if (c->rx_len + len > c->rx_cap) {
            size_t cap = c->rx_cap ? c->rx_cap : 1024;
            uint8_t *nb;
            while (cap < c->rx_len + len)
                cap *= 2;
            nb = realloc(c->rx, cap);
            if (!nb)
                return fail_local(c, wsi, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, PC_ERR_LOCAL,
                                  "out of memory");
            c->rx = nb;
            c->rx_cap = cap;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi))
        return 0;
    if (c->rx_too_big)
        return fail_local(c, wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, PC_ERR_PROTO,
                          "server sent a frame over the size limit");
    if (!c->rx_binary)
        return fail_local(c, wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, PC_ERR_PROTO,
                          "server sent a text frame");
    f = whole ? parley__v1__server_frame__unpack(NULL, len, in)
              : parley__v1__server_frame__unpack(NULL, c->rx_len, c->rx);
    /* an idle connection keeps no receive buffer: a load generator holds many thousands */
    c->rx_len = 0;
    free(c->rx);
    c->rx = NULL;
    c->rx_cap = 0;
    if (!f)
        return fail_local(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, PC_ERR_PROTO,
                          "server sent an undecodable frame");
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_CHALLENGE &&
        (!f->challenge || f->challenge->nonce.len != PARLEY_CHALLENGE_BYTES)) {
        parley__v1__server_frame__free_unpacked(f, NULL);
        return fail_local(c, wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, PC_ERR_PROTO,
                          "server sent a malformed challenge");
    }
    if (!c->freed)
        dispatch(c, f);
    parley__v1__server_frame__free_unpacked(f, NULL);
    return 0;
}

/* A server that closes its socket while our data is still arriving makes its kernel answer with
 * a reset; libuv then reports the socket as failed and lws drops it without reading what the
 * server sent just before (typically an Error and its close frame, e.g. after FRAME_TOO_LARGE).
 * The kernel still holds those bytes and lws has not closed the fd yet when it reports the
 * close, so read them here and handle the complete frames. Only for plain ws:// (TLS records
 * cannot be read around OpenSSL) and only when lws stopped between two messages. */
static void salvage(pc_conn *c, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    size_t cap = PARLEY_MAX_FRAME_BYTES + 14 + 2 + CLOSE_REASON_MAX + 4, len = 0, off = 0;
    uint8_t *buf;
    ssize_t n;

    if (fd < 0 || lws_is_ssl(wsi) || c->rx_len || lws_remaining_packet_payload(wsi))
        return;
    buf = malloc(cap);
    if (!buf)
        return;
    while (len < cap && (n = recv(fd, buf + len, cap - len, MSG_DONTWAIT)) > 0)
        len += (size_t)n;
    while (len - off >= 2 && !c->freed) {
        const uint8_t *p = buf + off;
        int op = p[0] & 0x0f, fin = p[0] & 0x80;
        size_t hdr = 2;
        uint64_t plen = p[1] & 0x7f;

        if (p[1] & 0x80)
            break; /* servers never mask: this is not a frame boundary */
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (plen == 127) {
            if (len - off < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | p[2 + i];
            hdr = 10;
        }
        if (plen > len - off - hdr)
            break;
        if (op == 0x2 && fin) {
            Parley__V1__ServerFrame *f =
                parley__v1__server_frame__unpack(NULL, (size_t)plen, p + hdr);
            if (f) {
                dispatch(c, f);
                parley__v1__server_frame__free_unpacked(f, NULL);
            }
        } else if (op == 0x8) {
            if (plen >= 2) {
                size_t rl = plen - 2 > CLOSE_REASON_MAX ? CLOSE_REASON_MAX : (size_t)plen - 2;
                c->peer_code = p[hdr] << 8 | p[hdr + 1];
                memcpy(c->peer_reason, p + hdr + 2, rl);
                c->peer_reason[rl] = '\0';
            }
            break;
        } else if (op == 0x0 || op == 0x1 || (op == 0x2 && !fin)) {
            break; /* fragments and text are not ours to piece together here */
        }
        off += hdr + (size_t)plen;
    }
    free(buf);
}

/* ---- outgoing ------------------------------------------------------------------------- */

static int on_writable(pc_conn *c, struct lws *wsi)
{
    pc_out *o = c->out_head;

    if (o) {
        int n;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        c->out_bytes -= o->len;
        n = lws_write(wsi, o->buf + LWS_PRE, o->len,
                      o->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        free(o);
        if (n < 0) {
            pc_status_set(&c->local_err, PC_ERR_NET, "write to server failed");
            return -1;
        }
        if (c->out_head || c->close_requested)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->close_requested) {
        write_close(wsi, c->close_code, c->close_reason);
        return -1;
    }
    return 0;
}

static int enqueue(pc_conn *c, const void *data, size_t len, int binary, pc_status *st)
{
    pc_out *o;

    if (c->state == ST_CLOSED || c->close_requested || c->freed)
        return pc_status_set(st, PC_ERR_NET, "connection closed");
    o = malloc(sizeof *o + LWS_PRE + len);
    if (!o)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    o->next = NULL;
    o->len = len;
    o->binary = binary;
    if (len)
        memcpy(o->buf + LWS_PRE, data, len);
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    c->out_bytes += len;
    if (c->wsi && c->state == ST_OPEN)
        lws_callback_on_writable(c->wsi);
    return 0;
}

static int enqueue_frame(pc_conn *c, const Parley__V1__ClientFrame *f, pc_status *st)
{
    size_t n = parley__v1__client_frame__get_packed_size(f);
    uint8_t *buf;
    int rc;

    if (n > PARLEY_MAX_FRAME_BYTES)
        return pc_status_set(st, PC_ERR_LOCAL, "frame of %zu bytes is over the %d byte limit",
                             n, PARLEY_MAX_FRAME_BYTES);
    buf = malloc(n ? n : 1);
    if (!buf)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    parley__v1__client_frame__pack(f, buf);
    rc = enqueue(c, buf, n, 1, st);
    free(buf);
    return rc;
}

int pc_conn_request(pc_conn *c, Parley__V1__ClientFrame *f, pc_response_cb cb, void *ud,
                    pc_status *st)
{
    pc_req *r = malloc(sizeof *r);

    if (!r)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    f->request_id = c->next_id++;
    if (enqueue_frame(c, f, st) < 0) {
        free(r);
        return -1;
    }
    r->id = f->request_id;
    r->cb = cb;
    r->ud = ud;
    r->next = c->reqs;
    c->reqs = r;
    return 0;
}

void pc_conn_forget(pc_conn *c, void *ud)
{
    pc_req **pp = &c->reqs;

    while (*pp) {
        pc_req *r = *pp;
        if (r->ud == ud) {
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

int pc_conn_post(pc_conn *c, const Parley__V1__ClientFrame *f, pc_status *st)
{
    return enqueue_frame(c, f, st);
}

int pc_conn_send_raw(pc_conn *c, const void *data, size_t len, int binary, pc_status *st)
{
    return enqueue(c, data, len, binary, st);
}

/* ---- lws callback ----------------------------------------------------------------------- */

int pc_conn_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    pc_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c)
            on_gone(c, wsi, in ? (const char *)in : NULL);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c)
            return -1;
        c->wsi = wsi;
        c->state = ST_OPEN;
        if (c->out_head || c->close_requested)
            lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!c)
            return -1;
        return on_receive(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (!c)
            return -1;
        return on_writable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && len >= 2) {
            const uint8_t *p = in;
            size_t rl = len - 2 > CLOSE_REASON_MAX ? CLOSE_REASON_MAX : len - 2;
            c->peer_code = p[0] << 8 | p[1];
            memcpy(c->peer_reason, p + 2, rl);
            c->peer_reason[rl] = '\0';
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c)
            on_gone(c, wsi, NULL);
        return 0;
    default:
        return 0;
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* 1 when s is an IPv4 or IPv6 address literal. lws reads its iface string as an interface
 * name first and as an address second: only literals get through, so a name can never bind
 * the socket to a device. */
static int is_addr_literal(const char *s)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

pc_conn *pc_conn_open(pc_ctx *ctx, const char *url, const pc_conn_events *ev, void *ud,
                      pc_status *st)
{
    return pc_conn_open_from(ctx, url, NULL, ev, ud, st);
}

pc_conn *pc_conn_open_from(pc_ctx *ctx, const char *url, const char *local_addr,
                           const pc_conn_events *ev, void *ud, pc_status *st)
{
    struct lws_client_connect_info ci;
    struct lws *wsi;
    pc_conn *c;

    if (local_addr && !is_addr_literal(local_addr)) {
        pc_status_set(st, PC_ERR_LOCAL, "local address %s is not an IPv4 or IPv6 address",
                      local_addr);
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    if (pc_url_parse(url, &c->u, st) < 0 || !(c->url = strdup(url))) {
        if (!c->url && st->kind == PC_OK)
            pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        free(c);
        return NULL;
    }
    c->ctx = ctx;
    c->next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = c;
    ctx->conns = c;
    if (ev)
        c->ev = *ev;
    c->ud = ud;
    c->next_id = 1;
    c->state = ST_CONNECTING;

    memset(&ci, 0, sizeof ci);
    ci.context = ctx->lws;
    ci.address = c->u.host;
    ci.port = c->u.port;
    ci.path = c->u.path;
    ci.host = c->u.host;
    ci.origin = c->u.host;
    ci.protocol = PWIRE_SUBPROTOCOL;
    ci.local_protocol_name = PWIRE_SUBPROTOCOL;
    ci.ssl_connection = c->u.tls ? LCCSCF_USE_SSL : 0;
    ci.alpn = "http/1.1";
    ci.ietf_version_or_minus_one = -1;
    ci.userdata = c;
    /* lws copies it and binds the socket to it (port 0) before connect() */
    ci.iface = local_addr;
    ci.retry_and_idle_policy = &pc_ctx_retry;

    c->opening = 1;
    wsi = lws_client_connect_via_info(&ci);
    c->opening = 0;
    if (c->state == ST_CLOSED)
        return c; /* failed inside the call; the close is already queued */
    if (!wsi) {
        c->wsi = NULL;
        c->opening = 1; /* report through the loop, not from inside this call */
        on_gone(c, NULL, "cannot start connecting (unknown host?)");
        c->opening = 0;
        return c;
    }
    c->wsi = wsi;
    return c;
}

void pc_conn_close(pc_conn *c, int code, const char *reason)
{
    size_t rl;

    if (!c || c->state == ST_CLOSED || c->close_requested)
        return;
    c->close_requested = 1;
    c->close_code = code;
    reason = reason ? reason : "";
    rl = strlen(reason) > CLOSE_REASON_MAX ? CLOSE_REASON_MAX : strlen(reason);
    memcpy(c->close_reason, reason, rl);
    c->close_reason[rl] = '\0';
    if (!c->wsi)
        return;
    if (c->state == ST_OPEN)
        lws_callback_on_writable(c->wsi);
    else if (!c->out_head)
        /* nothing to deliver: abandon the handshake */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_AWAITING_PROXY_RESPONSE, LWS_TO_KILL_ASYNC);
    /* else ESTABLISHED flushes the queue, then closes */
}

void pc_conn_free(pc_conn *c)
{
    pc_status cancelled;
    pc_challenge_cb ch_cb;
    pc_req *reqs;

    if (!c || c->freed)
        return;
    c->freed = 1;
    memset(&c->ev, 0, sizeof c->ev);
    pc_status_set(&cancelled, PC_ERR_NET, "cancelled");
    ch_cb = c->ch_cb;
    c->ch_cb = NULL;
    reqs = c->reqs;
    c->reqs = NULL;
    c->busy++;
    if (ch_cb)
        ch_cb(c, NULL, &cancelled, c->ch_ud);
    while (reqs) {
        pc_req *r = reqs;
        reqs = r->next;
        r->cb(c, NULL, &cancelled, r->ud);
        free(r);
    }
    c->busy--;
    if (c->wsi && c->state != ST_CLOSED)
        pc_conn_close(c, LWS_CLOSE_STATUS_NORMAL, "bye");
    maybe_release(c);
}

void pc_conn_detach_all(pc_ctx *ctx)
{
    while (ctx->conns) {
        pc_conn *c = ctx->conns;
        if (c->wsi)
            lws_set_wsi_user(c->wsi, NULL);
        c->wsi = NULL;
        c->state = ST_CLOSED;
        unlink_ctx(c);
        if (c->freed && !c->busy)
            release(c);
    }
}

void pc_conn_on_challenge(pc_conn *c, pc_challenge_cb cb, void *ud)
{
    c->ch_cb = cb;
    c->ch_ud = ud;
    give_challenge(c);
}

int pc_conn_is_open(const pc_conn *c)
{
    return c->state == ST_OPEN && !c->close_requested;
}

const char *pc_conn_url(const pc_conn *c)
{
    return c->url;
}

void *pc_conn_userdata(const pc_conn *c)
{
    return c->ud;
}

size_t pc_conn_queued_bytes(const pc_conn *c)
{
    return c->out_bytes;
}
