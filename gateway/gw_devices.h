/* gw_devices.h: GetDevices{account, known_version} -> DeviceList or UNKNOWN_ACCOUNT: the
 * device rows (ordered by id), the account key, the current list version and the signed lists
 * from known_version (0: the current one only) up to the current one, oldest first, at most
 * PARLEY_DEVICE_LIST_CHAIN_MAX (the newest). */
#ifndef PARLEY_GW_DEVICES_H
#define PARLEY_GW_DEVICES_H

#include "gw_proto.h"

struct gw;
struct gw_conn;

void gw_devices_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

#endif
