/* readplan.c: which shards the next XREADGROUP of a fanout asks for, and how much. Free lanes
 * whose shard has pending entries of ours are read first and alone, because a read of pending
 * entries ("0") never blocks; otherwise every free lane is read for new entries (">"). The
 * entries not yet held are shared equally among the shards read. With every lane idle the read
 * may BLOCK for long; while some lanes work it BLOCKs only briefly, because a lane that frees up
 * meanwhile is read only once this read has returned. */
#include "fanout.h"

#define BLOCK_IDLE_MS "1000"    /* bounds how long a stop waits for the blocking read */
#define BLOCK_BUSY_MS "2"       /* how late a lane that frees up is read again */

int pfo_readplan_make(const pfo *f, pfo_readplan *p)
{
    p->n = 0;
    p->history = 0;
    p->count = 0;
    p->block_ms = NULL;
    if (f->held >= PARLEY_FANOUT_BATCH_MAX)
        return 0;
    for (unsigned i = 0; i < f->nshards; i++)
        if (!f->lane[i] && f->pending[i])
            p->shard[p->n++] = i;
    if (p->n > 0) {
        p->history = 1;
    } else {
        for (unsigned i = 0; i < f->nshards; i++)
            if (!f->lane[i])
                p->shard[p->n++] = i;
        if (p->n == 0)
            return 0;
        p->block_ms = f->busy ? BLOCK_BUSY_MS : BLOCK_IDLE_MS;
    }
    p->count = (PARLEY_FANOUT_BATCH_MAX - f->held) / p->n;
    if (p->count == 0)
        p->count = 1;
    return 1;
}
