/* gw_server.h: the libwebsockets side: the context on the gateway's libuv loop, the
 * "parley.v1" protocol on /v1/ws, message reassembly, writes (only in SERVER_WRITEABLE) and
 * closes. */
#ifndef PARLEY_GW_SERVER_H
#define PARLEY_GW_SERVER_H

struct gw;

/* Creates the lws context listening on listen_host:listen_port; -1 on failure (logged). */
int gw_server_start(struct gw *g);
/* Stops accepting new connections; existing ones continue. */
void gw_server_stop_accepting(struct gw *g);
/* Destroys the context (asynchronously on the loop; g->lws becomes NULL when done). */
void gw_server_destroy(struct gw *g);

#endif
