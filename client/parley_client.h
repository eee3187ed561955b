/* parley_client.h: the Parley client library (static lib parley_client, prefix pc_), used by
 * the `parley` CLI, the test tools and the loadtest. Everything is asynchronous on a libuv loop
 * the caller owns; nothing blocks except the proof of work at registration and file writes in
 * the home folder.
 *
 * What it owns, by layer:
 *   status.h  pc_status, the one error type (the library never prints)
 *   url.h     ws:// and wss:// server URLs
 *   ctx.h     the libwebsockets context on the caller's loop (one per loop, many conns)
 *   conn.h    one WebSocket: frames in and out, request ids and response routing, pushes
 *   keys.h    a device's keys and identity
 *   home.h    the home folder (identity, seen ids), atomic 0600 files in a 0700 folder
 *   seen.h    bounded set of handled envelope ids (duplicate dropping)
 *   plain.h   the plaintext inside an encrypted message (text, sent transcript)
 *   hkdf.h, x3dh.h, ratchet.h, e2ee.h   X3DH and the Double Ratchet: one session, pure
 *   pkstore.h the device's own prekey secrets
 *   fingerprint.h  safety numbers
 *   vault.h   the device's end-to-end state: own prekeys, pinned peer keys, sessions (files)
 *   upkeep.h  keeps the device's prekeys published
 *   session.h register, authenticate, GetDevices; the reconnecting authenticated session
 *   prekeys.h prekey upload, bundle fetch (claims one-time prekeys), the PrekeysLow push
 *   send.h    a logical send: devices, encryption, mismatch repair, resend until accepted
 *   recv.h    in-order receive: sender keys, decryption, duplicates, batched acks
 *
 * Typical use (what cli.c does; a load generator does the same for many devices at once):
 *   ctx = pc_ctx_new(loop, ...)                       one per loop
 *   s = pc_session_new(ctx, url, &identity, &ev, ud)  then pc_session_start(s)
 *   pc_vault_open(home_dir, &identity, &v)           the device's end-to-end state
 *   u = pc_upkeep_new(s, v, cb, ud)                   keeps its prekeys published
 *   ev.on_up     -> pc_session_set_retry(s, 1); pc_upkeep_session_up(u, ok);
 *                   pc_sendop_session_up(op); pc_recv_session_up(r)
 *   ev.on_push   -> envelopes to pc_recv_envelope(r, f->envelope)
 *   ev.on_prekeys_low -> pc_upkeep_low(u, count)
 *   ev.on_down   -> pc_sendop_session_down / pc_recv_session_down (or give up if !retrying)
 *   op = pc_sendop_start(s, v, "bob", text, len, 0, timeout_ms, done_cb, ud)
 *   r = pc_recv_new(s, v, &seen, &recv_events, ud)
 * Lower down, pc_conn alone speaks raw frames (parley-probe), and pc_send_msg_build encrypts a
 * Send for a device list the caller already has.
 *
 * Ownership: the _new, _open and _start functions return objects the caller releases with
 * the matching _free (a sendop or recv before its session, sessions and conns before the
 * context); anything handed to a callback is borrowed for the call. Objects that own libuv
 * handles release their memory on a later loop turn, so after freeing everything and the
 * context (pc_ctx_free), run the loop until uv_run returns. */
#ifndef PARLEY_CLIENT_H
#define PARLEY_CLIENT_H

#include "conn.h"
#include "ctx.h"
#include "e2ee.h"
#include "fingerprint.h"
#include "home.h"
#include "keys.h"
#include "pkstore.h"
#include "plain.h"
#include "prekeys.h"
#include "recv.h"
#include "seen.h"
#include "send.h"
#include "session.h"
#include "status.h"
#include "upkeep.h"
#include "url.h"
#include "vault.h"

#endif
