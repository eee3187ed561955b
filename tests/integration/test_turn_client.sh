#!/usr/bin/env bash
# test_turn_client.sh: the client library's TURN client and call media (client/turn_client.h,
# client/media.h) against the real parley-relay on loopback, through parley-turn-drive: two
# allocations, each the other's peer, a media stream each way through channels.
#  - audio for 3 s: both ends report 0 loss, an RTT and a jitter, the peer's count known;
#  - audio + video bursts, every packet fed twice and once tampered: still 0 loss, the copies
#    dropped by the replay window, the tampered ones by the AEAD;
#  - a relay whose nonces last 10 s, refreshing at 11 s: a 438 retried, refreshes done, 0 loss;
#  - credentials that expire during a call: its refreshes still succeed, a new allocation with
#    them is refused (401);
#  - a wrong password and an expired username refused (401); peers refused (403) by a relay
#    without loopback in its allow list;
#  - allocations deleted at the end (the relay's gauge back to 0 at once, not after expiry);
#    SIGTERM exits 0; no sanitizer report.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DRIVE=$PARLEY_BIN/tests/tools/parley-turn-drive
# the relays: lib.sh's start_relay (stopped, and checked for sanitizer reports, at exit)
SECRET=media-test-secret
RELAY_SECRET=$SECRET

metric() { # relay name[{labels}] -> value (0 when absent)
  local v
  v=$(http_get "${RELAY_ADMIN[$1]}" /metrics | awk -v n="$2" '$1 == n {print $2}')
  echo "${v:-0}"
}

rest_password() { printf '%s' "$1" | openssl dgst -sha1 -hmac "$2" -binary | base64; }

# drive RELAY USER ARGS...: parley-turn-drive with REST credentials for USER (sets RC, OUT, ERR)
drive() {
  local name=$1 user="$(($(date +%s) + 600)):$2"; shift 2
  run timeout 90 "$DRIVE" --uri "turn:127.0.0.1:${RELAY_PORT[$name]}" --user "$user" \
    --pass "$(rest_password "$user" "$SECRET")" "$@"
}

field() { # END NAME: a number from the drive's output ("A: ... NAME=N" or "NAME N")
  sed -nE "s/^$1: .*\\b$2[= ]([0-9.]+).*/\\1/p" <<<"$OUT" | head -n 1
}

assert_call_ok() { # what
  [ "$RC" = 0 ] || fail "$1: exit $RC
$OUT
$ERR"
  assert_contains "$OUT" "flowing" "$1"
  local e
  for e in A B; do
    assert_line "$OUT" \
      "^$e: sent [0-9]+ received [0-9]+ lost 0 \\(0\\.0%\\) rtt [0-9.]+ ms jitter [0-9.]+ ms$" \
      "$1 ($e)"
    assert_eq 1 "$(field $e peer_count)" "$1: $e knows the peer's count"
    assert_eq 0 "$(field $e send_errors)" "$1: $e send errors"
    [ "$(field $e rtt_samples)" -ge 1 ] || fail "$1: $e has no RTT sample"
  done
  # what A sent is what B received and the other way round
  assert_eq "$(field A sent)" "$(field B received)" "$1: A sent, B received"
  assert_eq "$(field B sent)" "$(field A received)" "$1: B sent, A received"
}

# --- a relay that may relay to loopback ------------------------------------------------------
start_relay relay 127.0.0.1 127.0.0.1/32

drive relay audio --seconds 3
assert_call_ok "audio"
sent=$(field A sent)
# 3 s of 20 ms frames is 150, and a ping each 500 ms
[ "$sent" -ge 140 ] && [ "$sent" -le 175 ] || fail "audio: A sent $sent packets in 3 s"
[ "$(field A audio)" -ge 140 ] || fail "audio: A received $(field A audio) audio frames"
echo "audio: $(grep -E '^[AB]: sent' <<<"$OUT" | tr '\n' ';')"
assert_eq 0 "$(metric relay parley_relay_allocations)" "allocations deleted after the call"

drive relay video --seconds 2 --video --dup --tamper
assert_call_ok "video, duplicated and tampered input"
[ "$(field B video)" -ge 150 ] || fail "video: B received $(field B video) video packets"
[ "$(field B replay)" -ge "$(field B received)" ] ||
  fail "video: B's duplicates not dropped (replay=$(field B replay))"
[ "$(field B auth)" -ge "$(field B received)" ] ||
  fail "video: B's tampered copies not dropped (auth=$(field B auth))"
assert_eq 0 "$(field A replay)" "video: A saw no replays"
echo "video: $(grep -E '^[AB]: sent' <<<"$OUT" | tr '\n' ';')"

# refused credentials
user="$(($(date +%s) + 600)):mallory"
run timeout 30 "$DRIVE" --uri "turn:127.0.0.1:${RELAY_PORT[relay]}" --user "$user" \
  --pass "not-the-password" --seconds 1
assert_eq 1 "$RC" "wrong password: exit"
assert_contains "$OUT" "relay answered 401" "wrong password"
user="$(($(date +%s) - 60)):alice"
run timeout 30 "$DRIVE" --uri "turn:127.0.0.1:${RELAY_PORT[relay]}" --user "$user" \
  --pass "$(rest_password "$user" "$SECRET")" --seconds 1
assert_eq 1 "$RC" "expired username: exit"
assert_contains "$OUT" "relay answered 401" "expired username"
assert_eq 0 "$(metric relay parley_relay_allocations)" "no allocation left by refused clients"

# --- credentials that expire during the call -----------------------------------------------
# their expiry bounds when an allocation can be made, not how long it lives: the refreshes after
# it still succeed, while a new allocation with the same credentials is refused
user="$(($(date +%s) + 4)):longcall"
pass=$(rest_password "$user" "$SECRET")
run timeout 60 "$DRIVE" --uri "turn:127.0.0.1:${RELAY_PORT[relay]}" --user "$user" \
  --pass "$pass" --seconds 10 --refresh 7
assert_call_ok "a call outliving its credentials"
for e in A B; do
  [ "$(field $e refreshes)" -ge 1 ] || fail "outliving its credentials: $e did not refresh"
done
[ "$(date +%s)" -gt "${user%%:*}" ] || fail "outliving its credentials: they had not expired yet"
run timeout 30 "$DRIVE" --uri "turn:127.0.0.1:${RELAY_PORT[relay]}" --user "$user" \
  --pass "$pass" --seconds 1
assert_eq 1 "$RC" "expired credentials of a live call, new allocation: exit"
assert_contains "$OUT" "relay answered 401" "expired credentials of a live call, new allocation"
assert_eq 0 "$(metric relay parley_relay_allocations)" "allocations deleted (long call)"

# --- nonces that go stale during the call ---------------------------------------------------
RELAY_EXTRA[relay_stale]="nonce_ttl_s = 10"
start_relay relay_stale 127.0.0.1 127.0.0.1/32
drive relay_stale stale --seconds 12 --refresh 11
assert_call_ok "stale nonce"
for e in A B; do
  [ "$(field $e stale_nonces)" -ge 1 ] || fail "stale nonce: $e saw no 438"
  [ "$(field $e refreshes)" -ge 1 ] || fail "stale nonce: $e did not refresh"
done
assert_eq 0 "$(metric relay_stale parley_relay_allocations)" "allocations deleted (stale)"

# --- a relay that does not relay to loopback -------------------------------------------------
start_relay relay_strict 127.0.0.1 ""
drive relay_strict strict --seconds 1
assert_eq 1 "$RC" "loopback peer: exit"
assert_contains "$OUT" "CreatePermission: relay answered 403" "loopback peer"
