/* gw_devlist.h: PublishDeviceList, the next signed version of an account's device list
 * (common/devlist.h): checked against the stored account key and current version, applied to
 * the device rows in one transaction (migration 008), then removed devices are disconnected
 * (close 4003) wherever they are connected. */
#ifndef PARLEY_GW_DEVLIST_H
#define PARLEY_GW_DEVLIST_H

#include "gw_conn.h"
#include "gw_proto.h"

struct gw;

void gw_devlist_publish(struct gw *g, gw_conn *c, const Parley__V1__ClientFrame *f);

#endif
