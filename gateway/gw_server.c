#include "gw_server.h"

#include "gw_proto.h"
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "gw_auth.h"
#include "gw_dispatch.h"
#include "gw_drain.h"
#include "gw_presence.h"
#include "gw_reaper.h"
#include "gw_rx.h"
#include "log.h"
#include "wire.h"

#define GW_WS_PROTOCOL PWIRE_SUBPROTOCOL
#define GW_WS_PATH PWIRE_PATH
#define GW_VHOST "parley-gateway"

_Static_assert(PARLEY_GW_RX_BUFFER >= 128, "WebSocket control frames must fit the rx buffer");

/* Bytes written per writable event at most, so one busy connection does not hold the loop. */
#define GW_WRITE_BATCH_BYTES (64 * 1024)

/* Keepalive is the gateway's own (gw_sweep.h): lws 4.1 keeps every connection's ping timer in
 * one sorted list whose insert walks the list, O(connections) per pong. No idle policy here
 * turns that off (secs_since_valid_hangup 0). */
static const lws_retry_bo_t gw_retry = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

static void gw_lws_log(int level, const char *line)
{
    char msg[256], q[300];
    snprintf(msg, sizeof msg, "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    plog(level == LLL_ERR ? PLOG_ERROR : PLOG_WARN, "lws", "msg=%s", plog_q(q, sizeof q, msg));
}

static int gw_on_receive(gw *g, gw_conn *c, const void *in, size_t len)
{
    if (!c || c->close_code)
        return 0;
    c->last_rx_s = gw_conn_now_s(g);
    const uint8_t *msg;
    size_t msg_len;
    int binary;
    gw_rx_status st = gw_rx_piece(&c->rx, in, len, lws_frame_is_binary(c->wsi),
                                  lws_is_final_fragment(c->wsi),
                                  lws_remaining_packet_payload(c->wsi), PARLEY_MAX_FRAME_BYTES,
                                  &msg, &msg_len, &binary);
    switch (st) {
    case GW_RX_MORE:
        return 0;
    case GW_RX_SKIP:
        /* Read the rest of the message before answering: closing while the client is still
         * writing makes the kernel reset the socket, and the client never sees the error and
         * the 1009. A message that never ends is cut by the reaper. */
        gw_reaper_add_oversized(g, c);
        return 0;
    case GW_RX_NOMEM:
        plog_error("rx_oom", "conn=%llu", (unsigned long long)c->id);
        gw_conn_close(g, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error", 0);
        return 0;
    case GW_RX_TOO_LARGE:
        gw_dispatch_too_large(g, c);
        break;
    case GW_RX_MESSAGE:
        gw_dispatch_message(g, c, msg, msg_len, binary);
        break;
    }
    gw_rx_end(&c->rx);
    return 0;
}

/* A keepalive ping. It carries a payload: lws 4.1 does not report an empty pong to the
 * protocol callback, and the pong is what tells the gateway that the client is alive. */
static int gw_write_ping(gw *g, gw_conn *c)
{
    unsigned char buf[LWS_PRE + 4];
    uint32_t now = gw_conn_now_s(g);
    memcpy(buf + LWS_PRE, &now, sizeof now);
    c->ping_due = 0;
    if (lws_write(c->wsi, buf + LWS_PRE, sizeof now, LWS_WRITE_PING) < 0) {
        plog_info("write_failed", "conn=%llu what=ping", (unsigned long long)c->id);
        return -1;
    }
    pmet_inc(g->m.pings, 1);
    return 0;
}

/* Writes o as one binary message; 0 when lws took all of it (sent, or its tail buffered by
 * lws because the socket was full), -1 when the socket failed. */
static int gw_write_frame(gw *g, gw_conn *c, gw_out *o)
{
    int n = lws_write(c->wsi, gw_out_payload(o), o->len, LWS_WRITE_BINARY);
    if (n < 0 || (size_t)n < o->len) {
        plog_info("write_failed", "conn=%llu", (unsigned long long)c->id);
        return -1;
    }
    pmet_inc(g->m.frames_out, 1);
    pmet_inc(g->m.bytes_out, o->len);
    return 0;
}

int gw_server_write_now(gw *g, gw_conn *c, gw_out *o)
{
    /* Only with nothing queued (order) and nothing left in lws from an earlier write (lws would
     * append o to its own unbounded buffer, outside outbound_max). */
    if (c->out.head || c->close_code || lws_partial_buffered(c->wsi))
        return 0;
    if (gw_write_frame(g, c, o) != 0) {
        gw_out_free(o);
        gw_conn_close(g, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "write failed", 0);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    gw_out_free(o);
    return 1;
}

static int gw_on_writeable(gw *g, gw_conn *c)
{
    if (!c)
        return -1;
    gw_out *o = gw_outq_peek(&c->out);
    if (c->close_code && (!c->close_flush || !o)) {
        /* lws 4.1 treats -1 from SERVER_WRITEABLE as a failed write and drops the socket
         * without a close frame; from LWS_CALLBACK_TIMER it sends the lws_close_reason one */
        lws_set_timer_usecs(c->wsi, 1);
        return 0;
    }
    if (c->ping_due && !c->close_code && gw_write_ping(g, c) != 0)
        return -1;
    /* Several frames per writable event while the socket takes them: every re-arm of the
     * writable event costs libuv two epoll_ctl calls. */
    size_t budget = GW_WRITE_BATCH_BYTES;
    while ((o = gw_outq_peek(&c->out)) && !lws_partial_buffered(c->wsi)) {
        if (gw_write_frame(g, c, o) != 0)
            return -1;
        gw_outq_pop(&c->out);
        size_t len = o->len;
        gw_out_free(o);
        if (len >= budget)
            break;
        budget -= len;
    }
    if (c->out.head || c->close_code)
        lws_callback_on_writable(c->wsi);
    gw_drain_on_writable(g, c);
    return 0;
}

static int gw_path_ok(struct lws *wsi)
{
    char uri[64];
    int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    return n > 0 && strcmp(uri, GW_WS_PATH) == 0;
}

/* The connection is the wsi's user pointer (lws_set_wsi_user): lws allocates no per-session
 * data for it. */
static int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    gw *g = ctx ? lws_context_user(ctx) : NULL;
    gw_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* draining, or full: new TCP connections are dropped at once */
        if (!g || g->draining)
            return 1;
        if (g->conns.count >= g->max_conns) {
            pmet_inc(g->m.connections_refused, 1);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        /* plain HTTP on the WebSocket port */
        if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
            return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (!g || g->draining || !gw_path_ok(wsi))
            return 1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED: {
        if (!g)
            return -1;
        c = gw_conn_new(g, wsi);
        if (!c) {
            plog_error("conn_oom", "what=connection");
            return -1;
        }
        lws_set_wsi_user(wsi, c);
        if (plog_enabled(PLOG_DEBUG)) {
            char peer[GW_PEER_TEXT_MAX];
            plog_debug("conn_open", "conn=%llu peer=%s", (unsigned long long)c->id,
                       gw_peer_text(&c->peer, peer));
        }
        gw_auth_send_challenge(g, c);
        return 0;
    }
    case LWS_CALLBACK_RECEIVE:
        return c ? gw_on_receive(g, c, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (c) {
            c->last_rx_s = gw_conn_now_s(g);
            pmet_inc(g->m.pongs, 1);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c ? gw_on_writeable(g, c) : -1;
    case LWS_CALLBACK_TIMER:
        if (c && c->close_code) {
            lws_close_reason(wsi, (enum lws_close_status)c->close_code,
                             (unsigned char *)c->close_reason, strlen(c->close_reason));
            return -1;
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (c) {
            lws_set_wsi_user(wsi, NULL);
            plog_debug("conn_closed", "conn=%llu", (unsigned long long)c->id);
            gw_presence_release(g, c);
            gw_conn_destroy(g, c);
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols gw_protocols[] = {
    /* first: also serves clients that ask for no subprotocol, and plain HTTP */
    {GW_WS_PROTOCOL, gw_ws_callback, 0, PARLEY_GW_RX_BUFFER, 0, NULL, PARLEY_MAX_FRAME_BYTES},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int gw_server_start(gw *g)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, gw_lws_log);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {g->loop};
    info.port = (int)g->cfg->listen_port;
    info.iface = g->cfg->listen_host;
    info.protocols = gw_protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.user = g;
    info.pcontext = &g->lws;
    info.retry_and_idle_policy = &gw_retry;
    info.timeout_secs = 10; /* handshake */
    info.vhost_name = GW_VHOST;
    /* TLS in the gateway is optional: production usually terminates it in front */
    int tls = g->cfg->tls_cert && g->cfg->tls_cert[0];
    if (tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = g->cfg->tls_cert;
        info.ssl_private_key_filepath = g->cfg->tls_key;
    }
    /* with IPv6 enabled lws 4.1 ignores an IPv4 iface and listens on every address */
    struct in_addr v4;
    if (g->cfg->listen_host && inet_pton(AF_INET, g->cfg->listen_host, &v4) == 1)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    g->lws = lws_create_context(&info);
    if (!g->lws) {
        plog_error("listen_failed", "host=%s port=%lld", g->cfg->listen_host,
                   g->cfg->listen_port);
        return -1;
    }
    /* lws 4.1 returns a context even when the vhost could not bind */
    if (!lws_get_vhost_by_name(g->lws, GW_VHOST)) {
        plog_error("listen_failed", "host=%s port=%lld reason=\"cannot bind\"",
                   g->cfg->listen_host, g->cfg->listen_port);
        return -1;
    }
    plog_info("listening", "host=%s port=%lld path=%s protocol=%s tls=%s", g->cfg->listen_host,
              g->cfg->listen_port, GW_WS_PATH, GW_WS_PROTOCOL, tls ? "on" : "off");
    return 0;
}

void gw_server_stop_accepting(gw *g)
{
    /* lws_context_deprecate would close the listener, but raises SIGINT when the last
     * connection goes; the filter callbacks refuse new connections instead */
    g->draining = 1;
}

void gw_server_destroy(gw *g)
{
    if (g->lws)
        lws_context_destroy(g->lws);
}
