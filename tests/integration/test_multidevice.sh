#!/usr/bin/env bash
# Multi-device accounts through the real cluster with the parley CLI: linking a second and a
# third device over the provisioning channel (single-use code); a message to the account reaches
# every device; a message sent from one device appears on its siblings; a device row inserted
# straight into PostgreSQL gets nothing and the sender reports it; removal drops the device's
# queue, prekeys and live connection and stops delivery to it; at most 8 devices; a rolled-back
# or forked device list is refused by senders; a recovery kit restores the account key on a
# new device.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

acct() { psql_q "SELECT id FROM accounts WHERE username = '$1'"; }
ndevices() { psql_q "SELECT count(*) FROM devices WHERE account_id = $(acct "$1")"; }
list_version() { psql_q "SELECT devlist_version FROM accounts WHERE username = '$1'"; }

# --- link a second device (through the other gateway) and a third --------------------------
link_device alice-2 alice 2
assert_eq 2 "$LINKED_ID" "id of alice's second device"
link_device alice-3 alice 1
assert_eq 3 "$LINKED_ID" "id of alice's third device"
assert_eq 3 "$(ndevices alice)" "alice's device rows"
assert_eq 3 "$(list_version alice)" "alice's device list version"
# a linked device holds no account key; the primary does
assert_not_contains "$(cat "$T/home/alice-2/identity")" "account_sk=" "alice-2 identity"
assert_contains "$(cat "$T/home/alice/identity")" "account_sk=" "alice identity"
# linked devices published prekeys
assert_eq 1 "$(psql_q "SELECT count(*) FROM device_prekeys WHERE account_id = $(acct alice)
                         AND device_id = 3 AND spk_id IS NOT NULL")" "alice-3 signed prekey"

# a code is single use
link_start alice-x 1
expect_rc 0 cli alice approve "$LINK_CODE"
wait_rc "$LINK_PID"
expect_rc 1 cli alice approve "$LINK_CODE"
assert_contains_i "$ERR" "link code" "second use of a link code"
# the one that got in is device 4: remove it again below with the others
X_ID=4
# only a device holding the account key approves
link_start alice-y 1
expect_rc 1 cli alice-2 approve "$LINK_CODE"
assert_contains "$ERR" "account key" "approve on a linked device"
stop_spawned "$LINK_PID"
expect_rc 0 cli alice devices remove "$X_ID"
assert_eq "removed device $X_ID" "$OUT" "devices remove output"

# --- a message to the account reaches every device -----------------------------------------
expect_rc 0 cli bob send alice "to all of alice"
for h in alice alice-2 alice-3; do
  expect_rc 0 cli "$h" recv --count 1 --timeout 20
  assert_eq "$(printf 'bob\t1\tto all of alice')" "$OUT" "$h reads bob's message"
done

# --- a message sent from one device appears on its siblings --------------------------------
expect_rc 0 cli alice-2 send bob "from alice's laptop"
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t2\tfrom alice'"'"'s laptop')" "$OUT" "bob reads alice-2"
for h in alice alice-3; do
  expect_rc 0 cli "$h" recv --count 1 --timeout 20 --json
  assert_contains "$OUT" '"from":"alice","to":"bob","device":2' "transcript on $h"
  assert_contains "$OUT" "\"text\":\"from alice's laptop\"" "transcript text on $h"
done

# --- a device row inserted straight into PostgreSQL gets nothing; the sender reports it -----
before=$(queued alice)
psql_q "INSERT INTO devices (account_id, device_id, registration_id, signing_key, identity_key)
        VALUES ($(acct alice), 9, 77, decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 32), 'hex'))" >/dev/null
expect_rc 1 cli bob send alice "must not reach a ghost"
assert_contains "$ERR" "device 9 is not in alice's signed device list" "ghost report"
assert_eq 0 "$(queued alice 9)" "envelopes for the ghost device"
assert_eq "$before" "$(queued alice)" "envelopes queued for alice after the refused send"
# alice's own devices refuse it too when they send (their transcripts would reach it)
expect_rc 1 cli alice-2 send bob "a transcript must not reach a ghost"
assert_contains "$ERR" "device 9 is not in alice's signed device list" "ghost report on the own account"
assert_eq 0 "$(queued alice 9)" "envelopes for the ghost device after alice-2's send"
psql_q "DELETE FROM devices WHERE account_id = $(acct alice) AND device_id = 9" >/dev/null
expect_rc 0 cli bob send alice "after the ghost left"
for h in alice alice-2 alice-3; do
  expect_rc 0 cli "$h" recv --count 1 --timeout 20
  assert_eq "$(printf 'bob\t1\tafter the ghost left')" "$OUT" "$h after the ghost left"
done

# --- removal: queue, prekeys and live connection go; delivery stops ------------------------
expect_rc 0 cli bob send alice "queued for alice-3 before its removal"
assert_eq 1 "$(queued alice 3)" "alice-3's queue before removal"
for h in alice alice-2; do expect_rc 0 cli "$h" recv --count 1 --timeout 20; done
# alice-3 online, waiting
spawn_to recv3 cli alice-3 recv --timeout 60 --count 100
recv3=$SPAWNED
wait_until 20 online alice 3
expect_rc 1 cli alice devices remove 1
assert_contains "$ERR" "this device" "removing the device the command runs on"
expect_rc 0 cli alice devices remove 3
assert_eq "removed device 3" "$OUT" "devices remove output"
wait_rc "$recv3"
[ "$WRC" != 0 ] || fail "alice-3's recv kept running after its removal"
assert_contains_i "$(cat "$T/recv3.err")" "removed" "alice-3 told why it was disconnected"
assert_eq 0 "$(psql_q "SELECT count(*) FROM devices WHERE account_id = $(acct alice) AND device_id = 3")" "alice-3's row"
assert_eq 0 "$(queued alice 3)" "alice-3's queue after removal"
assert_eq 0 "$(psql_q "SELECT count(*) FROM one_time_prekeys WHERE account_id = $(acct alice) AND device_id = 3")" \
  "alice-3's one-time prekeys after removal"
expect_rc 1 cli alice-3 recv --count 1 --timeout 5
expect_rc 0 cli bob send alice "after the removal"
assert_eq 0 "$(queued alice 3)" "nothing queued for the removed device"
for h in alice alice-2; do
  expect_rc 0 cli "$h" recv --count 1 --timeout 20
  assert_eq "$(printf 'bob\t1\tafter the removal')" "$OUT" "$h after the removal"
done
expect_rc 0 cli alice devices alice
assert_eq "$(printf '1\n2')" "$(cut -f1 <<<"$OUT" | tr -d ' *')" "alice's verified list after the removal"

# --- at most 8 devices ----------------------------------------------------------------------
for n in 3 4 5 6 7 8; do link_device "alice-l$n" alice 1; done
assert_eq 8 "$(ndevices alice)" "alice's device rows at the limit"
link_start alice-l9 1
expect_rc 1 cli alice approve "$LINK_CODE"
assert_contains "$ERR" "already has 8 devices" "approve beyond the limit"
wait_rc "$LINK_PID"
[ "$WRC" != 0 ] || fail "link of a ninth device succeeded"
assert_contains "$(cat "$T/link-alice-l9.err")" "8 devices" "the new device is told why"
assert_eq 8 "$(ndevices alice)" "alice's device rows after the refusal"
for n in 3 4 5 6 7 8; do
  expect_rc 0 cli alice devices remove "$(sed -n 's/^device_id=//p' "$T/home/alice-l$n/identity")"
done
assert_eq 2 "$(ndevices alice)" "alice's device rows after removing the extra ones"

# --- a rolled-back device list is refused by senders ----------------------------------------
expect_rc 0 cli bob send alice "bob pins the current list"
v=$(list_version alice)
aid=$(acct alice)
psql_q "CREATE TABLE saved_list AS SELECT * FROM device_lists WHERE account_id = $aid AND version = $v;
        DELETE FROM device_lists WHERE account_id = $aid AND version = $v;
        UPDATE accounts SET devlist_version = $((v - 1)) WHERE id = $aid" >/dev/null
expect_rc 1 cli bob send alice "to a rolled-back list"
assert_contains_i "$ERR" "rolled back" "rollback report"
psql_q "INSERT INTO device_lists SELECT * FROM saved_list; DROP TABLE saved_list;
        UPDATE accounts SET devlist_version = $v WHERE id = $aid" >/dev/null
expect_rc 0 cli bob send alice "list restored"

# --- a forked device list is refused by senders ---------------------------------------------
# a copy of alice's primary from now signs a different next version than the real one
rm -rf "$T/home/alice-fork"
cp -a "$T/home/alice" "$T/home/alice-fork"
link_device alice-f alice 1
fid=$LINKED_ID
expect_rc 0 cli bob send alice "bob pins the list with alice-f"
# the server "forgets" that version; the stale copy then publishes its own (removing alice-2)
psql_q "DELETE FROM device_lists WHERE account_id = $aid AND version = $((v + 1));
        DELETE FROM devices WHERE account_id = $aid AND device_id = $fid;
        UPDATE accounts SET devlist_version = $v WHERE id = $aid" >/dev/null
expect_rc 0 cli alice-fork devices remove 2
assert_eq "$((v + 1))" "$(list_version alice)" "version of the forked list"
expect_rc 1 cli bob send alice "to a forked list"
assert_contains_i "$ERR" "fork" "fork report"
# the real primary sees its own account forked as well
expect_rc 1 cli alice send bob "from the real primary"
assert_contains_i "$ERR" "fork" "fork report on the own account"

# --- recovery kit ---------------------------------------------------------------------------
register carol 1
export PARLEY_PASSPHRASE="correct horse battery staple"
expect_rc 0 cli carol recovery-kit "$T/carol.kit"
assert_eq 600 "$(stat -c %a "$T/carol.kit")" "mode of the recovery kit"
assert_not_contains "$(cat "$T/carol.kit")" "$(sed -n 's/^account_sk=//p' "$T/home/carol/identity")" "kit content"
expect_rc 1 cli carol recovery-kit "$T/carol.kit"
PARLEY_PASSPHRASE="wrong horse battery staple" expect_rc 1 cli carol-r recover "$T/carol.kit"
assert_contains "$ERR" "wrong passphrase" "recover with a wrong passphrase"
expect_rc 0 cli carol-r recover "$T/carol.kit"
assert_match "$OUT" '^recovered carol as device [0-9]+$' "recover output"
expect_rc 0 cli bob send carol "to carol's devices"
for h in carol carol-r; do
  expect_rc 0 cli "$h" recv --count 1 --timeout 20
  assert_eq "$(printf 'bob\t1\tto carol'"'"'s devices')" "$OUT" "$h reads bob's message"
done
# the recovered device holds the account key: it can remove the old one
expect_rc 0 cli carol-r devices remove 1
expect_rc 0 cli bob send carol "only the recovered device"
assert_eq 0 "$(queued carol 1)" "nothing for carol's removed first device"
expect_rc 0 cli carol-r recv --count 1 --timeout 20
assert_eq "$(printf 'bob\t1\tonly the recovered device')" "$OUT" "the recovered device reads it"

echo "PASS $TEST_NAME"
