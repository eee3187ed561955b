/* test_gw_rx.c: reassembly of inbound WebSocket messages from lws pieces (gateway/gw_rx.c): a
 * whole message is used in place, pieces of one frame and of several frames come together in
 * one buffer that is gone after the message, oversized and text messages, the size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gw_rx.h"
#include "limits.h"

#define MAX PARLEY_MAX_FRAME_BYTES

static uint8_t *pattern(size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7 + i / 251);
    return b;
}

/* Feeds msg as frames of frame_len bytes, each handed over in pieces of at most piece bytes,
 * as lws does; returns the status of the last piece. */
static gw_rx_status feed(gw_rx **rx, const uint8_t *msg, size_t len, size_t frame_len,
                         size_t piece, int binary, size_t max, const uint8_t **out,
                         size_t *out_len, int *out_binary, int *skips)
{
    gw_rx_status st = GW_RX_MORE;
    size_t off = 0;
    *skips = 0;
    do {
        size_t fend = off + frame_len < len ? off + frame_len : len;
        do {
            size_t n = fend - off < piece ? fend - off : piece;
            int final = off + n == len;
            st = gw_rx_piece(rx, msg + off, n, binary, final, fend - off - n, max, out, out_len,
                             out_binary);
            if (st == GW_RX_SKIP)
                (*skips)++;
            off += n;
            if (!final)
                assert_true(st == GW_RX_MORE || st == GW_RX_SKIP);
        } while (off < fend);
    } while (off < len);
    return st;
}

static void test_whole_in_place(void **state)
{
    (void)state;
    gw_rx *rx = NULL;
    uint8_t buf[100];
    memset(buf, 5, sizeof buf);
    const uint8_t *m;
    size_t ml;
    int bin;
    assert_int_equal(gw_rx_piece(&rx, buf, sizeof buf, 1, 1, 0, MAX, &m, &ml, &bin),
                     GW_RX_MESSAGE);
    assert_ptr_equal(m, buf); /* no copy */
    assert_int_equal(ml, sizeof buf);
    assert_int_equal(bin, 1);
    assert_null(rx); /* and no buffer */
    gw_rx_end(&rx);
    /* an empty message */
    assert_int_equal(gw_rx_piece(&rx, buf, 0, 1, 1, 0, MAX, &m, &ml, &bin), GW_RX_MESSAGE);
    assert_int_equal(ml, 0);
    assert_null(rx);
}

static void test_pieces_of_one_frame(void **state)
{
    (void)state;
    size_t len = 200000;
    uint8_t *msg = pattern(len);
    gw_rx *rx = NULL;
    const uint8_t *m;
    size_t ml;
    int bin, skips;
    assert_int_equal(feed(&rx, msg, len, len, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_MESSAGE);
    assert_int_equal(skips, 0);
    assert_non_null(rx);
    /* sized once from the frame length lws announced */
    assert_int_equal(rx->cap, len);
    assert_int_equal(ml, len);
    assert_int_equal(bin, 1);
    assert_memory_equal(m, msg, len);
    gw_rx_end(&rx);
    assert_null(rx);
    free(msg);
}

static void test_many_frames(void **state)
{
    (void)state;
    /* a message fragmented into WebSocket frames of 1000 bytes (continuations), each in pieces
     * of 128 bytes: only the current frame's rest is known, the buffer grows */
    size_t len = 54321;
    uint8_t *msg = pattern(len);
    gw_rx *rx = NULL;
    const uint8_t *m;
    size_t ml;
    int bin, skips;
    assert_int_equal(feed(&rx, msg, len, 1000, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_MESSAGE);
    assert_int_equal(ml, len);
    assert_memory_equal(m, msg, len);
    assert_true(rx->cap >= len && rx->cap <= MAX);
    gw_rx_end(&rx);
    /* the next message starts afresh, here in one piece again */
    assert_int_equal(gw_rx_piece(&rx, msg, 10, 1, 1, 0, MAX, &m, &ml, &bin), GW_RX_MESSAGE);
    assert_ptr_equal(m, msg);
    free(msg);
}

static void test_limit(void **state)
{
    (void)state;
    uint8_t *msg = pattern(MAX + 1000);
    gw_rx *rx = NULL;
    const uint8_t *m;
    size_t ml;
    int bin, skips;
    /* exactly the limit, in pieces: accepted */
    assert_int_equal(feed(&rx, msg, MAX, 4096, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_MESSAGE);
    assert_int_equal(ml, MAX);
    assert_memory_equal(m, msg, MAX);
    gw_rx_end(&rx);
    /* one byte more, in the last piece: TOO_LARGE at once */
    assert_int_equal(feed(&rx, msg, MAX + 1, 4096, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_TOO_LARGE);
    assert_int_equal(skips, 0);
    assert_null(m);
    gw_rx_end(&rx);
    /* a last frame that goes over: discarded from then on to its end (one SKIP), TOO_LARGE */
    assert_int_equal(feed(&rx, msg, MAX + 200, 4096, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_TOO_LARGE);
    assert_int_equal(skips, 1);
    assert_int_equal(rx->cap, 0); /* what was kept is given back */
    gw_rx_end(&rx);
    /* far over it, announced by the first frame: skipped from the first piece on */
    assert_int_equal(feed(&rx, msg, MAX + 1000, MAX + 1000, 128, 1, MAX, &m, &ml, &bin, &skips),
                     GW_RX_TOO_LARGE);
    assert_int_equal(skips, 1);
    assert_true(rx->cap < 1024); /* nothing of it was kept */
    gw_rx_end(&rx);
    /* too large in one piece */
    assert_int_equal(gw_rx_piece(&rx, msg, MAX + 1, 1, 1, 0, MAX, &m, &ml, &bin),
                     GW_RX_TOO_LARGE);
    gw_rx_end(&rx);
    assert_null(rx);
    free(msg);
}

static void test_text(void **state)
{
    (void)state;
    uint8_t *msg = pattern(5000);
    gw_rx *rx = NULL;
    const uint8_t *m;
    size_t ml;
    int bin, skips;
    /* text is refused whole by the gateway: only its length matters, nothing is kept */
    assert_int_equal(feed(&rx, msg, 5000, 5000, 128, 0, MAX, &m, &ml, &bin, &skips),
                     GW_RX_MESSAGE);
    assert_int_equal(ml, 5000);
    assert_int_equal(bin, 0);
    assert_int_equal(rx->cap, 0);
    gw_rx_end(&rx);
    /* and a small one in place */
    assert_int_equal(gw_rx_piece(&rx, msg, 20, 0, 1, 0, MAX, &m, &ml, &bin), GW_RX_MESSAGE);
    assert_int_equal(bin, 0);
    assert_null(rx);
    free(msg);
}

static void test_empty_pieces(void **state)
{
    (void)state;
    uint8_t b[3] = {1, 2, 3};
    gw_rx *rx = NULL;
    const uint8_t *m;
    size_t ml;
    int bin;
    /* an empty first frame, then the data in a continuation */
    assert_int_equal(gw_rx_piece(&rx, b, 0, 1, 0, 0, MAX, &m, &ml, &bin), GW_RX_MORE);
    assert_non_null(rx);
    assert_int_equal(gw_rx_piece(&rx, b, 3, 1, 1, 0, MAX, &m, &ml, &bin), GW_RX_MESSAGE);
    assert_int_equal(ml, 3);
    assert_memory_equal(m, b, 3);
    gw_rx_end(&rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_in_place), cmocka_unit_test(test_pieces_of_one_frame),
        cmocka_unit_test(test_many_frames),    cmocka_unit_test(test_limit),
        cmocka_unit_test(test_text),           cmocka_unit_test(test_empty_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
