/* gw_provision.h: the provisioning channels of device linking (docs/PROTOCOL.md, "Linking"):
 * a new device opens a channel (unauthenticated), an authenticated device of the account joins
 * it once with the channel id from the link code, and the gateway relays opaque messages
 * between the two, across gateways through Redis. Channels expire after PARLEY_LINK_TTL_S.
 *
 * A channel is the Redis hash parley:prov:{id} (TTL PARLEY_LINK_TTL_S): og/oc/od = the opener's
 * gateway, connection and data, jg/jc = the joiner's gateway and connection once joined (jc "0"
 * once the joiner left). Pushes to a connection on another gateway go through that gateway's
 * delivery stream as InternalReply{conn_id, frame, request_id 0} (gw_provision_deliver).
 * A connection's state (c->prov) is allocated on its first Provision request and freed with the
 * connection; an opener is exempt from the auth timeout and sits on this gateway's expiry list
 * until its channel expires. */
#ifndef PARLEY_GW_PROVISION_H
#define PARLEY_GW_PROVISION_H

#include <stddef.h>
#include <stdint.h>

#include "gw_conn.h"
#include "gw_proto.h"

struct gw;
struct gw_provision;

/* This gateway's openers with a live channel, by expiry (one fixed TTL keeps appends ordered). */
typedef struct {
    struct gw_provision *head, *tail;
    size_t count;
} gw_provisions;

void gw_provision_open(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_provision_join(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_provision_send(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);
/* c (c->prov set) is being destroyed: release its channel state (an opener's channel goes). */
void gw_provision_conn_gone(struct gw *g, gw_conn *c);
/* Ends the channels whose time passed; their openers are closed unless they authenticated
 * meanwhile. Called from the gateway tick. */
void gw_provision_expire(struct gw *g, uint64_t now_us);
/* A packed ServerFrame relayed to conn_id: a ProvisionPeer or ProvisionData push is forwarded
 * when that connection is in the channel it names, else dropped; returns 0. Any other frame
 * is not a provisioning push: -1, untouched. */
int gw_provision_deliver(struct gw *g, uint64_t conn_id, const uint8_t *frame, size_t len);

#endif
