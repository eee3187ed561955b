# lib.sh: shared harness of the integration tests (tests/integration/test_*.sh source it).
#
# Each test gets a private temporary folder with a real Redis, a real PostgreSQL and the real
# Parley binaries on free loopback ports, and tears all of it down on exit. When a test fails
# (or a service did not exit cleanly on SIGTERM, or a sanitizer reported) the service logs are
# printed. Environment:
#   PARLEY_BIN   build folder (binaries at gateway/parley-gateway, fanout/parley-fanout,
#                client/parley, tests/tools/parley-probe)                       [required]
#   PARLEY_SRC   source checkout                                  [derived from this file]
#   PARLEY_KEEP_TMP=1       keep the temporary folder
#   PARLEY_TEST_LOG_LEVEL   log_level of the services [info]
#
# Services: start_redis, start_pg, start_fanout I, start_gateway I (I = 1 or 2; extra config
# lines in GW_EXTRA[I] / FO_EXTRA[I]), stop_* (SIGTERM, must exit 0), kill_* (SIGKILL),
# start_cluster (all of them; with CLUSTER_RELAY=1 also a TURN relay whose URI and secret the
# gateways hand out), start_relay [NAME [HOST [ALLOW]]] (parley-relay; RELAY_PORT[NAME],
# RELAY_ADMIN[NAME], secret RELAY_SECRET). Ports: REDIS_PORT PG_PORT GW_PORT[I] GW_ADMIN[I]
# FO_ADMIN[I], GW_URL[I]. Clients: cli USER ARGS (home folder per user), register USER I,
# link_device HOME APPROVER I (a new device of an account; link_start alone for its code),
# probe I ARGS; helpers in the background: spawn / spawn_to, stopped with stop_spawned (and all
# killed at exit).
# Checks: fail, assert_eq, assert_contains, assert_not_contains, assert_match, run (sets RC,
# OUT, ERR), wait_until, psql_q, redis_q, readyz_is, metric_sum. Outages: restart_redis (empty,
# same port), pause_pg / resume_pg. Graceful stop observed by the test: term_service, await_exit.

set -euo pipefail

: "${PARLEY_BIN:?PARLEY_BIN must name the build folder}"
PARLEY_SRC=${PARLEY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PARLEY_BIN=$(cd "$PARLEY_BIN" && pwd)
GATEWAY_BIN=$PARLEY_BIN/gateway/parley-gateway
FANOUT_BIN=$PARLEY_BIN/fanout/parley-fanout
CLI_BIN=$PARLEY_BIN/client/parley
RELAY_BIN=$PARLEY_BIN/relay/parley-relay
PROBE_BIN=$PARLEY_BIN/tests/tools/parley-probe

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/parley-$TEST_NAME.XXXXXX")
# as root PostgreSQL runs as postgres, which must reach its data folder in here
chmod 755 "$T"
mkdir -p "$T/logs" "$T/home" "$T/conf"
LOG_LEVEL=${PARLEY_TEST_LOG_LEVEL:-info}
INGRESS_SHARDS=4

declare -A PIDS=()        # service name -> pid of a running service we started
declare -A USED_PORTS=()
declare -a BG_PIDS=()     # helper processes a test started with spawn
declare -a EXIT_HOOKS=()
declare -a SERVICE_PROBLEMS=()
declare -a GW_PORT=() GW_ADMIN=() FO_ADMIN=() GW_URL=() GW_EXTRA=() FO_EXTRA=()
declare -A RELAY_PORT=() RELAY_ADMIN=() RELAY_EXTRA=()
RELAY_SECRET=relay-secret-$RANDOM$RANDOM
RELAY_SECRETS=''
REDIS_PORT='' PG_PORT=''
PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

# --- assertions ----------------------------------------------------------------------------

fail() {
  echo "FAIL [$TEST_NAME]: $*" >&2
  exit 1
}

assert_eq() { # expected actual [what]
  if [ "$1" != "$2" ]; then
    fail "${3:-value}: expected [$1], got [$2]"
  fi
}

assert_contains() { # haystack needle [what]
  case "$1" in *"$2"*) ;; *) fail "${3:-output} does not contain [$2]: [$1]" ;; esac
}

assert_not_contains() { # haystack needle [what]
  case "$1" in *"$2"*) fail "${3:-output} contains [$2]: [$1]" ;; esac
}

assert_contains_i() { # haystack needle [what]: ignoring case
  local h n
  h=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]'); n=$(printf '%s' "$2" | tr '[:upper:]' '[:lower:]')
  case "$h" in *"$n"*) ;; *) fail "${3:-output} does not contain [$2] (any case): [$1]" ;; esac
}

assert_line() { # text extended-regex [what]: some line of text matches (anchor it yourself)
  grep -qE -- "$2" <<<"$1" || fail "${3:-output} has no line matching /$2/: [$1]"
}

assert_match() { # string extended-regex [what]
  [[ "$1" =~ $2 ]] || fail "${3:-value} [$1] does not match /$2/"
}

# run CMD...: runs CMD (a program or one of the functions here), sets RC, OUT (stdout) and ERR
# (stderr); never exits. cli and probe bound their own run time.
run() {
  local o e
  o=$(mktemp "$T/out.XXXXXX"); e=$(mktemp "$T/err.XXXXXX")
  RC=0
  "$@" >"$o" 2>"$e" || RC=$?
  OUT=$(cat "$o"); ERR=$(cat "$e")
  rm -f "$o" "$e"
}

# expect_rc RC CMD...: run, and fail unless the exit code is RC
expect_rc() {
  local want=$1; shift
  run "$@"
  if [ "$RC" != "$want" ]; then
    fail "expected exit $want, got $RC from: $*
--- stdout:
$OUT
--- stderr:
$ERR"
  fi
}

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds; fails the test after
wait_until() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for: $*"
    sleep 0.1
  done
}

# spawn CMD...: a background helper (killed at exit if still running); its pid in SPAWNED
spawn() {
  "$@" &
  SPAWNED=$!
  BG_PIDS+=("$SPAWNED")
}

# spawn_to NAME CMD...: spawn with stdout in $T/NAME.out and stderr in $T/NAME.err
spawn_to() {
  local name=$1; shift
  "$@" >"$T/$name.out" 2>"$T/$name.err" &
  SPAWNED=$!
  BG_PIDS+=("$SPAWNED")
}

# _descendants PID: every process below PID (a spawned function runs in a subshell whose
# children, e.g. timeout and the CLI, outlive a signal to the subshell alone)
_descendants() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do _descendants "$c"; echo "$c"; done
}

# stop_spawned PID [SIGNAL]: signals a spawned helper and everything it started (TERM by
# default), then reaps it; WRC is its exit status
stop_spawned() {
  local p
  for p in $(_descendants "$1") "$1"; do kill "-${2:-TERM}" "$p" 2>/dev/null || true; done
  wait_rc "$1"
}

# wait_rc PID: sets WRC to the exit status of a spawned process (not in $(...): a subshell
# cannot wait for its parent's children)
wait_rc() { WRC=0; wait "$1" || WRC=$?; }

# queued USER [DEVICE]: rows in USER's envelope queue (all devices without DEVICE)
queued() {
  psql_q "SELECT count(*) FROM envelopes e JOIN accounts a ON a.id = e.account_id
           WHERE a.username = '$1' ${2:+AND e.device_id = $2}"
}
queue_empty() { [ "$(queued "$@")" = 0 ]; }
online() { [ -n "$(redis_q GET "parley:presence:$1:${2:-1}")" ]; } # USER [DEVICE]

on_exit() { EXIT_HOOKS+=("$*"); }

# --- ports and HTTP -----------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: a loopback port nobody listens on, below the kernel's ephemeral range
free_port() {
  local p i
  for ((i = 0; i < 500; i++)); do
    p=$((20000 + RANDOM % 12000))
    [ -z "${USED_PORTS[$p]:-}" ] || continue
    port_open "$p" && continue
    USED_PORTS[$p]=1
    printf -v "$1" '%s' "$p"
    return 0
  done
  fail "no free port found"
}

http_status() { # port path -> HTTP status code, 000 when unreachable
  local code
  code=$(timeout 3 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    read -r _ code _ <&3 && echo "$code"' _ "$1" "$2" 2>/dev/null) || code=000
  echo "${code:-000}"
}

http_get() { # port path -> response body (headers stripped)
  timeout 5 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" "$2" >&3
    cat <&3' _ "$1" "$2" 2>/dev/null | tr -d '\r' | sed '1,/^$/d'
}

is_ready() { [ "$(http_status "$1" /readyz)" = 200 ]; }
readyz_is() { [ "$(http_status "$1" /readyz)" = "$2" ]; } # port code

# metric_sum PORT NAME [LABELS]: the sum of NAME's samples (with exactly LABELS, e.g.
# '{code="UNAVAILABLE"}', when given) on an admin port; 0 when there are none
metric_sum() {
  http_get "$1" /metrics | awk -v n="$2${3:-}" -v any="${3:+0}" '
    $1 == n || (any == "" && index($1, n "{") == 1) { s += $2 } END { printf "%d\n", s }'
}

# --- service processes --------------------------------------------------------------------

# _start NAME CMD...: runs CMD in the background with its output in logs/NAME.log. The caller's
# PARLEY_* variables (PARLEY_BIN from ctest, a developer's PARLEY_PG...) are removed so that
# only the config file we write configures the service.
_start() {
  local name=$1; shift
  local clean=() v
  for v in ${!PARLEY_@}; do clean+=(-u "$v"); done
  echo "--- start $(date +%T.%N | cut -c1-12): $*" >>"$T/logs/$name.log"
  env "${clean[@]}" "$@" >>"$T/logs/$name.log" 2>&1 </dev/null &
  PIDS[$name]=$!
}

_alive() { [ -n "${PIDS[$1]:-}" ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

# _wait_ready NAME ADMIN_PORT: until /readyz says 200 (returns 0). Returns 1 when the process
# died first (reaped and forgotten); fails the test when it stays unready for 30 s.
_wait_ready() {
  local name=$1 port=$2 deadline=$((SECONDS + 30))
  until is_ready "$port"; do
    if ! _alive "$name"; then
      wait "${PIDS[$name]}" 2>/dev/null || true
      unset "PIDS[$name]"
      return 1
    fi
    if _port_clash "$T/logs/$name.log"; then _kill "$name"; return 1; fi
    [ $SECONDS -lt $deadline ] || fail "$name: /readyz on $port not 200 after 30s"
    sleep 0.1
  done
  # a service may report ready while one of its listeners failed to bind
  if _port_clash "$T/logs/$name.log"; then _kill "$name"; return 1; fi
}

# _port_clash LOGFILE: the latest start in LOGFILE failed to bind a port. Other test suites on
# the same machine pick random ports too; a clash is retried on new ports, never a failure.
_port_clash() {
  sed -n '/^--- start/h; /^--- start/!H; ${x;p}' "$1" | grep -qiE 'in use|could not bind|cannot bind|error on binding|EADDRINUSE'
}

# _stop NAME: SIGTERM, wait up to 20 s; a non-zero exit (crash, leak report) is a test failure
_stop() {
  local name=$1 pid=${PIDS[$1]:-} rc=0 deadline
  [ -n "$pid" ] || return 0
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    SERVICE_PROBLEMS+=("$name had exited by itself (status $rc) before it was stopped")
    unset "PIDS[$name]"
    return 0
  fi
  kill -CONT "$pid" 2>/dev/null || true  # a test may have frozen it with SIGSTOP
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    SERVICE_PROBLEMS+=("$name did not exit within 20s of SIGTERM")
  fi
  wait "$pid" 2>/dev/null || rc=$?
  if [ "$rc" != 0 ]; then SERVICE_PROBLEMS+=("$name exited with status $rc after SIGTERM"); fi
  unset "PIDS[$name]"
  return 0
}

# _kill NAME: SIGKILL (a crash): no exit status check
_kill() {
  local pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$1]"
}

redis_q() { timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

start_redis() {
  local try deadline
  mkdir -p "$T/redis"
  for try in 1 2 3 4; do
    [ -n "$REDIS_PORT" ] || free_port REDIS_PORT
    _start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --dir "$T/redis"
    deadline=$((SECONDS + 10))
    # a short timeout: a foreign listener on the port may accept and never answer
    until [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
      if ! _alive redis; then
        wait "${PIDS[redis]}" 2>/dev/null || true
        unset "PIDS[redis]"
        # a restart (restart_redis) must keep the port the services were configured with
        _port_clash "$T/logs/redis.log" && [ "$try" -lt 4 ] && [ "${1:-}" != same-port ] ||
          fail "redis-server exited (log: $T/logs/redis.log)"
        REDIS_PORT=''
        continue 2
      fi
      [ $SECONDS -lt $deadline ] || fail "Redis not answering on $REDIS_PORT"
      sleep 0.05
    done
    return 0
  done
}
stop_redis() { _kill redis; }  # Redis holds nothing durable here; its exit status is not ours

# restart_redis: Redis loses everything: kill it and start an empty one on the same port
restart_redis() {
  [ -n "$REDIS_PORT" ] || fail "restart_redis: Redis was never started"
  stop_redis
  start_redis same-port
}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_pg() {
  [ -n "$PG_PORT" ] || free_port PG_PORT
  local pgdata=$T/pg
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    mkdir -p "$pgdata"
    chmod 700 "$pgdata"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pgdata"; fi
    as_pg "$PG_BINDIR/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --locale=C --no-sync \
      >"$T/logs/initdb.log" 2>&1 || fail "initdb failed: $(cat "$T/logs/initdb.log")"
    as_pg tee -a "$pgdata/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pgdata'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 60
EOF
  fi
  touch "$T/logs/postgres.log"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$T/logs/postgres.log"; fi
  local try
  for try in 1 2 3 4; do
    echo "--- start $(date +%T.%N | cut -c1-12): port $PG_PORT" | as_pg tee -a "$T/logs/postgres.log" >/dev/null
    if as_pg "$PG_BINDIR/pg_ctl" -D "$pgdata" -l "$T/logs/postgres.log" -o "-p $PG_PORT" \
         -w -t 30 start >/dev/null 2>>"$T/logs/pg_ctl.log"; then
      break
    fi
    _port_clash "$T/logs/postgres.log" && [ "$try" -lt 4 ] || fail "PostgreSQL did not start"
    free_port PG_PORT
  done
  PG_STARTED=1
  local sql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
  if [ -z "$(psql -X -tA -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -c "SELECT 1 FROM pg_roles WHERE rolname = 'parley'")" ]; then
    "${sql[@]}" -c "CREATE ROLE parley LOGIN" -c "CREATE DATABASE parley OWNER parley"
  fi
  PGOPTIONS="-c client_min_messages=warning" "$PARLEY_SRC/deploy/sql/migrate" "host=127.0.0.1 port=$PG_PORT dbname=parley user=parley" ||
    fail "migrations failed"
}

stop_pg() {
  if [ "${PG_STARTED:-0}" = 1 ]; then
    as_pg "$PG_BINDIR/pg_ctl" -D "$T/pg" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    PG_STARTED=0
  fi
}

# pause_pg: stops PostgreSQL as an operator would (fast shutdown: clients are disconnected,
# committed data stays); resume_pg starts it again on the same port (the services keep theirs)
pause_pg() {
  [ "${PG_STARTED:-0}" = 1 ] || fail "pause_pg: PostgreSQL is not running"
  as_pg "$PG_BINDIR/pg_ctl" -D "$T/pg" -m fast -w -t 30 stop >/dev/null 2>>"$T/logs/pg_ctl.log" ||
    fail "pg_ctl stop failed: $(tail -n 5 "$T/logs/pg_ctl.log")"
  PG_STARTED=0
}
resume_pg() {
  [ "${PG_STARTED:-0}" = 0 ] || fail "resume_pg: PostgreSQL is running"
  echo "--- start $(date +%T.%N | cut -c1-12): port $PG_PORT (resume)" | as_pg tee -a "$T/logs/postgres.log" >/dev/null
  as_pg "$PG_BINDIR/pg_ctl" -D "$T/pg" -l "$T/logs/postgres.log" -o "-p $PG_PORT" -w -t 30 start \
    >/dev/null 2>>"$T/logs/pg_ctl.log" || fail "PostgreSQL did not start again on port $PG_PORT"
  PG_STARTED=1
}

# psql_q SQL: runs SQL as the parley role on the test database, prints unaligned tuples
psql_q() {
  psql -X -q -tA -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U parley -d parley -c "$1"
}

_common_conf() { # admin_port
  cat <<EOF
redis_host = 127.0.0.1
redis_port = $REDIS_PORT
pg = host=127.0.0.1 port=$PG_PORT dbname=parley user=parley
pg_pool = 2
ingress_shards = $INGRESS_SHARDS
admin_host = 127.0.0.1
admin_port = $1
log_level = $LOG_LEVEL
EOF
}

# start_gateway I: gateway gwI on GW_PORT[I] (kept across restarts), ready when this returns
start_gateway() {
  local i=$1 try fresh=0
  [ -n "${GW_PORT[$i]:-}" ] || fresh=1
  for try in 1 2 3 4; do
    if [ -z "${GW_PORT[$i]:-}" ]; then free_port "GW_PORT[$i]"; free_port "GW_ADMIN[$i]"; fi
    GW_URL[$i]="ws://127.0.0.1:${GW_PORT[$i]}/v1/ws"
    _start_gateway_once "$i" && return 0
    # ports chosen here may clash with another suite's; a restart keeps its ports (clients
    # remember the URL), so only a first start moves
    [ "$fresh" = 1 ] && [ "$try" -lt 4 ] && _port_clash "$T/logs/gw$i.log" ||
      fail "gw$i exited during start-up (log: $T/logs/gw$i.log)"
    # kept aside: a crash on a taken port is not this test's sanitizer finding
    mv "$T/logs/gw$i.log" "$T/logs/clash-gw$i-$try.log"
    unset "GW_PORT[$i]" "GW_ADMIN[$i]"
  done
}
_start_gateway_once() {
  local i=$1 conf=$T/conf/gw$1.conf
  {
    _common_conf "${GW_ADMIN[$i]}"
    echo "listen_host = 127.0.0.1"
    echo "listen_port = ${GW_PORT[$i]}"
    echo "gateway_id = gw$i"
    echo "pow_difficulty = 8"
    # every test registers its users from 127.0.0.1
    echo "register_rate_per_minute = 1000"
    echo "drain_timeout_ms = 3000"
    echo "${GW_EXTRA[$i]:-}"
  } >"$conf"
  [ -x "$GATEWAY_BIN" ] || fail "gateway binary missing: $GATEWAY_BIN"
  _start "gw$i" "$GATEWAY_BIN" --config "$conf"
  _wait_ready "gw$i" "${GW_ADMIN[$i]}"
}
stop_gateway() { _stop "gw$1"; }
kill_gateway() { _kill "gw$1"; }

# start_fanout I: fanout foI; claim_idle_ms is short so entries of a killed fanout move quickly
start_fanout() {
  local i=$1 try
  for try in 1 2 3 4; do
    [ -n "${FO_ADMIN[$i]:-}" ] || free_port "FO_ADMIN[$i]"
    _start_fanout_once "$i" && return 0
    [ "$try" -lt 4 ] && _port_clash "$T/logs/fo$i.log" ||
      fail "fo$i exited during start-up (log: $T/logs/fo$i.log)"
    mv "$T/logs/fo$i.log" "$T/logs/clash-fo$i-$try.log"
    unset "FO_ADMIN[$i]"
  done
}
_start_fanout_once() {
  local i=$1 conf=$T/conf/fo$1.conf
  {
    _common_conf "${FO_ADMIN[$i]}"
    echo "fanout_id = fo$i"
    echo "claim_idle_ms = 2000"
    echo "${FO_EXTRA[$i]:-}"
  } >"$conf"
  [ -x "$FANOUT_BIN" ] || fail "fanout binary missing: $FANOUT_BIN"
  _start "fo$i" "$FANOUT_BIN" --config "$conf"
  _wait_ready "fo$i" "${FO_ADMIN[$i]}"
}
stop_fanout() { _stop "fo$1"; }
kill_fanout() { _kill "fo$1"; }

# term_service NAME: SIGTERM without waiting; await_exit NAME SECONDS then sets WRC to its exit
# status (and forgets it), or fails the test when it still runs after SECONDS
term_service() {
  [ -n "${PIDS[$1]:-}" ] || fail "term_service: $1 is not running"
  kill -TERM "${PIDS[$1]}" 2>/dev/null || true
}
await_exit() {
  local pid=${PIDS[$1]:-} deadline=$((SECONDS + $2))
  [ -n "$pid" ] || fail "await_exit: $1 is not running"
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$1 still runs ${2}s after SIGTERM"
    sleep 0.1
  done
  wait_rc "$pid"
  unset "PIDS[$1]"
}

# start_relay [NAME [HOST [ALLOW]]]: parley-relay NAME (default relay) listening and relaying
# on HOST (127.0.0.1), TURN on RELAY_PORT[NAME] (UDP and TCP), admin on RELAY_ADMIN[NAME], REST
# secret RELAY_SECRET (the relay's list RELAY_SECRETS when set, e.g. "old, $RELAY_SECRET" for
# a rotation), extra config lines RELAY_EXTRA[NAME]; peers in ALLOW may be relayed to (default
# 127.0.0.1: tests run on loopback, which the relay refuses otherwise)
start_relay() {
  local name=${1:-relay} host=${2:-127.0.0.1} allow=${3-127.0.0.1} try lo
  [ -x "$RELAY_BIN" ] || fail "relay binary missing: $RELAY_BIN"
  for try in 1 2 3 4; do
    free_port "RELAY_PORT[$name]"
    free_port "RELAY_ADMIN[$name]"
    lo=$((40000 + (RANDOM % 100) * 200))
    cat >"$T/conf/$name.conf" <<EOF
listen_host = $host
listen_port = ${RELAY_PORT[$name]}
relay_ip = $host
relay_port_min = $lo
relay_port_max = $((lo + 199))
realm = parley.test
secrets = ${RELAY_SECRETS:-$RELAY_SECRET}
allow_peers = $allow
admin_port = ${RELAY_ADMIN[$name]}
log_level = $LOG_LEVEL
${RELAY_EXTRA[$name]:-}
EOF
    _start "$name" "$RELAY_BIN" --config "$T/conf/$name.conf"
    if _wait_ready "$name" "${RELAY_ADMIN[$name]}"; then return 0; fi
    unset "RELAY_PORT[$name]" "RELAY_ADMIN[$name]"
  done
  fail "$name did not start (log: $T/logs/$name.log)"
}
stop_relay() { _stop "${1:-relay}"; }

# relay_gateway_conf [NAME]: the gateway config lines that hand out credentials for relay NAME
relay_gateway_conf() {
  local name=${1:-relay}
  printf 'turn_uris = turn:127.0.0.1:%s?transport=udp\nturn_secret = %s\n' \
    "${RELAY_PORT[$name]}" "$RELAY_SECRET"
}

# start_cluster: Redis, PostgreSQL, two fanouts, two gateways; with CLUSTER_RELAY=1 first a
# relay (start_relay) whose URI and secret both gateways get (after their GW_EXTRA lines)
start_cluster() {
  local i
  if [ "${CLUSTER_RELAY:-0}" = 1 ]; then
    start_relay
    for i in 1 2; do
      GW_EXTRA[$i]="${GW_EXTRA[$i]:-}
$(relay_gateway_conf)"
    done
  fi
  start_redis
  start_pg
  start_fanout 1
  start_fanout 2
  start_gateway 1
  start_gateway 2
}

# --- clients ------------------------------------------------------------------------------

# cli USER ARGS...: the parley CLI with USER's home folder
cli() {
  local user=$1; shift
  mkdir -p "$T/home/$user"
  chmod 700 "$T/home/$user"
  timeout 90 "$CLI_BIN" --home "$T/home/$user" "$@"
}

# register USER I: registers USER through gateway I (the home remembers that server)
register() {
  [ -x "$CLI_BIN" ] || fail "client binary missing: $CLI_BIN"
  expect_rc 0 cli "$1" --server "${GW_URL[$2]}" register "$1"
  assert_eq "registered $1 device 1" "$OUT" "register $1 output"
}

# Linking (docs/DEVICES.md): the link code `parley link` prints
CODE_RE='[0-9A-Z]{4}(-[0-9A-Z]{4}){5}'

# link_start HOME I: `parley link` for a new home folder through gateway I, in the background;
# sets LINK_PID and LINK_CODE (read from its output)
link_start() {
  local home=$1 i=$2 deadline=$((SECONDS + 20))
  rm -rf "$T/home/$home"
  spawn_to "link-$home" cli "$home" --server "${GW_URL[$i]}" link
  LINK_PID=$SPAWNED
  LINK_CODE=''
  while [ -z "$LINK_CODE" ]; do
    [ $SECONDS -lt $deadline ] || fail "no link code from $home: $(cat "$T/link-$home.out" "$T/link-$home.err")"
    LINK_CODE=$(grep -oE "$CODE_RE" "$T/link-$home.out" | head -n 1 || true)
    sleep 0.1
  done
}

# link_device HOME APPROVER I: links a new home folder HOME, through gateway I, to the account of
# APPROVER (who approves its code); sets LINKED_ID, the new device's id
link_device() {
  local home=$1 approver=$2 i=$3
  link_start "$home" "$i"
  expect_rc 0 cli "$approver" approve "$LINK_CODE"
  assert_match "$OUT" '^approved device [0-9]+$' "approve output"
  local dev=${OUT##* }
  wait_rc "$LINK_PID"
  assert_eq 0 "$WRC" "exit of link for $home: $(cat "$T/link-$home.err")"
  assert_contains "$(cat "$T/link-$home.out")" "linked as $approver device $dev" "link output of $home"
  LINKED_ID=$dev
}

# probe I ARGS...: parley-probe against gateway I
probe() {
  local i=$1; shift
  [ -x "$PROBE_BIN" ] || fail "probe binary missing: $PROBE_BIN"
  timeout 60 "$PROBE_BIN" --server "${GW_URL[$i]}" --timeout 10 "$@"
}

home_of() { echo "$T/home/$1"; }

# json_num LINE KEY / json_str LINE KEY: a field of one flat JSON object (recv --json lines);
# json_num accepts the number quoted or not (64-bit ids are often strings in JSON)
json_num() { [[ $1 =~ \"$2\"[[:space:]]*:[[:space:]]*\"?([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
json_str() { [[ $1 =~ \"$2\"[[:space:]]*:[[:space:]]*\"(([^\"\\]|\\.)*)\" ]] && echo "${BASH_REMATCH[1]}"; }

# --- protobuf encoding for hand-made frames (hex strings) -----------------------------------

pb_varint() { # non-negative integer -> hex
  local n=$1 out=''
  while [ "$n" -ge 128 ]; do
    out+=$(printf '%02x' $(((n & 127) | 128)))
    n=$((n >> 7))
  done
  printf '%s%02x' "$out" "$n"
}
pb_uint() { printf '%s%s' "$(pb_varint $(($1 << 3)))" "$(pb_varint "$2")"; }   # field value
pb_bytes() { # field hex
  printf '%s%s%s' "$(pb_varint $((($1 << 3) | 2)))" "$(pb_varint $((${#2} / 2)))" "$2"
}
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
pb_str() { pb_bytes "$1" "$(hex_of "$2")"; }
hex_fill() { local b=$1 n=$2 s=''; for ((k = 0; k < n; k++)); do s+=$b; done; printf '%s' "$s"; }
hex_random() { od -An -v -tx1 -N "$1" /dev/urandom | tr -d ' \n'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ClientFrame{request_id 1, auth: AuthAnswer{account, device_id, timestamp_ms, signature}}
frame_auth() { # account device_id timestamp_ms signature_hex
  local body
  body=$(pb_str 1 "$1")$(pb_uint 2 "$2")$(pb_uint 3 "$3")$(pb_bytes 4 "$4")
  printf '%s%s' "$(pb_uint 1 1)" "$(pb_bytes 10 "$body")"
}

# ClientFrame{request_id 1, register: Register{...}} with random keys and zero signatures
frame_register() { # username registration_id pow_nonce
  local body
  body=$(pb_str 1 "$1")$(pb_bytes 2 "$(hex_random 32)")$(pb_bytes 3 "$(hex_random 32)")
  body+=$(pb_bytes 4 "$(hex_random 32)")$(pb_uint 5 "$2")$(pb_uint 6 "$3")
  body+=$(pb_bytes 7 "$(hex_fill 00 64)")$(pb_bytes 8 "$(hex_fill 00 64)")
  printf '%s%s' "$(pb_uint 1 1)" "$(pb_bytes 11 "$body")"
}

# --- teardown -----------------------------------------------------------------------------

_print_logs() {
  local f
  local n
  for f in "$T"/logs/*.log; do
    [ -s "$f" ] || continue
    case "${f##*/}" in gw*|fo*|cluster-g*|cluster-f*) n=150 ;; *) n=25 ;; esac
    echo "===== ${f##*/} (last $n lines)" >&2
    tail -n "$n" "$f" >&2
  done
}

_lib_exit() {
  local rc=$? h p name
  set +e
  for h in "${EXIT_HOOKS[@]}"; do eval "$h"; done
  for p in "${BG_PIDS[@]}"; do
    for h in $(_descendants "$p") "$p"; do kill -KILL "$h" 2>/dev/null; done
    wait "$p" 2>/dev/null
  done
  # gateways first (they drain clients while fanout still runs), then fanouts
  for name in $(printf '%s\n' "${!PIDS[@]}" | grep '^gw' | sort); do _stop "$name"; done
  for name in $(printf '%s\n' "${!PIDS[@]}" | grep '^fo' | sort); do _stop "$name"; done
  for name in $(printf '%s\n' "${!PIDS[@]}" | grep '^relay' | sort); do _stop "$name"; done
  stop_pg
  stop_redis
  if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
        "$T"/logs/gw*.log "$T"/logs/fo*.log "$T"/logs/relay*.log >/dev/null 2>&1; then
    SERVICE_PROBLEMS+=("sanitizer report in a service log")
  fi
  if [ ${#SERVICE_PROBLEMS[@]} -gt 0 ]; then
    for h in "${SERVICE_PROBLEMS[@]}"; do echo "FAIL [$TEST_NAME]: $h" >&2; done
    [ "$rc" != 0 ] || rc=1
  fi
  if [ "$rc" != 0 ]; then
    _print_logs
    echo "FAIL $TEST_NAME (exit $rc)" >&2
  else
    echo "PASS $TEST_NAME"
  fi
  if [ "${PARLEY_KEEP_TMP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
  exit "$rc"
}
trap _lib_exit EXIT
trap 'exit 130' INT TERM
