/* lt_progress.h: the live progress line on stderr, once a second (--quiet turns it off): the
 * phase, devices up, per-second rates of the last second, messages outstanding, the live p99
 * so far and the failure counts. */
#ifndef LT_PROGRESS_H
#define LT_PROGRESS_H

#include "lt_run.h"

void lt_progress_register(const lt_run *r, uint32_t want);
void lt_progress_run(const lt_run *r);

#endif
