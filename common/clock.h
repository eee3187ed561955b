/* clock.h: wall-clock milliseconds (for timestamps that cross processes) and monotonic
 * microseconds (for timeouts and latency within one process). */
#ifndef PARLEY_CLOCK_H
#define PARLEY_CLOCK_H

#include <stdint.h>

uint64_t pclock_wall_ms(void);
uint64_t pclock_mono_us(void);

#endif
