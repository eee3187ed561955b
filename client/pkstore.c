#include "pkstore.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "e2ebuf.h"
#include "x3dh.h"

#define OPK_BYTES (4 + 32 + 32)

void pc_pks_init(pc_pks *p)
{
    memset(p, 0, sizeof *p);
    p->next_spk_id = 1;
    p->next_opk_id = 1;
}

void pc_pks_free(pc_pks *p)
{
    if (p->opks) {
        sodium_memzero(p->opks, PC_PKS_OPK_MAX * sizeof *p->opks);
        free(p->opks);
    }
    sodium_memzero(p, sizeof *p);
}

int pc_pks_rotate_spk(pc_pks *p, const pc_keys *k, uint64_t now_ms, pc_status *st)
{
    pc_pks_spk n;

    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (p->next_spk_id == 0 || p->next_spk_id == UINT32_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "signed prekey ids are exhausted");
    memset(&n, 0, sizeof n);
    n.id = p->next_spk_id;
    crypto_box_keypair(n.pk, n.sk);
    pc_x3dh_spk_sign(k, n.id, n.pk, n.sig);
    n.created_ms = now_ms;
    if (p->has_spk) {
        p->prev = p->spk;
        p->prev.retired_ms = now_ms;
        p->has_prev = 1;
    }
    p->spk = n;
    p->has_spk = 1;
    p->next_spk_id++;
    sodium_memzero(&n, sizeof n);
    return 0;
}

int pc_pks_spk_due(const pc_pks *p, uint64_t now_ms)
{
    return !p->has_spk ||
           (now_ms > p->spk.created_ms && now_ms - p->spk.created_ms >= PC_PKS_SPK_ROTATE_MS);
}

void pc_pks_expire(pc_pks *p, uint64_t now_ms)
{
    if (p->has_prev && now_ms > p->prev.retired_ms &&
        now_ms - p->prev.retired_ms > PC_PKS_SPK_GRACE_MS) {
        sodium_memzero(&p->prev, sizeof p->prev);
        p->has_prev = 0;
    }
}

const pc_pks_spk *pc_pks_spk_find(const pc_pks *p, uint32_t id)
{
    if (p->has_spk && p->spk.id == id)
        return &p->spk;
    if (p->has_prev && p->prev.id == id)
        return &p->prev;
    return NULL;
}

/* Drops the n oldest one-time prekeys. */
static void drop_oldest(pc_pks *p, size_t n)
{
    sodium_memzero(p->opks, n * sizeof *p->opks);
    memmove(p->opks, p->opks + n, (p->n_opks - n) * sizeof *p->opks);
    p->n_opks -= n;
    sodium_memzero(p->opks + p->n_opks, n * sizeof *p->opks);
}

int pc_pks_generate_opks(pc_pks *p, size_t n, uint32_t *first_id, pc_status *st)
{
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (n == 0 || n > PC_PKS_OPK_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "one-time prekey count %zu is out of range", n);
    if (p->next_opk_id == 0 || (uint64_t)p->next_opk_id + n > UINT32_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "one-time prekey ids are exhausted");
    /* allocated once at its full size: it never moves, so no copy of the secrets is left */
    if (!p->opks && !(p->opks = calloc(PC_PKS_OPK_MAX, sizeof *p->opks)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (p->n_opks + n > PC_PKS_OPK_MAX)
        drop_oldest(p, p->n_opks + n - PC_PKS_OPK_MAX);
    *first_id = p->next_opk_id;
    for (size_t i = 0; i < n; i++) {
        pc_pks_opk *o = &p->opks[p->n_opks++];

        o->id = p->next_opk_id++;
        crypto_box_keypair(o->pk, o->sk);
    }
    return 0;
}

static long opk_index(const pc_pks *p, uint32_t id)
{
    size_t lo = 0, hi = p->n_opks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (p->opks[mid].id == id)
            return (long)mid;
        if (p->opks[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

const pc_pks_opk *pc_pks_opk_find(const pc_pks *p, uint32_t id)
{
    long i = opk_index(p, id);

    return i < 0 ? NULL : &p->opks[i];
}

int pc_pks_opk_remove(pc_pks *p, uint32_t id)
{
    long i = opk_index(p, id);

    if (i < 0)
        return -1;
    sodium_memzero(&p->opks[i], sizeof p->opks[i]);
    memmove(p->opks + i, p->opks + i + 1, (p->n_opks - (size_t)i - 1) * sizeof *p->opks);
    p->n_opks--;
    sodium_memzero(&p->opks[p->n_opks], sizeof p->opks[0]);
    return 0;
}

static void put_spk(pc_eb_writer *w, const pc_pks_spk *s)
{
    pc_eb_put_u32(w, s->id);
    pc_eb_put(w, s->pk, 32);
    pc_eb_put(w, s->sk, 32);
    pc_eb_put(w, s->sig, 64);
    pc_eb_put_u64(w, s->created_ms);
    pc_eb_put_u64(w, s->retired_ms);
}

static int get_spk(pc_eb_reader *r, pc_pks_spk *s)
{
    uint8_t pk[32];

    s->id = pc_eb_get_u32(r);
    pc_eb_get(r, s->pk, 32);
    pc_eb_get(r, s->sk, 32);
    pc_eb_get(r, s->sig, 64);
    s->created_ms = pc_eb_get_u64(r);
    s->retired_ms = pc_eb_get_u64(r);
    crypto_scalarmult_base(pk, s->sk);
    return r->failed || s->id == 0 || memcmp(pk, s->pk, 32) != 0 ? -1 : 0;
}

int pc_pks_save(const pc_pks *p, uint8_t **out, size_t *out_len, pc_status *st)
{
    pc_eb_writer w;

    pc_eb_begin(&w, "PCPK", PC_PKS_VERSION);
    pc_eb_put_u32(&w, p->next_spk_id);
    pc_eb_put_u32(&w, p->next_opk_id);
    pc_eb_put_u8(&w, (uint8_t)((p->has_spk ? 1 : 0) | (p->has_prev ? 2 : 0)));
    if (p->has_spk)
        put_spk(&w, &p->spk);
    if (p->has_prev)
        put_spk(&w, &p->prev);
    pc_eb_put_u32(&w, (uint32_t)p->n_opks);
    for (size_t i = 0; i < p->n_opks; i++) {
        pc_eb_put_u32(&w, p->opks[i].id);
        pc_eb_put(&w, p->opks[i].pk, 32);
        pc_eb_put(&w, p->opks[i].sk, 32);
    }
    if (pc_eb_finish(&w, out, out_len) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    return 0;
}

int pc_pks_load(pc_pks *p, const uint8_t *in, size_t len, pc_status *st)
{
    pc_eb_reader r;
    uint8_t version, flags, pk[32];
    uint32_t n;

    pc_pks_init(p);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (len > PC_PKS_BLOB_MAX || pc_eb_open(&r, in, len, "PCPK", &version) < 0)
        goto corrupt;
    if (version != PC_PKS_VERSION)
        return pc_status_set(st, PC_ERR_LOCAL, "saved prekeys have unknown version %u",
                             version);
    p->next_spk_id = pc_eb_get_u32(&r);
    p->next_opk_id = pc_eb_get_u32(&r);
    flags = pc_eb_get_u8(&r);
    if (flags & ~3u)
        goto corrupt;
    p->has_spk = flags & 1;
    p->has_prev = !!(flags & 2);
    if ((p->has_spk && get_spk(&r, &p->spk) < 0) || (p->has_prev && get_spk(&r, &p->prev) < 0))
        goto corrupt;
    n = pc_eb_get_u32(&r);
    if (r.failed || n > PC_PKS_OPK_MAX || r.left != (size_t)n * OPK_BYTES)
        goto corrupt;
    if (!(p->opks = calloc(PC_PKS_OPK_MAX, sizeof *p->opks))) {
        pc_pks_free(p);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        pc_pks_opk *o = &p->opks[i];

        o->id = pc_eb_get_u32(&r);
        pc_eb_get(&r, o->pk, 32);
        pc_eb_get(&r, o->sk, 32);
        p->n_opks++;
        crypto_scalarmult_base(pk, o->sk);
        /* ascending (lookups bisect) and below the next id (ids are never reused) */
        if (o->id == 0 || o->id >= p->next_opk_id || (i && o->id <= p->opks[i - 1].id) ||
            memcmp(pk, o->pk, 32) != 0)
            goto corrupt;
    }
    if (pc_eb_close(&r) < 0 || (p->has_spk && p->spk.id >= p->next_spk_id) ||
        (p->has_prev && p->prev.id >= p->spk.id))
        goto corrupt;
    return 0;
corrupt:
    pc_pks_free(p);
    return pc_status_set(st, PC_ERR_LOCAL, "saved prekeys are corrupt");
}
