/* lt_json.h: a small streaming JSON writer for the --json report (objects, arrays, numbers,
 * strings with escaping). Commas and nesting are tracked here; nesting is bounded. */
#ifndef LT_JSON_H
#define LT_JSON_H

#include <stdint.h>
#include <stdio.h>

#define LT_JSON_DEPTH 16

typedef struct {
    FILE *f;
    int depth;
    int count[LT_JSON_DEPTH]; /* members written at each level */
} lt_json;

void lt_json_init(lt_json *j, FILE *f);
/* key is NULL inside arrays and for the top-level value. */
void lt_json_obj(lt_json *j, const char *key);
void lt_json_arr(lt_json *j, const char *key);
void lt_json_end(lt_json *j, char close); /* '}' or ']' */
void lt_json_u64(lt_json *j, const char *key, uint64_t v);
void lt_json_i64(lt_json *j, const char *key, int64_t v);
void lt_json_num(lt_json *j, const char *key, double v); /* non-finite: null */
void lt_json_str(lt_json *j, const char *key, const char *s);
void lt_json_bool(lt_json *j, const char *key, int v);
void lt_json_null(lt_json *j, const char *key);

#endif
