/* The local prekey store: signed prekey rotation and grace period, one-time prekey ids
 * (increasing, never reused), lookup and consumption, the size bound, and the saved form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "e2ebuf.h"
#include "pkstore.h"
#include "x3dh.h"

#define T0 1700000000000ULL

static void test_signed_prekey_rotation(void **state)
{
    pc_keys k;
    pc_pks p;
    pc_status st;
    const pc_pks_spk *s;
    uint8_t pk[32];

    (void)state;
    assert_int_equal(pc_keys_generate(&k, &st), 0);
    pc_pks_init(&p);
    assert_true(pc_pks_spk_due(&p, T0));
    assert_null(pc_pks_spk_find(&p, 1));
    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0, &st), 0);
    assert_int_equal(p.spk.id, 1);
    assert_false(p.has_prev);
    /* signed with the device key over the documented transcript; the key pair matches */
    assert_int_equal(pc_x3dh_spk_verify(k.signing_pk, 1, p.spk.pk, p.spk.sig), 0);
    crypto_scalarmult_base(pk, p.spk.sk);
    assert_memory_equal(pk, p.spk.pk, 32);
    assert_false(pc_pks_spk_due(&p, T0 + PC_PKS_SPK_ROTATE_MS - 1));
    assert_true(pc_pks_spk_due(&p, T0 + PC_PKS_SPK_ROTATE_MS));

    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0 + PC_PKS_SPK_ROTATE_MS, &st), 0);
    assert_int_equal(p.spk.id, 2);
    assert_true(p.has_prev);
    assert_int_equal(p.prev.id, 1);
    assert_int_equal(p.prev.retired_ms, T0 + PC_PKS_SPK_ROTATE_MS);
    assert_non_null(s = pc_pks_spk_find(&p, 1));
    assert_int_equal(s->id, 1);
    assert_non_null(pc_pks_spk_find(&p, 2));
    assert_memory_not_equal(p.spk.pk, p.prev.pk, 32);

    /* the previous one stays for the grace period, then goes */
    pc_pks_expire(&p, T0 + PC_PKS_SPK_ROTATE_MS + PC_PKS_SPK_GRACE_MS);
    assert_non_null(pc_pks_spk_find(&p, 1));
    pc_pks_expire(&p, T0 + PC_PKS_SPK_ROTATE_MS + PC_PKS_SPK_GRACE_MS + 1);
    assert_null(pc_pks_spk_find(&p, 1));
    assert_non_null(pc_pks_spk_find(&p, 2));
    assert_false(p.has_prev);

    /* only one previous is kept */
    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0 + 1, &st), 0);
    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0 + 2, &st), 0);
    assert_int_equal(p.spk.id, 4);
    assert_int_equal(p.prev.id, 3);
    assert_null(pc_pks_spk_find(&p, 2));
    pc_pks_free(&p);
    pc_keys_wipe(&k);
}

static void test_one_time_prekeys(void **state)
{
    pc_pks p;
    pc_status st;
    uint32_t first;
    const pc_pks_opk *o;
    uint8_t pk[32];

    (void)state;
    pc_pks_init(&p);
    assert_int_equal(pc_pks_generate_opks(&p, PC_PKS_OPK_BATCH, &first, &st), 0);
    assert_int_equal(first, 1);
    assert_int_equal(p.n_opks, PC_PKS_OPK_BATCH);
    assert_int_equal(pc_pks_generate_opks(&p, 10, &first, &st), 0);
    assert_int_equal(first, PC_PKS_OPK_BATCH + 1);
    for (uint32_t id = 1; id <= PC_PKS_OPK_BATCH + 10; id++) {
        assert_non_null(o = pc_pks_opk_find(&p, id));
        assert_int_equal(o->id, id);
        crypto_scalarmult_base(pk, o->sk);
        assert_memory_equal(pk, o->pk, 32);
    }
    assert_null(pc_pks_opk_find(&p, 0));
    assert_null(pc_pks_opk_find(&p, PC_PKS_OPK_BATCH + 11));
    /* consumed once */
    assert_int_equal(pc_pks_opk_remove(&p, 5), 0);
    assert_null(pc_pks_opk_find(&p, 5));
    assert_int_equal(pc_pks_opk_remove(&p, 5), -1);
    assert_non_null(pc_pks_opk_find(&p, 4));
    assert_non_null(pc_pks_opk_find(&p, 6));
    /* removing the newest does not make its id available again */
    assert_int_equal(pc_pks_opk_remove(&p, PC_PKS_OPK_BATCH + 10), 0);
    assert_int_equal(pc_pks_generate_opks(&p, 1, &first, &st), 0);
    assert_int_equal(first, PC_PKS_OPK_BATCH + 11);
    assert_int_equal(p.n_opks, PC_PKS_OPK_BATCH + 9);
    /* bad counts */
    assert_int_equal(pc_pks_generate_opks(&p, 0, &first, &st), -1);
    assert_int_equal(pc_pks_generate_opks(&p, PC_PKS_OPK_MAX + 1, &first, &st), -1);
    pc_pks_free(&p);
}

static void test_one_time_prekeys_bounded(void **state)
{
    pc_pks p;
    pc_status st;
    uint32_t first;
    size_t total = 0;

    (void)state;
    pc_pks_init(&p);
    while (total <= PC_PKS_OPK_MAX) {
        assert_int_equal(pc_pks_generate_opks(&p, PC_PKS_OPK_BATCH, &first, &st), 0);
        total += PC_PKS_OPK_BATCH;
    }
    /* the oldest were dropped to stay within the bound */
    assert_int_equal(p.n_opks, PC_PKS_OPK_MAX);
    assert_null(pc_pks_opk_find(&p, (uint32_t)(total - PC_PKS_OPK_MAX)));
    assert_non_null(pc_pks_opk_find(&p, (uint32_t)(total - PC_PKS_OPK_MAX + 1)));
    assert_non_null(pc_pks_opk_find(&p, (uint32_t)total));
    assert_int_equal(p.opks[0].id, total - PC_PKS_OPK_MAX + 1);
    /* a full store (with both signed prekeys) saves and loads within the saved-size bound */
    {
        pc_keys k;
        pc_pks q;
        uint8_t *blob;
        size_t len;

        assert_int_equal(pc_keys_generate(&k, &st), 0);
        assert_int_equal(pc_pks_rotate_spk(&p, &k, T0, &st), 0);
        assert_int_equal(pc_pks_rotate_spk(&p, &k, T0 + 1, &st), 0);
        assert_int_equal(pc_pks_save(&p, &blob, &len, &st), 0);
        assert_true(len <= PC_PKS_BLOB_MAX);
        assert_int_equal(pc_pks_load(&q, blob, len, &st), 0);
        assert_int_equal(q.n_opks, PC_PKS_OPK_MAX);
        pc_pks_free(&q);
        pc_eb_free_secret(blob, len);
        pc_keys_wipe(&k);
    }
    pc_pks_free(&p);
}

static void test_save_load(void **state)
{
    pc_keys k;
    pc_pks p, q;
    pc_status st;
    uint32_t first;
    uint8_t *blob, *again, *bad;
    size_t len, l2;

    (void)state;
    assert_int_equal(pc_keys_generate(&k, &st), 0);
    pc_pks_init(&p);
    /* an empty store round-trips too */
    assert_int_equal(pc_pks_save(&p, &blob, &len, &st), 0);
    assert_int_equal(pc_pks_load(&q, blob, len, &st), 0);
    assert_false(q.has_spk);
    assert_int_equal(q.next_opk_id, 1);
    pc_pks_free(&q);
    pc_eb_free_secret(blob, len);

    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0, &st), 0);
    assert_int_equal(pc_pks_rotate_spk(&p, &k, T0 + 10, &st), 0);
    assert_int_equal(pc_pks_generate_opks(&p, 20, &first, &st), 0);
    assert_int_equal(pc_pks_opk_remove(&p, 3), 0);
    assert_int_equal(pc_pks_opk_remove(&p, 20), 0);
    assert_int_equal(pc_pks_save(&p, &blob, &len, &st), 0);
    assert_int_equal(pc_pks_load(&q, blob, len, &st), 0);
    assert_int_equal(q.spk.id, 2);
    assert_int_equal(q.prev.id, 1);
    assert_memory_equal(&q.spk, &p.spk, sizeof q.spk);
    assert_memory_equal(&q.prev, &p.prev, sizeof q.prev);
    assert_int_equal(q.n_opks, 18);
    assert_memory_equal(q.opks, p.opks, 18 * sizeof *q.opks);
    assert_null(pc_pks_opk_find(&q, 3));
    assert_int_equal(pc_pks_save(&q, &again, &l2, &st), 0);
    assert_int_equal(l2, len);
    assert_memory_equal(again, blob, len);
    pc_eb_free_secret(again, l2);
    /* ids continue after a reload: the consumed 20 is not handed out again */
    assert_int_equal(pc_pks_generate_opks(&q, 1, &first, &st), 0);
    assert_int_equal(first, 21);
    assert_int_equal(pc_pks_rotate_spk(&q, &k, T0 + 20, &st), 0);
    assert_int_equal(q.spk.id, 3);
    pc_pks_free(&q);

    /* truncated, flipped and extended blobs are refused */
    for (size_t n = 0; n < len; n++)
        assert_int_equal(pc_pks_load(&q, blob, n, &st), -1);
    bad = malloc(len + 1);
    assert_non_null(bad);
    memcpy(bad, blob, len);
    for (size_t i = 0; i < len; i++) {
        bad[i] ^= 0x04;
        assert_int_equal(pc_pks_load(&q, bad, len, &st), -1);
        assert_int_equal(st.kind, PC_ERR_LOCAL);
        bad[i] ^= 0x04;
    }
    bad[len] = 0;
    assert_int_equal(pc_pks_load(&q, bad, len + 1, &st), -1);
    free(bad);
    /* well framed but inconsistent: a key id at or above the next id */
    {
        pc_pks w = p;
        pc_pks_opk *copy = malloc(p.n_opks * sizeof *copy);

        assert_non_null(copy);
        memcpy(copy, p.opks, p.n_opks * sizeof *copy);
        w.opks = copy;
        w.next_opk_id = 5;
        assert_int_equal(pc_pks_save(&w, &bad, &l2, &st), 0);
        assert_int_equal(pc_pks_load(&q, bad, l2, &st), -1);
        assert_string_equal(st.msg, "saved prekeys are corrupt");
        pc_eb_free_secret(bad, l2);
        sodium_memzero(copy, p.n_opks * sizeof *copy);
        free(copy);
    }
    assert_int_equal(pc_pks_load(&q, blob, len, &st), 0);
    pc_pks_free(&q);
    pc_eb_free_secret(blob, len);
    pc_pks_free(&p);
    pc_keys_wipe(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_prekey_rotation),
        cmocka_unit_test(test_one_time_prekeys),
        cmocka_unit_test(test_one_time_prekeys_bounded),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
