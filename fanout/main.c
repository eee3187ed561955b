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

#define STR_(x) #x
#define STR(x) STR_(x)

static const pcfg_opt opts[] = {
    {"redis_host", PCFG_STR, offsetof(pfo_config, redis_host), "127.0.0.1", 0, 0,
     "Redis host (ingress streams, delivery streams, presence)"},
    {"redis_port", PCFG_INT, offsetof(pfo_config, redis_port), "6379", 1, 65535, "Redis port"},
    {"pg", PCFG_STR, offsetof(pfo_config, pg),
     "host=127.0.0.1 port=5432 dbname=parley user=parley", 0, 0, "PostgreSQL conninfo"},
    {"pg_pool", PCFG_INT, offsetof(pfo_config, pg_pool), "2", 1, 64,
     "PostgreSQL connections (one batch call at a time, plus pruning)"},
    {"ingress_shards", PCFG_INT, offsetof(pfo_config, ingress_shards), "4", 1,
     PARLEY_INGRESS_SHARDS_MAX, "ingress streams; the same value on every gateway and fanout"},
    {"admin_host", PCFG_STR, offsetof(pfo_config, admin_host), "127.0.0.1", 0, 0,
     "admin listener address (/healthz /readyz /metrics)"},
    {"admin_port", PCFG_INT, offsetof(pfo_config, admin_port), "9102", 0, 65535,
     "admin listener port; 0 disables it"},
    {"log_level", PCFG_STR, offsetof(pfo_config, log_level), "info", 0, 0,
     "debug, info, warn or error"},
    {"fanout_id", PCFG_STR, offsetof(pfo_config, fanout_id), NULL, 0, 0,
     "consumer name in the ingress consumer group; unique per process (default hostname-pid)"},
    {"queue_max", PCFG_INT, offsetof(pfo_config, queue_max), STR(PARLEY_QUEUE_MAX_DEFAULT), 1,
     2147483647, "queued envelopes per device above which sends get QUEUE_FULL"},
    {"claim_idle_ms", PCFG_INT, offsetof(pfo_config, claim_idle_ms), "5000", 100, 3600000,
     "ingress entries pending this long on another consumer are taken over"},
};

static uv_signal_t sig_term, sig_int;

static void on_signal(uv_signal_t *h, int signum)
{
    plog_info("signal", "signum=%d", signum);
    pfo_stop(h->data);
}

static void on_stopped(pfo *f)
{
    (void)f;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
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
    plog_level level;
    if (plog_parse_level(cfg.log_level, &level) != 0) {
        fprintf(stderr, "parley-fanout: log_level must be debug, info, warn or error\n");
        pcfg_free(opts, nopts, &cfg);
        return 2;
    }
    plog_init("fanout", level);

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
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    sig_term.data = sig_int.data = &f;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);

    int started = pfo_start(&f, loop, &cfg, consumer);
    if (started != 0)
        pfo_stop(&f);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    pfo_free(&f);
    pcfg_free(opts, nopts, &cfg);
    return started == 0 ? 0 : 1;
}
