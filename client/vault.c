#include "vault.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "e2ebuf.h"
#include "home.h"

#define PEER_MAGIC "PCPE"
#define PEER_VERSION 2       /* 2: the device-list pin follows the devices; 1 had none */
/* a peer file: every device with two full sessions, plus the fixed part */
#define PEER_BLOB_MAX (PARLEY_MAX_DEVICES_PER_ACCOUNT * (2 * PC_E2S_BLOB_MAX + 256 + 80) + 256)

typedef struct {
    uint32_t device_id, registration_id;
    uint8_t signing_pk[32], identity_pk[32];
    int changed;     /* keys differ from those pinned before, and the user has not looked */
    pc_e2s *cur;     /* sends with this one; NULL: none */
    pc_e2s *prev;    /* the one before, still opens messages */
} vdev;

typedef struct vpeer {
    struct vpeer *next;
    char name[PARLEY_NAME_MAX + 1];
    size_t n;
    vdev dev[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    pc_dt_pin pin;
    int dirty;
} vpeer;

struct pc_vault {
    char *dir;
    const pc_identity *me;
    pc_pks pks;
    int pks_dirty;
    vpeer *peers;
};

static char *path_of(const pc_vault *v, const char *a, const char *b)
{
    size_t n = strlen(v->dir) + strlen(a) + (b ? strlen(b) : 0) + 3;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s%s%s", v->dir, a, b ? "/" : "", b ? b : "");
    return p;
}

/* ---- files ---------------------------------------------------------------------------- */

static int read_blob(const char *path, size_t max, uint8_t **out, size_t *len, pc_status *st)
{
    char *buf;

    if (pc_home_read_file(path, max, &buf, len) < 0) {
        if (errno == ENOENT) {
            *out = NULL;
            *len = 0;
            return 0;
        }
        return pc_status_set(st, PC_ERR_LOCAL, "cannot read %s: %s", path, strerror(errno));
    }
    *out = (uint8_t *)buf;
    return 0;
}

static void free_blob(uint8_t *b, size_t len)
{
    if (b) {
        sodium_memzero(b, len);
        free(b);
    }
}

static void vdev_clear(vdev *d)
{
    pc_e2s_free(d->cur);
    pc_e2s_free(d->prev);
    memset(d, 0, sizeof *d);
}

static void put_session(pc_eb_writer *w, const pc_e2s *s, pc_status *st, int *fail)
{
    uint8_t *b = NULL;
    size_t len = 0;

    if (s && pc_e2s_save(s, &b, &len, st) < 0) {
        *fail = 1;
        return;
    }
    pc_eb_put_u32(w, (uint32_t)len);
    if (len)
        pc_eb_put(w, b, len);
    pc_eb_free_secret(b, len);
}

static int get_session(pc_eb_reader *r, pc_e2s **out, pc_status *st)
{
    uint32_t len = pc_eb_get_u32(r);
    uint8_t *b;
    int rc;

    *out = NULL;
    if (!len)
        return 0;
    if (len > PC_E2S_BLOB_MAX || len > r->left)
        return pc_status_set(st, PC_ERR_LOCAL, "session too long");
    b = malloc(len);
    if (!b)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    pc_eb_get(r, b, len);
    rc = pc_e2s_load(b, len, out, st);
    free_blob(b, len);
    return rc < 0 ? -1 : 0;
}

/* The pin in full, field by field: the list's hash is of the body the account key signed, so
 * it is stored rather than recomputed from a re-encoding. */
static void put_pin(pc_eb_writer *w, const pc_dt_pin *pin)
{
    const pdl_list *l = &pin->list;
    char name[sizeof l->account];

    pc_eb_put_u8(w, (uint8_t)(pin->pinned != 0));
    pc_eb_put(w, pin->account_pk, 32);
    pc_eb_put_u8(w, (uint8_t)(pin->has_list != 0));
    if (!pin->has_list)
        return;
    /* the name alone, zero-padded (the bytes after its terminator may be anything) */
    memset(name, 0, sizeof name);
    memcpy(name, l->account, strnlen(l->account, sizeof name - 1));
    pc_eb_put(w, name, sizeof name);
    pc_eb_put_u64(w, l->version);
    pc_eb_put_u8(w, (uint8_t)(l->has_prev != 0));
    pc_eb_put(w, l->prev_hash, PDL_HASH_BYTES);
    pc_eb_put_u32(w, l->max_device_id);
    pc_eb_put_u64(w, l->timestamp_ms);
    pc_eb_put_u32(w, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++) {
        pc_eb_put_u32(w, l->dev[i].device_id);
        pc_eb_put_u32(w, l->dev[i].registration_id);
        pc_eb_put(w, l->dev[i].signing_pk, 32);
        pc_eb_put(w, l->dev[i].identity_pk, 32);
    }
    pc_eb_put(w, l->hash, PDL_HASH_BYTES);
}

/* Returns 0, or -1 when the stored pin is malformed. */
static int get_pin(pc_eb_reader *r, pc_dt_pin *pin)
{
    pdl_list *l = &pin->list;
    uint32_t n;

    memset(pin, 0, sizeof *pin);
    pin->pinned = pc_eb_get_u8(r) != 0;
    pc_eb_get(r, pin->account_pk, 32);
    pin->has_list = pc_eb_get_u8(r) != 0;
    if (!pin->has_list)
        return 0;
    pc_eb_get(r, l->account, sizeof l->account);
    l->version = pc_eb_get_u64(r);
    l->has_prev = pc_eb_get_u8(r) != 0;
    pc_eb_get(r, l->prev_hash, PDL_HASH_BYTES);
    l->max_device_id = pc_eb_get_u32(r);
    l->timestamp_ms = pc_eb_get_u64(r);
    n = pc_eb_get_u32(r);
    if (n == 0 || n > PARLEY_MAX_DEVICES_PER_ACCOUNT || l->account[sizeof l->account - 1])
        return -1;
    l->n = n;
    for (size_t i = 0; i < l->n; i++) {
        l->dev[i].device_id = pc_eb_get_u32(r);
        l->dev[i].registration_id = pc_eb_get_u32(r);
        pc_eb_get(r, l->dev[i].signing_pk, 32);
        pc_eb_get(r, l->dev[i].identity_pk, 32);
    }
    pc_eb_get(r, l->hash, PDL_HASH_BYTES);
    return pin->pinned ? 0 : -1;
}

static int peer_save(pc_vault *v, vpeer *p, pc_status *st)
{
    pc_eb_writer w;
    uint8_t *blob;
    size_t len;
    char *path;
    int fail = 0, rc;

    pc_eb_begin(&w, PEER_MAGIC, PEER_VERSION);
    pc_eb_put_u32(&w, (uint32_t)p->n);
    for (size_t i = 0; i < p->n && !fail; i++) {
        const vdev *d = &p->dev[i];
        pc_eb_put_u32(&w, d->device_id);
        pc_eb_put_u32(&w, d->registration_id);
        pc_eb_put(&w, d->signing_pk, 32);
        pc_eb_put(&w, d->identity_pk, 32);
        pc_eb_put_u8(&w, (uint8_t)d->changed);
        put_session(&w, d->cur, st, &fail);
        put_session(&w, d->prev, st, &fail);
    }
    put_pin(&w, &p->pin);
    if (fail) {
        pc_eb_abandon(&w);
        return -1;
    }
    if (pc_eb_finish(&w, &blob, &len) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    path = path_of(v, "peers", p->name);
    if (!path) {
        pc_eb_free_secret(blob, len);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    rc = pc_home_write_atomic(path, blob, len, st);
    pc_eb_free_secret(blob, len);
    free(path);
    if (rc == 0)
        p->dirty = 0;
    return rc;
}

static int peer_load(pc_vault *v, vpeer *p, pc_status *st)
{
    char *path = path_of(v, "peers", p->name);
    uint8_t *blob = NULL, version;
    size_t len = 0;
    pc_eb_reader r;
    uint32_t n;

    if (!path)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (read_blob(path, PEER_BLOB_MAX, &blob, &len, st) < 0) {
        free(path);
        return -1;
    }
    if (!blob) {
        free(path);
        return 0;
    }
    /* version 1 files hold the same devices and no pin */
    if (pc_eb_open(&r, blob, len, PEER_MAGIC, &version) < 0 ||
        (version != PEER_VERSION && version != 1))
        goto corrupt;
    n = pc_eb_get_u32(&r);
    if (n > PARLEY_MAX_DEVICES_PER_ACCOUNT)
        goto corrupt;
    for (uint32_t i = 0; i < n; i++) {
        vdev *d = &p->dev[i];
        p->n = i + 1;
        d->device_id = pc_eb_get_u32(&r);
        d->registration_id = pc_eb_get_u32(&r);
        pc_eb_get(&r, d->signing_pk, 32);
        pc_eb_get(&r, d->identity_pk, 32);
        d->changed = pc_eb_get_u8(&r) != 0;
        if (get_session(&r, &d->cur, st) < 0 || get_session(&r, &d->prev, st) < 0)
            goto corrupt;
    }
    if (version == PEER_VERSION && get_pin(&r, &p->pin) < 0)
        goto corrupt;
    if (pc_eb_close(&r) < 0)
        goto corrupt;
    free_blob(blob, len);
    free(path);
    return 0;
corrupt:
    for (size_t i = 0; i < p->n; i++)
        vdev_clear(&p->dev[i]);
    p->n = 0;
    memset(&p->pin, 0, sizeof p->pin);
    pc_status_set(st, PC_ERR_LOCAL, "%s is corrupt", path);
    free_blob(blob, len);
    free(path);
    return -1;
}

/* ---- lookup --------------------------------------------------------------------------- */

/* The peer entry of account, loaded on first use; NULL with st set on failure. */
static vpeer *peer_get(pc_vault *v, const char *account, pc_status *st)
{
    vpeer *p;

    for (p = v->peers; p; p = p->next)
        if (!strcmp(p->name, account))
            return p;
    if (strlen(account) > PARLEY_NAME_MAX || !account[0] || strchr(account, '/') ||
        account[0] == '.') {
        pc_status_set(st, PC_ERR_LOCAL, "invalid account name %s", account);
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", account);
    if (peer_load(v, p, st) < 0) {
        free(p);
        return NULL;
    }
    p->next = v->peers;
    v->peers = p;
    return p;
}

static vdev *dev_find(vpeer *p, uint32_t id)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->dev[i].device_id == id)
            return &p->dev[i];
    return NULL;
}

static vdev *dev_add(vpeer *p, uint32_t id, pc_status *st)
{
    vdev *d = dev_find(p, id);

    if (d)
        return d;
    if (p->n == PARLEY_MAX_DEVICES_PER_ACCOUNT) {
        pc_status_set(st, PC_ERR_PROTO, "account %s has more than %d devices", p->name,
                      PARLEY_MAX_DEVICES_PER_ACCOUNT);
        return NULL;
    }
    d = &p->dev[p->n++];
    memset(d, 0, sizeof *d);
    d->device_id = id;
    return d;
}

static void dev_remove(vpeer *p, vdev *d)
{
    size_t i = (size_t)(d - p->dev);

    vdev_clear(d);
    memmove(&p->dev[i], &p->dev[i + 1], (p->n - i - 1) * sizeof *d);
    memset(&p->dev[p->n - 1], 0, sizeof *d);
    p->n--;
    p->dirty = 1;
}

/* Pins signing/identity for d: the first keys seen stay pinned; different ones replace them
 * (the server now lists them) and are marked changed. Returns 1 when they changed. */
static int pin(vdev *d, const uint8_t signing[32], const uint8_t identity[32])
{
    static const uint8_t zero[32];
    int first = !memcmp(d->signing_pk, zero, 32) && !memcmp(d->identity_pk, zero, 32);
    int same = !memcmp(d->signing_pk, signing, 32) && !memcmp(d->identity_pk, identity, 32);

    if (same)
        return 0;
    memcpy(d->signing_pk, signing, 32);
    memcpy(d->identity_pk, identity, 32);
    if (first)
        return 0;
    d->changed = 1;
    return 1;
}

/* ---- the API -------------------------------------------------------------------------- */

int pc_vault_open(const char *dir, const pc_identity *me, pc_vault **out, pc_status *st)
{
    pc_vault *v = calloc(1, sizeof *v);
    char *path;
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc = 0;

    *out = NULL;
    if (!v || !(v->dir = strdup(dir))) {
        free(v);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    v->me = me;
    pc_pks_init(&v->pks);
    if (!(path = path_of(v, "prekeys", NULL))) {
        pc_vault_free(v);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    if (read_blob(path, PC_PKS_BLOB_MAX, &blob, &len, st) < 0)
        rc = -1;
    else if (blob && pc_pks_load(&v->pks, blob, len, st) < 0)
        rc = pc_status_set(st, PC_ERR_LOCAL, "%s is corrupt", path);
    free_blob(blob, len);
    free(path);
    if (rc < 0) {
        pc_vault_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

void pc_vault_free(pc_vault *v)
{
    if (!v)
        return;
    while (v->peers) {
        vpeer *p = v->peers;
        v->peers = p->next;
        for (size_t i = 0; i < p->n; i++)
            vdev_clear(&p->dev[i]);
        free(p);
    }
    pc_pks_free(&v->pks);
    free(v->dir);
    free(v);
}

const pc_identity *pc_vault_identity(const pc_vault *v)
{
    return v->me;
}

pc_pks *pc_vault_prekeys(pc_vault *v)
{
    return &v->pks;
}

void pc_vault_prekeys_changed(pc_vault *v)
{
    v->pks_dirty = 1;
}

int pc_vault_save(pc_vault *v, pc_status *st)
{
    if (v->pks_dirty) {
        char *path = path_of(v, "prekeys", NULL);
        uint8_t *blob;
        size_t len;
        int rc;
        if (!path)
            return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        if (pc_pks_save(&v->pks, &blob, &len, st) < 0) {
            free(path);
            return -1;
        }
        rc = pc_home_write_atomic(path, blob, len, st);
        pc_eb_free_secret(blob, len);
        free(path);
        if (rc < 0)
            return -1;
        v->pks_dirty = 0;
    }
    for (vpeer *p = v->peers; p; p = p->next) {
        if (!p->dirty)
            continue;
        char *dir = path_of(v, "peers", NULL);
        if (!dir)
            return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            pc_status_set(st, PC_ERR_LOCAL, "cannot create %s: %s", dir, strerror(errno));
            free(dir);
            return -1;
        }
        free(dir);
        if (peer_save(v, p, st) < 0)
            return -1;
    }
    return 0;
}

static int key_ok(const ProtobufCBinaryData *b)
{
    return b->len == 32 && b->data;
}

int pc_vault_plan(pc_vault *v, const char *account, const Parley__V1__DeviceList *dl,
                  uint32_t skip_device, uint32_t *ids, size_t *n, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);

    *n = 0;
    if (!p)
        return -1;
    /* devices the server no longer lists were removed: their sessions and pins go */
    for (size_t i = p->n; i-- > 0;) {
        int listed = 0;
        for (size_t j = 0; j < dl->n_devices && !listed; j++)
            listed = dl->devices[j]->device_id == p->dev[i].device_id;
        if (!listed)
            dev_remove(p, &p->dev[i]);
    }
    for (size_t j = 0; j < dl->n_devices; j++) {
        const Parley__V1__DeviceInfo *di = dl->devices[j];
        vdev *d = dev_find(p, di->device_id);
        if (di->device_id == skip_device)
            continue;
        if (!key_ok(&di->signing_key) || !key_ok(&di->identity_key))
            return pc_status_set(st, PC_ERR_PROTO, "device %u of %s has malformed keys",
                                 di->device_id, account);
        if (d && (d->registration_id != di->registration_id ||
                  memcmp(d->signing_pk, di->signing_key.data, 32) ||
                  memcmp(d->identity_pk, di->identity_key.data, 32))) {
            /* reinstalled (or its keys changed): the sessions are of no use any more */
            pc_e2s_free(d->cur);
            pc_e2s_free(d->prev);
            d->cur = d->prev = NULL;
            p->dirty = 1;
        }
        if (!d || !d->cur)
            ids[(*n)++] = di->device_id;
    }
    return 0;
}

int pc_vault_add_bundle(pc_vault *v, const char *account, const pc_prekey_bundle *b,
                        int *key_changed, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);
    pc_e2s *s;
    vdev *d;

    if (!p)
        return -1;
    if (!b->has_spk)
        return pc_status_set(st, PC_ERR_SERVER,
                             "device %u of %s has not published its prekeys yet", b->device_id,
                             account);
    if (pc_e2s_init_outgoing(&v->me->keys, b, &s, st) < 0) {
        char why[PC_STATUS_MSG_MAX / 2];
        memcpy(why, st->msg, sizeof why - 1);
        why[sizeof why - 1] = '\0';
        return pc_status_set(st, PC_ERR_CRYPTO, "device %u of %s: %.100s", b->device_id,
                             account, why);
    }
    if (!(d = dev_add(p, b->device_id, st))) {
        pc_e2s_free(s);
        return -1;
    }
    if (pin(d, b->signing_pk, b->identity_pk) && key_changed)
        *key_changed = 1;
    d->registration_id = b->registration_id;
    pc_e2s_free(d->prev);
    d->prev = d->cur;
    d->cur = s;
    p->dirty = 1;
    return 0;
}

void pc_vault_drop(pc_vault *v, const char *account, uint32_t device_id)
{
    pc_status st;
    vpeer *p = peer_get(v, account, &st);
    vdev *d = p ? dev_find(p, device_id) : NULL;

    if (!d)
        return;
    pc_e2s_free(d->cur);
    pc_e2s_free(d->prev);
    d->cur = d->prev = NULL;
    p->dirty = 1;
}

int pc_vault_encrypt(pc_vault *v, const char *account, uint32_t device_id, const uint8_t *pt,
                     size_t len, uint8_t **out, size_t *out_len, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);
    vdev *d = p ? dev_find(p, device_id) : NULL;

    if (!p)
        return -1;
    if (!d || !d->cur)
        return pc_status_set(st, PC_ERR_LOCAL, "no session with device %u of %s", device_id,
                             account);
    if (pc_e2s_encrypt(d->cur, pt, len, out, out_len, st) != 0)
        return -1;
    p->dirty = 1;
    return 0;
}

/* Decrypts with *which (current or previous); on success that one becomes current. */
static int try_session(vpeer *p, vdev *d, int prev, const uint8_t *msg, size_t len,
                       uint64_t now_ms, uint8_t **pt, size_t *pt_len, pc_status *st)
{
    pc_e2s *s = prev ? d->prev : d->cur;
    int rc = pc_e2s_decrypt(s, msg, len, now_ms, pt, pt_len, st);

    if (rc != 0)
        return rc;
    if (prev) {
        d->prev = d->cur;
        d->cur = s;
    }
    p->dirty = 1;
    return 0;
}

int pc_vault_decrypt(pc_vault *v, const char *account, const Parley__V1__DeviceInfo *dev,
                     const uint8_t *msg, size_t len, uint64_t now_ms, uint8_t **pt,
                     size_t *pt_len, int *key_changed, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);
    pc_e2s_peek_info pk;
    pc_e2s *s = NULL;
    uint32_t opk_id = 0;
    vdev *d;
    int rc;

    if (!p)
        return -1;
    if (pc_e2s_peek(msg, len, &pk, st) != 0)
        return -1;
    d = dev_find(p, dev->device_id);
    if (!pk.is_prekey) {
        if (!d || (!d->cur && !d->prev))
            return pc_status_set(st, PC_ERR_CRYPTO,
                                 "no session with device %u of %s for this message",
                                 dev->device_id, account);
        rc = d->cur ? try_session(p, d, 0, msg, len, now_ms, pt, pt_len, st) : -1;
        if (rc != 0 && rc != PC_DR_ERR_DUPLICATE && d->prev)
            rc = try_session(p, d, 1, msg, len, now_ms, pt, pt_len, st);
        return rc == 0 ? 0 : -1;
    }
    /* a prekey message: the keys it claims must be the ones the server lists for the device
     * (X3DH then proves the sender holds them) */
    if (!key_ok(&dev->signing_key) || !key_ok(&dev->identity_key) ||
        memcmp(pk.signing_pk, dev->signing_key.data, 32) ||
        memcmp(pk.identity_pk, dev->identity_key.data, 32) ||
        pk.registration_id != dev->registration_id) {
        pc_status_set(st, PC_ERR_CRYPTO,
                      "prekey message from device %u of %s does not carry the device's keys",
                      dev->device_id, account);
        return PC_VAULT_ERR_KEYS;
    }
    if (d && d->cur && pc_e2s_belongs(d->cur, &pk))
        return try_session(p, d, 0, msg, len, now_ms, pt, pt_len, st) == 0 ? 0 : -1;
    if (d && d->prev && pc_e2s_belongs(d->prev, &pk))
        return try_session(p, d, 1, msg, len, now_ms, pt, pt_len, st) == 0 ? 0 : -1;
    if (pc_e2s_accept_prekey(&v->me->keys, &v->pks, msg, len, now_ms, &s, pt, pt_len, &opk_id,
                             st) != 0)
        return -1;
    if (!(d = dev_add(p, dev->device_id, st))) {
        pc_e2s_free(s);
        sodium_memzero(*pt, *pt_len);
        free(*pt);
        *pt = NULL;
        return -1;
    }
    if (d->registration_id && d->registration_id != pk.registration_id) {
        /* a reinstall: the sessions with the old install are of no use */
        pc_e2s_free(d->cur);
        pc_e2s_free(d->prev);
        d->cur = d->prev = NULL;
    }
    if (pin(d, pk.signing_pk, pk.identity_pk) && key_changed)
        *key_changed = 1;
    d->registration_id = pk.registration_id;
    pc_e2s_free(d->prev);
    d->prev = d->cur;
    d->cur = s;
    p->dirty = 1;
    if (opk_id && pc_pks_opk_remove(&v->pks, opk_id) == 0)
        v->pks_dirty = 1;
    return 0;
}

const uint8_t *pc_vault_pinned_signing(pc_vault *v, const char *account, uint32_t device_id,
                                       const uint8_t **identity_pk, int *changed)
{
    pc_status st;
    vpeer *p = peer_get(v, account, &st);
    vdev *d = p ? dev_find(p, device_id) : NULL;

    if (!d)
        return NULL;
    if (identity_pk)
        *identity_pk = d->identity_pk;
    if (changed)
        *changed = d->changed;
    return d->signing_pk;
}

int pc_vault_observe(pc_vault *v, const char *account, const Parley__V1__DeviceInfo *dev,
                     int *key_changed, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);
    vdev *d;

    if (!p)
        return -1;
    if (!key_ok(&dev->signing_key) || !key_ok(&dev->identity_key))
        return pc_status_set(st, PC_ERR_PROTO, "device %u of %s has malformed keys",
                             dev->device_id, account);
    if (!(d = dev_add(p, dev->device_id, st)))
        return -1;
    if (pin(d, dev->signing_key.data, dev->identity_key.data)) {
        if (key_changed)
            *key_changed = 1;
        pc_e2s_free(d->cur);
        pc_e2s_free(d->prev);
        d->cur = d->prev = NULL;
    }
    if (!d->registration_id)
        d->registration_id = dev->registration_id;
    p->dirty = 1;
    return 0;
}

pc_dt_pin *pc_vault_pin(pc_vault *v, const char *account, pc_status *st)
{
    vpeer *p = peer_get(v, account, st);

    if (!p)
        return NULL;
    /* the own account key is known without asking anyone: pinned from the start */
    if (!p->pin.pinned && !strcmp(account, v->me->username)) {
        p->pin.pinned = 1;
        memcpy(p->pin.account_pk, v->me->keys.account_pk, 32);
    }
    return &p->pin;
}

void pc_vault_pin_changed(pc_vault *v, const char *account)
{
    pc_status st;
    vpeer *p = peer_get(v, account, &st);

    if (p)
        p->dirty = 1;
}

void pc_vault_ack_changes(pc_vault *v, const char *account)
{
    pc_status st;
    vpeer *p = peer_get(v, account, &st);

    for (size_t i = 0; p && i < p->n; i++)
        if (p->dev[i].changed) {
            p->dev[i].changed = 0;
            p->dirty = 1;
        }
}
