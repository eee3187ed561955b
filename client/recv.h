/* recv.h: receiving on a pc_session: envelopes are handled strictly in arrival order; each
 * one's sender device is looked up (GetDevices(sender, known_version = the vault's pin),
 * verified against the pin (devtrust.h): only devices of the sender's signed list count, with
 * the listed keys; cached for the recv's life and refetched once when a device is not in the
 * cached list or a prekey message carries other keys); a message from a device outside the
 * signed list, or from an account whose list does not verify, is reported (on_bad,
 * PC_ERR_TRUST) and acked, never handed over; otherwise the envelope is decrypted (vault.h: the Double Ratchet, or X3DH
 * first for a prekey message) and handed over, then acknowledged. Envelopes already seen
 * (pc_seen) are acked without being handed over again; envelopes that fail to decrypt are
 * reported and acked, never handed over. Acks are batched per loop turn; before each batch
 * goes out the vault is saved and the owner persists the seen set (on_persist), so a crash
 * cannot lose a ratchet step or make an acked envelope look new. A call signal (plain.h kind 3)
 * goes to on_call instead of on_message, never shown as text; without on_call it is acked
 * unseen. */
#ifndef PC_RECV_H
#define PC_RECV_H

#include "seen.h"
#include "session.h"
#include "vault.h"

typedef struct pc_recv pc_recv;

typedef struct {
    const char *sender;
    uint32_t sender_device;
    uint64_t id;           /* server envelope id */
    uint64_t timestamp_ms; /* when the server accepted it */
    uint64_t sent_ms;      /* the sender's clock (from the plaintext) */
    const char *text;      /* not NUL-terminated; may hold any bytes */
    size_t text_len;
    int urgent;
    /* a sent transcript: this account (another of its devices) sent text to this account;
     * not NUL-terminated. NULL for a message to this account. */
    const char *sent_to;
    size_t sent_to_len;
    int key_changed;       /* the sending device's keys differ from those the vault pinned
                              before signed lists (see pc_send_result) */
} pc_message;

/* A call signal (plain.h kind 3); the caller decodes it (call.h pc_call_sig_decode). */
typedef struct {
    const char *sender;
    uint32_t sender_device;
    uint64_t id;           /* server envelope id */
    uint64_t timestamp_ms; /* when the server accepted it */
    uint64_t sent_ms;      /* the sender's clock (from the plaintext) */
    const uint8_t *signal; /* the serialised CallSignal; valid during the callback only */
    size_t signal_len;
    int urgent;
    int key_changed;       /* as in pc_message */
} pc_call_message;

typedef struct {
    /* A new message; it is acked after this returns. */
    void (*on_message)(pc_recv *r, const pc_message *m, void *ud);
    /* An envelope that cannot be opened (why->msg says why); it is acked. */
    void (*on_bad)(pc_recv *r, const Parley__V1__Envelope *e, const pc_status *why, void *ud);
    /* About to ack: persist the seen set now. Optional. */
    void (*on_persist)(pc_recv *r, void *ud);
    /* An Ack was answered (or lost with the connection): check pc_recv_idle. Optional. */
    void (*on_acked)(pc_recv *r, void *ud);
    /* The vault could not be saved: acks wait and are tried again. Optional. */
    void (*on_save_failed)(pc_recv *r, const pc_status *why, void *ud);
    /* A call signal; it is acked after this returns. Optional. */
    void (*on_call)(pc_recv *r, const pc_call_message *m, void *ud);
} pc_recv_events;

/* s, v and seen (may be NULL: no duplicate dropping) are borrowed. The owner forwards s's events:
 * envelope pushes to pc_recv_envelope, on_up/on_down to the two functions below. */
pc_recv *pc_recv_new(pc_session *s, pc_vault *v, pc_seen *seen, const pc_recv_events *ev,
                     void *ud, pc_status *st);
void pc_recv_envelope(pc_recv *r, const Parley__V1__Envelope *e);
void pc_recv_session_up(pc_recv *r);
/* Forgets queued envelopes and unsent acks: the server redelivers them after a reconnect. */
void pc_recv_session_down(pc_recv *r);
/* Hands over no more messages; queued ones stay unacked on the server. Acks still go out. */
void pc_recv_pause(pc_recv *r);
/* 1 when no ack is waiting to be sent or answered. */
int pc_recv_idle(const pc_recv *r);
/* Releases r (no callbacks; before its session); the memory goes when the loop next runs. */
void pc_recv_free(pc_recv *r);

#endif
