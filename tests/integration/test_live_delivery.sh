#!/usr/bin/env bash
# Live delivery across gateways: alice is connected to gateway 1 and receives, while bob sends
# through gateway 2. Every message arrives while alice's recv runs, intact and in order, and
# her acks empty her queue.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

spawn_to alice cli alice recv --count 3 --timeout 30
recv_pid=$SPAWNED

# alice is online once her presence names gateway 1
wait_until 15 online alice
assert_match "$(redis_q GET parley:presence:alice:1)" '^gw1/[0-9]+$' "alice's presence"

texts=("hello alice" "second message, with punctuation: ;,.!?" "third – ünïcödé ✓")
ids=()
for t in "${texts[@]}"; do
  expect_rc 0 cli bob send alice "$t"
  assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send output"
  ids+=("${OUT##*$'\t'}")
done
[ "${ids[0]}" -lt "${ids[1]}" ] && [ "${ids[1]}" -lt "${ids[2]}" ] ||
  fail "envelope ids not ascending: ${ids[*]}"

wait_rc "$recv_pid"
assert_eq 0 "$WRC" "alice's recv exit status (stderr: $(cat "$T/alice.err"))"
expected=$(printf 'bob\t1\t%s\n' "${texts[@]}")
assert_eq "$expected" "$(cat "$T/alice.out")" "alice's received messages"

# her acks deleted the rows and the queue length went back to 0
wait_until 10 queue_empty alice
assert_eq 0 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len after acks"

# nothing is delivered twice
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "second recv output"
