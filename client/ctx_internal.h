/* ctx_internal.h: the context's fields, shared by ctx.c and conn.c only. Not public API. */
#ifndef PC_CTX_INTERNAL_H
#define PC_CTX_INTERNAL_H


#include <libwebsockets.h>

#include "ctx.h"

struct pc_conn;

struct pc_ctx {
    uv_loop_t *loop;
    struct lws_context *lws;
    uv_timer_t defer_timer;     /* reports what must not be reported from inside an API call */
    struct pc_conn *deferred;   /* conn.c's queue for that timer */
    struct pc_conn *conns;      /* every pc_conn of this context (conn.c keeps the list) */
    int freeing;
};

/* No lws idle policy (see ctx.c): set on the context and on every client connection, since
 * lws 4.1 gives a client connection the context's default policy unless told otherwise. */
extern const lws_retry_bo_t pc_ctx_retry;

/* Makes the loop call pc_conn_run_deferred(ctx) soon. */
void pc_ctx_kick(pc_ctx *ctx);

/* Implemented by conn.c. */
int pc_conn_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
void pc_conn_run_deferred(pc_ctx *ctx);
/* The context is going away: detach every conn from lws without calling anyone back. */
void pc_conn_detach_all(pc_ctx *ctx);

#endif
