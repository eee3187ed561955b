/* The plaintext inside an encrypted message: text and sent-transcript round trips, the byte
 * layout, unknown versions and kinds, short and malformed plaintexts, transcripts that name no
 * valid account, and the longest text, whose encryption (even as a transcript) still fits one
 * envelope. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "parley_client.h"

static void test_round_trips(void **state)
{
    uint8_t *pt;
    size_t len;
    pc_plain p;
    pc_status st;

    (void)state;
    assert_int_equal(pc_plain_build("hello", 5, 1234567890123ULL, NULL, &pt, &len, &st), 0);
    assert_int_equal(len, PC_PLAIN_HEADER_BYTES + 5);
    assert_int_equal(pt[0], PC_PLAIN_VERSION);
    assert_int_equal(pt[1], PC_PLAIN_KIND_TEXT);
    assert_int_equal(pc_plain_parse(pt, len, &p, &st), 0);
    assert_int_equal(p.kind, PC_PLAIN_KIND_TEXT);
    assert_int_equal(p.sent_ms, 1234567890123ULL);
    assert_null(p.sent_to);
    assert_int_equal(p.text_len, 5);
    assert_memory_equal(p.text, "hello", 5);
    free(pt);

    assert_int_equal(pc_plain_build("", 0, 7, "bob", &pt, &len, &st), 0);
    assert_int_equal(len, PC_PLAIN_HEADER_BYTES + 1 + 3);
    assert_int_equal(pc_plain_parse(pt, len, &p, &st), 0);
    assert_int_equal(p.kind, PC_PLAIN_KIND_SENT);
    assert_int_equal(p.sent_to_len, 3);
    assert_memory_equal(p.sent_to, "bob", 3);
    assert_int_equal(p.text_len, 0);
    free(pt);
}

static void test_malformed(void **state)
{
    uint8_t pt[PC_PLAIN_HEADER_BYTES + 2] = { 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 'h', 'i' };
    uint8_t sent[PC_PLAIN_HEADER_BYTES + 5] = { 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 3, 'b', 'o', 'b', '!' };
    pc_plain p;
    pc_status st;

    (void)state;
    assert_int_equal(pc_plain_parse(pt, sizeof pt, &p, &st), 0);
    assert_int_equal(p.sent_ms, 256);
    assert_int_equal(p.text_len, 2);
    pt[0] = 2; /* unknown version */
    assert_int_equal(pc_plain_parse(pt, sizeof pt, &p, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    pt[0] = 1;
    pt[1] = 9; /* unknown kind */
    assert_int_equal(pc_plain_parse(pt, sizeof pt, &p, &st), -1);
    pt[1] = 1;
    assert_int_equal(pc_plain_parse(pt, PC_PLAIN_HEADER_BYTES - 1, &p, &st), -1);

    assert_int_equal(pc_plain_parse(sent, sizeof sent, &p, &st), 0);
    assert_int_equal(p.text_len, 1);
    sent[PC_PLAIN_HEADER_BYTES] = 5; /* the name runs past the end */
    assert_int_equal(pc_plain_parse(sent, sizeof sent, &p, &st), -1);
    sent[PC_PLAIN_HEADER_BYTES] = 0; /* no name */
    assert_int_equal(pc_plain_parse(sent, sizeof sent, &p, &st), -1);
    sent[PC_PLAIN_HEADER_BYTES] = 3;
    sent[PC_PLAIN_HEADER_BYTES + 1] = 'B'; /* not as the server writes names */
    assert_int_equal(pc_plain_parse(sent, sizeof sent, &p, &st), -1);
    sent[PC_PLAIN_HEADER_BYTES + 1] = '\n';
    assert_int_equal(pc_plain_parse(sent, sizeof sent, &p, &st), -1);
    assert_int_equal(pc_plain_parse(sent, PC_PLAIN_HEADER_BYTES, &p, &st), -1);
}

static void test_call_signal(void **state)
{
    const uint8_t sig[] = { 0x08, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8 };
    uint8_t *pt, *big;
    size_t len;
    pc_plain p;
    pc_status st;

    (void)state;
    assert_int_equal(pc_plain_build_call(sig, sizeof sig, 0x0102, &pt, &len, &st), 0);
    assert_int_equal(len, PC_PLAIN_HEADER_BYTES + sizeof sig);
    assert_int_equal(pt[1], PC_PLAIN_KIND_CALL);
    assert_int_equal(pc_plain_parse(pt, len, &p, &st), 0);
    assert_int_equal(p.kind, PC_PLAIN_KIND_CALL);
    assert_int_equal(p.sent_ms, 0x0102);
    assert_null(p.text);
    assert_null(p.sent_to);
    assert_int_equal(p.signal_len, sizeof sig);
    assert_memory_equal(p.signal, sig, sizeof sig);
    /* an empty signal is malformed, both ways */
    assert_int_equal(pc_plain_parse(pt, PC_PLAIN_HEADER_BYTES, &p, &st), -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    assert_int_equal(pc_plain_build_call(sig, 0, 1, &pt, &len, &st), -1);
    free(pt);
    /* the longest signal fits; one byte more is refused */
    big = calloc(1, PC_PLAIN_SIGNAL_MAX + 1);
    assert_non_null(big);
    assert_int_equal(pc_plain_build_call(big, PC_PLAIN_SIGNAL_MAX + 1, 1, &pt, &len, &st), -1);
    assert_int_equal(pc_plain_build_call(big, PC_PLAIN_SIGNAL_MAX, 1, &pt, &len, &st), 0);
    assert_int_equal(pc_plain_parse(pt, len, &p, &st), 0);
    assert_int_equal(p.signal_len, PC_PLAIN_SIGNAL_MAX);
    free(pt);
    free(big);
}

static void test_longest_text_fits_an_envelope(void **state)
{
    char *big = malloc(PC_PLAIN_TEXT_MAX + 1);
    pc_keys a, b;
    pc_pks store;
    pc_bundle bd;
    pc_e2s *s;
    uint8_t *pt, *ct;
    size_t len, ct_len;
    char longest[PARLEY_NAME_MAX + 1];
    pc_status st;

    (void)state;
    assert_non_null(big);
    memset(big, 'x', PC_PLAIN_TEXT_MAX + 1);
    memset(longest, 'n', PARLEY_NAME_MAX);
    longest[PARLEY_NAME_MAX] = '\0';
    assert_int_equal(pc_plain_build(big, PC_PLAIN_TEXT_MAX + 1, 1, NULL, &pt, &len, &st), -1);
    assert_int_equal(pc_plain_build(big, PC_PLAIN_TEXT_MAX, 1, longest, &pt, &len, &st), 0);

    /* a first (prekey) message, the largest kind, of the longest transcript */
    assert_int_equal(pc_keys_generate(&a, &st), 0);
    assert_int_equal(pc_keys_generate(&b, &st), 0);
    pc_pks_init(&store);
    assert_int_equal(pc_pks_rotate_spk(&store, &b, 1, &st), 0);
    memset(&bd, 0, sizeof bd);
    bd.device_id = 1;
    bd.registration_id = b.registration_id;
    memcpy(bd.signing_pk, b.signing_pk, 32);
    memcpy(bd.identity_pk, b.identity_pk, 32);
    bd.spk_id = store.spk.id;
    memcpy(bd.spk_pk, store.spk.pk, 32);
    memcpy(bd.spk_sig, store.spk.sig, 64);
    assert_int_equal(pc_e2s_init_outgoing(&a, &bd, &s, &st), 0);
    assert_int_equal(pc_e2s_encrypt(s, pt, len, &ct, &ct_len, &st), 0);
    assert_true(ct_len <= PARLEY_MAX_ENVELOPE_BYTES);
    free(ct);
    free(pt);
    pc_e2s_free(s);
    pc_pks_free(&store);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_call_signal),
        cmocka_unit_test(test_longest_text_fits_an_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
