/* gw_auth.h: the Challenge of a connection, AuthAnswer (Ed25519 over the auth transcript,
 * signing key from PostgreSQL) and Register (name, rate limit per source IPv4 address or IPv6
 * /64 in Redis, proof of work, both signatures, insert). Failures of AuthAnswer close the socket
 * with 1008; a Register answer (ok or error) is followed by a fresh Challenge. The auth timeout
 * runs from the connection's open and restarts only after a successful Register. */
#ifndef PARLEY_GW_AUTH_H
#define PARLEY_GW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "gw_proto.h"

struct gw;
struct gw_conn;

/* Generates a new challenge for c and queues it (request_id 0). */
int gw_auth_send_challenge(struct gw *g, struct gw_conn *c);
void gw_auth_answer(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_auth_register(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
/* The registration rate-limit subject of a peer address: "a:b:c:d::/64" for an IPv6 address
 * (one subscriber usually holds a whole /64), the IPv4 address of an IPv4-mapped one, any other
 * string as it is. Writes at most size bytes (NUL included). Pure. */
void gw_auth_rate_subject(const char *peer, char *out, size_t size);
/* Closes connections whose auth timeout passed. */
void gw_auth_expire(struct gw *g, uint64_t now_us);

#endif
