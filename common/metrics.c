/* metrics.c: the Prometheus registry. Metrics live in families (one per name) kept in
 * registration order, so the exposition groups every series of a name under one HELP/TYPE. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum { PMET_COUNTER, PMET_GAUGE, PMET_HIST } pmet_type;

struct pmet_counter {
    uint64_t v;
};
struct pmet_gauge {
    double v;
};
struct pmet_hist {
    double *bounds;   /* ascending, nbounds of them; +Inf is implicit */
    uint64_t *counts; /* per bucket (not cumulative), nbounds + 1 */
    size_t nbounds;
    double sum;
    uint64_t count;
};

typedef struct {
    char *labels; /* NULL or "k=\"v\",..." */
    union {
        struct pmet_counter c;
        struct pmet_gauge g;
        struct pmet_hist h;
    } u;
} pmet_series;

typedef struct {
    char *name;
    char *help;
    pmet_type type;
    pmet_series **series; /* pointers stay put while the array grows */
    size_t nseries, cap;
} pmet_family;

struct pmetrics {
    pmet_family *fams;
    size_t nfams, cap;
};

const double pmetrics_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t pmetrics_latency_nbounds =
    sizeof pmetrics_latency_bounds / sizeof pmetrics_latency_bounds[0];

static const char *const pmet_type_names[] = {"counter", "gauge", "histogram"};

pmetrics *pmetrics_new(void)
{
    return calloc(1, sizeof(pmetrics));
}

static void pmet_series_free(pmet_series *s, pmet_type t)
{
    if (!s)
        return;
    if (t == PMET_HIST) {
        free(s->u.h.bounds);
        free(s->u.h.counts);
    }
    free(s->labels);
    free(s);
}

void pmetrics_free(pmetrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfams; i++) {
        pmet_family *f = &m->fams[i];
        for (size_t k = 0; k < f->nseries; k++)
            pmet_series_free(f->series[k], f->type);
        free(f->series);
        free(f->name);
        free(f->help);
    }
    free(m->fams);
    free(m);
}

static int pmet_valid_name(const char *n)
{
    if (!n || !n[0] || (n[0] >= '0' && n[0] <= '9'))
        return 0;
    for (const char *p = n; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static int pmet_same_labels(const char *a, const char *b)
{
    if (!a || !a[0])
        return !b || !b[0];
    return b && strcmp(a, b) == 0;
}

/* Finds or creates the series (name, labels) of type t; NULL (logged) on misuse or OOM. A second
 * registration of the same series returns the existing one, so modules may share a metric. */
static pmet_series *pmet_get(pmetrics *m, const char *name, const char *help, const char *labels,
                             pmet_type t, int *created)
{
    *created = 0;
    if (!m || !pmet_valid_name(name)) {
        char q[128];
        plog_error("metric_invalid", "name=%s", plog_q(q, sizeof q, name ? name : "(null)"));
        return NULL;
    }
    pmet_family *f = NULL;
    for (size_t i = 0; i < m->nfams; i++) {
        if (strcmp(m->fams[i].name, name) == 0) {
            f = &m->fams[i];
            break;
        }
    }
    if (f && f->type != t) {
        plog_error("metric_type_conflict", "name=%s type=%s registered=%s", name,
                   pmet_type_names[t], pmet_type_names[f->type]);
        return NULL;
    }
    if (f) {
        for (size_t k = 0; k < f->nseries; k++)
            if (pmet_same_labels(f->series[k]->labels, labels))
                return f->series[k];
    } else {
        if (m->nfams == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            pmet_family *nf = realloc(m->fams, cap * sizeof *nf);
            if (!nf)
                goto oom;
            m->fams = nf;
            m->cap = cap;
        }
        f = &m->fams[m->nfams];
        memset(f, 0, sizeof *f);
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        f->type = t;
        if (!f->name || !f->help) {
            free(f->name);
            free(f->help);
            goto oom;
        }
        m->nfams++;
    }
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        pmet_series **ns = realloc(f->series, cap * sizeof *ns);
        if (!ns)
            goto oom;
        f->series = ns;
        f->cap = cap;
    }
    pmet_series *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    if (labels && labels[0] && !(s->labels = strdup(labels))) {
        free(s);
        goto oom;
    }
    f->series[f->nseries++] = s;
    *created = 1;
    return s;
oom:
    plog_error("metric_oom", "name=%s", name);
    return NULL;
}

pmet_counter *pmetrics_counter(pmetrics *m, const char *name, const char *help, const char *labels)
{
    int created;
    pmet_series *s = pmet_get(m, name, help, labels, PMET_COUNTER, &created);
    return s ? &s->u.c : NULL;
}

pmet_gauge *pmetrics_gauge(pmetrics *m, const char *name, const char *help, const char *labels)
{
    int created;
    pmet_series *s = pmet_get(m, name, help, labels, PMET_GAUGE, &created);
    return s ? &s->u.g : NULL;
}

pmet_hist *pmetrics_hist(pmetrics *m, const char *name, const char *help, const char *labels,
                         const double *bounds, size_t nbounds)
{
    for (size_t i = 1; i < nbounds; i++) {
        if (!(bounds[i - 1] < bounds[i])) {
            plog_error("metric_invalid", "name=%s reason=bounds_not_ascending", name ? name : "");
            return NULL;
        }
    }
    int created;
    pmet_series *s = pmet_get(m, name, help, labels, PMET_HIST, &created);
    if (!s)
        return NULL;
    if (!created)
        return &s->u.h; /* existing series keeps its first bounds */
    struct pmet_hist *h = &s->u.h;
    h->nbounds = nbounds;
    h->bounds = malloc((nbounds ? nbounds : 1) * sizeof(double));
    h->counts = calloc(nbounds + 1, sizeof(uint64_t));
    if (!h->bounds || !h->counts) {
        /* leave an empty but valid histogram: everything lands in +Inf */
        free(h->bounds);
        free(h->counts);
        h->bounds = NULL;
        h->nbounds = 0;
        h->counts = calloc(1, sizeof(uint64_t));
        plog_error("metric_oom", "name=%s", name);
        if (!h->counts)
            return NULL;
        return h;
    }
    if (nbounds)
        memcpy(h->bounds, bounds, nbounds * sizeof(double));
    return h;
}

/* The updaters accept NULL so a failed registration (logged) never crashes the service. */
void pmet_inc(pmet_counter *c, uint64_t n)
{
    if (c)
        c->v += n;
}

void pmet_set(pmet_gauge *g, double v)
{
    if (g)
        g->v = v;
}

void pmet_add(pmet_gauge *g, double delta)
{
    if (g)
        g->v += delta;
}

void pmet_observe(pmet_hist *h, double v)
{
    if (!h || !h->counts)
        return;
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i]) /* bucket le=b holds v <= b */
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

/* Growable output buffer; on OOM it stops growing and render returns NULL. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} pmet_buf;

__attribute__((format(printf, 2, 3))) static void pmet_printf(pmet_buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 > b->len + (size_t)n + 1 ? b->cap * 2 : b->len + (size_t)n + 1;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Shortest text that reads back as the same double, in Prometheus spelling for the specials. */
static const char *pmet_num(char out[40], double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (strchr(out, 'e') && fabs(v) >= 1 && fabs(v) < 1e15)
        snprintf(out, 40, "%.17g", v); /* "10", not "1e+01": integers read better in full */
    return out;
}

static void pmet_help(pmet_buf *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            pmet_printf(b, "\\\\");
        else if (*p == '\n')
            pmet_printf(b, "\\n");
        else
            pmet_printf(b, "%c", *p);
    }
}

char *pmetrics_render(const pmetrics *m, size_t *len)
{
    pmet_buf b = {malloc(4096), 0, 4096, 0};
    if (!b.p)
        return NULL;
    b.p[0] = '\0';
    for (size_t i = 0; m && i < m->nfams; i++) {
        const pmet_family *f = &m->fams[i];
        pmet_printf(&b, "# HELP %s ", f->name);
        pmet_help(&b, f->help);
        pmet_printf(&b, "\n# TYPE %s %s\n", f->name, pmet_type_names[f->type]);
        for (size_t k = 0; k < f->nseries; k++) {
            const pmet_series *s = f->series[k];
            const char *lb = s->labels ? s->labels : "";
            const char *open = s->labels ? "{" : "";
            const char *close = s->labels ? "}" : "";
            char num[40];
            if (f->type == PMET_COUNTER) {
                pmet_printf(&b, "%s%s%s%s %llu\n", f->name, open, lb, close,
                            (unsigned long long)s->u.c.v);
            } else if (f->type == PMET_GAUGE) {
                pmet_printf(&b, "%s%s%s%s %s\n", f->name, open, lb, close, pmet_num(num, s->u.g.v));
            } else {
                const struct pmet_hist *h = &s->u.h;
                const char *sep = s->labels ? "," : "";
                uint64_t cum = 0;
                for (size_t j = 0; j <= h->nbounds; j++) {
                    cum += h->counts ? h->counts[j] : 0;
                    const char *le = j < h->nbounds ? pmet_num(num, h->bounds[j]) : "+Inf";
                    pmet_printf(&b, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, lb, sep, le,
                                (unsigned long long)cum);
                }
                pmet_printf(&b, "%s_sum%s%s%s %s\n", f->name, open, lb, close, pmet_num(num, h->sum));
                pmet_printf(&b, "%s_count%s%s%s %llu\n", f->name, open, lb, close,
                            (unsigned long long)h->count);
            }
        }
    }
    if (b.failed) {
        free(b.p);
        plog_error("metrics_render_failed", "reason=oom");
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}
