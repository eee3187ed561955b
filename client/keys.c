#include "keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

int pc_keys_generate(pc_keys *k, pc_status *st)
{
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    memset(k, 0, sizeof *k);
    crypto_sign_ed25519_keypair(k->account_pk, k->account_sk);
    crypto_sign_ed25519_keypair(k->signing_pk, k->signing_sk);
    crypto_box_keypair(k->identity_pk, k->identity_sk);
    k->has_account_sk = 1;
    k->registration_id = 1 + randombytes_uniform(PARLEY_REGISTRATION_ID_MAX);
    return 0;
}

void pc_keys_wipe(pc_keys *k)
{
    sodium_memzero(k, sizeof *k);
}

static int put_hex(char *out, size_t cap, size_t len, const char *name, const uint8_t *b,
                   size_t n)
{
    char hex[64 * 2 + 1];
    int w;

    sodium_bin2hex(hex, sizeof hex, b, n);
    w = snprintf(out + len, cap - len, "%s=%s\n", name, hex);
    sodium_memzero(hex, sizeof hex);
    if (w < 0 || (size_t)w >= cap - len)
        return -1;
    return (int)(len + (size_t)w);
}

int pc_keys_format(const pc_keys *k, char *out, size_t cap, size_t len)
{
    int n = (int)len, w;

    if (len >= cap)
        return -1;
    if ((n = put_hex(out, cap, (size_t)n, "account_pk", k->account_pk, 32)) < 0 ||
        (k->has_account_sk &&
         (n = put_hex(out, cap, (size_t)n, "account_sk", k->account_sk, 64)) < 0) ||
        (n = put_hex(out, cap, (size_t)n, "signing_pk", k->signing_pk, 32)) < 0 ||
        (n = put_hex(out, cap, (size_t)n, "signing_sk", k->signing_sk, 64)) < 0 ||
        (n = put_hex(out, cap, (size_t)n, "identity_pk", k->identity_pk, 32)) < 0 ||
        (n = put_hex(out, cap, (size_t)n, "identity_sk", k->identity_sk, 32)) < 0)
        return -1;
    w = snprintf(out + n, cap - (size_t)n, "registration_id=%u\n", (unsigned)k->registration_id);
    if (w < 0 || (size_t)w >= cap - (size_t)n)
        return -1;
    return n + w;
}

static int get_hex(const char *text, const char *name, uint8_t *b, size_t n, pc_status *st)
{
    char hex[64 * 2 + 2];
    size_t got = 0;
    int rc = 0;

    if (pc_kv_get(text, name, hex, sizeof hex) < 0 || strlen(hex) != n * 2 ||
        sodium_hex2bin(b, n, hex, strlen(hex), NULL, &got, NULL) != 0 || got != n)
        rc = pc_status_set(st, PC_ERR_LOCAL, "key %s is missing or malformed", name);
    sodium_memzero(hex, sizeof hex);
    return rc;
}

int pc_keys_parse(pc_keys *k, const char *text, pc_status *st)
{
    uint8_t pk[32];
    char num[16];
    char *end;
    unsigned long rid;

    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    memset(k, 0, sizeof *k);
    /* present at the start of a line: a malformed value must fail below, not read as absent */
    k->has_account_sk = !strncmp(text, "account_sk=", 11) || strstr(text, "\naccount_sk=");
    if (get_hex(text, "account_pk", k->account_pk, 32, st) < 0 ||
        (k->has_account_sk && get_hex(text, "account_sk", k->account_sk, 64, st) < 0) ||
        get_hex(text, "signing_pk", k->signing_pk, 32, st) < 0 ||
        get_hex(text, "signing_sk", k->signing_sk, 64, st) < 0 ||
        get_hex(text, "identity_pk", k->identity_pk, 32, st) < 0 ||
        get_hex(text, "identity_sk", k->identity_sk, 32, st) < 0)
        goto fail;
    if (pc_kv_get(text, "registration_id", num, sizeof num) < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "registration_id is missing");
        goto fail;
    }
    rid = strtoul(num, &end, 10);
    if (*end || rid < 1 || rid > PARLEY_REGISTRATION_ID_MAX) {
        pc_status_set(st, PC_ERR_LOCAL, "registration_id %s is out of range", num);
        goto fail;
    }
    k->registration_id = (uint32_t)rid;
    /* a hand-edited or truncated file must not produce signatures nobody can verify */
    if (k->has_account_sk)
        crypto_sign_ed25519_sk_to_pk(pk, k->account_sk);
    if (k->has_account_sk && memcmp(pk, k->account_pk, 32)) {
        pc_status_set(st, PC_ERR_LOCAL, "account_pk does not match account_sk");
        goto fail;
    }
    crypto_sign_ed25519_sk_to_pk(pk, k->signing_sk);
    if (memcmp(pk, k->signing_pk, 32)) {
        pc_status_set(st, PC_ERR_LOCAL, "signing_pk does not match signing_sk");
        goto fail;
    }
    crypto_scalarmult_base(pk, k->identity_sk);
    if (memcmp(pk, k->identity_pk, 32)) {
        pc_status_set(st, PC_ERR_LOCAL, "identity_pk does not match identity_sk");
        goto fail;
    }
    return 0;
fail:
    pc_keys_wipe(k);
    return -1;
}

void pc_keys_sign_device(const pc_keys *k, uint8_t sig[64], const uint8_t *msg, size_t len)
{
    crypto_sign_ed25519_detached(sig, NULL, msg, len, k->signing_sk);
}

void pc_keys_sign_account(const pc_keys *k, uint8_t sig[64], const uint8_t *msg, size_t len)
{
    crypto_sign_ed25519_detached(sig, NULL, msg, len, k->account_sk);
}
