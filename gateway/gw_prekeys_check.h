/* gw_prekeys_check.h: the pure parts of the prekey requests (no I/O, unit tested): whether an
 * UploadPrekeys is well formed and its parameters for parley_prekeys_upload, and the device
 * list of a GetPrekeys. The signed prekey signature itself is checked with prekey_sig.h once
 * the device's signing key is known. */
#ifndef PARLEY_GW_PREKEYS_CHECK_H
#define PARLEY_GW_PREKEYS_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "gw_proto.h"
#include "limits.h"

/* 0 when u is well formed: a signed prekey (if any) with id != 0, a 32-byte key and a 64-byte
 * signature; at most PARLEY_PREKEYS_UPLOAD_MAX one-time prekeys, each with id != 0 and a
 * 32-byte key, no id twice. Else -1 and *why says what is wrong (for Error.message). */
int gw_prekeys_check_upload(const Parley__V1__UploadPrekeys *u, const char **why);

/* The one-time prekeys of a checked upload as parley_prekeys_upload takes them: *ids a
 * PostgreSQL array literal ("{1,2}", "{}" when none) and *keys the public keys concatenated,
 * 32 bytes each in the same order (NULL when none). Both are new allocations the caller frees.
 * Returns 0, or -1 on allocation failure (nothing to free then). */
int gw_prekeys_upload_params(const Parley__V1__UploadPrekeys *u, char **ids, uint8_t **keys,
                             size_t *keys_len);

/* The device ids a GetPrekeys names, as a PostgreSQL array literal in out: ascending, each
 * once, without ids no device can have (0, above INT32_MAX: they are simply absent from the
 * answer, like other unknown ids). n == 0 gives "" (every device). Returns 0, or -1 when the
 * list is longer than PARLEY_PREKEYS_FETCH_DEVICES_MAX. */
#define GW_PREKEYS_DEVICES_TEXT_MAX (PARLEY_PREKEYS_FETCH_DEVICES_MAX * 11 + 3)
int gw_prekeys_device_list(const uint32_t *ids, size_t n, char out[GW_PREKEYS_DEVICES_TEXT_MAX]);

#endif
