/* lt_run.h: the state of one load-test run, shared by the modules that work on it:
 *   lt_dev.c    devices and their connections (connect queue, attempt slots, backoff, up/down)
 *   lt_msg.c    logical messages in flight (sends, answers, retries, resends)
 *   lt_recv.c   envelopes received (accounting) and their batched acks
 *   lt_track.c  accounting by sequence number, latency, timeline
 *   lt_drive.c  the phases of a run and the scenarios on top of them
 * One run per process, one libuv loop, one client context. Devices are indexes into the pool
 * (lt_pool.h); every per-device structure is kept small because a run may hold 250,000. */
#ifndef LT_RUN_H
#define LT_RUN_H

#include <stdint.h>
#include <uv.h>

#include "lt_net.h"
#include "lt_opts.h"
#include "lt_pool.h"
#include "lt_track.h"
#include "parley_client.h"

#define LT_NIL UINT32_MAX

/* ---- devices --------------------------------------------------------------------------- */

enum {
    LT_D_IDLE,       /* not connected, not wanted */
    LT_D_QUEUED,     /* waiting for an attempt slot (--concurrency) */
    LT_D_BACKOFF,    /* waiting to reconnect */
    LT_D_CONNECTING, /* connecting and authenticating, holds a slot */
    LT_D_UP,         /* authenticated */
    LT_D_CLOSING,    /* close 1000 sent, waiting for the socket to go */
};

#define LT_DF_WANT 0x01    /* should be online */
#define LT_DF_EVER_UP 0x02 /* came up at least once */
#define LT_DF_LIVE 0x04    /* QueueEmpty seen on this connection: pushes are live */
#define LT_DF_DIRTY 0x08   /* in the ack flush list */

struct lt_ackq;

typedef struct {
    pc_conn *conn;
    struct lt_ackq *ackq; /* envelope ids to ack; NULL when none */
    uint32_t link;        /* next in the connect queue or a backoff wheel slot */
    uint32_t msgs;        /* first message in flight from this device (lt_msg.c) */
    uint32_t slot;        /* attempt slot while connecting */
    uint32_t t_ms;        /* when the current attempt started (ms since the run started) */
    uint16_t src;         /* source address index */
    uint8_t server;       /* index into the run's servers */
    uint8_t state;
    uint8_t flags;
    uint8_t backoff;      /* reconnect attempts since last up */
    uint8_t inflight;     /* messages in flight from this device */
    uint8_t rr;           /* chat: whom in the group it sends to next */
} lt_dev;

/* The narrow fields of lt_dev hold indexes and counts that common/limits.h bounds. */
_Static_assert(LT_SERVERS_MAX <= UINT8_MAX + 1, "lt_dev.server");
_Static_assert(LT_SOURCES_MAX <= UINT16_MAX + 1 &&
                   LT_DEVICES_MAX / LT_CONNS_PER_SOURCE + 1 <= UINT16_MAX + 1, "lt_dev.src");
_Static_assert(LT_SENDER_INFLIGHT_MAX <= UINT8_MAX &&
                   LT_SENDER_INFLIGHT_MAX <= PARLEY_PENDING_SENDS_MAX, "lt_dev.inflight");
_Static_assert(2 * LT_GROUP_MAX - 1 <= UINT8_MAX, "lt_dev.rr: a chat group holds < 2 * K");

/* An attempt in progress: the identity pc_auth_start borrows until it answers. */
typedef struct {
    pc_identity id;
    uint32_t dev;
    uint32_t next_free;
} lt_slot;

#define LT_WHEEL 512       /* backoff wheel slots of LT_WHEEL_MS: 5.1 s > the longest backoff */
#define LT_WHEEL_MS 10

typedef struct {
    lt_dev *d;
    uint32_t n;
    uint32_t q_head, q_tail;          /* connect queue */
    uint32_t wheel[LT_WHEEL];
    uint64_t wheel_ms;                /* time of wheel[wheel_pos] */
    unsigned wheel_pos;
    lt_slot *slots;
    uint32_t nslots, slot_free, slots_used;
    uint32_t up, max_up, ever_up, closing, connecting;
    uint64_t attempts, reconnects;
    lt_reasons fail;                  /* attempts that did not come up, by reason */
    lt_reasons drops;                 /* connections lost after coming up, by reason */
    uint64_t t_first_attempt_us, t_all_up_us;
} lt_devs;

/* ---- messages in flight ---------------------------------------------------------------- */

enum { LT_M_FREE, LT_M_WAIT, LT_M_RESEND, LT_M_RETRY };

typedef struct {
    uint64_t seq;
    uint64_t sent_us;    /* first send (CLOCK_MONOTONIC us), in the payload header */
    uint32_t next;       /* next of the sender's list, or of the free list */
    uint32_t sender, recipient;
    uint8_t state, flags;
    uint16_t sends;      /* times put on the wire */
} lt_msg;

typedef struct {
    uint64_t due_ms;
    uint32_t msg;
} lt_retry;

typedef struct {
    lt_msg *m;
    uint32_t cap, free_head, live;
    lt_retry *heap;
    uint32_t nheap, heap_cap;
    uint8_t *buf;        /* one envelope's content, rebuilt for every send */
} lt_msgs;

/* ---- acks ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t *dirty;     /* devices with ids to ack */
    uint32_t ndirty, cap;
    uint64_t pending;    /* ids waiting to be sent */
    uint64_t inflight;   /* ids sent, AckOk not yet seen */
    uint64_t frames, ids, errors;
    uint64_t unsolicited; /* Error frames nobody waited for */
} lt_acks;

/* ---- measurements from /proc and the registration --------------------------------------- */

typedef struct {
    long gw_rss_before_kb[LT_SERVERS_MAX], gw_rss_after_kb[LT_SERVERS_MAX];
    uint32_t gw_conns[LT_SERVERS_MAX];      /* connections each held at the "after" reading */
    double gw_cpu_start[LT_SERVERS_MAX], gw_cpu_end[LT_SERVERS_MAX];
    int gw_after_done;
    long self_rss_base_kb, self_rss_up_kb;   /* before devices, once all were up */
    double self_cpu_start, self_cpu_end;     /* around the connect + run phases */
    uint64_t t_run_start_us, t_run_end_us;
    uint32_t registered;                     /* devices registered by this run */
    uint64_t register_us;
    lt_reasons reg_retried;
} lt_meas;

/* ---- the run --------------------------------------------------------------------------- */

typedef enum {
    LT_PH_REGISTER, LT_PH_CONNECT, LT_PH_RUN, LT_PH_DRAIN, LT_PH_SETTLE, LT_PH_CLOSE, LT_PH_DONE
} lt_phase;

typedef struct lt_run {
    const lt_opts *o;
    uv_loop_t *loop;
    pc_ctx *ctx;
    lt_server servers[LT_SERVERS_MAX];
    unsigned nservers;
    char (*src)[LT_ADDR_MAX];
    uint32_t nsrc;
    long nofile;
    uint64_t run_id;
    uint64_t t0_us;       /* CLOCK_MONOTONIC us when the run started */
    lt_pool pool;
    lt_devs dv;
    lt_msgs ms;
    lt_acks ak;
    lt_track tr;
    lt_meas m;

    lt_phase phase;
    uint64_t phase_us;    /* when the current phase began */
    int sending;          /* the pacer runs */
    uint64_t send_start_us, send_end_us;
    uint64_t deadline_us; /* the whole run ends by then */
    int interrupted;      /* SIGINT/SIGTERM */
    int deadline_hit;
    int exit_code;        /* 3 on a setup failure, set with fatal_msg */
    char fatal_msg[512];
    int burst_recipient_up;
    uint64_t burst_queued_at_auth, burst_drain_start_us, burst_drain_end_us;
} lt_run;

/* Microseconds since the run started. */
uint64_t lt_now_us(const lt_run *r);
/* Ends the run with exit 3 and msg (once; later calls keep the first message). */
void lt_fatal(lt_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
