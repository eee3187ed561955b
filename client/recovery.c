/* recovery.c: the recovery kit format and passphrases (recovery.h). */
#include "recovery.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define SALT_BYTES crypto_pwhash_SALTBYTES
#define NONCE_BYTES crypto_secretbox_NONCEBYTES
#define HEAD_BYTES (SALT_BYTES + 8 + 8 + NONCE_BYTES)
/* account_sk || name length || name || URL length (2) || URL */
#define PLAIN_MAX (64 + 1 + PARLEY_NAME_MAX + 2 + PC_RECOVERY_URL_MAX)
#define BLOB_MAX (HEAD_BYTES + crypto_secretbox_MACBYTES + PLAIN_MAX)
#define B64_LINE 64

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t pass_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int derive(uint8_t key[crypto_secretbox_KEYBYTES], const char *pass, const uint8_t *salt,
                  unsigned long long ops, size_t mem, pc_status *st)
{
    if (crypto_pwhash(key, crypto_secretbox_KEYBYTES, pass, strlen(pass), salt, ops, mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "cannot derive the kit key (out of memory for Argon2id?)");
    return 0;
}

int pc_recovery_kit_make_with(const pc_recovery_secret *s, const char *pass,
                              unsigned long long opslimit, size_t memlimit, char **out,
                              pc_status *st)
{
    uint8_t plain[PLAIN_MAX], blob[BLOB_MAX], key[crypto_secretbox_KEYBYTES];
    size_t nlen = strlen(s->account), ulen = strlen(s->server), plen = 0, blen, b64len, total;
    char *b64 = NULL, *text;
    int rc = -1;

    *out = NULL;
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (pass_chars(pass) < PC_RECOVERY_PASSPHRASE_MIN)
        return pc_status_set(st, PC_ERR_LOCAL, "the passphrase must have at least %d characters",
                             PC_RECOVERY_PASSPHRASE_MIN);
    if (nlen == 0 || nlen > PARLEY_NAME_MAX || ulen > PC_RECOVERY_URL_MAX)
        return pc_status_set(st, PC_ERR_LOCAL, "account name or server URL too long for a kit");
    memcpy(plain, s->account_sk, 64);
    plen = 64;
    plain[plen++] = (uint8_t)nlen;
    memcpy(plain + plen, s->account, nlen);
    plen += nlen;
    plain[plen++] = (uint8_t)(ulen >> 8);
    plain[plen++] = (uint8_t)ulen;
    memcpy(plain + plen, s->server, ulen);
    plen += ulen;

    randombytes_buf(blob, SALT_BYTES);
    put_u64(blob + SALT_BYTES, opslimit);
    put_u64(blob + SALT_BYTES + 8, memlimit);
    randombytes_buf(blob + SALT_BYTES + 16, NONCE_BYTES);
    if (derive(key, pass, blob, opslimit, memlimit, st) < 0)
        goto out;
    crypto_secretbox_easy(blob + HEAD_BYTES, plain, plen, blob + SALT_BYTES + 16, key);
    blen = HEAD_BYTES + crypto_secretbox_MACBYTES + plen;

    b64len = sodium_base64_encoded_len(blen, sodium_base64_VARIANT_ORIGINAL);
    b64 = malloc(b64len);
    /* header line, the base64 in lines, a newline after each */
    total = sizeof PC_RECOVERY_HEADER + b64len + b64len / B64_LINE + 2;
    text = b64 ? malloc(total) : NULL;
    if (!text) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        goto out;
    }
    sodium_bin2base64(b64, b64len, blob, blen, sodium_base64_VARIANT_ORIGINAL);
    {
        size_t o = (size_t)snprintf(text, total, "%s\n", PC_RECOVERY_HEADER), n = strlen(b64);

        for (size_t i = 0; i < n; i += B64_LINE) {
            size_t k = n - i < B64_LINE ? n - i : B64_LINE;
            memcpy(text + o, b64 + i, k);
            o += k;
            text[o++] = '\n';
        }
        text[o] = '\0';
    }
    *out = text;
    rc = 0;
out:
    free(b64);
    sodium_memzero(plain, sizeof plain);
    sodium_memzero(key, sizeof key);
    return rc;
}

int pc_recovery_kit_make(const pc_recovery_secret *s, const char *pass, char **out,
                         pc_status *st)
{
    return pc_recovery_kit_make_with(s, pass, crypto_pwhash_OPSLIMIT_MODERATE,
                                     crypto_pwhash_MEMLIMIT_MODERATE, out, st);
}

static int damaged(pc_status *st)
{
    return pc_status_set(st, PC_ERR_CRYPTO, "wrong passphrase or damaged kit");
}

int pc_recovery_kit_open(const char *text, size_t len, const char *pass, pc_recovery_secret *out,
                         pc_status *st)
{
    const size_t hl = sizeof PC_RECOVERY_HEADER - 1;
    uint8_t blob[BLOB_MAX], plain[PLAIN_MAX], key[crypto_secretbox_KEYBYTES];
    size_t blen, plen, o, nlen, ulen;
    uint64_t ops, mem;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (sodium_init() < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "libsodium failed to initialise");
    if (len < hl || memcmp(text, PC_RECOVERY_HEADER, hl) != 0 ||
        (len > hl && text[hl] != '\n' && text[hl] != '\r'))
        return pc_status_set(st, PC_ERR_LOCAL, "not a Parley recovery kit (version 1)");
    if (sodium_base642bin(blob, sizeof blob, text + hl, len - hl, " \t\r\n", &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        blen < HEAD_BYTES + crypto_secretbox_MACBYTES + 64 + 1 + 2)
        return damaged(st);
    ops = get_u64(blob + SALT_BYTES);
    mem = get_u64(blob + SALT_BYTES + 8);
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > PC_RECOVERY_OPSLIMIT_MAX ||
        mem < crypto_pwhash_MEMLIMIT_MIN || mem > PC_RECOVERY_MEMLIMIT_MAX)
        return damaged(st);
    if (derive(key, pass, blob, (unsigned long long)ops, (size_t)mem, st) < 0)
        goto out;
    plen = blen - HEAD_BYTES - crypto_secretbox_MACBYTES;
    if (crypto_secretbox_open_easy(plain, blob + HEAD_BYTES, blen - HEAD_BYTES,
                                   blob + SALT_BYTES + 16, key) != 0) {
        damaged(st);
        goto out;
    }
    o = 64;
    nlen = plain[o++];
    if (nlen == 0 || nlen > PARLEY_NAME_MAX || o + nlen + 2 > plen) {
        damaged(st);
        goto out;
    }
    memcpy(out->account, plain + o, nlen);
    out->account[nlen] = '\0';
    o += nlen;
    ulen = (size_t)plain[o] << 8 | plain[o + 1];
    o += 2;
    if (ulen > PC_RECOVERY_URL_MAX || o + ulen != plen || memchr(plain + o, '\0', ulen) ||
        memchr(out->account, '\0', nlen)) {
        damaged(st);
        goto out;
    }
    memcpy(out->server, plain + o, ulen);
    out->server[ulen] = '\0';
    memcpy(out->account_sk, plain, 64);
    rc = 0;
out:
    if (rc < 0)
        pc_recovery_secret_wipe(out);
    sodium_memzero(plain, sizeof plain);
    sodium_memzero(key, sizeof key);
    return rc;
}

void pc_recovery_secret_wipe(pc_recovery_secret *s)
{
    sodium_memzero(s, sizeof *s);
}

/* One line from the terminal without echo into buf; 0 or -1. */
static int read_tty(const char *prompt, char *buf, size_t cap, pc_status *st)
{
    struct termios old, quiet;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), echo_off = 0, rc = -1;
    size_t n = 0;

    if (fd < 0)
        return pc_status_set(st, PC_ERR_LOCAL,
                             "no terminal to read the passphrase from: set PARLEY_PASSPHRASE");
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        echo_off = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* the prompt is a courtesy: reading still works */
    }
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n')
            break;
        if (n + 1 >= cap) {
            pc_status_set(st, PC_ERR_LOCAL, "passphrase too long");
            goto out;
        }
        buf[n++] = c;
    }
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    rc = 0;
out:
    if (echo_off)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
        /* as above */
    }
    close(fd);
    return rc;
}

int pc_recovery_passphrase(int confirm, char *buf, size_t cap, pc_status *st)
{
    const char *env = getenv("PARLEY_PASSPHRASE");
    char again[PC_RECOVERY_PASSPHRASE_MAX + 1];
    int rc = 0;

    if (env) {
        if (strlen(env) + 1 > cap)
            return pc_status_set(st, PC_ERR_LOCAL, "passphrase too long");
        memcpy(buf, env, strlen(env) + 1);
    } else {
        if (read_tty("recovery kit passphrase: ", buf, cap, st) < 0)
            return -1;
        if (confirm) {
            rc = read_tty("again: ", again, sizeof again, st);
            if (rc == 0 && strcmp(buf, again) != 0)
                rc = pc_status_set(st, PC_ERR_LOCAL, "the two passphrases differ");
            sodium_memzero(again, sizeof again);
        }
    }
    if (rc == 0 && pass_chars(buf) < PC_RECOVERY_PASSPHRASE_MIN)
        rc = pc_status_set(st, PC_ERR_LOCAL, "the passphrase must have at least %d characters",
                           PC_RECOVERY_PASSPHRASE_MIN);
    if (rc < 0)
        sodium_memzero(buf, cap);
    return rc;
}

int pc_recovery_kit_write(const char *path, const char *text, pc_status *st)
{
    size_t len = strlen(text), done = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0) {
        if (errno == EEXIST)
            return pc_status_set(st, PC_ERR_LOCAL, "%s exists: not overwriting it", path);
        return pc_status_set(st, PC_ERR_LOCAL, "cannot create %s: %s", path, strerror(errno));
    }
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break;
        done += (size_t)w;
    }
    if (done < len || fsync(fd) != 0) {
        pc_status_set(st, PC_ERR_LOCAL, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    if (close(fd) != 0) {
        pc_status_set(st, PC_ERR_LOCAL, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

int pc_recovery_kit_read(const char *path, char **out, size_t *len, pc_status *st)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    *out = NULL;
    if (!f)
        return pc_status_set(st, PC_ERR_LOCAL, "cannot open %s: %s", path, strerror(errno));
    buf = malloc(PC_RECOVERY_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    n = fread(buf, 1, PC_RECOVERY_FILE_MAX + 1, f);
    if (ferror(f) || n > PC_RECOVERY_FILE_MAX) {
        int big = !ferror(f);
        fclose(f);
        free(buf);
        return pc_status_set(st, PC_ERR_LOCAL, big ? "%s is too big for a recovery kit"
                                                   : "cannot read %s", path);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}
