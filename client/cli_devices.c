/* cli_devices.c: `parley devices NAME`, `devices remove ID`, `safety-number NAME` and `trust
 * NAME` (cli_app.h): a device list fetched and verified against the pin (devtrust.h), paging
 * through long chains, and the safety number of the two accounts' keys. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cli_app.h"
#include "devchange.h"

/* ---- device lists ----------------------------------------------------------------------- */

static int ask_devices(app *a, pc_conn *c, pc_response_cb cb);

/* The pin of a->peer after the DeviceList answer f verified against it (devtrust.h) and was
 * saved; NULL after cli_fail() otherwise, or when f was a page of a longer chain: then the next
 * page is asked for, answered to again (the callback f came to). */
static pc_dt_pin *trusted_answer(app *a, pc_conn *c, const Parley__V1__ServerFrame *f,
                                 const pc_status *st, pc_response_cb again)
{
    pc_dt_pin *pin;
    pc_status e;
    int rc;

    if (!f) {
        cli_fail_status(a, st);
        return NULL;
    }
    if (f->body_case == PARLEY__V1__SERVER_FRAME__BODY_ERROR && f->error) {
        if (f->error->code == PARLEY__V1__ERROR_CODE__UNKNOWN_ACCOUNT) {
            cli_fail(a, "unknown account %s", a->peer);
            return NULL;
        }
        pc_status_from_error(&e, f->error);
        cli_fail(a, "%s", e.msg);
        return NULL;
    }
    if (f->body_case != PARLEY__V1__SERVER_FRAME__BODY_DEVICES || !f->devices) {
        cli_fail(a, "unexpected answer to GetDevices");
        return NULL;
    }
    if (!(pin = pc_vault_pin(a->vault, a->peer, &e)) ||
        (rc = pc_dt_accept(pin, a->peer, f->devices, &e)) < 0) {
        cli_fail(a, "%s", e.msg);
        return NULL;
    }
    pc_vault_pin_changed(a->vault, a->peer);
    if (pc_vault_save(a->vault, &e) < 0) {
        cli_fail(a, "%s", e.msg);
        return NULL;
    }
    if (rc == PC_DT_MORE) {
        ask_devices(a, c, again);
        return NULL;
    }
    return pin;
}

/* GetDevices(a->peer) from the pinned version, answered to cb. Returns 0, or -1 after
 * cli_fail(). */
static int ask_devices(app *a, pc_conn *c, pc_response_cb cb)
{
    pc_dt_pin *pin;
    pc_status st;

    if (!(pin = pc_vault_pin(a->vault, a->peer, &st))) {
        cli_fail(a, "%s", st.msg);
        return -1;
    }
    if (pc_get_devices(c, a->peer, pin->has_list ? pin->list.version : 0, cb, a, &st) < 0) {
        cli_fail_status(a, &st);
        return -1;
    }
    return 0;
}

static void devices_answer(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                           void *ud)
{
    app *a = ud;
    int own = !strcmp(a->peer, a->home.id.username);
    uint32_t ghosts[PARLEY_MAX_DEVICES_PER_ACCOUNT];
    size_t n_ghosts;
    pc_dt_pin *pin;

    if (!(pin = trusted_answer(a, c, f, st, devices_answer)))
        return;
    for (size_t i = 0; i < pin->list.n; i++) {
        uint32_t id = pin->list.dev[i].device_id;
        printf("%u%s\n", (unsigned)id, own && id == a->home.id.device_id ? "\tthis device" : "");
    }
    fflush(stdout);
    pc_dt_ghosts(pin, f->devices, ghosts, PARLEY_MAX_DEVICES_PER_ACCOUNT, &n_ghosts);
    for (size_t i = 0; i < n_ghosts && i < PARLEY_MAX_DEVICES_PER_ACCOUNT; i++)
        fprintf(stderr,
                "parley: warning: the server also lists device %u of %s, which is not in %s's "
                "signed device list (added by the server?): nothing is sent to it\n",
                (unsigned)ghosts[i], a->peer, a->peer);
    cli_finish(a, 0);
}

static void removed(const pc_status *st, const pdl_list *list, uint32_t device_id, void *ud)
{
    app *a = ud;
    pc_status e;

    (void)list;
    /* the pin may have moved to the server's current list even when the change failed */
    pc_vault_pin_changed(a->vault, a->peer);
    if (st->kind != PC_OK) {
        pc_vault_save(a->vault, &e);
        cli_fail_status(a, st);
        return;
    }
    pc_vault_drop(a->vault, a->peer, device_id);
    if (pc_vault_save(a->vault, &e) < 0) {
        cli_fail(a, "removed device %u, but cannot save the device list: %s", (unsigned)device_id,
             e.msg);
        return;
    }
    printf("removed device %u\n", (unsigned)device_id);
    fflush(stdout);
    cli_finish(a, 0);
}

static void devices_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    app *a = ud;
    pc_devchange ch;
    pc_dt_pin *pin;
    pc_status st;

    (void)ok;
    if (a->ever_up)
        return; /* a reconnect: the request of the first connection answers or fails */
    a->ever_up = 1;
    if (!a->remove_id) {
        ask_devices(a, pc_session_conn(s), devices_answer);
        return;
    }
    memset(&ch, 0, sizeof ch);
    ch.remove_id = a->remove_id;
    if (!(pin = pc_vault_pin(a->vault, a->peer, &st)) ||
        pc_devchange_start(pc_session_conn(s), pin, &a->home.id.keys, a->peer, &ch, removed, a,
                           &st) < 0)
        cli_fail_status(a, &st);
}

static void devices_down(pc_session *s, const pc_status *st, int retrying, void *ud)
{
    (void)s;
    cli_session_down_common(ud, st, retrying);
}

int cli_cmd_devices(app *a)
{
    pc_session_events ev = { devices_up, NULL, devices_down, NULL, NULL };

    if (a->nargs == 2) {
        /* devices remove ID: on the own account, with the account key */
        char *end;
        unsigned long id;
        errno = 0;
        id = strtoul(a->args[1], &end, 10);
        if (errno || end == a->args[1] || *end || a->args[1][0] == '-' || id == 0 ||
            id > UINT32_MAX) {
            cli_fail(a, "devices remove wants a device id, got %s", a->args[1]);
            return -1;
        }
        if (!a->home.id.keys.has_account_sk) {
            cli_fail(a, "only a device holding the account key (the first device, or one recovered "
                    "from a kit) can remove devices");
            return -1;
        }
        if (id == a->home.id.device_id) {
            cli_fail(a, "device %lu is this device: remove it from another device that holds the "
                    "account key",
                 id);
            return -1;
        }
        a->remove_id = (uint32_t)id;
        snprintf(a->peer, sizeof a->peer, "%s", a->home.id.username);
    } else if (pauth_name_normalize(a->args[0], a->peer) < 0) {
        cli_fail(a, "invalid account name %s", a->args[0]);
        return -1;
    }
    if (cli_open_vault(a) < 0 || cli_open_session(a, &ev) < 0)
        return -1;
    cli_start_deadline(a, a->timeout_s);
    return 0;
}

/* ---- safety-number ---------------------------------------------------------------------- */

static void safety_peer(pc_conn *c, const Parley__V1__ServerFrame *f, const pc_status *st,
                        void *ud)
{
    app *a = ud;
    const Parley__V1__DeviceList *dl = f && f->body_case == PARLEY__V1__SERVER_FRAME__BODY_DEVICES
                                           ? f->devices
                                           : NULL;
    int trusting = !strcmp(a->cmd, "trust");
    char digits[PC_FP_DIGITS + 1], shown[PC_FP_FORMATTED_BYTES];
    Parley__V1__DeviceList *verified;
    pc_dt_pin *pin;
    pc_status e;

    pc_status_ok(&e);
    if (!(pin = pc_vault_pin(a->vault, a->peer, &e))) {
        cli_fail(a, "%s", e.msg);
        return;
    }
    /* a new account key (the peer started over, or the server lies): safety-number shows
     * the number it would make, trust accepts it (the old pin goes and the new key is pinned
     * as on first contact) */
    if (dl && dl->account_key.len == 32 && pin->pinned &&
        memcmp(pin->account_pk, dl->account_key.data, 32)) {
        if (!trusting) {
            pc_fp_safety_number(a->home.id.keys.account_pk, a->home.id.username,
                                strlen(a->home.id.username), dl->account_key.data, a->peer,
                                strlen(a->peer), digits);
            pc_fp_format(digits, shown);
            printf("%s\n", shown);
            fflush(stdout);
            cli_fail(a, "the account key of %s is not the one you trusted (the server, or %s "
                    "started over): this number is for the new key; if %s confirms it, accept "
                    "the key with `parley trust %s`",
                 a->peer, a->peer, a->peer, a->peer);
            return;
        }
        memset(pin, 0, sizeof *pin);
        a->repinned = 1;
    }
    if (!(pin = trusted_answer(a, c, f, st, safety_peer)))
        return;
    /* the devices' keys come from the signed list: pinned now, so that sessions follow them
     * without a further warning */
    if (!(verified = pc_dt_verified_devices(pin, a->peer))) {
        cli_fail(a, "out of memory");
        return;
    }
    for (size_t i = 0; i < verified->n_devices; i++)
        if (pc_vault_observe(a->vault, a->peer, verified->devices[i], NULL, &e) < 0)
            break;
    parley__v1__device_list__free_unpacked(verified, NULL);
    if (e.kind != PC_OK) {
        cli_fail(a, "%s", e.msg);
        return;
    }
    pc_fp_safety_number(a->home.id.keys.account_pk, a->home.id.username,
                        strlen(a->home.id.username), pin->account_pk, a->peer, strlen(a->peer),
                        digits);
    pc_fp_format(digits, shown);
    printf("%s\n", shown);
    fflush(stdout);
    if (a->repinned)
        fprintf(stderr, "parley: now trusting the new account key of %s\n", a->peer);
    else if (trusting)
        fprintf(stderr, "parley: the account key of %s is the one already trusted\n", a->peer);
    pc_vault_ack_changes(a->vault, a->peer);
    if (pc_vault_save(a->vault, &e) < 0) {
        cli_fail(a, "%s", e.msg);
        return;
    }
    cli_finish(a, 0);
}

static void safety_up(pc_session *s, const Parley__V1__AuthOk *ok, void *ud)
{
    app *a = ud;

    (void)ok;
    if (a->ever_up)
        return; /* a reconnect: the first request answers or fails */
    a->ever_up = 1;
    ask_devices(a, pc_session_conn(s), safety_peer);
}

int cli_cmd_safety(app *a)
{
    pc_session_events ev = { safety_up, NULL, devices_down, NULL, NULL };

    if (pauth_name_normalize(a->args[0], a->peer) < 0) {
        cli_fail(a, "invalid account name %s", a->args[0]);
        return -1;
    }
    if (!strcmp(a->peer, a->home.id.username)) {
        cli_fail(a, "a safety number is between you and someone else");
        return -1;
    }
    if (cli_open_vault(a) < 0 || cli_open_session(a, &ev) < 0)
        return -1;
    cli_start_deadline(a, a->timeout_s);
    return 0;
}
