#!/usr/bin/env bash
# test_turn_credentials.sh: GetTurnCredentials on real gateways against the real relay:
#  - an authenticated device gets the configured URIs, "EXPIRY:ACCOUNT", a password and the
#    TTL; coturn's turnutils_uclient allocates with them on parley-relay over UDP and TCP and
#    relays with zero loss;
#  - a tampered password, a username with a pushed-back expiry and credentials past their TTL
#    (turn_ttl_s = 1 on one gateway) are refused by the relay;
#  - a gateway without turn_uris/turn_secret answers NOT_CONFIGURED;
#  - turn_credentials_rate_per_minute per device: RATE_LIMITED with retry_after_ms, in a window
#    shared by all gateways, and another device is not affected;
#  - an unauthenticated request is refused (NOT_AUTHENTICATED, close 1008);
#  - a gateway refuses to start with URIs but no secret (or the reverse), and the secret
#    never appears in its logs; metrics count every result.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UCLIENT=$(command -v turnutils_uclient || true)
UPEER=$(command -v turnutils_peer || true)
[ -n "$UCLIENT" ] && [ -n "$UPEER" ] ||
  fail "turnutils_uclient/turnutils_peer not installed (scripts/install-deps installs coturn)"
DRIVE_BIN=$PARLEY_BIN/tests/tools/parley-turncreds-drive
[ -x "$DRIVE_BIN" ] || fail "tool missing: $DRIVE_BIN"
SECRET=turn-creds-test-$(hex_random 8)
RATE=5

# --- the relay (lib.sh's start_relay): loopback peers allowed (the test's peer is on
# 127.0.0.1), the gateways' secret second in its list (rotation: the relay accepts both, the
# gateways mint with theirs)
RELAY_SECRET=$SECRET
RELAY_SECRETS="older-secret, $SECRET"
TURN_PORT='' TURN_ADMIN=''
start_turn_relay() {
  start_relay relay
  TURN_PORT=${RELAY_PORT[relay]} TURN_ADMIN=${RELAY_ADMIN[relay]}
}

relay_metric() { metric_sum "$TURN_ADMIN" "$1" "${2:-}"; }

# uc ARGS...: turnutils_uclient against the relay (sets RC, OUT, ERR)
uc() { run timeout 60 "$UCLIENT" -p "$TURN_PORT" "$@" 127.0.0.1; }

assert_zero_loss() { # what
  [ "$RC" = 0 ] || fail "$1: uclient exit $RC
$OUT
$ERR"
  assert_contains "$OUT$ERR" \
    "Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)" "$1"
}

assert_refused() { # what
  [ "$RC" != 0 ] || fail "$1: the relay accepted it"
  assert_contains "$OUT$ERR" "Cannot complete Allocation" "$1"
}

# creds USER GW [COUNT]: GetTurnCredentials COUNT times as USER through gateway GW (sets RC,
# OUT, ERR); the answers are lines "creds ..." or "error ..."
creds() {
  run timeout 60 "$DRIVE_BIN" --home "$(home_of "$1")" --server "${GW_URL[$2]}" \
    --count "${3:-1}" --timeout 20
  [ "$RC" = 0 ] || fail "parley-turncreds-drive $1 via gw$2: exit $RC
$OUT
$ERR"
}

# field LINE NAME: the value of NAME=... in a "creds" line
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

start_turn_relay
start_redis
start_pg
start_fanout 1
uris="turn:127.0.0.1:$TURN_PORT?transport=udp, turn:127.0.0.1:$TURN_PORT?transport=tcp"
printf '%s\n' "$SECRET" >"$T/conf/turn.secret"
chmod 600 "$T/conf/turn.secret"
# gw1: the secret inline; gw3: from a file (as deploy/local/cluster does), credentials of 1 s
GW_EXTRA[1]="turn_uris = $uris
turn_secret = $SECRET
turn_credentials_rate_per_minute = $RATE"
GW_EXTRA[2]=""
GW_EXTRA[3]="turn_uris = $uris
turn_secret_file = $T/conf/turn.secret
turn_ttl_s = 1
turn_credentials_rate_per_minute = $RATE"
start_gateway 1
start_gateway 2
start_gateway 3
free_port PEER_PORT
spawn_to peer "$UPEER" -p "$PEER_PORT" -L 127.0.0.1
sleep 0.3

register alice 1
register bob 1
register carol 2
register dave 1

assert_eq 2 "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_turn_uris)" "turn_uris gauge of gw1"
assert_eq 0 "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_turn_uris)" "turn_uris gauge of gw2"

# --- credentials minted by the gateway work on the relay ---------------------------------------
before=$(date +%s)
creds alice 1
line=$(grep '^creds ' <<<"$OUT") || fail "no credentials: $OUT"
user=$(field "$line" username)
pass=$(field "$line" password)
assert_eq 3600 "$(field "$line" ttl)" "ttl_s"
assert_eq "turn:127.0.0.1:$TURN_PORT?transport=udp,turn:127.0.0.1:$TURN_PORT?transport=tcp" \
  "$(field "$line" uris)" "uris"
assert_match "$user" '^[0-9]+:alice$' "username"
expiry=${user%%:*}
[ "$expiry" -ge $((before + 3600)) ] && [ "$expiry" -le $(($(date +%s) + 3600)) ] ||
  fail "expiry $expiry is not now + 3600 (now $(date +%s))"
assert_eq 28 "${#pass}" "password length"
# the REST scheme, computed independently of the gateway and the relay
want=$(printf '%s' "$user" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64)
assert_eq "$want" "$pass" "password = base64(HMAC-SHA1(secret, username))"

uc -u "$user" -w "$pass" -e 127.0.0.1 -r "$PEER_PORT" -n 50 -m 2 -l 170
assert_zero_loss "gateway credentials over UDP"
uc -t -u "$user" -w "$pass" -e 127.0.0.1 -r "$PEER_PORT" -n 50 -m 2 -l 170
assert_zero_loss "gateway credentials over TCP"
to_peer=$(relay_metric parley_relay_packets_total '{direction="to_peer"}')
[ "$to_peer" -ge 200 ] || fail "packets relayed to the peer: $to_peer"

# --- refused: a tampered password, a pushed-back expiry, expired credentials ------------------
bad_before=$(relay_metric parley_relay_refusals_total '{reason="bad_credentials"}')
tampered=$( [ "${pass:0:1}" = A ] && echo "B${pass:1}" || echo "A${pass:1}" )
uc -u "$user" -w "$tampered" -e 127.0.0.1 -r "$PEER_PORT" -n 5
assert_refused "tampered password"
uc -u "$((expiry + 86400)):alice" -w "$pass" -e 127.0.0.1 -r "$PEER_PORT" -n 5
assert_refused "expiry pushed back under the same password"
uc -u "$expiry:mallory" -w "$pass" -e 127.0.0.1 -r "$PEER_PORT" -n 5
assert_refused "another account under the same password"
bad_after=$(relay_metric parley_relay_refusals_total '{reason="bad_credentials"}')
[ "$bad_after" -gt "$bad_before" ] || fail "bad_credentials refusals not counted"

creds bob 3
line=$(grep '^creds ' <<<"$OUT") || fail "no credentials from gw3: $OUT"
assert_eq 1 "$(field "$line" ttl)" "ttl_s of gw3"
buser=$(field "$line" username)
bpass=$(field "$line" password)
assert_match "$buser" '^[0-9]+:bob$' "username from gw3"
want=$(printf '%s' "$buser" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64)
assert_eq "$want" "$bpass" "password from the secret file"
# valid up to and including EXPIRY (whole seconds): wait until it has passed
while [ "$(date +%s)" -le "${buser%%:*}" ]; do sleep 0.2; done
exp_before=$(relay_metric parley_relay_refusals_total '{reason="expired"}')
uc -u "$buser" -w "$bpass" -e 127.0.0.1 -r "$PEER_PORT" -n 5
assert_refused "expired credentials"
exp_after=$(relay_metric parley_relay_refusals_total '{reason="expired"}')
[ "$exp_after" -gt "$exp_before" ] || fail "expired refusals not counted"

# --- NOT_CONFIGURED ----------------------------------------------------------------------------
creds carol 2
assert_eq "error NOT_CONFIGURED retry=0 msg=no TURN relays configured" "$(sed 1d <<<"$OUT")" \
  "gw2 answer"
assert_eq 1 "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_turn_credentials_total \
  '{result="not_configured"}')" "not_configured metric"

# --- the rate limit: per device, one window for all gateways -----------------------------------
# (dave's window starts here, so the whole section runs well inside its minute)
creds dave 1 $((RATE + 2))
assert_eq "$RATE" "$(grep -c '^creds ' <<<"$OUT")" "credentials within the limit"
assert_eq 2 "$(grep -c '^error RATE_LIMITED ' <<<"$OUT")" "answers over the limit"
retry=$(sed -n 's/^error RATE_LIMITED retry=\([0-9]*\) .*/\1/p' <<<"$OUT" | tail -n 1)
[ "$retry" -gt 0 ] && [ "$retry" -le 60000 ] || fail "retry_after_ms $retry not in 1..60000"
# the same device through another gateway: the same window
creds dave 3
assert_line "$OUT" '^error RATE_LIMITED retry=[0-9]+ msg=too many TURN credential requests' \
  "dave through gw3"
# another device is not affected
creds bob 1
assert_line "$OUT" '^creds ttl=3600 username=[0-9]+:bob ' "bob through gw1"
assert_eq 2 "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_turn_credentials_total \
  '{result="rate_limited"}')" "rate_limited metric of gw1"
assert_eq $((RATE + 2)) "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_turn_credentials_total \
  '{result="ok"}')" "ok metric of gw1 (alice 1, dave RATE, bob 1)"

# --- unauthenticated: refused and closed -------------------------------------------------------
# ClientFrame{request_id 5, get_turn_credentials {}} (field 22, empty)
frame=$(pb_uint 1 5)$(pb_bytes 22 "")
expect_rc 0 probe 1 --expect-challenge --send-hex "$frame" --expect-error NOT_AUTHENTICATED \
  --expect-close 1008

# --- configuration errors stop the gateway at start-up ---------------------------------------
run timeout 10 env -u PARLEY_CONFIG "$GATEWAY_BIN" --turn-uris "turn:127.0.0.1:$TURN_PORT"
assert_eq 2 "$RC" "exit status with URIs but no secret"
assert_contains "$ERR" "turn_secret" "error with URIs but no secret"
run timeout 10 env -u PARLEY_CONFIG "$GATEWAY_BIN" --turn-secret x
assert_eq 2 "$RC" "exit status with a secret but no URIs"
assert_contains "$ERR" "turn_uris" "error with a secret but no URIs"
run timeout 10 env -u PARLEY_CONFIG "$GATEWAY_BIN" --turn-uris "http://relay" --turn-secret x
assert_eq 2 "$RC" "exit status with a bad URI"
run timeout 10 env -u PARLEY_CONFIG "$GATEWAY_BIN" --turn-uris turn:h \
  --turn-secret-file "$T/conf/missing.secret"
assert_eq 2 "$RC" "exit status with a missing secret file"
run timeout 10 env -u PARLEY_CONFIG "$GATEWAY_BIN" --turn-uris turn:h --turn-secret x \
  --turn-ttl-s 86401
assert_eq 2 "$RC" "exit status with turn_ttl_s over the maximum"

# --- the secret and the passwords stay out of the logs ------------------------------------------
for f in "$T"/logs/gw*.log; do
  ! grep -qF -- "$SECRET" "$f" || fail "the TURN secret appears in ${f##*/}"
  ! grep -qF -- "$pass" "$f" || fail "a TURN password appears in ${f##*/}"
done
