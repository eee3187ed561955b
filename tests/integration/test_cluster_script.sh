#!/usr/bin/env bash
# deploy/local/cluster: up brings everything up (the relay too) and prints the gateway and relay
# URLs, a second up changes
# nothing, up after a crash restarts only what died, status tells what runs, down stops all of
# it, and the data survives a down/up. Runs on a temporary data folder and free ports so that
# it never touches a developer's cluster.
source "$(dirname "$0")/lib.sh"

cluster=$PARLEY_SRC/deploy/local/cluster
export PARLEY_DATA_DIR=$T/cluster
free_port PARLEY_CLUSTER_REDIS_PORT
free_port PARLEY_CLUSTER_PG_PORT
free_port PARLEY_CLUSTER_FANOUT_ADMIN_PORT
free_port PARLEY_CLUSTER_RELAY_PORT
free_port PARLEY_CLUSTER_RELAY_ADMIN_PORT
# two consecutive free ports each for the gateways' WebSocket and admin listeners
consecutive_pair() { # VAR
  local a b
  while :; do
    free_port a
    b=$((a + 1))
    if ! port_open "$b" && [ -z "${USED_PORTS[$b]:-}" ]; then USED_PORTS[$b]=1; break; fi
  done
  printf -v "$1" '%s' "$a"
}
consecutive_pair PARLEY_CLUSTER_WS_PORT
consecutive_pair PARLEY_CLUSTER_ADMIN_PORT
export PARLEY_CLUSTER_REDIS_PORT PARLEY_CLUSTER_PG_PORT PARLEY_CLUSTER_FANOUT_ADMIN_PORT \
  PARLEY_CLUSTER_WS_PORT PARLEY_CLUSTER_ADMIN_PORT PARLEY_CLUSTER_RELAY_PORT \
  PARLEY_CLUSTER_RELAY_ADMIN_PORT PARLEY_BIN
relay_adm=$PARLEY_CLUSTER_RELAY_ADMIN_PORT
ws1=$PARLEY_CLUSTER_WS_PORT ws2=$((PARLEY_CLUSTER_WS_PORT + 1))
adm1=$PARLEY_CLUSTER_ADMIN_PORT adm2=$((PARLEY_CLUSTER_ADMIN_PORT + 1))
on_exit '"$cluster" down >/dev/null 2>&1'
on_exit 'for f in "$PARLEY_DATA_DIR"/logs/*.log; do cp "$f" "$T/logs/cluster-${f##*/}" 2>/dev/null; done'

pid_file() { cat "$PARLEY_DATA_DIR/run/$1.pid"; }

# --- up
expect_rc 0 "$cluster" up --gateways 2
assert_contains "$OUT" "ws://127.0.0.1:$ws1/v1/ws" "up output"
assert_contains "$OUT" "ws://127.0.0.1:$ws2/v1/ws" "up output"
assert_line "$OUT" "^relay: turn:127\.0\.0\.1:$PARLEY_CLUSTER_RELAY_PORT \(admin http://127\.0\.0\.1:$relay_adm\)\$" \
  "relay line of up"
for p in "$adm1" "$adm2" "$PARLEY_CLUSTER_FANOUT_ADMIN_PORT" "$relay_adm"; do
  is_ready "$p" || fail "/readyz on $p not 200 after up"
done
[ "$(redis-cli -h 127.0.0.1 -p "$PARLEY_CLUSTER_REDIS_PORT" ping)" = PONG ] || fail "cluster Redis not answering"
[ -f "$PARLEY_DATA_DIR/gateway-1.conf" ] && [ -f "$PARLEY_DATA_DIR/fanout.conf" ] || fail "config files missing"
[ -s "$PARLEY_DATA_DIR/logs/gateway-1.log" ] || fail "gateway-1 log missing"
# the relay: a generated secret, kept private, in its config; only its own loopback address
# allowed as a peer (calls between two devices of this cluster); TURN on TCP too
secret=$(cat "$PARLEY_DATA_DIR/relay.secret")
[ ${#secret} -ge 32 ] || fail "relay secret too short: '$secret'"
assert_eq 600 "$(stat -c %a "$PARLEY_DATA_DIR/relay.secret")" "mode of relay.secret"
grep -qx "secrets = $secret" "$PARLEY_DATA_DIR/relay.conf" || fail "relay.conf lacks the secret"
assert_eq "allow_peers = 127.0.0.1/32" "$(grep '^allow_peers' "$PARLEY_DATA_DIR/relay.conf")" "relay's peer allow list"
# and the gateways mint credentials for it
grep -q "^turn_uris = turn:127.0.0.1:$PARLEY_CLUSTER_RELAY_PORT?transport=udp" "$PARLEY_DATA_DIR/gateway-1.conf" ||
  fail "gateway-1.conf lacks the relay's TURN URIs"
grep -qx "turn_secret_file = $PARLEY_DATA_DIR/relay.secret" "$PARLEY_DATA_DIR/gateway-1.conf" ||
  fail "gateway-1.conf lacks the relay's secret file"
port_open "$PARLEY_CLUSTER_RELAY_PORT" || fail "relay's TURN TCP port not open"
assert_eq 1 "$(psql -X -tA -h 127.0.0.1 -p "$PARLEY_CLUSTER_PG_PORT" -U parley -d parley \
  -c "SELECT count(*) FROM schema_migrations WHERE version = 1")" "migrations applied"

# --- status
expect_rc 0 "$cluster" status
for svc in redis postgres fanout gateway-1 gateway-2 relay; do
  assert_line "$OUT" "^$svc: running" "status of $svc"
done

# --- up again: says so, changes nothing
pids_now() { echo "$(pid_file redis) $(pid_file fanout) $(pid_file gateway-1) $(pid_file gateway-2) $(pid_file relay)"; }
pids_before=$(pids_now)
expect_rc 0 "$cluster" up --gateways 2
assert_contains "$OUT" "already up" "second up"
assert_line "$OUT" "^relay: turn:127.0.0.1:$PARLEY_CLUSTER_RELAY_PORT " "relay line of a second up"
assert_eq "$pids_before" "$(pids_now)" \
  "pids after a second up"

# --- the cluster works: two people, one on each gateway
expect_rc 0 cli alice --server "ws://127.0.0.1:$ws1/v1/ws" register alice
assert_eq "registered alice device 1" "$OUT" "register on the cluster"
expect_rc 0 cli bob --server "ws://127.0.0.1:$ws2/v1/ws" register bob
expect_rc 0 cli bob send alice "hello from the cluster"
expect_rc 0 cli alice recv --count 1 --timeout 15
assert_eq "$(printf 'bob\t1\thello from the cluster')" "$OUT" "message through the cluster"

# --- a crashed gateway: status tells, up restarts only it (stale pid file is fine)
gw2_old=$(pid_file gateway-2)
kill -KILL "$gw2_old"
while kill -0 "$gw2_old" 2>/dev/null; do sleep 0.1; done
run "$cluster" status
assert_eq 3 "$RC" "status exit code with a dead gateway"
assert_line "$OUT" "^gateway-2: stopped" "status of the killed gateway"
assert_line "$OUT" "^gateway-1: running" "status of the other gateway"
gw1_pid=$(pid_file gateway-1)
expect_rc 0 "$cluster" up --gateways 2
assert_not_contains "$OUT" "already up" "up after a crash"
assert_eq "$gw1_pid" "$(pid_file gateway-1)" "gateway-1 pid after restarting gateway-2"
[ "$(pid_file gateway-2)" != "$gw2_old" ] || fail "gateway-2 not restarted"
is_ready "$adm2" || fail "restarted gateway-2 not ready"

# --- down: everything stops, ports close
all_pids=$(pids_now)
expect_rc 0 "$cluster" down
assert_line "$OUT" "^relay: stopped" "relay in the output of down"
for p in $all_pids; do ! kill -0 "$p" 2>/dev/null || fail "pid $p still running after down"; done
for port in "$ws1" "$ws2" "$adm1" "$adm2" "$PARLEY_CLUSTER_FANOUT_ADMIN_PORT" \
            "$PARLEY_CLUSTER_REDIS_PORT" "$PARLEY_CLUSTER_PG_PORT" "$PARLEY_CLUSTER_RELAY_PORT" \
            "$relay_adm"; do
  ! port_open "$port" || fail "port $port still open after down"
done
run "$cluster" status
assert_eq 3 "$RC" "status exit code after down"
assert_line "$OUT" "^redis: stopped" "redis after down"
assert_line "$OUT" "^postgres: stopped" "postgres after down"
assert_line "$OUT" "^fanout: stopped" "fanout after down"
assert_line "$OUT" "^relay: stopped" "relay after down"
expect_rc 0 "$cluster" down   # idempotent

# --- up again on the same data: the accounts are still there, messages flow
expect_rc 0 "$cluster" up --gateways 1
assert_contains "$OUT" "ws://127.0.0.1:$ws1/v1/ws" "up output"
assert_not_contains "$OUT" "ws://127.0.0.1:$ws2/v1/ws" "up --gateways 1 output"
assert_line "$OUT" "^relay: turn:127.0.0.1:$PARLEY_CLUSTER_RELAY_PORT " "relay line after down/up"
assert_eq "$secret" "$(cat "$PARLEY_DATA_DIR/relay.secret")" "relay secret kept across down/up"
is_ready "$relay_adm" || fail "relay not ready after down/up"
! port_open "$ws2" || fail "gateway 2 listens after up --gateways 1"
# scaling up starts only the new gateway
gw1_pid=$(pid_file gateway-1)
expect_rc 0 "$cluster" up --gateways 2
assert_not_contains "$OUT" "already up" "up --gateways 2 after --gateways 1"
assert_contains "$OUT" "ws://127.0.0.1:$ws2/v1/ws" "up output"
assert_eq "$gw1_pid" "$(pid_file gateway-1)" "gateway-1 pid after adding gateway-2"
expect_rc 0 cli alice send bob "after a restart"
expect_rc 0 cli bob recv --count 1 --timeout 15
assert_eq "$(printf 'alice\t1\tafter a restart')" "$OUT" "message after down/up"
expect_rc 0 "$cluster" down
