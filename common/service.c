#include "service.h"

#include <stdio.h>

#include "log.h"

int psvc_logging(const char *prog, const char *service, const char *log_level)
{
    plog_level level;
    if (plog_parse_level(log_level, &level) != 0) {
        fprintf(stderr, "%s: log_level must be debug, info, warn or error\n", prog);
        return -1;
    }
    plog_init(service, level);
    return 0;
}
