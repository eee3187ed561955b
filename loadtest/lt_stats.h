/* lt_stats.h: counters by reason (connect failures, rejections, retries: a small table of
 * named counts keeping the first message seen for each) and the per-second timeline. */
#ifndef LT_STATS_H
#define LT_STATS_H

#include <stddef.h>
#include <stdint.h>

#define LT_REASONS_MAX 24
#define LT_REASON_NAME 40
#define LT_REASON_MSG 120

typedef struct {
    char name[LT_REASON_NAME];
    char example[LT_REASON_MSG]; /* the first message of this kind, for the summary */
    uint64_t n;
} lt_reason;

typedef struct {
    lt_reason r[LT_REASONS_MAX];
    unsigned n;
    uint64_t total;
} lt_reasons;

/* Counts k under name (the last slot collects "other" when the table is full); example may be
 * NULL. */
void lt_reasons_add(lt_reasons *t, const char *name, const char *example, uint64_t k);

/* One second of the run. */
typedef struct {
    uint32_t sent, accepted, delivered, up;
} lt_second;

typedef struct {
    lt_second *v;
    size_t n, cap;
} lt_timeline;

/* The entry of second sec (grown and zero-filled as needed), or NULL when out of memory. */
lt_second *lt_timeline_at(lt_timeline *t, size_t sec);
void lt_timeline_free(lt_timeline *t);

#endif
