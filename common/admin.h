/* admin.h: the admin HTTP listener every service has: GET /healthz (process alive), /readyz
 * (ready() says it can serve), /metrics (Prometheus text). Served by libwebsockets on the
 * caller's libuv loop; nothing else is reachable on this port. */
#ifndef PARLEY_ADMIN_H
#define PARLEY_ADMIN_H

#include <uv.h>
#include "metrics.h"

typedef struct padmin padmin;

/* ready: returns non-zero when the service is ready; ud passed back. metrics must outlive the
 * admin server. Returns NULL (and logs) when the port cannot be bound. */
padmin *padmin_start(uv_loop_t *loop, const char *host, int port, pmetrics *metrics,
                     int (*ready)(void *ud), void *ud);
/* Stops listening and frees; handles are closed on the loop (run it once more to finish). */
void padmin_stop(padmin *a);

#endif
