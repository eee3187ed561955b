#include "gw_rx.h"

#include <stdlib.h>
#include <string.h>

/* Room for `need` bytes (need <= max): grows to at least double, bounded by max. A message of
 * several frames only announces its current frame, hence the doubling. */
static int gw_rx_reserve(gw_rx **rx, size_t need, size_t max)
{
    gw_rx *r = *rx;
    if (need <= r->cap)
        return 0;
    size_t cap = r->cap * 2 > need ? r->cap * 2 : need;
    if (cap > max)
        cap = max;
    gw_rx *n = realloc(r, sizeof *r + cap);
    if (!n)
        return -1;
    n->cap = cap;
    *rx = n;
    return 0;
}

/* Whether a message at len bytes, with remaining more of its current frame announced, is over
 * max already (without overflow). */
static int gw_rx_over(size_t len, size_t more, size_t remaining, size_t max)
{
    return more > max - len || remaining > max - len - more;
}

gw_rx_status gw_rx_piece(gw_rx **rx, const uint8_t *in, size_t len, int binary, int final,
                         size_t remaining, size_t max, const uint8_t **msg, size_t *msg_len,
                         int *msg_binary)
{
    *msg = NULL;
    *msg_len = 0;
    *msg_binary = 0;
    if (!*rx) {
        if (final && len <= max) {
            /* the common case: the whole message in one piece, used in place */
            *msg = in;
            *msg_len = len;
            *msg_binary = binary ? 1 : 0;
            return GW_RX_MESSAGE;
        }
        /* the first piece of several: room for the rest of this frame at once */
        size_t want = binary && !gw_rx_over(0, len, remaining, max) ? len + remaining : 0;
        gw_rx *r = malloc(sizeof *r + want);
        if (!r)
            return GW_RX_NOMEM;
        memset(r, 0, sizeof *r);
        r->cap = want;
        r->binary = binary ? 1 : 0;
        *rx = r;
    }
    gw_rx *r = *rx;
    gw_rx_status st = GW_RX_MORE;
    if (!r->skip) {
        if (gw_rx_over(r->len, len, remaining, max)) {
            /* over the limit, or announced to be: nothing more of it is kept */
            r->skip = 1;
            st = GW_RX_SKIP;
            if (r->cap) {
                gw_rx *n = realloc(r, sizeof *r);
                if (n) {
                    n->cap = 0;
                    *rx = r = n;
                }
            }
        } else if (!r->binary) {
            r->len += len; /* text is refused whole; only its size matters */
        } else {
            size_t need = r->len + len;
            if (gw_rx_reserve(rx, need + remaining, max) != 0) {
                gw_rx_end(rx);
                return GW_RX_NOMEM;
            }
            r = *rx;
            if (len)
                memcpy(r->data + r->len, in, len);
            r->len = need;
        }
    }
    if (!final)
        return st;
    if (r->skip)
        return GW_RX_TOO_LARGE;
    *msg = r->data;
    *msg_len = r->len;
    *msg_binary = r->binary;
    return GW_RX_MESSAGE;
}

void gw_rx_end(gw_rx **rx)
{
    free(*rx);
    *rx = NULL;
}
