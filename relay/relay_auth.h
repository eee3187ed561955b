/* relay_auth.h: TURN long-term credentials in the TURN REST API scheme. The gateway mints
 * username = "EXPIRY:USER" (EXPIRY in Unix seconds) and password = base64(HMAC-SHA1(secret,
 * username)) with a secret shared with the relays; several secrets are accepted at once so they
 * can rotate. The long-term key is MD5(username ":" realm ":" password) as RFC 8489 requires.
 * Nonces are stateless: the expiry and a libsodium MAC over it and the client's transport
 * address, so they cannot be replayed from elsewhere or kept past their life. Also owns the
 * per-source rate limit of 401/438 answers. Named relay_auth.h because common/auth.h exists.
 * An rauth is one fixed-size struct (no allocation); rauth_clear wipes its secrets. */
#ifndef PARLEY_RELAY_AUTH_H
#define PARLEY_RELAY_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <sodium.h>

#include "limits.h"
#include "stun.h"
#include "turn_rest.h"

#define RAUTH_PASSWORD_LEN PTURN_PASSWORD_LEN
#define RAUTH_NONCE_LEN    48 /* hex: 8 bytes expiry, 16 bytes MAC */

typedef enum {
    RAUTH_OK = 0,
    RAUTH_BAD_USERNAME, /* not "EXPIRY[:USER]" */
    RAUTH_EXPIRED,      /* EXPIRY in the past */
    RAUTH_BAD_INTEGRITY,/* no secret gives a matching MESSAGE-INTEGRITY */
    RAUTH_STALE_NONCE,  /* ours but expired */
    RAUTH_BAD_NONCE,    /* not ours, or for another client address */
} rauth_result;

typedef struct {
    uint32_t millitokens;
    uint32_t last_s; /* monotonic seconds of the last refill */
} rauth_bucket;

typedef struct {
    char secrets[PARLEY_RELAY_SECRETS_MAX][PARLEY_RELAY_SECRET_MAX_BYTES + 1];
    size_t nsecrets;
    char realm[PARLEY_RELAY_STUN_REALM_MAX + 1];
    uint32_t nonce_ttl_s;
    uint8_t nonce_key[crypto_auth_KEYBYTES];
    uint8_t bucket_key[crypto_shorthash_KEYBYTES];
    rauth_bucket buckets[PARLEY_RELAY_401_BUCKETS];
} rauth;

/* secrets: comma separated (spaces around entries trimmed), 1..PARLEY_RELAY_SECRETS_MAX of them;
 * realm non-empty. Returns 0, or -1 with a message in err (size errlen). Needs sodium_init. */
int rauth_init(rauth *a, const char *secrets, const char *realm, uint32_t nonce_ttl_s,
               char *err, size_t errlen);
void rauth_clear(rauth *a);

/* password = base64(HMAC-SHA1(secret, username)), NUL-terminated in out. 0 or -1. The scheme
 * lives in common/turn_rest.h, shared with the gateway that mints the credentials. */
int rauth_password(const char *secret, const char *username, size_t ulen,
                   char out[RAUTH_PASSWORD_LEN + 1]);
/* key = MD5(username:realm:password). 0 or -1 (lengths over the STUN maximums). */
int rauth_key(const char *username, size_t ulen, const char *realm, size_t rlen,
              const char *password, uint8_t key[STUN_LT_KEY_LEN]);

/* Checks "EXPIRY[:USER]": RAUTH_OK, RAUTH_BAD_USERNAME or RAUTH_EXPIRED (expiry < now_s).
 * user and user_len: the USER part (the whole username when there is none), for quotas. */
rauth_result rauth_username(const char *username, size_t ulen, uint64_t now_s,
                            const char **user, size_t *user_len);

/* Writes a fresh nonce (NUL-terminated) for client, valid nonce_ttl_s from now_s. */
void rauth_nonce(const rauth *a, const struct sockaddr *client, uint64_t now_s,
                 char out[RAUTH_NONCE_LEN + 1]);
/* RAUTH_OK, RAUTH_STALE_NONCE or RAUTH_BAD_NONCE. */
rauth_result rauth_nonce_check(const rauth *a, const char *nonce, size_t len,
                               const struct sockaddr *client, uint64_t now_s);

/* Verifies a request's USERNAME and MESSAGE-INTEGRITY (the caller checked NONCE and that
 * USERNAME, REALM, NONCE, MESSAGE-INTEGRITY are present). On RAUTH_OK key holds the key to
 * sign the response with. */
rauth_result rauth_verify(const rauth *a, const stun_msg *m, uint64_t now_s,
                          uint8_t key[STUN_LT_KEY_LEN]);

/* Non-zero when an unauthenticated answer (401/438) may be sent to client now: a token bucket
 * per source address (PARLEY_RELAY_401_RATE_PER_S, burst PARLEY_RELAY_401_BURST; addresses share buckets by
 * a keyed hash). now_s: monotonic seconds. */
int rauth_reject_allowed(rauth *a, const struct sockaddr *client, uint64_t now_s);

const char *rauth_result_name(rauth_result r);

#endif
