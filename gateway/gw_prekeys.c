#include "gw_prekeys.h"

#include <string.h>

#include "gw.h"
#include "log.h"

Parley__V1__ErrorCode gw_prekeys_pg_failed(const char *event, uint64_t conn_id,
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

gw_conn *gw_prekeys_conn_done(gw *g, uint64_t conn_id)
{
    gw_conn *c = gw_conns_get(&g->conns, conn_id);
    if (!c)
        return NULL;
    if (c->lookups)
        c->lookups--;
    return c->close_code ? NULL : c;
}

int gw_prekeys_admit(gw *g, gw_conn *c, uint64_t rid)
{
    if (c->lookups >= PARLEY_PENDING_LOOKUPS_MAX) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                           "too many unanswered requests", 1000);
        return -1;
    }
    return 0;
}
