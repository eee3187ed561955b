/* stun.h: the STUN (RFC 8489) and TURN (RFC 8656) message codec: parsing (zero copy: a parsed
 * message points into the caller's buffer), building into a caller's buffer, attribute
 * encoders and decoders, MESSAGE-INTEGRITY (HMAC-SHA1), FINGERPRINT, ChannelData framing.
 * Owns no memory and no state. Every length read from the wire is bounded by the buffer: bad
 * input yields a negative STUN_E* code, never a read outside [buf, buf + len). */
#ifndef PARLEY_STUN_H
#define PARLEY_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "limits.h"

#define STUN_HEADER_LEN        20
#define STUN_MAGIC_COOKIE      0x2112A442u
#define STUN_FINGERPRINT_XOR   0x5354554eu
#define STUN_TID_LEN           12
#define STUN_HMAC_SHA1_LEN     20
#define STUN_LT_KEY_LEN        16 /* MD5(username:realm:password) */
#define STUN_CHDATA_HEADER_LEN 4
#define STUN_CHANNEL_MIN       0x4000
/* RFC 8656 narrowed channels to 0x4000-0x4FFF; RFC 5766's 0x4000-0x7FFF is still what coturn's
 * clients pick from, so the relay accepts the old range */
#define STUN_CHANNEL_MAX       0x7FFF
#define STUN_RESERVATION_TOKEN_LEN 8
#define STUN_MAX_MSG_LEN       (STUN_HEADER_LEN + 0xFFFF)

/* methods */
enum {
    STUN_BINDING = 0x001,
    TURN_ALLOCATE = 0x003,
    TURN_REFRESH = 0x004,
    TURN_SEND = 0x006,
    TURN_DATA = 0x007,
    TURN_CREATE_PERMISSION = 0x008,
    TURN_CHANNEL_BIND = 0x009,
};

/* classes */
typedef enum {
    STUN_REQUEST = 0,
    STUN_INDICATION = 1,
    STUN_SUCCESS = 2,
    STUN_ERROR_RESPONSE = 3,
} stun_class;

/* attributes */
enum {
    STUN_A_MAPPED_ADDRESS = 0x0001,
    STUN_A_USERNAME = 0x0006,
    STUN_A_MESSAGE_INTEGRITY = 0x0008,
    STUN_A_ERROR_CODE = 0x0009,
    STUN_A_UNKNOWN_ATTRIBUTES = 0x000A,
    STUN_A_CHANNEL_NUMBER = 0x000C,
    STUN_A_LIFETIME = 0x000D,
    STUN_A_XOR_PEER_ADDRESS = 0x0012,
    STUN_A_DATA = 0x0013,
    STUN_A_REALM = 0x0014,
    STUN_A_NONCE = 0x0015,
    STUN_A_XOR_RELAYED_ADDRESS = 0x0016,
    STUN_A_REQUESTED_ADDRESS_FAMILY = 0x0017,
    STUN_A_EVEN_PORT = 0x0018,
    STUN_A_REQUESTED_TRANSPORT = 0x0019,
    STUN_A_DONT_FRAGMENT = 0x001A,
    STUN_A_MESSAGE_INTEGRITY_SHA256 = 0x001C,
    STUN_A_PASSWORD_ALGORITHM = 0x001D,
    STUN_A_USERHASH = 0x001E,
    STUN_A_XOR_MAPPED_ADDRESS = 0x0020,
    STUN_A_RESERVATION_TOKEN = 0x0022,
    STUN_A_PRIORITY = 0x0024,
    STUN_A_USE_CANDIDATE = 0x0025,
    STUN_A_PADDING = 0x0026,
    STUN_A_RESPONSE_PORT = 0x0027,
    STUN_A_CONNECTION_ID = 0x002A,
    STUN_A_ADDITIONAL_ADDRESS_FAMILY = 0x8000,
    STUN_A_ADDRESS_ERROR_CODE = 0x8001,
    STUN_A_PASSWORD_ALGORITHMS = 0x8002,
    STUN_A_ALTERNATE_DOMAIN = 0x8003,
    STUN_A_ICMP = 0x8004,
    STUN_A_SOFTWARE = 0x8022,
    STUN_A_ALTERNATE_SERVER = 0x8023,
    STUN_A_FINGERPRINT = 0x8028,
    STUN_A_ICE_CONTROLLED = 0x8029,
    STUN_A_ICE_CONTROLLING = 0x802A,
    STUN_A_RESPONSE_ORIGIN = 0x802B,
    STUN_A_OTHER_ADDRESS = 0x802C,
};

/* error codes (ERROR-CODE numbers) */
enum {
    STUN_ERR_TRY_ALTERNATE = 300,
    STUN_ERR_BAD_REQUEST = 400,
    STUN_ERR_UNAUTHORIZED = 401,
    STUN_ERR_FORBIDDEN = 403,
    STUN_ERR_UNKNOWN_ATTRIBUTE = 420,
    STUN_ERR_ALLOCATION_MISMATCH = 437,
    STUN_ERR_STALE_NONCE = 438,
    STUN_ERR_ADDRESS_FAMILY = 440,
    STUN_ERR_WRONG_CREDENTIALS = 441,
    STUN_ERR_UNSUPPORTED_TRANSPORT = 442,
    STUN_ERR_PEER_FAMILY_MISMATCH = 443,
    STUN_ERR_QUOTA = 486,
    STUN_ERR_SERVER_ERROR = 500,
    STUN_ERR_INSUFFICIENT_CAPACITY = 508,
};

/* REQUESTED-ADDRESS-FAMILY / address attribute families */
#define STUN_FAMILY_IPV4 0x01
#define STUN_FAMILY_IPV6 0x02
/* REQUESTED-TRANSPORT protocol number */
#define STUN_TRANSPORT_UDP 17

/* result codes (negative) */
#define STUN_OK           0
#define STUN_ETRUNC      -1 /* shorter than its lengths say */
#define STUN_ENOTSTUN    -2 /* not a STUN message (top bits, magic cookie) */
#define STUN_EMALFORMED  -3 /* lengths or values that break the rules */
#define STUN_ETOOMANY    -4 /* more attributes than PARLEY_RELAY_STUN_MAX_ATTRS */
#define STUN_EFINGERPRINT -5 /* FINGERPRINT present and wrong */
#define STUN_EINTEGRITY  -6 /* MESSAGE-INTEGRITY wrong */
#define STUN_EABSENT     -7 /* attribute not present */
#define STUN_ENOSPACE    -8 /* builder buffer too small */
#define STUN_ECRYPTO     -9 /* libcrypto failed */

typedef struct {
    uint16_t type;
    uint16_t len;       /* value length without padding */
    const uint8_t *val; /* into the parsed buffer */
} stun_attr;

typedef struct {
    const uint8_t *buf; /* the whole message (not owned) */
    size_t len;
    uint16_t method;
    stun_class cls;
    uint8_t tid[STUN_TID_LEN];
    stun_attr attrs[PARLEY_RELAY_STUN_MAX_ATTRS]; /* in order, up to MESSAGE-INTEGRITY inclusive */
    size_t nattrs;
    size_t integrity_off;   /* offset of MESSAGE-INTEGRITY's header, 0 if absent */
    int has_fingerprint;    /* present and verified */
    uint16_t unknown[PARLEY_RELAY_STUN_MAX_UNKNOWN]; /* unknown comprehension-required types */
    size_t nunknown;
} stun_msg;

/* Parses one whole message of exactly len bytes (a UDP datagram, or a frame cut with
 * stun_frame_len). Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as
 * RFC 8489 says; anything after FINGERPRINT is an error; a FINGERPRINT is verified here.
 * Returns STUN_OK or a negative code; on error *m is not usable except m->cls/method/tid when
 * the header was valid (the return is then not STUN_ETRUNC/STUN_ENOTSTUN). */
int stun_parse(stun_msg *m, const uint8_t *buf, size_t len);

/* First attribute of type, or NULL. */
const stun_attr *stun_find(const stun_msg *m, uint16_t type);
/* Non-zero when the codec (and the relay) understands type. */
int stun_attr_known(uint16_t type);

/* Verifies MESSAGE-INTEGRITY with key (for long-term credentials, the 16-byte MD5 key).
 * STUN_OK, STUN_EABSENT or STUN_EINTEGRITY (STUN_ECRYPTO if libcrypto failed). */
int stun_check_integrity(const stun_msg *m, const uint8_t *key, size_t keylen);

/* Decoders of one attribute's value. Return STUN_OK or STUN_EMALFORMED. */
/* (XOR-)MAPPED/PEER/RELAYED-ADDRESS into a sockaddr_in or sockaddr_in6; xor: the XOR- form. */
int stun_get_addr(const stun_msg *m, const stun_attr *a, int xor, struct sockaddr_storage *out);
int stun_get_u32(const stun_attr *a, uint32_t *out);                   /* LIFETIME */
int stun_get_channel(const stun_attr *a, uint16_t *out);               /* CHANNEL-NUMBER */
int stun_get_transport(const stun_attr *a, uint8_t *proto);           /* REQUESTED-TRANSPORT */
int stun_get_family(const stun_attr *a, uint8_t *family);             /* REQUESTED-ADDRESS-FAMILY */
int stun_get_even_port(const stun_attr *a, int *reserve_next);        /* EVEN-PORT */
int stun_get_token(const stun_attr *a, uint8_t out[STUN_RESERVATION_TOKEN_LEN]);
/* ERROR-CODE: code 300..699; reason points into the message (not NUL-terminated). */
int stun_get_error(const stun_attr *a, int *code, const char **reason, size_t *reason_len);
/* UNKNOWN-ATTRIBUTES: up to max types copied, *n set to the count copied. */
int stun_get_unknown(const stun_attr *a, uint16_t *types, size_t max, size_t *n);

/* Builder: writes a message into buf (capacity cap); the header length always covers what was
 * added. Errors are sticky: after one, every call fails and stun_build_end returns 0. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;
} stun_builder;

void stun_build_begin(stun_builder *b, uint8_t *buf, size_t cap, uint16_t method, stun_class cls,
                      const uint8_t tid[STUN_TID_LEN]);
int stun_put(stun_builder *b, uint16_t type, const void *val, size_t len);
int stun_put_u32(stun_builder *b, uint16_t type, uint32_t v);
/* (XOR-)address attribute from a sockaddr_in/sockaddr_in6 (the XOR uses the builder's tid). */
int stun_put_addr(stun_builder *b, uint16_t type, int xor, const struct sockaddr *sa);
int stun_put_error(stun_builder *b, int code, const char *reason);
int stun_put_unknown(stun_builder *b, const uint16_t *types, size_t n);
int stun_put_channel(stun_builder *b, uint16_t channel);
int stun_put_transport(stun_builder *b, uint8_t proto);
int stun_put_family(stun_builder *b, uint8_t family);
int stun_put_even_port(stun_builder *b, int reserve_next);
/* MESSAGE-INTEGRITY over everything so far; FINGERPRINT last of all. */
int stun_put_integrity(stun_builder *b, const uint8_t *key, size_t keylen);
int stun_put_fingerprint(stun_builder *b);
/* Length of the finished message, or 0 after any error. */
size_t stun_build_end(const stun_builder *b);

/* ChannelData (RFC 8656 section 12.4). Parses a message of len bytes: *channel in
 * 0x4000..0x7FFF (the caller decides which numbers are bound), data and dlen the application
 * data. Over UDP trailing padding is allowed and ignored. STUN_OK or negative. */
int stun_chdata_parse(const uint8_t *buf, size_t len, uint16_t *channel, const uint8_t **data,
                      size_t *dlen);
/* Writes the 4-byte ChannelData header in front of dlen bytes of data. */
void stun_chdata_header(uint8_t hdr[STUN_CHDATA_HEADER_LEN], uint16_t channel, size_t dlen);

/* Stream framing (TCP): given avail bytes at the front of a stream, returns the length of the
 * first STUN message or ChannelData frame (ChannelData padded to 4 as RFC 8656 requires on
 * TCP), 0 if more bytes are needed to know, or STUN_ENOTSTUN when the bytes are neither. */
long stun_frame_len(const uint8_t *buf, size_t avail);

/* Method and class from a message type and back. */
uint16_t stun_msg_type(uint16_t method, stun_class cls);
void stun_split_type(uint16_t type, uint16_t *method, stun_class *cls);

/* Text of a negative result code, for logs. */
const char *stun_strerror(int rc);

#endif
