#!/usr/bin/env bash
# The provisioning channel of device linking through the real cluster, driven by
# parley-provision-drive: open (an unauthenticated connection gets an 8-character Crockford
# id), join from an authenticated device (both sides learn the other's data), relay both ways
# with the bytes intact, across two gateways and on one; single use (a second join and an
# unknown id: LINK_NOT_FOUND), joins refused before authentication, oversized data refused
# while the connection keeps working, sends from outside the channel, the per-channel send
# limit (refused sends do not count), the opener leaving (the channel is gone), the opener outliving the 15 s auth timeout
# while an idle connection does not, the join and open rate limits, Redis down.
source "$(dirname "$0")/lib.sh"

# polled by wait_until (a "$(...)" argument would be evaluated once, before the polling)
channel_gone() { [ "$(redis_q EXISTS "parley:prov:$1")" = 0 ]; }
no_channels() { [ "$(metric_sum "$1" parley_gateway_provision_channels)" = 0 ]; }

PV_BIN=$PARLEY_BIN/tests/tools/parley-provision-drive
[ -x "$PV_BIN" ] || fail "provision drive missing: $PV_BIN"
pv() { timeout 120 "$PV_BIN" --timeout 100 "$@"; }
lines_matching() { grep -cE -- "$2" <<<"$1" || true; }
sum_of() { "$PV_BIN" sum "$1" | awk '{print $3}'; }
chan_of() { sed -nE "s/^$2 opened ([^ ]+) .*/\1/p" <<<"$1"; }
CROCKFORD='^[0-9A-HJKMNP-TV-Z]{8}$'

start_cluster
U1=${GW_URL[1]}
U2=${GW_URL[2]}

# --- the whole exchange, opener on gw1, joiner on gw2 ----------------------------------------
expect_rc 0 pv conn new "$U1" device old "$U2" alice \
  open new 32/offer join old =new 32/answer expect new peer 5 \
  send new =new 1500/m1 expect old data 5 \
  send old =old 4096/m2 expect new data 5 \
  send new =new 0 expect old data 5 \
  quiet new 0.5 quiet old 0.5
ch=$(chan_of "$OUT" new)
assert_match "$ch" "$CROCKFORD" "channel id"
assert_line "$OUT" "^new opened $ch ttl=(599|600)$" "ProvisionOpened"
assert_line "$OUT" "^old peer ch=$ch len=32 sum=$(sum_of 32/offer)$" "the joiner gets the opener's data"
assert_line "$OUT" "^new got peer ch=$ch len=32 sum=$(sum_of 32/answer)$" "the opener gets the joiner's data"
assert_line "$OUT" "^old got data ch=$ch len=1500 sum=$(sum_of 1500/m1)$" "opener -> joiner across gateways"
assert_line "$OUT" "^new got data ch=$ch len=4096 sum=$(sum_of 4096/m2)$" "joiner -> opener across gateways (largest)"
assert_line "$OUT" "^old got data ch=$ch len=0 sum=" "an empty message"
assert_eq 3 "$(lines_matching "$OUT" ' sent$')" "sends answered ProvisionSent"
assert_line "$OUT" '^new quiet$' "nothing more for the opener"
assert_line "$OUT" '^old quiet$' "nothing more for the joiner"
# the opener left when the drive ended: its channel went with it
wait_until 10 channel_gone "$ch"

# --- both on one gateway; single use; refusals -----------------------------------------------
expect_rc 0 pv conn new "$U1" device old "$U1" bob device other "$U2" carol \
  open new 64/o join old =new 16/j expect new peer 5 \
  send old =old 100/a expect new data 5 send new =new 200/b expect old data 5 \
  join other =new 16/k join other zzzzzzzz 1 join other 0I0L0O0U 1 \
  send other =new 10 send other ABCDEFGH 10 \
  send new =new 4097 send new WRONGIDS 1 ping new send new =new 50/still expect old data 5 \
  join old =new 1 open old 1
ch=$(chan_of "$OUT" new)
assert_line "$OUT" "^old peer ch=$ch len=64 sum=$(sum_of 64/o)$" "join on the same gateway"
assert_line "$OUT" "^new got peer ch=$ch len=16 sum=$(sum_of 16/j)$" "peer push on the same gateway"
assert_line "$OUT" "^new got data ch=$ch len=100 sum=$(sum_of 100/a)$" "joiner -> opener, same gateway"
assert_line "$OUT" "^old got data ch=$ch len=200 sum=$(sum_of 200/b)$" "opener -> joiner, same gateway"
assert_eq 3 "$(lines_matching "$OUT" '^other error LINK_NOT_FOUND retry=0 msg=unknown, expired or already used link code$')" \
  "second join, unknown id, invalid id"
assert_eq 2 "$(lines_matching "$OUT" '^other error LINK_NOT_FOUND .*not a member')" "sends from outside the channel"
assert_line "$OUT" '^new error INVALID_ARGUMENT .*longer than 4096' "oversized ProvisionSend"
assert_line "$OUT" '^new error LINK_NOT_FOUND .*not a member' "a send naming another channel"
assert_line "$OUT" '^new pong$' "the connection works after the oversized send"
assert_line "$OUT" "^old got data ch=$ch len=50 sum=$(sum_of 50/still)$" "relay after the refusals"
assert_eq 2 "$(lines_matching "$OUT" '^old error INVALID_ARGUMENT .*one provisioning channel per connection')" \
  "a joiner joining or opening again"

# --- oversized open, one channel per connection, unauthenticated join, account session -------
expect_rc 0 pv conn a "$U2" open a 4097 ping a open a 8 open a 8 conn u "$U1" join u =a 8 \
  wait-closed u 5
assert_line "$OUT" '^a error INVALID_ARGUMENT .*longer than 4096' "oversized ProvisionOpen"
assert_line "$OUT" '^a pong$' "the connection works after the oversized open"
assert_line "$OUT" '^a opened [0-9A-Z]{8} ' "open after the refusal"
assert_line "$OUT" '^a error INVALID_ARGUMENT .*one provisioning channel per connection' "a second open"
assert_line "$OUT" '^u error NOT_AUTHENTICATED ' "join before authentication"
assert_line "$OUT" '^u closed code=1008$' "unauthenticated join closes"

# --- the send limit: PARLEY_PROVISION_SENDS_MAX (16) relayed per connection and channel ---------
# sends refused after the channel lookup (nobody joined yet) do not count against it
args=()
for i in $(seq 1 17); do args+=(send new =new 10/s$i); done
expect_rc 0 pv conn new "$U1" device old "$U2" dave open new 1 \
  send new =new 10 send new =new 10 send new =new 10 join old =new 1 "${args[@]}" \
  send old =old 10 expect new data 5
assert_eq 3 "$(lines_matching "$OUT" '^new error LINK_NOT_FOUND .*no device has joined')" \
  "sends before the join"
assert_eq 16 "$(lines_matching "$OUT" '^new sent$')" "sends within the limit"
assert_line "$OUT" '^new error RATE_LIMITED .*at most 16 messages' "the 17th send"
assert_line "$OUT" '^old sent$' "the other side's own budget"

# --- the opener leaves: the channel is gone, the joiner's sends fail; a joiner leaving --------
spawn_to opener pv conn new "$U1" open new 8/x sleep 4
opener=$SPAWNED
wait_until 10 grep -q '^new opened ' "$T/opener.out"
ch=$(chan_of "$(cat "$T/opener.out")" new)
assert_eq 1 "$(redis_q EXISTS "parley:prov:$ch")" "channel in Redis"
ttl=$(redis_q TTL "parley:prov:$ch")
[ "$ttl" -gt 590 ] && [ "$ttl" -le 600 ] || fail "channel TTL $ttl"
stop_spawned "$opener" KILL # the socket just drops
wait_until 10 channel_gone "$ch"
expect_rc 0 pv device late "$U2" erin join late "$ch" 1
assert_line "$OUT" '^late error LINK_NOT_FOUND ' "join after the opener left"
# the joiner's sends after the opener left (opener on gw2, joiner on gw1)
expect_rc 0 pv conn new "$U2" device old "$U1" frank open new 1 join old =new 1 expect new peer 5 \
  close new send old =old 5
assert_line "$OUT" '^old error LINK_NOT_FOUND .*channel is gone' "a send after the opener left"
# the joiner leaves: the opener's sends fail, the slot stays used
expect_rc 0 pv conn new "$U2" device old "$U1" gina device third "$U1" hank \
  open new 1 join old =new 1 expect new peer 5 close old sleep 0.3 send new =new 5 join third =new 1
assert_line "$OUT" '^new error LINK_NOT_FOUND .*other side left' "a send after the joiner left"
assert_line "$OUT" '^third error LINK_NOT_FOUND ' "a join after the joiner left"

# --- the auth timeout: the opener stays past 15 s, an idle connection does not ---------------
expect_rc 0 pv conn idle "$U1" conn new "$U1" open new 8/late sleep 17 state idle state new \
  device old "$U2" ivan join old =new 1 expect new peer 5 send old =old 20/z expect new data 5
assert_line "$OUT" '^idle closed code=1008$' "an idle unauthenticated connection after 17 s"
assert_line "$OUT" '^new open$' "the opener after 17 s"
assert_line "$OUT" "^new got data ch=[0-9A-Z]{8} len=20 sum=$(sum_of 20/z)$" "relay to the opener after 17 s"

# --- the join limit: PARLEY_LINK_JOINS_PER_MINUTE (10) per connection --------------------------
args=()
for i in $(seq 1 11); do args+=(join j ZZZZZZZ$((i % 10)) 1); done
expect_rc 0 pv device j "$U1" judy "${args[@]}" conn new "$U1" open new 1 join j =new 1
assert_eq 10 "$(lines_matching "$OUT" '^j error LINK_NOT_FOUND ')" "joins within the limit"
assert_eq 2 "$(lines_matching "$OUT" '^j error RATE_LIMITED retry=[1-9][0-9]* msg=too many link codes tried')" \
  "joins over the limit (even of a live channel)"
expect_rc 0 pv device j2 "$U1" kate conn new "$U1" open new 1 join j2 =new 1
assert_line "$OUT" '^j2 peer ' "another connection is not limited"

# --- metrics -------------------------------------------------------------------------------
opens=$(( $(metric_sum "${GW_ADMIN[1]}" parley_gateway_provision_opens_total '{result="ok"}') + \
          $(metric_sum "${GW_ADMIN[2]}" parley_gateway_provision_opens_total '{result="ok"}') ))
assert_eq 10 "$opens" "opens counted"
assert_eq 2 "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_provision_joins_total '{result="rate_limited"}')" \
  "limited joins counted"
relayed=$(( $(metric_sum "${GW_ADMIN[1]}" parley_gateway_provision_relayed_total) + \
            $(metric_sum "${GW_ADMIN[2]}" parley_gateway_provision_relayed_total) ))
[ "$relayed" -ge 25 ] || fail "relayed pushes counted: $relayed"
wait_until 10 no_channels "${GW_ADMIN[1]}"
wait_until 10 no_channels "${GW_ADMIN[2]}"
assert_eq 0 "$(redis_q --scan --pattern 'parley:prov:*' | wc -l)" "channels left in Redis"

# --- the open limit per source address (register_rate_per_minute, its own window) -------------
stop_gateway 1
GW_EXTRA[1]="register_rate_per_minute = 3"
start_gateway 1
redis_q DEL parley:rl:provision_open:127.0.0.1 >/dev/null
expect_rc 0 pv conn a "$U1" conn b "$U1" conn c "$U1" conn d "$U1" \
  open a 1 open b 1 open c 1 open d 1
assert_eq 3 "$(lines_matching "$OUT" '^[abc] opened ')" "opens within the limit"
assert_line "$OUT" '^d error RATE_LIMITED retry=[1-9][0-9]* msg=too many link codes from this address' \
  "the 4th open from one address"

# --- Redis down: UNAVAILABLE, and the gateway serves again once it is back --------------------
stop_redis
expect_rc 0 pv conn a "$U2" open a 1 ping a
assert_line "$OUT" '^a error UNAVAILABLE ' "open without Redis"
assert_line "$OUT" '^a pong$' "the connection after the refused open"
restart_redis
wait_until 30 is_ready "${GW_ADMIN[2]}"
expect_rc 0 pv conn a "$U2" device b "$U2" lena open a 1 join b =a 1
assert_line "$OUT" '^b peer ' "a join once Redis is back"
echo "ok [$TEST_NAME]"
