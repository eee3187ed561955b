/* media.h: the media stream of one call over a pc_turn, and the statistics the call prints.
 * Owns its timers and counters, not the pc_turn (the call owns both and hands received data in
 * with pc_media_input). Every 20 ms an audio-sized frame goes out (and with video, a burst of
 * video-sized packets every PC_MEDIA_VIDEO_INTERVAL_MS); every PC_MEDIA_PING_MS a timestamp
 * that the peer echoes gives the round-trip time; arrivals of audio frames give the RFC 3550
 * interarrival jitter; sequence numbers and the peer's final sent count give the loss.
 *
 * Start: a side sends HELLO every frame interval until the peer answers one (HELLO_ACK): only
 * then does the relay path to the peer surely work (the peer's allocation has its permission
 * for us), and media starts (on_flowing). Before, nothing is counted, so a slow peer is not
 * loss.
 *
 * Packets: a 12-byte header in clear (version, type, direction, 0, 64-bit sequence number,
 * authenticated as associated data) then the body sealed with ChaCha20-Poly1305 (IETF) under
 * the per-call key. The nonce is the direction (caller 0, callee 1) and the sequence number, so
 * the two sides never reuse a nonce under the one key; every packet of a direction, whatever
 * its type, takes the next number. Counted packets (audio, video, ping, echo) also carry their
 * own index, 0, 1, 2, ... in the sealed body: loss is counted on it. A replay window of
 * PC_MEDIA_REPLAY_WINDOW sequence numbers, moved only by packets that authenticate, drops
 * duplicates and older packets. The relay sees only headers and sizes; the key travels in the
 * end-to-end encrypted offer.
 *
 * Ending: pc_media_stop stops sending and sends BYE (the count of packets sent) until the peer
 * acknowledges it (or PC_MEDIA_BYE_TRIES); on_stopped then. A BYE from the peer is answered
 * and reported with on_peer_bye (usually the callee then calls pc_media_stop too). Receiving
 * goes on until pc_media_free, so packets still in flight are counted. */
#ifndef PC_MEDIA_H
#define PC_MEDIA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "limits.h"
#include "status.h"
#include "turn_client.h"

#define PC_MEDIA_KEY_LEN 32 /* crypto_aead_chacha20poly1305_ietf_KEYBYTES */
#define PC_MEDIA_HDR_LEN 12
#define PC_MEDIA_TAG_LEN 16 /* crypto_aead_chacha20poly1305_ietf_ABYTES */
#define PC_MEDIA_VERSION 1

typedef enum {
    PC_MEDIA_CALLER = 0, /* direction 0: packets the caller sends */
    PC_MEDIA_CALLEE = 1,
} pc_media_role;

typedef struct pc_media pc_media;

typedef struct {
    /* the peer's BYE: peer_sent packets were sent to us in all (the first BYE only) */
    void (*on_peer_bye)(pc_media *m, uint64_t peer_sent, void *arg);
    /* after pc_media_stop: our BYE was acknowledged (acked 1) or never was (acked 0) */
    void (*on_stopped)(pc_media *m, int acked, void *arg);
    /* the path to the peer works both ways and media started */
    void (*on_flowing)(pc_media *m, void *arg);
} pc_media_cbs;

typedef struct {
    pc_media_role role;
    int video;           /* also send video-sized bursts */
} pc_media_config;

/* Starts the HELLO exchange with peer through t at once (the peer's channel should be bound:
 * pc_turn_cbs.on_peer), then media (on_flowing).
 * key: the per-call key (copied, wiped on free). cbs copied; callbacks may be NULL. Returns a
 * pc_media owned by the caller (pc_media_free) or NULL with st set. */
pc_media *pc_media_new(uv_loop_t *loop, pc_turn *t, const struct sockaddr *peer,
                       const uint8_t key[PC_MEDIA_KEY_LEN], const pc_media_config *cfg,
                       const pc_media_cbs *cbs, void *arg, pc_status *st);

/* One packet the pc_turn received from the peer (call it from pc_turn_cbs.on_data). Anything
 * that does not authenticate, is a replay or is too old is counted and dropped. */
void pc_media_input(pc_media *m, const uint8_t *data, size_t len);

/* Stops sending media and starts the BYE exchange. Idempotent. */
void pc_media_stop(pc_media *m);

/* The peer's total when it came another way (the hangup signal), if no BYE arrived. */
void pc_media_set_peer_sent(pc_media *m, uint64_t peer_sent);

typedef struct {
    uint64_t sent;           /* counted packets sent (audio, video, ping, echo) */
    uint64_t received;       /* distinct authentic counted packets received from the peer */
    uint64_t expected;       /* the peer's BYE count, else highest index received + 1 */
    int peer_sent_known;     /* expected is the peer's own count */
    uint64_t lost;           /* expected - received (0 if negative) */
    double loss_pct;         /* 100 * lost / expected, 0 when nothing was expected */
    uint64_t audio_sent, video_sent;
    uint64_t audio_received, video_received;
    uint64_t rtt_samples;
    double rtt_ms;           /* mean of the samples; 0 without samples */
    double rtt_min_ms, rtt_max_ms;
    double jitter_ms;        /* RFC 3550 interarrival jitter of the audio frames */
    uint64_t dropped_auth;   /* did not authenticate or not a media packet */
    uint64_t dropped_replay; /* a sequence number seen already */
    uint64_t dropped_old;    /* older than the replay window */
    uint64_t send_errors;    /* packets the pc_turn refused to send */
    int flowing;             /* media started (HELLO answered) */
} pc_media_stats;

void pc_media_get_stats(const pc_media *m, pc_media_stats *out);

/* Stops the timers and frees m when they are closed (run the loop); m must not be used after.
 * Free it before closing its pc_turn. */
void pc_media_free(pc_media *m);

/* ---- the pure parts, exposed for unit tests ---- */

typedef enum {
    /* counted: body = sender's timestamp (us, 8 bytes), index (8 bytes), then: */
    PC_MEDIA_T_AUDIO = 1,   /* filler to PC_MEDIA_AUDIO_BYTES */
    PC_MEDIA_T_VIDEO = 2,   /* filler to PC_MEDIA_VIDEO_BYTES */
    PC_MEDIA_T_PING = 3,    /* nothing */
    PC_MEDIA_T_ECHO = 4,    /* the PING's timestamp */
    /* not counted: body = sender's timestamp, then: */
    PC_MEDIA_T_BYE = 5,     /* counted packets sent in all (8 bytes) */
    PC_MEDIA_T_BYE_ACK = 6, /* nothing */
    PC_MEDIA_T_HELLO = 7,   /* nothing */
    PC_MEDIA_T_HELLO_ACK = 8, /* nothing */
} pc_media_type;

/* Seals one packet into out (capacity cap): header, then body (blen bytes) encrypted, then the
 * tag. Returns the packet length, or -1 when it does not fit or PC_MEDIA_PACKET_MAX would be
 * exceeded. */
long pc_media_seal(uint8_t *out, size_t cap, const uint8_t key[PC_MEDIA_KEY_LEN], uint8_t dir,
                   uint8_t type, uint64_t seq, const uint8_t *body, size_t blen);
/* Opens a packet: checks the version, the tag, then decrypts into body (capacity cap).
 * Returns the body length with *dir, *type, *seq set, or -1 (anything wrong). */
long pc_media_open(uint8_t *body, size_t cap, const uint8_t key[PC_MEDIA_KEY_LEN],
                   const uint8_t *pkt, size_t len, uint8_t *dir, uint8_t *type, uint64_t *seq);

/* Replay window over the last PC_MEDIA_REPLAY_WINDOW sequence numbers (zero it to start). */
typedef struct {
    uint64_t top;                                  /* highest accepted number */
    uint64_t bits[PC_MEDIA_REPLAY_WINDOW / 64];    /* bit i: top - i seen */
    int any;                                       /* something was accepted */
} pc_media_replay;

#define PC_MEDIA_REPLAY_OK  0
#define PC_MEDIA_REPLAY_DUP 1 /* seen already */
#define PC_MEDIA_REPLAY_OLD 2 /* before the window */
/* Whether seq would be accepted (no change). */
int pc_media_replay_check(const pc_media_replay *w, uint64_t seq);
/* Records seq as accepted (after it authenticated); same result codes as check. */
int pc_media_replay_accept(pc_media_replay *w, uint64_t seq);

/* RFC 3550 section 6.4.1 interarrival jitter: J += (|D| - J) / 16, D the change of transit
 * time between consecutive arrivals. Times in microseconds, any common origin per side. */
typedef struct {
    int have;
    int64_t last_transit_us;
    double jitter_us;
} pc_media_jitter;

void pc_media_jitter_add(pc_media_jitter *j, int64_t sent_us, int64_t arrived_us);

/* lost = expected - received (0 when more were received), pct = 100 * lost / expected. */
void pc_media_loss(uint64_t expected, uint64_t received, uint64_t *lost, double *pct);

#endif
