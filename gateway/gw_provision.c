#include "gw_provision.h"

#include "gw.h"

static void gw_provision_unimplemented(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                       "linking is not implemented yet", 0);
}

void gw_provision_open(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    gw_provision_unimplemented(g, c, f);
}

void gw_provision_join(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    gw_provision_unimplemented(g, c, f);
}

void gw_provision_send(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    gw_provision_unimplemented(g, c, f);
}

void gw_provision_conn_gone(gw *g, gw_conn *c)
{
    (void)g;
    c->prov = NULL;
}
