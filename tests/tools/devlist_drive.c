/* devlist_drive.c: parley-devlist-drive, signed device lists on the wire for the integration
 * tests (tests/integration/test_device_lists.sh): publishes lists it builds and signs itself,
 * authenticates as made-up devices or as the account, reads GetDevices, sends raw envelopes
 * and waits for its connection to be closed.
 *
 *   parley-devlist-drive --home DIR [--server URL] [--timeout S] [--as WHO]
 *                        [--open-while-authing] ACTION...
 *
 * DIR is a registered home (its account, and its account secret key for signing). WHO is
 * "primary" (the home's device; default), "account" (an account session: device_id 0 signed
 * by the account key) or "dev:SEED:ID" (a made-up device of the home's account with keys
 * derived from SEED, as device ID). Prints "auth device=N queued=Q" or "auth-error CODE" (then
 * stops, exit 0), then runs the actions in order, each after the previous one was answered.
 * Server errors are printed, not failures: "error CODE msg=...". Exit 1 on a network failure
 * (other than an awaited close) or the timeout (default 30 s), 2 on a usage error.
 * --open-while-authing: the AuthAnswer is made here and a ProvisionOpen follows it at once, so
 * that the gateway sees it while it checks the answer; its outcome is printed first:
 * "open-error CODE msg=..." or "open-opened" (then "auth ..." as above).
 *
 * Made-up device SEED: signing key = Ed25519 from seed BLAKE2b-256("devlist/" SEED "/sign"),
 * identity key = X25519 base point times BLAKE2b-256("devlist/" SEED "/id"), registration id
 * from the same hash; so separate runs agree on a device's keys.
 *
 * Actions:
 *   --get KNOWN        GetDevices of the home's account with known_version KNOWN. Prints
 *                      "devices latest=V key=match|other rows=IDS lists=VERSIONS" (IDS and
 *                      VERSIONS comma lists, "-" when empty) and per signed list
 *                      "list v=V sig=ok|bad chain=ok|bad|first devs=IDS max=M" (chain: its
 *                      prev_hash against the list before it in the same answer).
 *   --get-of ACCOUNT KNOWN  the same for another account (key=: "-").
 *   --publish SPEC     builds the next version from the current one (a GetDevices first) and
 *                      publishes it. SPEC is a comma list of: add=SEED (a made-up device as
 *                      max_device_id + 1), addhome=DIR (the device of another home folder,
 *                      e.g. a second registered install, as max_device_id + 1), remove=ID,
 *                      fill=N (add made-up devices until N are listed), version=N (this
 *                      version instead of current + 1), badprev (one bit of prev_hash flipped),
 *                      badsig (one bit of the signature flipped),
 *                      rekey=ID (device ID listed with another identity key), reuse=ID (a
 *                      made-up device listed as ID, an id used before), account=NAME (the body
 *                      names NAME), signer=SEED (signed by an account key derived from SEED).
 *                      Prints "published v=V added=IDS removed=IDS" or the error.
 *   --send ACCOUNT IDS  a Send to ACCOUNT with one made-up envelope per device id (IDS comma
 *                      list; registration ids from a GetDevices, 1 for ids it lacks). Prints
 *                      "sent n=N" or "error CODE missing=IDS extra=IDS stale=IDS msg=...".
 *   --upload-prekeys N  a signed prekey (id 1) and N one-time prekeys (ids 1..N) of random keys
 *                      for the authenticated device. Prints "uploaded one_time=N spk=1".
 *   --wait-close S     waits up to S seconds for the server to close the connection; prints
 *                      "closed CODE" or "still-open".
 *
 *   parley-devlist-drive --server URL --register KIND NAME
 * registers NAME with fresh keys (valid proof of work and signatures) and a first device list
 * of KIND: none (no device_list), badsig (signature flipped), version2, twodevices, wrongkey
 * (device 1 with another signing key), other (naming another account), ok. Prints
 * "registered NAME" or "error CODE msg=..."; needs no home. */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "devlist.h"
#include "drive.h"
#include "prekey_sig.h"

#define DEFAULT_TIMEOUT_S 30.0
#define SPEC_MAX 512
#define IDS_TEXT_MAX 256

enum act_kind { A_GET, A_PUBLISH, A_SEND, A_UPLOAD, A_WAIT_CLOSE };

typedef struct {
    enum act_kind kind;
    const char *arg, *arg2;
} action;

typedef struct {
    drive_base b;   /* b.conn: opened here (no session); b.wait: --wait-close */
    pc_identity id; /* who we authenticate as */
    const char *as;
    int open_while_authing;
    const char *reg_kind, *reg_name; /* --register */
    pc_keys reg_keys;
    action *acts;
    int nacts, next;
    int closed, close_code, waiting_close;
} drive;

static void run(drive *d);

static void next_action(drive *d)
{
    d->next++;
    run(d);
}

/* ---- made-up keys -------------------------------------------------------------------------- */

static void seed_hash(uint8_t out[32], const char *seed, const char *what)
{
    char in[SPEC_MAX];

    snprintf(in, sizeof in, "devlist/%s/%s", seed, what);
    crypto_generichash(out, 32, (const uint8_t *)in, strlen(in), NULL, 0);
}

static void made_up_keys(const char *seed, pc_keys *k)
{
    uint8_t h[32], sk[32];

    memset(k, 0, sizeof *k);
    seed_hash(h, seed, "sign");
    crypto_sign_seed_keypair(k->signing_pk, k->signing_sk, h);
    seed_hash(sk, seed, "id");
    memcpy(k->identity_sk, sk, 32);
    crypto_scalarmult_base(k->identity_pk, sk);
    k->registration_id =
        1 + (uint32_t)((sk[0] | (uint32_t)sk[1] << 8) % PARLEY_REGISTRATION_ID_MAX);
}

static void made_up_device(const char *seed, uint32_t id, pdl_device *dev)
{
    pc_keys k;

    made_up_keys(seed, &k);
    dev->device_id = id;
    dev->registration_id = k.registration_id;
    memcpy(dev->signing_pk, k.signing_pk, 32);
    memcpy(dev->identity_pk, k.identity_pk, 32);
}

/* ---- printing ------------------------------------------------------------------------------ */

static const char *ids_text(char out[IDS_TEXT_MAX], const uint32_t *ids, size_t n)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && off < IDS_TEXT_MAX - 12; i++)
        off += (size_t)snprintf(out + off, IDS_TEXT_MAX - off, "%s%" PRIu32, i ? "," : "",
                                ids[i]);
    return n ? out : "-";
}

static int report_error(drive *d, const Parley__V1__ServerFrame *f, const pc_status *st)
{
    if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR) {
        const Parley__V1__Error *e = f->error;
        char a[IDS_TEXT_MAX], b[IDS_TEXT_MAX], c[IDS_TEXT_MAX];
        printf("error %s", pc_error_name(e->code));
        if (e->mismatch)
            printf(" missing=%s extra=%s stale=%s",
                   ids_text(a, e->mismatch->missing, e->mismatch->n_missing),
                   ids_text(b, e->mismatch->extra, e->mismatch->n_extra),
                   ids_text(c, e->mismatch->stale, e->mismatch->n_stale));
        printf(" msg=%s\n", e->message ? e->message : "");
        return 0;
    }
    if (!f) {
        drive_fail(&d->b, "%s", st ? st->msg : "no answer");
        return -1;
    }
    drive_fail(&d->b, "unexpected answer (frame case %d)", (int)f->body_case);
    return -1;
}

/* The answer to the current request: 1 when it is of body case want; 0 when it was a server
 * error, printed (the run goes on); -1 when the run has failed or ended. */
static int answer(drive *d, const Parley__V1__ServerFrame *f, const pc_status *st, int want)
{
    if (d->b.done)
        return -1;
    if (f && (int)f->body_case == want)
        return 1;
    return report_error(d, f, st);
}

/* ---- GetDevices ---------------------------------------------------------------------------- */

static void print_devices(drive *d, const Parley__V1__DeviceList *dl, int own)
{
    uint32_t rows[64], vers[PARLEY_DEVICE_LIST_CHAIN_MAX];
    size_t nr = 0, nv = 0;
    char a[IDS_TEXT_MAX], b[IDS_TEXT_MAX];
    pdl_list prev;
    int have_prev = 0;

    for (size_t i = 0; i < dl->n_devices && nr < 64; i++)
        rows[nr++] = dl->devices[i]->device_id;
    pdl_list *lists = calloc(dl->n_lists ? dl->n_lists : 1, sizeof *lists);
    if (!lists) {
        drive_fail(&d->b, "out of memory");
        return;
    }
    for (size_t i = 0; i < dl->n_lists; i++) {
        const Parley__V1__SignedDeviceList *s = dl->lists[i];
        if (pdl_parse(s->body.data, s->body.len, &lists[i], NULL) != 0)
            lists[i].version = 0;
        if (nv < PARLEY_DEVICE_LIST_CHAIN_MAX)
            vers[nv++] = (uint32_t)lists[i].version;
    }
    const char *key = "-";
    if (own)
        key = dl->account_key.len == 32 &&
                      !memcmp(dl->account_key.data, d->b.home.id.keys.account_pk, 32)
                  ? "match"
                  : "other";
    printf("devices latest=%" PRIu64 " key=%s rows=%s lists=%s\n", dl->latest_version, key,
           ids_text(a, rows, nr), ids_text(b, vers, nv));
    for (size_t i = 0; i < dl->n_lists; i++) {
        const Parley__V1__SignedDeviceList *s = dl->lists[i];
        const pdl_list *l = &lists[i];
        uint32_t devs[PARLEY_MAX_DEVICES_PER_ACCOUNT];
        for (size_t k = 0; k < l->n; k++)
            devs[k] = l->dev[k].device_id;
        int sig_ok = dl->account_key.len == 32 &&
                     pdl_verify(s->signature.data, s->signature.len, s->body.data, s->body.len,
                                dl->account_key.data) == 0;
        const char *chain = "first";
        if (have_prev)
            chain = pdl_check_next(&prev, l, NULL) == 0 ? "ok" : "bad";
        printf("list v=%" PRIu64 " sig=%s chain=%s devs=%s max=%" PRIu32 "\n", l->version,
               sig_ok ? "ok" : "bad", chain, ids_text(a, devs, l->n), l->max_device_id);
        prev = *l;
        have_prev = 1;
    }
    free(lists);
}

static void get_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    drive *d = ud;
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICES);

    (void)c;
    if (rc < 0)
        return;
    if (rc)
        print_devices(d, f->devices, !strcmp(d->acts[d->next].arg, d->b.home.id.username));
    next_action(d);
}

/* ---- PublishDeviceList --------------------------------------------------------------------- */

static void publish_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                         void *ud)
{
    drive *d = ud;
    char a[IDS_TEXT_MAX], b[IDS_TEXT_MAX];
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICE_LIST_OK);

    (void)c;
    if (rc < 0)
        return;
    if (rc) {
        const Parley__V1__DeviceListOk *ok = f->device_list_ok;
        printf("published v=%" PRIu64 " added=%s removed=%s\n", ok->version,
               ids_text(a, ok->added, ok->n_added), ids_text(b, ok->removed, ok->n_removed));
    }
    next_action(d);
}

/* A list being built: the header fields in l, the devices here (fill=N may go past the limit
 * to test it, which pdl_list cannot hold). */
#define BIG_LIST_MAX (PARLEY_MAX_DEVICES_PER_ACCOUNT + 4)
typedef struct {
    pdl_list l;
    pdl_device dev[BIG_LIST_MAX];
    size_t n;
} big_list;

static void list_remove(big_list *bl, uint32_t id)
{
    for (size_t i = 0; i < bl->n; i++)
        if (bl->dev[i].device_id == id) {
            memmove(&bl->dev[i], &bl->dev[i + 1], (bl->n - i - 1) * sizeof bl->dev[0]);
            bl->n--;
            return;
        }
}

/* Inserts dev in id order. */
static void list_insert(big_list *bl, const pdl_device *dev)
{
    size_t i = bl->n;

    if (bl->n >= BIG_LIST_MAX)
        return;
    while (i > 0 && bl->dev[i - 1].device_id > dev->device_id) {
        bl->dev[i] = bl->dev[i - 1];
        i--;
    }
    bl->dev[i] = *dev;
    bl->n++;
    if (dev->device_id > bl->l.max_device_id)
        bl->l.max_device_id = dev->device_id;
}

/* The body of bl as DeviceListBody bytes (any device count). Caller frees. */
static uint8_t *encode_any(const big_list *bl, size_t *len)
{
    const pdl_list *l = &bl->l;
    Parley__V1__ListedDevice dev[BIG_LIST_MAX];
    Parley__V1__ListedDevice *devp[BIG_LIST_MAX];
    const pdl_device *all = bl->dev;

    for (size_t i = 0; i < bl->n; i++) {
        parley__v1__listed_device__init(&dev[i]);
        dev[i].device_id = all[i].device_id;
        dev[i].registration_id = all[i].registration_id;
        dev[i].signing_key.data = (uint8_t *)all[i].signing_pk;
        dev[i].signing_key.len = 32;
        dev[i].identity_key.data = (uint8_t *)all[i].identity_pk;
        dev[i].identity_key.len = 32;
        devp[i] = &dev[i];
    }
    Parley__V1__DeviceListBody b = PARLEY__V1__DEVICE_LIST_BODY__INIT;
    b.account = (char *)l->account;
    b.version = l->version;
    if (l->has_prev) {
        b.prev_hash.data = (uint8_t *)l->prev_hash;
        b.prev_hash.len = PDL_HASH_BYTES;
    }
    b.n_devices = bl->n;
    b.devices = devp;
    b.max_device_id = l->max_device_id;
    b.timestamp_ms = l->timestamp_ms;
    *len = parley__v1__device_list_body__get_packed_size(&b);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        parley__v1__device_list_body__pack(&b, buf);
    return buf;
}

static int build_and_publish(drive *d, const Parley__V1__DeviceList *dl)
{
    char spec[SPEC_MAX];
    big_list bl;
    pdl_list *l = &bl.l;
    int badsig = 0, badprev = 0;
    long version = -1;
    uint8_t account_sk[64], account_pk[32];

    memset(&bl, 0, sizeof bl);
    memcpy(account_sk, d->b.home.id.keys.account_sk, 64);
    if (dl->n_lists > 0) {
        const Parley__V1__SignedDeviceList *s = dl->lists[dl->n_lists - 1];
        if (pdl_parse(s->body.data, s->body.len, l, NULL) != 0) {
            drive_fail(&d->b, "the current list does not parse");
            return -1;
        }
        l->has_prev = 1;
        memcpy(l->prev_hash, l->hash, PDL_HASH_BYTES);
        l->version++;
        memcpy(bl.dev, l->dev, l->n * sizeof l->dev[0]);
        bl.n = l->n;
    } else {
        /* no list yet (an account from before signed lists): version 1 of the device rows */
        snprintf(l->account, sizeof l->account, "%s", d->b.home.id.username);
        l->version = 1;
        for (size_t i = 0; i < dl->n_devices && i < PARLEY_MAX_DEVICES_PER_ACCOUNT; i++) {
            pdl_device dev;
            const Parley__V1__DeviceInfo *x = dl->devices[i];
            dev.device_id = x->device_id;
            dev.registration_id = x->registration_id;
            memcpy(dev.signing_pk, x->signing_key.data, 32);
            memcpy(dev.identity_pk, x->identity_key.data, 32);
            list_insert(&bl, &dev);
        }
    }
    l->timestamp_ms = pclock_wall_ms();
    snprintf(spec, sizeof spec, "%s", d->acts[d->next].arg);
    for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
        pdl_device dev;
        if (!strncmp(tok, "add=", 4)) {
            made_up_device(tok + 4, l->max_device_id + 1, &dev);
            list_insert(&bl, &dev);
        } else if (!strncmp(tok, "addhome=", 8)) {
            pc_home h;
            pc_status hst;
            if (pc_home_open(&h, tok + 8, 0, &hst) < 0) {
                drive_fail(&d->b, "addhome: %s", hst.msg);
                return -1;
            }
            if (pc_home_load(&h, &hst) < 0) {
                pc_home_free(&h);
                drive_fail(&d->b, "addhome: %s", hst.msg);
                return -1;
            }
            dev.device_id = l->max_device_id + 1;
            dev.registration_id = h.id.keys.registration_id;
            memcpy(dev.signing_pk, h.id.keys.signing_pk, 32);
            memcpy(dev.identity_pk, h.id.keys.identity_pk, 32);
            pc_home_free(&h);
            list_insert(&bl, &dev);
        } else if (!strncmp(tok, "remove=", 7)) {
            list_remove(&bl, (uint32_t)strtoul(tok + 7, NULL, 10));
        } else if (!strncmp(tok, "fill=", 5)) {
            size_t want = strtoul(tok + 5, NULL, 10);
            for (int k = 0; bl.n < want && k < BIG_LIST_MAX; k++) {
                char seed[32];
                snprintf(seed, sizeof seed, "fill%d", k);
                made_up_device(seed, l->max_device_id + 1, &dev);
                list_insert(&bl, &dev);
            }
        } else if (!strncmp(tok, "version=", 8)) {
            version = strtol(tok + 8, NULL, 10);
        } else if (!strcmp(tok, "badprev")) {
            badprev = 1;
        } else if (!strcmp(tok, "badsig")) {
            badsig = 1;
        } else if (!strncmp(tok, "rekey=", 6)) {
            uint32_t id = (uint32_t)strtoul(tok + 6, NULL, 10);
            for (size_t i = 0; i < bl.n; i++)
                if (bl.dev[i].device_id == id)
                    bl.dev[i].identity_pk[0] ^= 0x01;
        } else if (!strncmp(tok, "reuse=", 6)) {
            made_up_device("reuse", (uint32_t)strtoul(tok + 6, NULL, 10), &dev);
            list_insert(&bl, &dev);
        } else if (!strncmp(tok, "account=", 8)) {
            snprintf(l->account, sizeof l->account, "%s", tok + 8);
        } else if (!strncmp(tok, "signer=", 7)) {
            uint8_t h[32];
            seed_hash(h, tok + 7, "account");
            crypto_sign_seed_keypair(account_pk, account_sk, h);
        } else {
            drive_fail(&d->b, "bad --publish item %s", tok);
            return -1;
        }
    }
    if (version >= 0)
        l->version = (uint64_t)version;
    if (badprev)
        l->prev_hash[0] ^= 0x01;
    size_t len;
    uint8_t *body = encode_any(&bl, &len), sig[PDL_SIG_BYTES];
    if (!body) {
        drive_fail(&d->b, "out of memory");
        return -1;
    }
    pdl_sign(sig, body, len, account_sk);
    sodium_memzero(account_sk, sizeof account_sk);
    if (badsig)
        sig[5] ^= 0x10;
    Parley__V1__SignedDeviceList sdl = PARLEY__V1__SIGNED_DEVICE_LIST__INIT;
    sdl.body.data = body;
    sdl.body.len = len;
    sdl.signature.data = sig;
    sdl.signature.len = sizeof sig;
    Parley__V1__PublishDeviceList p = PARLEY__V1__PUBLISH_DEVICE_LIST__INIT;
    p.list = &sdl;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PUBLISH_DEVICE_LIST;
    f.publish_device_list = &p;
    pc_status st;
    int rc = pc_conn_request(d->b.conn, &f, publish_done, d, &st);
    free(body);
    if (rc < 0)
        drive_fail(&d->b, "publish: %s", st.msg);
    return rc;
}

static void publish_current_done(pc_conn *c, const Parley__V1__ServerFrame *f,
                                 const pc_status *st, void *ud)
{
    drive *d = ud;
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICES);

    (void)c;
    if (rc == 0)
        next_action(d);
    if (rc <= 0)
        return;
    build_and_publish(d, f->devices);
}

/* ---- Send ------------------------------------------------------------------------------------ */

static void send_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                      void *ud)
{
    drive *d = ud;
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_SEND_RESULT);

    (void)c;
    if (rc < 0)
        return;
    if (rc)
        printf("sent n=%zu\n", f->send_result->n_stored);
    next_action(d);
}

static void send_devices_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                              void *ud)
{
    drive *d = ud;
    const action *a = &d->acts[d->next];
    Parley__V1__OutEnvelope env[PARLEY_MAX_DEVICES_PER_ACCOUNT * 2];
    Parley__V1__OutEnvelope *envp[PARLEY_MAX_DEVICES_PER_ACCOUNT * 2];
    uint8_t content[16];
    char ids[SPEC_MAX];
    size_t n = 0;
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_DEVICES);

    (void)c;
    if (rc == 0)
        next_action(d);
    if (rc <= 0)
        return;
    randombytes_buf(content, sizeof content);
    snprintf(ids, sizeof ids, "%s", a->arg2);
    for (char *tok = strtok(ids, ","); tok && n < PARLEY_MAX_DEVICES_PER_ACCOUNT * 2;
         tok = strtok(NULL, ",")) {
        uint32_t id = (uint32_t)strtoul(tok, NULL, 10), reg = 1;
        for (size_t i = 0; i < f->devices->n_devices; i++)
            if (f->devices->devices[i]->device_id == id)
                reg = f->devices->devices[i]->registration_id;
        parley__v1__out_envelope__init(&env[n]);
        env[n].device_id = id;
        env[n].registration_id = reg;
        env[n].content.data = content;
        env[n].content.len = sizeof content;
        envp[n] = &env[n];
        n++;
    }
    Parley__V1__Send s = PARLEY__V1__SEND__INIT;
    randombytes_buf(&s.client_id, sizeof s.client_id);
    s.recipient = (char *)a->arg;
    s.n_envelopes = n;
    s.envelopes = envp;
    Parley__V1__ClientFrame cf = PARLEY__V1__CLIENT_FRAME__INIT;
    cf.body_case = PARLEY__V1__CLIENT_FRAME__BODY_SEND;
    cf.send = &s;
    pc_status st2;
    if (pc_conn_request(d->b.conn, &cf, send_done, d, &st2) < 0)
        drive_fail(&d->b, "send: %s", st2.msg);
}

/* ---- prekeys ------------------------------------------------------------------------------- */

static void upload_done(pc_conn *c, const pc_status *st, const pc_prekeys_counts *counts,
                        void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done)
        return;
    if (!counts) {
        if (st->kind != PC_ERR_SERVER) {
            drive_fail(&d->b, "upload: %s", st->msg);
            return;
        }
        printf("error %s msg=%s\n", pc_error_name(st->server_code), st->msg);
    } else {
        printf("uploaded one_time=%" PRIu32 " spk=%" PRIu32 "\n", counts->one_time_count,
               counts->signed_prekey_id);
    }
    next_action(d);
}

static int do_upload(drive *d, long n)
{
    pc_prekeys_spk spk;
    uint8_t t[PPKSIG_TRANSCRIPT_BYTES];
    pc_prekeys_opk *opks = calloc(n > 0 ? (size_t)n : 1, sizeof *opks);
    pc_status st;

    if (!opks)
        return -1;
    spk.id = 1;
    randombytes_buf(spk.pk, sizeof spk.pk);
    ppksig_transcript(t, spk.id, spk.pk);
    pc_keys_sign_device(&d->id.keys, spk.sig, t, sizeof t);
    for (long i = 0; i < n; i++) {
        opks[i].id = (uint32_t)(i + 1);
        randombytes_buf(opks[i].pk, sizeof opks[i].pk);
    }
    int rc = pc_prekeys_upload(d->b.conn, &spk, opks, (size_t)n, 0, upload_done, d, &st);
    free(opks);
    if (rc < 0)
        drive_fail(&d->b, "upload: %s", st.msg);
    return rc;
}

/* ---- waiting for the close ----------------------------------------------------------------- */

static void wait_cb(uv_timer_t *t)
{
    drive *d = t->data;

    d->waiting_close = 0;
    printf("still-open\n");
    next_action(d);
}

static void conn_closed(pc_conn *c, const pc_status *st, void *ud)
{
    drive *d = ud;

    (void)c;
    d->closed = 1;
    d->close_code = st->close_code;
    if (d->b.done)
        return;
    if (d->waiting_close) {
        d->waiting_close = 0;
        uv_timer_stop(&d->b.wait);
        printf("closed %d\n", d->close_code);
        next_action(d);
        return;
    }
    /* pending requests are answered with NULL and fail the run themselves */
}

static void conn_frame(pc_conn *c, const Parley__V1__ServerFrame *f, void *ud)
{
    (void)c;
    (void)f;
    (void)ud; /* pushes (envelopes, queue_empty) are not this tool's business */
}

/* ---- --register ---------------------------------------------------------------------------- */

static void register_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                          void *ud)
{
    drive *d = ud;
    int rc = answer(d, f, st, PARLEY__V1__SERVER_FRAME__BODY_REGISTER_OK);

    (void)c;
    if (rc < 0)
        return;
    if (rc)
        printf("registered %s\n", f->register_ok->username);
    drive_stop(&d->b, 0);
}

static void register_challenge(pc_conn *c, const pc_challenge *ch, const pc_status *st,
                               void *ud)
{
    drive *d = ud;
    const pc_keys *k = &d->reg_keys;
    uint8_t tr[PAUTH_TRANSCRIPT_MAX], asig[64], dsig[64], lsig[PDL_SIG_BYTES];
    char name[PARLEY_NAME_MAX + 1];

    if (d->b.done)
        return;
    if (!ch || pauth_name_normalize(d->reg_name, name) != 0) {
        drive_fail(&d->b, "register: %s", ch ? "invalid name" : st->msg);
        return;
    }
    size_t trlen = pauth_register_transcript(tr, ch->nonce, name, k->account_pk, k->signing_pk,
                                             k->identity_pk, k->registration_id);
    pc_keys_sign_account(k, asig, tr, trlen);
    pc_keys_sign_device(k, dsig, tr, trlen);
    big_list bl;
    memset(&bl, 0, sizeof bl);
    snprintf(bl.l.account, sizeof bl.l.account, "%s", !strcmp(d->reg_kind, "other") ? "someone"
                                                                                     : name);
    bl.l.version = !strcmp(d->reg_kind, "version2") ? 2 : 1;
    bl.l.has_prev = bl.l.version == 2;
    bl.l.timestamp_ms = pclock_wall_ms();
    pdl_device dev = {.device_id = 1, .registration_id = k->registration_id};
    memcpy(dev.signing_pk, k->signing_pk, 32);
    memcpy(dev.identity_pk, k->identity_pk, 32);
    if (!strcmp(d->reg_kind, "wrongkey"))
        dev.signing_pk[0] ^= 0x01;
    list_insert(&bl, &dev);
    if (!strcmp(d->reg_kind, "twodevices")) {
        made_up_device("second", 2, &dev);
        list_insert(&bl, &dev);
    }
    size_t len;
    uint8_t *body = encode_any(&bl, &len);
    if (!body) {
        drive_fail(&d->b, "out of memory");
        return;
    }
    pdl_sign(lsig, body, len, k->account_sk);
    if (!strcmp(d->reg_kind, "badsig"))
        lsig[7] ^= 0x20;
    Parley__V1__SignedDeviceList sdl = PARLEY__V1__SIGNED_DEVICE_LIST__INIT;
    sdl.body.data = body;
    sdl.body.len = len;
    sdl.signature.data = lsig;
    sdl.signature.len = sizeof lsig;
    Parley__V1__Register r = PARLEY__V1__REGISTER__INIT;
    r.username = name;
    r.account_key.data = (uint8_t *)k->account_pk;
    r.account_key.len = 32;
    r.device_signing_key.data = (uint8_t *)k->signing_pk;
    r.device_signing_key.len = 32;
    r.device_identity_key.data = (uint8_t *)k->identity_pk;
    r.device_identity_key.len = 32;
    r.registration_id = k->registration_id;
    r.pow_nonce = pauth_pow_solve(ch->nonce, name, ch->pow_difficulty);
    r.account_signature.data = asig;
    r.account_signature.len = 64;
    r.device_signature.data = dsig;
    r.device_signature.len = 64;
    if (strcmp(d->reg_kind, "none") != 0)
        r.device_list = &sdl;
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_REGISTER;
    f.register_ = &r;
    pc_status st2;
    int rc = pc_conn_request(c, &f, register_done, d, &st2);
    free(body);
    if (rc < 0)
        drive_fail(&d->b, "register: %s", st2.msg);
}

/* ---- the action loop ----------------------------------------------------------------------- */

static void run(drive *d)
{
    pc_status st;

    if (d->b.done)
        return;
    if (d->next >= d->nacts) {
        drive_stop(&d->b, 0);
        return;
    }
    const action *a = &d->acts[d->next];
    if (d->closed && a->kind != A_WAIT_CLOSE) {
        drive_fail(&d->b, "the connection is closed (code %d)", d->close_code);
        return;
    }
    switch (a->kind) {
    case A_GET:
        if (pc_get_devices(d->b.conn, a->arg, strtoull(a->arg2, NULL, 10), get_done, d, &st) < 0)
            drive_fail(&d->b, "get: %s", st.msg);
        break;
    case A_PUBLISH:
        if (pc_get_devices(d->b.conn, d->b.home.id.username, 0, publish_current_done, d, &st) < 0)
            drive_fail(&d->b, "publish: %s", st.msg);
        break;
    case A_SEND:
        if (pc_get_devices(d->b.conn, a->arg, 0, send_devices_done, d, &st) < 0)
            drive_fail(&d->b, "send: %s", st.msg);
        break;
    case A_UPLOAD:
        do_upload(d, strtol(a->arg, NULL, 10));
        break;
    case A_WAIT_CLOSE:
        if (d->closed) {
            printf("closed %d\n", d->close_code);
            next_action(d);
            return;
        }
        d->waiting_close = 1;
        uv_timer_start(&d->b.wait, wait_cb, (uint64_t)llround(atof(a->arg) * 1000), 0);
        break;
    }
}

static void auth_done(pc_conn *c, const pc_status *st, const Parley__V1__AuthOk *ok, void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done)
        return;
    if (!ok) {
        if (st->kind == PC_ERR_SERVER) {
            printf("auth-error %s\n", pc_error_name(st->server_code));
            drive_stop(&d->b, 0);
        } else {
            drive_fail(&d->b, "auth: %s", st->msg);
        }
        return;
    }
    printf("auth device=%" PRIu32 " queued=%" PRIu64 "\n", ok->device_id, ok->queued);
    run(d);
}

static void deadline_cb(uv_timer_t *t)
{
    drive_fail(t->data, "timed out");
}

/* ---- --open-while-authing ------------------------------------------------------------------ */

static void opened_done(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                        void *ud)
{
    drive *d = ud;

    (void)c;
    if (d->b.done)
        return;
    if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_PROVISION_OPENED)
        printf("open-opened\n");
    else if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR)
        printf("open-error %s msg=%s\n", pc_error_name(f->error->code),
               f->error->message ? f->error->message : "");
    else
        drive_fail(&d->b, "open: %s", f ? "unexpected answer" : st->msg);
}

static void answered(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                     void *ud)
{
    drive *d = ud;
    pc_status r;

    if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_AUTH_OK) {
        auth_done(c, st, f->auth_ok, d);
        return;
    }
    if (f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR) {
        pc_status_from_error(&r, f->error);
        auth_done(c, &r, NULL, d);
        return;
    }
    if (f)
        pc_status_set(&r, PC_ERR_PROTO, "unexpected answer to AuthAnswer");
    auth_done(c, f ? &r : st, NULL, d);
}

static void challenged(pc_conn *c, const pc_challenge *ch, const pc_status *st, void *ud)
{
    drive *d = ud;
    uint8_t sig[64];
    uint64_t now = ch && ch->server_time_ms ? ch->server_time_ms : pclock_wall_ms();
    Parley__V1__ClientFrame f = PARLEY__V1__CLIENT_FRAME__INIT;
    Parley__V1__AuthAnswer a = PARLEY__V1__AUTH_ANSWER__INIT;
    Parley__V1__ProvisionOpen o = PARLEY__V1__PROVISION_OPEN__INIT;
    uint8_t data[32] = {0};
    pc_status err;

    if (d->b.done)
        return;
    if (!ch) {
        drive_fail(&d->b, "no challenge: %s", st ? st->msg : "closed");
        return;
    }
    if (drive_auth_answer(&d->id, ch, now, &a, sig) < 0) {
        drive_fail(&d->b, "cannot build the auth transcript");
        return;
    }
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_AUTH;
    f.auth = &a;
    if (pc_conn_request(c, &f, answered, d, &err) < 0) {
        drive_fail(&d->b, "auth: %s", err.msg);
        return;
    }
    o.data.data = data;
    o.data.len = sizeof data;
    f.body_case = PARLEY__V1__CLIENT_FRAME__BODY_PROVISION_OPEN;
    f.provision_open = &o;
    if (pc_conn_request(c, &f, opened_done, d, &err) < 0)
        drive_fail(&d->b, "open: %s", err.msg);
}

/* ---- arguments and main -------------------------------------------------------------------- */

static int parse(drive *d, int argc, char **argv)
{
    d->as = "primary";
    d->acts = calloc((size_t)argc, sizeof *d->acts);
    if (!d->acts)
        return drive_usage(&d->b, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int left = argc - i - 1;
        action *a = &d->acts[d->nacts];
        int rc = drive_common_option(&d->b, argc, argv, &i);
        if (rc == 1)
            continue;
        if (rc)
            return rc;
        if (!strcmp(o, "--as") && left >= 1) {
            d->as = argv[++i];
        } else if (!strcmp(o, "--open-while-authing")) {
            d->open_while_authing = 1;
        } else if (!strcmp(o, "--get") && left >= 1) {
            a->kind = A_GET;
            a->arg = NULL; /* the home's account, set in start() */
            a->arg2 = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--get-of") && left >= 2) {
            a->kind = A_GET;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--publish") && left >= 1) {
            a->kind = A_PUBLISH;
            a->arg = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--send") && left >= 2) {
            a->kind = A_SEND;
            a->arg = argv[++i];
            a->arg2 = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--upload-prekeys") && left >= 1) {
            a->kind = A_UPLOAD;
            a->arg = argv[++i];
            d->nacts++;
        } else if (!strcmp(o, "--register") && left >= 2) {
            d->reg_kind = argv[++i];
            d->reg_name = argv[++i];
        } else if (!strcmp(o, "--wait-close") && left >= 1) {
            a->kind = A_WAIT_CLOSE;
            a->arg = argv[++i];
            d->nacts++;
        } else {
            return drive_usage(&d->b, "unknown argument");
        }
    }
    if (!d->b.home_open && !(d->reg_kind && d->b.server))
        return drive_usage(&d->b, "--home is required (or --server and --register)");
    return 0;
}

static int start(drive *d)
{
    static const pc_conn_events ev = {NULL, conn_frame, conn_closed};
    pc_status st;

    if (d->reg_kind) {
        if (drive_start_ctx(&d->b) < 0)
            return -1;
        if (pc_keys_generate(&d->reg_keys, &st) < 0 ||
            !(d->b.conn = pc_conn_open(d->b.ctx, d->b.server, &ev, d, &st))) {
            drive_fail(&d->b, "%s", st.msg);
            return -1;
        }
        pc_conn_on_challenge(d->b.conn, register_challenge, d);
        drive_arm(&d->b, deadline_cb);
        return 0;
    }
    if (drive_load_home(&d->b) < 0)
        return -1;
    for (int i = 0; i < d->nacts; i++)
        if (d->acts[i].kind == A_GET && !d->acts[i].arg)
            d->acts[i].arg = d->b.home.id.username;
    d->id = d->b.home.id;
    if (!strcmp(d->as, "account")) {
        d->id.device_id = 0;
    } else if (!strncmp(d->as, "dev:", 4)) {
        char seed[SPEC_MAX];
        const char *colon = strrchr(d->as + 4, ':');
        if (!colon || colon == d->as + 4) {
            drive_fail(&d->b, "--as dev:SEED:ID");
            return -1;
        }
        snprintf(seed, sizeof seed, "%.*s", (int)(colon - (d->as + 4)), d->as + 4);
        made_up_keys(seed, &d->id.keys);
        memcpy(d->id.keys.account_pk, d->b.home.id.keys.account_pk, 32);
        d->id.device_id = (uint32_t)strtoul(colon + 1, NULL, 10);
    } else if (strcmp(d->as, "primary") != 0) {
        drive_fail(&d->b, "unknown --as %s", d->as);
        return -1;
    }
    if (drive_start_ctx(&d->b) < 0)
        return -1;
    d->b.conn = pc_conn_open(d->b.ctx, d->b.server, &ev, d, &st);
    if (d->b.conn && d->open_while_authing) {
        pc_conn_on_challenge(d->b.conn, challenged, d);
    } else if (!d->b.conn || pc_auth_start(d->b.conn, &d->id, auth_done, d, &st) < 0) {
        drive_fail(&d->b, "%s", st.msg);
        return -1;
    }
    drive_arm(&d->b, deadline_cb);
    return 0;
}

int main(int argc, char **argv)
{
    drive d;
    int rc;

    memset(&d, 0, sizeof d);
    if (drive_init(&d.b, "parley-devlist-drive",
                   "parley-devlist-drive --home DIR [--server URL] [--timeout S]"
                   " [--as primary|account|dev:SEED:ID] ACTION...",
                   DEFAULT_TIMEOUT_S) < 0)
        return 1;
    rc = parse(&d, argc, argv);
    if (rc == 0 && start(&d) == 0)
        uv_run(&d.b.loop, UV_RUN_DEFAULT);
    else if (rc == 0)
        rc = 1;

    /* the conn first: its pending requests are cancelled (callbacks see d.b.done) */
    d.b.done = 1;
    if (d.b.conn)
        pc_conn_free(d.b.conn);
    drive_finish(&d.b);
    sodium_memzero(&d.id.keys, sizeof d.id.keys);
    sodium_memzero(&d.reg_keys, sizeof d.reg_keys);
    free(d.acts);
    return rc ? rc : d.b.rc;
}
