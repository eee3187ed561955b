/* turn_rest.h: the password of the TURN REST API credential scheme, shared by the relay (which
 * checks credentials) and the gateway (which mints them): password = base64(HMAC-SHA1(secret,
 * username)), username = "EXPIRY:USER". Built as its own library (parley_turn_rest) so that only
 * the services that need libcrypto link it: HMAC-SHA1 comes from libcrypto because the TURN
 * protocol mandates it and libsodium has none. No state, no allocation. */
#ifndef PARLEY_TURN_REST_H
#define PARLEY_TURN_REST_H

#include <stddef.h>

#define PTURN_PASSWORD_LEN 28 /* base64 of the 20-byte HMAC-SHA1 */

/* Writes the NUL-terminated password of username (ulen bytes) under secret (NUL-terminated) to
 * out. 0, or -1 when libcrypto fails. */
int pturn_password(const char *secret, const char *username, size_t ulen,
                   char out[PTURN_PASSWORD_LEN + 1]);

#endif
