#!/usr/bin/env bash
# DESIGN invariant 4: any fanout can be SIGKILLed at any moment without losing an acknowledged
# message. 100 sends stream from four senders in parallel to carol (gateway 1) while fanout 1
# is frozen holding unacked entries and killed (fanout 2 must claim its entries), and later
# fanout 2 is killed mid-stream; both are restarted. A send that fails is resent with the same
# client id, as a client would. Every accepted send reaches carol exactly once after dropping
# duplicate ids, under the envelope id its send was answered with, and nothing is queued twice.
source "$(dirname "$0")/lib.sh"

N=100
start_cluster
register carol 1
# four sending accounts (one device has one connection at a time, so parallel senders need
# their own devices), alternating between the gateways
for k in 1 2 3 4; do register "snd$k" $((k % 2 + 1)); done

# carol receives live on gateway 1 during the whole storm
spawn_to live cli carol recv --json --count "$N" --timeout 100
live_pid=$SPAWNED
wait_until 15 online carol

# four senders in parallel (25 messages each) keep several sends in flight at any moment;
# message m-i comes from snd((i-1)/25+1)
: >"$T/sent.tsv"
: >"$T/unsent.txt"
sender() { # account first last
  local i try out
  for ((i = $2; i <= $3; i++)); do
    for ((try = 1; try <= 5; try++)); do
      if out=$(timeout 30 "$CLI_BIN" --home "$(home_of "$1")" send carol "m-$i" \
                 --client-id $((700000 + i)) 2>>"$T/sender.err"); then
        # one short O_APPEND write per line: lines of parallel senders do not interleave
        printf '%s\t%s\n' "m-$i" "${out##*$'\t'}" >>"$T/sent.tsv"
        continue 2
      fi
      echo "m-$i: try $try failed" >>"$T/sender.err"
      sleep 0.5
    done
    echo "m-$i" >>"$T/unsent.txt"
  done
}
sender_pids=()
for k in 0 1 2 3; do
  spawn sender "snd$((k + 1))" $((k * N / 4 + 1)) $(((k + 1) * N / 4))
  sender_pids+=("$SPAWNED")
done

sent_at_least() { [ "$(wc -l <"$T/sent.tsv")" -ge "$1" ]; }
pending_of() { # consumer: entries it read but did not ack, over every ingress shard
  local s n=0
  for ((s = 0; s < INGRESS_SHARDS; s++)); do
    n=$((n + $(redis_q XPENDING "parley:ingress:$s" fanout - + 1000 "$1" | grep -cE '^[0-9]+-[0-9]+$')))
  done
  echo "$n"
}
holds_entries() { [ "$(pending_of "$1")" -gt 0 ]; }
holds_no_entries() { [ "$(pending_of "$1")" = 0 ]; }
metric() { # admin_port name: value of an unlabelled sample
  http_get "$1" /metrics | awk -v n="$2" '$1 == n { print $2 }'
}

# 1. fanout 1 freezes while its XREADGROUP is outstanding: Redis hands it entries that it
# never acks. Then it dies. Fanout 2 must claim those entries after claim_idle_ms.
wait_until 60 sent_at_least 15
# fanout 2 steps aside (SIGTERM: it finishes its batches) so that fanout 1 is the only
# consumer; otherwise Redis may hand every entry to fanout 2's reads, one per ingress shard
term_service fo2
await_exit fo2 20
assert_eq 0 "$WRC" "fanout 2 exit status after SIGTERM"
# Redis hands an entry to a frozen consumer only while its blocking read is outstanding
# (BLOCK 1000): if the freeze caught fo1 between reads, thaw it and try again
frozen=0
for attempt in 1 2 3 4 5; do
  kill -STOP "${PIDS[fo1]}"
  for _ in $(seq 1 40); do holds_entries fo1 && { frozen=1; break; }; sleep 0.1; done
  [ "$frozen" = 0 ] || break
  kill -CONT "${PIDS[fo1]}"
  sleep 0.3
done
[ "$frozen" = 1 ] || fail "fanout 1 was never handed an entry while frozen (sent: $(wc -l <"$T/sent.tsv"))"
echo "fanout 1 frozen holding $(pending_of fo1) entries; killing it"
start_fanout 2
kill_fanout 1
reclaimed() { [ "$(metric "${FO_ADMIN[2]}" parley_fanout_reclaimed_total)" -gt 0 ]; }
wait_until 20 reclaimed
wait_until 20 holds_no_entries fo1
echo "fanout 2 reclaimed $(metric "${FO_ADMIN[2]}" parley_fanout_reclaimed_total) entries"
wait_until 60 sent_at_least 45
start_fanout 1

# 2. fanout 2 dies mid-stream with SIGKILL and comes back
wait_until 60 sent_at_least 60
kill_fanout 2
echo "killed fanout 2 after $(wc -l <"$T/sent.tsv") sends"
sleep 1
start_fanout 2

for p in "${sender_pids[@]}"; do
  wait_rc "$p"
  assert_eq 0 "$WRC" "sender loop"
done
assert_eq "" "$(cat "$T/unsent.txt")" "sends never accepted after 5 tries"
assert_eq "$N" "$(wc -l <"$T/sent.tsv")" "accepted sends"
assert_eq "$N" "$(cut -f2 "$T/sent.tsv" | sort -u | wc -l)" "distinct envelope ids of accepted sends"
if [ -s "$T/sender.err" ]; then echo "sends that needed a retry:"; grep -c 'failed' "$T/sender.err" || true; fi

# every accepted send is committed exactly once (resends found their first answer)
assert_eq "$N" "$(psql_q "SELECT count(*) FROM sends WHERE client_id BETWEEN 700001 AND $((700000 + N))")" \
  "sends rows"

# carol's live recv ends when it has N distinct messages; a message whose push was lost with
# a killed fanout is still queued and comes with the next connection's drain
deadline=$((SECONDS + 40))
while kill -0 "$live_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
if kill -0 "$live_pid" 2>/dev/null; then
  echo "live recv still waiting after the storm: stopping it and draining the rest"
  stop_spawned "$live_pid" 2>/dev/null || true
fi
wait_rc "$live_pid"
[ "$WRC" = 0 ] || echo "live recv exit $WRC: $(cat "$T/live.err")"
expect_rc 0 cli carol recv --json --timeout 3
printf '%s\n' "$OUT" >"$T/drain.out"

# the client drops duplicate ids: its own output has none
live_ids=$(while IFS= read -r l; do json_num "$l" id || true; done <"$T/live.out")
assert_eq "$(printf '%s\n' "$live_ids" | sed '/^$/d' | sort | uniq -d)" "" "ids printed twice by one recv"

# union of both runs, deduplicated by id: exactly the N texts, each under its send's id
: >"$T/received.tsv"
while IFS= read -r l; do
  [ -n "$l" ] || continue
  id=$(json_num "$l" id) || fail "no id in recv line: $l"
  text=$(json_str "$l" text) || fail "no text in recv line: $l"
  n=${text#m-}
  assert_eq "snd$(((n - 1) / (N / 4) + 1))" "$(json_str "$l" from)" "sender of $text"
  assert_eq 1 "$(json_num "$l" device)" "sender device of $text"
  printf '%s\t%s\n' "$text" "$id" >>"$T/received.tsv"
done < <(cat "$T/live.out" "$T/drain.out")
sort -u "$T/received.tsv" -o "$T/received.tsv"
dups=$(cut -f1 "$T/received.tsv" | sort | uniq -d)
assert_eq "" "$dups" "messages received under two different ids (queued twice)"
assert_eq "$(sort "$T/sent.tsv")" "$(sort "$T/received.tsv")" "received (text, id) pairs vs accepted sends"

# everything was acked: carol's queue is empty
wait_until 10 queue_empty carol
assert_eq 0 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'carol'")" \
  "carol's queue_len"
