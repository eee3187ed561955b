#include "keys.h"

#include <inttypes.h>
#include <stdio.h>

unsigned pkeys_shard(const char *account, unsigned nshards)
{
    /* FNV-1a: stable across processes and versions, which the shard mapping must be */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)account; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return nshards ? h % nshards : 0;
}

static int fit(int n)
{
    return (n < 0 || n >= PKEYS_MAX) ? -1 : n;
}

int pkeys_ingress(char out[PKEYS_MAX], unsigned shard)
{
    return fit(snprintf(out, PKEYS_MAX, "parley:ingress:%u", shard));
}

int pkeys_delivery(char out[PKEYS_MAX], const char *gateway_id)
{
    return fit(snprintf(out, PKEYS_MAX, "parley:gw:%s", gateway_id));
}

int pkeys_presence(char out[PKEYS_MAX], const char *account, uint32_t device_id)
{
    return fit(snprintf(out, PKEYS_MAX, "parley:presence:%s:%" PRIu32, account, device_id));
}

int pkeys_ratelimit(char out[PKEYS_MAX], const char *what, const char *who)
{
    return fit(snprintf(out, PKEYS_MAX, "parley:rl:%s:%s", what, who));
}
