#include "gw_devlist.h"

#include "gw.h"

void gw_devlist_publish(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    gw_conn_send_error(g, c, f->request_id, PARLEY__V1__ERROR_CODE__INTERNAL,
                       "device lists are not implemented yet", 0);
}
