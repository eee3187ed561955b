#!/usr/bin/env bash
# test_relay.sh: parley-relay against a standard TURN client, coturn's turnutils_uclient
# (Debian package coturn, installed by scripts/install-deps), on loopback:
#  - REST credentials (-W secret), zero loss, in uclient's default mode (channels, RTCP
#    allocations with EVEN-PORT + RESERVATION-TOKEN), with Send indications (-s),
#    client-to-client (-y), with channel padding (-D), over TCP (-t), and with a password
#    computed here with openssl (the REST scheme checked independently of uclient's own);
#  - a wrong secret and an expired username refused (401);
#  - peers 127.0.0.1, 10.0.0.1, 169.254.169.254 (and ::1, ::ffff:127.0.0.1 on an IPv6 relay)
#    refused by default (403), loopback allowed only where allow_peers says so;
#  - /healthz, /readyz, /metrics; SIGTERM exits 0; no sanitizer report.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UCLIENT=$(command -v turnutils_uclient || true)
UPEER=$(command -v turnutils_peer || true)
[ -n "$UCLIENT" ] && [ -n "$UPEER" ] ||
  fail "turnutils_uclient/turnutils_peer not installed (scripts/install-deps installs coturn)"
# the relays: lib.sh's start_relay (stopped, and checked for sanitizer reports, at exit), with
# an older secret too (rotation)
SECRET=relay-test-secret
RELAY_SECRET=$SECRET
RELAY_SECRETS="old-secret, $SECRET"

# uc RELAY ARGS...: turnutils_uclient against RELAY (sets RC, OUT, ERR)
uc() {
  local name=$1; shift
  local host=127.0.0.1
  case "$name" in relay6*) host=::1 ;; esac
  run timeout 60 "$UCLIENT" -p "${RELAY_PORT[$name]}" "$@" "$host"
}

assert_zero_loss() { # what
  [ "$RC" = 0 ] || fail "$1: uclient exit $RC
$OUT
$ERR"
  assert_contains "$OUT$ERR" \
    "Total lost packets 0 (0.000000%), total send dropped 0 (0.000000%)" "$1"
}

metric() { # relay name[{labels}] -> value (0 when absent)
  local v
  v=$(http_get "${RELAY_ADMIN[$1]}" /metrics | awk -v n="$2" '$1 == n {print $2}')
  echo "${v:-0}"
}

rest_password() { printf '%s' "$1" | openssl dgst -sha1 -hmac "$2" -binary | base64; }

# --- a relay that may relay to loopback -------------------------------------------------------
# (each case its own REST user: uclient does not always delete its allocations, and what it
# leaves counts in the per-user quota until it expires)
start_relay relay 127.0.0.1 127.0.0.1
free_port PEER_PORT
spawn_to peer "$UPEER" -p "$PEER_PORT" -L 127.0.0.1
sleep 0.3

assert_eq 200 "$(http_status "${RELAY_ADMIN[relay]}" /healthz)" "healthz"
assert_eq 200 "$(http_status "${RELAY_ADMIN[relay]}" /readyz)" "readyz"

uc relay -u udp-default -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 100 -m 4 -l 170
assert_zero_loss "default mode"
grep -q 'event=allocation .*reserved=1' "$T/logs/relay.log" \
  || fail "uclient's default mode did not get an EVEN-PORT reservation"
to_peer=$(metric relay 'parley_relay_packets_total{direction="to_peer"}')
[ "$to_peer" -ge 400 ] || fail "packets to peer: $to_peer"

uc relay -s -u udp-send -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 50 -m 2 -l 170
assert_zero_loss "send indications"
uc relay -t -u tcp-default -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 100 -m 4 -l 170
assert_zero_loss "TCP"
uc relay -t -s -u tcp-send -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 50 -m 2 -l 171
assert_zero_loss "TCP, send indications"
uc relay -y -u udp-c2c -W "$SECRET" -n 50 -m 2 -l 170
assert_zero_loss "client to client"
uc relay -D -c -u udp-padding -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 50 -m 2 -l 171
assert_zero_loss "channel padding, no rtcp"

# REST credentials minted here, as the gateway will
user="$(($(date +%s) + 600)):carol"
uc relay -u "$user" -w "$(rest_password "$user" "$SECRET")" -e 127.0.0.1 -r "$PEER_PORT" -n 20
assert_zero_loss "openssl-minted credentials"
# ... under the older secret too (rotation)
uc relay -u "$user" -w "$(rest_password "$user" old-secret)" -e 127.0.0.1 -r "$PEER_PORT" -n 20
assert_zero_loss "second secret"

# refused credentials
before=$(metric relay 'parley_relay_refusals_total{reason="bad_credentials"}')
uc relay -u mallory -W not-the-secret -e 127.0.0.1 -r "$PEER_PORT" -n 5
[ "$RC" != 0 ] || fail "a wrong secret was accepted"
assert_contains "$OUT$ERR" "Cannot complete Allocation" "wrong secret"
after=$(metric relay 'parley_relay_refusals_total{reason="bad_credentials"}')
[ "$after" -gt "$before" ] || fail "bad_credentials refusals not counted ($before -> $after)"

user="$(($(date +%s) - 60)):alice"
uc relay -u "$user" -w "$(rest_password "$user" "$SECRET")" -e 127.0.0.1 -r "$PEER_PORT" -n 5
[ "$RC" != 0 ] || fail "an expired username was accepted"
assert_contains "$OUT$ERR" "Cannot complete Allocation" "expired username"
[ "$(metric relay 'parley_relay_refusals_total{reason="expired"}')" -gt 0 ] \
  || fail "expired refusals not counted"

# --- a relay with the default policy -------------------------------------------------------------
# (a user per case: uclient leaves its failed allocations to expire, and they count in the
# per-user quota)
start_relay relay_strict 127.0.0.1 ""
for peer in 127.0.0.1 10.0.0.1 169.254.169.254; do
  uc relay_strict -u "user-$peer" -W "$SECRET" -e "$peer" -r "$PEER_PORT" -n 5
  [ "$RC" != 0 ] || fail "relaying to $peer was allowed by default"
  assert_contains "$OUT$ERR" "403" "peer $peer"
done
uc relay_strict -t -u tcp-user -W "$SECRET" -e 127.0.0.1 -r "$PEER_PORT" -n 5
[ "$RC" != 0 ] || fail "relaying to 127.0.0.1 over TCP was allowed by default"
assert_contains "$OUT$ERR" "403" "peer 127.0.0.1 over TCP"
for reason in loopback private metadata; do
  [ "$(metric relay_strict "parley_relay_refusals_total{reason=\"$reason\"}")" -gt 0 ] \
    || fail "refusal $reason not counted"
done
[ "$(metric relay_strict 'parley_relay_packets_total{direction="to_peer"}')" = 0 ] \
  || fail "the strict relay sent something to a peer"

# --- IPv6 (when the machine has ::1) ----------------------------------------------------------
if python3 -c 'import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))' \
     2>/dev/null; then
  start_relay relay6_strict ::1 ""
  for peer in ::1 ::ffff:127.0.0.1; do
    uc relay6_strict -u "user-$peer" -W "$SECRET" -e "$peer" -r "$PEER_PORT" -n 5
    [ "$RC" != 0 ] || fail "relaying to $peer was allowed by default"
    assert_contains "$OUT$ERR" "403" "peer $peer"
  done
  start_relay relay6 ::1 ::1
  free_port PEER6_PORT
  spawn_to peer6 "$UPEER" -p "$PEER6_PORT" -L ::1
  sleep 0.3
  uc relay6 -u v6 -W "$SECRET" -e ::1 -r "$PEER6_PORT" -n 50 -m 2 -l 170
  assert_zero_loss "IPv6 with ::1 allowed"
else
  echo "note [$TEST_NAME]: no IPv6 loopback, IPv6 cases skipped"
fi
