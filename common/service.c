#include "service.h"

#include <signal.h>
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

static void psvc_signal_cb(uv_signal_t *h, int signum)
{
    psvc_signals *s = h->data;
    plog_info("signal", "signum=%d", signum);
    s->on_signal(signum, s->ud);
}

int psvc_signals_start(psvc_signals *s, uv_loop_t *loop, void (*on_signal)(int signum, void *ud),
                       void *ud)
{
    s->on_signal = on_signal;
    s->ud = ud;
    s->term.data = s->intr.data = s;
    int rc = uv_signal_init(loop, &s->term);
    if (rc == 0)
        rc = uv_signal_init(loop, &s->intr);
    if (rc == 0)
        rc = uv_signal_start(&s->term, psvc_signal_cb, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&s->intr, psvc_signal_cb, SIGINT);
    if (rc != 0)
        plog_error("signals_failed", "error=\"%s\"", uv_strerror(rc));
    return rc == 0 ? 0 : -1;
}

void psvc_signals_close(psvc_signals *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->term))
        uv_close((uv_handle_t *)&s->term, NULL);
    if (!uv_is_closing((uv_handle_t *)&s->intr))
        uv_close((uv_handle_t *)&s->intr, NULL);
}
