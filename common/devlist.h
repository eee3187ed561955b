/* devlist.h: signed device lists, shared by the gateway (checks a list before storing it) and
 * the client (signs lists, verifies what the server serves). A list version is a serialized
 * DeviceListBody (parley.proto) signed with Ed25519 by the account key over
 *
 *   "parley-devlist-v1" (17 ASCII bytes, no terminator) || body
 *
 * and chained by hash: version N+1 carries BLAKE2b-256(body of version N) as prev_hash.
 * Parsing checks everything a body can get wrong on its own; pdl_check_next checks one
 * version against the one before it. All crypto is libsodium. */
#ifndef PARLEY_DEVLIST_H
#define PARLEY_DEVLIST_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"

#define PDL_TAG "parley-devlist-v1"
#define PDL_TAG_BYTES 17
#define PDL_HASH_BYTES 32
#define PDL_SIG_BYTES 64

typedef struct {
    uint32_t device_id, registration_id;
    uint8_t signing_pk[32], identity_pk[32];
} pdl_device;

/* One parsed list version. */
typedef struct {
    char account[PARLEY_NAME_MAX + 1];
    uint64_t version;
    int has_prev;                      /* 0 only in version 1 */
    uint8_t prev_hash[PDL_HASH_BYTES];
    uint32_t max_device_id;
    uint64_t timestamp_ms;
    size_t n;
    pdl_device dev[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    uint8_t hash[PDL_HASH_BYTES];      /* BLAKE2b-256 of the body it was parsed from */
} pdl_list;

/* Parses body into *out and checks it on its own: normalised account name, version >= 1,
 * prev_hash empty exactly in version 1 (else 32 bytes), 1..PARLEY_MAX_DEVICES_PER_ACCOUNT
 * devices in strictly ascending id order, 32-byte keys, no signing key and no identity key
 * listed for two devices (each device has its own keys: a shared key would let one device's
 * messages pass for another's), registration ids in 1..PARLEY_REGISTRATION_ID_MAX,
 * max_device_id >= every id. Returns 0, or -1 with *why (static text; may be NULL) set. A list
 * of more than PARLEY_MAX_DEVICES_PER_ACCOUNT devices fails with PDL_ERR_TOO_MANY so the
 * server can answer TOO_MANY_DEVICES. */
#define PDL_ERR_TOO_MANY (-2)
int pdl_parse(const uint8_t *body, size_t len, pdl_list *out, const char **why);

/* Serializes l's fields (not its hash) into a new body (caller frees) and sets l->hash to the
 * hash of those bytes. Returns 0, or -1 when out of memory or l is not a valid list. */
int pdl_encode(pdl_list *l, uint8_t **body, size_t *len);

/* Signature over the transcript of body by the account key (sk: libsodium's 64-byte form). */
void pdl_sign(uint8_t sig[PDL_SIG_BYTES], const uint8_t *body, size_t len,
              const uint8_t account_sk[64]);
/* 0 when sig is valid for body under account_pk, else -1. */
int pdl_verify(const uint8_t *sig, size_t sig_len, const uint8_t *body, size_t len,
               const uint8_t account_pk[32]);

/* BLAKE2b-256 of body. */
void pdl_hash(uint8_t out[PDL_HASH_BYTES], const uint8_t *body, size_t len);

/* Checks that next may follow prev (NULL: next must be version 1): same account, version + 1,
 * prev_hash = prev's hash, every device in both keeps its keys and registration id, devices
 * that are new have ids above prev's max_device_id, and max_device_id = max(prev's, every id).
 * Returns 0, or with *why set: PDL_ERR_NOT_NEXT when next is not prev's version + 1 (not
 * version 1 when prev is NULL) or its prev_hash is not prev's hash (someone else's change may
 * have come first: the server answers DEVICE_LIST_CONFLICT), -1 for every other fault (a list
 * that may never follow prev). */
#define PDL_ERR_NOT_NEXT (-3)
int pdl_check_next(const pdl_list *prev, const pdl_list *next, const char **why);

/* The device with that id in l, or NULL. */
const pdl_device *pdl_find(const pdl_list *l, uint32_t device_id);

/* Devices of next that prev lacks (added) and of prev that next lacks (removed); prev NULL:
 * every device is added. Each array holds at most PARLEY_MAX_DEVICES_PER_ACCOUNT ids. */
void pdl_diff(const pdl_list *prev, const pdl_list *next, uint32_t *added, size_t *n_added,
              uint32_t *removed, size_t *n_removed);

#endif
