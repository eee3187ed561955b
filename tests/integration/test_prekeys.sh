#!/usr/bin/env bash
# The prekey service through the real cluster, driven by parley-prekeys-drive (the client
# library's prekeys.h): upload and fetch round trip, AuthOk counts, a bad signed prekey
# signature (INVALID_SIGNATURE, nothing stored), malformed uploads (INVALID_ARGUMENT, the
# gateway keeps serving), id conflicts and the pool limit, a pool that runs dry, 50 concurrent
# fetches through both gateways that never get a one-time prekey twice and together get exactly
# the uploaded set, removed / unknown devices and accounts, the PrekeysLow push (across
# gateways and on the same one, at most one per window), the rate limits per requester and per
# target, and Redis or PostgreSQL down (UNAVAILABLE).
source "$(dirname "$0")/lib.sh"

PK_BIN=$PARLEY_BIN/tests/tools/parley-prekeys-drive
[ -x "$PK_BIN" ] || fail "prekeys drive missing: $PK_BIN"
# pk USER I ACTION...: the drive as USER's device through gateway I
pk() {
  local user=$1 i=$2; shift 2
  timeout 90 "$PK_BIN" --home "$(home_of "$user")" --server "${GW_URL[$i]}" --timeout 60 "$@"
}
derived() { pk alice 1 --derive "$1" "$2" "$3" | tail -n 1; } # seed kind id -> public key hex
acct_id() { psql_q "SELECT id FROM accounts WHERE username = '$1'"; }
otk_rows() { # user device -> one-time prekeys stored
  psql_q "SELECT count(*) FROM one_time_prekeys k JOIN accounts a ON a.id = k.account_id
           WHERE a.username = '$1' AND k.device_id = $2"
}
state_of() { # user device -> "otk_count|spk_id" of device_prekeys
  psql_q "SELECT p.otk_count || '|' || coalesce(p.spk_id, 0) FROM device_prekeys p
            JOIN accounts a ON a.id = p.account_id WHERE a.username = '$1' AND p.device_id = $2"
}
lines_matching() { grep -cE -- "$2" <<<"$1" || true; }

# high limits first: the storm below makes 50 fetches in a few seconds
high="prekey_fetch_rate_per_minute = 100000
prekey_target_rate_per_minute = 100000"
GW_EXTRA[1]=$high
GW_EXTRA[2]=$high
start_cluster
register alice 1
register bob 2
register carol 1
register dave 2
register erin 1
for i in 1 2 3 4 5; do register "req$i" $((i % 2 + 1)); done
bob_reg=$(psql_q "SELECT registration_id FROM devices WHERE account_id = $(acct_id bob)")
# the CLI may publish prekeys when it registers: start from none, as a device that never did
psql_q "DELETE FROM one_time_prekeys; DELETE FROM device_prekeys" >/dev/null

# --- a device that never uploaded: counts 0, a bundle with neither prekey ------------------
expect_rc 0 pk bob 2 --fetch bob all
assert_line "$OUT" '^auth one_time=0 spk=0$' "AuthOk of a fresh device"
# the requesting device is never in its own account's answer
assert_line "$OUT" '^bundles bob n=0$' "bob fetching his own account"
expect_rc 0 pk alice 1 --fetch bob all
assert_line "$OUT" "^bundle dev=1 reg=$bob_reg spk=none sig=none otk=none$" "bundle before any upload"

# --- upload and fetch round trip ---------------------------------------------------------
expect_rc 0 pk bob 2 --upload spk=1,otk=1:40
assert_line "$OUT" '^uploaded one_time=40 spk=1$' "first upload"
assert_eq "40|1" "$(state_of bob 1)" "bob's prekey state"
assert_eq 40 "$(otk_rows bob 1)" "bob's one-time prekey rows"
expect_rc 0 pk alice 1 --fetch bob all
assert_line "$OUT" "^bundle dev=1 reg=$bob_reg spk=1 sig=ok otk=1 key=$(derived s otk 1)$" \
  "bundle after the upload (lowest id first, key as uploaded, signature verifies)"
assert_eq 39 "$(otk_rows bob 1)" "one-time prekeys after one claim"
# a retried upload is accepted; the claimed id 1 does not come back
expect_rc 0 pk bob 2 --upload spk=1,otk=1:40
assert_line "$OUT" '^uploaded one_time=39 spk=1$' "retried upload"
assert_eq 0 "$(psql_q "SELECT count(*) FROM one_time_prekeys WHERE key_id = 1 AND account_id = $(acct_id bob)")" \
  "the claimed one-time prekey after the retry"
# AuthOk reports the counts at login
expect_rc 0 pk bob 2
assert_line "$OUT" '^auth one_time=39 spk=1$' "AuthOk counts after uploads"
# a new signed prekey replaces the current one
expect_rc 0 pk bob 2 --upload spk=2
assert_line "$OUT" '^uploaded one_time=39 spk=2$' "signed prekey rotation"
expect_rc 0 pk alice 1 --fetch bob 1
assert_line "$OUT" '^bundle dev=1 .* spk=2 sig=ok otk=2 ' "bundle after rotation"

# --- a bad signature: INVALID_SIGNATURE, nothing of the upload stored ----------------------
before=$(state_of bob 1)
expect_rc 0 pk bob 2 --upload spk=3,badsig,otk=41:5
assert_line "$OUT" '^error INVALID_SIGNATURE ' "upload with a bad signature"
assert_eq "$before" "$(state_of bob 1)" "bob's prekey state after the refused upload"
assert_eq 0 "$(psql_q "SELECT count(*) FROM one_time_prekeys WHERE key_id >= 41 AND account_id = $(acct_id bob)")" \
  "one-time prekeys of the refused upload"
[ "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_prekey_invalid_signatures_total)" -ge 1 ] ||
  fail "invalid signature metric not counted"

# --- malformed uploads: INVALID_ARGUMENT, the connection and the gateway keep serving --------
expect_rc 0 pk carol 1 --upload spk=5,otk=1:3
assert_line "$OUT" '^uploaded one_time=3 spk=5$' "carol's upload"
before=$(state_of bob 1)
expect_rc 0 pk bob 2 --raw-upload spk-len --raw-upload sig-len --raw-upload spk-zero \
  --raw-upload otk-len --raw-upload too-many --raw-upload dup-ids --fetch alice all
assert_eq 6 "$(lines_matching "$OUT" '^error INVALID_ARGUMENT ')" "malformed uploads refused"
assert_contains "$OUT" "too many one-time prekeys" "message of the oversized upload"
assert_contains "$OUT" "occurs twice" "message of the duplicate ids"
assert_line "$OUT" '^bundles alice n=1$' "a fetch on the same connection afterwards"
assert_eq "$before" "$(state_of bob 1)" "bob's prekey state after malformed uploads"
expect_rc 0 pk alice 1 --fetch carol all
assert_line "$OUT" '^bundle dev=1 .* otk=1 ' "another client served meanwhile"
# an id stored with another key, a signed prekey id with another key
expect_rc 0 pk bob 2 --upload otk=10:1,seed=other --upload spk=2,seed=other
assert_eq 2 "$(lines_matching "$OUT" '^error INVALID_ARGUMENT .*stored with another key')" \
  "conflicting re-uploads"
# the pool limit: carol holds 2, 9 uploads of 100 reach 902, 98 more fill it, 1 more is refused
args=()
for b in 0 1 2 3 4 5 6 7 8; do args+=(--upload "otk=$((100 + b * 100)):100"); done
expect_rc 0 pk carol 1 "${args[@]}" --upload otk=1000:98 --upload otk=1100:1
assert_line "$OUT" '^uploaded one_time=902 spk=5$' "carol after 9 uploads"
assert_line "$OUT" '^uploaded one_time=1000 spk=5$' "carol's full pool"
assert_line "$OUT" '^error INVALID_ARGUMENT .*would hold 1001 keys; at most 1000' \
  "an upload past the pool limit"
assert_eq 1000 "$(otk_rows carol 1)" "carol's pool at the limit"

# --- 50 concurrent fetches through both gateways ------------------------------------------
# bob's device 1: a fresh pool of 40 (ids 100..139); a second device (as device linking will
# add it) seeded in PostgreSQL with 30 (ids 501..530)
expect_rc 0 pk bob 2 --upload otk=100:40,replace
assert_line "$OUT" '^uploaded one_time=40 spk=2$' "replaced pool"
bid=$(acct_id bob)
psql_q "INSERT INTO devices (account_id, device_id, registration_id, signing_key, identity_key)
        VALUES ($bid, 2, 4242, decode('$(hex_random 32)', 'hex'), decode('$(hex_random 32)', 'hex'))" >/dev/null
assert_eq ok "$(psql_q "SELECT r_status FROM parley_prekeys_upload($bid, 2, NULL, NULL, NULL,
    (SELECT array_agg(i ORDER BY i) FROM generate_series(501, 530) i)::bigint[],
    (SELECT string_agg(decode(repeat(lpad(to_hex(i - 500), 2, '0'), 32), 'hex'), ''::bytea ORDER BY i)
       FROM generate_series(501, 530) i), false, 1000)")" "seeding device 2"
# every requester authenticates first and waits; then all fire at once
pids=()
for i in 1 2 3 4 5; do
  spawn_to "storm$i" pk "req$i" $((i % 2 + 1)) --await-file "$T/go" --storm bob 10
  pids+=("$SPAWNED")
done
for i in 1 2 3 4 5; do wait_until 20 grep -q '^auth ' "$T/storm$i.out"; done
touch "$T/go"
for i in 1 2 3 4 5; do
  wait_rc "${pids[$((i - 1))]}"
  assert_eq 0 "$WRC" "storm $i exit status ($(cat "$T/storm$i.err"))"
  assert_line "$(cat "$T/storm$i.out")" '^storm ok=10 bundles=20 ' "storm $i summary"
done
got=$(cat "$T"/storm*.out | grep '^otk ' | awk '{print $2 " " $3}' | sort)
dups=$(uniq -d <<<"$got")
assert_eq "" "$dups" "one-time prekeys handed out twice"
assert_eq "$( (for i in $(seq 100 139); do echo "1 $i"; done; for i in $(seq 501 530); do echo "2 $i"; done) | sort)" \
  "$got" "one-time prekeys claimed by the storm"
none=$(cat "$T"/storm*.out | awk -F'none=' '/^storm /{split($2, a, " "); s += a[1]} END {print s}')
assert_eq 30 "$none" "bundles without a one-time prekey (50 x 2 devices - 70 keys)"
# the keys are the uploaded ones
assert_line "$(cat "$T"/storm*.out)" "^otk 1 117 $(derived s otk 117)$" "key of a claimed prekey"
assert_eq "0|2" "$(state_of bob 1)" "device 1 after the storm"
assert_eq 0 "$(otk_rows bob 2)" "device 2 after the storm"
# an empty pool: a bundle without a one-time prekey
expect_rc 0 pk alice 1 --fetch bob all
assert_line "$OUT" '^bundle dev=1 .* spk=2 sig=ok otk=none$' "device 1 with an empty pool"
assert_line "$OUT" '^bundle dev=2 reg=4242 spk=none sig=none otk=none$' "device 2 with an empty pool"
served=$(( $(metric_sum "${GW_ADMIN[1]}" parley_gateway_prekey_bundles_total) + \
           $(metric_sum "${GW_ADMIN[2]}" parley_gateway_prekey_bundles_total) ))
[ "$served" -ge 100 ] || fail "bundles metric: $served"

# --- unknown and removed devices, unknown accounts ----------------------------------------
expect_rc 0 pk alice 1 --fetch bob 2,7,1,0
assert_line "$OUT" '^bundles bob n=2$' "bob's devices 1, 2 of the ids 2,7,1,0"
assert_line "$OUT" '^bundle dev=1 ' "device 1 named"
expect_rc 0 pk alice 1 --fetch bob 7
assert_line "$OUT" '^bundles bob n=0$' "only an unknown device named"
psql_q "DELETE FROM devices WHERE account_id = $bid AND device_id = 2" >/dev/null
assert_eq 0 "$(psql_q "SELECT count(*) FROM device_prekeys WHERE account_id = $bid AND device_id = 2")" \
  "prekey state of the removed device"
expect_rc 0 pk alice 1 --fetch bob all --fetch nobody_here all --fetch x all
assert_line "$OUT" '^bundles bob n=1$' "bob after removing device 2"
assert_eq 2 "$(lines_matching "$OUT" '^error UNKNOWN_ACCOUNT ')" "unknown and invalid account names"

# --- PrekeysLow: across gateways (dave on gw2, fetcher on gw1), one per window --------------
spawn_to dave pk dave 2 --upload spk=1,otk=1:12 --expect-low 30 --expect-low 3
dave_pid=$SPAWNED
wait_until 20 grep -q '^uploaded one_time=12 ' "$T/dave.out"
wait_until 10 online dave
expect_rc 0 pk alice 1 --fetch dave all      # 11 left: above the low-water mark
assert_line "$OUT" '^bundle dev=1 .* otk=1 ' "first fetch of dave"
expect_rc 0 pk alice 1 --fetch dave all      # 10 left: the mark
wait_until 20 grep -q '^low' "$T/dave.out"
expect_rc 0 pk alice 1 --fetch dave all      # 9 left: within the window, no second push
wait_rc "$dave_pid"
assert_eq 0 "$WRC" "dave's drive ($(cat "$T/dave.err"))"
assert_eq "$(printf 'auth one_time=0 spk=0\nuploaded one_time=12 spk=1\nlow 10\nno-low')" \
  "$(cat "$T/dave.out")" "dave's pushes"
assert_eq 1 "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_prekey_low_pushes_total)" "pushes by gw2"
# an offline device learns it at login
expect_rc 0 pk dave 2
assert_line "$OUT" '^auth one_time=9 spk=1$' "dave's AuthOk after the fetches"
# on the same gateway (erin and the fetcher on gw1)
spawn_to erin pk erin 1 --upload otk=1:1 --expect-low 30
erin_pid=$SPAWNED
wait_until 20 grep -q '^uploaded one_time=1 ' "$T/erin.out"
expect_rc 0 pk alice 1 --fetch erin all
wait_rc "$erin_pid"
assert_eq 0 "$WRC" "erin's drive ($(cat "$T/erin.err"))"
assert_line "$(cat "$T/erin.out")" '^low 0$' "erin's push"

# --- rate limits: 5 per requester, 8 per target and minute ------------------------------------
stop_gateway 1
stop_gateway 2
low="prekey_fetch_rate_per_minute = 5
prekey_target_rate_per_minute = 8"
GW_EXTRA[1]=$low
GW_EXTRA[2]=$low
# forget the windows of the fetches above (the storm's requesters, carol as a target)
redis_q EVAL "for _, k in ipairs(redis.call('KEYS', 'parley:rl:prekeys_*')) do redis.call('DEL', k) end return 0" 0 >/dev/null
start_gateway 1
start_gateway 2
args=()
for n in 1 2 3 4 5 6; do args+=(--fetch carol all); done
expect_rc 0 pk req1 1 "${args[@]}"
assert_eq 5 "$(lines_matching "$OUT" '^bundles carol n=1$')" "fetches within the requester limit"
assert_line "$OUT" '^error RATE_LIMITED retry=[1-9][0-9]* .*from this device' "the 6th fetch of req1"
# the refused one did not count for carol: 3 more from another requester fit, the 4th does not
expect_rc 0 pk req2 2 --fetch carol all --fetch carol all --fetch carol all --fetch carol all
assert_eq 3 "$(lines_matching "$OUT" '^bundles carol n=1$')" "fetches within the target limit"
assert_line "$OUT" '^error RATE_LIMITED retry=[1-9][0-9]* .*for this account' "carol's 9th fetch"
# another target is still served for req2
expect_rc 0 pk req2 2 --fetch alice all
assert_line "$OUT" '^bundles alice n=1$' "another target"
assert_eq 1 "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_prekey_fetches_rate_limited_total '{limit="requester"}')" \
  "requester limit metric"
assert_eq 1 "$(metric_sum "${GW_ADMIN[2]}" parley_gateway_prekey_fetches_rate_limited_total '{limit="target"}')" \
  "target limit metric"

# --- Redis down: fetches fail closed (UNAVAILABLE); uploads need only PostgreSQL --------------
stop_redis
expect_rc 0 pk erin 1 --fetch bob all --upload otk=50:2
assert_line "$OUT" '^error UNAVAILABLE .*rate limiter' "a fetch without Redis"
assert_line "$OUT" '^uploaded one_time=2 ' "an upload without Redis"
restart_redis
wait_until 30 is_ready "${GW_ADMIN[1]}"
expect_rc 0 pk erin 1 --fetch bob all
assert_line "$OUT" '^bundles bob n=1$' "a fetch once Redis is back"

# --- PostgreSQL down: UNAVAILABLE -----------------------------------------------------------
spawn_to pgdown pk alice 1 --await-file "$T/pg-paused" --fetch bob all --upload otk=60:1
pg_pid=$SPAWNED
wait_until 20 grep -q '^auth ' "$T/pgdown.out"
pause_pg
touch "$T/pg-paused"
wait_rc "$pg_pid"
assert_eq 0 "$WRC" "drive during the PostgreSQL outage ($(cat "$T/pgdown.err"))"
assert_eq 2 "$(lines_matching "$(cat "$T/pgdown.out")" '^error UNAVAILABLE ')" \
  "fetch and upload without PostgreSQL"
resume_pg
wait_until 45 is_ready "${GW_ADMIN[1]}"
expect_rc 0 pk alice 1 --fetch erin all
assert_line "$OUT" '^bundle dev=1 .* otk=50 ' "a fetch once PostgreSQL is back"
