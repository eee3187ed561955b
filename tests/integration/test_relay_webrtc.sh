#!/usr/bin/env bash
# test_relay_webrtc.sh: a browser's WebRTC through parley-relay. Headless Chromium (Debian
# package chromium, installed by scripts/install-deps) loads a page that connects two
# RTCPeerConnections with iceTransportPolicy "relay" and the relay's REST credentials, sends a
# message over a data channel, and reports the selected candidate pair of both ends from
# getStats: both local and remote candidates must be of type relay. The relay allows loopback
# peers here (allow_peers = 127.0.0.1): both relayed addresses are on 127.0.0.1.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHROMIUM=$(command -v chromium || true)
[ -n "$CHROMIUM" ] || fail "chromium not installed (scripts/install-deps installs it)"
# the relay: lib.sh's start_relay (stopped, and checked for sanitizer reports, at exit)
SECRET=webrtc-test-secret
RELAY_SECRET=$SECRET

metric() { # name{labels} -> value (0 when absent)
  local v
  v=$(http_get "${RELAY_ADMIN[relay]}" /metrics | awk -v n="$1" '$1 == n {print $2}')
  echo "${v:-0}"
}

start_relay
user="$(($(date +%s) + 600)):webrtc"
pass=$(printf '%s' "$user" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64)

# The page: non-trickle offer/answer (each side waits for its gathering to complete), then a
# message both ways over a data channel, then the selected pairs' candidate types.
cat >"$T/page.html" <<EOF
<!doctype html>
<html><body><pre id="out">pending</pre><script>
const cfg = {
  iceServers: [{urls: ['turn:127.0.0.1:${RELAY_PORT[relay]}?transport=udp'], username: '$user',
                credential: '$pass'}],
  iceTransportPolicy: 'relay'
};
let done = false;
function report(s) {
  if (done) return;
  done = true;
  document.getElementById('out').textContent = s;
  console.log('PARLEY_RESULT ' + s);
}
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise(res => pc.addEventListener('icegatheringstatechange', () => {
    if (pc.iceGatheringState === 'complete') res();
  }));
}
async function pairTypes(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach(r => {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId);
  });
  if (!pair) return 'none/none';
  return stats.get(pair.localCandidateId).candidateType + '/' +
         stats.get(pair.remoteCandidateId).candidateType;
}
(async () => {
  const a = new RTCPeerConnection(cfg), b = new RTCPeerConnection(cfg);
  const ch = a.createDataChannel('parley');
  const opened = new Promise(res => { ch.onopen = res; });
  const echoed = new Promise(res => { ch.onmessage = m => res(m.data); });
  b.ondatachannel = e => { e.channel.onmessage = m => e.channel.send('echo:' + m.data); };
  await a.setLocalDescription(await a.createOffer());
  await gathered(a);
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await gathered(b);
  await a.setRemoteDescription(b.localDescription);
  await opened;
  ch.send('hello through the relay');
  const echo = await echoed;
  report('ok echo=[' + echo + '] a=' + await pairTypes(a) + ' b=' + await pairTypes(b));
})().catch(e => report('error ' + e));
setTimeout(() => report('timeout'), 40000);
</script></body></html>
EOF

profile=$(mktemp -d "$T/chromium-profile.XXXXXX")
spawn_to chromium timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
  --no-first-run --disable-background-networking --disable-component-update --disable-sync \
  --allow-loopback-in-peer-connection --user-data-dir="$profile" \
  --enable-logging=stderr --v=0 "file://$T/page.html"
chromium_pid=$SPAWNED
result_line() { grep -ao 'PARLEY_RESULT [^"]*' "$T/chromium.err" | head -n 1; }
deadline=$((SECONDS + 80))
until [ -n "$(result_line)" ]; do
  if ! kill -0 "$chromium_pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
    tail -n 40 "$T/chromium.err" >&2
    fail "no result from the page"
  fi
  sleep 0.2
done
result=$(result_line)
stop_spawned "$chromium_pid"
echo "page: $result"
assert_contains "$result" "PARLEY_RESULT ok echo=[echo:hello through the relay]" "page result"
assert_contains "$result" " a=relay/relay b=relay/relay" "selected candidate pairs"
# the data went through this relay, both ways
[ "$(metric 'parley_relay_packets_total{direction="to_peer"}')" -gt 0 ] \
  || fail "nothing relayed to a peer"
[ "$(metric 'parley_relay_packets_total{direction="to_client"}')" -gt 0 ] \
  || fail "nothing relayed to a client"
