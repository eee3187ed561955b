/* The device's end-to-end state and the Send built from it: first contact through a bundle
 * (one-time prekey consumed once), sessions that survive a restart from the home folder, a
 * reply turning prekey messages into ratchet messages, no plaintext in what the server sees, a
 * reinstall dropping the session, key changes reported, a prekey message with keys that are
 * not the sender device's refused, the own device left out, corrupt files refused, and the
 * mismatch text the CLI prints. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parley_client.h"

typedef struct {
    char dir[64];
    pc_identity id;
    pc_vault *v;
    Parley__V1__DeviceInfo info;
} dev;

static void dev_make(dev *d, const char *name, uint32_t device_id)
{
    pc_status st;

    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/parley-vault-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->id.username, sizeof d->id.username, "%s", name);
    d->id.device_id = device_id;
    assert_int_equal(pc_keys_generate(&d->id.keys, &st), 0);
    assert_int_equal(pc_vault_open(d->dir, &d->id, &d->v, &st), 0);
    parley__v1__device_info__init(&d->info);
    d->info.device_id = device_id;
    d->info.registration_id = d->id.keys.registration_id;
    d->info.signing_key.data = d->id.keys.signing_pk;
    d->info.signing_key.len = 32;
    d->info.identity_key.data = d->id.keys.identity_pk;
    d->info.identity_key.len = 32;
}

static void dev_reopen(dev *d)
{
    pc_status st;

    pc_vault_free(d->v);
    assert_int_equal(pc_vault_open(d->dir, &d->id, &d->v, &st), 0);
}

static void dev_free(dev *d)
{
    char cmd[128];

    pc_vault_free(d->v);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d->dir);
    assert_int_equal(system(cmd), 0);
}

/* Publishes prekeys: a signed prekey and n one-time prekeys; the bundle takes the first. */
static void publish(dev *d, size_t n, pc_prekey_bundle *b)
{
    pc_pks *p = pc_vault_prekeys(d->v);
    uint32_t first = 0;
    pc_status st;

    assert_int_equal(pc_pks_rotate_spk(p, &d->id.keys, 1000, &st), 0);
    if (n)
        assert_int_equal(pc_pks_generate_opks(p, n, &first, &st), 0);
    pc_vault_prekeys_changed(d->v);
    assert_int_equal(pc_vault_save(d->v, &st), 0);
    memset(b, 0, sizeof *b);
    b->device_id = d->id.device_id;
    b->registration_id = d->id.keys.registration_id;
    memcpy(b->signing_pk, d->id.keys.signing_pk, 32);
    memcpy(b->identity_pk, d->id.keys.identity_pk, 32);
    b->has_spk = 1;
    b->spk_id = p->spk.id;
    memcpy(b->spk_pk, p->spk.pk, 32);
    memcpy(b->spk_sig, p->spk.sig, 64);
    if (n) {
        const pc_pks_opk *o = pc_pks_opk_find(p, first);
        assert_non_null(o);
        b->has_opk = 1;
        b->opk_id = o->id;
        memcpy(b->opk_pk, o->pk, 32);
    }
}

static void list_of(Parley__V1__DeviceList *l, Parley__V1__DeviceInfo **ptrs, dev **ds, size_t n)
{
    parley__v1__device_list__init(l);
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &ds[i]->info;
    l->devices = ptrs;
    l->n_devices = n;
}

/* from sends text to account to (its devices in l); returns the envelope for device_id. */
static void build(dev *from, const char *to, Parley__V1__DeviceList *l, uint32_t skip,
                  const char *text, pc_send_msg *m)
{
    uint8_t *pt;
    size_t pt_len;
    pc_status st;

    assert_int_equal(pc_plain_build(text, strlen(text), 42, NULL, &pt, &pt_len, &st), 0);
    assert_int_equal(pc_send_msg_build(m, from->v, to, l, skip, pt, pt_len, 9, &st), 0);
    free(pt);
    assert_int_equal(pc_vault_save(from->v, &st), 0);
    for (size_t i = 0; i < m->send.n_envelopes; i++)
        assert_null(memmem(m->send.envelopes[i]->content.data,
                           m->send.envelopes[i]->content.len, text, strlen(text)));
}

static void opens(dev *to, dev *from, const Parley__V1__OutEnvelope *e, const char *text,
                  int want_changed)
{
    uint8_t *pt = NULL;
    size_t pt_len;
    int changed = 0;
    pc_plain t;
    pc_status st;

    assert_int_equal(pc_vault_decrypt(to->v, from->id.username, &from->info, e->content.data,
                                      e->content.len, 5000, &pt, &pt_len, &changed, &st),
                     0);
    assert_int_equal(pc_plain_parse(pt, pt_len, &t, &st), 0);
    assert_int_equal(t.text_len, strlen(text));
    assert_memory_equal(t.text, text, t.text_len);
    assert_int_equal(changed, want_changed);
    free(pt);
    assert_int_equal(pc_vault_save(to->v, &st), 0);
}

static void test_first_contact_and_restart(void **state)
{
    dev alice, bob, *bl[1] = { &bob }, *al[1] = { &alice };
    Parley__V1__DeviceInfo *bp[1], *ap[1];
    Parley__V1__DeviceList bobs, alices;
    pc_prekey_bundle b;
    uint32_t need[8];
    size_t n;
    pc_send_msg m;
    pc_e2s_peek_info pk;
    pc_status st;

    (void)state;
    dev_make(&alice, "alice", 1);
    dev_make(&bob, "bob", 1);
    publish(&bob, 3, &b);
    list_of(&bobs, bp, bl, 1);
    list_of(&alices, ap, al, 1);

    assert_int_equal(pc_vault_plan(alice.v, "bob", &bobs, 0, need, &n, &st), 0);
    assert_int_equal(n, 1);
    assert_int_equal(need[0], 1);
    assert_int_equal(pc_vault_add_bundle(alice.v, "bob", &b, NULL, &st), 0);
    assert_int_equal(pc_vault_plan(alice.v, "bob", &bobs, 0, need, &n, &st), 0);
    assert_int_equal(n, 0);

    build(&alice, "bob", &bobs, 0, "first", &m);
    assert_int_equal(m.send.n_envelopes, 1);
    assert_int_equal(m.send.envelopes[0]->registration_id, bob.id.keys.registration_id);
    assert_int_equal(pc_e2s_peek(m.send.envelopes[0]->content.data,
                                 m.send.envelopes[0]->content.len, &pk, &st), 0);
    assert_true(pk.is_prekey);
    assert_int_equal(pc_pks_opk_find(pc_vault_prekeys(bob.v), b.opk_id) != NULL, 1);
    opens(&bob, &alice, m.send.envelopes[0], "first", 0);
    /* the one-time prekey is gone, also from the saved store */
    dev_reopen(&bob);
    assert_null(pc_pks_opk_find(pc_vault_prekeys(bob.v), b.opk_id));
    pc_send_msg_clear(&m);

    /* both restart: the sessions come back from the home folders */
    dev_reopen(&alice);
    build(&alice, "bob", &bobs, 0, "second", &m);
    opens(&bob, &alice, m.send.envelopes[0], "second", 0);
    pc_send_msg_clear(&m);

    /* bob answers on the session alice started; then alice sends ratchet messages */
    assert_int_equal(pc_vault_plan(bob.v, "alice", &alices, 0, need, &n, &st), 0);
    assert_int_equal(n, 0);
    build(&bob, "alice", &alices, 0, "reply", &m);
    opens(&alice, &bob, m.send.envelopes[0], "reply", 0);
    pc_send_msg_clear(&m);
    build(&alice, "bob", &bobs, 0, "third", &m);
    assert_int_equal(pc_e2s_peek(m.send.envelopes[0]->content.data,
                                 m.send.envelopes[0]->content.len, &pk, &st), 0);
    assert_false(pk.is_prekey);
    opens(&bob, &alice, m.send.envelopes[0], "third", 0);
    /* the same message again: its key is gone */
    {
        uint8_t *pt = NULL;
        size_t pt_len;
        assert_int_equal(pc_vault_decrypt(bob.v, "alice", &alice.info,
                                          m.send.envelopes[0]->content.data,
                                          m.send.envelopes[0]->content.len, 5000, &pt, &pt_len,
                                          NULL, &st),
                         -1);
    }
    pc_send_msg_clear(&m);
    dev_free(&alice);
    dev_free(&bob);
}

static void test_reinstall_and_key_change(void **state)
{
    dev alice, bob, bob2, eve, *bl[1] = { &bob }, *bl2[1] = { &bob2 };
    Parley__V1__DeviceInfo *bp[1], *bp2[1];
    Parley__V1__DeviceList bobs, bobs2;
    pc_prekey_bundle b, b2;
    uint32_t need[8];
    size_t n;
    int changed = 0;
    pc_send_msg m;
    uint8_t *pt = NULL;
    size_t pt_len;
    pc_status st;

    (void)state;
    dev_make(&alice, "alice", 1);
    dev_make(&bob, "bob", 1);
    dev_make(&bob2, "bob", 1); /* bob's device 1 reinstalled: new keys, new registration id */
    dev_make(&eve, "eve", 1);
    publish(&bob, 0, &b); /* no one-time prekey: X3DH without DH4 */
    publish(&bob2, 1, &b2);
    list_of(&bobs, bp, bl, 1);
    list_of(&bobs2, bp2, bl2, 1);

    assert_int_equal(pc_vault_plan(alice.v, "bob", &bobs, 0, need, &n, &st), 0);
    assert_int_equal(pc_vault_add_bundle(alice.v, "bob", &b, &changed, &st), 0);
    assert_int_equal(changed, 0);
    build(&alice, "bob", &bobs, 0, "hi", &m);
    opens(&bob, &alice, m.send.envelopes[0], "hi", 0);
    pc_send_msg_clear(&m);

    /* the server now lists the reinstalled device: the old session is dropped */
    assert_int_equal(pc_vault_plan(alice.v, "bob", &bobs2, 0, need, &n, &st), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pc_send_msg_build(&m, alice.v, "bob", &bobs2, 0, (const uint8_t *)"x", 1,
                                       1, &st),
                     -1);
    assert_int_equal(pc_vault_add_bundle(alice.v, "bob", &b2, &changed, &st), 0);
    assert_int_equal(changed, 1); /* reported: the keys are not the pinned ones */
    {
        int was = 0;
        assert_non_null(pc_vault_pinned_signing(alice.v, "bob", 1, NULL, &was));
        assert_int_equal(was, 1);
        pc_vault_ack_changes(alice.v, "bob");
        assert_non_null(pc_vault_pinned_signing(alice.v, "bob", 1, NULL, &was));
        assert_int_equal(was, 0);
    }
    build(&alice, "bob", &bobs2, 0, "again", &m);
    opens(&bob2, &alice, m.send.envelopes[0], "again", 0);
    /* the old install cannot read it */
    assert_int_equal(pc_vault_decrypt(bob.v, "alice", &alice.info,
                                      m.send.envelopes[0]->content.data,
                                      m.send.envelopes[0]->content.len, 5000, &pt, &pt_len,
                                      NULL, &st),
                     -1);
    /* a prekey message whose keys are not the sending device's (per the server) is refused */
    eve.info.device_id = 1;
    assert_int_equal(pc_vault_decrypt(bob2.v, "alice", &eve.info,
                                      m.send.envelopes[0]->content.data,
                                      m.send.envelopes[0]->content.len, 5000, &pt, &pt_len,
                                      NULL, &st),
                     PC_VAULT_ERR_KEYS);
    assert_non_null(strstr(st.msg, "does not carry the device's keys"));
    pc_send_msg_clear(&m);

    /* a device list with a malformed key is refused */
    bob2.info.identity_key.len = 31;
    assert_int_equal(pc_vault_plan(alice.v, "bob", &bobs2, 0, need, &n, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
    bob2.info.identity_key.len = 32;

    /* a bundle whose signed prekey signature does not verify */
    b2.spk_sig[0] ^= 1;
    assert_int_equal(pc_vault_add_bundle(alice.v, "bob", &b2, NULL, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    /* a device without a signed prekey cannot be written to yet */
    b2.has_spk = 0;
    assert_int_equal(pc_vault_add_bundle(alice.v, "bob", &b2, NULL, &st), -1);
    assert_non_null(strstr(st.msg, "not published"));

    dev_free(&alice);
    dev_free(&bob);
    dev_free(&bob2);
    dev_free(&eve);
}

static void test_own_account_and_corrupt(void **state)
{
    dev c1, c2, c3, *cl[3] = { &c1, &c2, &c3 };
    Parley__V1__DeviceInfo *cp[3];
    Parley__V1__DeviceList carols;
    pc_prekey_bundle b1, b3;
    uint32_t need[8];
    size_t n;
    pc_send_msg m;
    char path[128];
    FILE *f;
    pc_status st;

    (void)state;
    dev_make(&c1, "carol", 1);
    dev_make(&c2, "carol", 2);
    dev_make(&c3, "carol", 3);
    publish(&c1, 1, &b1);
    publish(&c3, 1, &b3);
    list_of(&carols, cp, cl, 3);
    /* device 2 writes to its own account: itself left out */
    assert_int_equal(pc_vault_plan(c2.v, "carol", &carols, 2, need, &n, &st), 0);
    assert_int_equal(n, 2);
    assert_int_equal(need[0], 1);
    assert_int_equal(need[1], 3);
    assert_int_equal(pc_vault_add_bundle(c2.v, "carol", &b1, NULL, &st), 0);
    assert_int_equal(pc_vault_add_bundle(c2.v, "carol", &b3, NULL, &st), 0);
    build(&c2, "carol", &carols, 2, "note", &m);
    assert_int_equal(m.send.n_envelopes, 2);
    assert_int_equal(m.send.envelopes[0]->device_id, 1);
    assert_int_equal(m.send.envelopes[1]->device_id, 3);
    opens(&c3, &c2, m.send.envelopes[1], "note", 0);
    pc_send_msg_clear(&m);
    /* the only device left: nobody to send to */
    carols.n_devices = 1;
    assert_int_equal(pc_send_msg_build(&m, c1.v, "carol", &carols, 1, (const uint8_t *)"x", 1,
                                       1, &st),
                     -1);

    /* a damaged peer file is refused, not half-read */
    snprintf(path, sizeof path, "%s/peers/carol", c2.dir);
    f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 20, SEEK_SET);
    fputc('X', f);
    fclose(f);
    dev_reopen(&c2);
    assert_int_equal(pc_vault_plan(c2.v, "carol", &carols, 2, need, &n, &st), -1);
    assert_non_null(strstr(st.msg, "corrupt"));

    dev_free(&c1);
    dev_free(&c2);
    dev_free(&c3);
}

static void test_mismatch_text(void **state)
{
    Parley__V1__DeviceMismatch mm = PARLEY__V1__DEVICE_MISMATCH__INIT;
    uint32_t missing[] = { 2, 3 }, stale[] = { 1 };
    char out[128];

    (void)state;
    mm.missing = missing;
    mm.n_missing = 2;
    mm.stale = stale;
    mm.n_stale = 1;
    pc_send_describe_mismatch(&mm, out, sizeof out);
    assert_string_equal(out, "missing 2,3; stale 1");
    pc_send_describe_mismatch(NULL, out, sizeof out);
    assert_string_equal(out, "");
    pc_send_describe_mismatch(&mm, out, 8); /* truncates, stays terminated */
    assert_true(strlen(out) < 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_contact_and_restart),
        cmocka_unit_test(test_reinstall_and_key_change),
        cmocka_unit_test(test_own_account_and_corrupt),
        cmocka_unit_test(test_mismatch_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
