/* gw_turn.h: TURN credentials for call media (GetTurnCredentials -> TurnCredentials). Owns the
 * relays' URIs and the REST secret shared with the relays (read once at start-up from
 * turn_uris and turn_secret or turn_secret_file), the per-device rate limit (a fixed one-minute
 * window in Redis, so it holds across gateways and reconnects) and the minting:
 * username "EXPIRY:ACCOUNT" (EXPIRY in Unix seconds; the account is the relay's per-user quota
 * key), password = base64(HMAC-SHA1(secret, username)) (common/turn_rest.h). Without URIs and
 * secret the gateway answers NOT_CONFIGURED. A gw_turn is one fixed-size struct (no
 * allocation); gw_turn_clear wipes the secret. */
#ifndef PARLEY_GW_TURN_H
#define PARLEY_GW_TURN_H

#include <stddef.h>
#include <stdint.h>

#include "gw_proto.h"
#include "limits.h"
#include "turn_rest.h"

struct gw;
struct gw_conn;

#define GW_TURN_USERNAME_MAX (20 + 1 + PARLEY_NAME_MAX) /* uint64 expiry ':' account */

typedef struct {
    char uris[PARLEY_TURN_URIS_MAX][PARLEY_TURN_URI_MAX + 1];
    size_t nuris; /* 0: not configured */
    char secret[PARLEY_RELAY_SECRET_MAX_BYTES + 1];
    uint32_t ttl_s;
    unsigned inflight; /* rate-limit checks waiting for Redis, all connections */
} gw_turn;

typedef struct {
    char username[GW_TURN_USERNAME_MAX + 1];
    char password[PTURN_PASSWORD_LEN + 1];
    uint32_t ttl_s;
} gw_turn_creds;

/* uris: comma separated (spaces around entries trimmed), each "turn:", "turns:", "stun:" or
 * "stuns:" followed by printable text without spaces, at most PARLEY_TURN_URIS_MAX of
 * PARLEY_TURN_URI_MAX bytes. The secret comes from secret or from the first line of
 * secret_file (not both), 1..PARLEY_RELAY_SECRET_MAX_BYTES bytes, spaces trimmed, no comma
 * (one secret, not the relay's list). URIs and secret go together: neither leaves t not
 * configured, one without the other is an error. ttl_s: 1..PARLEY_TURN_TTL_MAX_S.
 * Returns 0, or -1 with a message naming the option in err (size errlen); t is cleared then. */
int gw_turn_init(gw_turn *t, const char *uris, const char *secret, const char *secret_file,
                 long long ttl_s, char *err, size_t errlen);
void gw_turn_clear(gw_turn *t);
int gw_turn_configured(const gw_turn *t);

/* Credentials for account valid until now_s + ttl_s. 0, or -1 (account longer than
 * PARLEY_NAME_MAX, libcrypto failure). */
int gw_turn_mint(const gw_turn *t, const char *account, uint64_t now_s, gw_turn_creds *out);

/* GetTurnCredentials of authenticated device c: NOT_CONFIGURED, RATE_LIMITED with
 * retry_after_ms (the window's rest), UNAVAILABLE without Redis, else TurnCredentials. */
void gw_turn_handle(struct gw *g, struct gw_conn *c, const Parley__V1__ClientFrame *f);

#endif
