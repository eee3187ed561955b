/* call.h: one call between two devices (pc_call_), on a pc_session and the vault of the
 * device, with its media through a TURN relay (turn_client.h) and a media stream (media.h).
 *
 * Signalling: CallSignal messages (proto/call.proto) inside end-to-end encrypted plaintexts
 * (plain.h kind 3), sent urgent (send.h pc_sendop_start_call), received through pc_recv's
 * on_call and handed to pc_call_input. The caller:
 *   GetTurnCredentials -> Allocate -> OFFER{key, relayed address} to every device of the
 *   callee -> ANSWER{relayed address} from one device, then HANGUP{ANSWERED_ELSEWHERE} to the
 *   callee's other devices (BUSY from every device the offer went to ends the call; no answer
 *   within ring_s sends HANGUP{NO_ANSWER}) -> CreatePermission + ChannelBind to it -> media for
 *   the call's seconds -> BYE exchange (media.h) -> HANGUP{DONE, frames sent}.
 * The callee (pc_call_answer, for a fresh offer):
 *   GetTurnCredentials -> Allocate -> permission + channel to the caller's address ->
 *   ANSWER{relayed address} -> media from the caller's first packet on (so the caller's
 *   permission for us exists before we send) -> the caller's BYE or HANGUP -> BYE exchange ->
 *   HANGUP{ACK, frames sent}.
 * A call that is under way answers an OFFER of another call with BUSY. Signals addressed to
 * another device (to_device) and of other calls are ignored. The media key is random per
 * call, travels only in the encrypted offer, and is wiped when the call goes. */
#ifndef PC_CALL_H
#define PC_CALL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "media.h"
#include "recv.h"
#include "session.h"
#include "vault.h"

/* Call limits: common/limits.h, "Calls". */

/* Signal types and hangup reasons: the values of call.proto's enums. */
enum { PC_CALL_OFFER = 1, PC_CALL_ANSWER, PC_CALL_CANDIDATE, PC_CALL_HANGUP, PC_CALL_BUSY };
enum { PC_CALL_DONE = 1, PC_CALL_NO_ANSWER, PC_CALL_FAILED, PC_CALL_ACK,
       PC_CALL_ANSWERED_ELSEWHERE };

/* ---- signals (pure) ------------------------------------------------------------------- */

/* A decoded CallSignal. Holds the media key: pc_call_sig_wipe when done. */
typedef struct {
    uint64_t call_id;
    int type;
    uint32_t to_device;
    int has_key;
    uint8_t key[PC_MEDIA_KEY_LEN];
    size_t n_candidates;
    struct sockaddr_storage candidates[PC_CALL_CANDIDATES_MAX]; /* relayed addresses */
    int has_media;
    uint32_t frame_ms, audio_bytes, video_bytes;
    uint32_t ring_s;
    uint64_t frames_sent;
    int reason;
    uint32_t answered_device; /* HANGUP{ANSWERED_ELSEWHERE}: the device that took the call */
} pc_call_sig;

/* Serialises s into a new buffer *out (caller frees, wiping it: an offer carries the key).
 * Checks what pc_call_sig_decode checks. */
int pc_call_sig_encode(const pc_call_sig *s, uint8_t **out, size_t *out_len, pc_status *st);
/* Parses and checks a signal: version 1, a call id, a known type, the key (32 bytes) on an
 * offer and nowhere else, relayed candidates (IPv4 or IPv6, port 1..65535; at least one on an
 * offer and an answer), ring_s 1..PC_CALL_RING_MAX_S on an offer, answered_device on a
 * HANGUP{ANSWERED_ELSEWHERE} and nowhere else. PC_ERR_PROTO otherwise. */
int pc_call_sig_decode(const uint8_t *buf, size_t len, pc_call_sig *out, pc_status *st);
void pc_call_sig_wipe(pc_call_sig *s);
const char *pc_call_sig_type_name(int type);

/* An offer accepted by the server at accepted_ms and ringing for ring_s is still worth
 * answering at now_ms (a queued offer from an earlier ring is a missed call). */
int pc_call_offer_fresh(const pc_call_sig *offer, uint64_t accepted_ms, uint64_t now_ms);

/* What a call does with an incoming signal (pc_call_route). */
typedef enum {
    PC_CALL_ROUTE_IGNORE = 0, /* not this call's, not for this device, or from someone else */
    PC_CALL_ROUTE_BUSY,       /* an offer of another call: answer BUSY */
    PC_CALL_ROUTE_TAKE,       /* this call's signal from its peer */
} pc_call_route_t;

/* The facts about a call the routing needs. */
typedef struct {
    int caller;               /* this side placed the call */
    uint64_t call_id;
    const char *peer;         /* the other account (normalised) */
    uint32_t peer_device;     /* the other device; 0 while the caller waits for an answer */
    uint32_t own_device;
} pc_call_view;

pc_call_route_t pc_call_route(const pc_call_view *v, const char *sender, uint32_t sender_device,
                              const pc_call_sig *s);

/* Whether every device the offer went to (offered, n) has answered BUSY (busy, nbusy): only
 * then is the callee busy; while one of them may still answer the call keeps ringing. */
int pc_call_all_busy(const uint32_t *offered, size_t n, const uint32_t *busy, size_t nbusy);

/* "call 0123456789abcdef: sent N received M lost L (x.x%) rtt X ms jitter Y ms" */
void pc_call_format_stats(uint64_t call_id, const pc_media_stats *ms, char *out, size_t cap);

/* ---- a call ---------------------------------------------------------------------------- */

typedef struct pc_call pc_call;

typedef enum {
    PC_CALL_END_DONE = 0,    /* media ran and ended */
    PC_CALL_END_BUSY,        /* the callee is in another call */
    PC_CALL_END_NO_ANSWER,   /* nobody answered within ring_s */
    PC_CALL_END_HUNG_UP,     /* the peer withdrew before media started */
    PC_CALL_END_FAILED,      /* st says why (server, relay, signalling) */
    PC_CALL_END_ELSEWHERE,   /* callee: another device of this account took the call */
} pc_call_end;

typedef struct {
    pc_call_end end;
    uint64_t call_id;
    const char *peer;
    uint32_t peer_device;    /* 0: no device answered */
    int media_ran;
    pc_media_stats stats;    /* when media_ran */
    int key_changed;         /* a signal came from a device whose keys changed (recv.h) */
} pc_call_result;

typedef struct {
    /* The call is set up: media flows. Optional. */
    void (*on_connected)(pc_call *c, void *ud);
    /* The call is over (its last signal sent or given up); st is PC_OK unless end is
     * PC_CALL_END_FAILED. May call pc_call_free. */
    void (*on_end)(pc_call *c, const pc_status *st, const pc_call_result *res, void *ud);
} pc_call_events;

typedef struct {
    double seconds;          /* caller: media time (the callee follows the caller's end) */
    uint32_t ring_s;         /* caller: how long to ring */
    int video;               /* caller: video-sized bursts too (the callee follows the offer) */
} pc_call_opts;

/* Calls peer (any name; normalised here). s and v are borrowed for the call's life; the owner
 * forwards the session's on_up/on_down and every received call signal (pc_call_input). NULL
 * with st set on bad arguments. */
pc_call *pc_call_dial(pc_session *s, pc_vault *v, const char *peer, const pc_call_opts *o,
                      const pc_call_events *ev, void *ud, pc_status *st);
/* Answers the offer m (decoded: offer, fresh; the key is copied). */
pc_call *pc_call_answer(pc_session *s, pc_vault *v, const pc_call_message *m,
                        const pc_call_sig *offer, const pc_call_events *ev, void *ud,
                        pc_status *st);
/* A received call signal (decoded from m). */
void pc_call_input(pc_call *c, const pc_call_message *m, const pc_call_sig *sig);
void pc_call_session_up(pc_call *c);
void pc_call_session_down(pc_call *c, const pc_status *st);
uint64_t pc_call_id(const pc_call *c);
/* 1 once c has ended and its on_end is on the way (or done): it answers nothing any more, not
 * even BUSY to another offer, which its owner may then take once it has freed c. */
int pc_call_over(const pc_call *c);
/* Releases c: signals in flight are dropped, the relay allocation is deleted; the memory goes
 * when the loop has run a little (at most PC_TURN_CLOSE_WAIT_MS). No callback after this. */
void pc_call_free(pc_call *c);

#endif
