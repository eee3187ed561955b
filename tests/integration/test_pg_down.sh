#!/usr/bin/env bash
# PostgreSQL outage (pg_ctl stop -m fast while the cluster runs): every gateway and fanout turns
# /readyz 503; a send fails with a clear UNAVAILABLE error (CLI exit 1) and stores nothing. When
# PostgreSQL is back, /readyz turns 200 again without restarting anything, sends work, and the
# sends accepted before the outage are still delivered, once each, in order.
source "$(dirname "$0")/lib.sh"

start_cluster
register alice 1
register bob 2

ids=()
for i in 1 2; do
  expect_rc 0 cli bob send alice "before-$i" --client-id $((600 + i))
  assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send before-$i output"
  ids+=("${OUT##*$'\t'}")
done
assert_eq 2 "$(queued alice 1)" "envelopes queued before the outage"

admins=("${GW_ADMIN[1]}" "${GW_ADMIN[2]}" "${FO_ADMIN[1]}" "${FO_ADMIN[2]}")
all_readyz() { # code: every gateway and fanout answers /readyz with it
  local p
  for p in "${admins[@]}"; do readyz_is "$p" "$1" || return 1; done
}
all_healthy() {
  local p
  for p in "${admins[@]}"; do [ "$(http_status "$p" /healthz)" = 200 ] || return 1; done
}

pause_pg
wait_until 30 all_readyz 503
# not ready is not dead: every process still serves its loop
all_healthy || fail "a service stopped answering /healthz while PostgreSQL is down"

# a send now fails at once and says why; it is not reported accepted
expect_rc 1 cli bob send alice "during-outage" --client-id 700 --timeout 10
echo "send during the outage: $ERR"
assert_eq "" "$OUT" "stdout of the send during the outage"
assert_contains "$ERR" "parley: " "stderr of the send during the outage"
assert_contains "$ERR" "UNAVAILABLE" "stderr of the send during the outage"
# every process survived the outage
for name in gw1 gw2 fo1 fo2; do _alive "$name" || fail "$name died while PostgreSQL was down"; done

resume_pg
wait_until 45 all_readyz 200

# nothing of the refused send was stored (no half-done send), the earlier two are intact
assert_eq 0 "$(psql_q "SELECT count(*) FROM sends WHERE client_id = 700")" "sends rows of the refused send"
assert_eq "$(printf '%s\n' "${ids[@]}")" \
  "$(psql_q "SELECT e.id FROM envelopes e JOIN accounts a ON a.id = e.account_id
              WHERE a.username = 'alice' ORDER BY e.id")" "envelopes kept across the outage"
assert_eq 2 "$(psql_q "SELECT queue_len FROM devices d JOIN accounts a ON a.id = d.account_id WHERE a.username = 'alice'")" \
  "alice's queue_len across the outage"

# sends work again (through both gateways' fresh PostgreSQL connections)
expect_rc 0 cli bob send alice "after" --client-id 703 --timeout 30
assert_match "$OUT" $'^alice\t1\t[0-9]+$' "send after the outage output"
ids+=("${OUT##*$'\t'}")

expect_rc 0 cli alice recv --json --count 3 --timeout 30
got_ids=$(while IFS= read -r l; do json_num "$l" id; done <<<"$OUT")
got_texts=$(while IFS= read -r l; do json_str "$l" text; done <<<"$OUT")
assert_eq "$(printf '%s\n' "${ids[@]}")" "$got_ids" "ids received"
assert_eq "$(printf '%s\n' before-1 before-2 after)" "$got_texts" "texts received"
wait_until 10 queue_empty alice 1

# alice (gateway 1) answers too, and the refused send never turns up
expect_rc 0 cli alice send bob "reply"
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq $'alice\t1\treply' "$OUT" "bob's message after the outage"
expect_rc 3 cli alice recv --count 1 --timeout 2
assert_eq "" "$OUT" "alice's queue after everything was acked"
wait_until 10 queue_empty bob 1
