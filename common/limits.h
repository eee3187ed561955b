/* limits.h: every fixed-size limit of Parley, in one place. Services may lower some of them in
 * config (named *_DEFAULT); the hard maximums here bound memory whatever the config says. */
#ifndef PARLEY_LIMITS_H
#define PARLEY_LIMITS_H

/* Wire */
#define PARLEY_MAX_FRAME_BYTES          (256 * 1024) /* one WebSocket message, either way */
#define PARLEY_MAX_ENVELOPE_BYTES       (64 * 1024)  /* one envelope's content */
#define PARLEY_MAX_ENVELOPES_PER_SEND   16           /* recipient devices plus own devices */
#define PARLEY_MAX_ACK_IDS              256          /* envelope ids in one Ack */
#define PARLEY_MAX_PING_BYTES           64

/* Identity */
#define PARLEY_NAME_MIN                 3
#define PARLEY_NAME_MAX                 32
#define PARLEY_MAX_DEVICES_PER_ACCOUNT  8
#define PARLEY_REGISTRATION_ID_MAX      16380
#define PARLEY_CHALLENGE_BYTES          32
#define PARLEY_GATEWAY_ID_MAX           64
#define PARLEY_AUTH_SKEW_MS             (5 * 60 * 1000) /* answer timestamp vs gateway clock */
#define PARLEY_AUTH_TIMEOUT_MS          (15 * 1000)     /* socket closed if not authed by then */
#define PARLEY_POW_DIFFICULTY_MAX       32

/* Device lists and linking (issue: multi-device) */
#define PARLEY_DEVICE_LIST_BODY_MAX     2048   /* a serialized DeviceListBody: 8 devices ~ 650 B */
#define PARLEY_DEVICE_LIST_CHAIN_MAX    32     /* signed lists in one DeviceList answer */
#define PARLEY_LINK_TTL_S               600    /* a provisioning channel (link code) lives this long */
#define PARLEY_PROVISION_DATA_MAX       4096   /* one relayed provisioning message */
#define PARLEY_PROVISION_SENDS_MAX      16     /* relayed messages per connection and channel */
#define PARLEY_LINK_CHANNEL_ID_LEN      8      /* Crockford base32 characters (40 random bits) */
#define PARLEY_LINK_SECRET_LEN          16     /* base32 characters of the code's secret (80 bits) */
#define PARLEY_LINK_JOINS_PER_MINUTE    10     /* ProvisionJoin per connection: codes are not
                                                  guessable, this stops burning others' channels */

/* Queues and buffers */
#define PARLEY_QUEUE_MAX_DEFAULT        10000        /* queued envelopes per device */
#define PARLEY_OUTBOUND_MAX_DEFAULT     (1024 * 1024) /* unsent bytes per connection */
#define PARLEY_DRAIN_PAGE               100          /* envelopes per drain query */
#define PARLEY_CLOSE_BACKSTOP_S         5            /* a closing or discarding socket is cut then */
#define PARLEY_BAD_FRAMES_MAX           8            /* undecodable frames before close */
#define PARLEY_PENDING_SENDS_MAX        64           /* unanswered sends per connection */
#define PARLEY_SEND_ANSWER_TIMEOUT_MS   10000        /* no fanout answer by then: UNAVAILABLE */
#define PARLEY_ACK_STATEMENTS_MAX       64           /* ack deletes in flight per gateway */
#define PARLEY_SEND_RATE_PER_S          100          /* Send frames per connection, sustained */
#define PARLEY_SEND_BURST               200          /* Send frames per connection, at once */
#define PARLEY_SEND_ORPHAN_MS           (5 * 60 * 1000) /* timed-out send keeps its slot */
#define PARLEY_PENDING_ACK_IDS_MAX      (2 * PARLEY_MAX_ACK_IDS) /* unflushed acks per conn */
#define PARLEY_PENDING_LOOKUPS_MAX      4            /* GetDevices, GetPrekeys and UploadPrekeys
                                                        in flight per connection */

/* Backends */
#define PARLEY_PG_QUEUE_MAX             4096         /* queries waiting for a connection */

/* Fanout */
/* stream entries a fanout holds at once (read and not yet acked), shared by its lanes (one
 * batch per ingress shard at a time); so also the most one batch can hold */
#define PARLEY_FANOUT_BATCH_MAX         1024
#define PARLEY_INGRESS_SHARDS_MAX       64
#define PARLEY_SEND_DEDUP_SECONDS       (7 * 24 * 3600) /* idempotency window of client_id */

/* Admin HTTP port */
#define PARLEY_ADMIN_REQUEST_MAX        4096         /* request line and headers */
#define PARLEY_ADMIN_TIMEOUT_MS         5000         /* the whole request must arrive by then */
#define PARLEY_ADMIN_CONNS_MAX          256          /* concurrent; more are closed at once */

/* Relay (TURN, RFC 8656). Config may lower the *_DEFAULT values. */
/* STUN codec */
#define PARLEY_RELAY_STUN_MAX_ATTRS          48    /* attributes kept from one message */
#define PARLEY_RELAY_STUN_MAX_UNKNOWN        16    /* unknown comprehension-required types reported */
#define PARLEY_RELAY_STUN_USERNAME_MAX       512   /* RFC 8489: fewer than 513 bytes */
#define PARLEY_RELAY_STUN_REALM_MAX          763   /* RFC 8489: fewer than 128 chars, 763 bytes */
#define PARLEY_RELAY_STUN_NONCE_MAX          763
#define PARLEY_RELAY_STUN_REASON_MAX         763
#define PARLEY_RELAY_UDP_MAX_BYTES           65536 /* one datagram, either side */
/* batched UDP I/O: datagrams per recvmmsg, receive slots shared by all UDP sockets (each holds
 * a whole datagram, PARLEY_RELAY_UDP_MAX_BYTES, reserved once as address space; only the pages
 * data reach are touched), which also bounds one sendmmsg; batches read per wakeup of one
 * socket before the loop serves the others */
#define PARLEY_RELAY_UDP_BATCH               32
#define PARLEY_RELAY_UDP_SLOTS               128   /* at least PARLEY_RELAY_UDP_BATCH */
#define PARLEY_RELAY_UDP_BATCHES_PER_WAKE    4

/* Lifetimes (seconds), RFC 8656 */
#define PARLEY_RELAY_ALLOC_LIFETIME_DEFAULT  600
#define PARLEY_RELAY_ALLOC_LIFETIME_MAX      3600
#define PARLEY_RELAY_PERMISSION_LIFETIME     300
#define PARLEY_RELAY_CHANNEL_LIFETIME        600
#define PARLEY_RELAY_RESERVATION_LIFETIME    30    /* an EVEN-PORT R=1 reserved port waits this long */

/* Tables */
#define PARLEY_RELAY_ALLOCATIONS_MAX         65536 /* hard cap of allocations of one process */
#define PARLEY_RELAY_ALLOCATIONS_DEFAULT     4096
#define PARLEY_RELAY_USER_QUOTA_DEFAULT      10    /* allocations of one REST user */
/* bytes/s relayed per allocation, both ways together: 2 MiB/s (16 Mbit/s, video) */
#define PARLEY_RELAY_ALLOC_BANDWIDTH_DEFAULT 2097152
#define PARLEY_RELAY_ALLOC_BANDWIDTH_MAX     10000000000LL
#define PARLEY_RELAY_PERMS_PER_ALLOC_MAX     32
#define PARLEY_RELAY_CHANNELS_PER_ALLOC_MAX  32
#define PARLEY_RELAY_ALLOW_CIDRS_MAX         64    /* allow_peers entries */
#define PARLEY_RELAY_SECRETS_MAX             8     /* REST secrets accepted at once (rotation) */
#define PARLEY_RELAY_SECRET_MAX_BYTES        256

/* TCP clients (RFC 8656 over TCP: framed STUN and padded ChannelData) */
#define PARLEY_RELAY_TCP_CONNS_DEFAULT       256
#define PARLEY_RELAY_TCP_CONNS_MAX           4096
#define PARLEY_RELAY_TCP_INBUF               (20 + 65536)      /* one whole frame, the largest STUN */
#define PARLEY_RELAY_TCP_OUTBUF              (96 * 1024)       /* unsent bytes per connection */
#define PARLEY_RELAY_TCP_IDLE_S              30    /* a connection without allocation is closed */
#define PARLEY_RELAY_TCP_BACKLOG             128

/* Credentials and abuse */
#define PARLEY_RELAY_NONCE_TTL_DEFAULT       600   /* seconds a nonce is fresh */
#define PARLEY_RELAY_401_RATE_PER_S          10    /* 401/438 answers per source IP per second */
#define PARLEY_RELAY_401_BURST               20
#define PARLEY_RELAY_401_BUCKETS             4096  /* rate buckets, indexed by a keyed hash of the IP */

/* Gateway at scale: what one gateway process holds per connection, and how its periodic work
 * over every connection is spread (docs/OPERATIONS.md, "Connections at scale"). */
/* libwebsockets' per-connection receive buffer (it is allocated for the life of the socket and
 * bounds the piece of a message handed over per callback; the gateway reassembles messages).
 * At least 128: WebSocket control frames (at most 125 bytes) must fit whole. */
#define PARLEY_GW_RX_BUFFER             128
#define PARLEY_GW_MAX_CONNECTIONS_DEFAULT 250000     /* max_connections: WebSockets held */
#define PARLEY_GW_MAX_CONNECTIONS_MAX   4000000
/* descriptors kept besides the WebSockets: Redis, PostgreSQL, admin clients, handshakes */
#define PARLEY_GW_FD_RESERVE            1024
/* the soft RLIMIT_NOFILE is raised to the hard one, but not beyond this (libwebsockets sizes
 * its descriptor tables from it, and ignores a limit above 10 million) */
#define PARLEY_GW_NOFILE_MAX            (4 * 1024 * 1024)
#define PARLEY_GW_KEEPALIVE_IDLE_S      25   /* no frame from the client this long: ping */
#define PARLEY_GW_KEEPALIVE_HANGUP_S    75   /* none this long: the connection is closed */
#define PARLEY_GW_RECLAIM_PER_S         5000 /* connections re-claimed (and re-drained) per
                                                second after a Redis reconnect */

/* Gateway overload: admission control of Send frames (gateway/gw_overload.h, docs/OPERATIONS.md
 * "Overload"). While the ingress streams hold ingress_backlog_max sends (all shards together),
 * or one gateway has that many sends waiting for answers, or a new send would wait longer than
 * PARLEY_GW_SHED_WAIT_MS for its answer, new sends are answered UNAVAILABLE with retry_after_ms
 * at once and not queued. */
/* ingress_backlog_max default: about a second of work for a small cluster (~10,000 sends/s
 * on 2 cores, docs/BENCHMARKS.md), and several times the PARLEY_FANOUT_BATCH_MAX entries a fanout holds at once, so
 * fanouts still read full batches while sends are being shed */
#define PARLEY_GW_INGRESS_BACKLOG_DEFAULT 10000
/* its hard bound: even a cluster committing 100,000 sends/s needs 10 s
 * (PARLEY_SEND_ANSWER_TIMEOUT_MS) to work through this many */
#define PARLEY_GW_INGRESS_BACKLOG_MAX     1000000
/* expected wait for an answer (per ingress shard: a gateway's unanswered sends divided by its
 * answer rate) from which sends are shed, once the shard holds its share of a fanout batch:
 * keeps answers well inside PARLEY_SEND_ANSWER_TIMEOUT_MS whatever the cluster's throughput */
#define PARLEY_GW_SHED_WAIT_MS            2000
/* retry_after_ms of a shed send: this at the edge of overload, growing with the ratio of the
 * sends offered to those admitted up to the maximum, then jittered down by up to half */
#define PARLEY_GW_SHED_RETRY_BASE_MS      500
#define PARLEY_GW_SHED_RETRY_MAX_MS       10000

/* Client end-to-end encryption (client/ratchet.h, client/pkstore.h, client/e2ee.h;
 * docs/E2EE.md). These bound what a peer can make a client compute and keep. */
/* message keys derived ahead in one receiving chain for one message (Double Ratchet MAX_SKIP):
 * queues deliver in order, so a gap this large means lost messages at a scale no session
 * should silently absorb, and it bounds the HMAC work one forged header can cause */
#define PC_DR_MAX_SKIP                  2000
/* skipped message keys kept per session, oldest evicted first: bounds a session's memory and
 * its saved size (about 80 bytes each) */
#define PC_DR_MAX_STORED                2000
/* a skipped message key is dropped this long after it was stored: a message that late is
 * treated as lost, and the key stops being a forward-secrecy liability */
#define PC_DR_SKIPPED_TTL_MS            (30ULL * 24 * 3600 * 1000)
/* previous receiving chains remembered (ratchet key and count reached) so that a late
 * redelivery from one of them is reported as a duplicate, not as tampering */
#define PC_DR_OLD_CHAINS                5
/* a device replaces its signed prekey this often ... */
#define PC_PKS_SPK_ROTATE_MS            (7ULL * 24 * 3600 * 1000)
/* ... and keeps the replaced one this long, so prekey messages built on it while they sat in
 * a queue (or on a stale bundle) still open */
#define PC_PKS_SPK_GRACE_MS             (30ULL * 24 * 3600 * 1000)
/* one-time prekeys generated and uploaded at once */
#define PC_PKS_OPK_BATCH                100
/* when the server holds fewer unused one-time prekeys than this, upload another batch */
#define PC_PKS_OPK_LOW_WATER            10
/* one-time prekey secrets kept locally, oldest (lowest id) evicted first: keys the server
 * dropped are never consumed, and must not accumulate forever */
#define PC_PKS_OPK_MAX                  1000
/* bytes an encrypted message adds around its plaintext, at most (prekey part, ratchet header,
 * protobuf framing, AEAD tag: 172 for a prekey message, 58 for the others, measured) */
#define PC_E2S_OVERHEAD_MAX             512
/* the longest plaintext one encrypted message carries: whatever the overhead, it fits one
 * envelope */
#define PC_E2S_PLAINTEXT_MAX            (PARLEY_MAX_ENVELOPE_BYTES - PC_E2S_OVERHEAD_MAX)
/* largest saved session (a full skipped-key store plus the fixed part) and prekey store (a
 * full one-time prekey pool plus the fixed part): longer blobs are refused before parsing */
#define PC_E2S_BLOB_MAX                 (PC_DR_MAX_STORED * 96 + 4096)
#define PC_PKS_BLOB_MAX                 (PC_PKS_OPK_MAX * 80 + 4096)

/* Prekeys (gateway/gw_prekeys.h, deploy/sql/007_prekeys.sql, docs/PROTOCOL.md "Prekeys"). */
/* one-time prekeys in one UploadPrekeys: 100 keys are ~4 KiB on the wire and one short
 * statement; a device tops its pool up in a few uploads */
#define PARLEY_PREKEYS_UPLOAD_MAX          100
/* one-time prekeys stored per device: enough for a burst of new contacts between two logins,
 * small enough that a device cannot fill PostgreSQL (8 devices x 1000 x ~100 B per account) */
#define PARLEY_PREKEYS_POOL_MAX            1000
/* a fetch that leaves a device's pool at or below this many gets it a PrekeysLow push: the
 * device tops up before new contacts find the pool empty (and fall back to X3DH without a
 * one-time prekey, which has weaker forward secrecy for the first message) */
#define PARLEY_PREKEYS_LOW_WATER           10
/* at most one PrekeysLow push per device this often (seconds): a fetch storm must not become
 * a push storm; AuthOk carries the count as well, so an offline device learns at login */
#define PARLEY_PREKEYS_LOW_PUSH_INTERVAL_S 60
/* GetPrekeys.device_ids: no account has more devices, so a longer list is malformed */
#define PARLEY_PREKEYS_FETCH_DEVICES_MAX   PARLEY_MAX_DEVICES_PER_ACCOUNT
/* defaults of the GetPrekeys rate limits (fixed one-minute windows in Redis): per requesting
 * device, and per target account (each fetch takes a one-time prekey of every device of the
 * target, so this bounds how fast strangers can drain an account's pools) */
#define PARLEY_PREKEYS_FETCH_RATE_DEFAULT  60
#define PARLEY_PREKEYS_TARGET_RATE_DEFAULT 120
#define PARLEY_PREKEYS_RATE_MAX            1000000 /* config bound of both */

/* Load-test harness (loadtest/, parley-loadtest; docs/BENCHMARKS.md). Not limits of the
 * services: hard caps that keep one run of the load generator bounded in memory and time
 * whatever its flags say (parsing refuses values above them), and the budgets it plans its
 * connections with. The LT_ prefix is the harness's module prefix. */
/* --server and --gateway-pid entries (a device keeps its server's index in 8 bits) */
#define LT_SERVERS_MAX                  64
/* --devices: every simulated device and its connection live in the one process */
#define LT_DEVICES_MAX                  1000000
/* --seconds, --grace, --connect-timeout, --offline-seconds, and a burst's --messages / --rate:
 * a run ends by itself (--register-timeout may take up to four times this) */
#define LT_SECONDS_MAX                  3600
#define LT_RATE_MAX                     1000000      /* --rate: Send frames/s, all senders */
/* --messages of a burst (the accounting keeps two bits per message sent) */
#define LT_MESSAGES_MAX                 10000000
/* --sources: loopback source addresses, each tried with a bind() at start (a device keeps its
 * address's index in 16 bits) */
#define LT_SOURCES_MAX                  4096
#define LT_CONCURRENCY_MAX              65535        /* --concurrency: attempts in flight */
/* --group: devices per chat group (a device keeps its turn in the group in 8 bits) */
#define LT_GROUP_MAX                    64
/* connections per loopback source address when --sources is 0: lws binds the socket (port 0)
 * before connect(), so one address's ephemeral ports (32768-60999 by default) are shared by
 * all servers; 20,000 leaves room for sockets in TIME_WAIT */
#define LT_CONNS_PER_SOURCE             20000
/* descriptors besides one per connection: lws, libuv, stdio, the pool file (about 12 in use) */
#define LT_FD_SPARE                     64
/* messages in flight per simulated sender: under PARLEY_PENDING_SENDS_MAX, so no gateway
 * refuses a send of the harness for too many unanswered ones */
#define LT_SENDER_INFLIGHT_MAX          32
/* one connection attempt (TCP, WebSocket handshake, challenge, auth) is given up after this */
#define LT_ATTEMPT_TIMEOUT_MS           20000
/* registering the pool: no device registered and no connection for this long fails the run */
#define LT_REG_GIVE_UP_S                15
/* the closing phase waits this long for every connection to go, then the run ends anyway */
#define LT_CLOSE_WAIT_S                 10

/* TURN credentials (gateway/gw_turn.h, GetTurnCredentials; docs/OPERATIONS.md). */
/* turn_uris entries, and the length of one ("turn:host:port?transport=udp" and the like) */
#define PARLEY_TURN_URIS_MAX            8
#define PARLEY_TURN_URI_MAX             256
/* turn_ttl_s: how long minted credentials stay valid. A day at most: a leaked credential is
 * usable (within the relay's per-user quota) until it expires, and a call that outlives its
 * credentials only needs fresh ones to refresh its allocation */
#define PARLEY_TURN_TTL_DEFAULT_S       3600
#define PARLEY_TURN_TTL_MAX_S           86400
/* turn_credentials_rate_per_minute: GetTurnCredentials per device (fixed one-minute windows in
 * Redis); a call needs one, a reconnecting client a few */
#define PARLEY_TURN_RATE_DEFAULT        10
#define PARLEY_TURN_RATE_MAX            1000000
/* GetTurnCredentials waiting for the rate limiter's answer from Redis, all connections of a
 * gateway together: more are answered UNAVAILABLE with a retry (bounds the memory a flood of
 * requests holds while Redis is slow) */
#define PARLEY_TURN_INFLIGHT_MAX        1024

/* Call media (client/turn_client.h, client/media.h; docs/PROTOCOL.md "Call media"). PC_TURN_
 * and PC_MEDIA_ are the prefixes of those client modules. */
/* allocation lifetime asked for; refreshed at half of what the relay grants */
#define PC_TURN_LIFETIME_S             600
/* ChannelBind again this often: it refreshes the channel (600 s) and the permission (300 s) */
#define PC_TURN_CHANNEL_REFRESH_S      240
/* RFC 8489 section 6.2.1 over UDP: RTO, tries (Rc), and the last wait as a multiple (Rm) */
#define PC_TURN_RTO_MS                 500
#define PC_TURN_RC                     7
#define PC_TURN_RM                     16
/* 438 answers retried in a row with the new nonce before giving up */
#define PC_TURN_STALE_RETRIES          3
/* requests waiting behind the one in flight */
#define PC_TURN_QUEUE_MAX              16
/* peers (permission + channel) of one allocation: a call has one, a few spare */
#define PC_TURN_PEERS_MAX              4
/* application bytes of one ChannelData: stays under a 1500-byte path MTU with headers */
#define PC_TURN_DATA_MAX               1400
#define PC_TURN_HOST_MAX               256   /* host part of a TURN URI */
#define PC_TURN_PASSWORD_MAX           256
/* closing waits this long for the deleting Refresh's answer */
#define PC_TURN_CLOSE_WAIT_MS          1000
/* media: an audio-sized frame (20 ms of 64 kbit/s) every frame interval */
#define PC_MEDIA_FRAME_MS              20
#define PC_MEDIA_AUDIO_BYTES           160
/* video: a burst of packets every interval (4 x 1000 B per 40 ms: 100 KB/s, under the relay's
 * default per-allocation bandwidth) */
#define PC_MEDIA_VIDEO_INTERVAL_MS     40
#define PC_MEDIA_VIDEO_BURST_PACKETS   4
#define PC_MEDIA_VIDEO_BYTES           1000
/* a timestamp to echo (RTT) this often */
#define PC_MEDIA_PING_MS               500
/* sequence numbers the replay window remembers (a multiple of 64) */
#define PC_MEDIA_REPLAY_WINDOW         128
/* BYE is sent again this often until acknowledged, at most this many times */
#define PC_MEDIA_BYE_INTERVAL_MS       100
#define PC_MEDIA_BYE_TRIES             10
/* one sealed media packet: header, body, tag; fits one ChannelData */
#define PC_MEDIA_PACKET_MAX            PC_TURN_DATA_MAX

/* Calls (client/call.h) */
/* relayed addresses one signal may carry (one relay per call today) */
#define PC_CALL_CANDIDATES_MAX    4
/* how long a caller rings at most (--timeout of `parley call`), and the default */
#define PC_CALL_RING_MAX_S        300
#define PC_CALL_RING_DEFAULT_S    30
/* media time of a call (--seconds), at most, and the default */
#define PC_CALL_SECONDS_MAX       3600
#define PC_CALL_SECONDS_DEFAULT   10
/* a signal not accepted by the server within this is a failed call */
#define PC_CALL_SIGNAL_TIMEOUT_MS 15000
/* setting up: credentials, allocation, channel, the caller's first packet (callee) */
#define PC_CALL_SETUP_TIMEOUT_MS  15000
/* after our BYE was acknowledged: how long to wait for the peer's final count */
#define PC_CALL_END_GRACE_MS      2000

#endif
