/* home.h: the home folder of one device (default ~/.parley, `--home DIR`): folder mode 0700,
 * files 0600, every file replaced atomically (temp file, fsync, rename, fsync folder) so a
 * crash leaves the old or the new version, never a torn one.
 *   DIR/identity  server URL, username, device id, keys (name=value lines; secret)
 *   DIR/seen      recently handled envelope ids, oldest first, one per line */
#ifndef PC_HOME_H
#define PC_HOME_H

#include <stddef.h>

#include "keys.h"
#include "seen.h"
#include "status.h"

/* Envelope ids remembered for duplicate dropping: a full device queue's worth, so a complete
 * redelivery of the queue is still recognised. */
#define PC_HOME_SEEN_IDS PARLEY_QUEUE_MAX_DEFAULT

typedef struct {
    char *dir;          /* owned */
    int created;        /* pc_home_open made the folder */
    char *server;       /* owned; NULL until known */
    int has_identity;
    pc_identity id;
} pc_home;

/* The default folder, $HOME/.parley, as a new string (caller frees), or NULL. */
char *pc_home_default_dir(void);
/* Sets up h for dir (copied). create: make the folder (mode 0700) if missing. */
int pc_home_open(pc_home *h, const char *dir, int create, pc_status *st);
void pc_home_free(pc_home *h);
/* Removes the folder if pc_home_open created it and it is still empty (a failed register). */
void pc_home_discard(pc_home *h);

/* Reads DIR/identity; PC_ERR_LOCAL with a "run register" hint when there is none. */
int pc_home_load(pc_home *h, pc_status *st);
/* Writes DIR/identity from h (server, id). */
int pc_home_save(const pc_home *h, pc_status *st);
/* 1 when DIR/identity exists. */
int pc_home_exists(const pc_home *h);

/* DIR/seen into s (initialised by the caller); a missing file is an empty set. */
int pc_home_load_seen(const pc_home *h, pc_seen *s, pc_status *st);
int pc_home_save_seen(const pc_home *h, const pc_seen *s, pc_status *st);

/* Replaces path with data atomically, mode 0600. On failure the old file is untouched and no
 * temporary file is left behind. */
int pc_home_write_atomic(const char *path, const void *data, size_t len, pc_status *st);
/* Reads a whole file of at most max bytes into a new NUL-terminated buffer (caller frees);
 * -1 with errno set (EFBIG when larger than max). */
int pc_home_read_file(const char *path, size_t max, char **out, size_t *out_len);

#endif
