/* gw_provision.h: the provisioning channels of device linking (docs/PROTOCOL.md, "Linking"):
 * a new device opens a channel (unauthenticated), an authenticated device of the account joins
 * it once with the channel id from the link code, and the gateway relays opaque messages
 * between the two, across gateways through Redis. Channels expire after PARLEY_LINK_TTL_S. */
#ifndef PARLEY_GW_PROVISION_H
#define PARLEY_GW_PROVISION_H

#include "gw_conn.h"
#include "gw_proto.h"

struct gw;

void gw_provision_open(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_provision_join(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_provision_send(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
/* c (c->prov set) is being destroyed: release its channel state (an opener's channel goes). */
void gw_provision_conn_gone(struct gw *g, gw_conn *c);

#endif
