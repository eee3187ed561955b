/* keys.h: a device's identity: the account key (Ed25519; its secret half only on a device that
 * holds it: the first device, or one that imported a recovery kit; linked devices have the
 * public half),
 * the device signing key (Ed25519, authentication), the device identity key (X25519, message
 * encryption) and the registration id (1..PARLEY_REGISTRATION_ID_MAX, detects reinstalls).
 * Generation and the text form stored in the home folder; home.c does the files. */
#ifndef PC_KEYS_H
#define PC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "status.h"

typedef struct {
    uint8_t account_pk[32], account_sk[64];
    uint8_t signing_pk[32], signing_sk[64];
    uint8_t identity_pk[32], identity_sk[32];
    uint32_t registration_id;
    int has_account_sk; /* account_sk is set: this device can sign device lists */
} pc_keys;

/* A registered device: who it is and its keys. */
typedef struct {
    char username[PARLEY_NAME_MAX + 1]; /* normalised */
    uint32_t device_id;
    pc_keys keys;
} pc_identity;

/* Fresh random keys. Returns 0, or -1 (libsodium failed to initialise). */
int pc_keys_generate(pc_keys *k, pc_status *st);
/* Zeroes the secrets. */
void pc_keys_wipe(pc_keys *k);

/* Appends the "name=hex" lines of every key and the registration id to out (cap bytes, NUL
 * terminated; account_sk only when held); returns the new length or -1 when out is too small. */
int pc_keys_format(const pc_keys *k, char *out, size_t cap, size_t len);
/* Takes the key fields from name=value lines (other lines are ignored) and checks that every
 * key is present (account_sk is optional) and each public key matches its secret key. */
int pc_keys_parse(pc_keys *k, const char *text, pc_status *st);

/* Ed25519 signature by the device signing key / the account key (k->has_account_sk). */
void pc_keys_sign_device(const pc_keys *k, uint8_t sig[64], const uint8_t *msg, size_t len);
void pc_keys_sign_account(const pc_keys *k, uint8_t sig[64], const uint8_t *msg, size_t len);

#endif
