/* service.h: what the Parley services share at start-up: the backend and admin entries of
 * their config tables (one definition, so names, bounds and help stay the same everywhere), and
 * turning log_level into logging. */
#ifndef PARLEY_SERVICE_H
#define PARLEY_SERVICE_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "limits.h"

/* Redis, PostgreSQL and the ingress sharding; STR fields owned by pcfg (pcfg_free). */
typedef struct {
    char *redis_host;
    long long redis_port;
    char *pg;
    long long pg_pool;
    long long ingress_shards;
} psvc_backend;

/* Admin listener and logging. */
typedef struct {
    char *admin_host;
    long long admin_port;
    char *log_level;
} psvc_admin;

/* Table entries for a psvc_backend member m of config struct T. */
#define PSVC_BACKEND_OPTS(T, m, pool_default)                                                   \
    {"redis_host", PCFG_STR, offsetof(T, m.redis_host), "127.0.0.1", 0, 0, "Redis host"},       \
    {"redis_port", PCFG_INT, offsetof(T, m.redis_port), "6379", 1, 65535, "Redis port"},        \
    {"pg", PCFG_STR, offsetof(T, m.pg), "host=127.0.0.1 port=5432 dbname=parley user=parley",  \
     0, 0, "PostgreSQL conninfo (numeric hosts: libpq resolves names synchronously)"},          \
    {"pg_pool", PCFG_INT, offsetof(T, m.pg_pool), pool_default, 1, 64,                          \
     "PostgreSQL connections"},                                                                 \
    {"ingress_shards", PCFG_INT, offsetof(T, m.ingress_shards), "4", 1,                         \
     PARLEY_INGRESS_SHARDS_MAX, "ingress streams; the same value on every gateway and fanout"}

/* Table entries for a psvc_admin member m of config struct T. */
#define PSVC_ADMIN_OPTS(T, m, port_default)                                                     \
    {"admin_host", PCFG_STR, offsetof(T, m.admin_host), "127.0.0.1", 0, 0,                      \
     "admin listener address (/healthz /readyz /metrics)"},                                     \
    {"admin_port", PCFG_INT, offsetof(T, m.admin_port), port_default, 0, 65535,                 \
     "admin listener port; 0 disables it"},                                                     \
    {"log_level", PCFG_STR, offsetof(T, m.log_level), "info", 0, 0,                             \
     "debug, info, warn or error"}

/* SIGTERM and SIGINT on the loop, both starting the service's graceful stop. */
typedef struct {
    uv_signal_t term, intr;
    void (*on_signal)(int signum, void *ud);
    void *ud;
} psvc_signals;

/* Returns 0, or -1 (logged) when the handlers could not be installed: a service must not run
 * without its graceful stop, so it exits then without running the loop. After 0, close with
 * psvc_signals_close so the loop can end. */
int psvc_signals_start(psvc_signals *s, uv_loop_t *loop, void (*on_signal)(int signum, void *ud),
                       void *ud);
void psvc_signals_close(psvc_signals *s);

/* plog_init(service, level named by log_level). Returns 0, or -1 after printing a usage error
 * prefixed with prog. */
int psvc_logging(const char *prog, const char *service, const char *log_level);

#endif
