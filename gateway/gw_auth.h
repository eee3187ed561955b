/* gw_auth.h: the Challenge of a connection, AuthAnswer (Ed25519 over the auth transcript,
 * signing key from PostgreSQL) and Register (name, per-IP rate limit in Redis, proof of work,
 * both signatures, insert). Failures of AuthAnswer close the socket with 1008; a Register
 * answer (ok or error) is followed by a fresh Challenge. */
#ifndef PARLEY_GW_AUTH_H
#define PARLEY_GW_AUTH_H

#include "gw_proto.h"

struct gw;
struct gw_conn;

/* Generates a new challenge for c and queues it (request_id 0). */
int gw_auth_send_challenge(struct gw *g, struct gw_conn *c);
void gw_auth_answer(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_auth_register(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
/* Closes connections whose auth timeout passed. */
void gw_auth_expire(struct gw *g, uint64_t now_us);

#endif
