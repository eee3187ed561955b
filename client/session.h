/* session.h: being a device on the wire.
 *   - pc_register_start: create an account (proof of work + both signatures) on a fresh conn.
 *   - pc_auth_start: answer the challenge of a conn as a registered device.
 *   - pc_session: an authenticated connection that reconnects and re-authenticates after a
 *     drop (when enabled), with backoff; send.c and recv.c work on top of it.
 *   - pc_get_devices: the GetDevices request.
 * The proof of work is solved on the loop thread: at the default difficulty (8 bits) that is a
 * few hundred hashes; at the maximum it would stall the loop, which only matters to a test
 * that configures it so. */
#ifndef PC_SESSION_H
#define PC_SESSION_H

#include "conn.h"
#include "keys.h"

/* ---- one-shot operations on a conn ---------------------------------------------------- */

/* st->kind is PC_OK on success; username is the server's normalised name. */
typedef void (*pc_register_cb)(pc_conn *c, const pc_status *st, const char *username,
                               uint32_t device_id, void *ud);
/* name must be valid (pauth_name_normalize); it is normalised before use. k is borrowed until
 * cb runs. Returns 0, or -1 with st set (then cb never runs). */
int pc_register_start(pc_conn *c, const pc_keys *k, const char *name, pc_register_cb cb,
                      void *ud, pc_status *st);

/* ok is the AuthOk on success, else NULL with st set. */
typedef void (*pc_auth_cb)(pc_conn *c, const pc_status *st, const Parley__V1__AuthOk *ok,
                           void *ud);
/* id is borrowed until cb runs. id->device_id 0 opens an account session instead, signed by
 * the account key (id->keys.has_account_sk): it may only GetDevices, PublishDeviceList and
 * Ping (account recovery, before the device is in the list). */
int pc_auth_start(pc_conn *c, const pc_identity *id, pc_auth_cb cb, void *ud, pc_status *st);

/* A deep copy of a DeviceList (kept past the frame it came in), or NULL when out of memory;
 * the caller frees it with parley__v1__device_list__free_unpacked(copy, NULL). */
Parley__V1__DeviceList *pc_device_list_copy(const Parley__V1__DeviceList *dl);

/* GetDevices{account, known_version} (devtrust.h: the pinned version, 0 on first contact); the
 * response (DeviceList or Error) goes to cb. */
int pc_get_devices(pc_conn *c, const char *account, uint64_t known_version, pc_response_cb cb,
                   void *ud, pc_status *st);

/* ---- reconnecting authenticated session ----------------------------------------------- */

typedef struct pc_session pc_session;

typedef struct {
    /* Authenticated (again, after a reconnect: the server then redrains the queue). */
    void (*on_up)(pc_session *s, const Parley__V1__AuthOk *ok, void *ud);
    /* Pushes (envelope, queue_empty) and frames nobody waited for. */
    void (*on_push)(pc_session *s, const Parley__V1__ServerFrame *f, void *ud);
    /* The connection failed, closed, or auth was refused. retrying: a reconnect is scheduled;
     * otherwise the session has stopped for good. May call pc_session_free. */
    void (*on_down)(pc_session *s, const pc_status *st, int retrying, void *ud);
    /* Optional: every frame received, before routing (test tools print them). */
    void (*on_tap)(pc_session *s, const Parley__V1__ServerFrame *f, void *ud);
    /* Optional: the server's PrekeysLow push (prekeys.h): this device's one-time prekey pool
     * on the server holds only one_time_count keys; upload more. When NULL, the push goes to
     * on_push like any other. */
    void (*on_prekeys_low)(pc_session *s, uint32_t one_time_count, void *ud);
} pc_session_events;

/* url and id are borrowed for the session's life. Returns NULL with st set on a bad URL. */
pc_session *pc_session_new(pc_ctx *ctx, const char *url, const pc_identity *id,
                           const pc_session_events *ev, void *ud, pc_status *st);
void pc_session_start(pc_session *s);
/* Reconnect after drops (off by default; a refused auth, close 1008 policy and close 4001
 * replaced never retry). */
void pc_session_set_retry(pc_session *s, int retry);
/* Bind every (re)connect to local_addr (pc_conn_open_from; borrowed for the session's life,
 * NULL: any address). Takes effect at the next connect. */
void pc_session_set_local_addr(pc_session *s, const char *local_addr);
/* The authenticated conn, or NULL while down. */
pc_conn *pc_session_conn(pc_session *s);
/* 1 while a connection exists (connecting, authenticating or up): on_down will follow it. */
int pc_session_active(const pc_session *s);
/* Stops retrying and closes the connection with 1000 after queued frames went out; on_down
 * follows once it is closed (retrying 0). */
void pc_session_close(pc_session *s);
/* Releases s (closing its conn); the memory goes when the loop next runs. */
void pc_session_free(pc_session *s);
const pc_identity *pc_session_identity(const pc_session *s);
const char *pc_session_url(const pc_session *s);
pc_ctx *pc_session_ctx(const pc_session *s);

#endif
