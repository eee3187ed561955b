/* pgbin.c: decoding of PostgreSQL binary-format values (resultFormat 1). Every length is
 * checked against the value's size: a malformed value is an error, never a read past the
 * buffer. */
#include "pgbin.h"

#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT4 23

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

int ppgbin_i32(const char *v, int len, int32_t *out)
{
    if (!v || len != 4)
        return -1;
    *out = (int32_t)be32((const unsigned char *)v);
    return 0;
}

int ppgbin_i64(const char *v, int len, int64_t *out)
{
    if (!v || len != 8)
        return -1;
    *out = (int64_t)be64((const unsigned char *)v);
    return 0;
}

/* Walks the array header; on success *elems points at the first element and the return value
 * is the element count. */
static long array_head(const char *v, int len, uint32_t oid, const unsigned char **elems,
                       size_t max)
{
    const unsigned char *p = (const unsigned char *)v;
    if (!v || len < 12)
        return -1;
    uint32_t ndim = be32(p), elem_oid = be32(p + 8);
    if (elem_oid != oid)
        return -1;
    if (ndim == 0) {
        *elems = p + 12;
        return 0;
    }
    if (ndim != 1 || len < 20)
        return -1;
    uint32_t n = be32(p + 12);
    if (n > max)
        return -1;
    *elems = p + 20;
    return (long)n;
}

/* Next element: its data and length (-1 for NULL); advances *pos. */
static int array_elem(const char *v, int len, const unsigned char **pos,
                      const unsigned char **data, int32_t *elen)
{
    const unsigned char *end = (const unsigned char *)v + len;
    if (end - *pos < 4)
        return -1;
    *elen = (int32_t)be32(*pos);
    *pos += 4;
    if (*elen < 0) {
        *data = NULL;
        return 0;
    }
    if (end - *pos < *elen)
        return -1;
    *data = *pos;
    *pos += *elen;
    return 0;
}

long ppgbin_i32_array(const char *v, int len, uint32_t *out, size_t max)
{
    const unsigned char *pos, *data;
    int32_t elen;
    long n = array_head(v, len, OID_INT4, &pos, max);
    for (long i = 0; i < n; i++) {
        if (array_elem(v, len, &pos, &data, &elen) || elen != 4)
            return -1;
        out[i] = be32(data);
    }
    return n;
}

long ppgbin_i64_array(const char *v, int len, uint64_t *out, size_t max)
{
    const unsigned char *pos, *data;
    int32_t elen;
    long n = array_head(v, len, OID_INT8, &pos, max);
    for (long i = 0; i < n; i++) {
        if (array_elem(v, len, &pos, &data, &elen) || elen != 8)
            return -1;
        out[i] = be64(data);
    }
    return n;
}

long ppgbin_bytea_array(const char *v, int len, const char **out, size_t *lens, size_t max)
{
    const unsigned char *pos, *data;
    int32_t elen;
    long n = array_head(v, len, OID_BYTEA, &pos, max);
    for (long i = 0; i < n; i++) {
        if (array_elem(v, len, &pos, &data, &elen) || elen < 0)
            return -1;
        out[i] = (const char *)data;
        lens[i] = (size_t)elen;
    }
    return n;
}

static const char *cell(const PGresult *r, int row, int col, int want, int *len)
{
    if (!r || row < 0 || col < 0 || row >= PQntuples(r) || col >= PQnfields(r) ||
        PQgetisnull(r, row, col))
        return NULL;
    *len = PQgetlength(r, row, col);
    if (want >= 0 && *len != want)
        return NULL;
    return PQgetvalue(r, row, col);
}

int ppgbin_cell_i64(const PGresult *r, int row, int col, int64_t *out)
{
    int len;
    return ppgbin_i64(cell(r, row, col, 8, &len), 8, out);
}

int ppgbin_cell_i32(const PGresult *r, int row, int col, int32_t *out)
{
    int len;
    return ppgbin_i32(cell(r, row, col, 4, &len), 4, out);
}

int ppgbin_cell_bool(const PGresult *r, int row, int col, int *out)
{
    int len;
    const char *v = cell(r, row, col, 1, &len);
    if (!v)
        return -1;
    *out = v[0] != 0;
    return 0;
}

int ppgbin_cell_bytes(const PGresult *r, int row, int col, const uint8_t **p, size_t *len)
{
    int n;
    const char *v = cell(r, row, col, -1, &n);
    if (!v)
        return -1;
    *p = (const uint8_t *)v;
    *len = (size_t)n;
    return 0;
}
