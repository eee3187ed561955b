#include "gw_pg.h"

#include <string.h>

static uint64_t gw_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static const unsigned char *gw_field(const PGresult *r, int row, int col, int want)
{
    if (!r || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return NULL;
    if (want >= 0 && PQgetlength(r, row, col) != want)
        return NULL;
    return (const unsigned char *)PQgetvalue(r, row, col);
}

int gw_pg_i64(const PGresult *r, int row, int col, int64_t *out)
{
    const unsigned char *p = gw_field(r, row, col, 8);
    if (!p)
        return -1;
    *out = (int64_t)gw_be(p, 8);
    return 0;
}

int gw_pg_i32(const PGresult *r, int row, int col, int32_t *out)
{
    const unsigned char *p = gw_field(r, row, col, 4);
    if (!p)
        return -1;
    *out = (int32_t)(uint32_t)gw_be(p, 4);
    return 0;
}

int gw_pg_bool(const PGresult *r, int row, int col, int *out)
{
    const unsigned char *p = gw_field(r, row, col, 1);
    if (!p)
        return -1;
    *out = p[0] != 0;
    return 0;
}

int gw_pg_bytes(const PGresult *r, int row, int col, const uint8_t **p, size_t *len)
{
    const unsigned char *v = gw_field(r, row, col, -1);
    if (!v)
        return -1;
    *p = v;
    *len = (size_t)PQgetlength(r, row, col);
    return 0;
}

const char *gw_pg_sqlstate(const PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

const char *gw_pg_why(const PGresult *r, const char *err)
{
    if (err)
        return err;
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : "unknown error";
}
