/* lt_proc.h: what /proc says about a process (the gateways, the harness itself): resident
 * memory and CPU time. */
#ifndef LT_PROC_H
#define LT_PROC_H

#include <stdint.h>

/* VmRSS of pid (0: this process) in KiB, or -1 when unreadable. */
long lt_proc_rss_kb(int pid);
/* utime + stime of pid (0: this process, all threads) in seconds, or -1. */
double lt_proc_cpu_s(int pid);

#endif
