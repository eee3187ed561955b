/* gw_auth.h: the Challenge of a connection, its auth timeout, and AuthAnswer (Ed25519 over the
 * auth transcript, signing key from PostgreSQL; device_id 0: an account session, signed by the
 * account key, without presence or queue). Failures of AuthAnswer close the socket with
 * 1008. The auth timeout runs from the connection's open and restarts only after a successful
 * Register (gw_register.h). */
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
/* Consumes c's challenge for an AuthAnswer or Register (single use, whatever the outcome).
 * Returns -1 when the request was answered already (draining, or no challenge left). */
int gw_auth_take_challenge(struct gw *g, struct gw_conn *c, uint64_t request_id);
/* Sends a fresh challenge after a Register answer; registered restarts the auth timeout. */
void gw_auth_rechallenge(struct gw *g, struct gw_conn *c, int registered);
/* Closes connections whose auth timeout passed. */
void gw_auth_expire(struct gw *g, uint64_t now_us);

#endif
