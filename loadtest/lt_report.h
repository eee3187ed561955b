/* lt_report.h: the outcome of a run: the numbers derived from the run's counters (rates,
 * memory per connection, lost messages), the verdict and exit code, and the two ways of
 * printing them: a human summary or one JSON object (--json), both on stdout. */
#ifndef LT_REPORT_H
#define LT_REPORT_H

#include <stdio.h>

#include "lt_run.h"

typedef struct {
    uint64_t lost;
    uint64_t lost_samples[LT_LOST_SAMPLES];
    unsigned nlost_samples;
    uint32_t unanswered;        /* sends never answered */
    double connect_s;           /* first attempt to all wanted devices up; <0: not all came up */
    double connect_rate;        /* authenticated connections per second over connect_s */
    double send_s;              /* sending window */
    double sent_per_s, accepted_per_s, delivered_per_s;
    double gw_rss_per_conn[LT_SERVERS_MAX]; /* bytes; <0: unknown */
    double gw_cpu_s[LT_SERVERS_MAX];        /* CPU seconds over connect + run; <0: unknown */
    double self_rss_per_dev;    /* bytes; <0: unknown */
    double self_cpu_s;
    double drain_s, drain_rate; /* burst */
    int exit_code;
    char verdict[600];          /* what went wrong, empty when nothing */
} lt_result;

/* After lt_drive returned (the run's state is still intact). */
void lt_result_compute(const lt_run *r, lt_result *res);
void lt_report_text(const lt_run *r, const lt_result *res, FILE *f);
void lt_report_json(const lt_run *r, const lt_result *res, FILE *f);

#endif
