#!/usr/bin/env bash
# A send must address exactly the recipient's current devices with their registration ids
# (DESIGN invariant 5). Wrong device, wrong registration id, an extra device, a missing device
# or the sender's own sending device -> DEVICE_MISMATCH, and nothing is queued.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 1

reg_of() { # user device -> registration id
  psql_q "SELECT d.registration_id FROM devices d JOIN accounts a ON a.id = d.account_id
           WHERE a.username = '$1' AND d.device_id = $2"
}
bob_reg=$(reg_of bob 1)
alice_reg=$(reg_of alice 1)
wrong_reg=$((bob_reg % 16380 + 1))
all_rows() { psql_q "SELECT count(*) FROM envelopes"; }
sends_rows() { psql_q "SELECT count(*) FROM sends"; }

alice=(--home "$(home_of alice)")
before=$(all_rows)
before_sends=$(sends_rows)

# the error names what to repair (the probe prints missing=, extra=, stale= lists)
mismatch_line() { grep -m1 'code=DEVICE_MISMATCH' <<<"$OUT"; }

# unknown device: device 1 is missing, device 2 is extra
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes bob "2:$bob_reg" --expect-error DEVICE_MISMATCH
assert_contains "$(mismatch_line)" " missing=1 extra=2 stale=" "mismatch lists"
# stale registration id
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes bob "1:$wrong_reg" --expect-error DEVICE_MISMATCH
assert_contains "$(mismatch_line)" " missing= extra= stale=1" "mismatch lists"
# the right device plus one that does not exist
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes bob "1:$bob_reg,3:$bob_reg" --expect-error DEVICE_MISMATCH
assert_contains "$(mismatch_line)" " missing= extra=3 stale=" "mismatch lists"
# to her own account, addressing the sending device itself
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes alice "1:$alice_reg" --expect-error DEVICE_MISMATCH
assert_contains "$(mismatch_line)" " missing= extra=1 stale=" "mismatch lists"

assert_eq "$before" "$(all_rows)" "envelopes after rejected sends"
assert_eq "$before_sends" "$(sends_rows)" "sends rows after rejected sends"

# the probe really tells a mismatch from an accepted send
run probe 1 "${alice[@]}" --send-raw-envelopes bob "1:$bob_reg" --expect-error DEVICE_MISMATCH
[ "$RC" != 0 ] || fail "probe met --expect-error DEVICE_MISMATCH on a correct send: $OUT"
assert_eq $((before + 1)) "$(all_rows)" "envelopes after one correct send"
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes bob "1:$bob_reg" --expect-send-ok
assert_eq $((before + 2)) "$(all_rows)" "envelopes after two correct sends"

# bob gets a second device (as a later device-linking step would add it): a send to device 1
# alone is now missing device 2, and the CLI, which fetches the device list, addresses both.
# Its keys are those of a real install (registered as bobtwo), so messages to it can be
# encrypted once it has published prekeys.
register bobtwo 1
bob_id=$(psql_q "SELECT id FROM accounts WHERE username = 'bob'")
two_id=$(psql_q "SELECT id FROM accounts WHERE username = 'bobtwo'")
# added by the next signed device list (a row written straight into the table would be a
# device senders refuse to encrypt to)
expect_rc 0 timeout 60 "$PARLEY_BIN/tests/tools/parley-devlist-drive" --home "$(home_of bob)" \
  --server "${GW_URL[1]}" --publish "addhome=$(home_of bobtwo)"
assert_line "$OUT" '^published v=2 added=2 removed=-$' "bob's list with the second device"
expect_rc 0 cli alice devices bob
assert_eq "$(printf '1\n2')" "$OUT" "bob's devices"

before=$(all_rows)
expect_rc 0 probe 1 "${alice[@]}" --send-raw-envelopes bob "1:$bob_reg" --expect-error DEVICE_MISMATCH
assert_contains "$(mismatch_line)" " missing=2 extra= stale=" "mismatch lists"
assert_eq "$before" "$(all_rows)" "envelopes after a send missing a device"

# a device without prekeys cannot be written to: a clear error, nothing queued
expect_rc 1 cli alice send bob "to both devices"
assert_contains "$ERR" "device 2 of bob has not published its prekeys yet" "send to a device without prekeys"
assert_eq "$before" "$(all_rows)" "envelopes after a send to a device without prekeys"

psql_q "INSERT INTO device_prekeys (account_id, device_id, spk_id, spk_public, spk_signature, spk_at)
        SELECT $bob_id, 2, spk_id, spk_public, spk_signature, spk_at FROM device_prekeys
         WHERE account_id = $two_id AND device_id = 1" >/dev/null
expect_rc 0 cli alice send bob "to both devices"
assert_match "$OUT" $'^bob\t1\t[0-9]+\nbob\t2\t[0-9]+$' "send output for two devices"
assert_eq $((before + 2)) "$(all_rows)" "envelopes after a send to both devices"
assert_eq 1 "$(queued bob 2)" "envelopes queued for bob's device 2"

# unknown recipient
expect_rc 1 cli alice send nobody_here "hello?"
assert_match "$ERR" '^parley: ' "stderr for an unknown recipient"
