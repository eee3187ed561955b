#include "e2ee.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "e2ebuf.h"
#include "e2ee.pb-c.h"

/* A PrekeyInfo is about 120 bytes; anything much longer is not one of ours. */
#define INFO_MAX 256
#define AD_MAX (PC_X3DH_AD_BYTES + 1 + 4 + INFO_MAX)
_Static_assert(AD_MAX <= PC_DR_AD_MAX, "the ratchet takes the session AD whole");
#define KIND_RATCHET 0x00
#define KIND_PREKEY 0x01

/* A message taken apart; the pointers point into m. */
typedef struct {
    Parley__E2ee__V1__Message *m; /* owned */
    int is_prekey;
    ProtobufCBinaryData info, header, ct;
} parsed;

static void parsed_free(parsed *p)
{
    if (p->m)
        parley__e2ee__v1__message__free_unpacked(p->m, NULL);
    memset(p, 0, sizeof *p);
}

static int parse(const uint8_t *msg, size_t len, parsed *p, pc_status *st)
{
    const Parley__E2ee__V1__RatchetMessage *rm = NULL;

    memset(p, 0, sizeof *p);
    if (!msg || len > PARLEY_MAX_ENVELOPE_BYTES ||
        !(p->m = parley__e2ee__v1__message__unpack(NULL, len, msg))) {
        pc_status_set(st, PC_ERR_CRYPTO, "not an encrypted Parley message");
        return PC_E2S_ERR_FORMAT;
    }
    if (p->m->version != PC_E2S_WIRE_VERSION) {
        pc_status_set(st, PC_ERR_CRYPTO, "encrypted message has unknown version %u",
                      (unsigned)p->m->version);
        goto bad;
    }
    if (p->m->body_case == PARLEY__E2EE__V1__MESSAGE__BODY_RATCHET) {
        rm = p->m->ratchet;
    } else if (p->m->body_case == PARLEY__E2EE__V1__MESSAGE__BODY_PREKEY && p->m->prekey) {
        p->is_prekey = 1;
        p->info = p->m->prekey->info;
        rm = p->m->prekey->message;
    }
    if (!rm) {
        pc_status_set(st, PC_ERR_CRYPTO, "encrypted message has no body");
        goto bad;
    }
    p->header = rm->header;
    p->ct = rm->ciphertext;
    return 0;
bad:
    parsed_free(p);
    return PC_E2S_ERR_FORMAT;
}

static int parse_info(const ProtobufCBinaryData *b, pc_e2s_peek_info *info, pc_status *st)
{
    Parley__E2ee__V1__PrekeyInfo *pi = NULL;
    int ok;

    memset(info, 0, sizeof *info);
    info->is_prekey = 1;
    if (b->len > INFO_MAX || !(pi = parley__e2ee__v1__prekey_info__unpack(NULL, b->len, b->data))) {
        pc_status_set(st, PC_ERR_CRYPTO, "prekey message is malformed");
        return PC_E2S_ERR_FORMAT;
    }
    ok = pi->signing_key.len == 32 && pi->identity_key.len == 32 && pi->base_key.len == 32 &&
         pi->registration_id >= 1 && pi->registration_id <= PARLEY_REGISTRATION_ID_MAX &&
         pi->signed_prekey_id != 0;
    if (ok) {
        info->registration_id = pi->registration_id;
        memcpy(info->signing_pk, pi->signing_key.data, 32);
        memcpy(info->identity_pk, pi->identity_key.data, 32);
        memcpy(info->base_pk, pi->base_key.data, 32);
        info->spk_id = pi->signed_prekey_id;
        info->has_opk = pi->one_time_prekey_id != 0;
        info->opk_id = pi->one_time_prekey_id;
    }
    parley__e2ee__v1__prekey_info__free_unpacked(pi, NULL);
    if (!ok) {
        memset(info, 0, sizeof *info);
        pc_status_set(st, PC_ERR_CRYPTO, "prekey message is malformed");
        return PC_E2S_ERR_FORMAT;
    }
    return 0;
}

/* The ratchet's associated data for a message of s (see e2ee.h). */
static size_t session_ad(const pc_e2s *s, const ProtobufCBinaryData *info, uint8_t ad[AD_MAX])
{
    size_t n = PC_X3DH_AD_BYTES;

    memcpy(ad, s->ad, PC_X3DH_AD_BYTES);
    if (!info) {
        ad[n++] = KIND_RATCHET;
        return n;
    }
    ad[n++] = KIND_PREKEY;
    ad[n++] = (uint8_t)(info->len >> 24);
    ad[n++] = (uint8_t)(info->len >> 16);
    ad[n++] = (uint8_t)(info->len >> 8);
    ad[n++] = (uint8_t)info->len;
    memcpy(ad + n, info->data, info->len);
    return n + info->len;
}

int pc_e2s_init_outgoing(const pc_keys *own, const pc_bundle *peer, pc_e2s **out,
                         pc_status *st)
{
    pc_x3dh_hello hello;
    pc_x3dh_result res;
    pc_e2s *s;

    *out = NULL;
    if (pc_x3dh_initiate(own, peer, &hello, &res, st) < 0)
        return PC_DR_ERR;
    if (!(s = calloc(1, sizeof *s))) {
        pc_x3dh_result_wipe(&res);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    if (pc_dr_init_initiator(&s->dr, res.sk, peer->spk_pk, st) < 0) {
        pc_x3dh_result_wipe(&res);
        pc_e2s_free(s);
        return PC_DR_ERR;
    }
    s->initiator = 1;
    s->pending_prekey = 1;
    s->own_registration_id = own->registration_id;
    s->peer_registration_id = peer->registration_id;
    memcpy(s->peer_signing_pk, peer->signing_pk, 32);
    memcpy(s->peer_identity_pk, peer->identity_pk, 32);
    memcpy(s->base_pk, hello.base_pk, 32);
    s->spk_id = hello.spk_id;
    s->opk_id = hello.has_opk ? hello.opk_id : 0;
    memcpy(s->ad, res.ad, sizeof s->ad);
    pc_x3dh_result_wipe(&res);
    *out = s;
    return 0;
}

void pc_e2s_free(pc_e2s *s)
{
    if (!s)
        return;
    pc_dr_free(&s->dr);
    sodium_memzero(s, sizeof *s);
    free(s);
}

/* The PrekeyInfo of an initiator session, serialised into buf. */
static size_t encode_info(const pc_e2s *s, uint8_t buf[INFO_MAX])
{
    Parley__E2ee__V1__PrekeyInfo pi = PARLEY__E2EE__V1__PREKEY_INFO__INIT;

    pi.registration_id = s->own_registration_id;
    pi.signing_key.data = (uint8_t *)s->ad;
    pi.signing_key.len = 32;
    pi.identity_key.data = (uint8_t *)s->ad + 32;
    pi.identity_key.len = 32;
    pi.base_key.data = (uint8_t *)s->base_pk;
    pi.base_key.len = 32;
    pi.signed_prekey_id = s->spk_id;
    pi.one_time_prekey_id = s->opk_id;
    if (parley__e2ee__v1__prekey_info__get_packed_size(&pi) > INFO_MAX)
        return 0;
    return parley__e2ee__v1__prekey_info__pack(&pi, buf);
}

int pc_e2s_encrypt(pc_e2s *s, const uint8_t *pt, size_t pt_len, uint8_t **out, size_t *out_len,
                   pc_status *st)
{
    Parley__E2ee__V1__Message m = PARLEY__E2EE__V1__MESSAGE__INIT;
    Parley__E2ee__V1__PrekeyMessage pm = PARLEY__E2EE__V1__PREKEY_MESSAGE__INIT;
    Parley__E2ee__V1__RatchetMessage rm = PARLEY__E2EE__V1__RATCHET_MESSAGE__INIT;
    uint8_t info[INFO_MAX], ad[AD_MAX], hdr[PC_DR_HEADER_MAX];
    ProtobufCBinaryData ib;
    size_t ad_len, hdr_len, ct_len, cap;
    uint8_t *ct, *buf;
    int rc;

    *out = NULL;
    *out_len = 0;
    if (pt_len > PC_E2S_PLAINTEXT_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "message of %zu bytes is over the %d limit",
                             pt_len, PC_E2S_PLAINTEXT_MAX);
    if (s->pending_prekey) {
        if (!(ib.len = encode_info(s, info)))
            return pc_status_set(st, PC_ERR_LOCAL, "prekey info does not fit");
        ib.data = info;
        ad_len = session_ad(s, &ib, ad);
    } else {
        ad_len = session_ad(s, NULL, ad);
    }
    /* allocated before the ratchet moves, so nothing can fail after it did */
    cap = pt_len + PC_E2S_OVERHEAD_MAX;
    if (!(buf = malloc(cap)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if ((rc = pc_dr_encrypt(&s->dr, ad, ad_len, pt, pt_len, hdr, &hdr_len, &ct, &ct_len, st)) <
        0) {
        free(buf);
        return rc;
    }
    rm.header.data = hdr;
    rm.header.len = hdr_len;
    rm.ciphertext.data = ct;
    rm.ciphertext.len = ct_len;
    m.version = PC_E2S_WIRE_VERSION;
    if (s->pending_prekey) {
        pm.info = ib;
        pm.message = &rm;
        m.body_case = PARLEY__E2EE__V1__MESSAGE__BODY_PREKEY;
        m.prekey = &pm;
    } else {
        m.body_case = PARLEY__E2EE__V1__MESSAGE__BODY_RATCHET;
        m.ratchet = &rm;
    }
    /* PC_E2S_OVERHEAD_MAX is far above the at most ~180 bytes the framing takes */
    *out_len = parley__e2ee__v1__message__pack(&m, buf);
    *out = buf;
    free(ct);
    return 0;
}

int pc_e2s_belongs(const pc_e2s *s, const pc_e2s_peek_info *info)
{
    return info->is_prekey && !s->initiator && memcmp(info->base_pk, s->base_pk, 32) == 0 &&
           memcmp(info->identity_pk, s->peer_identity_pk, 32) == 0 &&
           memcmp(info->signing_pk, s->peer_signing_pk, 32) == 0;
}

int pc_e2s_decrypt(pc_e2s *s, const uint8_t *msg, size_t len, uint64_t now_ms, uint8_t **pt,
                   size_t *pt_len, pc_status *st)
{
    pc_e2s_peek_info info;
    uint8_t ad[AD_MAX];
    size_t ad_len;
    parsed p;
    int rc;

    *pt = NULL;
    *pt_len = 0;
    if ((rc = parse(msg, len, &p, st)) < 0)
        return rc;
    if (p.is_prekey) {
        if ((rc = parse_info(&p.info, &info, st)) < 0)
            goto out;
        if (!pc_e2s_belongs(s, &info)) {
            rc = PC_E2S_ERR_NOT_THIS_SESSION;
            pc_status_set(st, PC_ERR_CRYPTO, "prekey message starts another session");
            goto out;
        }
        ad_len = session_ad(s, &p.info, ad);
    } else {
        ad_len = session_ad(s, NULL, ad);
    }
    rc = pc_dr_decrypt(&s->dr, ad, ad_len, p.header.data, p.header.len, p.ct.data, p.ct.len,
                       now_ms, pt, pt_len, st);
    if (rc == 0)
        s->pending_prekey = 0; /* the peer has the session: stop sending the X3DH hello */
out:
    parsed_free(&p);
    return rc;
}

int pc_e2s_peek(const uint8_t *msg, size_t len, pc_e2s_peek_info *info, pc_status *st)
{
    parsed p;
    int rc;

    memset(info, 0, sizeof *info);
    if ((rc = parse(msg, len, &p, st)) < 0)
        return rc;
    if (p.is_prekey)
        rc = parse_info(&p.info, info, st);
    parsed_free(&p);
    return rc;
}

int pc_e2s_accept_prekey(const pc_keys *own, const pc_pks *store, const uint8_t *msg,
                         size_t len, uint64_t now_ms, pc_e2s **out, uint8_t **pt,
                         size_t *pt_len, uint32_t *opk_id, pc_status *st)
{
    pc_e2s_peek_info info;
    pc_x3dh_hello hello;
    pc_x3dh_result res;
    const pc_pks_spk *spk;
    const pc_pks_opk *opk = NULL;
    uint8_t ad[AD_MAX];
    size_t ad_len;
    pc_e2s *s = NULL;
    parsed p;
    int rc;

    *out = NULL;
    *pt = NULL;
    *pt_len = 0;
    *opk_id = 0;
    if ((rc = parse(msg, len, &p, st)) < 0)
        return rc;
    if (!p.is_prekey) {
        rc = PC_E2S_ERR_FORMAT;
        pc_status_set(st, PC_ERR_CRYPTO, "not a prekey message");
        goto out;
    }
    if ((rc = parse_info(&p.info, &info, st)) < 0)
        goto out;
    rc = PC_E2S_ERR_UNKNOWN_PREKEY;
    if (!(spk = pc_pks_spk_find(store, info.spk_id))) {
        pc_status_set(st, PC_ERR_CRYPTO, "prekey message uses unknown signed prekey %u",
                      (unsigned)info.spk_id);
        goto out;
    }
    if (info.has_opk && !(opk = pc_pks_opk_find(store, info.opk_id))) {
        pc_status_set(st, PC_ERR_CRYPTO,
                      "prekey message uses unknown one-time prekey %u (already used?)",
                      (unsigned)info.opk_id);
        goto out;
    }
    memset(&hello, 0, sizeof hello);
    memcpy(hello.signing_pk, info.signing_pk, 32);
    memcpy(hello.identity_pk, info.identity_pk, 32);
    memcpy(hello.base_pk, info.base_pk, 32);
    hello.spk_id = info.spk_id;
    hello.has_opk = info.has_opk;
    hello.opk_id = info.opk_id;
    if (pc_x3dh_respond(own, &hello, spk->sk, opk ? opk->sk : NULL, &res, st) < 0) {
        rc = PC_DR_ERR_AUTH;
        goto out;
    }
    if (!(s = calloc(1, sizeof *s))) {
        pc_x3dh_result_wipe(&res);
        rc = pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        goto out;
    }
    pc_dr_init_responder(&s->dr, res.sk, spk->pk, spk->sk);
    memcpy(s->ad, res.ad, sizeof s->ad);
    pc_x3dh_result_wipe(&res);
    s->own_registration_id = own->registration_id;
    s->peer_registration_id = info.registration_id;
    memcpy(s->peer_signing_pk, info.signing_pk, 32);
    memcpy(s->peer_identity_pk, info.identity_pk, 32);
    memcpy(s->base_pk, info.base_pk, 32);
    s->spk_id = info.spk_id;
    s->opk_id = info.has_opk ? info.opk_id : 0;
    ad_len = session_ad(s, &p.info, ad);
    rc = pc_dr_decrypt(&s->dr, ad, ad_len, p.header.data, p.header.len, p.ct.data, p.ct.len,
                       now_ms, pt, pt_len, st);
    if (rc < 0)
        goto out;
    *out = s;
    s = NULL;
    *opk_id = info.has_opk ? info.opk_id : 0;
out:
    pc_e2s_free(s);
    parsed_free(&p);
    return rc;
}

void pc_e2s_expire(pc_e2s *s, uint64_t now_ms)
{
    pc_dr_expire(&s->dr, now_ms);
}

int pc_e2s_save(const pc_e2s *s, uint8_t **out, size_t *out_len, pc_status *st)
{
    pc_eb_writer w;

    pc_eb_begin(&w, "PCES", PC_E2S_STATE_VERSION);
    pc_eb_put_u8(&w, (uint8_t)((s->initiator ? 1 : 0) | (s->pending_prekey ? 2 : 0)));
    pc_eb_put_u32(&w, s->own_registration_id);
    pc_eb_put_u32(&w, s->peer_registration_id);
    pc_eb_put(&w, s->peer_signing_pk, 32);
    pc_eb_put(&w, s->peer_identity_pk, 32);
    pc_eb_put(&w, s->base_pk, 32);
    pc_eb_put_u32(&w, s->spk_id);
    pc_eb_put_u32(&w, s->opk_id);
    pc_eb_put(&w, s->ad, sizeof s->ad);
    pc_dr_write(&s->dr, &w);
    if (pc_eb_finish(&w, out, out_len) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    return 0;
}

int pc_e2s_load(const uint8_t *in, size_t len, pc_e2s **out, pc_status *st)
{
    pc_eb_reader r;
    uint8_t version, flags;
    pc_e2s *s;

    *out = NULL;
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (len > PC_E2S_BLOB_MAX || pc_eb_open(&r, in, len, "PCES", &version) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "saved session is corrupt");
    if (version != PC_E2S_STATE_VERSION)
        return pc_status_set(st, PC_ERR_LOCAL, "saved session has unknown version %u", version);
    if (!(s = calloc(1, sizeof *s)))
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    flags = pc_eb_get_u8(&r);
    s->initiator = flags & 1;
    s->pending_prekey = !!(flags & 2);
    s->own_registration_id = pc_eb_get_u32(&r);
    s->peer_registration_id = pc_eb_get_u32(&r);
    pc_eb_get(&r, s->peer_signing_pk, 32);
    pc_eb_get(&r, s->peer_identity_pk, 32);
    pc_eb_get(&r, s->base_pk, 32);
    s->spk_id = pc_eb_get_u32(&r);
    s->opk_id = pc_eb_get_u32(&r);
    pc_eb_get(&r, s->ad, sizeof s->ad);
    if (r.failed || (flags & ~3u) || (s->pending_prekey && !s->initiator) ||
        pc_dr_read(&s->dr, &r, st) < 0 || pc_eb_close(&r) < 0) {
        pc_e2s_free(s);
        return pc_status_set(st, PC_ERR_LOCAL, "saved session is corrupt");
    }
    *out = s;
    return 0;
}
