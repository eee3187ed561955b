#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "parley.pb-c.h"

void pc_status_ok(pc_status *st)
{
    memset(st, 0, sizeof *st);
}

int pc_status_set(pc_status *st, pc_status_kind kind, const char *fmt, ...)
{
    va_list ap;

    if (!st)
        return -1;
    memset(st, 0, sizeof *st);
    st->kind = kind;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    return -1;
}

const char *pc_error_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&parley__v1__error_code__descriptor, code);
    return v ? v->name : "UNKNOWN";
}

int pc_error_from_name(const char *name)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&parley__v1__error_code__descriptor, name);
    return v ? v->value : -1;
}

int pc_status_from_error(pc_status *st, const Parley__V1__Error *e)
{
    pc_status_set(st, PC_ERR_SERVER, "%s%s%s", pc_error_name(e->code),
                  e->message && *e->message ? ": " : "", e->message ? e->message : "");
    st->server_code = e->code;
    st->retry_after_ms = e->retry_after_ms;
    return -1;
}

int pc_error_retryable(int code)
{
    return code == PARLEY__V1__ERROR_CODE__UNAVAILABLE ||
           code == PARLEY__V1__ERROR_CODE__SHUTTING_DOWN ||
           code == PARLEY__V1__ERROR_CODE__RATE_LIMITED;
}
