/* gw_lookup.h: the requests of an authenticated connection that are answered after one or more
 * asynchronous steps (Redis, PostgreSQL): GetDevices, UploadPrekeys, GetPrekeys,
 * PublishDeviceList. At most PARLEY_PENDING_LOOKUPS_MAX of them are in flight per connection
 * (c->lookups): a lookup is counted when it begins and counted off once, when it ends
 * (answered, or its connection went away). Every step after an asynchronous call looks the
 * connection up again by id. */
#ifndef PARLEY_GW_LOOKUP_H
#define PARLEY_GW_LOOKUP_H

#include <stdint.h>

#include <libpq-fe.h>

#include "gw_proto.h"

struct gw;
struct gw_conn;

/* Begins a lookup of c: 0 with it counted, or -1 (answered RATE_LIMITED here) when c has
 * PARLEY_PENDING_LOOKUPS_MAX in flight. */
int gw_lookup_begin(struct gw *g, struct gw_conn *c, uint64_t request_id);
/* Ends a lookup of c with Error{code}. */
void gw_lookup_fail(struct gw *g, struct gw_conn *c, uint64_t request_id,
                    Parley__V1__ErrorCode code, const char *message, uint32_t retry_after_ms);
/* A step between two asynchronous calls: the lookup's connection, or NULL when it is gone or
 * closing (the lookup has ended then: nothing to answer). */
struct gw_conn *gw_lookup_step(struct gw *g, uint64_t conn_id);
/* The last step, with the answer query's result: the connection to answer (the lookup has
 * ended), or NULL when it is gone or closing, or when the query failed (then answered here with
 * gw_lookup_pg_failed's code and message). */
struct gw_conn *gw_lookup_result(struct gw *g, uint64_t conn_id, uint64_t request_id,
                                 const PGresult *res, const char *err, const char *event,
                                 const char *message);
/* A failed query, logged once here as event; returns the code to answer with: UNAVAILABLE
 * for lost connections, shutdowns, exhausted resources and deadlocks (worth a retry),
 * INTERNAL for anything else. */
Parley__V1__ErrorCode gw_lookup_pg_failed(const char *event, uint64_t conn_id,
                                          const PGresult *res, const char *err);

#endif
