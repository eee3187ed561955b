/* Link codes (format, parse, Crockford base32 rules) and the provisioning channel crypto
 * (both directions, tampering, another secret, a substituted ephemeral key, the offer proof). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "link.h"

static void make_code(pc_link_code *c)
{
    pc_status st;

    memcpy(c->channel_id, "7K3QZ0MX", PARLEY_LINK_CHANNEL_ID_LEN + 1);
    assert_int_equal(pc_link_secret_new(c, &st), 0);
}

static void test_code_format_parse(void **state)
{
    pc_link_code c, p;
    char text[PC_LINK_CODE_TEXT_MAX];
    pc_status st;

    (void)state;
    make_code(&c);
    assert_int_equal(strlen(c.secret), PARLEY_LINK_SECRET_LEN);
    for (size_t i = 0; i < PARLEY_LINK_SECRET_LEN; i++)
        assert_non_null(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", c.secret[i]));
    pc_link_code_format(&c, text);
    /* 24 characters in 6 groups of 4 */
    assert_int_equal(strlen(text), 29);
    for (int i = 4; i < 29; i += 5)
        assert_int_equal(text[i], '-');
    assert_int_equal(memcmp(text, "7K3Q-Z0MX-", 10), 0);
    assert_int_equal(pc_link_code_parse(text, &p, &st), 0);
    assert_string_equal(p.channel_id, c.channel_id);
    assert_string_equal(p.secret, c.secret);
}

static void test_code_parse_lenient(void **state)
{
    pc_link_code p;
    pc_status st;

    (void)state;
    /* lower case, spaces, no dashes, I/L read as 1, O as 0 */
    assert_int_equal(pc_link_code_parse(" 7k3q z0mx-abcd efgh--jkmn pqrs\t", &p, &st), 0);
    assert_string_equal(p.channel_id, "7K3QZ0MX");
    assert_string_equal(p.secret, "ABCDEFGHJKMNPQRS");
    assert_int_equal(pc_link_code_parse("7K3QZOMXABCDEFGHiKMNPQRl", &p, &st), 0);
    assert_string_equal(p.channel_id, "7K3QZ0MX");
    assert_string_equal(p.secret, "ABCDEFGH1KMNPQR1");
}

static void test_code_parse_bad(void **state)
{
    pc_link_code p;
    pc_status st;

    (void)state;
    /* U is not Crockford base32 */
    assert_int_equal(pc_link_code_parse("7K3Q-Z0MX-ABCD-EFGH-JKMN-PQRU", &p, &st), -1);
    assert_int_equal(st.kind, PC_ERR_LOCAL);
    /* too short, too long, punctuation */
    assert_int_equal(pc_link_code_parse("7K3Q-Z0MX-ABCD-EFGH-JKMN-PQR", &p, &st), -1);
    assert_int_equal(pc_link_code_parse("7K3Q-Z0MX-ABCD-EFGH-JKMN-PQRST", &p, &st), -1);
    assert_int_equal(pc_link_code_parse("7K3Q.Z0MX-ABCD-EFGH-JKMN-PQRS", &p, &st), -1);
    assert_int_equal(pc_link_code_parse("", &p, &st), -1);
}

static void test_channel_id_valid(void **state)
{
    (void)state;
    assert_true(pc_link_channel_id_valid("7K3QZ0MX"));
    assert_false(pc_link_channel_id_valid("7K3QZ0M"));
    assert_false(pc_link_channel_id_valid("7K3QZ0MXA"));
    assert_false(pc_link_channel_id_valid("7k3qz0mx")); /* the server's form is canonical */
    assert_false(pc_link_channel_id_valid("7K3QZUMX"));
}

/* An opener and a joiner keyed for code; joiner_code lets the joiner use another code. */
static void pair(pc_link_chan *o, pc_link_chan *j, const pc_link_code *code,
                 const pc_link_code *joiner_code)
{
    pc_status st;

    assert_int_equal(pc_link_chan_init(o, 1, &st), 0);
    assert_int_equal(pc_link_chan_init(j, 0, &st), 0);
    assert_int_equal(pc_link_chan_key(o, code, j->my_pk, 32, &st), 0);
    assert_int_equal(pc_link_chan_key(j, joiner_code, o->my_pk, 32, &st), 0);
}

static void roundtrip(const pc_link_chan *from, const pc_link_chan *to, const char *text)
{
    uint8_t sealed[256], opened[256];
    size_t len = strlen(text), out_len = 0;
    pc_status st;

    pc_link_seal(from, (const uint8_t *)text, len, sealed);
    assert_int_equal(pc_link_open(to, sealed, len + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     0);
    assert_int_equal(out_len, len);
    assert_memory_equal(opened, text, len);
    /* a side cannot open its own direction (reflection) */
    assert_int_equal(pc_link_open(from, sealed, len + PC_LINK_SEAL_OVERHEAD, opened, &out_len,
                                  &st),
                     -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
}

static void test_channel_both_directions(void **state)
{
    pc_link_chan o, j;
    pc_link_code c;

    (void)state;
    make_code(&c);
    pair(&o, &j, &c, &c);
    assert_memory_equal(o.tx, j.rx, 32);
    assert_memory_equal(o.rx, j.tx, 32);
    assert_memory_not_equal(o.tx, o.rx, 32);
    roundtrip(&o, &j, "offer from the new device");
    roundtrip(&j, &o, "grant from the old device");
    pc_link_chan_wipe(&o);
    pc_link_chan_wipe(&j);
}

static void test_channel_tampered(void **state)
{
    pc_link_chan o, j;
    pc_link_code c;
    uint8_t sealed[64], opened[64];
    size_t out_len;
    pc_status st;

    (void)state;
    make_code(&c);
    pair(&o, &j, &c, &c);
    pc_link_seal(&o, (const uint8_t *)"hello", 5, sealed);
    for (size_t i = 0; i < 5 + PC_LINK_SEAL_OVERHEAD; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(pc_link_open(&j, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len,
                                      &st),
                         -1);
        sealed[i] ^= 0x01;
    }
    /* truncated */
    assert_int_equal(pc_link_open(&j, sealed, 4 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
    assert_int_equal(pc_link_open(&j, sealed, 10, opened, &out_len, &st), -1);
    assert_int_equal(pc_link_open(&j, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     0);
}

static void test_channel_wrong_secret(void **state)
{
    pc_link_chan o, j;
    pc_link_code c, wrong;
    uint8_t sealed[64], opened[64];
    size_t out_len;
    pc_status st;

    (void)state;
    make_code(&c);
    wrong = c;
    wrong.secret[0] = wrong.secret[0] == 'A' ? 'B' : 'A';
    pair(&o, &j, &c, &wrong);
    pc_link_seal(&o, (const uint8_t *)"hello", 5, sealed);
    assert_int_equal(pc_link_open(&j, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
    assert_int_equal(st.kind, PC_ERR_CRYPTO);
    pc_link_seal(&j, (const uint8_t *)"hello", 5, sealed);
    assert_int_equal(pc_link_open(&o, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
}

/* The server swaps the joiner's ephemeral key for its own toward the opener, and the
 * opener's toward the joiner: without the secret it ends up with keys neither side shares. */
static void test_channel_substituted_key(void **state)
{
    pc_link_chan o, j, mo, mj;
    pc_link_code c, guess;
    uint8_t sealed[64], opened[64];
    size_t out_len;
    pc_status st;

    (void)state;
    make_code(&c);
    guess = c;
    assert_int_equal(pc_link_secret_new(&guess, &st), 0);
    assert_int_equal(pc_link_chan_init(&o, 1, &st), 0);
    assert_int_equal(pc_link_chan_init(&j, 0, &st), 0);
    assert_int_equal(pc_link_chan_init(&mj, 0, &st), 0); /* poses as the joiner to o */
    assert_int_equal(pc_link_chan_init(&mo, 1, &st), 0); /* poses as the opener to j */
    assert_int_equal(pc_link_chan_key(&o, &c, mj.my_pk, 32, &st), 0);
    assert_int_equal(pc_link_chan_key(&j, &c, mo.my_pk, 32, &st), 0);
    assert_int_equal(pc_link_chan_key(&mj, &guess, o.my_pk, 32, &st), 0);
    assert_int_equal(pc_link_chan_key(&mo, &guess, j.my_pk, 32, &st), 0);
    /* o's offer neither opens at the man in the middle nor reaches j intact */
    pc_link_seal(&o, (const uint8_t *)"offer", 5, sealed);
    assert_int_equal(pc_link_open(&mj, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
    assert_int_equal(pc_link_open(&j, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
    /* what the man in the middle makes does not open at j */
    pc_link_seal(&mo, (const uint8_t *)"offer", 5, sealed);
    assert_int_equal(pc_link_open(&j, sealed, 5 + PC_LINK_SEAL_OVERHEAD, opened, &out_len, &st),
                     -1);
}

static void test_channel_bad_peer_key(void **state)
{
    pc_link_chan o;
    pc_link_code c;
    uint8_t zero[32] = { 0 };
    pc_status st;

    (void)state;
    make_code(&c);
    assert_int_equal(pc_link_chan_init(&o, 1, &st), 0);
    assert_int_equal(pc_link_chan_key(&o, &c, zero, 31, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
    /* a low-order point: the shared secret would be known to anyone */
    assert_int_equal(pc_link_chan_key(&o, &c, zero, 32, &st), -1);
    assert_int_equal(st.kind, PC_ERR_PROTO);
}

static void test_offer_proof(void **state)
{
    pc_link_chan o, j, other_o, other_j;
    pc_link_code c;
    uint8_t spk[32], ssk[64], ipk[32], isk[32], sig[64];

    (void)state;
    make_code(&c);
    pair(&o, &j, &c, &c);
    crypto_sign_keypair(spk, ssk);
    crypto_box_keypair(ipk, isk);
    pc_link_offer_sign(&o, spk, ssk, ipk, 4242, sig);
    assert_int_equal(pc_link_offer_verify(&j, spk, ipk, 4242, sig, 64), 0);
    /* other registration id, identity key, length: refused */
    assert_int_equal(pc_link_offer_verify(&j, spk, ipk, 4243, sig, 64), -1);
    ipk[0] ^= 1;
    assert_int_equal(pc_link_offer_verify(&j, spk, ipk, 4242, sig, 64), -1);
    ipk[0] ^= 1;
    assert_int_equal(pc_link_offer_verify(&j, spk, ipk, 4242, sig, 63), -1);
    /* the same signature replayed into another channel (other ephemeral keys) */
    pair(&other_o, &other_j, &c, &c);
    assert_int_equal(pc_link_offer_verify(&other_j, spk, ipk, 4242, sig, 64), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_format_parse),
        cmocka_unit_test(test_code_parse_lenient),
        cmocka_unit_test(test_code_parse_bad),
        cmocka_unit_test(test_channel_id_valid),
        cmocka_unit_test(test_channel_both_directions),
        cmocka_unit_test(test_channel_tampered),
        cmocka_unit_test(test_channel_wrong_secret),
        cmocka_unit_test(test_channel_substituted_key),
        cmocka_unit_test(test_channel_bad_peer_key),
        cmocka_unit_test(test_offer_proof),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
