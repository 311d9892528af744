#!/usr/bin/env bash
# Speed of `vigie-agent scan` against real peers, in one run on one capture:
#   floor      a reader that only walks the capture's records (tests/src/bin/pcap-walk.rs)
#   vigie      vigie-agent scan (the full pipeline: headers, TCP/QUIC reassembly, catalog, policy)
#   ndpiReader nDPI's reader (Debian libndpi-bin), quiet
#   tshark     Wireshark's dissector extracting every ClientHello SNI (TLS and QUIC)
# The capture (tests/src/bin/make-bench-capture.rs) mixes real handshakes from
# the fixtures among bulk mid-stream TCP traffic. Machines are noisy: compare
# the ratios, not the seconds.
#
#   bash tests/bench/scan-vs-peers.sh [PACKETS]     (default 1200000)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
packets=${1:-1200000}
out=target/bench
mkdir -p "$out"
rust_ensure
apt_ensure libndpi-bin tshark hyperfine python3

log "build"
cargo build --release --locked -p vigie-agent -p vigie-tests
capture="$out/mixed-$packets.pcap"
if [ ! -s "$capture" ]; then
    ./target/release/make-bench-capture "$capture" "$packets" > "$capture.json"
fi
cat "$capture.json"

log "completeness: every handshake found"
./target/release/vigie-agent scan "$capture" --json | tail -n 1 > "$out/vigie-summary.json"
python3 - "$capture.json" "$out/vigie-summary.json" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))["summary"]
expected = want["tls_handshakes"] + want["quic_handshakes"] + want["dns_queries"]
print(f"vigie: {got['observations']} observations for {expected} handshakes and queries "
      f"({got['sensor']['tls_client_hellos']} ClientHellos, {got['sensor']['dns_messages']} DNS messages)")
sys.exit(0 if got["observations"] == expected else 1)
PY

log "timing"
hyperfine --style basic -N --warmup 1 --runs "${RUNS:-5}" --export-json "$out/timing.json" \
    -n floor "./target/release/pcap-walk $capture" \
    -n vigie "./target/release/vigie-agent scan $capture" \
    -n ndpiReader "ndpiReader -q -i $capture"
# tshark takes minutes on this capture: one timed run, which also counts what it found.
start=$(date +%s.%N)
tshark_names=$(tshark -n -r "$capture" -Y 'tls.handshake.type == 1' -T fields -e tls.handshake.extensions_server_name 2>/dev/null | grep -c . || true)
end=$(date +%s.%N)
echo "tshark: $tshark_names ClientHello SNIs"
python3 -c "import json,sys; json.dump({'results': [{'command': 'tshark', 'median': $end - $start}]}, open(sys.argv[1], 'w'))" "$out/timing-tshark.json"

python3 - "$out/timing.json" "$out/timing-tshark.json" "$packets" <<'PY'
import json, sys
times = {}
for path in sys.argv[1:3]:
    for r in json.load(open(path))["results"]:
        times[r["command"]] = r["median"]
packets = int(sys.argv[3])
v = times["vigie"]
print()
print("| reader | median s | ns/packet | vs vigie |")
print("|---|---|---|---|")
for name in ["floor", "vigie", "ndpiReader", "tshark"]:
    t = times[name]
    print(f"| {name} | {t:.3f} | {t / packets * 1e9:.0f} | {t / v:.2f}x |")
print()
print(f"vigie / floor = {v / times['floor']:.2f} (target <= 3)")
print(f"ndpiReader / vigie = {times['ndpiReader'] / v:.2f} (target >= 5)")
print(f"tshark / vigie = {times['tshark'] / v:.2f}")
PY
