/* Sessions between two devices: prekey messages until the first reply, with and without a
 * one-time prekey, a prekey message opening once, retransmissions versus a new session,
 * signed prekey rotation, tampering, the format version, size limits and the saved form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "e2ee.h"
#include "e2ee.pb-c.h"

#define T0 1700000000000ULL

typedef struct {
    pc_keys keys;
    pc_pks store;
} device;

static void make_device(device *d)
{
    pc_status st;
    uint32_t first;

    assert_int_equal(pc_keys_generate(&d->keys, &st), 0);
    pc_pks_init(&d->store);
    assert_int_equal(pc_pks_rotate_spk(&d->store, &d->keys, T0, &st), 0);
    assert_int_equal(pc_pks_generate_opks(&d->store, 5, &first, &st), 0);
}

static void free_device(device *d)
{
    pc_pks_free(&d->store);
    pc_keys_wipe(&d->keys);
}

/* What the server would hand out for d (one-time prekey opk_id, or none when 0). */
static void bundle_of(const device *d, uint32_t opk_id, pc_bundle *b)
{
    memset(b, 0, sizeof *b);
    b->device_id = 1;
    b->registration_id = d->keys.registration_id;
    memcpy(b->signing_pk, d->keys.signing_pk, 32);
    memcpy(b->identity_pk, d->keys.identity_pk, 32);
    b->spk_id = d->store.spk.id;
    memcpy(b->spk_pk, d->store.spk.pk, 32);
    memcpy(b->spk_sig, d->store.spk.sig, 64);
    if (opk_id) {
        const pc_pks_opk *o = pc_pks_opk_find(&d->store, opk_id);

        assert_non_null(o);
        b->has_opk = 1;
        b->opk_id = opk_id;
        memcpy(b->opk_pk, o->pk, 32);
    }
}

typedef struct {
    uint8_t *b;
    size_t len;
} wire;

static wire enc(pc_e2s *s, const char *text)
{
    wire w;
    pc_status st;

    assert_int_equal(pc_e2s_encrypt(s, (const uint8_t *)text, strlen(text), &w.b, &w.len, &st),
                     0);
    assert_true(w.len <= PARLEY_MAX_ENVELOPE_BYTES);
    assert_null(memmem(w.b, w.len, text, strlen(text)));
    return w;
}

static int dec(pc_e2s *s, wire w, const char *want)
{
    uint8_t *pt;
    size_t len;
    pc_status st;
    int rc = pc_e2s_decrypt(s, w.b, w.len, T0, &pt, &len, &st);

    if (rc == 0) {
        assert_int_equal(len, strlen(want));
        assert_memory_equal(pt, want, len);
        free(pt);
    } else {
        assert_null(pt);
        assert_true(st.msg[0] != '\0');
    }
    return rc;
}

static pc_e2s *accept(device *d, wire w, const char *want, uint32_t *opk_id)
{
    pc_e2s *s;
    uint8_t *pt;
    size_t len;
    pc_status st;

    assert_int_equal(pc_e2s_accept_prekey(&d->keys, &d->store, w.b, w.len, T0, &s, &pt, &len,
                                          opk_id, &st), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(pt, want, len);
    free(pt);
    return s;
}

static int accept_rc(device *d, wire w)
{
    pc_e2s *s;
    uint8_t *pt;
    size_t len;
    uint32_t opk;
    pc_status st;
    int rc = pc_e2s_accept_prekey(&d->keys, &d->store, w.b, w.len, T0, &s, &pt, &len, &opk, &st);

    if (rc == 0) {
        free(pt);
        pc_e2s_free(s);
    } else {
        assert_null(s);
        assert_null(pt);
    }
    return rc;
}

static void conversation(uint32_t opk)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as, *bs;
    pc_e2s_peek_info info;
    pc_status st;
    uint32_t used;
    wire w, r;

    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, opk, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    assert_true(as->pending_prekey);
    w = enc(as, "hello bob");
    assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
    assert_true(info.is_prekey);
    assert_int_equal(info.registration_id, alice.keys.registration_id);
    assert_memory_equal(info.signing_pk, alice.keys.signing_pk, 32);
    assert_memory_equal(info.identity_pk, alice.keys.identity_pk, 32);
    assert_memory_equal(info.base_pk, as->base_pk, 32);
    assert_int_equal(info.spk_id, bob.store.spk.id);
    assert_int_equal(info.has_opk, opk != 0);
    assert_int_equal(info.opk_id, opk);

    bs = accept(&bob, w, "hello bob", &used);
    assert_int_equal(used, opk);
    if (used)
        assert_int_equal(pc_pks_opk_remove(&bob.store, used), 0);
    assert_int_equal(bs->peer_registration_id, alice.keys.registration_id);
    assert_memory_equal(bs->peer_identity_pk, alice.keys.identity_pk, 32);
    assert_memory_equal(bs->ad, as->ad, PC_X3DH_AD_BYTES);
    assert_false(bs->initiator);
    free(w.b);

    /* until Bob answers, Alice keeps sending prekey messages */
    w = enc(as, "still there?");
    assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
    assert_true(info.is_prekey);
    assert_true(pc_e2s_belongs(bs, &info));
    assert_int_equal(dec(bs, w, "still there?"), 0);
    free(w.b);
    r = enc(bs, "hi alice");
    assert_int_equal(pc_e2s_peek(r.b, r.len, &info, &st), 0);
    assert_false(info.is_prekey);
    assert_int_equal(dec(as, r, "hi alice"), 0);
    free(r.b);
    assert_false(as->pending_prekey);
    for (int i = 0; i < 3; i++) {
        w = enc(as, "plain now");
        assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
        assert_false(info.is_prekey);
        assert_int_equal(dec(bs, w, "plain now"), 0);
        free(w.b);
        r = enc(bs, "ok, got it");
        assert_int_equal(dec(as, r, "ok, got it"), 0);
        free(r.b);
    }
    pc_e2s_free(as);
    pc_e2s_free(bs);
    free_device(&alice);
    free_device(&bob);
}

static void test_with_one_time_prekey(void **state)
{
    (void)state;
    conversation(3);
}

static void test_without_one_time_prekey(void **state)
{
    (void)state;
    conversation(0);
}

static void test_prekey_message_opens_once(void **state)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as, *bs;
    pc_status st;
    uint32_t used;
    wire w1, w2;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 2, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    w1 = enc(as, "one");
    w2 = enc(as, "two");
    bs = accept(&bob, w1, "one", &used);
    assert_int_equal(used, 2);
    assert_int_equal(pc_pks_opk_remove(&bob.store, used), 0);
    /* the one-time prekey is gone: the same message cannot start a session again */
    assert_int_equal(accept_rc(&bob, w1), PC_E2S_ERR_UNKNOWN_PREKEY);
    assert_int_equal(accept_rc(&bob, w2), PC_E2S_ERR_UNKNOWN_PREKEY);
    /* in its own session, a redelivery is a duplicate and the next one is a retransmission */
    assert_int_equal(dec(bs, w1, "one"), PC_DR_ERR_DUPLICATE);
    assert_int_equal(dec(bs, w2, "two"), 0);
    assert_int_equal(dec(bs, w2, "two"), PC_DR_ERR_DUPLICATE);
    /* a prekey message cannot be fed to the session that sent it */
    assert_int_equal(dec(as, w1, "one"), PC_E2S_ERR_NOT_THIS_SESSION);
    /* a normal message is not a prekey message */
    {
        wire r = enc(bs, "reply");

        assert_int_equal(accept_rc(&bob, r), PC_E2S_ERR_FORMAT);
        free(r.b);
    }
    free(w1.b);
    free(w2.b);
    pc_e2s_free(as);
    pc_e2s_free(bs);
    free_device(&alice);
    free_device(&bob);
}

static void test_reinstall_is_another_session(void **state)
{
    device alice, alice2, bob;
    pc_bundle bundle;
    pc_e2s *as, *as2, *bs, *bs2;
    pc_e2s_peek_info info;
    pc_status st;
    uint32_t used;
    wire w;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 1, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    w = enc(as, "first install");
    bs = accept(&bob, w, "first install", &used);
    pc_pks_opk_remove(&bob.store, used);
    free(w.b);
    /* Alice reinstalls: new keys, new registration id, a new session from a new bundle */
    make_device(&alice2);
    bundle_of(&bob, 2, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice2.keys, &bundle, &as2, &st), 0);
    w = enc(as2, "second install");
    assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
    assert_int_equal(info.registration_id, alice2.keys.registration_id);
    assert_false(pc_e2s_belongs(bs, &info));
    assert_int_equal(dec(bs, w, "second install"), PC_E2S_ERR_NOT_THIS_SESSION);
    bs2 = accept(&bob, w, "second install", &used);
    assert_int_equal(used, 2);
    /* the same device starting over (a lost session) also gets a new session */
    free(w.b);
    pc_e2s_free(as);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    w = enc(as, "again");
    assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
    assert_false(pc_e2s_belongs(bs, &info));
    free(w.b);
    pc_e2s_free(as);
    pc_e2s_free(as2);
    pc_e2s_free(bs);
    pc_e2s_free(bs2);
    free_device(&alice);
    free_device(&alice2);
    free_device(&bob);
}

static void test_signed_prekey_grace(void **state)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as;
    pc_status st;
    wire w;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 0, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    w = enc(as, "on the old signed prekey");
    /* Bob rotates while the message waits in his queue: it still opens in the grace period */
    assert_int_equal(pc_pks_rotate_spk(&bob.store, &bob.keys, T0 + 1000, &st), 0);
    assert_int_equal(accept_rc(&bob, w), 0);
    pc_pks_expire(&bob.store, T0 + 1000 + PC_PKS_SPK_GRACE_MS + 1);
    assert_int_equal(accept_rc(&bob, w), PC_E2S_ERR_UNKNOWN_PREKEY);
    free(w.b);
    pc_e2s_free(as);
    /* a bundle whose signature does not verify starts nothing */
    bundle_of(&bob, 0, &bundle);
    bundle.spk_sig[63] ^= 1;
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), PC_DR_ERR);
    assert_null(as);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_string_equal(st.msg, "signed prekey signature does not verify");
    free_device(&alice);
    free_device(&bob);
}

static void test_tampering_rejected(void **state)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as, *bs;
    pc_status st;
    uint32_t used;
    wire w, r;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 1, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    w = enc(as, "prekey message");
    /* any changed byte of a prekey message (X3DH fields included) stops it */
    for (size_t i = 0; i < w.len; i++) {
        w.b[i] ^= 0x01;
        assert_true(accept_rc(&bob, w) < 0);
        w.b[i] ^= 0x01;
    }
    /* a truncated one too */
    for (size_t n = 0; n < w.len; n++) {
        wire t = { w.b, n };

        assert_true(accept_rc(&bob, t) < 0);
    }
    bs = accept(&bob, w, "prekey message", &used);
    free(w.b);
    r = enc(bs, "reply");
    assert_int_equal(dec(as, r, "reply"), 0);
    free(r.b);
    w = enc(as, "normal message");
    for (size_t i = 0; i < w.len; i++) {
        uint8_t *before, *after;
        size_t lb, la;

        assert_int_equal(pc_e2s_save(bs, &before, &lb, &st), 0);
        w.b[i] ^= 0x20;
        assert_true(dec(bs, w, "normal message") < 0);
        w.b[i] ^= 0x20;
        assert_int_equal(pc_e2s_save(bs, &after, &la, &st), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(after, before, lb);
        pc_eb_free_secret(before, lb);
        pc_eb_free_secret(after, la);
    }
    for (size_t n = 0; n < w.len; n++) {
        wire t = { w.b, n };

        assert_true(dec(bs, t, "") < 0);
    }
    assert_int_equal(dec(bs, w, "normal message"), 0);
    free(w.b);
    pc_e2s_free(as);
    pc_e2s_free(bs);
    free_device(&alice);
    free_device(&bob);
}

static void test_format_version_and_limits(void **state)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as, *bs;
    pc_status st;
    uint32_t used;
    wire w;
    Parley__E2ee__V1__Message *m;
    uint8_t *big, *out;
    size_t out_len;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 1, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    /* the largest plaintext fits one envelope even as a prekey message; one more byte does not
     * get encrypted */
    big = malloc(PC_E2S_PLAINTEXT_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', PC_E2S_PLAINTEXT_MAX + 1);
    assert_int_equal(pc_e2s_encrypt(as, big, PC_E2S_PLAINTEXT_MAX + 1, &out, &out_len, &st),
                     PC_DR_ERR);
    assert_null(out);
    assert_int_equal(pc_e2s_encrypt(as, big, PC_E2S_PLAINTEXT_MAX, &out, &out_len, &st), 0);
    assert_true(out_len <= PARLEY_MAX_ENVELOPE_BYTES);
    assert_true(out_len >= PC_E2S_PLAINTEXT_MAX + PC_DR_TAG_BYTES);
    {
        pc_e2s *b0;
        uint8_t *pt;
        size_t len;

        assert_int_equal(pc_e2s_accept_prekey(&bob.keys, &bob.store, out, out_len, T0, &b0, &pt,
                                              &len, &used, &st), 0);
        assert_int_equal(len, PC_E2S_PLAINTEXT_MAX);
        free(pt);
        pc_e2s_free(b0);
    }
    free(out);
    free(big);

    /* a message of another format version is refused, not guessed at */
    /* long enough that random ciphertext never contains it by chance (enc checks that) */
    w = enc(as, "format version one message");
    bs = accept(&bob, w, "format version one message", &used);
    assert_non_null(m = parley__e2ee__v1__message__unpack(NULL, w.len, w.b));
    assert_int_equal(m->version, PC_E2S_WIRE_VERSION);
    m->version = 2;
    out_len = parley__e2ee__v1__message__get_packed_size(m);
    out = malloc(out_len);
    parley__e2ee__v1__message__pack(m, out);
    parley__e2ee__v1__message__free_unpacked(m, NULL);
    {
        pc_e2s_peek_info info;
        wire v2 = { out, out_len };

        assert_int_equal(pc_e2s_peek(out, out_len, &info, &st), PC_E2S_ERR_FORMAT);
        assert_int_equal(accept_rc(&bob, v2), PC_E2S_ERR_FORMAT);
        assert_int_equal(dec(bs, v2, "v1"), PC_E2S_ERR_FORMAT);
    }
    free(out);
    /* an oversized message is refused before parsing */
    big = calloc(1, PARLEY_MAX_ENVELOPE_BYTES + 1);
    assert_non_null(big);
    {
        wire o = { big, PARLEY_MAX_ENVELOPE_BYTES + 1 };

        assert_int_equal(dec(bs, o, ""), PC_E2S_ERR_FORMAT);
    }
    free(big);
    free(w.b);
    pc_e2s_free(as);
    pc_e2s_free(bs);
    free_device(&alice);
    free_device(&bob);
}

static pc_e2s *reload(pc_e2s *s)
{
    uint8_t *b;
    size_t len;
    pc_e2s *n;
    pc_status st;

    assert_int_equal(pc_e2s_save(s, &b, &len, &st), 0);
    assert_int_equal(pc_e2s_load(b, len, &n, &st), 0);
    pc_eb_free_secret(b, len);
    pc_e2s_free(s);
    return n;
}

static void test_save_load(void **state)
{
    device alice, bob;
    pc_bundle bundle;
    pc_e2s *as, *bs, *x;
    pc_e2s_peek_info info;
    pc_status st;
    uint32_t used;
    uint8_t *b, *bad;
    size_t len;
    wire w, w2, r;

    (void)state;
    make_device(&alice);
    make_device(&bob);
    bundle_of(&bob, 4, &bundle);
    assert_int_equal(pc_e2s_init_outgoing(&alice.keys, &bundle, &as, &st), 0);
    as = reload(as);
    /* still pending after a restart: still prekey messages */
    w = enc(as, "after restart");
    assert_int_equal(pc_e2s_peek(w.b, w.len, &info, &st), 0);
    assert_true(info.is_prekey);
    w2 = enc(as, "skipped for now");
    as = reload(as);
    bs = accept(&bob, w, "after restart", &used);
    bs = reload(bs);
    r = enc(bs, "reply");
    as = reload(as);
    assert_int_equal(dec(as, r, "reply"), 0);
    free(r.b);
    as = reload(as);
    assert_false(as->pending_prekey);
    free(w.b);
    w = enc(as, "third");
    assert_int_equal(dec(bs, w, "third"), 0);
    bs = reload(bs);
    assert_int_equal(dec(bs, w2, "skipped for now"), 0);
    assert_int_equal(dec(bs, w, "third"), PC_DR_ERR_DUPLICATE);
    free(w.b);
    free(w2.b);

    /* corrupt or truncated saved sessions are refused */
    assert_int_equal(pc_e2s_save(bs, &b, &len, &st), 0);
    for (size_t n = 0; n < len; n++) {
        assert_int_equal(pc_e2s_load(b, n, &x, &st), -1);
        assert_null(x);
    }
    bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, b, len);
    for (size_t i = 0; i < len; i++) {
        bad[i] ^= 0x08;
        assert_int_equal(pc_e2s_load(bad, len, &x, &st), -1);
        assert_int_equal(st.kind, PC_ERR_LOCAL);
        bad[i] ^= 0x08;
    }
    free(bad);
    {
        pc_dr_state d;

        assert_int_equal(pc_dr_load(&d, b, len, &st), -1); /* not a ratchet state blob */
    }
    pc_e2s_free(bs);
    assert_int_equal(pc_e2s_load(b, len, &bs, &st), 0);
    pc_eb_free_secret(b, len);
    r = enc(bs, "after all that");
    assert_int_equal(dec(as, r, "after all that"), 0);
    free(r.b);
    pc_e2s_free(as);
    pc_e2s_free(bs);
    free_device(&alice);
    free_device(&bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_one_time_prekey),
        cmocka_unit_test(test_without_one_time_prekey),
        cmocka_unit_test(test_prekey_message_opens_once),
        cmocka_unit_test(test_reinstall_is_another_session),
        cmocka_unit_test(test_signed_prekey_grace),
        cmocka_unit_test(test_tampering_rejected),
        cmocka_unit_test(test_format_version_and_limits),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
