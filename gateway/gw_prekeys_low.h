/* gw_prekeys_low.h: the PrekeysLow push. When a GetPrekeys leaves (or finds) a device's
 * one-time prekey pool at or below PARLEY_PREKEYS_LOW_WATER, the device is told, at most once
 * per PARLEY_PREKEYS_LOW_PUSH_INTERVAL_S: one Redis script sets the per-device
 * parley:rl:prekeys_low:{account}:{device} key (SET NX PX) and, when it was not set yet,
 * reads the device's presence; the notice then goes to the connection here, or as an
 * InternalPrekeysLow to the delivery stream of the gateway that holds the device, which
 * pushes it like an envelope push (no hold during the queue drain: order does not matter).
 * Best effort: an offline device, Redis down or a dead gateway lose the notice; AuthOk carries
 * the count, so the device learns at its next login. */
#ifndef PARLEY_GW_PREKEYS_LOW_H
#define PARLEY_GW_PREKEYS_LOW_H

#include <stdint.h>

#include "gw_proto.h"

struct gw;

void gw_prekeys_low_notify(struct gw *g, const char *account, uint32_t device_id,
                           uint32_t one_time_count);
/* An InternalPrekeysLow from this gateway's delivery stream. */
void gw_prekeys_low_apply(struct gw *g, const Parley__V1__InternalPrekeysLow *low);

#endif
