/* status.h: the one error type of the client library. Every asynchronous result carries a
 * pc_status; the library never prints or logs errors itself, the caller decides (the CLI turns
 * msg into its one `parley: ...` line). */
#ifndef PC_STATUS_H
#define PC_STATUS_H


#include <stdint.h>

typedef enum {
    PC_OK = 0,
    PC_ERR_NET,      /* could not connect, or the connection dropped (close_code may say why) */
    PC_ERR_SERVER,   /* the server answered Error{server_code} */
    PC_ERR_PROTO,    /* the server sent something we cannot use */
    PC_ERR_TIMEOUT,
    PC_ERR_LOCAL,    /* local failure: files, keys, out of memory, bad arguments */
    PC_ERR_CRYPTO,   /* an envelope failed to open */
    PC_ERR_TRUST,    /* the server's device list of an account cannot be trusted: its account
                        key changed, it is older than or forks from a list seen before, or the
                        server lists a device that the signed list lacks (a ghost device) */
} pc_status_kind;

#define PC_STATUS_MSG_MAX 256

typedef struct {
    pc_status_kind kind;
    int server_code;        /* Parley__V1__ErrorCode when kind == PC_ERR_SERVER */
    int close_code;         /* WebSocket close code when the peer sent one, else 0 */
    uint32_t retry_after_ms; /* from Error.retry_after_ms */
    char msg[PC_STATUS_MSG_MAX];
} pc_status;

void pc_status_ok(pc_status *st);
/* Resets st to kind and a printf-formatted message; returns -1, so that callers can
 * `return pc_status_set(...)`. */
int pc_status_set(pc_status *st, pc_status_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fills st from an Error frame (kind PC_ERR_SERVER); msg is "CODE: message". Returns -1.
 * (Forward-declared so this header does not need the generated one.) */
struct Parley__V1__Error;
int pc_status_from_error(pc_status *st, const struct Parley__V1__Error *e);
/* Name of a Parley__V1__ErrorCode ("BAD_FRAME"), "UNKNOWN" when out of range. */
const char *pc_error_name(int code);
/* 1 for the ErrorCodes that ask the client to send the same request again later
 * (UNAVAILABLE, SHUTTING_DOWN, RATE_LIMITED: docs/PROTOCOL.md, "Errors"), else 0. */
int pc_error_retryable(int code);
/* Parses an ErrorCode name; returns the code or -1. */
int pc_error_from_name(const char *name);

#endif
