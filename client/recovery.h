/* recovery.h: the account recovery kit: the account secret key, the account name and the
 * server URL, encrypted under a passphrase, as a small text file (docs/PROTOCOL.md, "Recovery
 * kit"):
 *   PARLEY-RECOVERY-KIT v1
 *   base64 (standard alphabet, padded, in lines of 64) of
 *     salt (16) || opslimit (u64 BE) || memlimit (u64 BE) || nonce (24) ||
 *     crypto_secretbox(account_sk (64) || name length (1) || name || URL length (u16 BE) || URL)
 * The key is crypto_pwhash Argon2id13 (32 bytes) of the passphrase with the salt and limits;
 * the limits are stored so that later kits can raise them. Also: reading a passphrase. */
#ifndef PC_RECOVERY_H
#define PC_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "status.h"

#define PC_RECOVERY_HEADER "PARLEY-RECOVERY-KIT v1"
#define PC_RECOVERY_URL_MAX 1024
/* a kit file is far smaller; bigger files are refused before reading */
#define PC_RECOVERY_FILE_MAX 8192
#define PC_RECOVERY_PASSPHRASE_MIN 12
#define PC_RECOVERY_PASSPHRASE_MAX 1024
/* limits a kit may ask for when it is opened: libsodium's SENSITIVE ones (a damaged or hostile
 * kit must not make us allocate without bound) */
#define PC_RECOVERY_OPSLIMIT_MAX 4ULL
#define PC_RECOVERY_MEMLIMIT_MAX (1024ULL * 1024 * 1024)

typedef struct {
    uint8_t account_sk[64];                 /* Ed25519, libsodium's form (public half inside) */
    char account[PARLEY_NAME_MAX + 1];      /* normalised */
    char server[PC_RECOVERY_URL_MAX + 1];
} pc_recovery_secret;

/* The kit text of s under pass (Argon2id13 MODERATE limits) into a new NUL-terminated buffer
 * *out (caller frees). PC_ERR_LOCAL when pass is shorter than PC_RECOVERY_PASSPHRASE_MIN, a
 * field is too long, or memory ran out. */
int pc_recovery_kit_make(const pc_recovery_secret *s, const char *pass, char **out,
                         pc_status *st);
/* As pc_recovery_kit_make with the given limits (tests use libsodium's MIN ones). */
int pc_recovery_kit_make_with(const pc_recovery_secret *s, const char *pass,
                              unsigned long long opslimit, size_t memlimit, char **out,
                              pc_status *st);
/* Opens a kit's text (len bytes). PC_ERR_CRYPTO "wrong passphrase or damaged kit" when it does
 * not decrypt; PC_ERR_LOCAL when it is not a kit at all. The caller wipes *out. */
int pc_recovery_kit_open(const char *text, size_t len, const char *pass, pc_recovery_secret *out,
                         pc_status *st);
void pc_recovery_secret_wipe(pc_recovery_secret *s);

/* Writes a kit's text to a new file at path, mode 0600; refuses to overwrite an existing one
 * (PC_ERR_LOCAL "PATH exists"). On a failure no file is left. */
int pc_recovery_kit_write(const char *path, const char *text, pc_status *st);
/* Reads a kit file (at most PC_RECOVERY_FILE_MAX bytes) into a new NUL-terminated buffer
 * (caller frees). */
int pc_recovery_kit_read(const char *path, char **out, size_t *len, pc_status *st);

/* A passphrase into buf (cap bytes, NUL terminated): the environment variable
 * PARLEY_PASSPHRASE when set, else read from the terminal (/dev/tty) without echo, asking twice
 * when confirm is set. PC_ERR_LOCAL when there is no terminal, the two differ, or it is shorter
 * than PC_RECOVERY_PASSPHRASE_MIN characters. */
int pc_recovery_passphrase(int confirm, char *buf, size_t cap, pc_status *st);

#endif
