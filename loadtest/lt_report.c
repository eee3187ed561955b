#include "lt_report.h"

#include <string.h>

#include "lt_json.h"
#include "lt_msg.h"

static double lt_secs(uint64_t from_us, uint64_t to_us)
{
    return to_us > from_us ? (double)(to_us - from_us) / 1e6 : 0;
}

static double lt_per(double n, double s)
{
    return s > 0 ? n / s : 0;
}

void lt_result_compute(const lt_run *r, lt_result *res)
{
    const lt_track *t = &r->tr;
    const lt_meas *m = &r->m;
    uint32_t wanted = r->o->scenario == LT_SC_BURST ? r->dv.n - 1 : r->dv.n;
    uint64_t end;
    size_t vl = 0;

    memset(res, 0, sizeof *res);
    res->lost = lt_track_lost(t, res->lost_samples, &res->nlost_samples);
    res->unanswered = lt_msgs_live(r);
    res->connect_s = r->dv.t_all_up_us ? lt_secs(r->dv.t_first_attempt_us, r->dv.t_all_up_us) : -1;
    res->connect_rate = res->connect_s > 0 ? wanted / res->connect_s : -1;
    if (r->send_start_us) {
        end = r->send_end_us ? r->send_end_us : m->t_run_end_us;
        res->send_s = lt_secs(r->send_start_us, end);
        res->sent_per_s = lt_per((double)t->sent, res->send_s);
        res->accepted_per_s =
            lt_per((double)t->accepted, lt_secs(r->send_start_us, t->last_accept_us > end
                                                                     ? t->last_accept_us
                                                                     : end));
        res->delivered_per_s =
            lt_per((double)t->delivered, lt_secs(r->send_start_us, t->last_delivery_us > end
                                                                      ? t->last_delivery_us
                                                                      : end));
    }
    for (unsigned k = 0; k < r->o->ngw_pids; k++) {
        res->gw_rss_per_conn[k] = -1;
        if (m->gw_after_done && m->gw_conns[k] && m->gw_rss_before_kb[k] >= 0 &&
            m->gw_rss_after_kb[k] >= 0)
            res->gw_rss_per_conn[k] = (double)(m->gw_rss_after_kb[k] - m->gw_rss_before_kb[k]) *
                                      1024.0 / m->gw_conns[k];
        res->gw_cpu_s[k] = m->gw_cpu_start[k] >= 0 && m->gw_cpu_end[k] >= 0
                               ? m->gw_cpu_end[k] - m->gw_cpu_start[k]
                               : -1;
    }
    res->self_rss_per_dev = m->self_rss_up_kb > 0 && r->dv.n
                                ? (double)(m->self_rss_up_kb - m->self_rss_base_kb) * 1024.0 /
                                      r->dv.n
                                : -1;
    res->self_cpu_s = m->self_cpu_end - m->self_cpu_start;
    if (r->burst_drain_end_us) {
        res->drain_s = lt_secs(r->burst_drain_start_us, r->burst_drain_end_us);
        res->drain_rate = lt_per((double)t->accepted, res->drain_s);
    }

    /* the verdict */
    if (r->exit_code == 3) {
        res->exit_code = 3;
        snprintf(res->verdict, sizeof res->verdict, "%s", r->fatal_msg);
        return;
    }
#define LT_VERDICT(...)                                                                        \
    do {                                                                                       \
        if (vl < sizeof res->verdict)                                                          \
            vl += (size_t)snprintf(res->verdict + vl, sizeof res->verdict - vl, __VA_ARGS__);  \
    } while (0)
    if (res->lost)
        LT_VERDICT("%llu accepted messages lost; ", (unsigned long long)res->lost);
    if (t->rejected.total)
        LT_VERDICT("%llu sends rejected; ", (unsigned long long)t->rejected.total);
    if (res->unanswered)
        LT_VERDICT("%u sends never answered; ", res->unanswered);
    if (r->dv.ever_up < r->dv.n && r->o->scenario != LT_SC_POOL)
        LT_VERDICT("%u of %u devices never came up; ", r->dv.n - r->dv.ever_up, r->dv.n);
    if (r->interrupted)
        LT_VERDICT("interrupted; ");
    if (t->oom)
        LT_VERDICT("out of memory for the accounting; ");
#undef LT_VERDICT
    if (vl >= 2 && vl < sizeof res->verdict)
        res->verdict[vl - 2] = '\0';
    res->exit_code = res->verdict[0] ? 1 : 0;
}

/* ---- text ------------------------------------------------------------------------------- */

static void lt_text_reasons(FILE *f, const char *title, const lt_reasons *t)
{
    if (!t->total)
        return;
    fprintf(f, "  %s: %llu\n", title, (unsigned long long)t->total);
    for (unsigned i = 0; i < t->n; i++)
        fprintf(f, "    %-22s %llu%s%s\n", t->r[i].name, (unsigned long long)t->r[i].n,
                t->r[i].example[0] ? "  e.g. " : "", t->r[i].example);
}

static void lt_text_hist(FILE *f, const char *name, const lt_hist *h)
{
    if (!h->count) {
        fprintf(f, "  %-7s none\n", name);
        return;
    }
    fprintf(f, "  %-7s n=%-9llu p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n", name,
            (unsigned long long)h->count, lt_hist_pct(h, 50) / 1e3, lt_hist_pct(h, 90) / 1e3,
            lt_hist_pct(h, 99) / 1e3, lt_hist_pct(h, 99.9) / 1e3, (double)h->max / 1e3);
}

void lt_report_text(const lt_run *r, const lt_result *res, FILE *f)
{
    const lt_opts *o = r->o;
    const lt_track *t = &r->tr;
    const lt_meas *m = &r->m;

    fprintf(f, "parley-loadtest %s: %u devices, %u server(s), %u source address(es), run "
               "%016llx\n",
            o->scenario_name, r->pool.n, r->nservers, r->nsrc ? r->nsrc : 1,
            (unsigned long long)r->run_id);
    fprintf(f, "pool %s: %u loaded, %u registered by this run", r->pool.path, r->pool.loaded,
            m->registered);
    if (m->registered)
        fprintf(f, " in %.1f s (%.0f/s)", m->register_us / 1e6,
                lt_per(m->registered, m->register_us / 1e6));
    fputc('\n', f);
    if (o->scenario == LT_SC_POOL)
        goto verdict;

    fprintf(f, "connections:\n");
    fprintf(f, "  peak authenticated %u, came up %u of %u, attempts %llu, reconnects %llu\n",
            r->dv.max_up, r->dv.ever_up, r->dv.n, (unsigned long long)r->dv.attempts,
            (unsigned long long)r->dv.reconnects);
    if (res->connect_s >= 0)
        fprintf(f, "  all up in %.2f s: %.0f authenticated connections/s\n", res->connect_s,
                res->connect_rate);
    else
        fprintf(f, "  not all devices came up within %.0f s\n", o->connect_timeout);
    lt_text_reasons(f, "failed attempts", &r->dv.fail);
    lt_text_reasons(f, "dropped connections", &r->dv.drops);
    for (unsigned k = 0; k < o->ngw_pids; k++) {
        fprintf(f, "  gateway pid %d (%s): VmRSS %ld -> %ld KiB with %u connections", o->gw_pids[k],
                r->servers[k].url, m->gw_rss_before_kb[k], m->gw_rss_after_kb[k], m->gw_conns[k]);
        if (res->gw_rss_per_conn[k] >= 0)
            fprintf(f, ": %.0f bytes/connection", res->gw_rss_per_conn[k]);
        if (res->gw_cpu_s[k] >= 0)
            fprintf(f, "; CPU %.2f s", res->gw_cpu_s[k]);
        fputc('\n', f);
    }
    fprintf(f, "harness: VmRSS %ld KiB", m->self_rss_base_kb);
    if (res->self_rss_per_dev >= 0)
        fprintf(f, " -> %ld KiB with every device up: %.0f bytes/device", m->self_rss_up_kb,
                res->self_rss_per_dev);
    fprintf(f, "; CPU %.2f s over %.1f s; open file limit %ld\n", res->self_cpu_s,
            lt_secs(m->t_run_start_us, m->t_run_end_us), r->nofile);
    if (o->scenario == LT_SC_CONNECT)
        goto verdict;

    fprintf(f, "messages:\n");
    fprintf(f, "  sent %llu, accepted %llu, delivered %llu, lost %llu, duplicates dropped %llu\n",
            (unsigned long long)t->sent, (unsigned long long)t->accepted,
            (unsigned long long)t->delivered, (unsigned long long)res->lost,
            (unsigned long long)t->duplicates);
    fprintf(f, "  resends %llu, duplicate answers %llu, unanswered %u, foreign envelopes %llu, "
               "misrouted %llu\n",
            (unsigned long long)t->resends, (unsigned long long)t->dup_answers, res->unanswered,
            (unsigned long long)t->foreign, (unsigned long long)t->misrouted);
    lt_text_reasons(f, "rejected", &t->rejected);
    lt_text_reasons(f, "retried", &t->retried);
    if (res->nlost_samples) {
        fprintf(f, "  lost sequence numbers:");
        for (unsigned i = 0; i < res->nlost_samples; i++)
            fprintf(f, " %llu", (unsigned long long)res->lost_samples[i]);
        fputc('\n', f);
    }
    fprintf(f, "  acks: %llu frames, %llu ids, %llu refused\n", (unsigned long long)r->ak.frames,
            (unsigned long long)r->ak.ids, (unsigned long long)r->ak.errors);
    fprintf(f, "throughput: target %.0f/s; over %.1f s of sending: sent %.0f/s, accepted %.0f/s, "
               "delivered %.0f/s\n",
            o->rate, res->send_s, res->sent_per_s, res->accepted_per_s, res->delivered_per_s);
    fprintf(f, "latency, send to receipt:\n");
    lt_text_hist(f, "all", &t->all);
    lt_text_hist(f, "live", &t->live);
    lt_text_hist(f, "queued", &t->queued);
    fprintf(f, "longest delivery stall: %.1f ms\n", t->stall_max_us / 1e3);
    if (o->scenario == LT_SC_BURST)
        fprintf(f, "burst: %u messages queued (server said %llu at auth); drain %.2f s, %.0f "
                   "messages/s\n",
                o->messages, (unsigned long long)r->burst_queued_at_auth, res->drain_s,
                res->drain_rate);
verdict:
    if (res->exit_code)
        fprintf(f, "result: FAILED (exit %d): %s\n", res->exit_code, res->verdict);
    else
        fprintf(f, "result: ok\n");
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void lt_json_reasons(lt_json *j, const char *key, const lt_reasons *t)
{
    lt_json_obj(j, key);
    for (unsigned i = 0; i < t->n; i++)
        lt_json_u64(j, t->r[i].name, t->r[i].n);
    lt_json_end(j, '}');
}

static void lt_json_hist(lt_json *j, const char *key, const lt_hist *h)
{
    lt_json_obj(j, key);
    lt_json_u64(j, "count", h->count);
    lt_json_u64(j, "p50", lt_hist_pct(h, 50));
    lt_json_u64(j, "p90", lt_hist_pct(h, 90));
    lt_json_u64(j, "p99", lt_hist_pct(h, 99));
    lt_json_u64(j, "p999", lt_hist_pct(h, 99.9));
    lt_json_u64(j, "max", h->max);
    lt_json_num(j, "mean", h->count ? (double)h->sum / (double)h->count : 0);
    lt_json_end(j, '}');
}

static void lt_json_opt_num(lt_json *j, const char *key, double v)
{
    if (v < 0)
        lt_json_null(j, key);
    else
        lt_json_num(j, key, v);
}

static void lt_json_options(lt_json *j, const lt_opts *o)
{
    lt_json_obj(j, "options");
    lt_json_arr(j, "servers");
    for (unsigned k = 0; k < o->nservers; k++)
        lt_json_str(j, NULL, o->servers[k]);
    lt_json_end(j, ']');
    lt_json_arr(j, "gateway_pids");
    for (unsigned k = 0; k < o->ngw_pids; k++)
        lt_json_i64(j, NULL, o->gw_pids[k]);
    lt_json_end(j, ']');
    lt_json_u64(j, "devices", o->devices);
    lt_json_num(j, "rate", o->rate);
    lt_json_num(j, "seconds", o->seconds);
    lt_json_num(j, "grace", o->grace);
    lt_json_num(j, "connect_timeout", o->connect_timeout);
    lt_json_u64(j, "group", o->group);
    lt_json_num(j, "offline_fraction", o->offline_fraction);
    lt_json_num(j, "offline_seconds", o->offline_seconds);
    lt_json_u64(j, "messages", o->messages);
    lt_json_u64(j, "senders", o->senders);
    lt_json_u64(j, "payload", o->payload);
    lt_json_str(j, "pool", o->pool);
    lt_json_u64(j, "sources", o->sources);
    lt_json_u64(j, "concurrency", o->concurrency);
    lt_json_end(j, '}');
}

void lt_report_json(const lt_run *r, const lt_result *res, FILE *f)
{
    const lt_opts *o = r->o;
    const lt_track *t = &r->tr;
    const lt_meas *m = &r->m;
    char hex[17];
    lt_json j;

    lt_json_init(&j, f);
    lt_json_obj(&j, NULL);
    lt_json_str(&j, "scenario", o->scenario_name);
    lt_json_bool(&j, "ok", res->exit_code == 0);
    lt_json_i64(&j, "exit", res->exit_code);
    lt_json_str(&j, "error", res->verdict[0] ? res->verdict : NULL);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->run_id);
    lt_json_str(&j, "run_id", hex);
    lt_json_options(&j, o);
    lt_json_u64(&j, "devices", r->pool.n);
    lt_json_u64(&j, "sources", r->nsrc ? r->nsrc : 1);
    lt_json_i64(&j, "nofile_limit", r->nofile);
    lt_json_bool(&j, "deadline_hit", r->deadline_hit);

    lt_json_obj(&j, "pool");
    lt_json_str(&j, "file", r->pool.path);
    lt_json_u64(&j, "loaded", r->pool.loaded);
    lt_json_u64(&j, "registered", m->registered);
    lt_json_num(&j, "register_s", m->register_us / 1e6);
    lt_json_num(&j, "register_per_s", lt_per(m->registered, m->register_us / 1e6));
    lt_json_reasons(&j, "register_retried", &m->reg_retried);
    lt_json_end(&j, '}');

    lt_json_obj(&j, "connect");
    lt_json_u64(&j, "connections", r->dv.max_up);
    lt_json_u64(&j, "came_up", r->dv.ever_up);
    lt_json_u64(&j, "attempts", r->dv.attempts);
    lt_json_u64(&j, "reconnects", r->dv.reconnects);
    lt_json_opt_num(&j, "time_to_all_up_s", res->connect_s);
    lt_json_opt_num(&j, "rate_per_s", res->connect_rate);
    lt_json_reasons(&j, "failures", &r->dv.fail);
    lt_json_reasons(&j, "drops", &r->dv.drops);
    lt_json_end(&j, '}');

    lt_json_arr(&j, "gateways");
    for (unsigned k = 0; k < o->ngw_pids; k++) {
        lt_json_obj(&j, NULL);
        lt_json_i64(&j, "pid", o->gw_pids[k]);
        lt_json_str(&j, "server", r->servers[k].url);
        lt_json_i64(&j, "rss_before_kb", m->gw_rss_before_kb[k]);
        lt_json_i64(&j, "rss_after_kb", m->gw_rss_after_kb[k]);
        lt_json_u64(&j, "connections", m->gw_conns[k]);
        lt_json_opt_num(&j, "rss_per_conn_bytes", res->gw_rss_per_conn[k]);
        lt_json_opt_num(&j, "cpu_s", res->gw_cpu_s[k]);
        lt_json_end(&j, '}');
    }
    lt_json_end(&j, ']');

    lt_json_obj(&j, "harness");
    lt_json_i64(&j, "rss_base_kb", m->self_rss_base_kb);
    lt_json_i64(&j, "rss_up_kb", m->self_rss_up_kb);
    lt_json_opt_num(&j, "rss_per_device_bytes", res->self_rss_per_dev);
    lt_json_num(&j, "cpu_s", res->self_cpu_s);
    lt_json_num(&j, "wall_s", lt_secs(m->t_run_start_us, m->t_run_end_us));
    lt_json_end(&j, '}');

    lt_json_obj(&j, "messages");
    lt_json_u64(&j, "sent", t->sent);
    lt_json_u64(&j, "accepted", t->accepted);
    lt_json_u64(&j, "rejected_total", t->rejected.total);
    lt_json_reasons(&j, "rejected", &t->rejected);
    lt_json_u64(&j, "retried_total", t->retried.total);
    lt_json_reasons(&j, "retried", &t->retried);
    lt_json_u64(&j, "resends", t->resends);
    lt_json_u64(&j, "duplicate_answers", t->dup_answers);
    lt_json_u64(&j, "delivered", t->delivered);
    lt_json_u64(&j, "duplicates", t->duplicates);
    lt_json_u64(&j, "lost", res->lost);
    lt_json_arr(&j, "lost_samples");
    for (unsigned i = 0; i < res->nlost_samples; i++)
        lt_json_u64(&j, NULL, res->lost_samples[i]);
    lt_json_end(&j, ']');
    lt_json_u64(&j, "unanswered", res->unanswered);
    lt_json_u64(&j, "delivered_before_answer", t->delivered_unaccepted);
    lt_json_u64(&j, "foreign", t->foreign);
    lt_json_u64(&j, "misrouted", t->misrouted);
    lt_json_u64(&j, "ack_frames", r->ak.frames);
    lt_json_u64(&j, "ack_ids", r->ak.ids);
    lt_json_u64(&j, "ack_refused", r->ak.errors);
    lt_json_u64(&j, "unsolicited_errors", r->ak.unsolicited);
    lt_json_end(&j, '}');

    lt_json_obj(&j, "latency_us");
    lt_json_hist(&j, "all", &t->all);
    lt_json_hist(&j, "live", &t->live);
    lt_json_hist(&j, "queued", &t->queued);
    lt_json_end(&j, '}');

    lt_json_obj(&j, "throughput");
    lt_json_num(&j, "target_per_s", o->scenario == LT_SC_CHAT || o->scenario == LT_SC_BURST
                                        ? o->rate
                                        : 0);
    lt_json_num(&j, "send_s", res->send_s);
    lt_json_num(&j, "sent_per_s", res->sent_per_s);
    lt_json_num(&j, "accepted_per_s", res->accepted_per_s);
    lt_json_num(&j, "delivered_per_s", res->delivered_per_s);
    lt_json_end(&j, '}');
    lt_json_num(&j, "stall_max_ms", t->stall_max_us / 1e3);

    if (o->scenario == LT_SC_BURST) {
        lt_json_obj(&j, "burst");
        lt_json_u64(&j, "messages", o->messages);
        lt_json_u64(&j, "queued_at_auth", r->burst_queued_at_auth);
        lt_json_num(&j, "drain_s", res->drain_s);
        lt_json_num(&j, "drain_per_s", res->drain_rate);
        lt_json_end(&j, '}');
    }

    lt_json_arr(&j, "timeline");
    for (size_t s = 0; s < t->tl.n; s++) {
        const lt_second *x = &t->tl.v[s];
        lt_json_obj(&j, NULL);
        lt_json_u64(&j, "t", s);
        lt_json_u64(&j, "sent", x->sent);
        lt_json_u64(&j, "accepted", x->accepted);
        lt_json_u64(&j, "delivered", x->delivered);
        lt_json_u64(&j, "up", x->up);
        lt_json_end(&j, '}');
    }
    lt_json_end(&j, ']');
    lt_json_end(&j, '}');
}
