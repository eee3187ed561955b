/* ctx.h: one client context = one libwebsockets context running on a libuv loop the caller
 * owns (a "foreign" loop). Any number of pc_conn share one context; the loadtest runs
 * thousands on a single loop. wss:// uses the system CA store (SSL_CERT_FILE overrides it).
 *
 * Lifetime: pc_ctx_new, open connections, run the loop; to finish, free every pc_conn, call
 * pc_ctx_free, then run the loop again until uv_run returns (lws closes its handles
 * asynchronously and the context is released a few loop turns later), then uv_loop_close. */
#ifndef PC_CTX_H
#define PC_CTX_H


#include <uv.h>

#include "status.h"

typedef struct pc_ctx pc_ctx;

/* verbose: let libwebsockets print its errors and warnings on stderr (process-wide; silent
 * otherwise). Returns a context owned by the caller (pc_ctx_free) or NULL with st set. */
pc_ctx *pc_ctx_new(uv_loop_t *loop, int verbose, pc_status *st);
void pc_ctx_free(pc_ctx *ctx);
uv_loop_t *pc_ctx_loop(pc_ctx *ctx);

#endif
