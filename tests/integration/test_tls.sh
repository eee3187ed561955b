#!/usr/bin/env bash
# A gateway serving wss:// itself (tls_cert, tls_key): clients that trust its certificate
# register and exchange messages over TLS with a client on a plain gateway; a client that does
# not trust it, and a plain ws:// client on the TLS port, are refused with a clear error.
source "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || fail "openssl is needed to make the test certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$T/tls.key" -out "$T/tls.crt" -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
  fail "openssl could not make a certificate"
chmod 644 "$T/tls.key"

start_redis
start_pg
start_fanout 1
GW_EXTRA[1]="tls_cert = $T/tls.crt
tls_key = $T/tls.key"
start_gateway 1
start_gateway 2
wss="wss://localhost:${GW_PORT[1]}/v1/ws"
grep -q 'event=listening .*tls=on' "$T/logs/gw1.log" || fail "gateway 1 does not say it serves TLS"

# not trusted: the system store does not know this self-signed certificate
expect_rc 1 cli mallory --server "$wss" register mallory
assert_contains "$ERR" "TLS" "untrusted certificate error"
# plain WebSocket on the TLS port
expect_rc 1 cli mallory --server "ws://127.0.0.1:${GW_PORT[1]}/v1/ws" register mallory
assert_contains "$ERR" "cannot reach server" "plain ws on the TLS port"

export SSL_CERT_FILE=$T/tls.crt
expect_rc 0 cli alice --server "$wss" register alice
register bob 2

spawn_to alice cli alice recv --count 2 --timeout 30
recv_pid=$SPAWNED
wait_until 15 online alice
expect_rc 0 cli bob send alice "over tls one"
expect_rc 0 cli bob send alice "over tls two"
wait_rc "$recv_pid"
assert_eq 0 "$WRC" "alice's recv over wss (stderr: $(cat "$T/alice.err" 2>/dev/null))"
assert_eq "$(printf 'bob\t1\tover tls one\nbob\t1\tover tls two')" "$(cat "$T/alice.out")" "messages over wss"

# and the other way: alice sends over TLS
expect_rc 0 cli alice send bob "from the tls side"
expect_rc 0 cli bob recv --count 1 --timeout 20
assert_eq "$(printf 'alice\t1\tfrom the tls side')" "$OUT" "bob receives alice's send over wss"
