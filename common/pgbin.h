/* pgbin.h: reading PostgreSQL binary-format results (the services ask for binary results so
 * bytea and integers come back raw). Values point into the PGresult and live as long as it.
 * Every function returns 0 (or a count), or -1 when the value is NULL, has the wrong size or
 * is malformed. */
#ifndef PARLEY_PGBIN_H
#define PARLEY_PGBIN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* One value, as PQgetvalue/PQgetlength give it. */
int ppgbin_i32(const char *v, int len, int32_t *out);
int ppgbin_i64(const char *v, int len, int64_t *out);
/* One-dimensional int4 / int8 arrays; NULL elements are errors. Returns the element count
 * (<= max), or -1 when malformed or longer than max. */
long ppgbin_i32_array(const char *v, int len, uint32_t *out, size_t max);
long ppgbin_i64_array(const char *v, int len, uint64_t *out, size_t max);
/* bytea[]: element i at out[i] (pointing into v) with length lens[i]. */
long ppgbin_bytea_array(const char *v, int len, const char **out, size_t *lens, size_t max);

/* One cell of a result. */
int ppgbin_cell_i64(const PGresult *r, int row, int col, int64_t *out);
int ppgbin_cell_i32(const PGresult *r, int row, int col, int32_t *out);
int ppgbin_cell_bool(const PGresult *r, int row, int col, int *out);
int ppgbin_cell_bytes(const PGresult *r, int row, int col, const uint8_t **p, size_t *len);

#endif
