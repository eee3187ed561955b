#!/usr/bin/env bash
# End-to-end encryption through the real cluster with the parley CLI: registration publishes
# prekeys; first contact with and without a one-time prekey; what PostgreSQL stores never holds
# the plaintext; a tampered envelope is reported and the next one still opens; both sides
# compute the same safety number (over the account keys); a reinstall is a new device (a
# recovery kit on the new install, the old device removed): the sender follows the signed
# device list to it without a key-change warning and the safety number stays; a device row
# written straight into PostgreSQL (not in the signed list) is a ghost: sends to the account
# fail naming it with nothing queued, and what it sends is not shown; a linked second device
# gets sent transcripts; an account that starts over with a new account key is refused until
# `parley trust` (safety-number shows the new number without trusting it).
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2
register carol 1

acct() { psql_q "SELECT id FROM accounts WHERE username = '$1'"; }
otks() { # user device -> one-time prekeys the server holds
  psql_q "SELECT count(*) FROM one_time_prekeys WHERE account_id = $(acct "$1") AND device_id = ${2:-1}"
}

# adopt NEW USER DEVICE: the install registered as NEW becomes DEVICE of USER behind the
# account key's back: its keys, registration id and prekeys are written into USER's rows in
# PostgreSQL (what a compromised server could do), its home folder becomes USER's device (home
# folder USER-DEVICE). USER's signed device list does not have it: a ghost.
adopt() {
  local new=$1 user=$2 dev=$3 nid uid
  nid=$(acct "$new"); uid=$(acct "$user")
  psql_q "BEGIN;
    DELETE FROM devices WHERE account_id = $uid AND device_id = $dev;
    INSERT INTO devices (account_id, device_id, registration_id, signing_key, identity_key)
      SELECT $uid, $dev, registration_id, signing_key, identity_key FROM devices
       WHERE account_id = $nid AND device_id = 1;
    INSERT INTO device_prekeys (account_id, device_id, spk_id, spk_public, spk_signature, spk_at,
                                otk_count, otk_max_id)
      SELECT $uid, $dev, spk_id, spk_public, spk_signature, spk_at, otk_count, otk_max_id
        FROM device_prekeys WHERE account_id = $nid AND device_id = 1;
    INSERT INTO one_time_prekeys (account_id, device_id, key_id, public_key)
      SELECT $uid, $dev, key_id, public_key FROM one_time_prekeys
       WHERE account_id = $nid AND device_id = 1;
    COMMIT;" >/dev/null
  rm -rf "$T/home/$user-$dev"
  cp -a "$T/home/$new" "$T/home/$user-$dev"
  sed -i -e "s/^username=.*/username=$user/" -e "s/^device_id=.*/device_id=$dev/" \
    "$T/home/$user-$dev/identity"
}

# --- registration published a signed prekey and a batch of one-time prekeys ---------------
assert_eq 100 "$(otks bob)" "one-time prekeys after register"
assert_eq 1 "$(psql_q "SELECT count(*) FROM device_prekeys WHERE account_id = $(acct bob)
                         AND spk_id IS NOT NULL")" "signed prekey after register"
for f in identity prekeys; do
  assert_eq 600 "$(stat -c %a "$T/home/bob/$f")" "mode of bob's $f file"
done

# --- first contact takes one one-time prekey; the stored bytes are not the plaintext -------
marker="plaintext-marker-$RANDOM$RANDOM"
expect_rc 0 cli alice send bob "$marker"
assert_eq 99 "$(otks bob)" "one-time prekeys after alice's first contact"
assert_eq 1 "$(queued bob 1)" "queued for bob"
hex=$(printf '%s' "$marker" | od -An -tx1 | tr -d ' \n')
assert_eq 0 "$(psql_q "SELECT count(*) FROM envelopes WHERE position(decode('$hex', 'hex') IN content) > 0")" \
  "envelopes holding the plaintext"
assert_eq 0 "$(psql_q "SELECT count(*) FROM envelopes WHERE position(convert_to('plaintext-marker', 'UTF8') IN content) > 0")" \
  "envelopes holding part of the plaintext"
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\t%s' "$marker")" "$OUT" "bob reads alice's first message"

# a reply, and more messages both ways: the sessions continue from the home folders
expect_rc 0 cli bob send alice "hi alice"
expect_rc 0 cli alice send bob "second"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq "$(printf 'bob\t1\thi alice')" "$OUT" "alice reads bob's reply"
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tsecond')" "$OUT" "bob reads alice's second message"
assert_eq 99 "$(otks bob)" "one-time prekeys after an established session"

# --- first contact without a one-time prekey (the pool is empty) ---------------------------
psql_q "BEGIN; DELETE FROM one_time_prekeys WHERE account_id = $(acct carol);
        UPDATE device_prekeys SET otk_count = 0 WHERE account_id = $(acct carol); COMMIT" >/dev/null
expect_rc 0 cli alice send carol "no one-time prekey"
expect_rc 0 cli carol recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tno one-time prekey')" "$OUT" "carol reads a message without a one-time prekey"
# carol's login saw the empty pool and topped it up
otks_at_least() { [ "$(otks "$1")" -ge "$2" ]; } # polled: not a "$(...)" argument
wait_until 10 otks_at_least carol 10

# --- a tampered envelope is reported, acked, and the next one still opens -------------------
expect_rc 0 cli alice send bob "will be tampered"
expect_rc 0 cli alice send bob "after the tampered one"
psql_q "UPDATE envelopes SET content = overlay(content PLACING '\\xff'::bytea FROM octet_length(content) - 3)
         WHERE id = (SELECT min(id) FROM envelopes WHERE account_id = $(acct bob))" >/dev/null
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tafter the tampered one')" "$OUT" "the message after a tampered one"
assert_contains "$ERR" "cannot decrypt message" "report of the tampered message"
wait_until 10 queue_empty bob 1

# --- safety numbers: the same 60 digits on both sides --------------------------------------
expect_rc 0 cli alice safety-number bob
sn_alice=$OUT
assert_match "$sn_alice" '^[0-9]{5}( [0-9]{5}){11}$' "safety number format"
expect_rc 0 cli bob safety-number alice
assert_eq "$sn_alice" "$OUT" "bob's safety number with alice"
expect_rc 0 cli alice safety-number carol
[ "$OUT" != "$sn_alice" ] || fail "safety numbers with bob and carol are the same"
expect_rc 1 cli alice safety-number nobody_here
assert_contains "$ERR" "unknown account nobody_here" "safety number of an unknown account"

# --- bob reinstalls: a new install recovers the account key, the old device goes ------------
export PARLEY_PASSPHRASE="e2ee test passphrase"
expect_rc 0 cli bob recovery-kit "$T/bob.kit"
expect_rc 0 cli bob-new recover "$T/bob.kit"
assert_eq "recovered bob as device 2" "$OUT" "recover output"
expect_rc 0 cli bob-new devices remove 1
assert_eq "removed device 1" "$OUT" "removal of the old install"
expect_rc 0 cli bob-new devices bob
assert_eq "$(printf '2\tthis device')" "$OUT" "bob's signed list after the reinstall"
# alice's session was with the old install: her library follows bob's signed list to the new
# device; a new device in a verified list is not a key change
expect_rc 0 cli alice send bob "after your reinstall"
assert_match "$OUT" $'^bob\t2\t[0-9]+$' "send output after the reinstall"
assert_eq "" "$ERR" "warnings on the send after the reinstall"
expect_rc 0 cli bob-new recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tafter your reinstall')" "$OUT" "the new install reads it"
expect_rc 0 cli bob-new send alice "new install here"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq "$(printf 'bob\t2\tnew install here')" "$OUT" "alice reads the new install"
# the safety number is over the account keys: unchanged
expect_rc 0 cli alice safety-number bob
assert_eq "$sn_alice" "$OUT" "safety number after bob's reinstall"
assert_eq "" "$ERR" "safety-number after bob's reinstall"
# the removed install is out
expect_rc 1 cli bob recv --count 1 --timeout 5

# --- a device row written straight into PostgreSQL is a ghost ------------------------------
register alicetwo 1
adopt alicetwo alice 2
before=$(queued alice)
expect_rc 1 cli bob-new send alice "must not reach a ghost"
assert_contains "$ERR" "alice's device 2 is not in alice's signed device list (added by the server?); nothing was sent" \
  "ghost reported by the sender"
assert_eq "$before" "$(queued alice)" "envelopes queued for alice after the refused send"
expect_rc 0 cli bob-new devices alice
assert_eq "1" "$OUT" "alice's signed list as bob sees it"
assert_contains "$ERR" "device 2 of alice, which is not in alice's signed device list" "ghost in devices"
# what the ghost sends is not shown: carol's client reports and acks it
run cli alice-2 send carol "from a ghost"
[ "$RC" = 0 ] || assert_contains "$ERR" "alice" "the ghost's own send"
expect_rc 3 cli carol recv --count 1 --timeout 5
assert_eq "" "$OUT" "carol shows nothing from the ghost"
assert_contains "$ERR" "device 2 of alice is not in alice's signed device list" "ghost message reported"
wait_until 10 queue_empty carol 1
psql_q "BEGIN;
  DELETE FROM one_time_prekeys WHERE account_id = $(acct alice) AND device_id = 2;
  DELETE FROM device_prekeys WHERE account_id = $(acct alice) AND device_id = 2;
  DELETE FROM devices WHERE account_id = $(acct alice) AND device_id = 2;
  COMMIT" >/dev/null
expect_rc 0 cli bob-new send alice "after the ghost left"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq "$(printf 'bob\t2\tafter the ghost left')" "$OUT" "alice after the ghost left"

# --- alice links a second device: her sends are copied to it -------------------------------
link_device alice-2 alice 2
assert_eq 2 "$LINKED_ID" "id of alice's second device"
expect_rc 0 cli alice devices alice
assert_eq "$(printf '1\tthis device\n2')" "$OUT" "alice's devices"
# linking changes no safety number
expect_rc 0 cli bob-new safety-number alice
assert_eq "$sn_alice" "$OUT" "bob's safety number with alice after the link"
# a linked device holds no account key
expect_rc 1 cli alice-2 devices remove 1
assert_contains "$ERR" "only a device holding the account key" "removal from a linked device"
expect_rc 0 cli alice send carol "copied to my other device"
assert_match "$OUT" $'^carol\t1\t[0-9]+$' "send output with a copy"
expect_rc 0 cli carol recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tcopied to my other device')" "$OUT" "carol reads it"
expect_rc 0 cli alice-2 recv --count 1 --timeout 20 --json
assert_contains "$OUT" '"from":"alice","to":"carol","device":1' "transcript on alice's device 2"
assert_contains "$OUT" '"text":"copied to my other device"' "transcript text"
# a resend with the same client id queues neither the message nor its transcript again
copies=$(queued alice 2)
expect_rc 0 cli alice send carol "sent twice" --client-id 4242
expect_rc 0 cli alice send carol "sent twice" --client-id 4242
assert_eq $((copies + 1)) "$(queued alice 2)" "transcripts queued for a message sent twice"
expect_rc 0 cli carol recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tsent twice')" "$OUT" "carol reads the message sent twice once"
expect_rc 0 cli alice-2 recv --count 1 --timeout 20
assert_eq "$(printf 'alice->carol\t1\tsent twice')" "$OUT" "the transcript of the message sent twice"
# writing to her own account reaches the other device as an ordinary message
expect_rc 0 cli alice send alice "note to self"
assert_match "$OUT" $'^alice\t2\t[0-9]+$' "send to own account"
expect_rc 0 cli alice-2 recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tnote to self')" "$OUT" "note to self on device 2"
# and the linked device writes back to the primary
expect_rc 0 cli alice-2 send alice "from the laptop"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t2\tfrom the laptop')" "$OUT" "the primary reads its sibling"

# --- carol starts over: a new account key ---------------------------------------------------
# (her account was deleted and the name registered again from a new install): alice refuses
# the new key until she trusts it; safety-number shows the new number but does not trust it
expect_rc 0 cli alice safety-number carol
sn_old=$OUT
psql_q "DELETE FROM accounts WHERE username = 'carol'" >/dev/null
rm -rf "$T/home/carol"
register carol 1
expect_rc 1 cli alice send carol "to the new carol"
assert_contains "$ERR" "the account key of carol is not the one pinned on first contact" \
  "send to an account with a new key"
assert_contains "$ERR" "parley trust carol" "what to do about a new key"
expect_rc 1 cli alice safety-number carol
sn_new=$OUT
assert_match "$sn_new" '^[0-9]{5}( [0-9]{5}){11}$' "the new key's safety number"
[ "$sn_new" != "$sn_old" ] || fail "the safety number did not change with carol's account key"
assert_contains "$ERR" 'accept the key with `parley trust carol`' "safety-number of a new key"
expect_rc 1 cli alice send carol "still refused"
assert_contains "$ERR" "not the one pinned" "safety-number alone does not trust the new key"
expect_rc 0 cli alice trust carol
assert_eq "$sn_new" "$OUT" "trust prints the number it trusts"
assert_contains "$ERR" "now trusting the new account key of carol" "trust"
expect_rc 0 cli alice send carol "to the new carol"
expect_rc 0 cli carol recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tto the new carol')" "$OUT" "the new carol reads it"
expect_rc 0 cli carol safety-number alice
assert_eq "$sn_new" "$OUT" "the new carol's safety number with alice"
expect_rc 0 cli alice trust carol
assert_eq "$sn_new" "$OUT" "trust of the key already trusted"
assert_contains "$ERR" "the account key of carol is the one already trusted" "trust again"

# --- local state: every file 0600, folders 0700 ---------------------------------------------
bad=$(find "$T/home/alice" \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \))
assert_eq "" "$bad" "files and folders with other modes"
