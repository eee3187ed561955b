/* cli_recover.c: the commands recovery-kit and recover (cli_recover.h), each in its own pc_cmd
 * (cli_cmd.h).
 *
 * recover: read and open the kit, log in as the account (device 0, account session) with the
 * kit's account key, pc_devchange_start(add this device), then save it, log in as it and
 * publish its prekeys (cli_join.h). */
#include "cli_recover.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cli_join.h"
#include "devchange.h"
#include "parley_client.h"
#include "recovery.h"
#include "wire.h"

const char pc_cmd_recover_usage[] =
    "  recovery-kit FILE          write the account key, encrypted under a passphrase, to FILE\n"
    "                             (passphrase: $PARLEY_PASSPHRASE or asked twice; 12+ chars)\n"
    "  recover FILE               (new device) join the account of a recovery kit as a new\n"
    "                             device holding the account key\n";

typedef struct {
    pc_cmd c;              /* c.conn: the account session */
    int joined;            /* in the list and saved: the close of the account session goes on */
    char account[PARLEY_NAME_MAX + 1];
    pc_keys keys;          /* the new device's, with the kit's account key */
    pc_identity acct;      /* the account session's identity (device 0) */
    pc_dt_pin pin;         /* the own account's, until the vault exists */
} recover_cmd;

/* ---- recover ------------------------------------------------------------------------------ */

static void recover_changed(const pc_status *st, const pdl_list *list, uint32_t device_id,
                            void *ud)
{
    recover_cmd *k = ud;
    char line[PC_CMD_LINE_MAX + PARLEY_NAME_MAX];

    (void)list;
    if (k->c.finishing)
        return;
    if (st->kind != PC_OK) {
        if (pc_join_full(st, k->account, line, sizeof line))
            pc_cmd_fail(&k->c, "%s", line);
        else
            pc_cmd_fail(&k->c, "cannot add this device to %s's device list: %s", k->account,
                        st->msg);
        return;
    }
    snprintf(k->c.home.id.username, sizeof k->c.home.id.username, "%s", k->account);
    k->c.home.id.device_id = device_id;
    k->c.home.id.keys = k->keys;
    snprintf(line, sizeof line, "recovered %s as device %u", k->account, (unsigned)device_id);
    if (pc_join_save(&k->c, &k->pin, line) < 0)
        return;
    k->joined = 1;
    pc_conn_close(k->c.conn, PWIRE_CLOSE_NORMAL, "recovered");
}

static void recover_authed(pc_conn *conn, const pc_status *st, const Parley__V1__AuthOk *ok,
                           void *ud)
{
    recover_cmd *k = ud;
    pc_devchange ch;
    pc_status e;

    if (!ok) {
        if (k->c.finishing)
            return;
        if (st->kind == PC_ERR_SERVER && st->server_code == PARLEY__V1__ERROR_CODE__AUTH_FAILED)
            pc_cmd_fail(&k->c, "the server does not accept the kit's account key for %s (another "
                               "server, or the account is gone): %s",
                        k->account, st->msg);
        else
            pc_cmd_fail_status(&k->c, st);
        return;
    }
    memset(&ch, 0, sizeof ch);
    ch.add = 1;
    ch.dev.registration_id = k->keys.registration_id;
    memcpy(ch.dev.signing_pk, k->keys.signing_pk, 32);
    memcpy(ch.dev.identity_pk, k->keys.identity_pk, 32);
    if (pc_devchange_start(conn, &k->pin, &k->keys, k->account, &ch, recover_changed, k, &e) < 0)
        pc_cmd_fail(&k->c, "cannot add this device to %s's device list: %s", k->account, e.msg);
}

static void recover_close(pc_conn *conn, const pc_status *st, void *ud)
{
    recover_cmd *k = ud;

    (void)conn;
    if (k->c.finishing) {
        uv_stop(k->c.loop);
        return;
    }
    if (k->joined) {
        pc_join_publish(&k->c);
        return;
    }
    pc_cmd_fail_status(&k->c, st);
}

static int read_kit(recover_cmd *k, const char *file, pc_recovery_secret *sec)
{
    char pass[PC_RECOVERY_PASSPHRASE_MAX + 1], *text;
    size_t len;
    pc_status st;
    int rc;

    if (pc_recovery_kit_read(file, &text, &len, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    rc = pc_recovery_passphrase(0, pass, sizeof pass, &st);
    if (rc == 0)
        rc = pc_recovery_kit_open(text, len, pass, sec, &st);
    sodium_memzero(pass, sizeof pass);
    free(text);
    if (rc < 0)
        pc_cmd_fail(&k->c, "%s", st.msg);
    return rc;
}

/* The kit's account, server (unless --server) and account key into k; wipes sec. */
static int take_kit(recover_cmd *k, pc_recovery_secret *sec)
{
    pc_status st;
    int rc = 0;

    if (pauth_name_normalize(sec->account, k->account) < 0 || strcmp(sec->account, k->account)) {
        pc_cmd_fail(&k->c, "wrong passphrase or damaged kit");
        rc = -1;
    } else if (!k->c.o->server) {
        if (sec->server[0])
            rc = pc_cmd_set_url(&k->c, sec->server);
        else {
            pc_cmd_fail(&k->c, "the kit names no server: use --server URL");
            rc = -1;
        }
    }
    if (rc == 0 && pc_keys_generate(&k->keys, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        rc = -1;
    }
    if (rc == 0) {
        memcpy(k->keys.account_sk, sec->account_sk, 64);
        crypto_sign_ed25519_sk_to_pk(k->keys.account_pk, k->keys.account_sk);
        k->keys.has_account_sk = 1;
    }
    pc_recovery_secret_wipe(sec);
    return rc;
}

static int run_recover(recover_cmd *k, const char *file)
{
    static const pc_conn_events ev = { NULL, NULL, recover_close };
    pc_recovery_secret sec;
    pc_status st;

    if (pc_cmd_need_empty_home(&k->c, "recover") < 0 || read_kit(k, file, &sec) < 0 ||
        take_kit(k, &sec) < 0)
        return -1;
    /* only lists signed by the kit's key are believed, from the first answer on */
    memset(&k->pin, 0, sizeof k->pin);
    k->pin.pinned = 1;
    memcpy(k->pin.account_pk, k->keys.account_pk, 32);

    snprintf(k->acct.username, sizeof k->acct.username, "%s", k->account);
    k->acct.device_id = 0;
    k->acct.keys = k->keys;
    k->c.conn = pc_conn_open(k->c.ctx, k->c.url, &ev, k, &st);
    if (!k->c.conn) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    if (pc_auth_start(k->c.conn, &k->acct, recover_authed, k, &st) < 0) {
        pc_cmd_fail(&k->c, "%s", st.msg);
        return -1;
    }
    pc_cmd_deadline(&k->c, pc_cmd_wait_s(&k->c), NULL, NULL);
    return 0;
}

int pc_cmd_recover(const pc_cmd_opts *o, const char *file)
{
    recover_cmd k;
    int rc;

    memset(&k, 0, sizeof k);
    pc_cmd_init(&k.c, o);
    /* without --server the URL comes from the kit (take_kit) */
    if (pc_cmd_open_home(&k.c, 1) == 0 && (!o->server || pc_cmd_set_url(&k.c, o->server) == 0) &&
        pc_cmd_start_ctx(&k.c) == 0)
        run_recover(&k, file);
    rc = pc_cmd_run_and_free(&k.c);
    pc_keys_wipe(&k.keys);
    pc_keys_wipe(&k.acct.keys);
    return rc;
}

/* ---- recovery-kit ------------------------------------------------------------------------- */

/* The kit of the loaded identity, written to file; fails the command when it cannot be. */
static int write_kit(pc_cmd *c, const char *file)
{
    char pass[PC_RECOVERY_PASSPHRASE_MAX + 1], *text = NULL;
    pc_recovery_secret sec;
    pc_status st;
    int rc = -1;

    memset(&sec, 0, sizeof sec);
    memcpy(sec.account_sk, c->home.id.keys.account_sk, 64);
    snprintf(sec.account, sizeof sec.account, "%s", c->home.id.username);
    snprintf(sec.server, sizeof sec.server, "%s",
             c->o->server ? c->o->server : c->home.server ? c->home.server : "");
    if (pc_recovery_passphrase(1, pass, sizeof pass, &st) == 0 &&
        pc_recovery_kit_make(&sec, pass, &text, &st) == 0 &&
        pc_recovery_kit_write(file, text, &st) == 0)
        rc = 0;
    sodium_memzero(pass, sizeof pass);
    pc_recovery_secret_wipe(&sec);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    if (rc < 0)
        pc_cmd_fail(c, "%s", st.msg);
    return rc;
}

int pc_cmd_recovery_kit(const pc_cmd_opts *o, const char *file)
{
    pc_cmd c;

    pc_cmd_init(&c, o);
    if (pc_cmd_open_home(&c, 0) == 0 && pc_cmd_load_home(&c) == 0 &&
        pc_cmd_need_account_key(&c, "write a recovery kit") == 0 && write_kit(&c, file) == 0) {
        printf("wrote the recovery kit of %s to %s: with its passphrase it controls the account, "
               "keep both safe\n",
               c.home.id.username, file);
        fflush(stdout);
        pc_cmd_finish(&c, 0);
    }
    return pc_cmd_run_and_free(&c);
}
