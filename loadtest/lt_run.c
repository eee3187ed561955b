#include "lt_run.h"

#include <stdarg.h>
#include <stdio.h>

#include "clock.h"

uint64_t lt_now_us(const lt_run *r)
{
    return pclock_mono_us() - r->t0_us;
}

void lt_fatal(lt_run *r, const char *fmt, ...)
{
    va_list ap;

    if (r->exit_code)
        return;
    r->exit_code = 3;
    va_start(ap, fmt);
    vsnprintf(r->fatal_msg, sizeof r->fatal_msg, fmt, ap);
    va_end(ap);
}
