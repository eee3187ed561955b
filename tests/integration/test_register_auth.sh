#!/usr/bin/env bash
# Registration (name rules, uniqueness, proof of work) and device authentication (the server
# verifies the challenge signature against the stored key, rejects unknown accounts/devices,
# and closes sockets that never authenticate).
source "$(dirname "$0")/lib.sh"

start_redis
start_pg
start_fanout 1
start_gateway 1
# gateway 2 wants 24 bits of proof of work: a hand-made Register with nonce 0 cannot pass it
GW_EXTRA[2]="pow_difficulty = 24"
start_gateway 2

# A socket that never authenticates is closed with 1008 after PARLEY_AUTH_TIMEOUT_MS (15 s):
# started first, checked last.
idle_start=$SECONDS
spawn probe 1 --timeout 30 --expect-close 1008
idle_pid=$SPAWNED

# --- register
register alice 1
assert_eq 1 "$(psql_q "SELECT count(*) FROM accounts WHERE username = 'alice'")" "accounts row"
row=$(psql_q "SELECT d.device_id, length(d.signing_key), length(d.identity_key),
                     d.registration_id BETWEEN 1 AND 16380
                FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")
assert_eq "1|32|32|t" "$row" "alice's device row"

# --- the name is taken, also in another case (names are case-folded)
expect_rc 1 cli alice2 --server "${GW_URL[1]}" register ALICE
assert_match "$ERR" '^parley: ' "stderr of a taken name"
assert_contains_i "$ERR" "taken" "stderr of a taken name"
assert_eq 1 "$(psql_q "SELECT count(*) FROM accounts")" "accounts after a taken name"

# --- invalid names are refused (by the CLI or the server, either way exit 1 and no row)
for name in ab "bad name" 'x!y' "$(hex_fill a 33)" 'zoë'; do
  expect_rc 1 cli invalid --server "${GW_URL[1]}" register "$name"
  assert_match "$ERR" '^parley: ' "stderr for invalid name [$name]"
done
assert_eq 1 "$(psql_q "SELECT count(*) FROM accounts")" "accounts after invalid names"

# the server itself refuses an invalid name, whatever the client checks
expect_rc 0 probe 1 --send-hex "$(frame_register 'No Way!' 7 0)" --expect-error INVALID_NAME
# and a register whose proof of work does not meet the gateway's difficulty
expect_rc 0 probe 2 --send-hex "$(frame_register powless 7 0)" --expect-error POW_FAILED
assert_eq 0 "$(psql_q "SELECT count(*) FROM accounts WHERE username IN ('no way!', 'powless')")" \
  "rows of refused registrations"

# --- authentication works: recv connects, authenticates, finds nothing, exits 0
expect_rc 0 cli alice recv --timeout 1
assert_eq "" "$OUT" "recv output of an empty queue"

# --- a wrong signing key on the server side: the signature no longer verifies
key_sql="FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice' AND d.device_id = 1"
orig_key=$(psql_q "SELECT encode(d.signing_key, 'hex') $key_sql")
psql_q "UPDATE devices SET signing_key = decode('$(hex_random 32)', 'hex')
         WHERE (account_id, device_id) = (SELECT d.account_id, d.device_id $key_sql)" >/dev/null
expect_rc 1 cli alice recv --timeout 1
assert_match "$ERR" '^parley: ' "stderr of a bad signature"
assert_contains_i "$ERR" "auth" "stderr of a bad signature"
psql_q "UPDATE devices SET signing_key = decode('$orig_key', 'hex')
         WHERE (account_id, device_id) = (SELECT d.account_id, d.device_id $key_sql)" >/dev/null
expect_rc 0 cli alice recv --timeout 1   # the key was the only thing wrong

# --- the device the client authenticates as no longer exists
psql_q "UPDATE devices SET device_id = 5 WHERE (account_id, device_id) = (SELECT d.account_id, d.device_id $key_sql)" >/dev/null
expect_rc 1 cli alice recv --timeout 1
assert_contains_i "$ERR" "auth" "stderr of an unknown device"
psql_q "UPDATE devices SET device_id = 1 WHERE account_id = (SELECT id FROM accounts WHERE username = 'alice')" >/dev/null
expect_rc 0 cli alice recv --timeout 1

# --- hand-made answers: bad signature, unknown device, unknown account, stale timestamp; each
# gets AUTH_FAILED and the socket closes with 1008
zero_sig=$(hex_fill 00 64)
expect_rc 0 probe 1 --send-hex "$(frame_auth alice 1 "$(now_ms)" "$zero_sig")" \
  --expect-error AUTH_FAILED --expect-close 1008
expect_rc 0 probe 1 --send-hex "$(frame_auth alice 9 "$(now_ms)" "$zero_sig")" \
  --expect-error AUTH_FAILED --expect-close 1008
expect_rc 0 probe 1 --send-hex "$(frame_auth nobody_here 1 "$(now_ms)" "$zero_sig")" \
  --expect-error AUTH_FAILED --expect-close 1008
expect_rc 0 probe 1 --send-hex "$(frame_auth alice 1 1000 "$zero_sig")" \
  --expect-error AUTH_FAILED --expect-close 1008

# --- a replayed answer: the probe signs a valid AuthAnswer with alice's keys, authenticates
# with it, then sends the very same bytes on a second connection, which has its own challenge.
# The signature covers the first challenge only: AUTH_FAILED and close 1008, and the gateway
# logs it as a bad signature (not as some other refusal)
bad_sigs() { grep -c 'auth_failed.*why="bad signature"' "$T/logs/gw1.log" || true; }
sigs_before=$(bad_sigs)
expect_rc 0 probe 1 --keys "$(home_of alice)" --auth-replay
assert_line "$OUT" '^frame auth_ok account=alice device=1 ' "first connection of the replay"
assert_line "$OUT" '^conn2 frame challenge ' "second connection of the replay"
assert_line "$OUT" '^conn2 frame error code=AUTH_FAILED ' "the replayed answer"
assert_line "$OUT" '^conn2 close 1008$' "the replayed answer"
assert_not_contains "$OUT" "conn2 frame auth_ok" "the replayed answer"
assert_eq $((sigs_before + 1)) "$(bad_sigs)" "bad signatures logged by gw1 after the replay"
# the same bytes again on the connection they authenticated: gw_dispatch answers any AuthAnswer
# after auth with ALREADY_AUTHENTICATED and keeps the socket open (the Ping still gets its Pong)
expect_rc 0 probe 1 --keys "$(home_of alice)" --auth --expect-auth-ok --resend-auth \
  --expect-error ALREADY_AUTHENTICATED --ping --expect-pong
assert_not_contains "$OUT" "close" "the connection after a repeated answer"

# --- a request before authentication: NOT_AUTHENTICATED and close 1008
expect_rc 0 probe 1 --send-raw-envelopes alice 1:1 --expect-error NOT_AUTHENTICATED --expect-close 1008

# --- the idle socket from the start was closed by the auth timeout
rc=0; wait "$idle_pid" || rc=$?
assert_eq 0 "$rc" "idle unauthenticated socket closed with 1008"
elapsed=$((SECONDS - idle_start))
[ "$elapsed" -ge 10 ] || fail "idle socket closed after ${elapsed}s, before the 15 s auth timeout"

# both gateways kept serving
is_ready "${GW_ADMIN[1]}" || fail "gateway 1 not ready after the bad input"
is_ready "${GW_ADMIN[2]}" || fail "gateway 2 not ready after the bad input"
