/* store.c: the PostgreSQL side of a batch. Builds the single call of parley_accept_batch
 * (deploy/sql/002_fanout.sql, set-based since 004_fanout_batch.sql; both read the same
 * arguments and answer the same rows) from the batch's sends, parses its binary result into each
 * entry's pfo_result, and prunes old `sends` rows on a slow timer.
 *
 * A failed call is either transient (connection, failover, deadlock: the batch stays pending in
 * Redis and is retried) or caused by the data: then the sends are retried one call each, so one
 * bad send fails alone (PFO_INTERNAL) and never the others. */
#include "fanout.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pg.h"

const char pfo_store_sql[] =
    "SELECT * FROM parley_accept_batch($1::text[], $2::integer[], $3::bigint[], $4::text[], "
    "$5::boolean[], $6::integer[], $7::integer[], $8::integer[], $9::integer[], $10::bytea, "
    "$11::integer)";

enum { P_SENDERS, P_SDEV, P_CLIENT, P_RCPT, P_URGENT, P_ESEND, P_EDEV, P_EREG, P_ELEN };

/* Growable text; err sticks after the first allocation failure. */
typedef struct {
    char *s;
    size_t len, cap;
    int err;
} sbuf;

/* Room for n more bytes (its NUL included); 0 once an allocation failed. */
static int sb_reserve(sbuf *b, size_t n)
{
    if (b->err)
        return 0;
    if (b->s && b->cap - b->len >= n)
        return 1;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->err = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->err)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = 1;
            return;
        }
        if (b->s && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        if (!sb_reserve(b, (size_t)n + 1))
            return;
    }
}

/* Array element of a text[] literal: always quoted, '"' and '\' escaped. Copied byte by byte,
 * not formatted: this runs for two names of every send. */
static void sb_quoted(sbuf *b, const char *v)
{
    if (!sb_reserve(b, 2 * strlen(v) + 3)) /* every byte escaped, the quotes, the NUL */
        return;
    char *p = b->s + b->len;
    *p++ = '"';
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            *p++ = '\\';
        *p++ = *v;
    }
    *p++ = '"';
    *p = '\0';
    b->len = (size_t)(p - b->s);
}

int pfo_store_params(pfo_params *p, pfo_entry *const *sends, size_t n, long long queue_max)
{
    sbuf t[9] = {{0}};
    size_t total = 0;
    memset(p, 0, sizeof *p);
    for (size_t k = 0; k < n; k++) {
        const Parley__V1__Send *s = sends[k]->msg->send;
        for (size_t i = 0; i < s->n_envelopes; i++)
            total += s->envelopes[i]->content.len;
    }
    if (total > INT32_MAX) /* a libpq parameter length is an int */
        return -1;
    p->contents = malloc(total ? total : 1);
    if (!p->contents)
        return -1;

    for (int i = 0; i < 9; i++)
        sb_add(&t[i], "{");
    for (size_t k = 0; k < n; k++) {
        const pfo_entry *e = sends[k];
        const Parley__V1__Send *s = e->msg->send;
        const char *sep = k ? "," : "";
        sb_add(&t[P_SENDERS], "%s", sep);
        sb_quoted(&t[P_SENDERS], e->sender);
        sb_add(&t[P_SDEV], "%s%" PRIu32, sep, e->msg->sender_device);
        /* the uint64 client id is stored as the bigint with the same bits */
        sb_add(&t[P_CLIENT], "%s%" PRId64, sep, (int64_t)s->client_id);
        sb_add(&t[P_RCPT], "%s", sep);
        sb_quoted(&t[P_RCPT], e->recipient);
        sb_add(&t[P_URGENT], "%s%s", sep, s->urgent ? "t" : "f");
        for (size_t i = 0; i < s->n_envelopes; i++) {
            const Parley__V1__OutEnvelope *o = s->envelopes[i];
            const char *esep = p->contents_len || i ? "," : "";
            /* contents are never empty (pfo_entry_decode), so contents_len marks "not first" */
            sb_add(&t[P_ESEND], "%s%zu", esep, k);
            sb_add(&t[P_EDEV], "%s%" PRIu32, esep, o->device_id);
            sb_add(&t[P_EREG], "%s%" PRIu32, esep, o->registration_id);
            sb_add(&t[P_ELEN], "%s%zu", esep, o->content.len);
            memcpy(p->contents + p->contents_len, o->content.data, o->content.len);
            p->contents_len += o->content.len;
        }
    }
    int err = 0;
    for (int i = 0; i < 9; i++) {
        sb_add(&t[i], "}");
        err |= t[i].err;
        p->text[i] = t[i].s;
    }
    snprintf(p->queue_max, sizeof p->queue_max, "%lld", queue_max);
    if (err) {
        pfo_store_params_free(p);
        return -1;
    }
    return 0;
}

void pfo_store_params_free(pfo_params *p)
{
    for (int i = 0; i < 9; i++)
        free(p->text[i]);
    free(p->contents);
    memset(p, 0, sizeof *p);
}

enum {
    C_SEND, C_STATUS, C_DEVS, C_IDS, C_CREATED, C_MISSING, C_EXTRA, C_STALE, C_FULL,
    C_QDEVS, C_QIDS, C_QCREATED, C_QCONTENT, C_COUNT
};

static const struct {
    const char *name;
    pfo_status status;
} statuses[] = {
    {"accepted", PFO_ACCEPTED},         {"duplicate", PFO_DUPLICATE},
    {"unknown_account", PFO_UNKNOWN_ACCOUNT}, {"mismatch", PFO_MISMATCH},
    {"queue_full", PFO_QUEUE_FULL},     {"invalid", PFO_INVALID},
    {"unknown_sender", PFO_UNKNOWN_SENDER},
};

/* An int4[] column into out (NULL is an empty list). */
static int col_i32s(const PGresult *res, int row, int col, uint32_t *out, size_t *n)
{
    *n = 0;
    if (PQgetisnull(res, row, col))
        return 0;
    long k = ppgbin_i32_array(PQgetvalue(res, row, col), PQgetlength(res, row, col), out,
                               PFO_LIST_MAX);
    if (k < 0)
        return -1;
    *n = (size_t)k;
    return 0;
}

static int col_i64s(const PGresult *res, int row, int col, uint64_t *out, size_t *n)
{
    *n = 0;
    if (PQgetisnull(res, row, col))
        return 0;
    long k = ppgbin_i64_array(PQgetvalue(res, row, col), PQgetlength(res, row, col), out,
                               PFO_LIST_MAX);
    if (k < 0)
        return -1;
    *n = (size_t)k;
    return 0;
}

static int parse_row(const PGresult *res, int row, pfo_result *r)
{
    const char *st = PQgetvalue(res, row, C_STATUS);
    size_t stlen = (size_t)PQgetlength(res, row, C_STATUS);
    size_t n2;
    int found = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (strlen(statuses[i].name) == stlen && !memcmp(statuses[i].name, st, stlen)) {
            r->status = statuses[i].status;
            found = 1;
        }
    if (!found)
        return -1;
    if (col_i32s(res, row, C_DEVS, r->stored_dev, &r->n_stored) ||
        col_i64s(res, row, C_IDS, r->stored_id, &n2) || n2 != r->n_stored ||
        col_i32s(res, row, C_MISSING, r->missing, &r->n_missing) ||
        col_i32s(res, row, C_EXTRA, r->extra, &r->n_extra) ||
        col_i32s(res, row, C_STALE, r->stale, &r->n_stale) ||
        col_i32s(res, row, C_FULL, r->full, &r->n_full))
        return -1;
    if ((r->status == PFO_ACCEPTED || r->status == PFO_DUPLICATE) && r->n_stored == 0)
        return -1;
    if (!PQgetisnull(res, row, C_CREATED)) {
        int64_t created;
        if (ppgbin_i64(PQgetvalue(res, row, C_CREATED), PQgetlength(res, row, C_CREATED),
                        &created))
            return -1;
        r->created_ms = (uint64_t)created;
    }

    size_t nq, nc, nt;
    const char *content[PFO_LIST_MAX];
    size_t clen[PFO_LIST_MAX];
    if (col_i32s(res, row, C_QDEVS, r->queued_dev, &nq) ||
        col_i64s(res, row, C_QIDS, r->queued_id, &nt) || nt != nq ||
        col_i64s(res, row, C_QCREATED, r->queued_created, &nt) || nt != nq)
        return -1;
    nc = 0;
    if (!PQgetisnull(res, row, C_QCONTENT)) {
        long k = ppgbin_bytea_array(PQgetvalue(res, row, C_QCONTENT),
                                     PQgetlength(res, row, C_QCONTENT), content, clen,
                                     PFO_LIST_MAX);
        if (k < 0)
            return -1;
        nc = (size_t)k;
    }
    if (nc != nq)
        return -1;
    /* the result is freed after the callback; the pushes happen later */
    for (size_t i = 0; i < nq; i++) {
        r->queued_content[i] = malloc(clen[i] ? clen[i] : 1);
        if (!r->queued_content[i])
            return -1;
        memcpy(r->queued_content[i], content[i], clen[i]);
        r->queued_len[i] = clen[i];
        r->n_queued = i + 1;
    }
    return 0;
}

int pfo_store_parse(const PGresult *res, pfo_entry *const *sends, size_t n)
{
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != C_COUNT ||
        (size_t)PQntuples(res) != n)
        rc = -1;
    for (int c = 0; rc == 0 && c < C_COUNT; c++)
        if (PQfformat(res, c) != 1)
            rc = -1;
    for (size_t k = 0; k < n; k++)
        sends[k]->res.status = PFO_STATUS_COUNT; /* not seen yet */
    for (int row = 0; rc == 0 && row < PQntuples(res); row++) {
        int32_t idx;
        if (PQgetisnull(res, row, C_SEND) || PQgetisnull(res, row, C_STATUS) ||
            ppgbin_i32(PQgetvalue(res, row, C_SEND), PQgetlength(res, row, C_SEND), &idx) ||
            idx < 0 || (size_t)idx >= n || sends[idx]->res.status != PFO_STATUS_COUNT) {
            rc = -1;
            break;
        }
        pfo_result *r = &sends[idx]->res;
        if (parse_row(res, row, r) != 0) {
            pfo_result_clear(r);
            rc = -1;
        }
    }
    for (size_t k = 0; k < n; k++) {
        pfo_result *r = &sends[k]->res;
        if (rc != 0 || r->status == PFO_STATUS_COUNT) {
            pfo_result_clear(r);
            r->status = PFO_INTERNAL;
        }
    }
    return rc;
}

int pfo_store_transient(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return 1;
    /* 22 data, 23 integrity, P0 raised by PL/pgSQL, XX internal: about this data, retrying
     * the same call fails the same way. 42 (e.g. the migration not applied) is an operator's
     * problem: keep the entries until it is fixed. */
    static const char *const data_classes[] = {"22", "23", "P0", "XX", "2F", "39"};
    for (size_t i = 0; i < sizeof data_classes / sizeof data_classes[0]; i++)
        if (!strncmp(sqlstate, data_classes[i], 2))
            return 0;
    return 1;
}

static void call_cb(PGresult *res, const char *err, void *ud);

/* Starts the call for sends[from, from + n). Returns 0 when queued. */
static int call(pfo *f, pfo_batch *b, size_t from, size_t n)
{
    if (pfo_store_params(&b->params, b->sends + from, n, f->cfg->queue_max) != 0) {
        plog_error("store_params_failed", "sends=%zu", n);
        return -1;
    }
    const char *values[11];
    int lengths[11] = {0}, formats[11] = {0};
    for (int i = 0; i < 9; i++)
        values[i] = b->params.text[i];
    values[9] = (const char *)b->params.contents;
    lengths[9] = (int)b->params.contents_len;
    formats[9] = 1;
    values[10] = b->params.queue_max;
    int rc = ppg_query(f->pg, pfo_store_sql, 11, values, lengths, formats, 1, call_cb, b);
    /* ppg_query copied the values */
    pfo_store_params_free(&b->params);
    if (rc == 0)
        b->t_store_us = pclock_mono_us();
    else if (!f->pg_down)
        plog_warn("store_failed", "action=retry reason=no_connection sends=%zu", n);
    return rc;
}

static void finish(pfo_batch *b, int failed)
{
    void (*done)(pfo_batch *, int) = b->done;
    b->done = NULL;
    done(b, failed);
}

static void call_cb(PGresult *res, const char *err, void *ud)
{
    pfo_batch *b = ud;
    pfo *f = b->f;
    size_t from = b->split ? b->split_next : 0, n = b->split ? 1 : b->nsends;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (!res || pfo_store_transient(state)) {
            /* batch.c logs the outage once */
            if (!f->pg_down) {
                char q[256];
                plog_warn("store_failed", "action=retry sqlstate=%s error=%s", state ? state : "-",
                          plog_q(q, sizeof q,
                                 res ? PQresultErrorMessage(res) : err ? err : "no result"));
            }
            finish(b, 1);
            return;
        }
        char q[256];
        plog_error("store_rejected", "sqlstate=%s sends=%zu error=%s", state, n,
                   plog_q(q, sizeof q, PQresultErrorMessage(res)));
        if (!b->split && n > 1) {
            b->split = 1;
            b->split_next = 0;
        } else {
            pfo_result_clear(&b->sends[from]->res);
            b->sends[from]->res.status = PFO_INTERNAL;
            b->split_next++;
        }
    } else {
        pmet_observe(f->met.commit_seconds, (double)(pclock_mono_us() - b->t_store_us) / 1e6);
        if (pfo_store_parse(res, b->sends + from, n) != 0)
            plog_error("store_result_malformed", "sends=%zu rows=%d fields=%d", n,
                       PQntuples(res), PQnfields(res));
        if (b->split)
            b->split_next++;
        else
            b->split_next = b->nsends;
    }

    if (b->split_next >= b->nsends) {
        finish(b, 0);
        return;
    }
    if (call(f, b, b->split_next, 1) != 0)
        finish(b, 1);
}

void pfo_store_run(pfo *f, pfo_batch *b, void (*done)(pfo_batch *b, int failed))
{
    b->done = done;
    b->split = 0;
    b->split_next = 0;
    if (b->nsends == 0) {
        finish(b, 0);
        return;
    }
    if (call(f, b, 0, b->nsends) != 0)
        finish(b, 1);
}

static void prune_cb(PGresult *res, const char *err, void *ud)
{
    pfo *f = ud;
    f->pruning = 0;
    if (f->stopping)
        return;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char q[256];
        plog_warn("prune_failed", "error=%s",
                  plog_q(q, sizeof q, res ? PQresultErrorMessage(res) : err ? err : "no result"));
        return;
    }
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (n > 0)
        pmet_inc(f->met.pruned, (uint64_t)n);
    /* a full chunk means more are due: go on without waiting for the next tick */
    if (n >= PARLEY_FANOUT_BATCH_MAX && !f->stopping)
        pfo_store_prune(f);
}

void pfo_store_prune(pfo *f)
{
    if (f->pruning || ppg_up(f->pg) == 0)
        return;
    char age[24], limit[24];
    snprintf(age, sizeof age, "%d", PARLEY_SEND_DEDUP_SECONDS);
    snprintf(limit, sizeof limit, "%d", PARLEY_FANOUT_BATCH_MAX);
    const char *values[2] = {age, limit};
    if (ppg_query(f->pg, "SELECT parley_prune_sends($1::integer, $2::integer)", 2, values, NULL,
                  NULL, 0, prune_cb, f) == 0)
        f->pruning = 1;
}
