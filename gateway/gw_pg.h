/* gw_pg.h: reading fields of binary-format PostgreSQL results (the gateway asks for binary
 * results so bytea comes back raw). Each getter returns 0, or -1 when the field is NULL or has
 * the wrong size. */
#ifndef PARLEY_GW_PG_H
#define PARLEY_GW_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

int gw_pg_i64(const PGresult *r, int row, int col, int64_t *out);
int gw_pg_i32(const PGresult *r, int row, int col, int32_t *out);
int gw_pg_bool(const PGresult *r, int row, int col, int *out);
/* *p points into r (valid while r lives). */
int gw_pg_bytes(const PGresult *r, int row, int col, const uint8_t **p, size_t *len);
/* SQLSTATE of a failed result, "" if none. */
const char *gw_pg_sqlstate(const PGresult *r);
/* One-line reason for logs: err, or the result's error message. */
const char *gw_pg_why(const PGresult *r, const char *err);

#endif
