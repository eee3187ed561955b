/* metrics.h: a Prometheus registry for one single-threaded process. The registry owns every
 * metric it hands out; pointers stay valid until pmetrics_free. */
#ifndef PARLEY_METRICS_H
#define PARLEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pmetrics pmetrics;
typedef struct pmet_counter pmet_counter;
typedef struct pmet_gauge pmet_gauge;
typedef struct pmet_hist pmet_hist;

pmetrics *pmetrics_new(void);
void pmetrics_free(pmetrics *m);

/* labels: NULL or a label set in exposition syntax without braces, e.g. "reason=\"queue_full\"".
 * The same name with different labels is one family (HELP/TYPE printed once). */
pmet_counter *pmetrics_counter(pmetrics *m, const char *name, const char *help, const char *labels);
pmet_gauge *pmetrics_gauge(pmetrics *m, const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (without +Inf), copied. */
pmet_hist *pmetrics_hist(pmetrics *m, const char *name, const char *help, const char *labels,
                         const double *bounds, size_t nbounds);

void pmet_inc(pmet_counter *c, uint64_t n);
void pmet_set(pmet_gauge *g, double v);
void pmet_add(pmet_gauge *g, double delta);
void pmet_observe(pmet_hist *h, double v);

/* Bucket bounds for latencies in seconds, 0.0005 .. 10. */
extern const double pmetrics_latency_bounds[];
extern const size_t pmetrics_latency_nbounds;

/* Prometheus text exposition. Returns a malloc'd string the caller frees; *len set. */
char *pmetrics_render(const pmetrics *m, size_t *len);

#endif
