/* gw_devices.h: GetDevices{account} -> DeviceList (devices ordered by id) or UNKNOWN_ACCOUNT. */
#ifndef PARLEY_GW_DEVICES_H
#define PARLEY_GW_DEVICES_H

#include "gw_proto.h"

struct gw;
struct gw_conn;

void gw_devices_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

#endif
