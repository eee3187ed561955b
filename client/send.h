/* send.h: sending a text message to an account, end-to-end encrypted (vault.h).
 *   - pc_send_msg: one Send, encrypted for every device of a DeviceList with the vault's
 *     sessions (every device must have one), and owning that memory.
 *   - pc_sendop: the whole logical send on a pc_session (Sesame-style): GetDevices(recipient,
 *     known_version = the vault's pin), the answer verified against the pin (devtrust.h: a
 *     list that does not verify, or a server row the signed list lacks, a ghost, fails the
 *     send with PC_ERR_TRUST and nothing sent to that account), then only the signed list's
 *     devices are addressed: GetPrekeys for devices without a session (a fetched bundle must
 *     carry the listed keys), X3DH, encrypt, save the vault, Send; until accepted or the
 *     deadline: on DEVICE_MISMATCH drop the sessions of stale
 *     and extra devices and start over (up to PC_SEND_MISMATCH_RETRIES times); on UNAVAILABLE,
 *     SHUTTING_DOWN, RATE_LIMITED or a dropped connection resend with the same client_id (the
 *     server's idempotency makes resends safe). When the recipient is another account, a sent
 *     transcript (plain.h) then goes the same way to the sender's own other devices, under a
 *     client_id derived from the message's. When the recipient is the sender's own account,
 *     every own device but the sending one is addressed. A call signal (pc_sendop_start_call)
 *     goes the same way, marked urgent, without the transcript. */
#ifndef PC_SEND_H
#define PC_SEND_H

#include "session.h"
#include "vault.h"

/* DEVICE_MISMATCH answers repaired before a send gives up: a reinstall and a removal racing
 * with the send each cost one */
#define PC_SEND_MISMATCH_RETRIES 3

typedef struct {
    Parley__V1__Send send;
    Parley__V1__OutEnvelope env[PARLEY_MAX_ENVELOPES_PER_SEND];
    Parley__V1__OutEnvelope *envp[PARLEY_MAX_ENVELOPES_PER_SEND];
    char recipient[PARLEY_NAME_MAX + 1];
} pc_send_msg;

/* Fills m (m's contents are owned by m: pc_send_msg_clear) with pt encrypted for every device
 * of devs but skip_device (0: none). recipient must be normalised. Fails when no device is
 * left to address or one has no session in v. The caller saves v before sending m. */
int pc_send_msg_build(pc_send_msg *m, pc_vault *v, const char *recipient,
                      const Parley__V1__DeviceList *devs, uint32_t skip_device,
                      const uint8_t *pt, size_t pt_len, uint64_t client_id, pc_status *st);
void pc_send_msg_clear(pc_send_msg *m);

/* "missing 2,3; extra 4; stale 1" (empty parts left out). */
void pc_send_describe_mismatch(const Parley__V1__DeviceMismatch *m, char *out, size_t cap);

typedef struct pc_sendop pc_sendop;

typedef struct {
    const char *recipient;       /* normalised */
    size_t count;
    const uint32_t *device_ids;  /* count of each, in the order of the Send */
    const uint64_t *envelope_ids;
    int duplicate;               /* the server had already accepted this client_id */
    size_t sync_copies;          /* transcripts queued for the sender's other devices */
    const pc_status *sync_error; /* the transcript failed (the message itself went); or NULL */
    int key_changed;             /* a recipient device's keys differ from those the vault
                                    pinned before signed lists (device keys now come from the
                                    signed list, which never changes a listed device's keys) */
} pc_send_result;

/* st->kind PC_OK with res, or the failure (res NULL). On timeout the status is the last
 * connection error when the server stayed unreachable (PC_ERR_NET), else PC_ERR_TIMEOUT. The
 * callback may free op. */
typedef void (*pc_send_cb)(pc_sendop *op, const pc_status *st, const pc_send_result *res,
                           void *ud);

/* Starts a send on s and v (borrowed; the owner forwards s's on_up/on_down to the op below).
 * client_id 0 picks a random one; timeout_ms 0 waits forever. text is copied. Returns NULL
 * with st set for invalid arguments (bad recipient name, text too long). */
pc_sendop *pc_sendop_start(pc_session *s, pc_vault *v, const char *recipient, const char *text,
                           size_t len, uint64_t client_id, uint64_t timeout_ms, pc_send_cb cb,
                           void *ud, pc_status *st);
/* Starts the send of a call signal (sig: a serialised CallSignal, call.h; copied and wiped on
 * free) like pc_sendop_start, but as a plain.h kind 3 plaintext, with Send.urgent set (the
 * server passes it on for push priority), and to the recipient's devices only: no sent
 * transcript goes to the sender's other devices (res->sync_copies is 0). */
pc_sendop *pc_sendop_start_call(pc_session *s, pc_vault *v, const char *recipient,
                                const uint8_t *sig, size_t len, uint64_t timeout_ms,
                                pc_send_cb cb, void *ud, pc_status *st);
void pc_sendop_session_up(pc_sendop *op);
void pc_sendop_session_down(pc_sendop *op, const pc_status *st);
uint64_t pc_sendop_client_id(const pc_sendop *op);
/* Cancels (no callback) and releases op; the memory goes when the loop next runs. */
void pc_sendop_free(pc_sendop *op);

#endif
