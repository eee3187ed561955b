/* lt_net.h: where the harness may connect and from where: every server must resolve to
 * loopback only (the harness refuses anything else), servers are rewritten to numeric URLs
 * (one lookup at start, none per connection), the loopback source addresses, and the open
 * file limit the connections need. */
#ifndef LT_NET_H
#define LT_NET_H

#include <stddef.h>
#include <stdint.h>

#define LT_URL_MAX 600
#define LT_ADDR_MAX 48

typedef struct {
    char url[LT_URL_MAX]; /* ws://127.0.0.1:8080/v1/ws, numeric host */
    int v6;               /* the server is ::1: IPv4 source addresses cannot reach it */
} lt_server;

/* Resolves url; fills s. -1 with err set when it is malformed, cannot be resolved, or any of
 * its addresses is not loopback (127.0.0.0/8, ::1). */
int lt_net_server(const char *url, lt_server *s, char *err, size_t cap);
/* The k-th loopback source address: 127.0.1.1, ..., 127.0.1.254, 127.0.2.1, ... */
void lt_net_source(uint32_t k, char out[LT_ADDR_MAX]);
/* Binds a TCP socket to addr (port 0) and closes it: -1 with err set when this machine cannot
 * use addr as a source address. */
int lt_net_check_source(const char *addr, char *err, size_t cap);
/* Raises RLIMIT_NOFILE (the soft limit, and the hard one when privileged) to one descriptor per
 * connection plus LT_FD_SPARE. Returns the soft limit now in force, or -1 with err set when it
 * stays below that. */
long lt_net_raise_nofile(uint64_t conns, char *err, size_t cap);

#endif
