/* Double Ratchet: in order, out of order, lost messages, duplicates, tampering, the skip
 * limit, skipped key expiry by time and by count, forward secrecy, healing after a state
 * compromise, and the saved state (round trip, corruption). Every refused message must leave
 * the state byte for byte as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hkdf.h"
#include "ratchet.h"

#define T0 1700000000000ULL

typedef struct {
    uint8_t hdr[PC_DR_HEADER_MAX];
    size_t hdr_len;
    uint8_t *ct;
    size_t ct_len;
    char text[32];
} msg;

static uint8_t AD[128];

/* Alice initiates towards Bob's ratchet key (his signed prekey in a real session). */
static void pair(pc_dr_state *alice, pc_dr_state *bob)
{
    uint8_t sk[32], bpk[32], bsk[32];
    pc_status st;

    assert_true(sodium_init() >= 0);
    randombytes_buf(AD, sizeof AD);
    randombytes_buf(sk, sizeof sk);
    crypto_box_keypair(bpk, bsk);
    assert_int_equal(pc_dr_init_initiator(alice, sk, bpk, &st), 0);
    pc_dr_init_responder(bob, sk, bpk, bsk);
}

static void enc(pc_dr_state *s, const char *text, msg *m)
{
    pc_status st;

    memset(m, 0, sizeof *m);
    snprintf(m->text, sizeof m->text, "%s", text);
    assert_int_equal(pc_dr_encrypt(s, AD, sizeof AD, (const uint8_t *)text, strlen(text), m->hdr,
                                   &m->hdr_len, &m->ct, &m->ct_len, &st), 0);
    assert_int_equal(m->ct_len, strlen(text) + PC_DR_TAG_BYTES);
}

static void drop(msg *m)
{
    free(m->ct);
    m->ct = NULL;
}

/* m[0..n) with the texts prefix0, prefix1, ... */
static void enc_all(pc_dr_state *s, const char *prefix, msg *m, int n)
{
    for (int i = 0; i < n; i++) {
        char t[16];

        snprintf(t, sizeof t, "%s%d", prefix, i);
        enc(s, t, &m[i]);
    }
}

static void drop_all(msg *m, int n)
{
    for (int i = 0; i < n; i++)
        drop(&m[i]);
}

/* A message that is sent and never arrives. */
static void lose(pc_dr_state *s, const char *text)
{
    msg m;

    enc(s, text, &m);
    drop(&m);
}

/* The saved form, as a fingerprint of the whole state. */
static uint8_t *saved(const pc_dr_state *s, size_t *len)
{
    uint8_t *b;
    pc_status st;

    assert_int_equal(pc_dr_save(s, &b, len, &st), 0);
    return b;
}

typedef struct {
    uint8_t *b;
    size_t len;
} snapshot;

static snapshot snap(const pc_dr_state *s)
{
    snapshot sn;

    sn.b = saved(s, &sn.len);
    return sn;
}

/* s is byte for byte what it was at sn (which is released). */
static void assert_unchanged(const pc_dr_state *s, snapshot sn)
{
    size_t n;
    uint8_t *now = saved(s, &n);

    assert_int_equal(n, sn.len);
    assert_memory_equal(now, sn.b, sn.len);
    pc_eb_free_secret(now, n);
    pc_eb_free_secret(sn.b, sn.len);
}

/* s replaced by what its saved form loads as. */
static void reload(pc_dr_state *s)
{
    pc_dr_state n;
    pc_status st;
    size_t len;
    uint8_t *b = saved(s, &len);

    assert_int_equal(pc_dr_load(&n, b, len, &st), 0);
    pc_eb_free_secret(b, len);
    pc_dr_free(s);
    *s = n;
}

/* s's fields framed as a saved ratchet state of this version, plus a trailing byte if asked. */
static uint8_t *framed(const pc_dr_state *s, uint8_t version, int trailing, size_t *len)
{
    pc_eb_writer w;
    uint8_t *b;

    pc_eb_begin(&w, "PCDR", version);
    pc_dr_write(s, &w);
    if (trailing)
        pc_eb_put_u8(&w, 0);
    assert_int_equal(pc_eb_finish(&w, &b, len), 0);
    return b;
}

/* Decrypts m and checks the text; returns the result code. */
static int dec_at(pc_dr_state *s, const msg *m, uint64_t now)
{
    uint8_t *pt;
    size_t pt_len;
    pc_status st;
    int rc = pc_dr_decrypt(s, AD, sizeof AD, m->hdr, m->hdr_len, m->ct, m->ct_len, now, &pt,
                           &pt_len, &st);

    if (rc == 0) {
        assert_int_equal(pt_len, strlen(m->text));
        assert_memory_equal(pt, m->text, pt_len);
        free(pt);
    } else {
        assert_null(pt);
        assert_int_equal(st.kind == PC_ERR_CRYPTO || st.kind == PC_ERR_LOCAL, 1);
        assert_true(st.msg[0] != '\0');
    }
    return rc;
}

static int dec(pc_dr_state *s, const msg *m)
{
    return dec_at(s, m, T0);
}

/* from sends text and to opens it. */
static void deliver(pc_dr_state *from, pc_dr_state *to, const char *text)
{
    msg m;

    enc(from, text, &m);
    assert_int_equal(dec(to, &m), 0);
    drop(&m);
}

/* A refused message must not change the state. */
static void refused_at(pc_dr_state *s, const msg *m, uint64_t now, int code)
{
    snapshot before = snap(s);

    assert_int_equal(dec_at(s, m, now), code);
    assert_unchanged(s, before);
}

static void refused(pc_dr_state *s, const msg *m, int code)
{
    refused_at(s, m, T0, code);
}

static void test_in_order(void **state)
{
    pc_dr_state a, b;
    char t[32];
    pc_status st;
    uint8_t hdr[PC_DR_HEADER_MAX], *ct;
    size_t hl, cl;

    (void)state;
    pair(&a, &b);
    /* Bob has nothing to send with until Alice's first message arrives */
    assert_int_equal(pc_dr_encrypt(&b, AD, sizeof AD, (const uint8_t *)"x", 1, hdr, &hl, &ct, &cl,
                                   &st), PC_DR_ERR);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 3; i++) {
            snprintf(t, sizeof t, "a%d.%d", round, i);
            deliver(&a, &b, t);
        }
        for (int i = 0; i < 2; i++) {
            snprintf(t, sizeof t, "b%d.%d", round, i);
            deliver(&b, &a, t);
        }
    }
    /* an empty message is a message too */
    deliver(&a, &b, "");
    assert_int_equal(b.n_skipped, 0);
    assert_int_equal(a.n_skipped, 0);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_out_of_order(void **state)
{
    pc_dr_state a, b;
    msg m[5];
    static const int order[5] = { 3, 0, 4, 2, 1 };
    static const size_t stored_after[5] = { 3, 2, 2, 1, 0 };

    (void)state;
    pair(&a, &b);
    enc_all(&a, "m", m, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(dec(&b, &m[order[i]]), 0);
        assert_int_equal(b.n_skipped, stored_after[i]);
    }
    /* and across a ratchet step: Alice's old chain arrives after her new one */
    deliver(&b, &a, "reply");
    drop_all(m, 5);
    enc_all(&a, "old", m, 2);
    deliver(&b, &a, "reply2"); /* Bob has not seen old0/old1: same chain as before */
    enc(&a, "new0", &m[2]);    /* a new chain, PN = 2 */
    assert_int_equal(dec(&b, &m[2]), 0);
    assert_int_equal(b.n_skipped, 2);
    assert_int_equal(dec(&b, &m[1]), 0);
    assert_int_equal(dec(&b, &m[0]), 0);
    assert_int_equal(b.n_skipped, 0);
    drop_all(m, 3);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_lost_messages(void **state)
{
    pc_dr_state a, b;
    msg m[5];

    (void)state;
    pair(&a, &b);
    enc_all(&a, "m", m, 5);
    /* m1 and m3 never arrive */
    assert_int_equal(dec(&b, &m[0]), 0);
    assert_int_equal(dec(&b, &m[2]), 0);
    assert_int_equal(dec(&b, &m[4]), 0);
    assert_int_equal(b.n_skipped, 2);
    for (int round = 0; round < 3; round++) {
        deliver(&b, &a, "reply");
        deliver(&a, &b, "again");
    }
    /* a lost first message of a chain, and a lost reply */
    lose(&b, "lost");
    deliver(&b, &a, "kept");
    assert_int_equal(a.n_skipped, 1);
    assert_int_equal(b.n_skipped, 2);
    drop_all(m, 5);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_duplicates_rejected(void **state)
{
    pc_dr_state a, b;
    msg m0, m1, m2, r, n0;

    (void)state;
    pair(&a, &b);
    enc(&a, "m0", &m0);
    enc(&a, "m1", &m1);
    enc(&a, "m2", &m2);
    assert_int_equal(dec(&b, &m0), 0);
    refused(&b, &m0, PC_DR_ERR_DUPLICATE);
    /* a skipped key opens its message once */
    assert_int_equal(dec(&b, &m2), 0);
    assert_int_equal(dec(&b, &m1), 0);
    refused(&b, &m1, PC_DR_ERR_DUPLICATE);
    refused(&b, &m2, PC_DR_ERR_DUPLICATE);
    /* after the ratchet moved on, the old chain's messages are still duplicates */
    enc(&b, "r", &r);
    assert_int_equal(dec(&a, &r), 0);
    refused(&a, &r, PC_DR_ERR_DUPLICATE);
    enc(&a, "n0", &n0);
    assert_int_equal(dec(&b, &n0), 0);
    refused(&b, &m0, PC_DR_ERR_DUPLICATE);
    refused(&b, &m2, PC_DR_ERR_DUPLICATE);
    refused(&b, &n0, PC_DR_ERR_DUPLICATE);
    drop(&m0);
    drop(&m1);
    drop(&m2);
    drop(&r);
    drop(&n0);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_tampered_ciphertext_rejected(void **state)
{
    pc_dr_state a, b;
    msg m;
    uint8_t wrong_ad[128];
    uint8_t *pt;
    size_t pt_len;
    pc_status st;
    snapshot before;

    (void)state;
    pair(&a, &b);
    enc(&a, "attack at dawn", &m);
    for (size_t i = 0; i < m.ct_len; i++) {
        m.ct[i] ^= 0x01;
        refused(&b, &m, PC_DR_ERR_AUTH);
        m.ct[i] ^= 0x01;
    }
    /* truncated: the tag no longer matches, or there is not even a tag */
    m.ct_len--;
    refused(&b, &m, PC_DR_ERR_AUTH);
    m.ct_len = PC_DR_TAG_BYTES - 1;
    refused(&b, &m, PC_DR_ERR_AUTH);
    m.ct_len = strlen(m.text) + PC_DR_TAG_BYTES;
    /* another session's associated data */
    memcpy(wrong_ad, AD, sizeof AD);
    wrong_ad[127] ^= 1;
    before = snap(&b);
    assert_int_equal(pc_dr_decrypt(&b, wrong_ad, sizeof wrong_ad, m.hdr, m.hdr_len, m.ct,
                                   m.ct_len, T0, &pt, &pt_len, &st), PC_DR_ERR_AUTH);
    assert_unchanged(&b, before);
    /* associated data over PC_DR_AD_MAX is refused on both sides and changes nothing */
    {
        uint8_t long_ad[PC_DR_AD_MAX + 1] = { 0 }, hdr[PC_DR_HEADER_MAX], *ct;
        size_t hl, cl;
        snapshot sa = snap(&a);

        before = snap(&b);
        assert_int_equal(pc_dr_decrypt(&b, long_ad, sizeof long_ad, m.hdr, m.hdr_len, m.ct,
                                       m.ct_len, T0, &pt, &pt_len, &st), PC_DR_ERR);
        assert_null(pt);
        assert_unchanged(&b, before);
        assert_int_equal(pc_dr_encrypt(&a, long_ad, sizeof long_ad, (const uint8_t *)"x", 1, hdr,
                                       &hl, &ct, &cl, &st), PC_DR_ERR);
        assert_null(ct);
        assert_unchanged(&a, sa);
    }
    /* the untouched message still opens */
    assert_int_equal(dec(&b, &m), 0);
    drop(&m);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_tampered_header_rejected(void **state)
{
    pc_dr_state a, b;
    msg m0, m1;
    uint8_t dh[32];
    uint32_t pn, n;
    pc_status st;

    (void)state;
    pair(&a, &b);
    enc(&a, "first", &m0);
    enc(&a, "second", &m1);
    assert_int_equal(dec(&b, &m0), 0);
    assert_int_equal(pc_dr_header_parse(m1.hdr, m1.hdr_len, dh, &pn, &n, &st), 0);
    assert_int_equal(n, 1);
    /* a different ratchet key: a DH step that does not authenticate */
    for (size_t i = 0; i < m1.hdr_len; i++) {
        if (memcmp(m1.hdr + i, dh, 32) != 0)
            continue;
        for (size_t j = 0; j < 32; j++) {
            m1.hdr[i + j] ^= 0x40;
            refused(&b, &m1, PC_DR_ERR_AUTH);
            m1.hdr[i + j] ^= 0x40;
        }
        break;
    }
    /* every single-byte change of the header is refused (how depends on the byte: a bad key,
     * a different message number, a malformed header) and changes nothing */
    for (size_t i = 0; i < m1.hdr_len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            snapshot before = snap(&b);

            m1.hdr[i] ^= (uint8_t)(1 << bit);
            assert_true(dec(&b, &m1) < 0);
            m1.hdr[i] ^= (uint8_t)(1 << bit);
            assert_unchanged(&b, before);
        }
    }
    /* a message number moved forward authenticates nothing either */
    {
        uint8_t hdr_copy[PC_DR_HEADER_MAX];
        size_t hl = m1.hdr_len;

        memcpy(hdr_copy, m1.hdr, hl);
        assert_int_equal(m1.hdr[hl - 1], 1); /* count = 1, last field */
        m1.hdr[hl - 1] = 5;
        refused(&b, &m1, PC_DR_ERR_AUTH);
        memcpy(m1.hdr, hdr_copy, hl);
    }
    /* garbage instead of a header */
    {
        msg g = m1;

        memset(g.hdr, 0xFF, sizeof g.hdr);
        refused(&b, &g, PC_DR_ERR_AUTH);
        g.hdr_len = PC_DR_HEADER_MAX + 1;
        refused(&b, &g, PC_DR_ERR_AUTH);
    }
    /* unknown fields appended to the header parse, but are not the bytes that were sent */
    {
        msg g = m1;

        g.hdr[g.hdr_len++] = 0x28; /* field 5, varint */
        g.hdr[g.hdr_len++] = 0x01;
        refused(&b, &g, PC_DR_ERR_AUTH);
    }
    assert_int_equal(dec(&b, &m1), 0);
    drop(&m0);
    drop(&m1);

    /* PN only matters when the ratchet key is new, yet it is authenticated in every message */
    {
        msg c2;
        uint8_t dh2[32];

        deliver(&b, &a, "reply");
        enc(&a, "second chain", &c2);
        assert_int_equal(pc_dr_header_parse(c2.hdr, c2.hdr_len, dh2, &pn, &n, &st), 0);
        assert_int_equal(pn, 2);
        enc(&a, "second chain, again", &m1);
        assert_int_equal(dec(&b, &c2), 0);
        for (size_t i = 0; i + 1 < m1.hdr_len; i++) {
            if (m1.hdr[i] != 0x10 || m1.hdr[i + 1] != 2) /* field 2 (PN), varint 2 */
                continue;
            m1.hdr[i + 1] = 3;
            refused(&b, &m1, PC_DR_ERR_AUTH);
            m1.hdr[i + 1] = 2;
        }
        assert_int_equal(dec(&b, &m1), 0);
        drop(&c2);
        drop(&m1);
    }
    pc_dr_free(&a);
    pc_dr_free(&b);
}

/* Alice's session starts with Bob's ratchet key but no receiving chain: a message claiming
 * that key must not be opened with a chain key nobody derived (all zeros, public knowledge). */
static void test_no_receiving_chain_yet(void **state)
{
    pc_dr_state a, b, forger;
    msg m;

    (void)state;
    pair(&a, &b);
    memset(&forger, 0, sizeof forger);
    memcpy(forger.dhs_pk, a.dhr, 32);
    forger.has_cks = 1;
    enc(&forger, "forged", &m);
    refused(&a, &m, PC_DR_ERR_AUTH);
    drop(&m);
    /* nor with Bob's initial state's chain (he has none either) */
    memset(&forger, 0, sizeof forger);
    memcpy(forger.dhs_pk, b.dhs_pk, 32);
    memcpy(forger.cks, b.rk, 32);
    forger.has_cks = 1;
    enc(&forger, "forged", &m);
    refused(&a, &m, PC_DR_ERR_AUTH);
    drop(&m);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_jump_limit(void **state)
{
    pc_dr_state a, b;
    msg m, first, over, at;

    (void)state;
    pair(&a, &b);
    enc(&a, "first", &first);
    assert_int_equal(dec(&b, &first), 0); /* Bob's Nr is now 1 */
    for (int i = 1; i <= PC_DR_MAX_SKIP; i++)
        lose(&a, "skipped");
    /* the message numbered 1 + PC_DR_MAX_SKIP would need PC_DR_MAX_SKIP keys: allowed; one
     * further would need one more: refused, nothing derived or stored */
    enc(&a, "at the limit", &at);
    enc(&a, "over the limit", &over);
    refused(&b, &over, PC_DR_ERR_TOO_FAR);
    assert_int_equal(b.n_skipped, 0);
    assert_int_equal(dec(&b, &at), 0);
    assert_int_equal(b.n_skipped, PC_DR_MAX_SKIP);
    assert_int_equal(dec(&b, &over), 0);

    /* the same through PN: Alice's chain ran far ahead of what Bob received, then she ratchets */
    deliver(&b, &a, "reply");
    deliver(&a, &b, "c2.0");
    for (int i = 0; i < PC_DR_MAX_SKIP + 1; i++)
        lose(&a, "unseen");
    deliver(&b, &a, "reply2");
    enc(&a, "c3.0", &m); /* PN = PC_DR_MAX_SKIP + 2, Bob has Nr 1 in that chain */
    refused(&b, &m, PC_DR_ERR_TOO_FAR);
    drop(&m);
    drop(&first);
    drop(&at);
    drop(&over);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_skipped_keys_expire_by_time(void **state)
{
    pc_dr_state a, b;
    msg m[4], x;

    (void)state;
    pair(&a, &b);
    enc_all(&a, "m", m, 4);
    assert_int_equal(dec_at(&b, &m[3], T0), 0); /* m0..m2 skipped, stored at T0 */
    assert_int_equal(b.n_skipped, 3);
    /* exactly the TTL old: still there */
    assert_int_equal(dec_at(&b, &m[1], T0 + PC_DR_SKIPPED_TTL_MS), 0);
    /* one millisecond more: gone, as if already used, and nothing changed */
    refused_at(&b, &m[0], T0 + PC_DR_SKIPPED_TTL_MS + 1, PC_DR_ERR_DUPLICATE);
    assert_int_equal(b.n_skipped, 2);
    /* the next successful decryption purges them */
    enc(&a, "m4", &x);
    assert_int_equal(dec_at(&b, &x, T0 + PC_DR_SKIPPED_TTL_MS + 1), 0);
    assert_int_equal(b.n_skipped, 0);
    assert_int_equal(dec_at(&b, &m[2], T0 + 1), PC_DR_ERR_DUPLICATE);
    drop(&x);
    /* and pc_dr_expire does it without a message */
    lose(&a, "m5");
    enc(&a, "m6", &x);
    assert_int_equal(dec_at(&b, &x, T0 + 1000), 0);
    assert_int_equal(b.n_skipped, 1);
    pc_dr_expire(&b, T0 + 1000 + PC_DR_SKIPPED_TTL_MS);
    assert_int_equal(b.n_skipped, 1);
    pc_dr_expire(&b, T0 + 1001 + PC_DR_SKIPPED_TTL_MS);
    assert_int_equal(b.n_skipped, 0);
    /* a clock that went backwards does not expire anything */
    drop(&x);
    lose(&a, "m7");
    enc(&a, "m8", &x);
    assert_int_equal(dec_at(&b, &x, T0 + 5000), 0);
    pc_dr_expire(&b, 0);
    assert_int_equal(b.n_skipped, 1);
    drop(&x);
    drop_all(m, 4);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_skipped_keys_evicted_by_count(void **state)
{
    enum { FIRST_JUMP = 1000, TOTAL = PC_DR_MAX_STORED + 11 };
    pc_dr_state a, b;
    msg *m = calloc(TOTAL, sizeof *m);
    size_t evicted;

    (void)state;
    assert_non_null(m);
    pair(&a, &b);
    enc_all(&a, "m", m, TOTAL);
    /* two jumps within the skip limit that together skip more than the store holds */
    assert_int_equal(dec(&b, &m[FIRST_JUMP]), 0);
    assert_int_equal(b.n_skipped, FIRST_JUMP);
    assert_int_equal(dec(&b, &m[TOTAL - 1]), 0);
    assert_int_equal(b.n_skipped, PC_DR_MAX_STORED);
    /* a full store still saves and loads within the saved-size bound */
    {
        pc_dr_state c;
        pc_status st;
        size_t len;
        uint8_t *blob = saved(&b, &len);

        assert_true(len <= PC_E2S_BLOB_MAX);
        assert_int_equal(pc_dr_load(&c, blob, len, &st), 0);
        assert_int_equal(c.n_skipped, PC_DR_MAX_STORED);
        pc_dr_free(&c);
        pc_eb_free_secret(blob, len);
    }
    evicted = (TOTAL - 2) - PC_DR_MAX_STORED;
    assert_int_equal(evicted, 9);
    /* the oldest went first */
    for (size_t i = 0; i < evicted; i++)
        refused(&b, &m[i], PC_DR_ERR_DUPLICATE);
    assert_int_equal(dec(&b, &m[evicted]), 0);
    assert_int_equal(dec(&b, &m[FIRST_JUMP + 1]), 0);
    assert_int_equal(dec(&b, &m[TOTAL - 2]), 0);
    assert_int_equal(b.n_skipped, PC_DR_MAX_STORED - 3);
    drop_all(m, TOTAL);
    free(m);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

/* KDF_CK's message key, computed here from the documented construction. */
static void expected_mk(const uint8_t ck[32], uint8_t mk[32])
{
    static const uint8_t one = 0x01;
    crypto_auth_hmacsha256_state h;

    crypto_auth_hmacsha256_init(&h, ck, 32);
    crypto_auth_hmacsha256_update(&h, &one, 1);
    crypto_auth_hmacsha256_final(&h, mk);
}

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle)
{
    return memmem(hay, n, needle, 32) != NULL;
}

static void test_forward_secrecy(void **state)
{
    pc_dr_state a, b;
    msg m0, m1, m2;
    uint8_t ck0[32], mk0[32], ck1[32], mk1[32], key[32], nonce[24], okm[56];
    uint8_t fad[128 + PC_DR_HEADER_MAX], pt[64];
    uint8_t *blob;
    size_t len;

    (void)state;
    pair(&a, &b);
    /* the message key of m0, derived here from Alice's sending chain key */
    memcpy(ck0, a.cks, 32);
    expected_mk(ck0, mk0);
    enc(&a, "m0", &m0);
    memcpy(ck1, a.cks, 32);
    expected_mk(ck1, mk1);
    enc(&a, "m1", &m1);
    enc(&a, "m2", &m2);
    /* that key (through the documented HKDF and AEAD) really is what opens m0 */
    assert_int_equal(pc_hkdf(okm, sizeof okm, NULL, 0, mk0, 32,
                             (const uint8_t *)PC_DR_INFO_MESSAGE,
                             strlen(PC_DR_INFO_MESSAGE)), 0);
    memcpy(key, okm, 32);
    memcpy(nonce, okm + 32, 24);
    memcpy(fad, AD, 128);
    memcpy(fad + 128, m0.hdr, m0.hdr_len);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         pt, NULL, NULL, m0.ct, m0.ct_len, fad, 128 + m0.hdr_len, nonce, key), 0);
    assert_memory_equal(pt, "m0", 2);

    /* m2 first: m0 and m1 are skipped, and their keys are (necessarily) in the state */
    assert_int_equal(dec(&b, &m2), 0);
    blob = saved(&b, &len);
    assert_true(contains(blob, len, mk0));
    assert_true(contains(blob, len, mk1));
    pc_eb_free_secret(blob, len);
    /* once used, a key is gone: from memory, from the saved form, and with it the message */
    assert_int_equal(dec(&b, &m0), 0);
    blob = saved(&b, &len);
    assert_false(contains(blob, len, mk0));
    assert_false(contains(blob, len, ck0));
    assert_true(contains(blob, len, mk1));
    pc_eb_free_secret(blob, len);
    assert_int_equal(dec(&b, &m1), 0);
    blob = saved(&b, &len);
    assert_false(contains(blob, len, mk1));
    assert_false(contains(blob, len, ck1));
    for (size_t i = 0; i < b.n_skipped; i++)
        assert_memory_not_equal(b.skipped[i].mk, mk1, 32);
    pc_eb_free_secret(blob, len);
    refused(&b, &m0, PC_DR_ERR_DUPLICATE);
    refused(&b, &m1, PC_DR_ERR_DUPLICATE);
    /* a copy of Bob's state from now on (loaded from its saved form) cannot open them */
    {
        pc_dr_state copy;
        pc_status st;

        blob = saved(&b, &len);
        assert_int_equal(pc_dr_load(&copy, blob, len, &st), 0);
        pc_eb_free_secret(blob, len);
        assert_true(dec(&copy, &m0) < 0);
        assert_true(dec(&copy, &m1) < 0);
        assert_true(dec(&copy, &m2) < 0);
        pc_dr_free(&copy);
    }
    /* the sender keeps nothing either */
    blob = saved(&a, &len);
    assert_false(contains(blob, len, mk0));
    assert_false(contains(blob, len, ck0));
    assert_false(contains(blob, len, ck1));
    pc_eb_free_secret(blob, len);
    drop(&m0);
    drop(&m1);
    drop(&m2);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_healing(void **state)
{
    pc_dr_state a, b, eve, eve2;
    msg same, after1, after2;
    uint8_t *blob;
    size_t len;
    pc_status st;

    (void)state;
    pair(&a, &b);
    deliver(&a, &b, "hello");
    deliver(&b, &a, "hi");
    deliver(&a, &b, "how are you");

    /* Eve copies Bob's whole state (twice, to try it at two moments) */
    blob = saved(&b, &len);
    assert_int_equal(pc_dr_load(&eve, blob, len, &st), 0);
    assert_int_equal(pc_dr_load(&eve2, blob, len, &st), 0);
    pc_eb_free_secret(blob, len);

    /* the compromise is real: Alice's current chain is readable with the copy ... */
    enc(&a, "same chain", &same);
    assert_int_equal(dec(&eve, &same), 0);
    assert_int_equal(dec(&b, &same), 0);
    /* ... and so is her next step, which ratchets onto Bob's ratchet key Eve also has */
    deliver(&b, &a, "fine");
    enc(&a, "after one step", &after1);
    assert_int_equal(dec(&eve, &after1), 0);
    /* Bob receives it and ratchets with a fresh key Eve never saw; Alice ratchets on that */
    assert_int_equal(dec(&b, &after1), 0);
    deliver(&b, &a, "bob after");
    enc(&a, "after healing", &after2);
    /* healed: neither copy opens it; Bob does */
    assert_int_equal(dec(&eve, &after2), PC_DR_ERR_AUTH);
    assert_int_equal(dec(&eve2, &after2), PC_DR_ERR_AUTH);
    assert_int_equal(dec(&b, &after2), 0);
    drop(&same);
    drop(&after1);
    drop(&after2);
    pc_dr_free(&eve);
    pc_dr_free(&eve2);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

static void test_save_load_round_trip(void **state)
{
    pc_dr_state a, b, a2, b2;
    msg m[4];
    uint8_t *ba, *bb, *again;
    size_t la, lb, l2;
    pc_status st;

    (void)state;
    pair(&a, &b);
    /* both saved before anything was received (Alice: no receiving chain; Bob: no chains) */
    reload(&b);
    reload(&a);
    /* a state with skipped keys and old chains */
    enc_all(&a, "s", m, 4);
    assert_int_equal(dec(&b, &m[3]), 0);
    deliver(&b, &a, "r0");
    deliver(&a, &b, "t0");
    assert_int_equal(b.n_skipped, 3);
    assert_int_equal(b.n_old, 1);

    ba = saved(&a, &la);
    bb = saved(&b, &lb);
    assert_int_equal(pc_dr_load(&a2, ba, la, &st), 0);
    assert_int_equal(pc_dr_load(&b2, bb, lb, &st), 0);
    /* the same state: saving it again gives the same bytes */
    again = saved(&b2, &l2);
    assert_int_equal(l2, lb);
    assert_memory_equal(again, bb, lb);
    pc_eb_free_secret(again, l2);
    pc_eb_free_secret(ba, la);
    pc_eb_free_secret(bb, lb);
    pc_dr_free(&a);
    pc_dr_free(&b);
    /* and it keeps working both ways, skipped keys included */
    assert_int_equal(dec(&b2, &m[1]), 0);
    assert_int_equal(dec(&b2, &m[0]), 0);
    deliver(&b2, &a2, "r1");
    deliver(&a2, &b2, "t1");
    assert_int_equal(dec(&b2, &m[2]), 0);
    refused(&b2, &m[2], PC_DR_ERR_DUPLICATE);
    drop_all(m, 4);
    pc_dr_free(&a2);
    pc_dr_free(&b2);
}

static void test_corrupt_blobs_rejected(void **state)
{
    pc_dr_state a, b, x;
    msg m[3];
    uint8_t *blob, *bad;
    size_t len, bad_len;
    pc_status st;

    (void)state;
    pair(&a, &b);
    enc_all(&a, "x", m, 3);
    assert_int_equal(dec(&b, &m[2]), 0);
    blob = saved(&b, &len);
    /* every truncation */
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(pc_dr_load(&x, blob, n, &st), -1);
        assert_int_equal(st.kind, PC_ERR_LOCAL);
    }
    assert_int_equal(pc_dr_load(&x, NULL, 0, &st), -1);
    /* every flipped bit, and an extra byte */
    bad = malloc(len + 1);
    assert_non_null(bad);
    memcpy(bad, blob, len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            bad[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(pc_dr_load(&x, bad, len, &st), -1);
            bad[i] ^= (uint8_t)(1 << bit);
        }
    }
    bad[len] = 0;
    assert_int_equal(pc_dr_load(&x, bad, len + 1, &st), -1);
    free(bad);
    /* well framed (valid checksum), but inconsistent inside: a trailing byte */
    bad = framed(&b, PC_DR_STATE_VERSION, 1, &bad_len);
    assert_int_equal(pc_dr_load(&x, bad, bad_len, &st), -1);
    assert_string_equal(st.msg, "saved ratchet state is corrupt");
    pc_eb_free_secret(bad, bad_len);
    bad = framed(&b, PC_DR_STATE_VERSION + 1, 0, &bad_len);
    assert_int_equal(pc_dr_load(&x, bad, bad_len, &st), -1);
    assert_non_null(strstr(st.msg, "unknown version"));
    pc_eb_free_secret(bad, bad_len);
    {
        /* a skipped-key count far beyond the data and the limit */
        pc_dr_state big = b;

        big.n_skipped = PC_DR_MAX_STORED + 1;
        big.skipped = calloc(big.n_skipped, sizeof *big.skipped);
        assert_non_null(big.skipped);
        bad = framed(&big, PC_DR_STATE_VERSION, 0, &bad_len);
        assert_int_equal(pc_dr_load(&x, bad, bad_len, &st), -1);
        pc_eb_free_secret(bad, bad_len);
        free(big.skipped);
        /* a ratchet secret key that does not match its public key */
        big = b;
        big.skipped = NULL;
        big.n_skipped = 0;
        big.dhs_sk[0] ^= 0x10;
        bad = framed(&big, PC_DR_STATE_VERSION, 0, &bad_len);
        assert_int_equal(pc_dr_load(&x, bad, bad_len, &st), -1);
        pc_eb_free_secret(bad, bad_len);
        sodium_memzero(&big, sizeof big);
    }
    /* the original still loads, and the loaded state works */
    assert_int_equal(pc_dr_load(&x, blob, len, &st), 0);
    assert_int_equal(dec(&x, &m[0]), 0);
    pc_eb_free_secret(blob, len);
    drop_all(m, 3);
    pc_dr_free(&x);
    pc_dr_free(&a);
    pc_dr_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_lost_messages),
        cmocka_unit_test(test_duplicates_rejected),
        cmocka_unit_test(test_tampered_ciphertext_rejected),
        cmocka_unit_test(test_tampered_header_rejected),
        cmocka_unit_test(test_no_receiving_chain_yet),
        cmocka_unit_test(test_jump_limit),
        cmocka_unit_test(test_skipped_keys_expire_by_time),
        cmocka_unit_test(test_skipped_keys_evicted_by_count),
        cmocka_unit_test(test_forward_secrecy),
        cmocka_unit_test(test_healing),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_corrupt_blobs_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
