/* log.c: logfmt lines on stderr. Each line is built in a stack buffer and written with a single
 * write() so lines from concurrent processes sharing the stream never interleave (a write of at
 * most PIPE_BUF bytes to a pipe is atomic, hence the line limit). */
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PLOG_LINE_MAX 4096 /* PIPE_BUF on Linux: one write() of at most this is atomic */
#define PLOG_SERVICE_MAX 32

static char plog_service[PLOG_SERVICE_MAX] = "parley";
static plog_level plog_min = PLOG_INFO;

static const char *const plog_names[] = {"debug", "info", "warn", "error"};

void plog_init(const char *service, plog_level level)
{
    if (service)
        snprintf(plog_service, sizeof plog_service, "%s", service);
    if (level >= PLOG_DEBUG && level <= PLOG_ERROR)
        plog_min = level;
}

int plog_parse_level(const char *s, plog_level *out)
{
    if (!s)
        return -1;
    for (int i = PLOG_DEBUG; i <= PLOG_ERROR; i++) {
        if (strcmp(s, plog_names[i]) == 0) {
            *out = (plog_level)i;
            return 0;
        }
    }
    return -1;
}

int plog_enabled(plog_level level)
{
    return level >= plog_min;
}

static void plog_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a failing stderr */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void plog(plog_level level, const char *event, const char *fmt, ...)
{
    if (level < plog_min || level < PLOG_DEBUG || level > PLOG_ERROR)
        return;
    int saved_errno = errno; /* callers often log and then inspect errno */

    char line[PLOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, plog_names[level], plog_service,
                     event ? event : "none");
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len >= sizeof line - 1)
        len = sizeof line - 2;
    if (fmt && fmt[0]) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n;
    }
    if (len >= sizeof line - 1) {
        /* truncated: mark it so a reader knows the line is incomplete */
        static const char mark[] = " truncated=1";
        len = sizeof line - 1 - (sizeof mark - 1);
        memcpy(line + len, mark, sizeof mark - 1);
        len += sizeof mark - 1;
    }
    line[len++] = '\n';
    plog_write_all(line, len);
    errno = saved_errno;
}

const char *plog_q(char *buf, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!buf || size < 3) {
        return "\"\"";
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[4];
        size_t k = 0;
        if (*p == '"' || *p == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)*p;
        } else if (*p == '\n') {
            esc[k++] = '\\';
            esc[k++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[*p >> 4];
            esc[k++] = hex[*p & 15];
        } else {
            esc[k++] = (char)*p;
        }
        if (o + k + 2 > size) /* room for the closing quote and NUL */
            break;
        memcpy(buf + o, esc, k);
        o += k;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
