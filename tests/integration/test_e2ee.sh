#!/usr/bin/env bash
# End-to-end encryption through the real cluster with the parley CLI: registration publishes
# prekeys; first contact with and without a one-time prekey; what PostgreSQL stores never holds
# the plaintext; a tampered envelope is reported and the next one still opens; a recipient that
# reinstalls (new keys, new registration id) gets the next message after the sender's library
# repaired the session, and the sender is told the keys changed; a send is copied to the
# sender's own other device as a sent transcript; both sides compute the same safety number.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2
register carol 1

acct() { psql_q "SELECT id FROM accounts WHERE username = '$1'"; }
otks() { # user device -> one-time prekeys the server holds
  psql_q "SELECT count(*) FROM one_time_prekeys WHERE account_id = $(acct "$1") AND device_id = ${2:-1}"
}

# adopt NEW USER DEVICE: the install registered as NEW becomes DEVICE of USER (a new device,
# or a reinstall of an existing one): its keys, registration id and prekeys move over on the
# server, its home folder becomes USER's device (home folder USER-DEVICE).
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
wait_until 10 test "$(otks carol)" -ge 10

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

# --- bob reinstalls device 1: new keys, new registration id --------------------------------
register bobnew 1
old_reg=$(psql_q "SELECT registration_id FROM devices WHERE account_id = $(acct bob) AND device_id = 1")
adopt bobnew bob 1
new_reg=$(psql_q "SELECT registration_id FROM devices WHERE account_id = $(acct bob) AND device_id = 1")
[ "$old_reg" != "$new_reg" ] || fail "the reinstall kept the registration id"
# alice's session is with the old install: the server calls it stale, the library fetches the
# new bundle, starts a new session and sends again; alice is told the keys changed
expect_rc 0 cli alice send bob "after your reinstall"
assert_match "$OUT" $'^bob\t1\t[0-9]+$' "send output after the reinstall"
assert_contains "$ERR" "the keys of bob changed" "key change reported to the sender"
expect_rc 0 cli bob-1 recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tafter your reinstall')" "$OUT" "the reinstalled device reads it"
# the reinstalled bob writes back: alice's library replaces the session on her side
expect_rc 0 cli bob-1 send alice "new install here"
expect_rc 0 cli alice recv --count 1 --timeout 20
assert_eq "$(printf 'bob\t1\tnew install here')" "$OUT" "alice reads the reinstalled device"
# the safety number changed, and saying so once is enough
expect_rc 0 cli alice safety-number bob
[ "$OUT" != "$sn_alice" ] || fail "the safety number did not change with bob's keys"
assert_contains "$ERR" "keys of bob changed" "safety-number reports the change"
expect_rc 0 cli alice safety-number bob
assert_eq "" "$ERR" "safety-number after the change was looked at"

# --- alice gets a second device: her sends are copied to it --------------------------------
register alicetwo 1
adopt alicetwo alice 2
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

# --- local state: every file 0600, folders 0700 ---------------------------------------------
bad=$(find "$T/home/alice" \( -type f ! -perm 600 \) -o \( -type d ! -perm 700 \))
assert_eq "" "$bad" "files and folders with other modes"
