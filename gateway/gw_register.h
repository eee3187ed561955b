/* gw_register.h: Register: a valid name, a rate limit per source (IPv4 address or IPv6 /64, a
 * fixed window in Redis), the proof of work over the connection's challenge, both signatures
 * (account key and device key) over the register transcript, the account's first signed
 * device list (version 1, exactly this device as device 1, signed by the account key), then
 * the account, its device 1 and that list inserted in PostgreSQL in one statement. Every
 * answer, ok or error, is followed by a fresh Challenge. */
#ifndef PARLEY_GW_REGISTER_H
#define PARLEY_GW_REGISTER_H

#include <stddef.h>

#include "gw_proto.h"

struct gw;
struct gw_conn;

void gw_register(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
/* The rate-limit subject of a peer address: "a:b:c:d::/64" for an IPv6 address (one subscriber
 * usually holds a whole /64), the IPv4 address of an IPv4-mapped one, any other string as it
 * is. Writes at most size bytes (NUL included). Pure. */
void gw_register_rate_subject(const char *peer, char *out, size_t size);

#endif
