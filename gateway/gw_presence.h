/* gw_presence.h: the device presence keys parley:presence:{account}:{device} = "{gw}/{conn}":
 * claimed on auth (SET .. GET; a previous holder elsewhere gets a kick), refreshed every
 * PKEYS_PRESENCE_REFRESH_S and re-claimed (and the queue re-drained) after a Redis reconnect,
 * both paced by gw_sweep.h, compare-and-deleted on close. */
#ifndef PARLEY_GW_PRESENCE_H
#define PARLEY_GW_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

struct gw;
struct gw_conn;
struct predis;

#define GW_PRESENCE_SHA_LEN 40
/* The SHA1s of the presence scripts in Redis' script cache; "" until loaded. */
typedef struct {
    char claim_sha[GW_PRESENCE_SHA_LEN + 1];
    char release_sha[GW_PRESENCE_SHA_LEN + 1];
} gw_presence_scripts;

/* Claims presence for a freshly authenticated c, then calls done(g, conn_id) (also when Redis
 * is down: presence is re-claimed after the reconnect). */
void gw_presence_claim(struct gw *g, struct gw_conn *c, void (*done)(struct gw *g, uint64_t conn_id));
/* Deletes the key if it still names c. */
void gw_presence_release(struct gw *g, const struct gw_conn *c);
/* Sets c's key again unless another connection holds it (then c is closed as replaced);
 * redrain: re-drain c's queue once the key is set. */
void gw_presence_refresh(struct gw *g, struct gw_conn *c, int redrain);
/* on_up callback of the command Redis connection: starts a re-claim round (gw_sweep.h). */
void gw_presence_on_up(struct predis *r, void *ud);

/* Parses "{gw}/{conn}" (pure). Returns 0, or -1 when malformed. gw_buf gets at most gw_size-1
 * characters. */
int gw_presence_parse(const char *v, size_t len, char *gw_buf, size_t gw_size, uint64_t *conn_id);

#endif
