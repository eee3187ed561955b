#!/usr/bin/env bash
# Signed device lists on the server, through the real cluster, driven by parley-devlist-drive
# (which signs lists with the account key of a registered home and makes up device keys):
# Register stores list version 1 and refuses a missing or wrong one; GetDevices serves the
# account key and the lists per known_version; a published version adds a device that can then
# authenticate; refused lists (bad signature, not the next version, broken chain, changed keys,
# a reused id, 9 devices, another account) change nothing; removal closes the device's live
# connection with 4003 on either gateway, deletes its queue and prekeys, and its auth and sends
# addressing it fail; an account session (device 0, account key) may read and publish lists
# but not send; an account from before signed lists (version 0) gets its first list from the
# drive, and from its primary's first login with the parley CLI (refused by senders until then;
# not signed again once a list was verified); a client 40 versions behind pages through the
# chain (GetDevices serves the oldest 32 from its known version).
source "$(dirname "$0")/lib.sh"

DL_BIN=$PARLEY_BIN/tests/tools/parley-devlist-drive
[ -x "$DL_BIN" ] || fail "devlist drive missing: $DL_BIN"
# dl USER I ARGS...: the drive with USER's home through gateway I
dl() {
  local user=$1 i=$2; shift 2
  timeout 60 "$DL_BIN" --home "$(home_of "$user")" --server "${GW_URL[$i]}" --timeout 40 "$@"
}
acct() { psql_q "SELECT id FROM accounts WHERE username = '$1'"; }
# state USER: current version | device rows | stored versions | envelopes | prekey rows
state() {
  psql_q "SELECT a.devlist_version
     || '|' || coalesce((SELECT string_agg(d.device_id::text, ',' ORDER BY d.device_id)
                           FROM devices d WHERE d.account_id = a.id), '')
     || '|' || (SELECT string_agg(l.version::text, ',' ORDER BY l.version)
                  FROM device_lists l WHERE l.account_id = a.id)
     || '|' || (SELECT count(*) FROM envelopes e WHERE e.account_id = a.id)
     || '|' || (SELECT count(*) FROM one_time_prekeys k WHERE k.account_id = a.id)
     FROM accounts a WHERE a.username = '$1'"
}
prekey_rows() { # user device -> signed + one-time prekey rows
  psql_q "SELECT (SELECT count(*) FROM device_prekeys WHERE account_id = $(acct "$1") AND device_id = $2)
               + (SELECT count(*) FROM one_time_prekeys WHERE account_id = $(acct "$1") AND device_id = $2)"
}
lines_matching() { grep -cE -- "$2" <<<"$1" || true; }

start_cluster
register alice 1
register bob 2

# --- Register stores version 1; GetDevices serves it with the account key --------------------
assert_eq "1|1|1|0|$(psql_q "SELECT count(*) FROM one_time_prekeys WHERE account_id = $(acct alice)")" \
  "$(state alice)" "alice after register"
expect_rc 0 dl alice 1 --get 0
assert_line "$OUT" '^auth device=1 queued=0$' "primary auth"
assert_line "$OUT" '^devices latest=1 key=match rows=1 lists=1$' "GetDevices after register"
assert_line "$OUT" '^list v=1 sig=ok chain=first devs=1 max=1$' "list version 1"

# --- Register without a valid first list is refused (and creates nothing) --------------------
for kind in none badsig version2 twodevices wrongkey other; do
  expect_rc 0 "$DL_BIN" --server "${GW_URL[1]}" --register "$kind" "nolist_$kind"
  case $kind in
    badsig) assert_line "$OUT" '^error INVALID_SIGNATURE ' "register with list $kind" ;;
    *) assert_line "$OUT" '^error INVALID_ARGUMENT ' "register with list $kind" ;;
  esac
done
assert_contains "$OUT" "device 1" "message of a wrong first list"
assert_eq 0 "$(psql_q "SELECT count(*) FROM accounts WHERE username LIKE 'nolist_%'")" \
  "accounts of refused registrations"
expect_rc 0 "$DL_BIN" --server "${GW_URL[2]}" --register ok listed_ok
assert_eq "registered listed_ok" "$OUT" "register with a hand-made valid list"

# --- version 2 adds a made-up device; it authenticates (other gateway) ------------------------
expect_rc 0 dl alice 1 --publish add=phone
assert_eq "published v=2 added=2 removed=-" "$(tail -n 1 <<<"$OUT")" "publish v2"
expect_rc 0 dl alice 2 --as dev:phone:2 --get 0
assert_line "$OUT" '^auth device=2 queued=0$' "the added device authenticates"
assert_line "$OUT" '^devices latest=2 key=match rows=1,2 lists=2$' "GetDevices known 0: latest only"
assert_line "$OUT" '^list v=2 sig=ok chain=first devs=1,2 max=2$' "list version 2"

# --- GetDevices known_version -------------------------------------------------------------
expect_rc 0 dl bob 2 --get-of alice 1 --get-of alice 2 --get-of alice 3
assert_line "$OUT" '^devices latest=2 key=- rows=1,2 lists=1,2$' "known 1: versions 1 and 2"
assert_line "$OUT" '^list v=2 sig=ok chain=ok devs=1,2 max=2$' "version 2 chains to version 1"
assert_line "$OUT" '^devices latest=2 key=- rows=1,2 lists=2$' "known 2: the known version itself"
assert_line "$OUT" '^devices latest=2 key=- rows=1,2 lists=-$' "known 3: nothing newer"
expect_rc 0 dl bob 2 --get-of nobody_here 0
assert_line "$OUT" '^error UNKNOWN_ACCOUNT ' "GetDevices of an unknown account"

# --- refusals change nothing -------------------------------------------------------------------
before=$(state alice)
refused0=$(metric_sum "${GW_ADMIN[1]}" parley_gateway_device_lists_refused_total)
expect_rc 0 dl alice 1 \
  --publish add=x,badsig --publish add=x,signer=mallory \
  --publish add=x,version=2 --publish add=x,version=4 --publish add=x,version=2,badprev \
  --publish add=x,badprev \
  --publish rekey=2 --publish fill=9 --publish add=x,account=bob
assert_eq 2 "$(lines_matching "$OUT" '^error INVALID_SIGNATURE ')" "bad signatures"
assert_eq 4 "$(lines_matching "$OUT" '^error DEVICE_LIST_CONFLICT .*fetch it')" \
  "same version, skipped version, wrong prev_hash"
assert_line "$OUT" '^error INVALID_ARGUMENT .*changes the keys of a listed device' "changed keys"
assert_line "$OUT" '^error TOO_MANY_DEVICES ' "9 devices"
assert_line "$OUT" '^error INVALID_ARGUMENT .*another account' "a list naming another account"
# bob cannot publish a list for alice (signed by his key, naming her)
expect_rc 0 dl bob 2 --publish add=x,account=alice
assert_line "$OUT" '^error INVALID_ARGUMENT .*another account' "bob publishing alice's list"
assert_eq "$before" "$(state alice)" "alice's rows and lists after the refusals"
refused1=$(metric_sum "${GW_ADMIN[1]}" parley_gateway_device_lists_refused_total)
assert_eq $((refused0 + 9)) "$refused1" "refusals counted"

# --- 8 devices is the limit, not beyond ------------------------------------------------------
expect_rc 0 dl alice 1 --publish fill=8 --publish add=ninth
assert_line "$OUT" '^published v=3 added=3,4,5,6,7,8 removed=-$' "filled to 8 devices"
assert_line "$OUT" '^error TOO_MANY_DEVICES ' "a ninth device"
expect_rc 0 dl alice 2 --publish remove=3,remove=4,remove=5,remove=6,remove=7,remove=8
assert_line "$OUT" '^published v=4 added=- removed=3,4,5,6,7,8$' "six removed at once"

# --- removal of a device connected to the other gateway --------------------------------------
expect_rc 0 dl alice 2 --as dev:phone:2 --upload-prekeys 5
assert_line "$OUT" '^uploaded one_time=5 spk=1$' "the phone's prekeys"
expect_rc 0 dl bob 2 --send alice 1,2
assert_line "$OUT" '^sent n=2$' "bob to both of alice's devices"
assert_eq 1 "$(queued alice 2)" "queued for the phone"
assert_eq 6 "$(prekey_rows alice 2)" "prekey rows of the phone"
spawn_to phone dl alice 2 --as dev:phone:2 --wait-close 40
phone=$SPAWNED
wait_until 20 online alice 2
expect_rc 0 dl alice 1 --publish remove=2
assert_line "$OUT" '^published v=5 added=- removed=2$' "phone removed"
wait_rc "$phone"
assert_eq 0 "$WRC" "phone drive exit: $(cat "$T/phone.err")"
assert_line "$(cat "$T/phone.out")" '^closed 4003$' "the phone's live connection (other gateway)"
assert_eq 0 "$(queued alice 2)" "the phone's queue"
assert_eq 0 "$(prekey_rows alice 2)" "the phone's prekeys"
assert_eq "" "$(redis_q GET parley:presence:alice:2)" "the phone's presence"
expect_rc 0 dl alice 2 --as dev:phone:2
assert_eq "auth-error AUTH_FAILED" "$OUT" "the removed phone authenticating again"
expect_rc 0 dl bob 2 --send alice 1,2 --send alice 1
assert_line "$OUT" '^error DEVICE_MISMATCH missing=- extra=2 stale=- ' "a send addressing the removed phone"
assert_line "$OUT" '^sent n=1$' "a send to what is left"
[ "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_closes_total '{reason="device_removed"}')" -ge 1 ] ||
  fail "device_removed close not counted on gateway 2"
# an id used before cannot come back
expect_rc 0 dl alice 1 --publish reuse=2
assert_line "$OUT" '^error INVALID_ARGUMENT .*reuses a device id' "a reused device id"

# --- removal of a device connected to the same gateway, published by an account session -------
expect_rc 0 dl alice 1 --publish add=tablet
assert_line "$OUT" '^published v=6 added=9 removed=-$' "tablet added (ids continue after 8)"
spawn_to tablet dl alice 1 --as dev:tablet:9 --wait-close 40
tablet=$SPAWNED
wait_until 20 online alice 9
expect_rc 0 dl alice 1 --as account --get 0 --publish remove=9 --send bob 1 --get 5
assert_line "$OUT" '^auth device=0 queued=0$' "account session auth"
assert_line "$OUT" '^devices latest=6 key=match rows=1,9 lists=6$' "account session GetDevices"
assert_line "$OUT" '^published v=7 added=- removed=9$' "account session publishes"
assert_line "$OUT" '^error INVALID_ARGUMENT .*account session' "account session Send"
assert_line "$OUT" '^devices latest=7 key=match rows=1 lists=5,6,7$' "known 5 after version 7"
wait_rc "$tablet"
assert_line "$(cat "$T/tablet.out")" '^closed 4003$' "the tablet's live connection (same gateway)"
assert_eq "" "$(redis_q GET parley:presence:alice:0)" "account sessions have no presence"
[ "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_account_sessions_total)" -ge 1 ] ||
  fail "account session not counted"
# an account session of a made-up account key is refused
expect_rc 0 dl bob 1 --as account
assert_eq "auth device=0 queued=0" "$OUT" "bob's account session"
cp -a "$(home_of bob)" "$(home_of bobcopy)"
sed -i "s/^username=bob$/username=alice/" "$(home_of bobcopy)/identity"
expect_rc 0 dl bobcopy 1 --as account
assert_eq "auth-error AUTH_FAILED" "$OUT" "an account session signed by another account's key"

# --- the chain served after all that verifies from version 1 -----------------------------------
expect_rc 0 dl bob 2 --get-of alice 1
assert_line "$OUT" '^devices latest=7 key=- rows=1 lists=1,2,3,4,5,6,7$' "the whole chain"
assert_eq 6 "$(lines_matching "$OUT" '^list v=[0-9]+ sig=ok chain=ok ')" "every link verifies"

# --- an account from before signed lists (version 0) publishes version 1 ----------------------
psql_q "DELETE FROM device_lists WHERE account_id = $(acct bob); UPDATE accounts SET devlist_version = 0 WHERE username = 'bob'" >/dev/null
expect_rc 0 dl bob 2 --get 0 --publish add=bobphone --get 0
assert_line "$OUT" '^devices latest=0 key=match rows=1 lists=-$' "bob without a list"
assert_line "$OUT" '^published v=1 added=2 removed=-$' "bob's first list"
assert_line "$OUT" '^devices latest=1 key=match rows=1,2 lists=1$' "bob's list version 1"

# --- ProvisionOpen while the gateway checks the AuthAnswer: refused, the connection stays ------
# (the open follows the answer at once, but may still arrive after the check: a few tries)
for try in 1 2 3 4 5 6; do
  expect_rc 0 dl alice 1 --open-while-authing --get 0
  assert_line "$OUT" '^auth device=1 queued=[0-9]+$' "authentication goes on"
  assert_line "$OUT" '^devices latest=7 ' "the connection works afterwards"
  grep -q '^open-error ' <<<"$OUT" && break
done
assert_line "$OUT" '^open-error INVALID_ARGUMENT msg=authentication in progress$' \
  "ProvisionOpen during authentication"

# --- the same with the parley CLI: refused until the primary's first login signs version 1 ---
# (trust on upgrade, docs/DEVICES.md: the primary signs the server's device rows as they are)
register carol 1
register dave 2
psql_q "DELETE FROM device_lists WHERE account_id = $(acct carol);
        UPDATE accounts SET devlist_version = 0 WHERE username = 'carol'" >/dev/null
# a home folder from before signed lists never verified a list of its own account
rm -f "$(home_of carol)/peers/carol"
run cli dave send carol "too early"
[ "$RC" != 0 ] || fail "a send to an account without a signed list succeeded: $OUT"
assert_contains "$ERR" "carol has no signed device list" "the refused send"
assert_eq 0 "$(queued carol)" "nothing queued for carol before the upgrade"
expect_rc 0 cli carol recv --timeout 2
assert_match "$(state carol)" '^1\|1\|1\|0\|' "carol after her primary's first login"
expect_rc 0 dl dave 2 --get-of carol 0
assert_line "$OUT" '^devices latest=1 key=- rows=1 lists=1$' "carol's rows and list"
assert_line "$OUT" '^list v=1 sig=ok chain=first devs=1 max=1$' "carol's first list verifies"
expect_rc 0 cli dave send carol "after the upgrade"
assert_line "$OUT" '^carol	1	[0-9]+$' "a send once the list is signed"
expect_rc 0 cli carol recv --count 1 --timeout 20
assert_eq "dave	1	after the upgrade" "$OUT" "carol reads it"
# once a list was verified, a server that drops it is not believed: nothing is signed again
psql_q "DELETE FROM device_lists WHERE account_id = $(acct carol);
        UPDATE accounts SET devlist_version = 0 WHERE username = 'carol'" >/dev/null
expect_rc 0 cli carol recv --timeout 2
assert_eq "0|0" "$(psql_q "SELECT a.devlist_version || '|' || (SELECT count(*) FROM device_lists l
                              WHERE l.account_id = a.id) FROM accounts a WHERE a.username = 'carol'")" \
  "carol after a rolled-back server"

# --- clients further behind than one answer reaches ----------------------------------------
# erin's list moves on 40 versions after frank and gina pinned version 1: GetDevices serves the
# oldest 32 from the known version, and the library pages through the rest, for a send
# (frank) and for a message received (gina)
register erin 1
register frank 2
register gina 1
expect_rc 0 cli frank send erin "at version 1"
expect_rc 0 cli gina send erin "at version 1 too"
steps=()
for k in $(seq 1 20); do steps+=(--publish "add=far$k" --publish "remove=$((k + 1))"); done
expect_rc 0 dl erin 1 "${steps[@]}"
assert_eq 41 "$(psql_q "SELECT devlist_version FROM accounts WHERE username = 'erin'")" \
  "erin's list version after 40 changes"
expect_rc 0 dl erin 1 --get 1
assert_line "$OUT" "^devices latest=41 key=match rows=1 lists=$(seq -s, 1 32)\$" \
  "known 1 of 41: the oldest 32"
assert_eq 32 "$(lines_matching "$OUT" '^list v=[0-9]+ sig=ok chain=(first|ok) ')" "a page that chains"
expect_rc 0 cli frank send erin "40 versions later"
assert_line "$OUT" '^erin	1	[0-9]+$' "a send 40 versions behind"
expect_rc 0 cli erin send gina "from 40 versions on"
expect_rc 0 cli gina recv --count 1 --timeout 20
assert_eq "erin	1	from 40 versions on" "$OUT" "a message read 40 versions behind"
expect_rc 0 cli erin recv --count 3 --timeout 20
assert_contains "$OUT" "frank	1	40 versions later" "erin reads frank's"

echo "PASS $TEST_NAME"
