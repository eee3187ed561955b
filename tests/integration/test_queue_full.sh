#!/usr/bin/env bash
# Queue limit (fanout queue_max): with queue_max 3, three sends to an offline device are
# accepted and the fourth is refused as a whole with QUEUE_FULL (the CLI exits 1 and says so),
# storing nothing. The device drains the three in order; once its acks removed them, sends are
# accepted again.
source "$(dirname "$0")/lib.sh"

FO_EXTRA[1]="queue_max = 3"
FO_EXTRA[2]="queue_max = 3"
start_cluster
register alice 1
register bob 2

ids=()
for i in 1 2 3; do
  expect_rc 0 cli bob send alice "q-$i" --client-id $((500 + i))
  assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send q-$i output"
  ids+=("${OUT##*$'\t'}")
done
assert_eq 3 "$(queued alice 1)" "envelopes queued for alice"

# the fourth: refused, with a message naming the full queue; not retried into acceptance
expect_rc 1 cli bob send alice "q-4" --client-id 504 --timeout 20
echo "refused send: $ERR"
assert_eq "" "$OUT" "stdout of the refused send"
assert_contains "$ERR" "parley: " "stderr of the refused send"
assert_contains_i "$ERR" "queue full" "stderr of the refused send"
assert_contains "$ERR" "alice" "stderr of the refused send"
# nothing of it stored: no envelope, no idempotency record, queue length unchanged
assert_eq 3 "$(queued alice 1)" "envelopes queued for alice after the refusal"
assert_eq 0 "$(psql_q "SELECT count(*) FROM sends WHERE client_id = 504")" "sends rows of the refused send"
assert_eq 3 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len after the refusal"
rejected=$(($(metric_sum "${FO_ADMIN[1]}" parley_fanout_sends_rejected_total '{reason="queue_full"}') +
            $(metric_sum "${FO_ADMIN[2]}" parley_fanout_sends_rejected_total '{reason="queue_full"}')))
assert_eq 1 "$rejected" "queue_full rejections counted by the fanouts"

# the three accepted ones arrive, in order, and nothing else
expect_rc 0 cli alice recv --json --count 3 --timeout 20
got_ids=$(while IFS= read -r l; do json_num "$l" id; done <<<"$OUT")
got_texts=$(while IFS= read -r l; do json_str "$l" text; done <<<"$OUT")
assert_eq "$(printf '%s\n' "${ids[@]}")" "$got_ids" "ids drained"
assert_eq "$(printf 'q-%s\n' 1 2 3)" "$got_texts" "texts drained"
wait_until 10 queue_empty alice 1
assert_eq 0 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len after the acks"

# room again: a new send is accepted and delivered (and the refused one never shows up)
expect_rc 0 cli bob send alice "q-5"
assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send q-5 output"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq $'bob\t1\tq-5' "$OUT" "message after the queue emptied"
wait_until 10 queue_empty alice 1
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "recv after everything was acked"
