#!/usr/bin/env bash
# The gateway's WebSocket layer with its small per-connection receive buffer
# (PARLEY_GW_RX_BUFFER): messages up to the frame limit arrive in many pieces, also fragmented
# into WebSocket frames of odd sizes with a control frame in between, and many small messages
# in one TCP write; one byte over the limit is refused with 1009. Then max_connections (the
# connection after the last allowed one is dropped, counted) and the gateway's own keepalive
# (an idle client is pinged; answering keeps it connected). A raw WebSocket client in Python
# does what the client library never does (fragments, control frames, pipelining).
source "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || fail "python3 is needed for the raw WebSocket client"

start_redis
start_pg
start_gateway 1
GW_EXTRA[2]="max_connections = 2"
start_gateway 2

cat >"$T/ws.py" <<'EOF'
import os, socket, struct, sys, time, base64

MAX = 256 * 1024  # PARLEY_MAX_FRAME_BYTES

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def ping_frame(request_id, total=None):
    """ClientFrame{request_id, ping{"probe"}}, padded to total bytes with an unknown field
    (number 99, length-delimited), which protobuf keeps and the gateway ignores."""
    ping = b"\x0a" + varint(5) + b"probe"
    body = b"\x08" + varint(request_id) + b"\x7a" + varint(len(ping)) + ping
    if total is None:
        return body
    for fill in range(total - len(body), 0, -1):
        pad = b"\x9a\x06" + varint(fill) + b"\xab" * fill
        if len(body) + len(pad) == total:
            return body + pad
    raise SystemExit("cannot pad to %d" % total)

class WS:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Protocol: parley.v1\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        % key).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise SystemExit("closed during the handshake")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit("handshake refused: %r" % head[:80])

    def frame(self, opcode, payload, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        return hdr + mask + masked

    def send(self, data):
        self.s.sendall(data)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """(opcode, payload) of the next frame from the server (never fragmented by it)."""
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._need(8))[0]
        return b0 & 0x0F, self._need(n)

def request_id(msg):
    # ServerFrame.request_id is field 1: first on the wire when set
    if not msg.startswith(b"\x08"):
        return 0
    n, shift = 0, 0
    for b in msg[1:]:
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n
    return 0

def is_pong(msg):
    return b"\x92\x01" in msg[:16]  # field 18 (pong), length-delimited

def expect_pongs(ws, ids, ctrl_pong=False):
    want = set(ids)
    got_ctrl = False
    while want or (ctrl_pong and not got_ctrl):
        op, p = ws.recv()
        if op == 0x8:
            raise SystemExit("closed: %d" % struct.unpack(">H", p[:2])[0])
        if op == 0xA:
            got_ctrl = True
        if op == 0x2 and is_pong(p):
            rid = request_id(p)
            if rid not in want:
                raise SystemExit("unexpected pong %d" % rid)
            want.discard(rid)

def cmd_frames(port):
    ws = WS(port)
    # 1. a 250 KB message in WebSocket frames of odd sizes, a ping control frame in between
    msg = ping_frame(7, 250000)
    cuts = [1, 7, 125, 126, 4000, 65535, 65536, 20000]
    parts, off = [], 0
    for c in cuts:
        parts.append(msg[off:off + c])
        off += c
    parts.append(msg[off:])
    for i, p in enumerate(parts):
        ws.send(ws.frame(0x2 if i == 0 else 0x0, p, fin=(i == len(parts) - 1)))
        if i == 3:
            ws.send(ws.frame(0x9, b"ctl"))
    expect_pongs(ws, [7], ctrl_pong=True)
    print("fragmented %d bytes in %d frames: pong" % (len(msg), len(parts)))
    # 2. exactly the limit, one frame
    ws.send(ws.frame(0x2, ping_frame(8, MAX)))
    expect_pongs(ws, [8])
    print("limit %d bytes: pong" % MAX)
    # 3. two hundred small messages in one write, and a large one among them
    batch = b"".join(ws.frame(0x2, ping_frame(100 + i)) for i in range(100))
    batch += ws.frame(0x2, ping_frame(99, 70000))
    batch += b"".join(ws.frame(0x2, ping_frame(200 + i)) for i in range(100))
    ws.send(batch)
    expect_pongs(ws, [99] + list(range(100, 300)))
    print("pipelined 201 messages: 201 pongs")
    # 4. one byte over the limit, in two frames: FRAME_TOO_LARGE, then close 1009
    big = ping_frame(9, MAX + 1)
    ws.send(ws.frame(0x2, big[:MAX // 2], fin=False) + ws.frame(0x0, big[MAX // 2:]))
    while True:
        op, p = ws.recv()
        if op == 0x8:
            code = struct.unpack(">H", p[:2])[0]
            print("over the limit: close %d" % code)
            return 0 if code == 1009 else 1

def cmd_hold(port, n):
    """Opens n connections, prints the outcome of each (challenge or refused)."""
    conns = []
    for _ in range(n):
        try:
            ws = WS(port)
            op, p = ws.recv()
            print("challenge" if op == 0x2 else "frame %d" % op)
            conns.append(ws)
        except (EOFError, ConnectionError, SystemExit, socket.timeout):
            print("refused")
    sys.stdout.flush()
    # close the first, then one more must get in
    conns[0].s.close()
    time.sleep(1)
    try:
        ws = WS(port)
        op, p = ws.recv()
        print("after close: challenge" if op == 0x2 else "after close: frame %d" % op)
    except (EOFError, ConnectionError, SystemExit, socket.timeout):
        print("after close: refused")

if __name__ == "__main__":
    c = sys.argv[1]
    port = int(sys.argv[2])
    if c == "frames":
        sys.exit(cmd_frames(port))
    if c == "hold":
        cmd_hold(port, int(sys.argv[3]))
EOF
ws() { timeout 120 python3 "$T/ws.py" "$@"; }

# --- large, fragmented and pipelined messages through the small receive buffer -------------
expect_rc 0 ws frames "${GW_PORT[1]}"
echo "$OUT"
assert_line "$OUT" '^fragmented 250000 bytes in 9 frames: pong$' "fragmented message"
assert_line "$OUT" '^limit 262144 bytes: pong$' "message at the limit"
assert_line "$OUT" '^pipelined 201 messages: 201 pongs$' "pipelined messages"
assert_line "$OUT" '^over the limit: close 1009$' "message over the limit"
grep -q 'event=frame_too_large' "$T/logs/gw1.log" || fail "no frame_too_large in gw1's log"
is_ready "${GW_ADMIN[1]}" || fail "gateway 1 not ready after the large messages"

# --- max_connections = 2 on gateway 2 ------------------------------------------------------
grep -q 'event=fd_limit ' "$T/logs/gw2.log" || grep -q 'event=fd_limit_low ' "$T/logs/gw2.log" ||
  fail "gateway 2 did not log its descriptor limit"
assert_eq 2 "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_connections_max)" "connections_max"
expect_rc 0 ws hold "${GW_PORT[2]}" 3
assert_eq "$(printf 'challenge\nchallenge\nrefused\nafter close: challenge')" "$OUT" \
  "connections of a gateway with max_connections 2"
[ "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_connections_refused_total)" -ge 1 ] ||
  fail "the refused connection was not counted"

# --- keepalive: an idle authenticated client is pinged after PARLEY_GW_KEEPALIVE_IDLE_S (25 s;
# the sweep visits each connection every 20 s) and stays connected, since it answers ---------
register alice 1
# (register logs in once, to publish the prekeys)
logins=$(grep -c 'event=auth_ok .*account=alice' "$T/logs/gw1.log")
expect_rc 3 cli alice recv --count 1 --timeout 50
assert_eq $((logins + 1)) "$(grep -c 'event=auth_ok .*account=alice' "$T/logs/gw1.log")" \
  "alice's connections"
[ "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_pings_total)" -ge 1 ] ||
  fail "no keepalive ping in 50 idle seconds"
[ "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_pongs_total)" -ge 1 ] ||
  fail "the client's pongs did not reach the gateway"
assert_eq 0 "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_closes_total '{reason="keepalive"}')" \
  "keepalive closes of a client that answers"
[ "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_rss_bytes)" -gt 1000000 ] ||
  fail "parley_gateway_rss_bytes missing"
