#!/usr/bin/env bash
# Connection limits (docs/PROTOCOL.md sections 3 and 7): one connection per device in the whole
# cluster (a newer connection closes the older with 4001, on the same gateway and across
# gateways, and the newer one receives), and a client that stops reading is closed with 4002
# once the gateway holds more than outbound_max unsent bytes for it, while the gateway keeps
# serving its other clients and the slow device loses nothing (its envelopes stay queued until
# it acks them).
source "$(dirname "$0")/lib.sh"

# the smallest outbound limit the gateway accepts (2 * PARLEY_MAX_FRAME_BYTES): the stalled
# client is cut off after less data
OUTBOUND_MAX=524288
start_redis
start_pg
start_fanout 1
GW_EXTRA[1]="outbound_max = $OUTBOUND_MAX"
start_gateway 1
start_gateway 2
register alice 1
register bob 1
register carol 1

[ -x "$PROBE_BIN" ] || fail "probe binary missing: $PROBE_BIN"
# long_probe I SECONDS ARGS...: parley-probe against gateway I with a time limit of SECONDS (the
# lib's probe stops every probe after 60 s; a large drain on a busy machine may need more)
long_probe() {
  local i=$1 secs=$2; shift 2
  timeout $((secs + 30)) "$PROBE_BIN" --server "${GW_URL[$i]}" --timeout "$secs" "$@"
}
# bg_probe NAME I SECONDS ARGS...: parley-probe in the background, output in $T/NAME.out; no
# wrapper process, so that SPAWNED is the probe itself (its --timeout bounds it)
bg_probe() {
  local name=$1 i=$2 secs=$3; shift 3
  spawn_to "$name" "$PROBE_BIN" --server "${GW_URL[$i]}" --timeout "$secs" "$@"
}
# out_has NAME REGEX: a line of the stdout of spawn_to NAME matches
out_has() { grep -qE -- "$2" "$T/$1.out"; }
out_of() { cat "$T/$1.out"; }
# metric I NAME{LABELS}: a sample of gateway I's /metrics (empty when absent)
metric() { http_get "${GW_ADMIN[$1]}" /metrics | awk -v m="$2" '$1 == m { print $2 }'; }
replaced() { metric "$1" 'parley_gateway_closes_total{reason="replaced"}'; }
too_slow() { metric 1 'parley_gateway_closes_total{reason="too_slow"}'; }
# last_conn I USER: the conn id of USER's latest authentication on gateway I (from its log)
last_conn() {
  grep -E "event=auth_ok .*account=$2 " "$T/logs/gw$1.log" | tail -n 1 |
    sed -nE 's/.* conn=([0-9]+) .*/\1/p'
}
# env_ids TEXT: the sorted distinct envelope ids of the probe output TEXT
env_ids() { sed -nE 's/^(conn[0-9]+ )?frame envelope id=([0-9]+) .*/\2/p' <<<"$1" | sort -n -u; }
assert_eq 0 "$(replaced 1)" "gw1 closes_total{reason=replaced} before the test"
assert_eq 0 "$(replaced 2)" "gw2 closes_total{reason=replaced} before the test"

# --- (a) a second connection of a device replaces the first: close 4001 for the first, and the
# second one receives. $1/$2: the gateways of the first and of the second connection.
replace_case() {
  local g1=$1 g2=$2 what="bob on gw$1 replaced from gw$2" text="to the newer bob $1$2"
  local before first_pid second_pid
  before=$(replaced "$g1")
  bg_probe "first$g1$g2" "$g1" 120 --home "$(home_of bob)" --expect-close 4001
  first_pid=$SPAWNED
  wait_until 60 out_has "first$g1$g2" '^frame queue_empty$'
  bg_probe "second$g1$g2" "$g2" 120 --home "$(home_of bob)" --expect-envelopes 1 --ack-received
  second_pid=$SPAWNED
  wait_rc "$first_pid"
  assert_eq 0 "$WRC" "$what: the first probe saw close 4001 (output: $(out_of "first$g1$g2"))"
  assert_line "$(out_of "first$g1$g2")" '^close 4001$' "$what: first connection"
  # counted once, also on the same gateway where auth and the presence claim both see the old
  # connection
  assert_eq $((before + 1)) "$(replaced "$g1")" "$what: gw$g1 closes_total{reason=replaced}"
  # the newer connection is up and the only one: a message reaches it
  wait_until 60 out_has "second$g1$g2" '^frame queue_empty$'
  expect_rc 0 cli alice send bob "$text"
  wait_rc "$second_pid"
  assert_eq 0 "$WRC" "$what: the second probe received and acked (output: $(out_of "second$g1$g2"))"
  assert_line "$(out_of "second$g1$g2")" '^frame envelope id=[0-9]+ sender=alice device=1 ' \
    "$what: second connection"
  assert_not_contains "$(out_of "second$g1$g2")" "close 4001" "$what: second connection"
  assert_not_contains "$(out_of "first$g1$g2")" "frame envelope" "$what: first connection"
  wait_until 20 queue_empty bob
}
replace_case 1 1
replace_case 1 2
replace_case 2 1

# --- (b) a client that stops reading. bob authenticates on gw1 and stalls (the probe's loop is
# blocked: nothing is read from the socket) while alice floods him with large envelopes.
# (the probe's deadline cannot fire while it stalls: the stall itself bounds it)
bg_probe stalled 1 900 --home "$(home_of bob)" --stall 600
stalled_pid=$SPAWNED
wait_until 60 out_has stalled '^stall 600$'
wait_until 20 online bob
bob_conn=$(last_conn 1 bob)
[ -n "$bob_conn" ] || fail "no auth_ok of bob in gw1's log"
bob_reg=$(psql_q "SELECT d.registration_id FROM devices d JOIN accounts a ON a.id = d.account_id
                   WHERE a.username = 'bob' AND d.device_id = 1")
assert_eq 0 "$(too_slow)" "gw1 too_slow closes before the flood"

# The kernel's socket buffers absorb an unknown amount first, so flood in rounds (each round
# ~2.4 MB) until the gateway has cut bob off.
FLOOD_COUNT=40
FLOOD_BYTES=60000
stored=''
rounds=0
while [ "$(too_slow)" = 0 ]; do
  rounds=$((rounds + 1))
  [ "$rounds" -le 15 ] ||
    fail "no 4002 after $((rounds - 1)) rounds of $FLOOD_COUNT x $FLOOD_BYTES bytes"
  expect_rc 0 long_probe 1 180 --home "$(home_of alice)" \
    --flood bob "1:$bob_reg" "$FLOOD_COUNT" "$FLOOD_BYTES"
  assert_line "$OUT" "^flood done $FLOOD_COUNT\$" "flood round $rounds"
  stored+=$(sed -nE 's/^frame send_result ids=([0-9]+) duplicate=0$/\1/p' <<<"$OUT")$'\n'
done
stored=$(grep -E '^[0-9]+$' <<<"$stored" | sort -n -u)
total=$(grep -c . <<<"$stored")
assert_eq $((rounds * FLOOD_COUNT)) "$total" "distinct envelope ids stored by the flood"
echo "flooded $total envelopes of $FLOOD_BYTES bytes in $rounds rounds before the 4002"

# the gateway closed bob's connection (and only it) as too slow
assert_eq 1 "$(too_slow)" "gw1 closes_total{reason=too_slow}"
slow_lines=$(grep 'event=conn_too_slow' "$T/logs/gw1.log" || true)
assert_eq 1 "$(grep -c . <<<"$slow_lines")" "conn_too_slow lines in gw1's log: [$slow_lines]"
assert_contains "$slow_lines" "conn=$bob_conn " "the connection closed as too slow"
kill -0 "$stalled_pid" 2>/dev/null || fail "the stalled probe exited early: $(out_of stalled)"

# the gateway keeps serving its other clients while bob is still stalled
expect_rc 0 cli carol send alice "still served"
expect_rc 0 cli alice recv --count 1 --timeout 30
assert_eq "$(printf 'carol\t1\tstill served')" "$OUT" "alice's message during the stall"
expect_rc 0 probe 1 --home "$(home_of carol)" --ping --expect-pong

# nothing was lost: every flooded envelope is still queued (also those the kernel had taken
# into the stalled client's socket buffers), although bob's connection took some of them
kill -KILL "$stalled_pid" 2>/dev/null || true
wait_rc "$stalled_pid"
assert_eq "$total" "$(queued bob 1)" "bob's queue after the 4002"
wait_until 60 eval '! online bob'

# bob reconnects normally: the drain brings every stored envelope, within the outbound limit
# (no second 4002), then the acks empty the queue
expect_rc 0 long_probe 1 300 --home "$(home_of bob)" --expect-envelopes "$total" --ack-received
assert_line "$OUT" "^acked $total\$" "bob's acks after reconnecting"
assert_not_contains "$OUT" "close" "bob's reconnection"
assert_eq "$stored" "$(env_ids "$OUT")" "envelope ids received after reconnecting vs stored"
assert_eq 1 "$(too_slow)" "gw1 too_slow closes after the reconnection"
wait_until 30 queue_empty bob
