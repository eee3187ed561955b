/* gw_server.h: the libwebsockets side: the context on the gateway's libuv loop, the
 * "parley.v1" protocol on /v1/ws (a PARLEY_GW_RX_BUFFER receive buffer per connection, pieces
 * reassembled by gw_rx.h), the max_connections gate, writes (only in SERVER_WRITEABLE:
 * frames and keepalive pings) and closes. */
#ifndef PARLEY_GW_SERVER_H
#define PARLEY_GW_SERVER_H

struct gw;

/* Creates the lws context listening on listen_host:listen_port; -1 on failure (logged). */
int gw_server_start(struct gw *g);
/* Stops accepting new connections; existing ones continue. */
void gw_server_stop_accepting(struct gw *g);
struct gw_conn;
struct gw_out;
/* Writes o at once when nothing is queued before it and the socket takes it: 1 (o was sent
 * and freed), 0 (not possible now: o is still the caller's, to queue), -1 (the socket failed:
 * o freed, c closing). Saves the writable-event round trip for the common single frame. */
int gw_server_write_now(struct gw *g, struct gw_conn *c, struct gw_out *o);
/* Destroys the context (asynchronously on the loop; g->lws becomes NULL when done). */
void gw_server_destroy(struct gw *g);

#endif
