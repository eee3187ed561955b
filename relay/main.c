/* main.c: parley-relay: options, logging, signals, the loop. SIGTERM and SIGINT close the
 * listener and every allocation and exit 0. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <sodium.h>

#include "config.h"
#include "log.h"
#include "relay.h"
#include "service.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static const pcfg_opt opts[] = {
    {"listen_host", PCFG_STR, offsetof(relay_config, listen_host), "127.0.0.1", 0, 0,
     "UDP and TCP listener address for TURN clients (numeric IPv4 or IPv6)"},
    {"listen_port", PCFG_INT, offsetof(relay_config, listen_port), "3478", 0, 65535,
     "UDP and TCP listener port (0 picks a free one)"},
    {"relay_ip", PCFG_STR, offsetof(relay_config, relay_ip), "127.0.0.1", 0, 0,
     "address the relay sockets bind (its family is the family of every allocation)"},
    {"external_ip", PCFG_STR, offsetof(relay_config, external_ip), "", 0, 0,
     "relayed address advertised to clients, when relay_ip is behind NAT (default relay_ip)"},
    {"relay_port_min", PCFG_INT, offsetof(relay_config, port_min), "49152", 1024, 65535,
     "lowest relay port"},
    {"relay_port_max", PCFG_INT, offsetof(relay_config, port_max), "65535", 1024, 65535,
     "highest relay port"},
    {"realm", PCFG_STR, offsetof(relay_config, realm), "parley", 0, 0, "STUN REALM"},
    {"secrets", PCFG_STR, offsetof(relay_config, secrets), NULL, 0, 0,
     "TURN REST API shared secrets, comma separated, all accepted (to rotate: add the new one, "
     "move the gateways to it, then drop the old one); required"},
    {"allow_peers", PCFG_STR, offsetof(relay_config, allow_peers), "", 0, 0,
     "CIDRs the relay may send to although they are private, loopback, ... (comma separated)"},
    {"user_quota", PCFG_INT, offsetof(relay_config, user_quota), STR(PARLEY_RELAY_USER_QUOTA_DEFAULT), 1,
     PARLEY_RELAY_ALLOCATIONS_MAX, "allocations per REST user"},
    {"alloc_bandwidth", PCFG_INT, offsetof(relay_config, alloc_bandwidth),
     STR(PARLEY_RELAY_ALLOC_BANDWIDTH_DEFAULT), 0, PARLEY_RELAY_ALLOC_BANDWIDTH_MAX,
     "bytes per second one allocation may relay, both directions together; 0: no cap"},
    {"max_allocations", PCFG_INT, offsetof(relay_config, max_allocations),
     STR(PARLEY_RELAY_ALLOCATIONS_DEFAULT), 1, PARLEY_RELAY_ALLOCATIONS_MAX,
     "allocations (and reserved ports) of this process"},
    {"nonce_ttl_s", PCFG_INT, offsetof(relay_config, nonce_ttl_s), STR(PARLEY_RELAY_NONCE_TTL_DEFAULT),
     10, 86400, "seconds a NONCE stays fresh (then 438)"},
    {"max_tcp", PCFG_INT, offsetof(relay_config, max_tcp), STR(PARLEY_RELAY_TCP_CONNS_DEFAULT), 0,
     PARLEY_RELAY_TCP_CONNS_MAX, "TCP connections of TURN clients (each holds about 160 KiB)"},
    PSVC_ADMIN_OPTS(relay_config, admin, "9103"),
};

static psvc_signals signals;

static void on_signal(int signum, void *ud)
{
    (void)signum;
    relay_stop(ud);
}

static void on_stopped(relay *r)
{
    (void)r;
    psvc_signals_close(&signals);
}

int main(int argc, char **argv)
{
    relay_config cfg = {0};
    size_t nopts = sizeof opts / sizeof opts[0];
    int rc = pcfg_parse("parley-relay",
                        "Parley relay: a TURN server (RFC 8656) for call media, with TURN REST "
                        "API credentials shared with the gateway.",
                        opts, nopts, &cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!cfg.secrets || !cfg.secrets[0]) {
        fprintf(stderr, "parley-relay: secrets is required (the TURN REST shared secret)\n");
        pcfg_free(opts, nopts, &cfg);
        return 2;
    }
    if (psvc_logging("parley-relay", "relay", cfg.admin.log_level) != 0) {
        pcfg_free(opts, nopts, &cfg);
        return 2;
    }
    if (sodium_init() < 0) {
        plog_error("sodium_init", "msg=failed");
        pcfg_free(opts, nopts, &cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    relay *r = calloc(1, sizeof *r);
    if (!r) {
        pcfg_free(opts, nopts, &cfg);
        return 1;
    }
    r->on_stopped = on_stopped;
    if (psvc_signals_start(&signals, loop, on_signal, r) != 0) {
        free(r);
        pcfg_free(opts, nopts, &cfg);
        return 1;
    }
    int started = relay_start(r, loop, &cfg);
    if (started != 0)
        relay_stop(r);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    relay_free(r);
    free(r);
    pcfg_free(opts, nopts, &cfg);
    plog_info("stopped", "rc=%d", started == 0 ? 0 : 1);
    return started == 0 ? 0 : 1;
}
