#include "gw_lookup.h"

#include <string.h>

#include "gw.h"
#include "log.h"

int gw_lookup_begin(gw *g, gw_conn *c, uint64_t request_id)
{
    if (c->lookups >= PARLEY_PENDING_LOOKUPS_MAX) {
        gw_conn_send_error(g, c, request_id, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                           "too many unanswered requests", 1000);
        return -1;
    }
    c->lookups++;
    return 0;
}

static void gw_lookup_end(gw_conn *c)
{
    if (c->lookups)
        c->lookups--;
}

void gw_lookup_fail(gw *g, gw_conn *c, uint64_t request_id, Parley__V1__ErrorCode code,
                    const char *message, uint32_t retry_after_ms)
{
    gw_lookup_end(c);
    gw_conn_send_error(g, c, request_id, code, message, retry_after_ms);
}

gw_conn *gw_lookup_step(gw *g, uint64_t conn_id)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (c && c->close_code) {
        gw_lookup_end(c);
        return NULL;
    }
    return c;
}

gw_conn *gw_lookup_result(gw *g, uint64_t conn_id, uint64_t request_id, const PGresult *res,
                          const char *err, const char *event, const char *message)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (!c)
        return NULL;
    gw_lookup_end(c);
    if (c->close_code)
        return NULL;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        gw_conn_send_error(g, c, request_id, gw_lookup_pg_failed(event, c->id, res, err),
                           message, 0);
        return NULL;
    }
    return c;
}

Parley__V1__ErrorCode gw_lookup_pg_failed(const char *event, uint64_t conn_id,
                                          const PGresult *res, const char *err)
{
    char q[256], s[16];
    const char *state = res ? ppg_sqlstate(res) : "";
    plog_error(event, "conn=%llu sqlstate=%s error=%s", (unsigned long long)conn_id,
               plog_q(s, sizeof s, state), plog_q(q, sizeof q, ppg_why(res, err)));
    if (!res || !strncmp(state, "08", 2) || !strncmp(state, "57", 2) ||
        !strncmp(state, "53", 2) || !strncmp(state, "40", 2))
        return PARLEY__V1__ERROR_CODE__UNAVAILABLE;
    return PARLEY__V1__ERROR_CODE__INTERNAL;
}
