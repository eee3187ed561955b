/* gw_provision_relay.h: carrying one provisioning push (a ServerFrame) to a channel member:
 * straight to the connection when it is on this gateway, else through its gateway's delivery
 * stream (gw_provision.h). Internal to gw_provision*.c. */
#ifndef PARLEY_GW_PROVISION_RELAY_H
#define PARLEY_GW_PROVISION_RELAY_H

#include <stdint.h>

#include "gw_proto.h"

struct gw;

/* ok: delivered here, or written to the other gateway's stream. */
typedef void (*gw_provision_relay_cb)(struct gw *g, void *ud, int ok);

/* Relays sf to conn_id on gateway gateway_id. cb (may be NULL) runs once, at once for this
 * gateway, else when Redis answered. Returns -1 when it could not be queued (Redis down, out of
 * memory); cb does not run then. */
int gw_provision_relay(struct gw *g, const char *gateway_id, uint64_t conn_id,
                       const Parley__V1__ServerFrame *sf, gw_provision_relay_cb cb, void *ud);

#endif
