#include "lt_opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lt_payload.h"

#define LT_STR_(x) #x
#define LT_STR(x) LT_STR_(x)  /* a limit's digits, for the messages */

static const char lt_help[] =
    "Usage: " LT_PROG " SCENARIO [--server URL]... [OPTIONS]\n"
    "Load generator for a Parley cluster on loopback: many simulated devices in one process\n"
    "(libuv + libwebsockets), spread over many loopback source addresses.\n"
    "\n"
    "Scenarios:\n"
    "  pool     make sure --devices devices exist in the pool file (register the missing ones)\n"
    "  connect  N devices authenticate and stay idle for --seconds; reports the connect rate,\n"
    "           failures by reason and the gateways' memory per connection (--gateway-pid)\n"
    "  chat     pairs (or --group K) of devices exchange messages at --rate for --seconds, while\n"
    "           --offline-fraction of them go offline for --offline-seconds at random times\n"
    "  burst    one recipient is offline while --senders devices queue --messages for it at\n"
    "           --rate; then it connects and drains; reports the drain time and rate\n"
    "\n"
    "Servers and addresses:\n"
    "  --server URL          ws://HOST:PORT/v1/ws of a gateway; repeat for several (devices are\n"
    "                        spread round-robin; a reconnect goes to the next one). HOST must be\n"
    "                        loopback (127.0.0.0/8 or ::1). [ws://127.0.0.1:8080/v1/ws]\n"
    "  --sources N           loopback source addresses 127.0.1.1, 127.0.1.2, ...; each device\n"
    "                        always uses the same one. 0 = one per 20,000 devices. [0]\n"
    "  --concurrency C       connection attempts and registrations in flight [512]\n"
    "  --gateway-pid PID     a gateway's pid, in the order of --server (repeatable): its VmRSS\n"
    "                        is read before connecting and once all are up, and divided by the\n"
    "                        connections it holds\n"
    "\n"
    "Devices:\n"
    "  --devices N           simulated devices (connect, pool: 1000; chat: 100; burst: senders+1)\n"
    "  --pool FILE           device pool: one device per line (username, device id, registration\n"
    "                        id, hex signing key seed), 0600, replaced atomically. Missing devices\n"
    "                        are registered (usernames lt<8 hex>x<n>) and appended. [loadtest.pool]\n"
    "  --register-timeout S  bound on registering the missing devices [600]\n"
    "\n"
    "Load:\n"
    "  --rate R              Send frames per second, all senders together (chat 1000, burst 800).\n"
    "                        The gateway allows 100/s per connection.\n"
    "  --seconds D           connect: idle time; chat: sending time [10]\n"
    "  --group K             chat: devices per group, each sends to the others in turn [2]\n"
    "  --offline-fraction F  chat: fraction of devices that go offline once, at a random time [0.1]\n"
    "  --offline-seconds S   chat: how long they stay offline [2]\n"
    "  --messages M          burst: messages queued for the offline recipient [10000]\n"
    "  --senders S           burst: devices sending them [10]\n"
    "  --payload BYTES       envelope size: random bytes around a 40-byte harness header (run id,\n"
    "                        sequence number, send time) [256]\n"
    "  --e2ee                (not available yet: the harness writes raw Send frames with random\n"
    "                        opaque payloads, not the client library's encrypted sends)\n"
    "\n"
    "Time bounds (the run stops by itself after connect-timeout + seconds + grace):\n"
    "  --connect-timeout S   all devices must be up by then, else the run goes on without the\n"
    "                        rest (none up: exit 3) [120]\n"
    "  --grace S             after sending stops: offline devices come back and the run waits\n"
    "                        until every accepted message is delivered, at most S seconds [15]\n"
    "\n"
    "Output:\n"
    "  --json                one JSON object on stdout instead of the summary\n"
    "  --json-file FILE      also write that JSON object to FILE (the summary stays on stdout)\n"
    "  --quiet               no progress line on stderr\n"
    "  --verbose             libwebsockets warnings on stderr\n"
    "  --help                this text\n"
    "\n"
    "Accounting: sent = logical messages; accepted = answered SendResult (a duplicate=true answer\n"
    "to a resend counts once); rejected = final errors by code; retried = RATE_LIMITED /\n"
    "UNAVAILABLE / SHUTTING_DOWN answers, resent with the same client_id after retry_after_ms;\n"
    "resends = sends repeated after a reconnect; delivered = unique messages received; lost =\n"
    "accepted but not delivered by the end. Latency is send to receipt; \"live\" counts messages\n"
    "pushed to a recipient that was online when they were sent, \"queued\" the others.\n"
    "\n"
    "Exit: 0 nothing accepted was lost and the run worked; 1 something was lost or rejected, or\n"
    "not every device came up; 2 usage; 3 setup failure (cannot connect or register, pool does\n"
    "not match the server, file limit).\n";

static int lt_bad(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, LT_PROG ": ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (--help lists the options)\n");
    return -1;
}

static int lt_num(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d))
        return lt_bad("%s wants a number, not \"%s\"", name, v);
    if (d < lo || d > hi) {
        char range[96];
        snprintf(range, sizeof range, "%g..%g", lo, hi);
        return lt_bad("%s is out of range (%s)", name, range);
    }
    *out = d;
    return 0;
}

static int lt_u32(const char *name, const char *v, double lo, double hi, uint32_t *out)
{
    double d;

    if (lt_num(name, v, lo, hi, &d) < 0)
        return -1;
    if (d != floor(d))
        return lt_bad("%s wants a whole number, not \"%s\"", name, v);
    *out = (uint32_t)d;
    return 0;
}

static int lt_scenario_of(const char *s, lt_opts *o)
{
    static const struct { const char *name; lt_scenario sc; } tab[] = {
        { "pool", LT_SC_POOL }, { "connect", LT_SC_CONNECT },
        { "chat", LT_SC_CHAT }, { "burst", LT_SC_BURST },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].name)) {
            o->scenario = tab[i].sc;
            o->scenario_name = tab[i].name;
            return 0;
        }
    return lt_bad("unknown scenario \"%s\"%s", s, " (pool, connect, chat or burst)");
}

/* Values are "--name V" or "--name=V"; sets *val and advances *i. */
static int lt_value(int argc, char **argv, int *i, const char *arg, const char *eq,
                    const char **val)
{
    if (eq) {
        *val = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return lt_bad("%s needs a value%s", arg, "");
    *val = argv[++*i];
    return 0;
}

static int lt_is(const char *arg, const char *eq, const char *name)
{
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    return strlen(name) == n && !strncmp(arg, name, n);
}

int lt_opts_parse(lt_opts *o, int argc, char **argv)
{
    int devices_set = 0, rate_set = 0, seconds_set = 0, have_scenario = 0;
    double d;

    memset(o, 0, sizeof *o);
    o->grace = 15;
    o->connect_timeout = 120;
    o->register_timeout = 600;
    o->group = 2;
    o->offline_fraction = 0.1;
    o->offline_seconds = 2;
    o->messages = 10000;
    o->senders = 10;
    o->payload = 256;
    o->pool = "loadtest.pool";
    o->concurrency = 512;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v = NULL;

        if (a[0] != '-' || a[1] != '-') {
            if (!strcmp(a, "-h")) {
                fputs(lt_help, stdout);
                return 1;
            }
            if (a[0] == '-')
                return lt_bad("unknown option %s%s", a, "");
            if (have_scenario)
                return lt_bad("unexpected argument \"%s\"%s", a, "");
            if (lt_scenario_of(a, o) < 0)
                return -1;
            have_scenario = 1;
            continue;
        }
        if (eq && (lt_is(a, eq, "--help") || lt_is(a, eq, "--json") || lt_is(a, eq, "--quiet") ||
                   lt_is(a, eq, "--verbose") || lt_is(a, eq, "--e2ee")))
            return lt_bad("%s takes no value%s", a, "");
        if (lt_is(a, eq, "--help")) {
            fputs(lt_help, stdout);
            return 1;
        } else if (lt_is(a, eq, "--json")) {
            o->json = 1;
        } else if (lt_is(a, eq, "--quiet")) {
            o->quiet = 1;
        } else if (lt_is(a, eq, "--verbose")) {
            o->verbose = 1;
        } else if (lt_is(a, eq, "--e2ee")) {
            fprintf(stderr, LT_PROG ": --e2ee is not available yet: the harness writes raw "
                            "Send frames with random opaque payloads (which the server treats "
                            "like ciphertext), not the client library's encrypted sends\n");
            return -1;
        } else {
            if (lt_value(argc, argv, &i, a, eq, &v) < 0)
                return -1;
            if (lt_is(a, eq, "--json-file")) {
                if (!*v) /* refused now, not after the run */
                    return lt_bad("--json-file wants a file name%s%s", "", "");
                o->json_file = v;
            } else if (lt_is(a, eq, "--server")) {
                if (o->nservers >= LT_SERVERS_MAX)
                    return lt_bad("at most %s servers%s", LT_STR(LT_SERVERS_MAX), "");
                o->servers[o->nservers++] = v;
            } else if (lt_is(a, eq, "--gateway-pid")) {
                uint32_t pid;
                if (o->ngw_pids >= LT_SERVERS_MAX)
                    return lt_bad("at most %s gateway pids%s", LT_STR(LT_SERVERS_MAX), "");
                if (lt_u32("--gateway-pid", v, 1, 4194304, &pid) < 0)
                    return -1;
                o->gw_pids[o->ngw_pids++] = (int)pid;
            } else if (lt_is(a, eq, "--devices")) {
                if (lt_u32("--devices", v, 1, LT_DEVICES_MAX, &o->devices) < 0)
                    return -1;
                devices_set = 1;
            } else if (lt_is(a, eq, "--rate")) {
                if (lt_num("--rate", v, 0.001, LT_RATE_MAX, &o->rate) < 0)
                    return -1;
                rate_set = 1;
            } else if (lt_is(a, eq, "--seconds")) {
                if (lt_num("--seconds", v, 0, LT_SECONDS_MAX, &o->seconds) < 0)
                    return -1;
                seconds_set = 1;
            } else if (lt_is(a, eq, "--grace")) {
                if (lt_num("--grace", v, 0, LT_SECONDS_MAX, &o->grace) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--connect-timeout")) {
                if (lt_num("--connect-timeout", v, 1, LT_SECONDS_MAX, &o->connect_timeout) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--register-timeout")) {
                if (lt_num("--register-timeout", v, 1, 4 * LT_SECONDS_MAX,
                           &o->register_timeout) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--group")) {
                if (lt_u32("--group", v, 2, LT_GROUP_MAX, &o->group) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--offline-fraction")) {
                if (lt_num("--offline-fraction", v, 0, 1, &o->offline_fraction) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--offline-seconds")) {
                if (lt_num("--offline-seconds", v, 0, LT_SECONDS_MAX, &o->offline_seconds) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--messages")) {
                if (lt_u32("--messages", v, 1, LT_MESSAGES_MAX, &o->messages) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--senders")) {
                if (lt_u32("--senders", v, 1, LT_DEVICES_MAX - 1, &o->senders) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--payload")) {
                if (lt_u32("--payload", v, LT_HDR_BYTES, PARLEY_MAX_ENVELOPE_BYTES,
                           &o->payload) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--pool")) {
                if (!*v)
                    return lt_bad("--pool wants a file name%s%s", "", "");
                o->pool = v;
            } else if (lt_is(a, eq, "--sources")) {
                if (lt_u32("--sources", v, 0, LT_SOURCES_MAX, &o->sources) < 0)
                    return -1;
            } else if (lt_is(a, eq, "--concurrency")) {
                if (lt_u32("--concurrency", v, 1, LT_CONCURRENCY_MAX, &o->concurrency) < 0)
                    return -1;
            } else {
                return lt_bad("unknown option %s%s", a, "");
            }
        }
    }
    if (!have_scenario)
        return lt_bad("no scenario given%s%s", " (pool, connect, chat or burst)", "");
    if (!o->nservers)
        o->servers[o->nservers++] = "ws://127.0.0.1:8080/v1/ws";
    if (o->ngw_pids > o->nservers)
        return lt_bad("more --gateway-pid than --server (they pair up in order)%s%s", "", "");

    switch (o->scenario) {
    case LT_SC_POOL:
    case LT_SC_CONNECT:
        if (!devices_set)
            o->devices = 1000;
        if (!seconds_set)
            o->seconds = 10;
        break;
    case LT_SC_CHAT:
        if (!devices_set)
            o->devices = 100;
        if (!rate_set)
            o->rate = 1000;
        if (!seconds_set)
            o->seconds = 10;
        if (o->devices < 2)
            return lt_bad("chat needs at least 2 devices%s%s", "", "");
        if (o->group > o->devices) {
            char n[16];
            snprintf(n, sizeof n, "%u", (unsigned)o->devices);
            return lt_bad("--group is larger than --devices (%s)%s", n, "");
        }
        break;
    case LT_SC_BURST:
        if (!rate_set)
            o->rate = 800;
        if (!devices_set)
            o->devices = o->senders + 1;
        if (o->devices < o->senders + 1)
            return lt_bad("burst needs --devices >= --senders + 1 (one recipient)%s%s", "", "");
        /* sending M at R, then the drain: the run's time bound follows from them */
        d = ceil(o->messages / o->rate);
        if (!seconds_set)
            o->seconds = d + 10 > LT_SECONDS_MAX ? LT_SECONDS_MAX : d + 10;
        if (d > LT_SECONDS_MAX)
            return lt_bad("--messages / --rate is over the %s s cap%s", LT_STR(LT_SECONDS_MAX), "");
        break;
    }
    return 0;
}
