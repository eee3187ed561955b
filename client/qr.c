/* qr.c: QR codes in the terminal (qr.h). */
#include "qr.h"

#include <qrencode.h>

#define QUIET_MODULES 2

/* 1 when the module at x, y is light; the quiet zone around the code is light */
static int light(const QRcode *q, int x, int y)
{
    return y < 0 || y >= q->width || x < 0 || x >= q->width || !(q->data[y * q->width + x] & 1);
}

int pc_qr_print(FILE *out, const char *text)
{
    /* index: top module light (1) | bottom module light (2) */
    static const char *cell[4] = { " ", "\xe2\x96\x80", "\xe2\x96\x84", "\xe2\x96\x88" };
    QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);

    if (!q)
        return -1;
    for (int y = -QUIET_MODULES; y < q->width + QUIET_MODULES; y += 2) {
        for (int x = -QUIET_MODULES; x < q->width + QUIET_MODULES; x++)
            fputs(cell[light(q, x, y) | light(q, x, y + 1) << 1], out);
        fputc('\n', out);
    }
    QRcode_free(q);
    return 0;
}
