/* lt_main.c: parley-loadtest: reads the options, checks the servers and the machine, loads
 * (and completes) the device pool, runs the scenario, prints the report and exits with its
 * verdict (lt_report.h). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lt_dev.h"
#include "lt_drive.h"
#include "lt_msg.h"
#include "lt_proc.h"
#include "lt_rand.h"
#include "lt_recv.h"
#include "lt_register.h"
#include "lt_report.h"

static void lt_signal_cb(uv_signal_t *s, int signum)
{
    lt_run *r = s->data;

    (void)signum;
    r->interrupted = 1;
}

static void lt_say_fatal(const char *msg)
{
    fprintf(stderr, LT_PROG ": %s\n", msg);
}

/* Servers, source addresses, file limit: problems are usage errors (2) or setup failures (3). */
static int lt_setup_net(lt_run *r, char *err, size_t cap, int *code)
{
    const lt_opts *o = r->o;
    uint32_t nsrc = o->sources, conns;
    int any_v4 = 0;

    *code = 2;
    for (unsigned k = 0; k < o->nservers; k++) {
        if (lt_net_server(o->servers[k], &r->servers[k], err, cap) < 0)
            return -1;
        any_v4 |= !r->servers[k].v6;
    }
    r->nservers = o->nservers;
    *code = 3;
    if (!nsrc)
        nsrc = (o->devices + LT_CONNS_PER_SOURCE - 1) / LT_CONNS_PER_SOURCE;
    if (!nsrc)
        nsrc = 1;
    if (any_v4) {
        r->src = calloc(nsrc, sizeof *r->src);
        if (!r->src) {
            snprintf(err, cap, "out of memory");
            return -1;
        }
        for (uint32_t k = 0; k < nsrc; k++) {
            lt_net_source(k, r->src[k]);
            if (lt_net_check_source(r->src[k], err, cap) < 0)
                return -1;
        }
        r->nsrc = nsrc;
    } else if (o->devices > LT_CONNS_PER_SOURCE) {
        fprintf(stderr, LT_PROG ": warning: IPv6 servers get no source addresses (::1 is the "
                        "only one); %u connections may run out of ephemeral ports\n",
                o->devices);
    }
    /* pool only registers: one connection per worker, at most --concurrency */
    conns = o->scenario == LT_SC_POOL && o->concurrency < o->devices ? o->concurrency
                                                                      : o->devices;
    r->nofile = lt_net_raise_nofile(conns, err, cap);
    return r->nofile < 0 ? -1 : 0;
}

static void lt_warn_rates(const lt_opts *o)
{
    double senders = o->scenario == LT_SC_BURST ? o->senders : o->devices;

    if ((o->scenario == LT_SC_CHAT || o->scenario == LT_SC_BURST) &&
        o->rate / senders > PARLEY_SEND_RATE_PER_S)
        fprintf(stderr, LT_PROG ": warning: %.0f sends/s over %.0f senders is %.0f/s each; the "
                        "gateway allows %d/s per connection and answers RATE_LIMITED above\n",
                o->rate, senders, o->rate / senders, PARLEY_SEND_RATE_PER_S);
    if (o->scenario == LT_SC_BURST && o->messages > PARLEY_QUEUE_MAX_DEFAULT)
        fprintf(stderr, LT_PROG ": warning: %u messages for one device is over the default "
                        "queue limit (%d): expect QUEUE_FULL\n",
                o->messages, PARLEY_QUEUE_MAX_DEFAULT);
}

/* The report to a file as well, for scripts that keep results and show the summary. */
static int lt_write_json_file(const char *path, const lt_run *r, const lt_result *res)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, LT_PROG ": cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    lt_report_json(r, res, f);
    if (fclose(f) != 0) {
        fprintf(stderr, LT_PROG ": writing %s failed\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    lt_opts o;
    lt_run r;
    lt_result res;
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    pc_status st;
    char err[512];
    int rc, code;

    rc = lt_opts_parse(&o, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        lt_say_fatal("libsodium failed to initialise");
        return 3;
    }
    memset(&r, 0, sizeof r);
    r.o = &o;
    if (lt_setup_net(&r, err, sizeof err, &code) < 0) {
        lt_say_fatal(err);
        free(r.src);
        return code;
    }
    lt_warn_rates(&o);
    randombytes_buf(&r.run_id, sizeof r.run_id);
    lt_rand_seed(randombytes_random() | (uint64_t)randombytes_random() << 32);
    r.t0_us = pclock_mono_us();
    lt_track_init(&r.tr, r.t0_us);

    uv_loop_init(&loop);
    r.loop = &loop;
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    sigint.data = sigterm.data = &r;
    uv_signal_start(&sigint, lt_signal_cb, SIGINT);
    uv_signal_start(&sigterm, lt_signal_cb, SIGTERM);
    /* lws sizes its descriptor table from the file limit: raised above, before this */
    r.ctx = pc_ctx_new(&loop, o.verbose, &st);
    if (!r.ctx) {
        lt_fatal(&r, "%s", st.msg);
        goto out;
    }
    r.m.self_rss_base_kb = lt_proc_rss_kb(0);
    if (lt_pool_load(&r.pool, o.pool, o.devices, &st) < 0) {
        lt_fatal(&r, "%s", st.msg);
        goto out;
    }
    if (r.pool.n < o.devices && lt_register(&r, o.devices) < 0)
        goto out;
    if (o.scenario != LT_SC_POOL) {
        if (lt_devs_init(&r) < 0 || lt_msgs_init(&r) < 0) {
            lt_fatal(&r, "out of memory for %u devices", o.devices);
            goto out;
        }
        lt_acks_init(&r);
        lt_drive(&r);
    }
out:
    lt_result_compute(&r, &res);
    if (res.exit_code == 3)
        lt_say_fatal(res.verdict);
    if (o.json)
        lt_report_json(&r, &res, stdout);
    else
        lt_report_text(&r, &res, stdout);
    fflush(stdout);
    if (o.json_file && lt_write_json_file(o.json_file, &r, &res) != 0 && res.exit_code == 0)
        res.exit_code = 3;

    lt_devs_free(&r);
    lt_acks_free(&r);
    lt_msgs_free(&r);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    if (r.ctx)
        pc_ctx_free(r.ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    lt_pool_free(&r.pool);
    lt_track_free(&r.tr);
    free(r.src);
    return res.exit_code;
}
