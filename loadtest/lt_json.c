#include "lt_json.h"

#include <math.h>

void lt_json_init(lt_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
}

static void lt_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void lt_json_key(lt_json *j, const char *key)
{
    if (j->count[j->depth]++)
        fputc(',', j->f);
    if (key) {
        lt_json_string(j->f, key);
        fputc(':', j->f);
    }
}

static void lt_json_open(lt_json *j, const char *key, char c)
{
    lt_json_key(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < LT_JSON_DEPTH)
        j->depth++;
    j->count[j->depth] = 0;
}

void lt_json_obj(lt_json *j, const char *key)
{
    lt_json_open(j, key, '{');
}

void lt_json_arr(lt_json *j, const char *key)
{
    lt_json_open(j, key, '[');
}

void lt_json_end(lt_json *j, char close)
{
    fputc(close, j->f);
    if (j->depth > 0)
        j->depth--;
    if (!j->depth)
        fputc('\n', j->f);
}

void lt_json_u64(lt_json *j, const char *key, uint64_t v)
{
    lt_json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void lt_json_i64(lt_json *j, const char *key, int64_t v)
{
    lt_json_key(j, key);
    fprintf(j->f, "%lld", (long long)v);
}

void lt_json_num(lt_json *j, const char *key, double v)
{
    lt_json_key(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.6g", v);
    else
        fputs("null", j->f);
}

void lt_json_str(lt_json *j, const char *key, const char *s)
{
    lt_json_key(j, key);
    if (s)
        lt_json_string(j->f, s);
    else
        fputs("null", j->f);
}

void lt_json_bool(lt_json *j, const char *key, int v)
{
    lt_json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void lt_json_null(lt_json *j, const char *key)
{
    lt_json_key(j, key);
    fputs("null", j->f);
}
