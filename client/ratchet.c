#include "ratchet.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "e2ee.pb-c.h"
#include "hkdf.h"

#define FLAG_DHR 1u
#define FLAG_CKS 2u
#define FLAG_CKR 4u
/* saved bytes of one skipped key and one old chain */
#define SKIPPED_BYTES (32 + 4 + 8 + 32)
#define OLD_BYTES (32 + 4)

/* KDF_RK: rk and the DH output give the next root key and a chain key. */
static void kdf_rk(uint8_t rk[32], uint8_t ck[32], const uint8_t dh_out[32])
{
    uint8_t okm[64];

    pc_hkdf(okm, sizeof okm, rk, 32, dh_out, 32, (const uint8_t *)PC_DR_INFO_ROOT,
            sizeof PC_DR_INFO_ROOT - 1);
    memcpy(rk, okm, 32);
    memcpy(ck, okm + 32, 32);
    sodium_memzero(okm, sizeof okm);
}

/* KDF_CK: the message key of ck, and ck advanced in place. */
static void kdf_ck(uint8_t ck[32], uint8_t mk[32])
{
    static const uint8_t one = 0x01, two = 0x02;
    crypto_auth_hmacsha256_state h;

    crypto_auth_hmacsha256_init(&h, ck, 32);
    crypto_auth_hmacsha256_update(&h, &one, 1);
    crypto_auth_hmacsha256_final(&h, mk);
    crypto_auth_hmacsha256_init(&h, ck, 32);
    crypto_auth_hmacsha256_update(&h, &two, 1);
    crypto_auth_hmacsha256_final(&h, ck);
    sodium_memzero(&h, sizeof h);
}

static void message_keys(const uint8_t mk[32], uint8_t key[32], uint8_t nonce[24])
{
    uint8_t okm[56];

    pc_hkdf(okm, sizeof okm, NULL, 0, mk, 32, (const uint8_t *)PC_DR_INFO_MESSAGE,
            sizeof PC_DR_INFO_MESSAGE - 1);
    memcpy(key, okm, 32);
    memcpy(nonce, okm + 32, 24);
    sodium_memzero(okm, sizeof okm);
}

/* AEAD with the message key: seal (decrypt 0) or open (decrypt 1), under ad || hdr (the callers
 * bound ad_len by PC_DR_AD_MAX and hdr_len by PC_DR_HEADER_MAX). 0, or -1 when it does not
 * authenticate. */
static int aead(int decrypt, const uint8_t mk[32], const uint8_t *ad, size_t ad_len,
                const uint8_t *hdr, size_t hdr_len, const uint8_t *in, size_t in_len,
                uint8_t *out)
{
    uint8_t key[32], nonce[24], fad[PC_DR_AD_MAX + PC_DR_HEADER_MAX];
    int rc;

    if (ad_len)
        memcpy(fad, ad, ad_len);
    memcpy(fad + ad_len, hdr, hdr_len);
    message_keys(mk, key, nonce);
    if (decrypt)
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in, in_len, fad,
                                                        ad_len + hdr_len, nonce, key);
    else
        rc = crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, in, in_len, fad,
                                                        ad_len + hdr_len, NULL, nonce, key);
    sodium_memzero(key, sizeof key);
    sodium_memzero(nonce, sizeof nonce);
    return rc == 0 ? 0 : -1;
}

int pc_dr_init_initiator(pc_dr_state *s, const uint8_t sk[32], const uint8_t peer_ratchet_pk[32],
                         pc_status *st)
{
    uint8_t dh_out[32];

    memset(s, 0, sizeof *s);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    crypto_box_keypair(s->dhs_pk, s->dhs_sk);
    if (crypto_scalarmult(dh_out, s->dhs_sk, peer_ratchet_pk) != 0 ||
        sodium_is_zero(dh_out, sizeof dh_out)) {
        pc_dr_free(s);
        return pc_status_set(st, PC_ERR_CRYPTO, "peer ratchet key is invalid");
    }
    memcpy(s->rk, sk, 32);
    kdf_rk(s->rk, s->cks, dh_out);
    sodium_memzero(dh_out, sizeof dh_out);
    memcpy(s->dhr, peer_ratchet_pk, 32);
    s->has_dhr = 1;
    s->has_cks = 1;
    return 0;
}

void pc_dr_init_responder(pc_dr_state *s, const uint8_t sk[32], const uint8_t own_pk[32],
                          const uint8_t own_sk[32])
{
    memset(s, 0, sizeof *s);
    memcpy(s->rk, sk, 32);
    memcpy(s->dhs_pk, own_pk, 32);
    memcpy(s->dhs_sk, own_sk, 32);
}

static void free_skipped(pc_dr_skipped *k, size_t n)
{
    if (!k)
        return;
    sodium_memzero(k, n * sizeof *k);
    free(k);
}

void pc_dr_free(pc_dr_state *s)
{
    free_skipped(s->skipped, s->n_skipped);
    sodium_memzero(s, sizeof *s);
}

static int encode_header(const uint8_t dh[32], uint32_t pn, uint32_t n,
                         uint8_t out[PC_DR_HEADER_MAX], size_t *len)
{
    Parley__E2ee__V1__RatchetHeader h = PARLEY__E2EE__V1__RATCHET_HEADER__INIT;

    h.ratchet_key.data = (uint8_t *)dh;
    h.ratchet_key.len = 32;
    h.previous_count = pn;
    h.count = n;
    if (parley__e2ee__v1__ratchet_header__get_packed_size(&h) > PC_DR_HEADER_MAX)
        return -1;
    *len = parley__e2ee__v1__ratchet_header__pack(&h, out);
    return 0;
}

int pc_dr_header_parse(const uint8_t *header, size_t len, uint8_t dh[32], uint32_t *pn,
                       uint32_t *n, pc_status *st)
{
    Parley__E2ee__V1__RatchetHeader *h;
    int ok;

    if (!header || len > PC_DR_HEADER_MAX ||
        !(h = parley__e2ee__v1__ratchet_header__unpack(NULL, len, header))) {
        pc_status_set(st, PC_ERR_CRYPTO, "message header is malformed");
        return PC_DR_ERR_AUTH;
    }
    ok = h->ratchet_key.len == 32;
    if (ok) {
        memcpy(dh, h->ratchet_key.data, 32);
        *pn = h->previous_count;
        *n = h->count;
    }
    parley__e2ee__v1__ratchet_header__free_unpacked(h, NULL);
    if (!ok) {
        pc_status_set(st, PC_ERR_CRYPTO, "message header is malformed");
        return PC_DR_ERR_AUTH;
    }
    return 0;
}

int pc_dr_encrypt(pc_dr_state *s, const uint8_t *ad, size_t ad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t header[PC_DR_HEADER_MAX], size_t *header_len,
                  uint8_t **ct, size_t *ct_len, pc_status *st)
{
    uint8_t ck[32], mk[32];
    uint8_t *out;
    int rc;

    *ct = NULL;
    *ct_len = 0;
    if (ad_len > PC_DR_AD_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "associated data is over %d bytes", PC_DR_AD_MAX);
    if (!s->has_cks)
        return pc_status_set(st, PC_ERR_LOCAL, "session cannot send before it has received");
    /* the receiver refuses count UINT32_MAX (its next count would wrap) */
    if (s->ns >= UINT32_MAX - 1)
        return pc_status_set(st, PC_ERR_LOCAL, "sending chain is exhausted");
    if (pt_len > SIZE_MAX - PC_DR_TAG_BYTES || !(out = malloc(pt_len + PC_DR_TAG_BYTES)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (encode_header(s->dhs_pk, s->pn, s->ns, header, header_len) < 0) {
        free(out);
        return pc_status_set(st, PC_ERR_LOCAL, "header does not fit");
    }
    memcpy(ck, s->cks, 32);
    kdf_ck(ck, mk);
    rc = aead(0, mk, ad, ad_len, header, *header_len, pt, pt_len, out);
    sodium_memzero(mk, sizeof mk);
    if (rc < 0) {
        sodium_memzero(ck, sizeof ck);
        free(out);
        return pc_status_set(st, PC_ERR_LOCAL, "encryption failed");
    }
    memcpy(s->cks, ck, 32);
    sodium_memzero(ck, sizeof ck);
    s->ns++;
    *ct = out;
    *ct_len = pt_len + PC_DR_TAG_BYTES;
    return 0;
}

static int expired(const pc_dr_skipped *k, uint64_t now_ms)
{
    /* a clock that went backwards makes keys look young, never old */
    return now_ms > k->stored_ms && now_ms - k->stored_ms > PC_DR_SKIPPED_TTL_MS;
}

void pc_dr_expire(pc_dr_state *s, uint64_t now_ms)
{
    size_t i, kept = 0;

    for (i = 0; i < s->n_skipped; i++) {
        if (expired(&s->skipped[i], now_ms))
            continue;
        if (kept != i)
            s->skipped[kept] = s->skipped[i];
        kept++;
    }
    if (kept < s->n_skipped)
        sodium_memzero(s->skipped + kept, (s->n_skipped - kept) * sizeof *s->skipped);
    s->n_skipped = kept;
}

/* The next state of one decryption, computed aside from the current one. */
typedef struct {
    pc_dr_state next;         /* scalar fields only: skipped is not set */
    pc_dr_skipped *add;       /* keys skipped by this message (owned) */
    size_t n_add, cap_add;
    long used;                /* index of the stored skipped key this message used, or -1 */
    uint8_t mk[32];
} plan;

static void plan_wipe(plan *p)
{
    free_skipped(p->add, p->cap_add);
    sodium_memzero(p, sizeof *p);
}

static long find_skipped(const pc_dr_state *s, const uint8_t dh[32], uint32_t n, uint64_t now_ms)
{
    for (size_t i = 0; i < s->n_skipped; i++)
        if (s->skipped[i].n == n && memcmp(s->skipped[i].dh, dh, 32) == 0)
            return expired(&s->skipped[i], now_ms) ? -1 : (long)i;
    return -1;
}

/* Derives and keeps the keys of messages nr..until-1 of the current receiving chain. */
static void skip(plan *p, uint32_t until, uint64_t now_ms)
{
    pc_dr_state *n = &p->next;

    if (!n->has_ckr)
        return;
    while (n->nr < until) {
        pc_dr_skipped *k = &p->add[p->n_add++];

        kdf_ck(n->ckr, k->mk);
        memcpy(k->dh, n->dhr, 32);
        k->n = n->nr++;
        k->stored_ms = now_ms;
    }
}

/* A message that cannot be authentic for this session (PC_DR_ERR_AUTH). */
static int refuse(pc_status *st, const char *why)
{
    pc_status_set(st, PC_ERR_CRYPTO, "%s", why);
    return PC_DR_ERR_AUTH;
}

static int too_far(uint32_t nr, uint32_t until)
{
    return (uint64_t)nr + PC_DR_MAX_SKIP < until;
}

/* The DH ratchet step to the peer's new ratchet key dh. */
static int dh_ratchet(pc_dr_state *n, const uint8_t dh[32])
{
    uint8_t out[32];

    if (n->has_ckr) {
        if (n->n_old == PC_DR_OLD_CHAINS) {
            memmove(n->old, n->old + 1, (PC_DR_OLD_CHAINS - 1) * sizeof n->old[0]);
            n->n_old--;
        }
        memcpy(n->old[n->n_old].dh, n->dhr, 32);
        n->old[n->n_old++].nr = n->nr;
    }
    n->pn = n->ns;
    n->ns = 0;
    n->nr = 0;
    memcpy(n->dhr, dh, 32);
    n->has_dhr = 1;
    if (crypto_scalarmult(out, n->dhs_sk, n->dhr) != 0 || sodium_is_zero(out, 32))
        return -1;
    kdf_rk(n->rk, n->ckr, out);
    n->has_ckr = 1;
    crypto_box_keypair(n->dhs_pk, n->dhs_sk);
    if (crypto_scalarmult(out, n->dhs_sk, n->dhr) != 0 || sodium_is_zero(out, 32)) {
        sodium_memzero(out, sizeof out);
        return -1;
    }
    kdf_rk(n->rk, n->cks, out);
    n->has_cks = 1;
    sodium_memzero(out, sizeof out);
    return 0;
}

/* Works out which key opens the message and the state after it. 0 or a PC_DR_ERR_* code. */
static int make_plan(const pc_dr_state *s, plan *p, const uint8_t dh[32], uint32_t pn,
                     uint32_t n, uint64_t now_ms, pc_status *st)
{
    size_t i, need = 0;
    int same_chain;

    memset(p, 0, sizeof *p);
    p->next = *s;
    p->next.skipped = NULL;
    p->next.n_skipped = 0;
    p->used = find_skipped(s, dh, n, now_ms);
    if (p->used >= 0) {
        memcpy(p->mk, s->skipped[p->used].mk, 32);
        return 0;
    }
    if (n == UINT32_MAX)
        return refuse(st, "message number is out of range");
    same_chain = s->has_dhr && memcmp(dh, s->dhr, 32) == 0;
    /* the initiator starts with the responder's ratchet key but no chain for it: the responder
     * never sends on that key, and a zero chain key must never open anything */
    if (same_chain && !s->has_ckr)
        return refuse(st, "message is on a chain this session lacks");
    if (same_chain) {
        if (n < s->nr)
            goto duplicate;
        if (too_far(s->nr, n))
            goto far;
        need = n - s->nr;
    } else {
        for (i = 0; i < s->n_old; i++)
            if (memcmp(dh, s->old[i].dh, 32) == 0) {
                if (n < s->old[i].nr)
                    goto duplicate;
                /* the sender said (PN) this chain ended before n */
                return refuse(st, "message is from a closed chain");
            }
        if (s->has_ckr && too_far(s->nr, pn))
            goto far;
        if (too_far(0, n))
            goto far;
        need = (s->has_ckr && pn > s->nr ? pn - s->nr : 0) + n;
    }
    if (need) {
        p->add = calloc(need, sizeof *p->add);
        if (!p->add)
            return pc_status_set(st, PC_ERR_LOCAL, "out of memory"); /* PC_DR_ERR */
        p->cap_add = need;
    }
    if (!same_chain) {
        skip(p, pn, now_ms);
        if (dh_ratchet(&p->next, dh) < 0)
            return refuse(st, "message has an invalid ratchet key");
    }
    skip(p, n, now_ms);
    kdf_ck(p->next.ckr, p->mk);
    p->next.nr++;
    return 0;
duplicate:
    pc_status_set(st, PC_ERR_CRYPTO,
                  "message key already used (duplicate message) or no longer kept");
    return PC_DR_ERR_DUPLICATE;
far:
    pc_status_set(st, PC_ERR_CRYPTO, "message is more than %d ahead in its chain",
                  PC_DR_MAX_SKIP);
    return PC_DR_ERR_TOO_FAR;
}

/* The skipped keys after the plan: the stored ones minus the used and expired ones, plus the
 * new ones, the newest PC_DR_MAX_STORED of them. Built before committing so that the commit
 * cannot fail. Returns 1 when that is the current store unchanged (nothing built), 0 when
 * built (*out NULL with *n_out 0 is an empty store), -1 when out of memory. */
static int plan_store(const pc_dr_state *s, const plan *p, uint64_t now_ms,
                      pc_dr_skipped **out, size_t *n_out)
{
    size_t total = 0, drop, i, j = 0;
    pc_dr_skipped *k;

    for (i = 0; i < s->n_skipped; i++)
        if ((long)i != p->used && !expired(&s->skipped[i], now_ms))
            total++;
    *out = NULL;
    *n_out = 0;
    /* the common case, a message in order: no copy of the whole store per message */
    if (p->used < 0 && !p->n_add && total == s->n_skipped)
        return 1;
    total += p->n_add;
    drop = total > PC_DR_MAX_STORED ? total - PC_DR_MAX_STORED : 0;
    *n_out = total - drop;
    if (!*n_out)
        return 0;
    if (!(k = malloc(*n_out * sizeof *k)))
        return -1;
    for (i = 0; i < s->n_skipped; i++) {
        if ((long)i == p->used || expired(&s->skipped[i], now_ms))
            continue;
        if (drop) {
            drop--;
            continue;
        }
        k[j++] = s->skipped[i];
    }
    for (i = 0; i < p->n_add; i++) {
        if (drop) {
            drop--;
            continue;
        }
        k[j++] = p->add[i];
    }
    *out = k;
    return 0;
}

int pc_dr_decrypt(pc_dr_state *s, const uint8_t *ad, size_t ad_len, const uint8_t *header,
                  size_t header_len, const uint8_t *ct, size_t ct_len, uint64_t now_ms,
                  uint8_t **pt, size_t *pt_len, pc_status *st)
{
    uint8_t dh[32];
    uint32_t pn, n;
    plan p;
    pc_dr_skipped *store = NULL;
    size_t n_store = 0;
    uint8_t *out = NULL;
    int rc, keep = 0;

    *pt = NULL;
    *pt_len = 0;
    /* a DH step makes a key pair: the random generator must be ready */
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (ad_len > PC_DR_AD_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "associated data is over %d bytes", PC_DR_AD_MAX);
    if ((rc = pc_dr_header_parse(header, header_len, dh, &pn, &n, st)) < 0)
        return rc;
    if (ct_len < PC_DR_TAG_BYTES) {
        pc_status_set(st, PC_ERR_CRYPTO, "ciphertext is too short");
        return PC_DR_ERR_AUTH;
    }
    if ((rc = make_plan(s, &p, dh, pn, n, now_ms, st)) < 0)
        goto out;
    rc = PC_DR_ERR;
    if (!(out = malloc(ct_len - PC_DR_TAG_BYTES + 1)) ||
        (keep = plan_store(s, &p, now_ms, &store, &n_store)) < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        goto out;
    }
    if (aead(1, p.mk, ad, ad_len, header, header_len, ct, ct_len, out) < 0) {
        pc_status_set(st, PC_ERR_CRYPTO, "message does not authenticate (tampered with)");
        rc = PC_DR_ERR_AUTH;
        goto out;
    }
    /* commit */
    if (keep) {
        p.next.skipped = s->skipped;
        p.next.n_skipped = s->n_skipped;
    } else {
        free_skipped(s->skipped, s->n_skipped);
        p.next.skipped = store;
        p.next.n_skipped = n_store;
        store = NULL;
    }
    *s = p.next;
    *pt = out;
    *pt_len = ct_len - PC_DR_TAG_BYTES;
    out = NULL;
    rc = 0;
out:
    if (out) {
        sodium_memzero(out, ct_len - PC_DR_TAG_BYTES);
        free(out);
    }
    free_skipped(store, n_store);
    plan_wipe(&p);
    return rc;
}

void pc_dr_write(const pc_dr_state *s, pc_eb_writer *w)
{
    static const uint8_t zero[32];
    uint8_t flags = (uint8_t)((s->has_dhr ? FLAG_DHR : 0) | (s->has_cks ? FLAG_CKS : 0) |
                              (s->has_ckr ? FLAG_CKR : 0));

    pc_eb_put(w, s->rk, 32);
    pc_eb_put(w, s->dhs_pk, 32);
    pc_eb_put(w, s->dhs_sk, 32);
    pc_eb_put_u8(w, flags);
    pc_eb_put(w, s->has_dhr ? s->dhr : zero, 32);
    pc_eb_put(w, s->has_cks ? s->cks : zero, 32);
    pc_eb_put(w, s->has_ckr ? s->ckr : zero, 32);
    pc_eb_put_u32(w, s->ns);
    pc_eb_put_u32(w, s->nr);
    pc_eb_put_u32(w, s->pn);
    pc_eb_put_u8(w, (uint8_t)s->n_old);
    for (size_t i = 0; i < s->n_old; i++) {
        pc_eb_put(w, s->old[i].dh, 32);
        pc_eb_put_u32(w, s->old[i].nr);
    }
    pc_eb_put_u32(w, (uint32_t)s->n_skipped);
    for (size_t i = 0; i < s->n_skipped; i++) {
        pc_eb_put(w, s->skipped[i].dh, 32);
        pc_eb_put_u32(w, s->skipped[i].n);
        pc_eb_put_u64(w, s->skipped[i].stored_ms);
        pc_eb_put(w, s->skipped[i].mk, 32);
    }
}

int pc_dr_read(pc_dr_state *s, pc_eb_reader *r, pc_status *st)
{
    uint8_t flags, pk[32];
    uint32_t n_skipped;

    memset(s, 0, sizeof *s);
    pc_eb_get(r, s->rk, 32);
    pc_eb_get(r, s->dhs_pk, 32);
    pc_eb_get(r, s->dhs_sk, 32);
    flags = pc_eb_get_u8(r);
    s->has_dhr = !!(flags & FLAG_DHR);
    s->has_cks = !!(flags & FLAG_CKS);
    s->has_ckr = !!(flags & FLAG_CKR);
    pc_eb_get(r, s->dhr, 32);
    pc_eb_get(r, s->cks, 32);
    pc_eb_get(r, s->ckr, 32);
    s->ns = pc_eb_get_u32(r);
    s->nr = pc_eb_get_u32(r);
    s->pn = pc_eb_get_u32(r);
    s->n_old = pc_eb_get_u8(r);
    if (r->failed || (flags & ~(FLAG_DHR | FLAG_CKS | FLAG_CKR)) ||
        (s->has_ckr && !s->has_dhr) || s->n_old > PC_DR_OLD_CHAINS)
        goto corrupt;
    for (size_t i = 0; i < s->n_old; i++) {
        pc_eb_get(r, s->old[i].dh, 32);
        s->old[i].nr = pc_eb_get_u32(r);
    }
    n_skipped = pc_eb_get_u32(r);
    /* the count must be plausible before it sizes an allocation */
    if (r->failed || n_skipped > PC_DR_MAX_STORED || r->left < (size_t)n_skipped * SKIPPED_BYTES)
        goto corrupt;
    if (n_skipped && !(s->skipped = calloc(n_skipped, sizeof *s->skipped))) {
        pc_dr_free(s);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    s->n_skipped = n_skipped;
    for (size_t i = 0; i < s->n_skipped; i++) {
        pc_eb_get(r, s->skipped[i].dh, 32);
        s->skipped[i].n = pc_eb_get_u32(r);
        s->skipped[i].stored_ms = pc_eb_get_u64(r);
        pc_eb_get(r, s->skipped[i].mk, 32);
    }
    crypto_scalarmult_base(pk, s->dhs_sk);
    if (r->failed || memcmp(pk, s->dhs_pk, 32) != 0)
        goto corrupt;
    return 0;
corrupt:
    pc_dr_free(s);
    return pc_status_set(st, PC_ERR_LOCAL, "saved ratchet state is corrupt");
}

int pc_dr_save(const pc_dr_state *s, uint8_t **out, size_t *out_len, pc_status *st)
{
    pc_eb_writer w;

    pc_eb_begin(&w, "PCDR", PC_DR_STATE_VERSION);
    pc_dr_write(s, &w);
    if (pc_eb_finish(&w, out, out_len) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    return 0;
}

int pc_dr_load(pc_dr_state *s, const uint8_t *in, size_t len, pc_status *st)
{
    pc_eb_reader r;
    uint8_t version;

    memset(s, 0, sizeof *s);
    if (len > PC_E2S_BLOB_MAX || pc_eb_open(&r, in, len, "PCDR", &version) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "saved ratchet state is corrupt");
    if (version != PC_DR_STATE_VERSION)
        return pc_status_set(st, PC_ERR_LOCAL, "saved ratchet state has unknown version %u",
                             version);
    if (pc_dr_read(s, &r, st) < 0)
        return -1;
    if (pc_eb_close(&r) < 0) {
        pc_dr_free(s);
        return pc_status_set(st, PC_ERR_LOCAL, "saved ratchet state is corrupt");
    }
    return 0;
}
