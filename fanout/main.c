/* main.c: parley-fanout: options, logging, signals, the loop. SIGTERM and SIGINT finish the
 * batch in flight, close everything and exit 0. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fanout.h"
#include "log.h"
#include "service.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const pcfg_opt opts[] = {
    /* one connection per lane of the default ingress_shards: batches of different shards
     * are stored side by side */
    PSVC_BACKEND_OPTS(pfo_config, backend, "4"),
    PSVC_ADMIN_OPTS(pfo_config, admin, "9102"),
    {"fanout_id", PCFG_STR, offsetof(pfo_config, fanout_id), NULL, 0, 0,
     "consumer name in the ingress consumer group; unique per process (default hostname-pid)"},
    {"queue_max", PCFG_INT, offsetof(pfo_config, queue_max), STR(PARLEY_QUEUE_MAX_DEFAULT), 1,
     2147483647, "queued envelopes per device above which sends get QUEUE_FULL"},
    {"claim_idle_ms", PCFG_INT, offsetof(pfo_config, claim_idle_ms), "5000", 100, 3600000,
     "ingress entries pending this long on another consumer are taken over"},
};

static psvc_signals signals;

static void on_signal(int signum, void *ud)
{
    (void)signum;
    pfo_stop(ud);
}

static void on_stopped(pfo *f)
{
    (void)f;
    psvc_signals_close(&signals);
}

int main(int argc, char **argv)
{
    pfo_config cfg = {0};
    size_t nopts = sizeof opts / sizeof opts[0];
    int rc = pcfg_parse("parley-fanout",
                        "Parley fanout: stores sends from the ingress streams in PostgreSQL, "
                        "answers senders and pushes to recipients' gateways.",
                        opts, nopts, &cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (psvc_logging("parley-fanout", "fanout", cfg.admin.log_level) != 0) {
        pcfg_free(opts, nopts, &cfg);
        return 2;
    }

    char consumer[PARLEY_GATEWAY_ID_MAX + 1];
    if (cfg.fanout_id && strlen(cfg.fanout_id) > PARLEY_GATEWAY_ID_MAX) {
        fprintf(stderr, "parley-fanout: fanout_id is longer than %d bytes\n",
                PARLEY_GATEWAY_ID_MAX);
        pcfg_free(opts, nopts, &cfg);
        return 2;
    }
    if (cfg.fanout_id && cfg.fanout_id[0]) {
        snprintf(consumer, sizeof consumer, "%s", cfg.fanout_id);
    } else {
        char host[PARLEY_GATEWAY_ID_MAX - 16] = "fanout";
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "fanout");
        host[sizeof host - 1] = '\0';
        snprintf(consumer, sizeof consumer, "%s-%ld", host, (long)getpid());
    }

    /* a peer closing its socket must be an error return, not the end of the process */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    pfo f = {0};
    f.on_stopped = on_stopped;
    if (psvc_signals_start(&signals, loop, on_signal, &f) != 0) {
        pcfg_free(opts, nopts, &cfg);
        return 1;
    }
    int started = pfo_start(&f, loop, &cfg, consumer);
    if (started != 0)
        pfo_stop(&f);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    pfo_free(&f);
    pcfg_free(opts, nopts, &cfg);
    return started == 0 ? 0 : 1;
}
