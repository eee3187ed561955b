/* prekeys_drive.c: parley-prekeys-drive, the prekey requests of the client library (prekeys.h)
 * as a command-line tool for the integration tests (tests/integration/test_prekeys.sh).
 *
 *   parley-prekeys-drive [--server URL] --home DIR [--timeout S] ACTION...
 *
 * Authenticates as the home's device (a pc_session; --server overrides the home's server),
 * prints "auth one_time=N spk=M" from the AuthOk, then runs the actions in order, each after
 * the previous one was answered. Server errors are printed, not failures:
 * "error CODE retry=MS msg=...". Exit 0 when every action ran, 1 on a network failure or the
 * timeout (default 30 s), 2 on a usage error. Keys are derived from a seed and the id
 * (secret = BLAKE2b(seed "/" kind "/" id), public = X25519 base point times it), so a test can
 * predict what a fetch returns (--derive).
 *
 * Actions:
 *   --upload SPEC      UploadPrekeys through pc_prekeys_upload. SPEC is a comma list of
 *                      spk=ID (a signed prekey, signed by the home's device key), badsig (its
 *                      signature with one bit flipped), otk=FIRST:COUNT (one-time prekeys with
 *                      ids FIRST..FIRST+COUNT-1), seed=S (default "s"), replace.
 *                      Prints "uploaded one_time=N spk=M".
 *   --raw-upload KIND  a malformed UploadPrekeys the library would refuse to build: spk-len
 *                      (31-byte signed prekey), sig-len (63-byte signature), otk-len (33-byte
 *                      one-time prekey), too-many (PARLEY_PREKEYS_UPLOAD_MAX + 1), dup-ids,
 *                      spk-zero (signed prekey id 0). Prints the answer like --upload.
 *   --fetch ACCOUNT DEVS   GetPrekeys; DEVS "all" or a comma list of device ids. Prints
 *                      "bundles ACCOUNT n=K", then per bundle "bundle dev=D reg=R spk=ID|none
 *                      sig=ok|bad|none otk=ID|none key=HEX" (key: the one-time public key).
 *   --storm ACCOUNT COUNT  COUNT GetPrekeys of every device of ACCOUNT, up to
 *                      PARLEY_PENDING_LOOKUPS_MAX at once; prints "otk DEV ID KEYHEX" per
 *                      one-time prekey received, then "storm ok=N bundles=B otk=O none=Z
 *                      errors=E" (errors printed as they come).
 *   --expect-low S     waits up to S seconds for a PrekeysLow push (or takes one that came
 *                      already); prints "low N", or "no-low" when none came.
 *   --await-file PATH  waits until PATH exists (the test does something meanwhile).
 *   --derive SEED KIND ID  prints the public key hex of that derived key (KIND spk or otk);
 *                      needs no server, but runs after authentication like the rest. */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drive.h"
#include "prekey_sig.h"

#define DEFAULT_TIMEOUT_S 30.0
#define POLL_MS 50
#define SEED_MAX 64

enum act_kind { A_UPLOAD, A_RAW_UPLOAD, A_FETCH, A_STORM, A_EXPECT_LOW, A_AWAIT_FILE, A_DERIVE };

typedef struct {
    enum act_kind kind;
    const char *arg, *arg2, *arg3;
    long num;
} action;

typedef struct {
    drive_base b;    /* b.wait: the polls of --expect-low and --await-file */
    action *acts;
    int nacts, next;
    int busy;        /* the current action is waiting for something */
    /* --storm */
    long storm_left, storm_inflight, storm_ok, storm_bundles, storm_otk, storm_none, storm_err;
    /* PrekeysLow pushes received and not yet taken by --expect-low */
    int lows;
    uint32_t low_count;
    uint64_t wait_until_ms; /* --expect-low */
    int done, rc;
} drive;

static void run(drive *d);

static void hex(char *out, const uint8_t *p, size_t n)
{
    sodium_bin2hex(out, n * 2 + 1, p, n);
}

/* secret = BLAKE2b-256(seed "/" kind "/" id); public = X25519(secret, base point) */
static void derive(const char *seed, const char *kind, uint32_t id, uint8_t pk[32])
{
    char in[SEED_MAX + 32];
    uint8_t sk[32];

    snprintf(in, sizeof in, "%s/%s/%" PRIu32, seed, kind, id);
    crypto_generichash(sk, sizeof sk, (const uint8_t *)in, strlen(in), NULL, 0);
    crypto_scalarmult_base(pk, sk);
    sodium_memzero(sk, sizeof sk);
}

/* A server error or a failure: a server error is printed, anything else ends the run. */
static int report_error(drive *d, const pc_status *st)
{
    if (st->kind == PC_ERR_SERVER) {
        printf("error %s retry=%u msg=%s\n", pc_error_name(st->server_code),
               (unsigned)st->retry_after_ms, st->msg);
        return 0;
    }
    drive_fail(&d->b, "%s", st->msg);
    return -1;
}

static void next_action(drive *d)
{
    d->busy = 0;
    d->next++;
    run(d);
}

/* ---- upload ------------------------------------------------------------------------------ */

static void upload_done(pc_conn *c, const pc_status *st, const pc_prekeys_counts *counts,
                        void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done)
        return;
    if (!counts) {
        if (report_error(d, st) < 0)
            return;
    } else {
        printf("uploaded one_time=%" PRIu32 " spk=%" PRIu32 "\n", counts->one_time_count,
               counts->signed_prekey_id);
    }
    next_action(d);
}

static int do_upload(drive *d, const char *spec)
{
    char buf[256], seed[SEED_MAX] = "s";
    long spk_id = 0, first = 0, count = 0;
    int badsig = 0, replace = 0;
    pc_prekeys_spk spk;
    pc_prekeys_opk *opks = NULL;
    pc_status st;
    int rc;

    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!strncmp(tok, "spk=", 4))
            spk_id = strtol(tok + 4, NULL, 10);
        else if (!strncmp(tok, "otk=", 4) && sscanf(tok + 4, "%ld:%ld", &first, &count) == 2)
            ;
        else if (!strncmp(tok, "seed=", 5))
            snprintf(seed, sizeof seed, "%s", tok + 5);
        else if (!strcmp(tok, "badsig"))
            badsig = 1;
        else if (!strcmp(tok, "replace"))
            replace = 1;
        else
            return fprintf(stderr, "parley-prekeys-drive: bad --upload item %s\n", tok), -1;
    }
    if (spk_id) {
        uint8_t t[PPKSIG_TRANSCRIPT_BYTES];
        spk.id = (uint32_t)spk_id;
        derive(seed, "spk", spk.id, spk.pk);
        ppksig_transcript(t, spk.id, spk.pk);
        pc_keys_sign_device(&d->b.home.id.keys, spk.sig, t, sizeof t);
        if (badsig)
            spk.sig[10] ^= 0x04;
    }
    if (count > 0) {
        opks = calloc((size_t)count, sizeof *opks);
        if (!opks)
            return -1;
        for (long i = 0; i < count; i++) {
            opks[i].id = (uint32_t)(first + i);
            derive(seed, "otk", opks[i].id, opks[i].pk);
        }
    }
    rc = pc_prekeys_upload(d->b.conn, spk_id ? &spk : NULL, opks, count > 0 ? (size_t)count : 0,
                           replace, upload_done, d, &st);
    free(opks);
    if (rc < 0)
        drive_fail(&d->b, "upload: %s", st.msg);
    return rc;
}

/* ---- raw (malformed) upload --------------------------------------------------------------- */

static void raw_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    drive *d = ud;
    pc_status r;

    (void)c;
    if (d->b.done)
        return;
    if (!f) {
        drive_fail(&d->b, "%s", st->msg);
        return;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        pc_status_from_error(&r, f->error);
        report_error(d, &r);
    } else if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PREKEYS_OK && f->prekeys_ok) {
        printf("uploaded one_time=%" PRIu32 " spk=%" PRIu32 "\n",
               f->prekeys_ok->one_time_count, f->prekeys_ok->signed_prekey_id);
    } else {
        printf("frame %d\n", (int)f->body_case);
    }
    next_action(d);
}

static int do_raw_upload(drive *d, const char *kind)
{
    enum { N = PARLEY_PREKEYS_UPLOAD_MAX + 1 };
    static uint8_t keys[N][33], sigbuf[64];
    static Parley__V1__OneTimePrekey otk[N];
    static Parley__V1__OneTimePrekey *ptrs[N];
    Parley__V1__SignedPrekey spk = PARLEY__V1__SIGNED_PREKEY__INIT;
    Parley__V1__UploadPrekeys u = PARLEY__V1__UPLOAD_PREKEYS__INIT;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    size_t n = 3;
    pc_status st;

    for (size_t i = 0; i < N; i++) {
        parley__v1__one_time_prekey__init(&otk[i]);
        otk[i].id = (uint32_t)(1000 + i);
        randombytes_buf(keys[i], sizeof keys[i]);
        otk[i].public_key.data = keys[i];
        otk[i].public_key.len = 32;
        ptrs[i] = &otk[i];
    }
    spk.id = 99;
    spk.public_key.data = keys[0];
    spk.public_key.len = 32;
    spk.signature.data = sigbuf;
    spk.signature.len = 64;
    if (!strcmp(kind, "spk-len")) {
        spk.public_key.len = 31;
        u.signed_prekey = &spk;
    } else if (!strcmp(kind, "sig-len")) {
        spk.signature.len = 63;
        u.signed_prekey = &spk;
    } else if (!strcmp(kind, "spk-zero")) {
        spk.id = 0;
        u.signed_prekey = &spk;
    } else if (!strcmp(kind, "otk-len")) {
        otk[1].public_key.len = 33;
    } else if (!strcmp(kind, "too-many")) {
        n = N;
    } else if (!strcmp(kind, "dup-ids")) {
        otk[2].id = otk[0].id;
    } else {
        fprintf(stderr, "parley-prekeys-drive: unknown --raw-upload kind %s\n", kind);
        return -1;
    }
    u.n_one_time_prekeys = n;
    u.one_time_prekeys = ptrs;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_UPLOAD_PREKEYS;
    f.upload_prekeys = &u;
    if (pc_conn_request(d->b.conn, &f, raw_done, d, &st) < 0) {
        drive_fail(&d->b, "raw upload: %s", st.msg);
        return -1;
    }
    return 0;
}

/* ---- fetch and storm ---------------------------------------------------------------------- */

static void print_bundles(const pc_prekey_bundles *b)
{
    char key[65];

    printf("bundles %s n=%zu\n", b->account, b->n);
    for (size_t i = 0; i < b->n; i++) {
        const pc_prekey_bundle *x = &b->bundles[i];
        const char *sig = "none";
        if (x->has_spk)
            sig = ppksig_verify(x->spk_sig, x->spk_id, x->spk_pk, x->signing_pk) == 0 ? "ok"
                                                                                   : "bad";
        printf("bundle dev=%" PRIu32 " reg=%" PRIu32, x->device_id, x->registration_id);
        if (x->has_spk)
            printf(" spk=%" PRIu32, x->spk_id);
        else
            printf(" spk=none");
        printf(" sig=%s", sig);
        if (x->has_opk) {
            hex(key, x->opk_pk, 32);
            printf(" otk=%" PRIu32 " key=%s\n", x->opk_id, key);
        } else {
            printf(" otk=none\n");
        }
    }
}

static void fetch_done(pc_conn *c, const pc_status *st, pc_prekey_bundles *b, void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done) {
        pc_prekey_bundles_free(b);
        return;
    }
    if (!b) {
        if (report_error(d, st) < 0)
            return;
    } else {
        print_bundles(b);
        pc_prekey_bundles_free(b);
    }
    next_action(d);
}

static int parse_devices(const char *s, uint32_t *ids, size_t *n)
{
    char buf[128];

    *n = 0;
    if (!strcmp(s, "all"))
        return 0;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= 16)
            return -1;
        ids[(*n)++] = (uint32_t)strtoul(tok, NULL, 10);
    }
    return 0;
}

static void storm_fire(drive *d);

static void storm_done(pc_conn *c, const pc_status *st, pc_prekey_bundles *b, void *ud)
{
    drive *d = ud;
    char key[65];

    (void)c;
    d->storm_inflight--;
    if (d->b.done) {
        pc_prekey_bundles_free(b);
        return;
    }
    if (!b) {
        d->storm_err++;
        if (report_error(d, st) < 0)
            return;
    } else {
        d->storm_ok++;
        for (size_t i = 0; i < b->n; i++) {
            const pc_prekey_bundle *x = &b->bundles[i];
            d->storm_bundles++;
            if (x->has_opk) {
                d->storm_otk++;
                hex(key, x->opk_pk, 32);
                printf("otk %" PRIu32 " %" PRIu32 " %s\n", x->device_id, x->opk_id, key);
            } else {
                d->storm_none++;
            }
        }
        pc_prekey_bundles_free(b);
    }
    if (d->storm_left == 0 && d->storm_inflight == 0) {
        printf("storm ok=%ld bundles=%ld otk=%ld none=%ld errors=%ld\n", d->storm_ok,
               d->storm_bundles, d->storm_otk, d->storm_none, d->storm_err);
        next_action(d);
        return;
    }
    storm_fire(d);
}

static void storm_fire(drive *d)
{
    const action *a = &d->acts[d->next];
    pc_status st;

    while (d->storm_left > 0 && d->storm_inflight < PARLEY_PENDING_LOOKUPS_MAX) {
        if (pc_prekeys_fetch(d->b.conn, a->arg, NULL, 0, storm_done, d, &st) < 0) {
            drive_fail(&d->b, "storm: %s", st.msg);
            return;
        }
        d->storm_left--;
        d->storm_inflight++;
    }
}

/* ---- waiting ------------------------------------------------------------------------------ */

static void on_low(pc_session *s, uint32_t count, void *ud)
{
    drive *d = ud;

    (void)s;
    d->lows++;
    d->low_count = count;
}

static void poll_cb(uv_timer_t *t)
{
    drive *d = t->data;
    const action *a = &d->acts[d->next];

    if (d->b.done || !d->busy)
        return;
    if (a->kind == A_EXPECT_LOW) {
        if (d->lows > 0) {
            d->lows--;
            printf("low %" PRIu32 "\n", d->low_count);
        } else if (uv_now(&d->b.loop) < d->wait_until_ms) {
            return;
        } else {
            printf("no-low\n");
        }
    } else if (a->kind == A_AWAIT_FILE) {
        if (access(a->arg, F_OK) != 0)
            return;
    }
    uv_timer_stop(&d->b.wait);
    next_action(d);
}

/* ---- the runner --------------------------------------------------------------------------- */

static void run(drive *d)
{
    while (!d->b.done && !d->busy) {
        if (d->next >= d->nacts) {
            drive_stop(&d->b, 0);
            return;
        }
        const action *a = &d->acts[d->next];
        uint32_t ids[16];
        size_t n;
        pc_status st;
        uint8_t pk[32];
        char key[65];

        d->busy = 1;
        fflush(stdout);
        switch (a->kind) {
        case A_UPLOAD:
            if (do_upload(d, a->arg) < 0)
                drive_stop(&d->b, d->b.done ? d->b.rc : 2);
            break;
        case A_RAW_UPLOAD:
            if (do_raw_upload(d, a->arg) < 0)
                drive_stop(&d->b, d->b.done ? d->b.rc : 2);
            break;
        case A_FETCH:
            if (parse_devices(a->arg2, ids, &n) < 0) {
                drive_stop(&d->b, 2);
                break;
            }
            if (pc_prekeys_fetch(d->b.conn, a->arg, n ? ids : NULL, n, fetch_done, d, &st) < 0)
                drive_fail(&d->b, "fetch: %s", st.msg);
            break;
        case A_STORM:
            d->storm_left = a->num;
            d->storm_inflight = d->storm_ok = d->storm_bundles = 0;
            d->storm_otk = d->storm_none = d->storm_err = 0;
            storm_fire(d);
            break;
        case A_EXPECT_LOW:
            d->wait_until_ms = uv_now(&d->b.loop) + (uint64_t)a->num * 1000;
            uv_timer_start(&d->b.wait, poll_cb, 0, POLL_MS);
            break;
        case A_AWAIT_FILE:
            uv_timer_start(&d->b.wait, poll_cb, 0, POLL_MS);
            break;
        case A_DERIVE:
            derive(a->arg, a->arg2, (uint32_t)strtoul(a->arg3, NULL, 10), pk);
            hex(key, pk, 32);
            printf("%s\n", key);
            d->busy = 0;
            d->next++;
            break;
        }
    }
}

static void sess_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    drive *d = ud;

    if (d->b.conn)
        return; /* re-authenticated after a drop: the run has failed already */
    d->b.conn = pc_session_conn(s);
    printf("auth one_time=%" PRIu32 " spk=%" PRIu32 "\n", ok->one_time_prekeys,
           ok->signed_prekey_id);
    run(d);
}

static void deadline_cb(uv_timer_t *t)
{
    drive *d = t->data;

    drive_fail(&d->b, "timed out after %g s at action %d", d->b.timeout_s, d->next + 1);
}

/* ---- arguments and main ------------------------------------------------------------------- */

static int parse(drive *d, int argc, char **argv)
{
    d->acts = calloc((size_t)argc, sizeof *d->acts);
    if (!d->acts)
        return drive_usage(&d->b, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        action *a = &d->acts[d->nacts];
        int need = !strcmp(o, "--fetch") || !strcmp(o, "--storm") ? 2
                   : !strcmp(o, "--derive")                        ? 3
                                                                   : 1;
        int rc = drive_common_option(&d->b, argc, argv, &i);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        if (i + need >= argc)
            return drive_usage(&d->b, "%s lacks its value", o);
        if (!strcmp(o, "--upload") || !strcmp(o, "--raw-upload") ||
                   !strcmp(o, "--await-file")) {
            a->kind = !strcmp(o, "--upload")       ? A_UPLOAD
                      : !strcmp(o, "--raw-upload") ? A_RAW_UPLOAD
                                                   : A_AWAIT_FILE;
            a->arg = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--fetch")) {
            a->kind = A_FETCH;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--storm")) {
            a->kind = A_STORM;
            a->arg = argv[++i];
            a->num = strtol(argv[++i], NULL, 10);
            if (a->num < 1)
                return drive_usage(&d->b, "--storm wants a count");
            d->nacts++;
        } else if (!strcmp(o, "--expect-low")) {
            a->kind = A_EXPECT_LOW;
            a->num = strtol(argv[++i], NULL, 10);
            d->nacts++;
        } else if (!strcmp(o, "--derive")) {
            a->kind = A_DERIVE;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            a->arg3 = argv[++i];
            d->nacts++;
        } else {
            return drive_usage(&d->b, "unknown argument");
        }
    }
    if (!d->b.home_open)
        return drive_usage(&d->b, "--home is required");
    return 0;
}

static int start(drive *d)
{
    static const pc_session_events ev = { sess_up, NULL, drive_session_down, NULL, on_low };

    if (drive_load_home(&d->b) < 0 || drive_start_ctx(&d->b) < 0 ||
        !drive_start_session(&d->b, &ev, d))
        return -1;
    drive_arm(&d->b, deadline_cb);
    return 0;
}

int main(int argc, char **argv)
{
    drive d;
    int rc;

    memset(&d, 0, sizeof d);
    if (drive_init(&d.b, "parley-prekeys-drive",
                   "parley-prekeys-drive [--server URL] --home DIR [--timeout S] ACTION...",
                   DEFAULT_TIMEOUT_S) < 0)
        return 1;
    rc = parse(&d, argc, argv);
    if (rc == 0 && start(&d) == 0)
        uv_run(&d.b.loop, UV_RUN_DEFAULT);
    else if (rc == 0)
        rc = 1;
    drive_finish(&d.b);
    free(d.acts);
    return rc ? rc : d.b.rc;
}
