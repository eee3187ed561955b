#!/usr/bin/env bash
# Redis loses everything (DESIGN invariant 4: "Redis may lose its data; PostgreSQL is the
# truth"): while messages cross the two gateways in both directions (carol on gateway 2 -> alice
# on gateway 1, dave on gateway 1 -> bob on gateway 2, and erin on gateway 2 streaming to alice
# without pause, so sends are in flight at the moment Redis dies) Redis is killed and an EMPTY
# one starts on the same port. Checked:
#  - sends attempted during the outage either succeed after the CLI's retries or fail with a
#    clear message and a non-zero exit; none is reported accepted and then lost;
#  - the receivers stay online across the restart: the gateways re-set presence in the new Redis
#    and re-drain, so every accepted message reaches the LIVE recv, exactly once per id, under
#    the id its send was answered with;
#  - after the acks the envelope queues of both receivers are empty.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2
register carol 2
register dave 1
register erin 2

# the live receivers run through the whole test (ended by the test once everything is acked)
spawn_to alice cli alice recv --json --timeout 80
alice_pid=$SPAWNED
spawn_to bob cli bob recv --json --timeout 80
bob_pid=$SPAWNED
wait_until 20 online alice
wait_until 20 online bob

: >"$T/sent.tsv"     # text <TAB> envelope id of every send the CLI reported accepted
: >"$T/failed.txt"   # text of every send the CLI reported failed
# send_one SENDER RECIPIENT TEXT CLIENT_ID TIMEOUT: one CLI send, its outcome recorded; a
# failure must be a clear one (exit 1, one "parley: " line) and must not print a result
send_one() {
  local out err rc=0
  err=$(mktemp "$T/send-err.XXXXXX")
  out=$(cli "$1" send "$2" "$3" --client-id "$4" --timeout "$5" 2>"$err") || rc=$?
  if [ "$rc" = 0 ]; then
    [[ $out =~ ^$2$'\t'1$'\t'([0-9]+)$ ]] || { echo "bad output of accepted send $3: [$out]" >>"$T/problems.txt"; return 0; }
    printf '%s\t%s\n' "$3" "${BASH_REMATCH[1]}" >>"$T/sent.tsv"
  else
    echo "$3" >>"$T/failed.txt"
    printf '%s (exit %s): %s\n' "$3" "$rc" "$(cat "$err")" >>"$T/failures.log"
    [ "$rc" = 1 ] && [ -z "$out" ] && grep -qE '^parley: .+' "$err" ||
      echo "unclear failure of $3: exit $rc, stdout [$out], stderr [$(cat "$err")]" >>"$T/problems.txt"
  fi
  rm -f "$err"
}
: >"$T/problems.txt"

# 1. before: both directions work
for i in 1 2 3; do
  send_one carol alice "a-$i" $((1000 + i)) 30
  send_one dave bob "b-$i" $((2000 + i)) 30
done
assert_eq 6 "$(wc -l <"$T/sent.tsv")" "sends accepted before the outage"

# erin streams to alice from now until after the restart, one send after the other
streamer() {
  local i=0
  while [ ! -e "$T/stop-stream" ]; do
    i=$((i + 1))
    send_one erin alice "s-$i" $((5000 + i)) 30
  done
}
spawn streamer
streamer_pid=$SPAWNED
streamed() { grep -cP '^s-' "$T/sent.tsv" || true; }
streamed_over() { [ "$(streamed)" -gt "$1" ]; }
wait_until 30 streamed_over 1

# 2. Redis dies. The gateways and fanouts notice (not ready) but keep running.
rl_keys() { # number of rate-limit keys; fails when Redis does not answer
  local k
  k=$(redis_q --scan --pattern 'parley:rl:*') || fail "Redis does not answer SCAN"
  grep -c . <<<"$k" || true
}
n=$(rl_keys)
[ "$n" -gt 0 ] || fail "no registration rate-limit key in Redis before the restart"
stop_redis
admins=("${GW_ADMIN[1]}" "${GW_ADMIN[2]}" "${FO_ADMIN[1]}" "${FO_ADMIN[2]}")
all_readyz() { local p; for p in "${admins[@]}"; do readyz_is "$p" "$1" || return 1; done; }
wait_until 30 all_readyz 503

# a send with a short patience fails clearly; two with enough patience keep retrying
send_one carol alice "a-short" 1100 3
grep -qx "a-short" "$T/failed.txt" || fail "a send was accepted while Redis was down"
unavailable_of() { metric_sum "${GW_ADMIN[$1]}" parley_gateway_errors_total '{code="UNAVAILABLE"}'; }
unavailable_over() { [ "$(unavailable_of "$1")" -gt "$2" ]; }
base1=$(unavailable_of 1)
base2=$(unavailable_of 2)
[ "$base2" -ge 1 ] || fail "gateway 2 counted no UNAVAILABLE error for a-short"
spawn send_one carol alice "a-out" 1101 40
out_a=$SPAWNED
spawn send_one dave bob "b-out" 2101 40
out_b=$SPAWNED
# both gateways have refused a send of the patient senders at least once
wait_until 30 unavailable_over 1 "$base1"
wait_until 30 unavailable_over 2 "$base2"
for name in gw1 gw2 fo1 fo2; do _alive "$name" || fail "$name died while Redis was down"; done

# 3. an empty Redis comes back on the same port
restart_redis
# it is a new, empty Redis (the rate-limit window of the registrations is gone)
n=$(rl_keys)
assert_eq 0 "$n" "registration rate-limit keys in the new Redis"
wait_until 30 all_readyz 200
# the gateways re-set the presence of their connected devices in the new Redis
wait_until 30 online alice
wait_until 30 online bob
assert_match "$(redis_q GET parley:presence:alice:1)" '^gw1/' "alice's presence"
assert_match "$(redis_q GET parley:presence:bob:1)" '^gw2/' "bob's presence"

wait_rc "$out_a"
wait_rc "$out_b"
# the patient sends had 40 s: they must have got through after the restart
grep -qP '^a-out\t' "$T/sent.tsv" || fail "a-out not accepted after Redis came back: $(cat "$T/failures.log" 2>/dev/null)"
grep -qP '^b-out\t' "$T/sent.tsv" || fail "b-out not accepted after Redis came back: $(cat "$T/failures.log" 2>/dev/null)"

# 4. after: both directions work, delivered live
n_stream=$(streamed)
for i in 4 5 6; do
  send_one carol alice "a-$i" $((1000 + i)) 30
  send_one dave bob "b-$i" $((2000 + i)) 30
done
# the stream also got through after the restart; then it stops
wait_until 40 streamed_over "$n_stream"
touch "$T/stop-stream"
wait_rc "$streamer_pid"
assert_eq 0 "$WRC" "streamer loop"
assert_eq "" "$(cat "$T/problems.txt")" "send outcomes"
if [ -s "$T/failures.log" ]; then echo "failed sends:"; cat "$T/failures.log"; fi

# expected: what was accepted, per recipient
grep -P '^(a|s)-' "$T/sent.tsv" | sort >"$T/expect_alice.tsv"
grep -P '^b-' "$T/sent.tsv" | sort >"$T/expect_bob.tsv"
assert_eq 7 "$(grep -cP '^a-' "$T/expect_alice.tsv")" "accepted sends of carol to alice"
assert_eq 7 "$(wc -l <"$T/expect_bob.tsv")" "accepted sends to bob"
n_alice=$(wc -l <"$T/expect_alice.tsv")
echo "erin's stream: $(streamed) accepted, $(grep -c '^s-' "$T/failed.txt" || true) failed"

# received (text, id) pairs of one live recv, without the sends reported failed: a send that
# timed out on the client may still have been committed, and its delivery is no loss
received() { # name
  local l id text
  while IFS= read -r l; do
    [ -n "$l" ] || continue
    id=$(json_num "$l" id) || { echo "BAD LINE $l"; continue; }
    text=$(json_str "$l" text) || { echo "BAD LINE $l"; continue; }
    grep -qxF -- "$text" "$T/failed.txt" && [ "$text" != a-short ] && continue
    printf '%s\t%s\n' "$text" "$id"
  done <"$T/$1.out" | sort
}
got_all() { [ "$(received "$1")" = "$(cat "$T/expect_$1.tsv")" ]; }
# the live receivers got every accepted message (none had to wait for a new connection)
deadline=$((SECONDS + 30))
until got_all alice && got_all bob; do
  if [ $SECONDS -ge $deadline ]; then
    assert_eq "$(cat "$T/expect_alice.tsv")" "$(received alice)" "alice's live recv vs accepted sends"
    assert_eq "$(cat "$T/expect_bob.tsv")" "$(received bob)" "bob's live recv vs accepted sends"
  fi
  sleep 0.2
done
# printed once each (the recv prints an id once; a lost or doubly queued message shows here)
assert_eq "$n_alice" "$(received alice | grep -c .)" "lines printed by alice's recv"
assert_eq 7 "$(grep -c . "$T/bob.out")" "lines printed by bob's recv"
assert_eq "" "$(grep -E '^(a-short|BAD)' <(received alice))" "alice got the refused send or bad lines"

# every accepted message was acked by the live receivers: the queues end empty
wait_until 20 queue_empty alice
wait_until 20 queue_empty bob
assert_eq 0 "$(psql_q "SELECT coalesce(sum(queue_len), 0) FROM devices d JOIN accounts a ON a.id = d.account_id
                        WHERE a.username IN ('alice', 'bob')")" "queue_len of alice and bob"
# and exactly the accepted sends were committed (the refused one left no trace)
assert_eq 14 "$(psql_q "SELECT count(*) FROM sends WHERE client_id BETWEEN 1001 AND 2999")" "sends rows"
assert_eq 0 "$(psql_q "SELECT count(*) FROM sends WHERE client_id = 1100")" "sends rows of the refused send"
n=$(psql_q "SELECT count(*) FROM sends WHERE client_id BETWEEN 5001 AND 5999")
[ "$n" -ge "$(streamed)" ] && [ "$n" -le "$(($(streamed) + $(grep -c '^s-' "$T/failed.txt" || true)))" ] ||
  fail "sends rows of erin's stream: $n for $(streamed) accepted sends"

for p in "$alice_pid" "$bob_pid"; do
  kill -0 "$p" 2>/dev/null || fail "a live recv ended early: $(cat "$T/alice.err" "$T/bob.err")"
  stop_spawned "$p"
done
assert_eq "" "$(grep -h '^parley: ' "$T/alice.err" "$T/bob.err" | grep -v 'warning' || true)" "errors of the live receivers"
