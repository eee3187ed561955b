/* relay_auth.c: TURN REST credentials, nonces and the 401 rate limit (see relay_auth.h).
 * MD5 comes from libcrypto (and HMAC-SHA1, through turn_rest.h) only because the TURN protocol
 * mandates them; the relay's own MACs (nonces, bucket hashing) use libsodium. */
#include "relay_auth.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

int rauth_init(rauth *a, const char *secrets, const char *realm, uint32_t nonce_ttl_s,
               char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (!realm || !realm[0] || strlen(realm) > PARLEY_RELAY_STUN_REALM_MAX) {
        snprintf(err, errlen, "realm must be 1..%d bytes", PARLEY_RELAY_STUN_REALM_MAX);
        return -1;
    }
    snprintf(a->realm, sizeof a->realm, "%s", realm);
    const char *s = secrets ? secrets : "";
    for (;;) {
        const char *end = strchr(s, ',');
        const char *b = s, *e = end ? end : s + strlen(s);
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            if (a->nsecrets == PARLEY_RELAY_SECRETS_MAX) {
                snprintf(err, errlen, "more than %d secrets", PARLEY_RELAY_SECRETS_MAX);
                rauth_clear(a);
                return -1;
            }
            if ((size_t)(e - b) > PARLEY_RELAY_SECRET_MAX_BYTES) {
                snprintf(err, errlen, "a secret is longer than %d bytes", PARLEY_RELAY_SECRET_MAX_BYTES);
                rauth_clear(a);
                return -1;
            }
            memcpy(a->secrets[a->nsecrets], b, (size_t)(e - b));
            a->secrets[a->nsecrets][e - b] = '\0';
            a->nsecrets++;
        }
        if (!end)
            break;
        s = end + 1;
    }
    if (a->nsecrets == 0) {
        snprintf(err, errlen, "secrets is empty: at least one shared secret is required");
        return -1;
    }
    a->nonce_ttl_s = nonce_ttl_s;
    crypto_auth_keygen(a->nonce_key);
    crypto_shorthash_keygen(a->bucket_key);
    for (size_t i = 0; i < PARLEY_RELAY_401_BUCKETS; i++)
        a->buckets[i].millitokens = PARLEY_RELAY_401_BURST * 1000u;
    return 0;
}

void rauth_clear(rauth *a) { sodium_memzero(a, sizeof *a); }

int rauth_password(const char *secret, const char *username, size_t ulen,
                   char out[RAUTH_PASSWORD_LEN + 1])
{
    return pturn_password(secret, username, ulen, out);
}

int rauth_key(const char *username, size_t ulen, const char *realm, size_t rlen,
              const char *password, uint8_t key[STUN_LT_KEY_LEN])
{
    char buf[PARLEY_RELAY_STUN_USERNAME_MAX + PARLEY_RELAY_STUN_REALM_MAX + RAUTH_PASSWORD_LEN + 3];
    size_t plen = strlen(password);
    if (ulen > PARLEY_RELAY_STUN_USERNAME_MAX || rlen > PARLEY_RELAY_STUN_REALM_MAX || plen > RAUTH_PASSWORD_LEN)
        return -1;
    size_t n = 0;
    memcpy(buf + n, username, ulen);
    n += ulen;
    buf[n++] = ':';
    memcpy(buf + n, realm, rlen);
    n += rlen;
    buf[n++] = ':';
    memcpy(buf + n, password, plen);
    n += plen;
    unsigned klen = 0;
    int ok = EVP_Digest(buf, n, key, &klen, EVP_md5(), NULL) == 1 && klen == STUN_LT_KEY_LEN;
    sodium_memzero(buf, sizeof buf);
    return ok ? 0 : -1;
}

rauth_result rauth_username(const char *username, size_t ulen, uint64_t now_s, const char **user,
                            size_t *user_len)
{
    size_t i = 0;
    uint64_t expiry = 0;
    /* 20 digits overflow uint64; an expiry needs far fewer */
    for (; i < ulen && username[i] >= '0' && username[i] <= '9'; i++) {
        if (i == 18)
            return RAUTH_BAD_USERNAME;
        expiry = expiry * 10 + (uint64_t)(username[i] - '0');
    }
    if (i == 0 || (i < ulen && username[i] != ':') || ulen > PARLEY_RELAY_STUN_USERNAME_MAX)
        return RAUTH_BAD_USERNAME;
    if (i < ulen && i + 1 < ulen) {
        *user = username + i + 1;
        *user_len = ulen - i - 1;
    } else {
        *user = username;
        *user_len = ulen;
    }
    return expiry < now_s ? RAUTH_EXPIRED : RAUTH_OK;
}

/* MAC input: expiry, then the client's family, address and port. */
static void nonce_mac(const rauth *a, uint64_t expiry, const struct sockaddr *client,
                      uint8_t mac[crypto_auth_BYTES])
{
    uint8_t in[8 + 1 + 16 + 2] = {0};
    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t)(expiry >> (56 - 8 * i));
    if (client->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)client;
        in[8] = 4;
        memcpy(in + 9, &s->sin_addr, 4);
        memcpy(in + 25, &s->sin_port, 2);
    } else if (client->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)client;
        in[8] = 6;
        memcpy(in + 9, &s->sin6_addr, 16);
        memcpy(in + 25, &s->sin6_port, 2);
    }
    crypto_auth(mac, in, sizeof in, a->nonce_key);
}

#define NONCE_MAC_BYTES 16

void rauth_nonce(const rauth *a, const struct sockaddr *client, uint64_t now_s,
                 char out[RAUTH_NONCE_LEN + 1])
{
    uint64_t expiry = now_s + a->nonce_ttl_s;
    uint8_t raw[8 + NONCE_MAC_BYTES], mac[crypto_auth_BYTES];
    for (int i = 0; i < 8; i++)
        raw[i] = (uint8_t)(expiry >> (56 - 8 * i));
    nonce_mac(a, expiry, client, mac);
    memcpy(raw + 8, mac, NONCE_MAC_BYTES);
    sodium_bin2hex(out, RAUTH_NONCE_LEN + 1, raw, sizeof raw);
}

rauth_result rauth_nonce_check(const rauth *a, const char *nonce, size_t len,
                               const struct sockaddr *client, uint64_t now_s)
{
    uint8_t raw[8 + NONCE_MAC_BYTES], mac[crypto_auth_BYTES];
    size_t rawlen = 0;
    if (len != RAUTH_NONCE_LEN ||
        sodium_hex2bin(raw, sizeof raw, nonce, len, NULL, &rawlen, NULL) != 0 ||
        rawlen != sizeof raw)
        return RAUTH_BAD_NONCE;
    uint64_t expiry = 0;
    for (int i = 0; i < 8; i++)
        expiry = (expiry << 8) | raw[i];
    nonce_mac(a, expiry, client, mac);
    if (sodium_memcmp(mac, raw + 8, NONCE_MAC_BYTES) != 0)
        return RAUTH_BAD_NONCE;
    return expiry < now_s ? RAUTH_STALE_NONCE : RAUTH_OK;
}

rauth_result rauth_verify(const rauth *a, const stun_msg *m, uint64_t now_s,
                          uint8_t key[STUN_LT_KEY_LEN])
{
    const stun_attr *u = stun_find(m, STUN_A_USERNAME);
    if (!u)
        return RAUTH_BAD_USERNAME;
    const char *user;
    size_t user_len;
    rauth_result r = rauth_username((const char *)u->val, u->len, now_s, &user, &user_len);
    if (r != RAUTH_OK)
        return r;
    for (size_t i = 0; i < a->nsecrets; i++) {
        char password[RAUTH_PASSWORD_LEN + 1];
        uint8_t k[STUN_LT_KEY_LEN];
        if (rauth_password(a->secrets[i], (const char *)u->val, u->len, password) != 0 ||
            rauth_key((const char *)u->val, u->len, a->realm, strlen(a->realm), password, k) != 0)
            continue;
        int ok = stun_check_integrity(m, k, sizeof k) == STUN_OK;
        sodium_memzero(password, sizeof password);
        if (ok) {
            memcpy(key, k, sizeof k);
            return RAUTH_OK;
        }
    }
    return RAUTH_BAD_INTEGRITY;
}

int rauth_reject_allowed(rauth *a, const struct sockaddr *client, uint64_t now_s)
{
    uint8_t h[crypto_shorthash_BYTES];
    if (client->sa_family == AF_INET)
        crypto_shorthash(h, (const uint8_t *)&((const struct sockaddr_in *)client)->sin_addr, 4,
                         a->bucket_key);
    else if (client->sa_family == AF_INET6)
        crypto_shorthash(h, ((const struct sockaddr_in6 *)client)->sin6_addr.s6_addr, 16,
                         a->bucket_key);
    else
        return 0;
    uint32_t idx = ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16) %
                   PARLEY_RELAY_401_BUCKETS;
    rauth_bucket *b = &a->buckets[idx];
    const uint32_t burst = PARLEY_RELAY_401_BURST * 1000u;
    uint32_t now = (uint32_t)now_s;
    if (now != b->last_s) {
        uint64_t add = (uint64_t)(uint32_t)(now - b->last_s) * PARLEY_RELAY_401_RATE_PER_S * 1000u;
        uint64_t t = b->millitokens + add;
        b->millitokens = t > burst ? burst : (uint32_t)t;
        b->last_s = now;
    }
    if (b->millitokens < 1000)
        return 0;
    b->millitokens -= 1000;
    return 1;
}

const char *rauth_result_name(rauth_result r)
{
    switch (r) {
    case RAUTH_OK: return "ok";
    case RAUTH_BAD_USERNAME: return "bad_username";
    case RAUTH_EXPIRED: return "expired";
    case RAUTH_BAD_INTEGRITY: return "bad_integrity";
    case RAUTH_STALE_NONCE: return "stale_nonce";
    case RAUTH_BAD_NONCE: return "bad_nonce";
    }
    return "unknown";
}
