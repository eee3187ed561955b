/* lt_pool.h: the device pool: who the simulated devices are (username, device id 1,
 * registration id, the seed of the Ed25519 signing key), kept in compact arrays in memory and
 * in a text file between runs, so a big pool is registered once.
 *
 * File (0600, replaced atomically through a temp file and rename): "#" comment lines, then
 * one device per line:  username device_id registration_id signing_seed_hex64 */
#ifndef LT_POOL_H
#define LT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "parley_client.h"

typedef struct {
    const char *path;
    uint32_t n, cap;   /* devices known */
    uint32_t loaded;   /* of them, read from the file */
    uint32_t file_lines; /* device lines in the file (may exceed what was loaded) */
    char *names;       /* NUL-terminated usernames back to back; owned */
    size_t names_len, names_cap;
    uint32_t *name_off;
    uint16_t *reg_id;
    uint8_t (*seed)[32];
} lt_pool;

/* Reads up to want devices of path (a missing file is an empty pool) and reserves room for
 * want. -1 with st set on a malformed file or out of memory. */
int lt_pool_load(lt_pool *p, const char *path, uint32_t want, pc_status *st);
/* Appends a registered device (name normalised; seed = first 32 bytes of its signing key). */
int lt_pool_add(lt_pool *p, const char *name, uint32_t reg_id, const uint8_t seed[32]);
/* Rewrites the file with every device in memory (only when the file had no more lines than
 * were loaded, so nothing in it is dropped). */
int lt_pool_save(const lt_pool *p, pc_status *st);
const char *lt_pool_name(const lt_pool *p, uint32_t i);
/* The identity device i authenticates with (derives the signing key from its seed). */
void lt_pool_identity(const lt_pool *p, uint32_t i, pc_identity *id);
/* Wipes the seeds and releases everything. */
void lt_pool_free(lt_pool *p);

#endif
