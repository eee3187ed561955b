/* test_auth.c: the signed transcripts (byte layout pinned, every field bound), Ed25519
 * verification, the registration proof of work and username normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth.h"

static uint8_t chal[PARLEY_CHALLENGE_BYTES];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    for (size_t i = 0; i < sizeof chal; i++)
        chal[i] = (uint8_t)(i * 7 + 1);
    return 0;
}

static size_t auth_tr(uint8_t *out, const uint8_t *c, const char *gw, const char *acct,
                      uint32_t dev, uint64_t ts)
{
    return pauth_auth_transcript(out, c, gw, acct, dev, ts);
}

static void test_auth_transcript_layout(void **state)
{
    (void)state;
    uint8_t t[PAUTH_TRANSCRIPT_MAX];
    size_t n = auth_tr(t, chal, "gw1", "alice", 0x01020304u, 0x1122334455667788ull);
    assert_int_equal(n, 14 + 32 + 2 + 3 + 2 + 5 + 4 + 8);
    assert_memory_equal(t, "parley-auth-v1", 14);
    assert_memory_equal(t + 14, chal, 32);
    const uint8_t rest[] = {0, 3, 'g', 'w', '1', 0, 5, 'a', 'l', 'i', 'c', 'e', 1, 2, 3, 4,
                            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    assert_memory_equal(t + 46, rest, sizeof rest);
}

static void test_auth_transcript_deterministic_and_binding(void **state)
{
    (void)state;
    uint8_t a[PAUTH_TRANSCRIPT_MAX], b[PAUTH_TRANSCRIPT_MAX];
    size_t na = auth_tr(a, chal, "gw1", "alice", 1, 1000);
    size_t nb = auth_tr(b, chal, "gw1", "alice", 1, 1000);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);

    uint8_t c2[PARLEY_CHALLENGE_BYTES];
    memcpy(c2, chal, sizeof c2);
    c2[31] ^= 1;
    struct {
        size_t n;
        uint8_t t[PAUTH_TRANSCRIPT_MAX];
    } v[6];
    v[0].n = auth_tr(v[0].t, c2, "gw1", "alice", 1, 1000);
    v[1].n = auth_tr(v[1].t, chal, "gw2", "alice", 1, 1000);
    v[2].n = auth_tr(v[2].t, chal, "gw1", "alicf", 1, 1000);
    v[3].n = auth_tr(v[3].t, chal, "gw1", "alice", 2, 1000);
    v[4].n = auth_tr(v[4].t, chal, "gw1", "alice", 1, 1001);
    /* moving a byte from one string to the next must change the bytes (length prefixes) */
    v[5].n = auth_tr(v[5].t, chal, "gw1a", "lice", 1, 1000);
    for (int i = 0; i < 6; i++) {
        assert_true(v[i].n > 0);
        assert_false(v[i].n == na && memcmp(v[i].t, a, na) == 0);
    }
    uint8_t x[PAUTH_TRANSCRIPT_MAX], y[PAUTH_TRANSCRIPT_MAX];
    size_t nx = auth_tr(x, chal, "ab", "cde", 1, 1);
    size_t ny = auth_tr(y, chal, "abc", "de", 1, 1);
    assert_int_equal(nx, ny);
    assert_memory_not_equal(x, y, nx);
}

static void test_auth_transcript_too_long(void **state)
{
    (void)state;
    uint8_t t[PAUTH_TRANSCRIPT_MAX];
    char big[PAUTH_TRANSCRIPT_MAX];
    memset(big, 'g', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(auth_tr(t, chal, big, "alice", 1, 1), 0);
    assert_int_equal(auth_tr(t, chal, NULL, "alice", 1, 1), 0);
    assert_int_equal(auth_tr(t, chal, "gw", NULL, 1, 1), 0);
}

static void test_register_transcript(void **state)
{
    (void)state;
    uint8_t ak[32], sk[32], ik[32];
    memset(ak, 0xa1, 32);
    memset(sk, 0xb2, 32);
    memset(ik, 0xc3, 32);
    uint8_t a[PAUTH_TRANSCRIPT_MAX], b[PAUTH_TRANSCRIPT_MAX];
    size_t na = pauth_register_transcript(a, chal, "alice", ak, sk, ik, 0x0102);
    size_t nb = pauth_register_transcript(b, chal, "alice", ak, sk, ik, 0x0102);
    assert_int_equal(na, 18 + 32 + 2 + 5 + 96 + 4);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_memory_equal(a, "parley-register-v1", 18);
    assert_memory_equal(a + 18 + 32, "\0\005alice", 7);
    assert_memory_equal(a + na - 4, "\0\0\001\002", 4);

    uint8_t x[32];
    uint8_t t[PAUTH_TRANSCRIPT_MAX];
    size_t n;
    n = pauth_register_transcript(t, chal, "alicf", ak, sk, ik, 0x0102);
    assert_memory_not_equal(t, a, n < na ? n : na);
    memcpy(x, ak, 32);
    x[0] ^= 0x80;
    n = pauth_register_transcript(t, chal, "alice", x, sk, ik, 0x0102);
    assert_int_equal(n, na);
    assert_memory_not_equal(t, a, na);
    memcpy(x, sk, 32);
    x[31] ^= 1;
    n = pauth_register_transcript(t, chal, "alice", ak, x, ik, 0x0102);
    assert_memory_not_equal(t, a, na);
    memcpy(x, ik, 32);
    x[5] ^= 4;
    n = pauth_register_transcript(t, chal, "alice", ak, sk, x, 0x0102);
    assert_memory_not_equal(t, a, na);
    n = pauth_register_transcript(t, chal, "alice", ak, sk, ik, 0x0103);
    assert_memory_not_equal(t, a, na);
    uint8_t c2[PARLEY_CHALLENGE_BYTES];
    memcpy(c2, chal, sizeof c2);
    c2[0] ^= 1;
    n = pauth_register_transcript(t, c2, "alice", ak, sk, ik, 0x0102);
    assert_memory_not_equal(t, a, na);
    /* auth and register transcripts never collide: different tags */
    assert_memory_not_equal(a, "parley-auth-v1", 14);
}

static void test_sign_verify(void **state)
{
    (void)state;
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    uint8_t pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    crypto_sign_keypair(pk2, sk2);
    uint8_t t[PAUTH_TRANSCRIPT_MAX], sig[crypto_sign_BYTES];
    size_t n = auth_tr(t, chal, "gw1", "alice", 1, 123456789);
    assert_true(n > 0);
    assert_int_equal(crypto_sign_detached(sig, NULL, t, n, sk), 0);
    assert_int_equal(pauth_verify(sig, t, n, pk), 0);

    uint8_t bad[crypto_sign_BYTES];
    for (size_t bit = 0; bit < 8 * sizeof sig; bit += 37) {
        memcpy(bad, sig, sizeof bad);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_not_equal(pauth_verify(bad, t, n, pk), 0);
    }
    t[n - 1] ^= 1; /* timestamp changed */
    assert_int_not_equal(pauth_verify(sig, t, n, pk), 0);
    t[n - 1] ^= 1;
    assert_int_not_equal(pauth_verify(sig, t, n, pk2), 0);
    assert_int_not_equal(pauth_verify(sig, t, n - 1, pk), 0);
    assert_int_equal(pauth_verify(sig, t, n, pk), 0);
}

/* The PoW hash, built independently from the documented layout. */
static unsigned leading_zero_bits(const uint8_t *challenge, const char *user, uint64_t nonce)
{
    uint8_t buf[13 + 32 + 2 + 64 + 8];
    size_t o = 0, ul = strlen(user);
    memcpy(buf, "parley-pow-v1", 13);
    o = 13;
    memcpy(buf + o, challenge, 32);
    o += 32;
    buf[o++] = (uint8_t)(ul >> 8);
    buf[o++] = (uint8_t)ul;
    memcpy(buf + o, user, ul);
    o += ul;
    for (int i = 7; i >= 0; i--)
        buf[o++] = (uint8_t)(nonce >> (8 * i));
    uint8_t h[32];
    crypto_hash_sha256(h, buf, o);
    unsigned z = 0;
    for (int i = 0; i < 32; i++) {
        if (h[i] == 0) {
            z += 8;
            continue;
        }
        for (int b = 7; b >= 0 && !(h[i] >> b & 1); b--)
            z++;
        break;
    }
    return z;
}

static void test_pow_solve_check(void **state)
{
    (void)state;
    for (unsigned d = 8; d <= 16; d += 4) {
        uint64_t nonce = pauth_pow_solve(chal, "alice", d);
        assert_int_equal(pauth_pow_check(chal, "alice", nonce, d), 0);
        assert_true(leading_zero_bits(chal, "alice", nonce) >= d);
        /* solve returns the first passing nonce, so every smaller one fails */
        assert_true(nonce > 0);
        assert_int_not_equal(pauth_pow_check(chal, "alice", nonce - 1, d), 0);
        for (uint64_t k = 0; k < nonce && k < 200; k++)
            assert_int_not_equal(pauth_pow_check(chal, "alice", k, d), 0);
    }
    uint64_t nonce = pauth_pow_solve(chal, "alice", 16);
    /* the work is bound to the name and the challenge */
    assert_int_not_equal(pauth_pow_check(chal, "alicf", nonce, 16), 0);
    uint8_t c2[PARLEY_CHALLENGE_BYTES];
    memcpy(c2, chal, sizeof c2);
    c2[7] ^= 1;
    assert_int_not_equal(pauth_pow_check(c2, "alice", nonce, 16), 0);
}

static void test_pow_matches_layout(void **state)
{
    (void)state;
    /* check must agree with the documented hash for every nonce and difficulty */
    for (uint64_t nonce = 0; nonce < 3000; nonce++) {
        unsigned z = leading_zero_bits(chal, "bob", nonce);
        for (unsigned d = 1; d <= 12; d++)
            assert_int_equal(pauth_pow_check(chal, "bob", nonce, d) == 0, z >= d);
    }
    assert_int_equal(pauth_pow_check(chal, "bob", 12345, 0), 0);   /* no work asked */
    assert_int_not_equal(pauth_pow_check(chal, "bob", 1, 257), 0); /* impossible */
    assert_int_not_equal(pauth_pow_check(chal, NULL, 1, 1), 0);
}

static void test_name_normalize(void **state)
{
    (void)state;
    char out[PARLEY_NAME_MAX + 1];
    assert_int_equal(pauth_name_normalize("alice", out), 0);
    assert_string_equal(out, "alice");
    assert_int_equal(pauth_name_normalize("Alice_B.9", out), 0);
    assert_string_equal(out, "alice_b.9");
    assert_int_equal(pauth_name_normalize("ALICE", out), 0);
    assert_string_equal(out, "alice");
    assert_int_equal(pauth_name_normalize("abc", out), 0);          /* 3: shortest */
    assert_int_equal(pauth_name_normalize("ab", out), -1);          /* too short */
    assert_int_equal(pauth_name_normalize("", out), -1);            /* empty */
    assert_int_equal(pauth_name_normalize(NULL, out), -1);
    char n32[33], n33[34];
    memset(n32, 'a', 32);
    n32[32] = '\0';
    memset(n33, 'B', 33);
    n33[33] = '\0';
    assert_int_equal(pauth_name_normalize(n32, out), 0);            /* 32: longest */
    assert_string_equal(out, n32);
    assert_int_equal(pauth_name_normalize(n33, out), -1);           /* too long */
    const char *bad[] = {"al ice", "al-ice", "alice!", "al@ce", "alic\xc3\xa9", "\xff\xfe\xfd",
                         "ali\tce", "alice/", "ali:ce", "al\nice"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pauth_name_normalize(bad[i], out), -1);
    /* a length-delimited name with an embedded NUL is invalid, not silently cut */
    assert_int_equal(pauth_name_normalize_n("alice\0evil", 10, out), -1);
    assert_int_equal(pauth_name_normalize_n("Alice", 5, out), 0);
    assert_string_equal(out, "alice");
    assert_int_equal(pauth_name_normalize_n("alicexyz", 5, out), 0);
    assert_string_equal(out, "alice");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_transcript_layout),
        cmocka_unit_test(test_auth_transcript_deterministic_and_binding),
        cmocka_unit_test(test_auth_transcript_too_long),
        cmocka_unit_test(test_register_transcript),
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_pow_solve_check),
        cmocka_unit_test(test_pow_matches_layout),
        cmocka_unit_test(test_name_normalize),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
