/* fingerprint.h: safety numbers, so two people can check out of band that they talk to each
 * other's accounts (the scheme of Signal's numeric fingerprints, over the account key: every
 * device of an account is in a device list that key signed, devtrust.h, so one number covers
 * every device, and linking or removing a device leaves it unchanged):
 *   per party: h = version (u16 big-endian) || account_pk || stable id;
 *              PC_FP_ITERATIONS times h = SHA-512(h || account_pk);
 *              30 digits: six 5-byte big-endian chunks of h, each mod 100000, 5 digits each
 *   safety number: the two parties' 30 digits, the smaller (as text) first: 60 digits that
 *              both sides compute alike, shown as 12 groups of 5. */
#ifndef PC_FINGERPRINT_H
#define PC_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#define PC_FP_VERSION 2   /* 1 was over one device's signing and identity keys */
#define PC_FP_ITERATIONS 5200
#define PC_FP_PARTY_DIGITS 30
#define PC_FP_DIGITS 60
/* 12 groups of 5 digits, 11 spaces, NUL */
#define PC_FP_FORMATTED_BYTES (PC_FP_DIGITS + 11 + 1)

/* One party's 30 digits (NUL-terminated) from its account key and stable id (the username). */
void pc_fp_party(const uint8_t account_pk[32], const char *id, size_t id_len,
                 char out[PC_FP_PARTY_DIGITS + 1]);
/* The 60-digit safety number (NUL-terminated) of two parties, the same whichever is local. */
void pc_fp_safety_number(const uint8_t a_account_pk[32], const char *a_id, size_t a_id_len,
                         const uint8_t b_account_pk[32], const char *b_id, size_t b_id_len,
                         char out[PC_FP_DIGITS + 1]);
/* "12345 67890 ..." from 60 digits. Returns 0, or -1 when digits is not 60 decimal digits. */
int pc_fp_format(const char *digits, char out[PC_FP_FORMATTED_BYTES]);

#endif
