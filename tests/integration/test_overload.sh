#!/usr/bin/env bash
# Overload: with ingress_backlog_max 10 and the only fanout frozen (SIGSTOP), the ingress
# streams fill up with 10 sends; from then on every new send is answered at once (far inside
# the 10 s answer timeout) with UNAVAILABLE and a retry_after_ms, and is not queued; both
# gateways say so once in their logs and count it. Acks and queue drains still work meanwhile.
# After SIGCONT the backlog drains, shedding stops (logged once), the senders' resends with the
# same client ids are accepted, and every accepted message is stored and delivered once. Then
# parley-loadtest runs while the fanout is frozen for a moment: its accounting must balance.
source "$(dirname "$0")/lib.sh"

MAX=10
for i in 1 2; do GW_EXTRA[$i]="ingress_backlog_max = $MAX"; done
start_redis
start_pg
start_fanout 1
start_gateway 1
start_gateway 2
register alice 1
register carol 1
register bob 2
for k in 1 2 3; do register "snd$k" $((k % 2 + 1)); done
carol_reg=$(psql_q "SELECT d.registration_id FROM devices d JOIN accounts a ON a.id = d.account_id
                    WHERE a.username = 'carol' AND d.device_id = 1")

gw_metric() { # I NAME [LABELS]
  metric_sum "${GW_ADMIN[$1]}" "$2" "${3:-}"
}
shed_total() {
  echo $(($(gw_metric 1 parley_gateway_sends_shed_total) + $(gw_metric 2 parley_gateway_sends_shed_total)))
}
backlog_is() { [ "$(gw_metric 1 parley_gateway_ingress_backlog)" = "$1" ] &&
               [ "$(gw_metric 2 parley_gateway_ingress_backlog)" = "$1" ]; }
log_count() { grep -c "event=$2" "$T/logs/gw$1.log" || true; } # I EVENT

assert_eq "$MAX" "$(gw_metric 1 parley_gateway_ingress_backlog_max)" "ingress_backlog_max gauge"
# a message waits for alice (offline) from before the overload
expect_rc 0 cli bob send alice "before the overload" --client-id 8000
assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send before the overload"
# the gateways sample the backlog every 100 ms: let a sample taken after that send be in force
sleep 1
wait_until 10 backlog_is 0

# --- 1. the fanout freezes; bob (gateway 2) fills the streams to MAX; the next send is shed
kill -STOP "${PIDS[fo1]}" # the harness thaws it (SIGCONT) before stopping it at the end
fill=()
for ((i = 0; i < MAX; i++)); do fill+=(--send-raw-envelopes carol "1:$carol_reg"); done
t0=$(now_ms)
run probe 2 --home "$(home_of bob)" "${fill[@]}" --send-raw-envelopes carol "1:$carol_reg" \
  --expect-error UNAVAILABLE
elapsed=$(($(now_ms) - t0))
echo "$OUT"
[ "$RC" = 0 ] || fail "probe: the send past the backlog was not answered UNAVAILABLE: $OUT $ERR"
shed_line=$(grep 'code=UNAVAILABLE' <<<"$OUT" | tail -n 1)
assert_contains "$shed_line" "overloaded" "the shed answer"
[[ $shed_line =~ retry_after_ms=([0-9]+) ]] || fail "no retry_after_ms in [$shed_line]"
retry=${BASH_REMATCH[1]}
echo "shed answer after ${elapsed} ms (connect and auth included), retry_after_ms=$retry"
[ "$elapsed" -lt 5000 ] || fail "the shed answer took ${elapsed} ms: it must come at once, not after the 10 s timeout"
[ "$retry" -ge 250 ] && [ "$retry" -le 10000 ] || fail "retry_after_ms $retry outside 250..10000"
assert_contains "$(grep 'event=overload_shedding_start' "$T/logs/gw2.log")" "reason=ingress_backlog" "gw2 shedding log"
# exactly MAX sends wait in the streams: the shed one was not queued
wait_until 10 backlog_is "$MAX"

# gateway 1 knows the backlog from its own sampling: its senders are shed too
expect_rc 0 probe 1 --home "$(home_of snd1)" --send-raw-envelopes carol "1:$carol_reg" \
  --expect-error UNAVAILABLE
assert_contains "$OUT" "retry_after_ms=" "gateway 1's shed answer"
wait_until 5 backlog_is "$MAX"

# --- 2. senders keep resending with the same client ids (the CLI honours retry_after_ms)
N=3
: >"$T/sent.tsv"
sender() { # account first last
  local i out
  for ((i = $2; i <= $3; i++)); do
    out=$(timeout 90 "$CLI_BIN" --home "$(home_of "$1")" send alice "m-$i" --client-id $((9000 + i)) \
            --timeout 60 2>>"$T/sender.err") || { echo "m-$i unsent" >>"$T/sender.err"; continue; }
    printf '%s\t%s\n' "m-$i" "${out##*$'\t'}" >>"$T/sent.tsv"
  done
}
sender_pids=()
for k in 1 2 3; do
  spawn sender "snd$k" $(((k - 1) * N + 1)) $((k * N))
  sender_pids+=("$SPAWNED")
done
shed_at_least() { [ "$(shed_total)" -ge "$1" ]; }
wait_until 20 shed_at_least 5
assert_eq 1 "$(gw_metric 1 parley_gateway_shedding)" "gw1 shedding gauge"
assert_eq 1 "$(gw_metric 2 parley_gateway_shedding)" "gw2 shedding gauge"
assert_eq 0 "$(wc -l <"$T/sent.tsv")" "sends accepted while the fanout is frozen"

# acks and drains are never shed: alice drains the message from before, and acks it
expect_rc 0 cli alice recv --json --count 1 --timeout 20
assert_eq "before the overload" "$(json_str "$OUT" text)" "drained while shedding"
wait_until 10 queue_empty alice
sleep 2
assert_eq "$MAX" "$(gw_metric 1 parley_gateway_ingress_backlog)" "backlog while frozen"
for i in 1 2; do
  assert_eq 1 "$(log_count "$i" overload_shedding_start)" "gw$i shedding-start log lines"
  assert_eq 0 "$(gw_metric "$i" parley_gateway_send_timeouts_total)" \
    "gw$i sends that waited for the 10 s timeout"
done
echo "shed while frozen: $(shed_total)"

# --- 3. the fanout comes back: the backlog drains, resends are accepted, shedding stops
kill -CONT "${PIDS[fo1]}"
wait_until 10 backlog_is 0
for p in "${sender_pids[@]}"; do
  wait_rc "$p"
  assert_eq 0 "$WRC" "sender loop"
done
assert_eq "" "$(grep unsent "$T/sender.err" || true)" "sends never accepted"
assert_eq $((3 * N)) "$(wc -l <"$T/sent.tsv")" "accepted sends"
stopped() { [ "$(log_count "$1" overload_shedding_stop)" = 1 ]; }
wait_until 15 stopped 1
wait_until 15 stopped 2
assert_eq 0 "$(gw_metric 1 parley_gateway_shedding)" "gw1 shedding gauge after"
assert_eq 0 "$(gw_metric 2 parley_gateway_shedding)" "gw2 shedding gauge after"
grep -h 'event=overload_shedding_st' "$T"/logs/gw*.log

# a resend with the same client id gets the first answer; nothing was stored twice
first=$(grep -P '^m-1\t' "$T/sent.tsv" | cut -f2)
expect_rc 0 cli snd1 send alice "m-1" --client-id 9001
assert_eq $'alice\t1\t'"$first" "$OUT" "resend of m-1"
assert_eq $((3 * N)) \
  "$(psql_q "SELECT count(*) FROM sends WHERE client_id BETWEEN 9001 AND $((9000 + 3 * N))")" \
  "sends rows of the senders"
# bob's MAX queued sends were committed once the fanout came back, the shed ones never
carol_has() { [ "$(queued carol)" -ge "$MAX" ]; }
wait_until 10 carol_has
assert_eq "$MAX" "$(queued carol)" "envelopes for carol (the backlog, not the shed sends)"

# every accepted message reaches alice exactly once, under the id its send was answered with
expect_rc 0 cli alice recv --json --count $((3 * N)) --timeout 30
: >"$T/received.tsv"
while IFS= read -r l; do
  printf '%s\t%s\n' "$(json_str "$l" text)" "$(json_num "$l" id)" >>"$T/received.tsv"
done <<<"$OUT"
assert_eq "$(sort "$T/sent.tsv")" "$(sort "$T/received.tsv")" "received (text, id) vs accepted sends"
wait_until 10 queue_empty alice
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "nothing more for alice"

# --- 4. parley-loadtest through a short freeze: every accepted message delivered, none lost
LT_BIN=$PARLEY_BIN/loadtest/parley-loadtest
[ -x "$LT_BIN" ] || fail "loadtest binary missing: $LT_BIN"
shed_before=$(shed_total)
fwd_before=$(gw_metric 1 parley_gateway_sends_forwarded_total)
spawn_to lt timeout 150 "$LT_BIN" chat --pool "$T/lt.pool" --quiet --json \
  --server "${GW_URL[1]}" --server "${GW_URL[2]}" --devices 40 --rate 200 --seconds 6 \
  --offline-fraction 0 --grace 40
lt_pid=$SPAWNED
sending() { [ "$(gw_metric 1 parley_gateway_sends_forwarded_total)" -gt $((fwd_before + 50)) ]; }
wait_until 60 sending
kill -STOP "${PIDS[fo1]}"
sleep 2
kill -CONT "${PIDS[fo1]}"
wait_rc "$lt_pid"
[ "$WRC" = 0 ] || fail "loadtest exit $WRC: $(cat "$T/lt.out") $(cat "$T/lt.err")"
cat "$T/lt.out" >"$T/report.json"
python3 - "$T/report.json" <<'EOF' || fail "loadtest accounting: $(cat "$T/report.json") $(cat "$T/lt.err")"
import json, sys
j = json.load(open(sys.argv[1]))
m = j["messages"]
print("loadtest: sent %d accepted %d delivered %d lost %d unanswered %d retried %s"
      % (m["sent"], m["accepted"], m["delivered"], m["lost"], m["unanswered"], m.get("retried")))
assert j["ok"] and j["exit"] == 0
assert m["sent"] > 0 and m["accepted"] == m["sent"]
assert m["delivered"] == m["accepted"] and m["lost"] == 0 and m["unanswered"] == 0
assert m["rejected_total"] == 0
assert m["retried"].get("UNAVAILABLE", 0) > 0
EOF
[ "$(shed_total)" -gt "$shed_before" ] || fail "the loadtest's sends were never shed"
