#include "home.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "kv.h"

#define IDENTITY_FILE "identity"
#define SEEN_FILE "seen"
/* The identity file: a few short lines plus hex keys; anything bigger is not ours. */
#define IDENTITY_BYTES_MAX 8192
/* one decimal id and a newline per remembered envelope id */
#define SEEN_BYTES_MAX ((size_t)PC_HOME_SEEN_IDS * 21 + 64)

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* mkdir -p of the folders above dir (ordinary modes: only the home itself is private). */
static int make_parents(const char *dir)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -1;
    for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            rc = -1;
            break;
        }
        *s = '/';
    }
    free(p);
    return rc;
}

char *pc_home_default_dir(void)
{
    const char *home = getenv("HOME");

    if (!home || !*home)
        return NULL;
    return join(home, ".parley");
}

int pc_home_open(pc_home *h, const char *dir, int create, pc_status *st)
{
    struct stat sb;

    memset(h, 0, sizeof *h);
    h->dir = strdup(dir);
    if (!h->dir)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return pc_status_set(st, PC_ERR_LOCAL, "home %s is not a folder", dir);
        return 0;
    }
    if (errno == ENOENT && !create)
        return pc_status_set(st, PC_ERR_LOCAL, "no account in %s (run `parley register` first)",
                             dir);
    if (errno != ENOENT)
        return pc_status_set(st, PC_ERR_LOCAL, "home %s: %s", dir, strerror(errno));
    if (make_parents(dir) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return pc_status_set(st, PC_ERR_LOCAL, "cannot create home %s: %s", dir,
                             strerror(errno));
    h->created = 1;
    /* mkdir's mode is filtered by the umask; the keys folder must be exactly owner-only */
    if (chmod(dir, 0700) < 0)
        return pc_status_set(st, PC_ERR_LOCAL, "chmod %s: %s", dir, strerror(errno));
    return 0;
}

void pc_home_free(pc_home *h)
{
    free(h->dir);
    free(h->server);
    pc_keys_wipe(&h->id.keys);
    memset(h, 0, sizeof *h);
}

void pc_home_discard(pc_home *h)
{
    if (h->created && h->dir)
        (void)rmdir(h->dir); /* fails, as it should, when anything is inside */
}

int pc_home_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    /* one allocation of the file's size: a growing buffer would leave copies of secret keys
     * behind in freed memory, and a huge file must not be read at all */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *buf;
    size_t len = 0, cap;
    int e;

    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) != 0)
        goto fail;
    if (sb.st_size < 0 || (unsigned long long)sb.st_size > max) {
        errno = EFBIG;
        goto fail;
    }
    cap = (size_t)sb.st_size;
    if (!(buf = malloc(cap + 1))) {
        errno = ENOMEM;
        goto fail;
    }
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            sodium_memzero(buf, cap);
            free(buf);
            errno = e;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    if (out_len)
        *out_len = len;
    return 0;
fail:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fsync_dir_of(const char *path)
{
    char *dir = strdup(path);
    char *slash;
    int fd;

    if (!dir)
        return;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        /* best effort: the rename is already visible; this only hardens it against power loss */
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int pc_home_write_atomic(const char *path, const void *data, size_t len, pc_status *st)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    int fd, e;

    if (!tmp)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
        pc_status_set(st, PC_ERR_LOCAL, "cannot write %s: %s", tmp, strerror(e));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, 0600) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        pc_status_set(st, PC_ERR_LOCAL, "cannot write %s: %s", path, strerror(e));
        free(tmp);
        return -1;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        e = errno;
        unlink(tmp);
        pc_status_set(st, PC_ERR_LOCAL, "cannot replace %s: %s", path, strerror(e));
        free(tmp);
        return -1;
    }
    free(tmp);
    fsync_dir_of(path);
    return 0;
}

int pc_home_exists(const pc_home *h)
{
    char *p = join(h->dir, IDENTITY_FILE);
    int ok = p && access(p, F_OK) == 0;

    free(p);
    return ok;
}

int pc_home_load(pc_home *h, pc_status *st)
{
    char *path = join(h->dir, IDENTITY_FILE);
    char *text = NULL;
    char val[1024];
    size_t len = 0;
    char *end;
    unsigned long dev;
    int rc = -1;

    if (!path)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (pc_home_read_file(path, IDENTITY_BYTES_MAX, &text, &len) < 0) {
        if (errno == ENOENT)
            pc_status_set(st, PC_ERR_LOCAL, "no account in %s (run `parley register` first)",
                          h->dir);
        else
            pc_status_set(st, PC_ERR_LOCAL, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (pc_kv_get(text, "username", val, sizeof val) < 0 ||
        pauth_name_normalize(val, h->id.username) < 0) {
        pc_status_set(st, PC_ERR_LOCAL, "%s: username missing or invalid", path);
        goto out;
    }
    if (pc_kv_get(text, "device_id", val, sizeof val) < 0 ||
        (dev = strtoul(val, &end, 10), *end) || dev < 1 || dev > UINT32_MAX) {
        pc_status_set(st, PC_ERR_LOCAL, "%s: device_id missing or invalid", path);
        goto out;
    }
    h->id.device_id = (uint32_t)dev;
    if (pc_keys_parse(&h->id.keys, text, st) < 0) {
        char inner[PC_STATUS_MSG_MAX];
        snprintf(inner, sizeof inner, "%s", st->msg);
        pc_status_set(st, PC_ERR_LOCAL, "%s: %s", path, inner);
        goto out;
    }
    if (pc_kv_get(text, "server", val, sizeof val) == 0 && val[0]) {
        free(h->server);
        h->server = strdup(val);
        if (!h->server) {
            pc_status_set(st, PC_ERR_LOCAL, "out of memory");
            goto out;
        }
    }
    h->has_identity = 1;
    rc = 0;
out:
    if (text) {
        sodium_memzero(text, len);
        free(text);
    }
    free(path);
    return rc;
}

int pc_home_save(const pc_home *h, pc_status *st)
{
    char buf[IDENTITY_BYTES_MAX];
    char *path;
    int n, rc;

    n = snprintf(buf, sizeof buf,
                 "# parley device identity: secret keys, keep private\n"
                 "version=1\nserver=%s\nusername=%s\ndevice_id=%u\n",
                 h->server ? h->server : "", h->id.username, (unsigned)h->id.device_id);
    if (n < 0 || (size_t)n >= sizeof buf ||
        (n = pc_keys_format(&h->id.keys, buf, sizeof buf, (size_t)n)) < 0) {
        sodium_memzero(buf, sizeof buf); /* may hold part of the secret keys */
        return pc_status_set(st, PC_ERR_LOCAL, "identity does not fit its file");
    }
    path = join(h->dir, IDENTITY_FILE);
    if (!path) {
        sodium_memzero(buf, sizeof buf);
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    }
    rc = pc_home_write_atomic(path, buf, (size_t)n, st);
    sodium_memzero(buf, sizeof buf);
    free(path);
    return rc;
}

int pc_home_load_seen(const pc_home *h, pc_seen *s, pc_status *st)
{
    char *path = join(h->dir, SEEN_FILE);
    char *text = NULL, *p;

    if (!path)
        return pc_status_set(st, PC_ERR_LOCAL, "out of memory");
    if (pc_home_read_file(path, SEEN_BYTES_MAX, &text, NULL) < 0) {
        int e = errno;
        free(path);
        if (e == ENOENT)
            return 0;
        return pc_status_set(st, PC_ERR_LOCAL, "cannot read %s/%s: %s", h->dir, SEEN_FILE,
                             strerror(e));
    }
    for (p = text; *p;) {
        char *end;
        uint64_t id = strtoull(p, &end, 10);
        if (end != p && id)
            pc_seen_add(s, id);
        p = end + strcspn(end, "\n");
        if (*p)
            p++;
    }
    free(text);
    free(path);
    return 0;
}

int pc_home_save_seen(const pc_home *h, const pc_seen *s, pc_status *st)
{
    size_t n = pc_seen_count(s), len = 0;
    char *buf = malloc(n * 21 + 1);
    char *path = join(h->dir, SEEN_FILE);
    int rc = -1;

    if (!buf || !path) {
        pc_status_set(st, PC_ERR_LOCAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "%" PRIu64 "\n", pc_seen_at(s, i));
    rc = pc_home_write_atomic(path, buf, len, st);
out:
    free(buf);
    free(path);
    return rc;
}
