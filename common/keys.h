/* keys.h: the Redis key layout shared by the gateway and fanout (docs/OPERATIONS.md lists it).
 * Redis holds no durable truth: every key here can be lost and is rebuilt. */
#ifndef PARLEY_KEYS_H
#define PARLEY_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define PKEYS_MAX 160                       /* longest key built here, with NUL */
#define PKEYS_FANOUT_GROUP "fanout"         /* consumer group on every ingress stream */
#define PKEYS_FIELD "m"                     /* the one field of every stream entry */
#define PKEYS_PRESENCE_TTL_S 60             /* presence expires unless refreshed */
#define PKEYS_PRESENCE_REFRESH_S 20
#define PKEYS_DELIVERY_MAXLEN "100000"      /* approximate trim of a gateway's delivery stream */

/* Shard of a recipient (normalised account name) among nshards ingress streams. */
unsigned pkeys_shard(const char *account, unsigned nshards);
/* parley:ingress:{shard}: sends waiting for fanout. */
int pkeys_ingress(char out[PKEYS_MAX], unsigned shard);
/* parley:gw:{gateway_id}: replies, pushes and kicks for one gateway. */
int pkeys_delivery(char out[PKEYS_MAX], const char *gateway_id);
/* parley:presence:{account}:{device}: value "{gateway_id}/{conn_id}". */
int pkeys_presence(char out[PKEYS_MAX], const char *account, uint32_t device_id);
/* parley:rl:{what}:{who}: a fixed-window rate-limit counter. */
int pkeys_ratelimit(char out[PKEYS_MAX], const char *what, const char *who);

/* parley:prov:{channel_id}: a provisioning channel of device linking, a hash with a TTL
 * (gateway/gw_provision.h): the prefix followed by the channel id. */
#define PKEYS_PROVISION_PREFIX "parley:prov:"
/* The pkeys_ratelimit `what` of ProvisionOpen per source address:
 * parley:rl:provision_open:{source}. */
#define PKEYS_RL_PROVISION_OPEN "provision_open"

#endif
