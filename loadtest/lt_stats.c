#include "lt_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lt_reasons_add(lt_reasons *t, const char *name, const char *example, uint64_t k)
{
    lt_reason *r = NULL;

    for (unsigned i = 0; i < t->n; i++)
        if (!strcmp(t->r[i].name, name)) {
            r = &t->r[i];
            break;
        }
    if (!r) {
        if (t->n < LT_REASONS_MAX - 1) {
            r = &t->r[t->n++];
        } else {
            r = &t->r[LT_REASONS_MAX - 1];
            name = "other";
            t->n = LT_REASONS_MAX;
        }
        if (!r->name[0]) {
            snprintf(r->name, sizeof r->name, "%s", name);
            if (example)
                snprintf(r->example, sizeof r->example, "%s", example);
        }
    }
    r->n += k;
    t->total += k;
}

lt_second *lt_timeline_at(lt_timeline *t, size_t sec)
{
    if (sec >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        lt_second *nv;
        while (cap <= sec)
            cap *= 2;
        nv = realloc(t->v, cap * sizeof *nv);
        if (!nv)
            return NULL;
        memset(nv + t->cap, 0, (cap - t->cap) * sizeof *nv);
        t->v = nv;
        t->cap = cap;
    }
    if (sec >= t->n)
        t->n = sec + 1;
    return &t->v[sec];
}

void lt_timeline_free(lt_timeline *t)
{
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}
