/* qr.h: a short text drawn as a QR code in the terminal (libqrencode), so a phone camera can
 * read what the screen shows (link codes, cli_link.h). */
#ifndef PC_QR_H
#define PC_QR_H

#include <stdio.h>

/* Draws text on out as a QR code (error correction level M), two module rows per line with
 * Unicode half blocks and a quiet zone of two modules; light modules are the drawn ones, so it
 * reads on a dark terminal as on paper. -1 when libqrencode cannot encode text (nothing is
 * drawn). */
int pc_qr_print(FILE *out, const char *text);

#endif
