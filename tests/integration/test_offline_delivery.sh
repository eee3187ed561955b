#!/usr/bin/env bash
# Offline delivery: five messages sent while alice is offline wait in PostgreSQL; when she
# connects she drains all five in order, and her acks delete the rows.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

ids=()
for i in 1 2 3 4 5; do
  expect_rc 0 cli bob send alice "offline message $i"
  assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send output"
  ids+=("${OUT##*$'\t'}")
done

# the five envelopes are committed, in send order, for alice's device
assert_eq 5 "$(queued alice 1)" "envelopes queued for alice"
assert_eq "$(printf '%s\n' "${ids[@]}")" \
  "$(psql_q "SELECT e.id FROM envelopes e JOIN accounts a ON a.id = e.account_id
              WHERE a.username = 'alice' ORDER BY e.id")" "queued envelope ids"
assert_eq 5 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len"
# the server stores ciphertext only
assert_eq 0 "$(psql_q "SELECT count(*) FROM envelopes WHERE position(convert_to('offline message', 'UTF8') IN content) > 0")" \
  "envelopes containing the plaintext"

expect_rc 0 cli alice recv --count 5 --timeout 20
assert_eq "$(printf 'bob\t1\toffline message %s\n' 1 2 3 4 5)" "$OUT" "drained messages"

# acks deleted every row of that device and the queue length followed
wait_until 10 queue_empty alice 1
assert_eq 0 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len after acks"

# and nothing comes back on the next connection
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "recv after the drain"
