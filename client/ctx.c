#include "ctx_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "wire.h"


#define PC_SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* tx_packet_size: lws otherwise hands the socket at most 4 KiB per writable event, so one
 * large frame takes dozens of loop turns. */
#define PC_TX_PACKET_BYTES (PARLEY_MAX_FRAME_BYTES + 14) /* + the largest ws frame header */

static const struct lws_protocols pc_protocols[] = {
    { PWIRE_SUBPROTOCOL, pc_conn_lws_cb, 0, 0, 0, NULL, PC_TX_PACKET_BYTES },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void defer_cb(uv_timer_t *t)
{
    pc_conn_run_deferred(t->data);
}

void pc_ctx_kick(pc_ctx *ctx)
{
    if (!ctx->freeing)
        uv_timer_start(&ctx->defer_timer, defer_cb, 0, 0);
}

/* lws only reads the CA file when it creates the client TLS context, so the path must exist
 * then; OpenSSL's SSL_CERT_FILE convention lets tests point at their own CA. */
static const char *ca_file(void)
{
    const char *env = getenv("SSL_CERT_FILE");

    if (env && *env)
        return env;
    return access(PC_SYSTEM_CA_FILE, R_OK) == 0 ? PC_SYSTEM_CA_FILE : NULL;
}

/* No idle policy: lws 4.1 keeps each connection's keepalive timer in one sorted list whose
 * insert walks it, so with tens of thousands of connections in one context every connect
 * costs O(connections). The gateway pings idle clients itself and lws answers those pings. */
const lws_retry_bo_t pc_ctx_retry = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

pc_ctx *pc_ctx_new(uv_loop_t *loop, int verbose, pc_status *st)
{
    struct lws_context_creation_info info;
    void *loops[1] = { loop };
    pc_ctx *ctx = calloc(1, sizeof *ctx);

    if (!ctx) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    ctx->loop = loop;
    lws_set_log_level(verbose ? (LLL_ERR | LLL_WARN) : 0, NULL);

    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = pc_protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.foreign_loops = loops;
    info.client_ssl_ca_filepath = ca_file();
    info.user = ctx;
    info.retry_and_idle_policy = &pc_ctx_retry;
    ctx->lws = lws_create_context(&info);
    if (!ctx->lws) {
        free(ctx);
        pc_status_set(st, PC_ERR_LOCAL,
                      "cannot create the libwebsockets context (is libwebsockets-evlib-uv "
                      "installed?)");
        return NULL;
    }
    uv_timer_init(loop, &ctx->defer_timer);
    ctx->defer_timer.data = ctx;
    return ctx;
}

uv_loop_t *pc_ctx_loop(pc_ctx *ctx)
{
    return ctx->loop;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void note_closing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        *(int *)arg = 1;
}

/* lws 4.1 on a foreign libuv loop destroys a context in two calls: the first closes its
 * handles, the second (once their close callbacks have run) frees the memory. */
static void finish_destroy(uv_timer_t *t)
{
    pc_ctx *ctx = t->data;
    int closing = 0;

    uv_walk(ctx->loop, note_closing, &closing);
    if (closing)
        return; /* look again next turn */
    uv_timer_stop(t);
    lws_context_destroy(ctx->lws);
    ctx->lws = NULL;
    uv_close((uv_handle_t *)t, timer_closed);
}

void pc_ctx_free(pc_ctx *ctx)
{
    if (!ctx)
        return;
    ctx->freeing = 1;
    pc_conn_detach_all(ctx);
    lws_context_destroy(ctx->lws);
    uv_timer_stop(&ctx->defer_timer);
    uv_timer_start(&ctx->defer_timer, finish_destroy, 0, 1);
}
