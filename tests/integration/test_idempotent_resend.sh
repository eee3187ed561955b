#!/usr/bin/env bash
# A resend with the same client id returns the first answer (same envelope ids), stores
# nothing new, and the recipient receives the message once.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

expect_rc 0 cli bob send alice "only once" --client-id 4242
first=$OUT
assert_match "$first" $'^alice\t1\t[0-9]+$' "first send output"

expect_rc 0 cli bob send alice "only once" --client-id 4242
assert_eq "$first" "$OUT" "resend output (same envelope ids)"
# the stored answer wins even if the resent content differs: nothing new is queued
expect_rc 0 cli bob send alice "a changed resend" --client-id 4242
assert_eq "$first" "$OUT" "resend with other content"

assert_eq 1 "$(queued alice)" "envelopes queued for alice"
assert_eq 1 "$(psql_q "SELECT count(*) FROM sends WHERE client_id = 4242")" "sends rows for client id 4242"
assert_eq 1 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len"

# another client id is another message
expect_rc 0 cli bob send alice "second one" --client-id 4243
assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send output"
[ "${OUT##*$'\t'}" -gt "${first##*$'\t'}" ] || fail "new client id did not get a new, larger envelope id"
assert_eq 2 "$(queued alice)" "envelopes queued after a new client id"

expect_rc 0 cli alice recv --count 2 --timeout 15
assert_eq "$(printf 'bob\t1\tonly once\nbob\t1\tsecond one')" "$OUT" "alice's messages"
wait_until 10 queue_empty alice
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "nothing more for alice"

# after the recipient acked it, a late resend still answers from the record and queues nothing
expect_rc 0 cli bob send alice "only once" --client-id 4242
assert_eq "$first" "$OUT" "late resend output"
assert_eq 0 "$(queued alice)" "envelopes queued after a late resend"
