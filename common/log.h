/* log.h: structured logging (logfmt lines on stderr). Owns nothing but the process-wide level
 * and service name. Each line is one write() of at most PIPE_BUF bytes (longer lines are cut and
 * end in "truncated=1"), so lines of concurrent processes never interleave. Before plog_init the
 * service is "parley" and the level info. errno is preserved across plog. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

#include <stddef.h>

typedef enum { PLOG_DEBUG = 0, PLOG_INFO, PLOG_WARN, PLOG_ERROR } plog_level;

/* service: short name printed on every line ("gateway"); level: minimum printed. */
void plog_init(const char *service, plog_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int plog_parse_level(const char *s, plog_level *out);

/* One line: ts=... level=... svc=... event=EVENT then the caller's key=value pairs (printf
 * format, values with spaces must be quoted by the caller; plog_q helps). */
void plog(plog_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Non-zero when a line at level would be printed (skip building costly debug values). */
int plog_enabled(plog_level level);

/* Quotes s as a logfmt value ("..." with \" \\ \n and \xNN escapes) into buf of size bytes,
 * cutting it to fit; returns buf. Usage: char q[128]; plog_info("x", "name=%s",
 * plog_q(q, sizeof q, name)); */
const char *plog_q(char *buf, size_t size, const char *s);

#define plog_debug(ev, ...) plog(PLOG_DEBUG, ev, __VA_ARGS__)
#define plog_info(ev, ...)  plog(PLOG_INFO, ev, __VA_ARGS__)
#define plog_warn(ev, ...)  plog(PLOG_WARN, ev, __VA_ARGS__)
#define plog_error(ev, ...) plog(PLOG_ERROR, ev, __VA_ARGS__)

#endif
