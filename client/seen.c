#include "seen.h"

#include <stdlib.h>

int pc_seen_init(pc_seen *s, size_t cap)
{
    s->ring = calloc(cap ? cap : 1, sizeof *s->ring);
    s->cap = cap ? cap : 1;
    s->len = 0;
    s->head = 0;
    return s->ring ? 0 : -1;
}

void pc_seen_free(pc_seen *s)
{
    free(s->ring);
    s->ring = NULL;
    s->cap = s->len = s->head = 0;
}

int pc_seen_has(const pc_seen *s, uint64_t id)
{
    for (size_t i = 0; i < s->len; i++)
        if (s->ring[i] == id)
            return 1;
    return 0;
}

void pc_seen_add(pc_seen *s, uint64_t id)
{
    if (pc_seen_has(s, id))
        return;
    if (s->len < s->cap) {
        s->ring[(s->head + s->len) % s->cap] = id;
        s->len++;
        return;
    }
    s->ring[s->head] = id;
    s->head = (s->head + 1) % s->cap;
}

size_t pc_seen_count(const pc_seen *s)
{
    return s->len;
}

uint64_t pc_seen_at(const pc_seen *s, size_t i)
{
    return s->ring[(s->head + i) % s->cap];
}
