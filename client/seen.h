/* seen.h: the bounded set of envelope ids a device has already handled, so that redelivered
 * envelopes (delivery is at-least-once) are dropped. When full, the oldest id is forgotten.
 * Lookups scan the ring (cap is a few thousand ids at most: cheaper than a hash's upkeep). */
#ifndef PC_SEEN_H
#define PC_SEEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *ring; /* owned */
    size_t cap;     /* ids kept */
    size_t len;
    size_t head;    /* index of the oldest id */
} pc_seen;

/* Returns 0 or -1 (out of memory). cap must be at least 1. */
int pc_seen_init(pc_seen *s, size_t cap);
void pc_seen_free(pc_seen *s);
int pc_seen_has(const pc_seen *s, uint64_t id);
/* Adds id (no-op if present), forgetting the oldest id when full. */
void pc_seen_add(pc_seen *s, uint64_t id);
size_t pc_seen_count(const pc_seen *s);
/* The i-th id, oldest first (i < pc_seen_count). */
uint64_t pc_seen_at(const pc_seen *s, size_t i);

#endif
