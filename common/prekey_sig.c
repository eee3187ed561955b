#include "prekey_sig.h"

#include <string.h>

#include "auth.h"

_Static_assert(sizeof PPKSIG_TAG - 1 == PPKSIG_TAG_BYTES, "tag length");

void ppksig_transcript(uint8_t out[PPKSIG_TRANSCRIPT_BYTES], uint32_t id,
                       const uint8_t public_key[32])
{
    memcpy(out, PPKSIG_TAG, PPKSIG_TAG_BYTES);
    out[PPKSIG_TAG_BYTES] = (uint8_t)(id >> 24);
    out[PPKSIG_TAG_BYTES + 1] = (uint8_t)(id >> 16);
    out[PPKSIG_TAG_BYTES + 2] = (uint8_t)(id >> 8);
    out[PPKSIG_TAG_BYTES + 3] = (uint8_t)id;
    memcpy(out + PPKSIG_TAG_BYTES + 4, public_key, 32);
}

int ppksig_verify(const uint8_t sig[64], uint32_t id, const uint8_t public_key[32],
                  const uint8_t signing_key[32])
{
    uint8_t t[PPKSIG_TRANSCRIPT_BYTES];
    if (!sig || !public_key || !signing_key)
        return -1;
    ppksig_transcript(t, id, public_key);
    return pauth_verify(sig, t, sizeof t, signing_key);
}
