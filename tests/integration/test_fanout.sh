#!/usr/bin/env bash
# test_fanout.sh: parley_accept_batch (deploy/sql/002_fanout.sql) directly with psql, then
# parley-fanout end to end against the harness's PostgreSQL and Redis (tests/integration/lib.sh),
# driven by tests/tools/parley-fanout-drive: hand-built ingress entries in, delivery streams out.
source "$(dirname "$0")/lib.sh"

expect() { grep -qF -- "$2" <<<"$1" || fail "$3: expected '$2' in: $1"; }

# --- PostgreSQL and Redis ---------------------------------------------------------------------
start_pg
start_redis
P=(psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U parley -d parley)

seed() {
  "${P[@]}" <<'EOF'
TRUNCATE accounts, devices, envelopes, sends, device_prekeys, one_time_prekeys, device_lists RESTART IDENTITY;
INSERT INTO accounts (username, account_key) VALUES
  ('alice', decode(repeat('aa', 32), 'hex')), ('bob', decode(repeat('bb', 32), 'hex')),
  ('carol', decode(repeat('cc', 32), 'hex'));
-- alice and bob: devices 1 and 2 (registration ids 101 102 / 201 202), carol: device 1 (301)
INSERT INTO devices (account_id, device_id, registration_id, signing_key, identity_key)
SELECT a.id, d, CASE a.username WHEN 'alice' THEN 100 WHEN 'bob' THEN 200 ELSE 300 END + d,
       decode(repeat('01', 32), 'hex'), decode(repeat('02', 32), 'hex')
  FROM accounts a, generate_series(1, 2) d
 WHERE a.username <> 'carol' OR d = 1;
EOF
}

# --- the SQL function -------------------------------------------------------------------------
seed
call() { # senders sdevs clients recipients urgent env_send env_dev env_reg env_len hex queue_max
  "${P[@]}" -F' ' -c "SELECT r_send, r_status, coalesce(r_device_ids::text, '-'),
      coalesce(r_envelope_ids::text, '-'), coalesce(r_missing::text, '-'),
      coalesce(r_extra::text, '-'), coalesce(r_stale::text, '-'), coalesce(r_full::text, '-'),
      coalesce(r_queued_ids::text, '-')
    FROM parley_accept_batch('$1', '$2', '$3', '$4', '$5', '$6', '$7', '$8', '$9',
                             decode('${10}', 'hex'), ${11})"
}
out=$(call '{alice,alice,alice,alice,alice,alice,zed}' '{1,1,1,1,1,1,1}' '{11,12,13,14,15,16,17}' \
  '{bob,bob,alice,alice,nobody,bob,bob}' '{f,t,f,f,f,f,f}' \
  '{0,0,1,1,2,3,3,4,5,5,6}' '{1,2,1,5,2,1,2,1,1,2,1}' '{201,202,201,999,102,101,102,1,201,999,201}' \
  '{2,3,1,1,2,1,1,1,1,1,1}' '01020304050607080900aabbccddee' 10)
expect "$out" "0 accepted {1,2} {1,2} - - - - -" "sql accepted"
expect "$out" "1 mismatch - - {2} {5} {} - -" "sql missing/extra"
expect "$out" "2 accepted {2} {3}" "sql own account sync"
expect "$out" "3 mismatch - - {} {1} {} - -" "sql own sending device is extra"
expect "$out" "4 unknown_account" "sql unknown account"
expect "$out" "5 mismatch - - {} {} {2} - -" "sql stale"
expect "$out" "6 unknown_sender" "sql unknown sender"
[ "$("${P[@]}" -c "SELECT string_agg(encode(content, 'hex'), ',' ORDER BY id) FROM envelopes")" = "0102,030405,0809" ] ||
  fail "sql stored contents"

out=$(call '{alice,carol}' '{1,1}' '{11,20}' '{bob,bob}' '{f,f}' '{0,1,1}' '{1,1,2}' '{201,201,202}' \
  '{1,1,1}' 'ffeedd' 1)
expect "$out" "0 duplicate {1,2} {1,2} - - - - {1,2}" "sql duplicate returns stored ids"
expect "$out" "1 queue_full - - - - - {1,2}" "sql queue full"
[ "$("${P[@]}" -c "SELECT count(*) FROM envelopes")" = 3 ] || fail "sql duplicate inserted rows"
# the same client_id reused toward another recipient: answered as the duplicate it is, but the
# first send's queued envelopes (bob's) must not come back to be pushed to carol
out=$(call '{alice}' '{1}' '{11}' '{carol}' '{f}' '{0}' '{1}' '{301}' '{1}' 'ff' 10)
expect "$out" "0 duplicate {1,2} {1,2} - - - - -" "sql reused client_id pushes nothing to the new recipient"
[ "$("${P[@]}" -c "SELECT string_agg(queue_len::text, ',' ORDER BY account_id, device_id) FROM devices")" = "0,1,1,1,0" ] ||
  fail "sql queue_len"
out=$(call '{alice}' '{1}' '{30}' '{bob}' '{f}' '{0}' '{1}' '{201}' '{2}' '00' 10 2>&1 || true)
expect "$out" "inconsistent batch arrays" "sql inconsistent arrays raise"
"${P[@]}" -c "UPDATE sends SET created_at = now() - interval '8 days' WHERE client_id = 11"
[ "$("${P[@]}" -c "SELECT parley_prune_sends(7 * 24 * 3600, 100)")" = 1 ] || fail "sql prune"

# concurrent batches with the recipients in opposite orders, and the same sends in both:
# no deadlock, every send stored once, queue_len in step with the rows
seed
worker() {
  for i in $(seq 1 40); do
    if [ $((i % 2)) = "$1" ]; then
      r="ARRAY['bob','alice']"; d="ARRAY[1,2,1,2]"; g="ARRAY[201,202,101,102]"
    else
      r="ARRAY['alice','bob']"; d="ARRAY[1,2,1,2]"; g="ARRAY[101,102,201,202]"
    fi
    echo "SELECT string_agg(r_status, ',') FROM parley_accept_batch(ARRAY['carol','carol'],
      ARRAY[1,1], ARRAY[$i, $i + 1000]::bigint[], $r, ARRAY[false,false], ARRAY[0,0,1,1], $d, $g,
      ARRAY[1,1,1,1], '\\x01020304'::bytea, 100000);"
  done | "${P[@]}" >"$T/worker$1.out" 2>&1
}
worker 0 & w0=$!
worker 1 & w1=$!
wait $w0 $w1 || fail "concurrent workers: $(cat "$T"/worker*.out)"
grep -qi error "$T"/worker*.out && fail "concurrent: $(grep -i error "$T"/worker*.out | head -3)"
[ "$("${P[@]}" -c "SELECT count(*) FROM sends")" = 80 ] || fail "concurrent: sends rows"
[ "$("${P[@]}" -c "SELECT count(*) FROM envelopes")" = 160 ] || fail "concurrent: envelope rows"
[ "$("${P[@]}" -c "SELECT count(*) FROM devices d WHERE queue_len <> (SELECT count(*) FROM envelopes e
      WHERE e.account_id = d.account_id AND e.device_id = d.device_id)")" = 0 ] || fail "concurrent: queue_len"

# --- the service ------------------------------------------------------------------------------
seed
D=("$PARLEY_BIN/tests/tools/parley-fanout-drive" "$REDIS_PORT")
[ -x "${D[0]}" ] || fail "missing ${D[0]}"

read_gw() { # gateway, expected number of lines
  local out=""
  for _ in $(seq 100); do
    out+=$("${D[@]}" read "$1")$'\n'
    [ "$(grep -c . <<<"$out")" -ge "$2" ] && break
    sleep 0.1
  done
  echo "$out"
}
# the harness stops a fanout with SIGTERM and records a non-zero exit; fail here, at once
stop_fanout_ok() {
  stop_fanout "$1"
  [ ${#SERVICE_PROBLEMS[@]} = 0 ] || fail "fanout $1: ${SERVICE_PROBLEMS[*]}"
}

FO_EXTRA[1]="queue_max = 2"
start_fanout 1
redis_q set parley:presence:bob:1 gwB/55 >/dev/null
"${D[@]}" send gwA 7 100 alice 1 11 bob 4 1 1:201:hello-b1 2:202:hello-b2 >/dev/null
"${D[@]}" send gwA 7 101 alice 1 12 bob 4 0 1:201:x 5:1:y >/dev/null
"${D[@]}" send gwA 7 102 alice 1 13 alice 4 0 2:102:sync >/dev/null
"${D[@]}" send gwA 7 103 alice 1 14 nobody 4 0 1:1:x >/dev/null
"${D[@]}" send gwA 7 104 alice 1 15 bob 4 0 1:201:x 2:999:y >/dev/null
"${D[@]}" send gwA 7 105 alice 1 11 bob 4 1 2:202:hello-b2 1:201:hello-b1 >/dev/null
"${D[@]}" send gwA 7 106 alice 1 16 alice 4 0 1:101:self >/dev/null
"${D[@]}" send gwA 7 107 alice 1 17 bob 4 0 1:201:1 2:202:x 3:1:y 3:1:z >/dev/null
"${D[@]}" garbage 2 >/dev/null
out=$(read_gw gwA 8)
expect "$out" "reply conn=7 req=100 result dup=0 stored=1:1,2:2" "accepted"
expect "$out" "req=101 error code=12 msg=\"recipient bob has devices you did not address: 2" "mismatch message"
expect "$out" "missing=2, extra=5, stale=" "mismatch lists"
expect "$out" "req=102 result dup=0 stored=2:3" "own account sync"
expect "$out" "req=103 error code=11 msg=\"unknown account nobody\"" "unknown account"
expect "$out" "req=104 error code=12" "stale"
expect "$out" "missing= extra= stale=2," "stale list"
expect "$out" "req=105 result dup=1 stored=2:2,1:1" "duplicate in this send's order"
expect "$out" "req=106 error code=12 msg=\"your account has other devices you did not address: 2" "own sending device"
expect "$out" "req=107 error code=6" "invalid send"
out=$(read_gw gwB 2)
expect "$out" "push bob:1 id=1 from=alice:1 ts=1 urgent=1 content=hello-b1" "push to presence"
"${D[@]}" send gwA 7 108 alice 1 18 bob 4 0 1:201:q 2:202:q >/dev/null
"${D[@]}" send gwA 7 109 alice 1 19 bob 4 0 1:201:q 2:202:q >/dev/null
out=$(read_gw gwA 2)
expect "$out" "req=108 result dup=0" "accepted up to queue_max"
expect "$out" "req=109 error code=13" "queue full"
expect "$out" "full=1,2," "queue full devices"
metrics=$(http_get "${FO_ADMIN[1]}" /metrics)
expect "$metrics" "parley_fanout_malformed_entries_total 1" "malformed counted"
expect "$metrics" 'parley_fanout_sends_rejected_total{reason="device_mismatch"} 3' "rejections counted"
for s in 0 1 2 3; do
  [ "$(redis_q xlen "parley:ingress:$s")" = 0 ] || fail "stream $s not emptied"
  [ "$(redis_q xpending "parley:ingress:$s" fanout | head -1)" = 0 ] || fail "stream $s has pending"
done

# PostgreSQL down: the send stays pending and is answered once it is back
pause_pg
"${D[@]}" send gwA 8 200 carol 1 21 alice 4 0 1:101:o1 2:102:o2 >/dev/null
# an answer would come within a few ms; 1.5 s of silence is the evidence there is none
sleep 1.5
[ -z "$("${D[@]}" read gwA)" ] || fail "answered without PostgreSQL"
# the fanout notices the lost connection on its own schedule: ready must turn 503
fanout_unready_without_pg() { ! is_ready "${FO_ADMIN[1]}"; }
wait_until 15 fanout_unready_without_pg
resume_pg
out=$(read_gw gwA 1)
expect "$out" "reply conn=8 req=200 result dup=0" "answered after PostgreSQL recovered"
stop_fanout_ok 1

# entries left pending by a dead consumer are reclaimed
"${D[@]}" send gwA 9 300 carol 1 31 alice 4 0 1:101:r1 2:102:r2 >/dev/null
redis_q xreadgroup group fanout deadguy count 10 streams \
  "parley:ingress:$(for s in 0 1 2 3; do [ "$(redis_q xlen parley:ingress:$s)" != 0 ] && echo $s; done | head -1)" '>' >/dev/null
FO_EXTRA[2]="claim_idle_ms = 500"
start_fanout 2
out=$(read_gw gwA 1)
expect "$out" "reply conn=9 req=300 result dup=0" "reclaimed from a dead consumer"
grep -q entries_reclaimed "$T/logs/fo2.log" || fail "reclaim not logged"
stop_fanout_ok 2
grep -q "event=stopped" "$T/logs/fo2.log" || fail "no graceful stop"
