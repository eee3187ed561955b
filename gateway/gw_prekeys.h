/* gw_prekeys.h: the prekey requests of authenticated devices (docs/PROTOCOL.md, "Prekeys").
 *
 * UploadPrekeys (gw_prekeys_upload.c): checked (gw_prekeys_check.h); with a signed prekey, the
 * device's signing key is read from PostgreSQL and the signature verified (INVALID_SIGNATURE,
 * nothing stored); then parley_prekeys_upload stores it all in one transaction -> PrekeysOk
 * with the device's counts after.
 *
 * GetPrekeys (gw_prekeys_get.c): the device list, the account name, then two fixed one-minute
 * windows in Redis (per requesting device: prekey_fetch_rate_per_minute; per target account:
 * prekey_target_rate_per_minute; RATE_LIMITED with retry_after_ms; Redis down: UNAVAILABLE),
 * then parley_prekeys_claim claims one one-time prekey per device -> PrekeyBundles. Devices
 * whose pool is left at or below the low-water mark are told (gw_prekeys_low.h).
 *
 * Both are lookups (gw_lookup.h): they count against the connection's
 * PARLEY_PENDING_LOOKUPS_MAX requests in flight, shared with GetDevices. */
#ifndef PARLEY_GW_PREKEYS_H
#define PARLEY_GW_PREKEYS_H

#include "gw_proto.h"

struct gw;
struct gw_conn;

void gw_prekeys_upload(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_prekeys_get(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

#endif
