/* gw_peer.h: a connection's source address in binary form (17 bytes instead of a 64-byte text
 * buffer per connection), read from the socket once, printed on demand for logs and the
 * registration rate limit. An IPv4 client on a dual-stack listener is stored as IPv4. */
#ifndef PARLEY_GW_PEER_H
#define PARLEY_GW_PEER_H

#include <netinet/in.h>
#include <stdint.h>

/* Long enough for any IPv6 address, and for "unknown". */
#define GW_PEER_TEXT_MAX INET6_ADDRSTRLEN

typedef struct {
    uint8_t family; /* AF_INET, AF_INET6, or 0 when unknown */
    uint8_t addr[16];
} gw_peer;

/* From the peer of a connected socket; family 0 when it cannot be read. */
void gw_peer_from_fd(gw_peer *p, int fd);
/* From a socket address (pure; unit tested). Unsupported families give family 0. */
void gw_peer_from_sockaddr(gw_peer *p, const struct sockaddr *sa);
/* The numeric text form, "unknown" for family 0. Returns out. */
const char *gw_peer_text(const gw_peer *p, char out[GW_PEER_TEXT_MAX]);

#endif
