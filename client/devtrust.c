#include "devtrust.h"

int pc_dt_accept(pc_dt_pin *pin, const char *account, const Parley__V1__DeviceList *dl,
                 pc_status *st)
{
    (void)pin;
    (void)account;
    (void)dl;
    return pc_status_set(st, PC_ERR_LOCAL, "device list trust is not implemented yet");
}

void pc_dt_ghosts(const pc_dt_pin *pin, const Parley__V1__DeviceList *dl, uint32_t *ids,
                  size_t cap, size_t *n)
{
    (void)pin;
    (void)dl;
    (void)ids;
    (void)cap;
    *n = 0;
}
