#!/usr/bin/env bash
# test_call.sh: `parley call` and `parley answer` through the cluster and a real TURN relay
# (parley-relay allowing loopback peers; the gateways hand out its URI and REST secret):
#  - alice calls bob (bob's device answers): both ends print the same call id with loss 0,
#    an RTT and a jitter; the relay relayed the media through two channels;
#  - the same with --video;
#  - carol calls bob while he is in that call: busy;
#  - a call nobody answers times out cleanly (exit 1, no allocation left on the relay), and
#    bob's `parley recv` shows it as a missed call; a later `answer` does not pick it up;
#  - answer with no call times out; a call to an unknown account fails cleanly;
#  - bob with two devices: both answer, one takes the call and the other is told it was
#    answered elsewhere; with one of them in a call, carol's call is taken by the other (not
#    busy), which first passes over alice's offer that was answered elsewhere.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_RELAY=1 start_cluster
register alice 1
register bob 2
register carol 1

STATS_RE='^call ([0-9a-f]{16}): sent [0-9]+ received [0-9]+ lost 0 \(0\.0%\) '
STATS_RE+='rtt [0-9]+\.[0-9] ms jitter [0-9]+\.[0-9] ms$'

relay_metric() { metric_sum "${RELAY_ADMIN[relay]}" "$@"; }
# no allocation left on the relay (the calls before deleted theirs)
relay_idle() { [ "$(relay_metric parley_relay_allocations)" = 0 ]; }
# media flows: the relay relayed 100 packets more than BEFORE (its gauges are sampled
# periodically, its packet counters are live)
media_flows() { [ $(($(relay_metric parley_relay_packets_total) - before)) -ge 100 ]; }

# clean_exit: the failure the last run ended with was a clean one (under ASan a leak report
# would exit 1 as well)
clean_exit() {
  assert_not_contains "$ERR" "Sanitizer" "stderr"
  assert_not_contains "$ERR" "runtime error:" "stderr"
}

# call_id_of TEXT: the id of the call's stats line
call_id_of() { sed -nE 's/^call ([0-9a-f]{16}): sent .*/\1/p' <<<"$1" | head -n 1; }

# two_party_call SECONDS [--video]: bob answers in the background, alice calls; checks both lines
two_party_call() {
  local secs=$1; shift
  spawn_to answer cli bob answer --timeout 40
  local ans=$SPAWNED
  wait_until 20 online bob 1
  run cli alice call bob --seconds "$secs" "$@"
  [ "$RC" = 0 ] ||
    fail "call exit $RC: $OUT / $ERR / answer: $(cat "$T/answer.out" "$T/answer.err")"
  assert_line "$OUT" "$STATS_RE" "caller's line"
  clean_exit
  wait_rc "$ans"
  [ "$WRC" = 0 ] || fail "answer exit $WRC: $(cat "$T/answer.out" "$T/answer.err")"
  local theirs
  theirs=$(cat "$T/answer.out")
  assert_not_contains "$(cat "$T/answer.err")" "Sanitizer" "callee's stderr"
  assert_not_contains "$(cat "$T/answer.err")" "runtime error:" "callee's stderr"
  assert_line "$theirs" "$STATS_RE" "callee's line"
  assert_eq "$(call_id_of "$OUT")" "$(call_id_of "$theirs")" "call id on both ends"
  echo "caller: $(grep '^call ' <<<"$OUT")"
  echo "callee: $(grep '^call ' <<<"$theirs")"
}

# long_call NAME SECONDS: bob's device 1 answers in the background (output NAME.out/.err, pid
# in ans), alice calls him for SECONDS (long.out/.err, pid in long); returns once media flows
long_call() {
  wait_until 10 relay_idle
  spawn_to "$1" cli bob answer --timeout 40
  ans=$SPAWNED
  wait_until 20 online bob 1
  before=$(relay_metric parley_relay_packets_total)
  spawn_to long cli alice call bob --seconds "$2"
  long=$SPAWNED
  for ((i = 0; i < 200; i++)); do
    ! media_flows || break
    kill -0 "$long" 2>/dev/null || break
    sleep 0.1
  done
  media_flows || fail "alice's call to bob did not connect: $(cat "$T"/long.* "$T/$1".*)"
}

# --- an audio call ---------------------------------------------------------------------------
before=$(relay_metric parley_relay_packets_total)
two_party_call 3
relayed=$(( $(relay_metric parley_relay_packets_total) - before ))
# 150 frames each way in 3 s, and every one crossed the relay twice (client to peer, then peer
# to client)
[ "$relayed" -ge 500 ] || fail "the relay relayed only $relayed packets for a 3 s call"
wait_until 10 relay_idle

# --- with video bursts -----------------------------------------------------------------------
two_party_call 2 --video
assert_line "$(cat "$T/answer.out")" "$STATS_RE"

# --- busy ------------------------------------------------------------------------------------
long_call answer 8
run cli carol call bob --timeout 10
[ "$RC" = 1 ] || fail "carol's call during alice's: exit $RC ($OUT $ERR); $(cat "$T"/long.* "$T"/answer.*)"
clean_exit
assert_contains "$ERR" "bob is busy"
wait_rc "$long"
[ "$WRC" = 0 ] || fail "the call carol interrupted failed: $(cat "$T/long.out" "$T/long.err")"
assert_line "$(cat "$T/long.out")" "$STATS_RE" "caller's line after a busy"
wait_rc "$ans"
[ "$WRC" = 0 ] || fail "answer exit $WRC after a busy: $(cat "$T/answer.err")"
assert_not_contains "$(cat "$T/answer.err" "$T/long.err")" "Sanitizer" "stderr of the busy call"

# --- no answer -------------------------------------------------------------------------------
started=$SECONDS
expect_rc 1 cli alice call bob --timeout 3
clean_exit
assert_contains "$ERR" "bob did not answer within 3 s"
[ $((SECONDS - started)) -lt 20 ] || fail "an unanswered call took $((SECONDS - started)) s"
missed=$(sed -nE 's/.*\(call ([0-9a-f]{16})\).*/\1/p' <<<"$ERR")
wait_until 10 relay_idle
# the offer waits in bob's queue: recv shows it as a call nobody answered (the hangup after it
# shows nothing)
expect_rc 0 cli bob recv --timeout 3
assert_eq "alice 1 called you (call $missed)" "$OUT" "bob's recv of a missed call"
# ... and once it is old, answer does not pick it up from the queue either
expect_rc 1 cli alice call bob --timeout 1
clean_exit
sleep 1.5
expect_rc 1 cli bob answer --timeout 2
clean_exit
assert_contains "$ERR" "no call came within 2 s"
assert_contains "$OUT" "alice 1 called you (call "

# --- failures --------------------------------------------------------------------------------
expect_rc 1 cli alice call nobody_here --timeout 5
clean_exit
assert_contains "$ERR" "unknown account nobody_here"
expect_rc 2 cli alice call bob --seconds 0
expect_rc 2 cli alice send bob hi --video

# --- a callee with two devices ---------------------------------------------------------------
# an offer rings every device of the account; the first answer takes the call and the other
# devices are told it was answered elsewhere
link_device bob-2 bob 1
wait_until 10 relay_idle
spawn_to ans1 cli bob answer --timeout 8
a1=$SPAWNED
spawn_to ans2 cli bob-2 answer --timeout 8
a2=$SPAWNED
wait_until 20 online bob 1
wait_until 20 online bob "$LINKED_ID"
run cli alice call bob --seconds 2
[ "$RC" = 0 ] || fail "call to two devices: exit $RC: $OUT / $ERR / $(cat "$T"/ans1.* "$T"/ans2.*)"
assert_line "$OUT" "$STATS_RE" "caller's line, two devices ringing"
clean_exit
id=$(call_id_of "$OUT")
wait_rc "$a1"; r1=$WRC
wait_rc "$a2"; r2=$WRC
if grep -qE "$STATS_RE" "$T/ans1.out"; then won=ans1 lost=ans2 rw=$r1 rl=$r2; else won=ans2 lost=ans1 rw=$r2 rl=$r1; fi
[ "$rw" = 0 ] || fail "the device that took the call: exit $rw: $(cat "$T/$won".*)"
assert_eq "$id" "$(call_id_of "$(cat "$T/$won.out")")" "call id on the device that took it"
assert_contains "$(cat "$T/$lost.err")" "answered on another device (call $id)" "the other device"
[ "$rl" = 1 ] || fail "the other device's answer: exit $rl: $(cat "$T/$lost".*)"
assert_contains "$(cat "$T/$lost.err")" "no call came within 8 s" "the other device waited on"
assert_not_contains "$(cat "$T"/ans1.err "$T"/ans2.err)" "Sanitizer" "stderr of the two devices"

# one device in a call does not make the account busy: carol's call is taken by the other one
long_call ans1 10
a1=$ans
# bob-2 was offline: alice's offer and its answered-elsewhere wait in its queue before carol's
spawn_to ans2 cli bob-2 answer --timeout 30
a2=$SPAWNED
run cli carol call bob --seconds 2 --timeout 20
[ "$RC" = 0 ] || fail "carol's call while one of bob's devices is busy: exit $RC: $OUT / $ERR / $(cat "$T"/ans2.*)"
assert_line "$OUT" "$STATS_RE" "carol's line"
clean_exit
wait_rc "$a2"
[ "$WRC" = 0 ] || fail "bob-2's answer: exit $WRC: $(cat "$T"/ans2.*)"
assert_eq "$(call_id_of "$OUT")" "$(call_id_of "$(cat "$T/ans2.out")")" "carol's call id on bob-2"
wait_rc "$long"
[ "$WRC" = 0 ] || fail "alice's call during carol's: $(cat "$T/long.out" "$T/long.err")"
wait_rc "$a1"
[ "$WRC" = 0 ] || fail "bob's answer during carol's call: $(cat "$T"/ans1.*)"
assert_not_contains "$(cat "$T"/ans1.err "$T"/ans2.err "$T"/long.err)" "Sanitizer" "stderr"
