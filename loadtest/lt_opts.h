/* lt_opts.h: the command line of parley-loadtest: the scenario (first argument), flags with
 * their defaults, and --help. Parsing checks syntax and the hard caps that keep a run bounded
 * (LT_*_MAX, common/limits.h "Load-test harness"); lt_net.c checks that every server is on
 * loopback. */
#ifndef LT_OPTS_H
#define LT_OPTS_H

#include <stdint.h>

#include "limits.h"

#define LT_PROG "parley-loadtest"

typedef enum { LT_SC_POOL, LT_SC_CONNECT, LT_SC_CHAT, LT_SC_BURST } lt_scenario;

typedef struct {
    lt_scenario scenario;
    const char *scenario_name;
    const char *servers[LT_SERVERS_MAX];
    unsigned nservers;
    int gw_pids[LT_SERVERS_MAX];
    unsigned ngw_pids;
    uint32_t devices;
    double rate;             /* Send frames per second, all senders together */
    double seconds;          /* idle (connect) or sending (chat) time */
    double grace;            /* after sending: wait this long for deliveries */
    double connect_timeout;  /* all devices up by then, or the run goes on without the rest */
    double register_timeout; /* the whole pool registration */
    uint32_t group;          /* chat: devices per group (2 = pairs) */
    double offline_fraction, offline_seconds;
    uint32_t messages, senders; /* burst */
    uint32_t payload;        /* envelope content bytes */
    const char *pool;
    const char *json_file;   /* also write the JSON report here (the summary stays on stdout) */
    uint32_t sources;        /* 0: LT_CONNS_PER_SOURCE per source */
    uint32_t concurrency;    /* connection attempts and registrations in flight */
    int json, quiet, verbose;
} lt_opts;

/* Fills o from argv. Returns 0 to run, 1 when --help was printed (exit 0), -1 after printing
 * the problem on stderr (exit 2). Strings in o point into argv. */
int lt_opts_parse(lt_opts *o, int argc, char **argv);

#endif
