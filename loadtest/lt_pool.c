#include "lt_pool.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "home.h"

/* The longest pool line we write or accept: name, ids and 64 hex digits with spaces. */
#define LT_POOL_LINE_MAX (PARLEY_NAME_MAX + 2 + 10 + 1 + 5 + 1 + 64 + 2)

static int lt_pool_reserve(lt_pool *p, uint32_t cap)
{
    uint32_t *no;
    uint16_t *ri;
    uint8_t (*sd)[32];

    if (cap <= p->cap)
        return 0;
    if (!(no = realloc(p->name_off, cap * sizeof *no)))
        return -1;
    p->name_off = no;
    if (!(ri = realloc(p->reg_id, cap * sizeof *ri)))
        return -1;
    p->reg_id = ri;
    /* the seeds are secrets (of throwaway accounts): no freed copy is left unwiped */
    if (!(sd = malloc(cap * sizeof *sd)))
        return -1;
    if (p->seed) {
        memcpy(sd, p->seed, p->n * sizeof *sd);
        sodium_memzero(p->seed, p->n * sizeof *sd);
        free(p->seed);
    }
    p->seed = sd;
    p->cap = cap;
    return 0;
}

int lt_pool_add(lt_pool *p, const char *name, uint32_t reg_id, const uint8_t seed[32])
{
    size_t len = strlen(name) + 1;

    if (p->n == p->cap && lt_pool_reserve(p, p->cap ? p->cap * 2 : 1024) < 0)
        return -1;
    if (p->names_len + len > p->names_cap) {
        size_t cap = p->names_cap ? p->names_cap : 16384;
        char *nn;
        while (cap < p->names_len + len)
            cap *= 2;
        if (!(nn = realloc(p->names, cap)))
            return -1;
        p->names = nn;
        p->names_cap = cap;
    }
    memcpy(p->names + p->names_len, name, len);
    p->name_off[p->n] = (uint32_t)p->names_len;
    p->names_len += len;
    p->reg_id[p->n] = (uint16_t)reg_id;
    memcpy(p->seed[p->n], seed, 32);
    p->n++;
    return 0;
}

static int lt_pool_parse_line(lt_pool *p, char *line, unsigned lineno, pc_status *st)
{
    char name[PARLEY_NAME_MAX + 2], norm[PARLEY_NAME_MAX + 1], hex[80];
    unsigned dev, reg;
    uint8_t seed[32];
    size_t bin = 0;
    int n = 0;

    if (sscanf(line, "%33s %u %u %79s %n", name, &dev, &reg, hex, &n) != 4 || line[n] ||
        pauth_name_normalize(name, norm) < 0 || dev != 1 || reg < 1 ||
        reg > PARLEY_REGISTRATION_ID_MAX || strlen(hex) != 64 ||
        sodium_hex2bin(seed, 32, hex, 64, NULL, &bin, NULL) < 0 || bin != 32)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "%s:%u: not a pool line (username 1 registration_id seed_hex64)",
                             p->path, lineno);
    sodium_memzero(hex, sizeof hex);
    if (lt_pool_add(p, norm, reg, seed) < 0) {
        sodium_memzero(seed, sizeof seed);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    sodium_memzero(seed, sizeof seed);
    return 0;
}

int lt_pool_load(lt_pool *p, const char *path, uint32_t want, pc_status *st)
{
    char line[LT_POOL_LINE_MAX + 2];
    unsigned lineno = 0;
    FILE *f;

    memset(p, 0, sizeof *p);
    p->path = path;
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (lt_pool_reserve(p, want ? want : 1) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory for %u devices", want);
    if (!(f = fopen(path, "r"))) {
        if (errno == ENOENT)
            return 0;
        return pc_status_set(st, PC_ERR_LOCAL, "cannot read %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        lineno++;
        if (len && line[len - 1] != '\n' && !feof(f)) {
            fclose(f);
            return pc_status_set(st, PC_ERR_LOCAL, "%s:%u: line too long", path, lineno);
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        p->file_lines++;
        if (p->n >= want)
            continue; /* counted, not needed */
        if (lt_pool_parse_line(p, line, lineno, st) < 0) {
            sodium_memzero(line, sizeof line);
            fclose(f);
            return -1;
        }
    }
    sodium_memzero(line, sizeof line);
    fclose(f);
    p->loaded = p->n;
    return 0;
}

int lt_pool_save(const lt_pool *p, pc_status *st)
{
    static const char head[] = "# parley-loadtest device pool: username device_id "
                               "registration_id signing_key_seed (secret; keep 0600)\n";
    size_t cap = sizeof head + (size_t)p->n * LT_POOL_LINE_MAX, len;
    char *buf, hex[65];
    int rc;

    if (p->file_lines > p->loaded)
        return pc_status_set(st, PC_ERR_LOCAL, "%s has more devices than were loaded; not "
                                               "rewriting it", p->path);
    if (!(buf = malloc(cap)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    memcpy(buf, head, sizeof head - 1);
    len = sizeof head - 1;
    for (uint32_t i = 0; i < p->n; i++) {
        sodium_bin2hex(hex, sizeof hex, p->seed[i], 32);
        len += (size_t)snprintf(buf + len, cap - len, "%s 1 %u %s\n", lt_pool_name(p, i),
                                (unsigned)p->reg_id[i], hex);
    }
    sodium_memzero(hex, sizeof hex);
    rc = pc_home_write_atomic(p->path, buf, len, st);
    sodium_memzero(buf, len);
    free(buf);
    return rc;
}

const char *lt_pool_name(const lt_pool *p, uint32_t i)
{
    return p->names + p->name_off[i];
}

void lt_pool_identity(const lt_pool *p, uint32_t i, pc_identity *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->username, sizeof id->username, "%s", lt_pool_name(p, i));
    id->device_id = 1;
    id->keys.registration_id = p->reg_id[i];
    crypto_sign_ed25519_seed_keypair(id->keys.signing_pk, id->keys.signing_sk, p->seed[i]);
}

void lt_pool_free(lt_pool *p)
{
    free(p->names);
    free(p->name_off);
    free(p->reg_id);
    if (p->seed) {
        sodium_memzero(p->seed, p->n * sizeof *p->seed);
        free(p->seed);
    }
    memset(p, 0, sizeof *p);
}
