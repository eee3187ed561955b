/* gw_provision_id.h: provisioning channel ids: PARLEY_LINK_CHANNEL_ID_LEN characters of
 * Crockford base32 (0-9, A-Z without I, L, O, U), made from random bytes and checked on the way
 * in. Pure. */
#ifndef PARLEY_GW_PROVISION_ID_H
#define PARLEY_GW_PROVISION_ID_H

#include <stdint.h>

#include "limits.h"

#define GW_PROVISION_ID_SIZE (PARLEY_LINK_CHANNEL_ID_LEN + 1)

/* out = one alphabet character per random byte (its low 5 bits: uniform over 32). */
void gw_provision_id_make(char out[GW_PROVISION_ID_SIZE],
                          const uint8_t rnd[PARLEY_LINK_CHANNEL_ID_LEN]);
/* A client's channel id: exactly PARLEY_LINK_CHANNEL_ID_LEN alphabet characters, lower case
 * accepted (written upper case to out). Returns 0, or -1 when in cannot name a channel. The
 * link code's own leniency (I/L as 1, O as 0, separators) is the client's: the server sees the
 * id the client parsed. */
int gw_provision_id_parse(const char *in, char out[GW_PROVISION_ID_SIZE]);

#endif
