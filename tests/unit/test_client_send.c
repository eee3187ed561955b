/* Building a Send: one envelope per recipient device, each opening only with that device's
 * key; the sender's own device left out when writing to one's own account; and the mismatch
 * text the CLI prints. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "parley_client.h"

typedef struct {
    pc_keys keys[3];
    Parley__V1__DeviceInfo info[3];
    Parley__V1__DeviceInfo *infop[3];
    Parley__V1__DeviceList list;
} devs;

static void make_devs(devs *d, size_t n)
{
    pc_status st;

    parley__v1__device_list__init(&d->list);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pc_keys_generate(&d->keys[i], &st), 0);
        parley__v1__device_info__init(&d->info[i]);
        d->info[i].device_id = (uint32_t)i + 1;
        d->info[i].registration_id = d->keys[i].registration_id;
        d->info[i].identity_key.data = d->keys[i].identity_pk;
        d->info[i].identity_key.len = 32;
        d->infop[i] = &d->info[i];
    }
    d->list.devices = d->infop;
    d->list.n_devices = n;
}

static void opens_for(const pc_send_msg *m, size_t i, const pc_identity *from, const pc_keys *to,
                      const char *text)
{
    uint8_t *pt;
    size_t pt_len;
    pc_box_text t;
    pc_status st;
    const Parley__V1__OutEnvelope *e = m->send.envelopes[i];

    assert_int_equal(pc_box_open(e->content.data, e->content.len, from->keys.identity_pk,
                                 to->identity_sk, &pt, &pt_len, &st), 0);
    assert_int_equal(pc_box_parse_text(pt, pt_len, &t, &st), 0);
    assert_int_equal(t.text_len, strlen(text));
    assert_memory_equal(t.text, text, t.text_len);
    free(pt);
}

static void test_other_account(void **state)
{
    pc_identity alice;
    devs bob;
    pc_send_msg m;
    pc_status st;
    uint8_t *pt = NULL;
    size_t pt_len;

    (void)state;
    memset(&alice, 0, sizeof alice);
    strcpy(alice.username, "alice");
    alice.device_id = 1;
    assert_int_equal(pc_keys_generate(&alice.keys, &st), 0);
    make_devs(&bob, 2);
    assert_int_equal(pc_send_msg_build(&m, &alice, "bob", &bob.list, "hi bob", 6, 42, &st), 0);
    assert_int_equal(m.send.client_id, 42);
    assert_string_equal(m.send.recipient, "bob");
    assert_int_equal(m.send.n_envelopes, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(m.send.envelopes[i]->device_id, i + 1);
        assert_int_equal(m.send.envelopes[i]->registration_id, bob.keys[i].registration_id);
        opens_for(&m, i, &alice, &bob.keys[i], "hi bob");
    }
    /* device 2's envelope does not open with device 1's key */
    const Parley__V1__OutEnvelope *e = m.send.envelopes[1];
    assert_int_equal(pc_box_open(e->content.data, e->content.len, alice.keys.identity_pk,
                                 bob.keys[0].identity_sk, &pt, &pt_len, &st), -1);
    pc_send_msg_clear(&m);
}

static void test_own_account(void **state)
{
    devs mine;
    pc_identity me;
    pc_send_msg m;
    pc_status st;

    (void)state;
    make_devs(&mine, 3);
    memset(&me, 0, sizeof me);
    strcpy(me.username, "carol");
    me.device_id = 2;
    me.keys = mine.keys[1];
    assert_int_equal(pc_send_msg_build(&m, &me, "carol", &mine.list, "note", 4, 7, &st), 0);
    assert_int_equal(m.send.n_envelopes, 2);
    assert_int_equal(m.send.envelopes[0]->device_id, 1);
    assert_int_equal(m.send.envelopes[1]->device_id, 3);
    opens_for(&m, 1, &me, &mine.keys[2], "note");
    pc_send_msg_clear(&m);

    /* the only device of the account: nobody to send to */
    mine.list.n_devices = 1;
    me.device_id = 1;
    assert_int_equal(pc_send_msg_build(&m, &me, "carol", &mine.list, "x", 1, 7, &st), -1);
    assert_non_null(strstr(st.msg, "no other device"));
}

static void test_bad_key(void **state)
{
    devs bob;
    pc_identity alice;
    pc_send_msg m;
    pc_status st;

    (void)state;
    make_devs(&bob, 2);
    memset(&alice, 0, sizeof alice);
    strcpy(alice.username, "alice");
    alice.device_id = 1;
    assert_int_equal(pc_keys_generate(&alice.keys, &st), 0);
    bob.info[1].identity_key.len = 31;
    assert_int_equal(pc_send_msg_build(&m, &alice, "bob", &bob.list, "x", 1, 1, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
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
        cmocka_unit_test(test_other_account),
        cmocka_unit_test(test_own_account),
        cmocka_unit_test(test_bad_key),
        cmocka_unit_test(test_mismatch_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
