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
    $(release_dir)/make-bench-capture "$capture" "$packets" > "$capture.json"
fi
cat "$capture.json"

log "completeness: every handshake found"
$(release_dir)/vigie-agent scan "$capture" --json | tail -n 1 > "$out/vigie-summary.json"
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
    -n floor "$(release_dir)/pcap-walk $capture" \
    -n vigie "$(release_dir)/vigie-agent scan $capture" \
    -n ndpiReader "ndpiReader -q -i $capture"
# tshark keeps per-packet state and takes over half an hour on the full
# capture: it is timed, with vigie, on a capture of a tenth the size made
# the same way, and compared per packet.
small=$((packets / 10))
small_capture="$out/mixed-$small.pcap"
[ -s "$small_capture" ] || $(release_dir)/make-bench-capture "$small_capture" "$small" > "$small_capture.json"
tshark_names=$(tshark -n -r "$small_capture" -Y 'tls.handshake.type == 1' -T fields -e tls.handshake.extensions_server_name 2>/dev/null | grep -c . || true)
echo "tshark: $tshark_names ClientHello SNIs in $small_capture ($(cat "$small_capture.json"))"
hyperfine --style basic -N --runs 1 --export-json "$out/timing-tshark.json" \
    -n tshark "tshark -n -r $small_capture -Y 'tls.handshake.type == 1' -T fields -e tls.handshake.extensions_server_name" \
    -n vigie-small "$(release_dir)/vigie-agent scan $small_capture"

python3 - "$out/timing.json" "$out/timing-tshark.json" "$packets" "$small" <<'PY'
import json, sys
times = {}
for path in sys.argv[1:3]:
    for r in json.load(open(path))["results"]:
        times[r["command"]] = r["median"]
packets, small = int(sys.argv[3]), int(sys.argv[4])
v = times["vigie"]
print()
print(f"| reader | packets | median s | ns/packet | time / vigie's |")
print("|---|---|---|---|---|")
for name in ["floor", "vigie", "ndpiReader"]:
    t = times[name]
    print(f"| {name} | {packets} | {t:.3f} | {t / packets * 1e9:.0f} | {t / v:.2f} |")
for name in ["vigie-small", "tshark"]:
    t = times[name]
    print(f"| {name} | {small} | {t:.3f} | {t / small * 1e9:.0f} | {t / times['vigie-small']:.2f} |")
print()
print(f"vigie / floor = {v / times['floor']:.2f} (target <= 3)")
print(f"ndpiReader / vigie = {times['ndpiReader'] / v:.2f} (target >= 5)")
print(f"tshark / vigie = {times['tshark'] / times['vigie-small']:.1f} (on {small} packets)")
PY
