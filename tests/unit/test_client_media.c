/* Call media (client/media.h): packet sealing and opening (header authenticated, direction in
 * the nonce), the replay window (duplicates, reordering inside the window, too old, jumps),
 * RFC 3550 jitter arithmetic and the loss arithmetic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include <sodium.h>

#include "media.h"

static uint8_t key[PC_MEDIA_KEY_LEN];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(key, sizeof key);
    return 0;
}

static void test_seal_open(void **state)
{
    uint8_t body[PC_MEDIA_AUDIO_BYTES], out[PC_MEDIA_PACKET_MAX], back[PC_MEDIA_PACKET_MAX];
    uint8_t dir, type;
    uint64_t seq;
    long n, m;

    (void)state;
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)i;
    n = pc_media_seal(out, sizeof out, key, 1, PC_MEDIA_T_AUDIO, 0x0102030405060708ull, body,
                      sizeof body);
    assert_int_equal(n, PC_MEDIA_HDR_LEN + sizeof body + PC_MEDIA_TAG_LEN);
    /* the header in clear: version, type, direction, 0, sequence number big-endian */
    assert_int_equal(out[0], PC_MEDIA_VERSION);
    assert_int_equal(out[1], PC_MEDIA_T_AUDIO);
    assert_int_equal(out[2], 1);
    assert_int_equal(out[3], 0);
    assert_int_equal(out[4], 0x01);
    assert_int_equal(out[11], 0x08);
    /* the body is not in clear */
    assert_memory_not_equal(out + PC_MEDIA_HDR_LEN, body, 32);

    m = pc_media_open(back, sizeof back, key, out, (size_t)n, &dir, &type, &seq);
    assert_int_equal(m, sizeof body);
    assert_memory_equal(back, body, sizeof body);
    assert_int_equal(dir, 1);
    assert_int_equal(type, PC_MEDIA_T_AUDIO);
    assert_true(seq == 0x0102030405060708ull);
}

static void test_open_refuses(void **state)
{
    uint8_t body[40] = {0}, out[PC_MEDIA_PACKET_MAX], back[PC_MEDIA_PACKET_MAX];
    uint8_t other_key[PC_MEDIA_KEY_LEN];
    uint8_t dir, type;
    uint64_t seq;
    long n;

    (void)state;
    n = pc_media_seal(out, sizeof out, key, 0, PC_MEDIA_T_PING, 7, body, sizeof body);
    assert_true(n > 0);
    /* every byte matters: header (associated data), ciphertext and tag */
    for (long i = 0; i < n; i++) {
        out[i] ^= 0x40;
        assert_int_equal(pc_media_open(back, sizeof back, key, out, (size_t)n, &dir, &type, &seq),
                         -1);
        out[i] ^= 0x40;
    }
    assert_int_equal(pc_media_open(back, sizeof back, key, out, (size_t)n, &dir, &type, &seq),
                     sizeof body);
    /* another key */
    memcpy(other_key, key, sizeof key);
    other_key[0] ^= 1;
    assert_int_equal(pc_media_open(back, sizeof back, other_key, out, (size_t)n, &dir, &type, &seq),
                     -1);
    /* truncated, too short, body buffer too small */
    assert_int_equal(pc_media_open(back, sizeof back, key, out, (size_t)n - 1, &dir, &type, &seq),
                     -1);
    assert_int_equal(pc_media_open(back, sizeof back, key, out, PC_MEDIA_HDR_LEN + 15, &dir,
                                   &type, &seq), -1);
    assert_int_equal(pc_media_open(back, sizeof body - 1, key, out, (size_t)n, &dir, &type, &seq),
                     -1);
    /* the direction is in the nonce: relabelling a packet as the other direction fails even
     * with the header's direction byte rewritten (the tag covers it, and the nonce changes) */
    out[2] = 1;
    assert_int_equal(pc_media_open(back, sizeof back, key, out, (size_t)n, &dir, &type, &seq),
                     -1);
}

static void test_seal_limits(void **state)
{
    uint8_t body[PC_MEDIA_PACKET_MAX] = {0}, out[PC_MEDIA_PACKET_MAX + 64];
    size_t maxbody = PC_MEDIA_PACKET_MAX - PC_MEDIA_HDR_LEN - PC_MEDIA_TAG_LEN;

    (void)state;
    assert_int_equal(pc_media_seal(out, sizeof out, key, 0, PC_MEDIA_T_VIDEO, 1, body, maxbody),
                     PC_MEDIA_PACKET_MAX);
    assert_int_equal(pc_media_seal(out, sizeof out, key, 0, PC_MEDIA_T_VIDEO, 1, body,
                                   maxbody + 1), -1);
    assert_int_equal(pc_media_seal(out, 40, key, 0, PC_MEDIA_T_VIDEO, 1, body, 40), -1);
    assert_int_equal(pc_media_seal(out, sizeof out, key, 2, PC_MEDIA_T_VIDEO, 1, body, 4), -1);
    /* same sequence number, the two directions: different ciphertexts (no nonce reuse) */
    uint8_t a[64], b[64];
    assert_int_equal(pc_media_seal(a, sizeof a, key, 0, PC_MEDIA_T_PING, 5, body, 16), 44);
    assert_int_equal(pc_media_seal(b, sizeof b, key, 1, PC_MEDIA_T_PING, 5, body, 16), 44);
    assert_memory_not_equal(a + PC_MEDIA_HDR_LEN, b + PC_MEDIA_HDR_LEN, 32);
}

static void test_replay_in_order_and_dups(void **state)
{
    pc_media_replay w;

    (void)state;
    memset(&w, 0, sizeof w);
    for (uint64_t s = 0; s < 1000; s++) {
        assert_int_equal(pc_media_replay_check(&w, s), PC_MEDIA_REPLAY_OK);
        assert_int_equal(pc_media_replay_accept(&w, s), PC_MEDIA_REPLAY_OK);
        assert_int_equal(pc_media_replay_accept(&w, s), PC_MEDIA_REPLAY_DUP);
    }
    /* everything inside the window is a duplicate, the rest too old */
    for (uint64_t back = 0; back < PC_MEDIA_REPLAY_WINDOW; back++)
        assert_int_equal(pc_media_replay_check(&w, 999 - back), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_check(&w, 999 - PC_MEDIA_REPLAY_WINDOW),
                     PC_MEDIA_REPLAY_OLD);
    assert_int_equal(pc_media_replay_check(&w, 0), PC_MEDIA_REPLAY_OLD);
}

static void test_replay_reorder_and_jumps(void **state)
{
    pc_media_replay w;

    (void)state;
    memset(&w, 0, sizeof w);
    /* the first packet may start anywhere */
    assert_int_equal(pc_media_replay_accept(&w, 500), PC_MEDIA_REPLAY_OK);
    /* late arrivals inside the window are accepted once */
    assert_int_equal(pc_media_replay_accept(&w, 450), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_accept(&w, 450), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_accept(&w, 500 - (PC_MEDIA_REPLAY_WINDOW - 1)),
                     PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_accept(&w, 500 - PC_MEDIA_REPLAY_WINDOW),
                     PC_MEDIA_REPLAY_OLD);
    /* a jump of 70 (across a word boundary of the bitmap): the old marks move along */
    assert_int_equal(pc_media_replay_accept(&w, 570), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 500), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_check(&w, 501), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 450), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_check(&w, 449), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 570 - PC_MEDIA_REPLAY_WINDOW),
                     PC_MEDIA_REPLAY_OLD);
    /* a jump of exactly 64 */
    assert_int_equal(pc_media_replay_accept(&w, 634), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 570), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_check(&w, 571), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 634 - PC_MEDIA_REPLAY_WINDOW + 1),
                     PC_MEDIA_REPLAY_OK);
    /* a jump past the whole window forgets everything before */
    assert_int_equal(pc_media_replay_accept(&w, 10000), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 9999), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_check(&w, 634), PC_MEDIA_REPLAY_OLD);
    assert_int_equal(pc_media_replay_check(&w, 10000), PC_MEDIA_REPLAY_DUP);
    /* the very top of the number space */
    assert_int_equal(pc_media_replay_accept(&w, UINT64_MAX), PC_MEDIA_REPLAY_OK);
    assert_int_equal(pc_media_replay_accept(&w, UINT64_MAX), PC_MEDIA_REPLAY_DUP);
    assert_int_equal(pc_media_replay_accept(&w, UINT64_MAX - 1), PC_MEDIA_REPLAY_OK);
}

/* against a plain list of what was accepted: random order within a drifting range */
static void test_replay_model(void **state)
{
    enum { N = 4000 };
    static uint8_t seen[N + 512];
    pc_media_replay w;
    uint64_t top = 0;
    int any = 0;

    (void)state;
    memset(&w, 0, sizeof w);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 20000; i++) {
        uint64_t base = (uint64_t)(i / 5);
        uint64_t s = base + randombytes_uniform(300);
        int expect;
        if (s >= N)
            continue;
        if (any && s + PC_MEDIA_REPLAY_WINDOW <= top)
            expect = PC_MEDIA_REPLAY_OLD;
        else if (seen[s])
            expect = PC_MEDIA_REPLAY_DUP;
        else
            expect = PC_MEDIA_REPLAY_OK;
        assert_int_equal(pc_media_replay_accept(&w, s), expect);
        if (expect == PC_MEDIA_REPLAY_OK) {
            seen[s] = 1;
            if (!any || s > top)
                top = s;
            any = 1;
        }
    }
}

static void test_jitter(void **state)
{
    pc_media_jitter j;

    (void)state;
    /* constant transit: no jitter, whatever the clock offset */
    memset(&j, 0, sizeof j);
    for (int i = 0; i < 100; i++)
        pc_media_jitter_add(&j, 1000000 + i * 20000, 5000000 + i * 20000 + 300);
    assert_true(j.jitter_us == 0.0);

    /* RFC 3550: J(i) = J(i-1) + (|D| - J(i-1)) / 16 */
    memset(&j, 0, sizeof j);
    pc_media_jitter_add(&j, 0, 100);     /* first: no D yet */
    assert_true(j.jitter_us == 0.0);
    pc_media_jitter_add(&j, 20000, 20260); /* transit 260, D = 160 */
    assert_true(fabs(j.jitter_us - 10.0) < 1e-9);
    pc_media_jitter_add(&j, 40000, 40100); /* transit 100, D = -160 */
    assert_true(fabs(j.jitter_us - (10.0 + 150.0 / 16.0)) < 1e-9);

    /* alternating +-d converges to d */
    memset(&j, 0, sizeof j);
    for (int i = 0; i < 2000; i++)
        pc_media_jitter_add(&j, i * 20000, i * 20000 + ((i & 1) ? 1000 : 0));
    assert_true(fabs(j.jitter_us - 1000.0) < 1.0);
}

static void test_loss(void **state)
{
    uint64_t lost;
    double pct;

    (void)state;
    pc_media_loss(1000, 1000, &lost, &pct);
    assert_true(lost == 0 && pct == 0.0);
    pc_media_loss(1000, 990, &lost, &pct);
    assert_true(lost == 10 && fabs(pct - 1.0) < 1e-9);
    pc_media_loss(0, 0, &lost, &pct);
    assert_true(lost == 0 && pct == 0.0);
    /* more received than expected (a count that came short): no negative loss */
    pc_media_loss(10, 12, &lost, &pct);
    assert_true(lost == 0 && pct == 0.0);
    pc_media_loss(3, 0, &lost, &pct);
    assert_true(lost == 3 && fabs(pct - 100.0) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_open_refuses),
        cmocka_unit_test(test_seal_limits),
        cmocka_unit_test(test_replay_in_order_and_dups),
        cmocka_unit_test(test_replay_reorder_and_jumps),
        cmocka_unit_test(test_replay_model),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_loss),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
