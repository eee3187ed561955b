#!/usr/bin/env bash
# Graceful gateway stop (SIGTERM): gateway 1 has authenticated clients (alice's `parley recv`,
# carol's parley-probe) and a send in flight (dave's, held back by frozen fanouts). On SIGTERM it
# turns unready, waits for the in-flight send's answer (drain_timeout_ms), closes its clients
# with 1001 and exits 0 in time. Checked too:
#  - the in-flight send is answered (accepted) before the close, and delivered;
#  - the probe sees close 1001;
#  - the recv CLI does not give up on 1001: it keeps reconnecting to its server (client/
#    session.c retries every close but 1008 and 4001 once authenticated) and is back by itself
#    when gateway 1 returns;
#  - no accepted message is lost: sent while gateway 1 is gone, alice gets them through
#    gateway 2; each exactly once, under the id its send was answered with.
source "$(dirname "$0")/lib.sh"

DRAIN_S=8
GW_EXTRA[1]="drain_timeout_ms = $((DRAIN_S * 1000))"
start_cluster
register alice 1
register bob 2
register carol 1
register dave 1

spawn_to live cli alice recv --json --timeout 58
live_pid=$SPAWNED
wait_until 20 online alice
spawn_to probe probe 1 --home "$(home_of carol)" --timeout 45 --expect-close 1001
probe_pid=$SPAWNED
wait_until 20 online carol

: >"$T/sent.tsv"
sent() { # TEXT: after run/expect_rc of a send, record its (text, id)
  assert_match "$OUT" $'^alice\t1\t[0-9]+$' "output of send $1"
  printf '%s\t%s\n' "$1" "${OUT##*$'\t'}" >>"$T/sent.tsv"
}
received() { # FILES...: (text, id) pairs printed by recv --json, sorted and deduplicated
  local l
  cat "$@" | while IFS= read -r l; do
    [ -n "$l" ] || continue
    printf '%s\t%s\n' "$(json_str "$l" text)" "$(json_num "$l" id)"
  done | sort -u
}
has_all() { # FILES...: every accepted send is among them
  [ -z "$(comm -23 <(sort "$T/sent.tsv") <(received "$@"))" ]
}

for i in 1 2; do
  expect_rc 0 cli bob send alice "before-$i"
  sent "before-$i"
done
wait_until 20 has_all "$T/live.out"

# a send in flight on gateway 1: the fanouts are frozen, so its answer is pending
kill -STOP "${PIDS[fo1]}" "${PIDS[fo2]}"
spawn_to inflight cli dave send alice "inflight" --client-id 3001 --timeout 25
inflight_pid=$SPAWNED
pending_on_gw1() { [ "$(metric_sum "${GW_ADMIN[1]}" parley_gateway_sends_pending)" -ge 1 ]; }
wait_until 20 pending_on_gw1

t0=$SECONDS
term_service gw1
# draining: out of the load balancer at once, still waiting for the send's answer
wait_until 5 readyz_is "${GW_ADMIN[1]}" 503
# the answer comes late: the fanouts stay frozen for a while (a scenario delay, well inside
# drain_timeout_ms, not a synchronisation); the gateway must keep waiting and keep its clients
sleep 1.5
_alive gw1 || fail "gateway 1 exited with a send still unanswered"
assert_eq 0 "$(grep -c 'event=shutdown_closing' "$T/logs/gw1.log")" "gateway 1 closing its clients with a send unanswered"
kill -CONT "${PIDS[fo1]}" "${PIDS[fo2]}"
# drain_timeout_ms for the answers, then up to 3 s for the clients to answer the 1001 close
await_exit gw1 $((DRAIN_S + 3 + 4))
assert_eq 0 "$WRC" "gateway 1's exit status after SIGTERM"
echo "gateway 1 exited $((SECONDS - t0)) s after SIGTERM"
grep -q 'event=shutdown_closing' "$T/logs/gw1.log" || fail "gateway 1 did not log its drain"
assert_contains "$(grep 'event=shutdown_closing' "$T/logs/gw1.log" | tail -n 1)" "unanswered_sends=0" \
  "gateway 1 closed its clients before the in-flight send was answered"

# the in-flight send was answered before the close
wait_rc "$inflight_pid"
OUT=$(cat "$T/inflight.out")
assert_eq 0 "$WRC" "in-flight send's exit status ($(cat "$T/inflight.err"))"
sent inflight

# the authenticated probe saw 1001
wait_rc "$probe_pid"
assert_eq 0 "$WRC" "probe expecting close 1001 ($(cat "$T/probe.out" "$T/probe.err"))"
assert_line "$(cat "$T/probe.out")" '^close 1001$' "probe output"

# the recv CLI did not exit on 1001: it retries its server (gateway 1, gone for now)
kill -0 "$live_pid" 2>/dev/null || fail "alice's recv exited on 1001: $(cat "$T/live.err")"
# (a presence key left behind by the dead gateway would only misdirect pushes until it expires)
echo "alice's presence after gateway 1 exited: [$(redis_q GET parley:presence:alice:1)]"

# gateway 1 is gone: messages sent now reach alice through gateway 2
for i in 1 2; do
  expect_rc 0 cli bob send alice "after-$i"
  sent "after-$i"
done
spawn_to via2 cli alice --server "${GW_URL[2]}" recv --json --timeout 40
via2_pid=$SPAWNED
wait_until 30 has_all "$T/live.out" "$T/via2.out"
wait_until 20 queue_empty alice
stop_spawned "$via2_pid"

# gateway 1 returns on its port: the recv CLI comes back by itself and gets live pushes again
start_gateway 1
online_gw1() { [[ $(redis_q GET parley:presence:alice:1) == gw1/* ]]; }
wait_until 30 online_gw1
expect_rc 0 cli bob send alice "final"
sent final
final_live() { grep -q '"text":"final"' "$T/live.out"; }
wait_until 20 final_live
wait_until 20 queue_empty alice
kill -0 "$live_pid" 2>/dev/null || fail "alice's recv ended early: $(cat "$T/live.err")"
stop_spawned "$live_pid"

# exactly the accepted sends, each under its own id, no message under two ids
all=$(received "$T/live.out" "$T/via2.out")
assert_eq "$(sort "$T/sent.tsv")" "$all" "received (text, id) pairs vs accepted sends"
assert_eq "" "$(cut -f1 <<<"$all" | sort | uniq -d)" "messages received under two ids"
assert_eq "" "$(grep -h '^parley: ' "$T/live.err" "$T/via2.err" | grep -v warning || true)" \
  "errors printed by alice's receivers"
