/* policy.h: which peer addresses the relay may send to. By default every address that is not
 * plainly public unicast is refused: loopback, private, shared (CGN), link-local, multicast,
 * unspecified, documentation, benchmarking, broadcast, reserved, cloud metadata, and the same
 * hidden inside IPv6 (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4, Teredo): an embedded
 * IPv4 address is judged as that IPv4 address. An allow list of CIDRs (config) overrides the
 * refusal. Owns its allow list (fixed array, no allocation). */
#ifndef PARLEY_RELAY_POLICY_H
#define PARLEY_RELAY_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "limits.h"

typedef enum {
    RPOL_OK = 0,
    RPOL_LOOPBACK,
    RPOL_PRIVATE,
    RPOL_LINK_LOCAL,
    RPOL_MULTICAST,
    RPOL_UNSPECIFIED,
    RPOL_DOCUMENTATION,
    RPOL_BENCHMARKING,
    RPOL_BROADCAST,
    RPOL_METADATA,
    RPOL_RESERVED,
    RPOL_FAMILY, /* not AF_INET/AF_INET6 */
    RPOL_NREASONS
} rpol_reason;

typedef struct {
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
    int v6;
    int prefix;
} rpol_cidr;

typedef struct {
    rpol_cidr allow[PARLEY_RELAY_ALLOW_CIDRS_MAX];
    size_t nallow;
} rpol;

/* Empties the allow list. */
void rpol_init(rpol *p);
/* Adds the comma separated CIDRs (or single addresses: /32, /128) of list; spaces around
 * entries are ignored; NULL or "" adds none. IPv4-mapped IPv6 entries are stored as IPv4.
 * Returns 0, or -1 (and nothing added) naming the first bad entry in err (size errlen). */
int rpol_allow(rpol *p, const char *list, char *err, size_t errlen);
/* RPOL_OK when the relay may send to sa (port is not judged). */
rpol_reason rpol_check(const rpol *p, const struct sockaddr *sa);
/* "loopback", "private", ... for logs and metric labels. */
const char *rpol_reason_name(rpol_reason r);

#endif
