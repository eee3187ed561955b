#include "gw_provision_id.h"

#include <string.h>

static const char gw_provision_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
_Static_assert(sizeof gw_provision_alphabet == 33, "Crockford base32 has 32 symbols");

void gw_provision_id_make(char out[GW_PROVISION_ID_SIZE],
                          const uint8_t rnd[PARLEY_LINK_CHANNEL_ID_LEN])
{
    for (int i = 0; i < PARLEY_LINK_CHANNEL_ID_LEN; i++)
        out[i] = gw_provision_alphabet[rnd[i] & 31];
    out[PARLEY_LINK_CHANNEL_ID_LEN] = '\0';
}

int gw_provision_id_parse(const char *in, char out[GW_PROVISION_ID_SIZE])
{
    if (!in || strlen(in) != PARLEY_LINK_CHANNEL_ID_LEN)
        return -1;
    for (int i = 0; i < PARLEY_LINK_CHANNEL_ID_LEN; i++) {
        char ch = in[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (ch == '\0' || !strchr(gw_provision_alphabet, ch))
            return -1;
        out[i] = ch;
    }
    out[PARLEY_LINK_CHANNEL_ID_LEN] = '\0';
    return 0;
}
