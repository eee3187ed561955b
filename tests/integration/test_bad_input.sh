#!/usr/bin/env bash
# DESIGN invariant 7: bad input gets a clear error frame or close code, and the gateway keeps
# serving everyone else.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

# a text frame: BAD_FRAME, and the socket stays usable
expect_rc 0 probe 1 --send-text "hello?" --expect-error BAD_FRAME --ping --expect-pong
# binary garbage that is no ClientFrame (wire type 7 does not exist): BAD_FRAME, socket usable
expect_rc 0 probe 1 --send-hex ffffffffffffffffffff --expect-error BAD_FRAME --ping --expect-pong
# a frame over PARLEY_MAX_FRAME_BYTES (256 KiB): FRAME_TOO_LARGE, then close 1009
expect_rc 0 probe 1 --send-size 300000 --expect-error FRAME_TOO_LARGE --expect-close 1009
# the same after authentication
expect_rc 0 probe 2 --home "$(home_of alice)" --send-size 300000 --expect-error FRAME_TOO_LARGE --expect-close 1009
# a send before authentication: NOT_AUTHENTICATED, then close 1008
expect_rc 0 probe 1 --send-raw-envelopes bob 1:1 --expect-error NOT_AUTHENTICATED --expect-close 1008
# a ping before authentication is fine
expect_rc 0 probe 2 --ping --expect-pong

# bounds of a send, checked by the gateway
bob_reg=$(psql_q "SELECT registration_id FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'bob'")
many=$(for d in $(seq 1 17); do printf '%s:%s,' "$d" "$bob_reg"; done)
expect_rc 0 probe 1 --home "$(home_of alice)" --send-raw-envelopes bob "${many%,}" --expect-error TOO_MANY_ENVELOPES
expect_rc 0 probe 1 --home "$(home_of alice)" --send-raw-envelopes bob "1:$bob_reg,1:$bob_reg" --expect-error INVALID_ARGUMENT
expect_rc 0 probe 1 --home "$(home_of alice)" --send-raw-envelopes 'Not A Name!' "1:$bob_reg" --expect-error INVALID_ARGUMENT
assert_eq 0 "$(queued bob)" "envelopes queued by refused sends"

# too many bad frames (PARLEY_BAD_FRAMES_MAX = 8 in a connection): the socket closes with 1008
bad=()
for _ in 1 2 3 4 5 6 7; do bad+=(--send-text x); done
expect_rc 0 probe 1 "${bad[@]}" --ping --expect-pong     # 7 are tolerated
expect_rc 0 probe 1 "${bad[@]}" --send-text x --expect-close 1008

# a malformed ingress entry (not an InternalSend: 'n' is a protobuf key with wire type 6) is
# logged, counted and acked by fanout: it never blocks the stream
for ((s = 0; s < INGRESS_SHARDS; s++)); do redis_q XADD "parley:ingress:$s" '*' m 'not a protobuf' >/dev/null; done
malformed_total() {
  local t=0 i v
  for i in 1 2; do
    v=$(http_get "${FO_ADMIN[$i]}" /metrics | awk '$1 == "parley_fanout_malformed_entries_total" { print $2 }')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
all_malformed_counted() { [ "$(malformed_total)" -ge "$INGRESS_SHARDS" ]; }
nothing_pending() {
  local s
  for ((s = 0; s < INGRESS_SHARDS; s++)); do
    [ "$(redis_q XPENDING "parley:ingress:$s" fanout | head -n 1)" = 0 ] || return 1
  done
}
wait_until 15 all_malformed_counted
wait_until 10 nothing_pending

# everyone else is still served: both gateways ready, a normal send and receive works
is_ready "${GW_ADMIN[1]}" || fail "gateway 1 not ready after bad input"
is_ready "${GW_ADMIN[2]}" || fail "gateway 2 not ready after bad input"
expect_rc 0 cli alice send bob "still here"
assert_match "$OUT" $'^bob\t1\t[0-9]+$' "send output after bad input"
expect_rc 0 cli bob recv --count 1 --timeout 15
assert_eq "$(printf 'alice\t1\tstill here')" "$OUT" "bob's message after bad input"
