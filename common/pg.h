/* pg.h: asynchronous PostgreSQL on the libuv loop. A pool of connections, each running one
 * query at a time; queries wait in one FIFO for the next free connection. Lost connections are
 * re-established with backoff (100 ms doubling to 2 s; connect attempts time out after 10 s).
 * A connection that breaks fails its in-flight query (res NULL, err set); when the last
 * connection goes down, queued queries fail the same way (callers retry, as with -1 below).
 * Server notices are logged (event=pg_notice). libpq resolves host names synchronously in
 * PQconnectStart: prefer numeric hosts in conninfo. Callbacks may call ppg_query and ppg_close. */
#ifndef PARLEY_PG_H
#define PARLEY_PG_H

#include <libpq-fe.h>
#include <uv.h>

typedef struct ppg ppg;

/* res: the query's result, owned by the pool (freed after the callback returns); its status
 * may be PGRES_FATAL_ERROR (check PQresultErrorField(res, PG_DIAG_SQLSTATE)).
 * res == NULL when the query could not run (no connection, connection lost mid-query); err
 * then says why. Called exactly once per accepted query, also from ppg_close. */
typedef void (*ppg_cb)(PGresult *res, const char *err, void *ud);

/* Starts connecting nconns connections with conninfo; returns NULL only on allocation failure.
 * Until the first connection is up ppg_up() is 0 and ppg_query returns -1. */
ppg *ppg_new(uv_loop_t *loop, const char *conninfo, int nconns);
/* Queues a query. Parameter values are copied. formats/lengths may be NULL (all text).
 * Returns 0 when queued (cb will run, always later from the loop, never inside this call),
 * -1 when no connection is up, PARLEY_PG_QUEUE_MAX queries are waiting, or memory ran out
 * (cb will not run; nothing is logged: the caller says what failed). */
int ppg_query(ppg *p, const char *sql, int nparams, const char *const *values,
              const int *lengths, const int *formats, int result_binary, ppg_cb cb, void *ud);
/* SQLSTATE of a failed result, "" if none. */
const char *ppg_sqlstate(const PGresult *r);
/* One-line reason for logs: err when set, else the result's primary error message. */
const char *ppg_why(const PGresult *r, const char *err);
/* Number of connections currently up. */
int ppg_up(const ppg *p);
/* Queries queued or running. */
int ppg_pending(const ppg *p);
/* Fails in-flight and queued queries (cb with res NULL, err "pool closing"), closes the
 * connections, frees p once its handles closed (run the loop). Safe from inside a callback. */
void ppg_close(ppg *p);

#endif
