#include "devchange.h"

int pc_devchange_start(pc_conn *c, pc_dt_pin *pin, const pc_keys *k, const char *account,
                       const pc_devchange *ch, pc_devchange_cb cb, void *ud, pc_status *st)
{
    (void)c;
    (void)pin;
    (void)k;
    (void)account;
    (void)ch;
    (void)cb;
    (void)ud;
    return pc_status_set(st, PC_ERR_LOCAL, "device list changes are not implemented yet");
}
