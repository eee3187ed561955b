#!/usr/bin/env bash
# parley-loadtest against a small real cluster: each scenario once, briefly, with --json, and the
# accounting must balance: every accepted message delivered, nothing lost or rejected. Then the
# refusals: a server that is not on loopback (exit 2) and a pool made for another server (exit 3).
source "$(dirname "$0")/lib.sh"

LT_BIN=$PARLEY_BIN/loadtest/parley-loadtest
[ -x "$LT_BIN" ] || fail "loadtest binary missing: $LT_BIN"
command -v python3 >/dev/null || fail "python3 is needed to read the JSON reports"

# the harness registers its pool from a few loopback addresses: no anti-abuse costs here
for i in 1 2; do
  GW_EXTRA[$i]=$'pow_difficulty = 1\nregister_rate_per_minute = 1000000'
done
start_cluster
POOL=$T/lt.pool

lt() { timeout 120 "$LT_BIN" --pool "$POOL" --quiet --json "$@"; }

# jq-like checks on the last report: python3 evaluates EXPR with the report as `j`
check() { # what expr
  python3 - "$T/report.json" "$2" <<'EOF' || fail "$1: $2 is false in $(cat "$T/report.json")"
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}
report() { printf '%s\n' "$OUT" >"$T/report.json"; }

# --- connect: registers the pool (200 devices), all authenticate and idle 2 s
expect_rc 0 lt connect --server "${GW_URL[1]}" --gateway-pid "${PIDS[gw1]}" --devices 200 \
  --seconds 2 --sources 2
report
check connect 'j["ok"] and j["exit"] == 0'
check connect 'j["pool"]["registered"] == 200'
check connect 'j["connect"]["connections"] == 200 and j["connect"]["came_up"] == 200'
check connect 'j["connect"]["rate_per_s"] > 0'
check connect 'j["gateways"][0]["connections"] == 200'
check connect 'j["gateways"][0]["rss_per_conn_bytes"] is not None'
check connect 'j["harness"]["rss_per_device_bytes"] is not None'
[ "$(stat -c %a "$POOL")" = 600 ] || fail "pool file mode $(stat -c %a "$POOL"), expected 600"
[ "$(grep -vc '^#' "$POOL")" = 200 ] || fail "pool file does not hold 200 devices"

# --- chat: 100 devices over both gateways, a fifth of them offline for a second
expect_rc 0 lt chat --server "${GW_URL[1]}" --server "${GW_URL[2]}" --devices 100 \
  --seconds 4 --rate 200 --offline-fraction 0.2 --offline-seconds 1 --grace 20
report
m='j["messages"]'
check chat "j['ok'] and $m['accepted'] > 0 and $m['sent'] == $m['accepted']"
check chat "$m['delivered'] == $m['accepted'] and $m['lost'] == 0"
check chat "'duplicates' in $m and $m['rejected_total'] == 0 and $m['unanswered'] == 0"
check chat 'all(k in j["latency_us"]["all"] for k in ("p50", "p90", "p99", "p999", "max"))'
check chat 'j["latency_us"]["all"]["p50"] > 0 and j["latency_us"]["live"]["count"] > 0'
check chat 'j["latency_us"]["all"]["count"] == j["messages"]["delivered"]'
check chat 'len(j["timeline"]) > 0 and sum(s["sent"] for s in j["timeline"]) == j["messages"]["sent"]'

# --- burst: 500 messages queue for an offline device, which then drains them
expect_rc 0 lt burst --server "${GW_URL[1]}" --server "${GW_URL[2]}" --messages 500 \
  --senders 5 --rate 250
report
check burst "j['ok'] and $m['sent'] == 500 and $m['accepted'] == 500"
check burst "$m['delivered'] == 500 and $m['lost'] == 0 and $m['rejected_total'] == 0"
check burst 'j["latency_us"]["queued"]["count"] == 500 and j["latency_us"]["queued"]["p99"] > 0'
check burst 'j["burst"]["drain_s"] > 0 and j["burst"]["queued_at_auth"] >= 500'

# --- refusals
expect_rc 2 "$LT_BIN" connect --server ws://192.0.2.1:80/v1/ws --devices 1 --quiet
assert_contains "$ERR" "not a loopback address" "non-loopback refusal"

bad=$T/other.pool
(umask 077; printf 'ltfeedfacex0 1 42 %s\n' "$(hex_random 32)" >"$bad")
expect_rc 3 "$LT_BIN" connect --server "${GW_URL[1]}" --pool "$bad" --devices 1 --seconds 1 --quiet
assert_contains "$ERR" "the pool does not match this server: delete $bad" "pool mismatch"

expect_rc 2 "$LT_BIN" chat --e2ee
assert_contains "$ERR" "not available yet" "--e2ee refusal"
