#include "gw_turn.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gw.h"
#include "keys.h"
#include "log.h"

/* KEYS: the device's window; ARGV: window ms, requests allowed per window. {0, 0} within the
 * limit, {1, ms left in the window} over it. The first hit of a window starts its expiry. */
#define GW_LUA_TURN_LIMIT                                                                      \
    "local n = redis.call('INCR', KEYS[1]) "                                                   \
    "if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "                              \
    "local t = redis.call('PTTL', KEYS[1]) "                                                   \
    "if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) t = tonumber(ARGV[1]) end "         \
    "if n > tonumber(ARGV[2]) then return {1, t} end "                                         \
    "return {0, 0}"
#define GW_TURN_WINDOW_MS "60000"
#define GW_TURN_BUSY_RETRY_MS 1000
#define GW_TURN_NUM_MAX 24 /* a long long in decimal, with NUL */

/* ---- configuration ------------------------------------------------------------------------ */

static int gw_turn_uri_valid(const char *b, size_t n)
{
    static const char *const schemes[] = {"turn:", "turns:", "stun:", "stuns:"};
    int scheme = 0;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t sl = strlen(schemes[i]);
        if (n > sl && !strncmp(b, schemes[i], sl))
            scheme = 1;
    }
    if (!scheme)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] <= ' ' || (unsigned char)b[i] >= 0x7f)
            return 0;
    return 1;
}

static int gw_turn_parse_uris(gw_turn *t, const char *uris, char *err, size_t errlen)
{
    const char *s = uris;
    for (;;) {
        const char *end = strchr(s, ',');
        const char *b = s, *e = end ? end : s + strlen(s);
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t n = (size_t)(e - b);
        if (n > 0) {
            if (t->nuris == PARLEY_TURN_URIS_MAX) {
                snprintf(err, errlen, "turn_uris: more than %d URIs", PARLEY_TURN_URIS_MAX);
                return -1;
            }
            if (n > PARLEY_TURN_URI_MAX) {
                snprintf(err, errlen, "turn_uris: a URI is longer than %d bytes",
                         PARLEY_TURN_URI_MAX);
                return -1;
            }
            if (!gw_turn_uri_valid(b, n)) {
                snprintf(err, errlen,
                         "turn_uris: \"%.*s\" is not a turn:, turns:, stun: or stuns: URI "
                         "(printable, no spaces)",
                         (int)(n > 64 ? 64 : n), b);
                return -1;
            }
            memcpy(t->uris[t->nuris], b, n);
            t->uris[t->nuris][n] = '\0';
            t->nuris++;
        }
        if (!end)
            return 0;
        s = end + 1;
    }
}

/* The first line of path, into t->secret (not yet trimmed). */
static int gw_turn_read_secret(gw_turn *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "turn_secret_file: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    /* one byte more than a secret may have, and the newline: too long is detected below */
    char buf[PARLEY_RELAY_SECRET_MAX_BYTES + 3];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "turn_secret_file: cannot read %s", path);
        sodium_memzero(buf, sizeof buf);
        return -1;
    }
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    n = strlen(buf);
    if (n > PARLEY_RELAY_SECRET_MAX_BYTES) {
        snprintf(err, errlen, "turn_secret_file: the secret is longer than %d bytes",
                 PARLEY_RELAY_SECRET_MAX_BYTES);
        sodium_memzero(buf, sizeof buf);
        return -1;
    }
    memcpy(t->secret, buf, n + 1);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

/* Trims t->secret in place and checks it. */
static int gw_turn_check_secret(gw_turn *t, const char *what, char *err, size_t errlen)
{
    char *b = t->secret, *e = t->secret + strlen(t->secret);
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - b);
    memmove(t->secret, b, n);
    memset(t->secret + n, 0, sizeof t->secret - n);
    if (n == 0) {
        snprintf(err, errlen, "%s: the secret is empty", what);
        return -1;
    }
    if (memchr(t->secret, ',', n)) {
        snprintf(err, errlen,
                 "%s: one secret, not a list (the one the relays accept that new credentials "
                 "should use)",
                 what);
        return -1;
    }
    return 0;
}

int gw_turn_init(gw_turn *t, const char *uris, const char *secret, const char *secret_file,
                 long long ttl_s, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    int have_secret = secret && secret[0], have_file = secret_file && secret_file[0];
    const char *what = have_file ? "turn_secret_file" : "turn_secret";
    if (ttl_s < 1 || ttl_s > PARLEY_TURN_TTL_MAX_S) {
        snprintf(err, errlen, "turn_ttl_s: 1..%d seconds", PARLEY_TURN_TTL_MAX_S);
        return -1;
    }
    t->ttl_s = (uint32_t)ttl_s;
    if (have_secret && have_file) {
        snprintf(err, errlen, "turn_secret and turn_secret_file: give one of them");
        return -1;
    }
    if (uris && gw_turn_parse_uris(t, uris, err, errlen) != 0)
        goto fail;
    if (!t->nuris && !have_secret && !have_file)
        return 0;
    if (!t->nuris) {
        snprintf(err, errlen, "%s is set but turn_uris is empty: give both or neither", what);
        goto fail;
    }
    if (!have_secret && !have_file) {
        snprintf(err, errlen,
                 "turn_uris is set but turn_secret (or turn_secret_file) is not: give both or "
                 "neither");
        goto fail;
    }
    if (have_file) {
        if (gw_turn_read_secret(t, secret_file, err, errlen) != 0)
            goto fail;
    } else {
        if (strlen(secret) > PARLEY_RELAY_SECRET_MAX_BYTES) {
            snprintf(err, errlen, "turn_secret: longer than %d bytes",
                     PARLEY_RELAY_SECRET_MAX_BYTES);
            goto fail;
        }
        snprintf(t->secret, sizeof t->secret, "%s", secret);
    }
    if (gw_turn_check_secret(t, what, err, errlen) != 0)
        goto fail;
    return 0;
fail:
    gw_turn_clear(t);
    return -1;
}

void gw_turn_clear(gw_turn *t) { sodium_memzero(t, sizeof *t); }

int gw_turn_configured(const gw_turn *t) { return t->nuris > 0 && t->secret[0]; }

int gw_turn_mint(const gw_turn *t, const char *account, uint64_t now_s, gw_turn_creds *out)
{
    memset(out, 0, sizeof *out);
    if (strlen(account) > PARLEY_NAME_MAX)
        return -1;
    int n = snprintf(out->username, sizeof out->username, "%" PRIu64 ":%s",
                     now_s + t->ttl_s, account);
    if (n < 0 || (size_t)n >= sizeof out->username ||
        pturn_password(t->secret, out->username, (size_t)n, out->password) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    out->ttl_s = t->ttl_s;
    return 0;
}

/* ---- GetTurnCredentials ------------------------------------------------------------------- */

typedef struct {
    gw *g;
    uint64_t conn_id, request_id;
} gw_turn_req;

static void gw_turn_answer(gw *g, gw_conn *c, uint64_t rid)
{
    gw_turn_creds cr;
    if (gw_turn_mint(&g->turn, c->account, pclock_wall_ms() / 1000, &cr) != 0) {
        plog_error("turn_mint_failed", "conn=%llu", (unsigned long long)c->id);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL,
                           "cannot mint TURN credentials", 0);
        return;
    }
    char *uris[PARLEY_TURN_URIS_MAX];
    for (size_t i = 0; i < g->turn.nuris; i++)
        uris[i] = g->turn.uris[i]; /* protobuf-c wants non-const; only read by pack */
    Parley__V1__TurnCredentials tc = PARLEY__V1__TURN_CREDENTIALS__INIT;
    tc.n_uris = g->turn.nuris;
    tc.uris = uris;
    tc.username = cr.username;
    tc.password = cr.password;
    tc.ttl_s = cr.ttl_s;
    Parley__V1__ServerFrame sf = PARLEY__V1__SERVER_FRAME__INIT;
    sf.request_id = rid;
    sf.body_case = PARLEY__V1__SERVER_FRAME__BODY_TURN_CREDENTIALS;
    sf.turn_credentials = &tc;
    gw_conn_send_frame(g, c, &sf);
    sodium_memzero(&cr, sizeof cr);
    pmet_inc(g->m.turn_minted, 1);
    plog_debug("turn_credentials", "conn=%llu device=%" PRIu32 " ttl_s=%" PRIu32,
               (unsigned long long)c->id, c->device_id, g->turn.ttl_s);
}

static void gw_turn_limit_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    gw_turn_req *x = privdata;
    gw *g = x->g;
    redisReply *r = reply;
    g->turn.inflight--;
    gw_conn *c = gw_conns_get(&g->conns, x->conn_id);
    if (!c || c->close_code)
        goto out;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        char q[256];
        plog_warn("turn_ratelimit_failed", "conn=%llu error=%s", (unsigned long long)c->id,
                  plog_q(q, sizeof q, r && r->str ? r->str : "disconnected"));
        pmet_inc(g->m.turn_unavailable, 1);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "rate limiter unavailable", 0);
        goto out;
    }
    if (r->element[0]->integer != 0) {
        long long ttl = r->element[1]->integer;
        pmet_inc(g->m.turn_limited, 1);
        plog_info("turn_rate_limited", "conn=%llu device=%" PRIu32, (unsigned long long)c->id,
                  c->device_id);
        gw_conn_send_error(g, c, x->request_id, PARLEY__V1__ERROR_CODE__RATE_LIMITED,
                           "too many TURN credential requests from this device",
                           ttl > 0 ? (uint32_t)ttl : 1000);
        goto out;
    }
    gw_turn_answer(g, c, x->request_id);
out:
    free(x);
}

void gw_turn_handle(gw *g, gw_conn *c, const Parley__V1__ClientFrame *f)
{
    uint64_t rid = f->request_id;
    if (!gw_turn_configured(&g->turn)) {
        pmet_inc(g->m.turn_not_configured, 1);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__NOT_CONFIGURED,
                           "no TURN relays configured", 0);
        return;
    }
    if (g->turn.inflight >= PARLEY_TURN_INFLIGHT_MAX) {
        pmet_inc(g->m.turn_unavailable, 1);
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "too many TURN credential requests in flight", GW_TURN_BUSY_RETRY_MS);
        return;
    }
    char who[PARLEY_NAME_MAX + 16], key[PKEYS_MAX], limit[GW_TURN_NUM_MAX];
    snprintf(who, sizeof who, "%s:%" PRIu32, c->account, c->device_id);
    if (pkeys_ratelimit(key, "turn", who) < 0) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "key too long", 0);
        return;
    }
    gw_turn_req *x = calloc(1, sizeof *x);
    if (!x) {
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__INTERNAL, "out of memory", 0);
        return;
    }
    x->g = g;
    x->conn_id = c->id;
    x->request_id = rid;
    snprintf(limit, sizeof limit, "%lld", g->cfg->turn_credentials_rate_per_minute);
    const char *argv[] = {"EVAL", GW_LUA_TURN_LIMIT, "1", key, GW_TURN_WINDOW_MS, limit};
    const size_t argvlen[] = {4, strlen(GW_LUA_TURN_LIMIT), 1, strlen(key),
                              strlen(GW_TURN_WINDOW_MS), strlen(limit)};
    g->turn.inflight++; /* before the command: its callback counts it off */
    if (predis_cmd(g->redis, gw_turn_limit_cb, x, 6, argv, argvlen) != 0) {
        g->turn.inflight--;
        free(x);
        pmet_inc(g->m.turn_unavailable, 1);
        /* fail closed, like the other limits: without the limiter nothing bounds the minting */
        gw_conn_send_error(g, c, rid, PARLEY__V1__ERROR_CODE__UNAVAILABLE,
                           "rate limiter unavailable", 0);
    }
}
