#include "upkeep.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "devchange.h"

struct pc_upkeep {
    pc_session *s;
    pc_vault *v;
    pc_upkeep_cb cb;
    void *ud;
    int inflight;       /* an upload waits for its answer (its callback always comes) */
    int list_busy;      /* the own device list is being checked (its callback always comes) */
    int list_checked;   /* ... and was, with an answer: not again in u's life */
    int freed;          /* pc_upkeep_free came while busy: the last callback frees */
    pc_status list_err; /* a failure of that check, reported with the next upload's outcome */
    int spk_id;         /* what AuthOk said, for the refresh after the list check */
    uint32_t opks;
};

static void refresh(pc_upkeep *u, int server_spk_id, uint32_t server_opks);

static void done(pc_upkeep *u, const pc_status *st)
{
    const pc_status *report = st;

    /* a failed list check is reported once, unless the upload failed too */
    if (st->kind == PC_OK && u->list_err.kind != PC_OK)
        report = &u->list_err;
    if (u->cb)
        u->cb(u, report, u->ud);
    pc_status_ok(&u->list_err);
}

/* ---- the own device list ----------------------------------------------------------------- */

static void on_list_checked(const pc_status *st, const pdl_list *list, uint32_t device_id,
                            void *ud)
{
    pc_upkeep *u = ud;
    const pc_identity *me;
    pc_status e;

    (void)list;
    (void)device_id;
    u->list_busy = 0;
    if (u->freed) {
        if (!u->inflight)
            free(u);
        return;
    }
    if (st->kind == PC_ERR_NET)
        return; /* the connection went: the next login checks again */
    u->list_checked = 1;
    me = pc_vault_identity(u->v);
    if (st->kind == PC_OK) {
        pc_vault_pin_changed(u->v, me->username);
        if (pc_vault_save(u->v, &e) < 0)
            u->list_err = e;
    } else {
        pc_status_set(&u->list_err, st->kind, "the device list of %s: %s", me->username,
                      st->msg);
        u->list_err.server_code = st->server_code;
    }
    refresh(u, u->spk_id, u->opks);
}

/* An account registered before signed lists has none, and nobody can send to it until a device
 * holding the account key signs one: such a device checks at login, once, when it has not
 * verified a list of its own account yet (an older home folder, or a fresh registration). 1
 * when the check started (refresh follows it), 0 when none is due or it could not start. */
static int check_own_list(pc_upkeep *u)
{
    const pc_identity *me = pc_vault_identity(u->v);
    pc_conn *c = pc_session_conn(u->s);
    pc_dt_pin *pin;
    pc_status st;

    if (u->list_checked || u->list_busy || !c || !me->keys.has_account_sk)
        return 0;
    if (!(pin = pc_vault_pin(u->v, me->username, &st)) || pin->has_list)
        return 0;
    if (pc_devchange_upgrade_start(c, pin, &me->keys, me->username, on_list_checked, u, &st) <
        0) {
        u->list_checked = 1;
        u->list_err = st;
        return 0;
    }
    u->list_busy = 1;
    return 1;
}

static void on_uploaded(pc_conn *c, const pc_status *st, const pc_prekeys_counts *counts,
                        void *ud)
{
    pc_upkeep *u = ud;

    (void)c;
    (void)counts;
    u->inflight = 0;
    if (u->freed) {
        if (!u->list_busy)
            free(u);
        return;
    }
    done(u, st);
}

/* Uploads the current signed prekey (when spk) and the one-time prekeys from first_opk on. */
static void upload(pc_upkeep *u, int spk, uint32_t first_opk, int replace)
{
    const pc_pks *p = pc_vault_prekeys(u->v);
    pc_conn *c = pc_session_conn(u->s);
    pc_prekeys_opk opks[PARLEY_PREKEYS_UPLOAD_MAX];
    pc_prekeys_spk sp;
    size_t n = 0;
    pc_status st;

    if (!c)
        return; /* the next login tries again */
    if (spk) {
        sp.id = p->spk.id;
        memcpy(sp.pk, p->spk.pk, 32);
        memcpy(sp.sig, p->spk.sig, 64);
    }
    for (size_t i = 0; first_opk && i < p->n_opks && n < PARLEY_PREKEYS_UPLOAD_MAX; i++) {
        if (p->opks[i].id < first_opk)
            continue;
        opks[n].id = p->opks[i].id;
        memcpy(opks[n].pk, p->opks[i].pk, 32);
        n++;
    }
    if (pc_prekeys_upload(c, spk ? &sp : NULL, opks, n, replace, on_uploaded, u, &st) < 0) {
        done(u, &st);
        return;
    }
    u->inflight = 1;
}

/* Makes what is due, saves it, uploads it. */
static void refresh(pc_upkeep *u, int server_spk_id, uint32_t server_opks)
{
    pc_pks *p = pc_vault_prekeys(u->v);
    uint64_t now = pclock_wall_ms();
    int first = !p->has_spk;
    int spk = 0;
    uint32_t first_opk = 0;
    pc_status st;

    if (u->inflight)
        return;
    if (pc_pks_spk_due(p, now)) {
        if (pc_pks_rotate_spk(p, &pc_vault_identity(u->v)->keys, now, &st) < 0) {
            done(u, &st);
            return;
        }
        spk = 1;
    } else if (server_spk_id >= 0 && (uint32_t)server_spk_id != p->spk.id) {
        spk = 1; /* the server lost it, or holds an earlier install's */
    }
    pc_pks_expire(p, now);
    if (first || server_opks < PC_PKS_OPK_LOW_WATER) {
        if (pc_pks_generate_opks(p, PC_PKS_OPK_BATCH, &first_opk, &st) < 0) {
            done(u, &st);
            return;
        }
    }
    if (!spk && !first_opk) {
        pc_status_ok(&st);
        done(u, &st);
        return;
    }
    pc_vault_prekeys_changed(u->v);
    if (pc_vault_save(u->v, &st) < 0) {
        done(u, &st);
        return;
    }
    upload(u, spk || first, first_opk, first);
}

pc_upkeep *pc_upkeep_new(pc_session *s, pc_vault *v, pc_upkeep_cb cb, void *ud)
{
    pc_upkeep *u = calloc(1, sizeof *u);

    if (!u)
        return NULL;
    u->s = s;
    u->v = v;
    u->cb = cb;
    u->ud = ud;
    return u;
}

void pc_upkeep_free(pc_upkeep *u)
{
    if (!u)
        return;
    if (u->inflight || u->list_busy)
        u->freed = 1;
    else
        free(u);
}

void pc_upkeep_session_up(pc_upkeep *u, const Parley__V1__AuthOk *ok)
{
    u->spk_id = (int)ok->signed_prekey_id;
    u->opks = ok->one_time_prekeys;
    if (check_own_list(u))
        return;
    refresh(u, u->spk_id, u->opks);
}

void pc_upkeep_low(pc_upkeep *u, uint32_t one_time_count)
{
    refresh(u, -1, one_time_count);
}

int pc_upkeep_idle(const pc_upkeep *u)
{
    return !u->inflight && !u->list_busy;
}
