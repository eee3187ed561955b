/* admin.h: the admin HTTP listener every service has: GET /healthz (process alive, 200 "ok"),
 * /readyz (200 "ready" or 503 "not ready" from ready()), /metrics (Prometheus text 0.0.4).
 * Other paths 404, other methods 405. A minimal HTTP/1.x responder on a uv_tcp listener of the
 * caller's libuv loop (not libwebsockets, so it never interacts with the service's own lws
 * context): one request per connection (Connection: close), request head at most 4 KiB,
 * 5 s to send it; nothing else is reachable on this port. */
#ifndef PARLEY_ADMIN_H
#define PARLEY_ADMIN_H

#include <uv.h>
#include "metrics.h"

typedef struct padmin padmin;

/* ready: returns non-zero when the service is ready (NULL: always ready); ud passed back.
 * metrics must outlive the admin server (NULL: /metrics answers 500). host: numeric address or
 * name (resolved synchronously), NULL/"" for all interfaces; port 0 picks a free port.
 * Returns NULL (and logs) when the port cannot be bound. */
padmin *padmin_start(uv_loop_t *loop, const char *host, int port, pmetrics *metrics,
                     int (*ready)(void *ud), void *ud);
/* The port actually bound (useful with port 0 in tests); -1 for NULL. */
int padmin_port(const padmin *a);
/* Stops listening and frees; handles are closed on the loop (run it once more to finish). */
void padmin_stop(padmin *a);

#endif
