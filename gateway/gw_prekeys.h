/* gw_prekeys.h: the prekey requests of authenticated devices (docs/PROTOCOL.md, "Prekeys").
 *
 * UploadPrekeys (gw_prekeys_upload.c): checked (gw_prekeys_check.h); with a signed prekey, the
 * device's signing key is read from PostgreSQL and the signature verified (INVALID_SIGNATURE,
 * nothing stored); then parley_prekeys_upload stores it all in one transaction -> PrekeysOk
 * with the device's counts after.
 *
 * GetPrekeys (gw_prekeys_get.c): the account name, the device list, then two fixed one-minute
 * windows in Redis (per requesting device: prekey_fetch_rate_per_minute; per target account:
 * prekey_target_rate_per_minute; RATE_LIMITED with retry_after_ms; Redis down: UNAVAILABLE),
 * then parley_prekeys_claim claims one one-time prekey per device -> PrekeyBundles. Devices
 * whose pool is left at or below the low-water mark are told (gw_prekeys_low.h).
 *
 * Both count against the connection's PARLEY_PENDING_LOOKUPS_MAX requests in flight, shared
 * with GetDevices (gw_prekeys.c holds what the two share). */
#ifndef PARLEY_GW_PREKEYS_H
#define PARLEY_GW_PREKEYS_H

#include <stdint.h>

#include <libpq-fe.h>

#include "gw_proto.h"

struct gw;
struct gw_conn;

void gw_prekeys_upload(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);
void gw_prekeys_get(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

/* ---- shared by the two ---------------------------------------------------------------- */

/* RATE_LIMITED (answered here, returns -1) when c has PARLEY_PENDING_LOOKUPS_MAX requests in
 * flight; else 0 (the caller counts its request in c->lookups once it is under way). */
int gw_prekeys_admit(struct gw *g, struct gw_conn *c, uint64_t request_id);
/* The connection a request came from, with its in-flight count given back; NULL when it is
 * gone or closing (nothing to answer). */
struct gw_conn *gw_prekeys_conn_done(struct gw *g, uint64_t conn_id);
/* A failed query, logged once here as event; returns the code to answer with: UNAVAILABLE
 * for lost connections, shutdowns, exhausted resources and deadlocks (worth a retry),
 * INTERNAL for anything else. */
Parley__V1__ErrorCode gw_prekeys_pg_failed(const char *event, uint64_t conn_id,
                                           const PGresult *res, const char *err);

#endif
