#!/usr/bin/env bash
# The main job, on embedded defaults (bundled policy and catalog, SQLite):
# replays bundled real-client captures (DNS, TLS over TCP, QUIC, Chromium)
# through the detection pipeline, prints every observation with its
# decision, and stores the GenAI events in a SQLite database.
# The live agent will take this over.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
rust_ensure
log "build"
cargo build --release --locked -p vigie-agent
db=${VIGIE_DB:-target/vigie-demo/events.db}
mkdir -p "$(dirname "$db")"
for capture in dns-udp-tcp.pcap chromium-tcp-split.pcap chromium-quic.pcap curl-tls.pcap; do
    log "vigie-agent scan tests/fixtures/pcap/$capture"
    ./target/release/vigie-agent scan "tests/fixtures/pcap/$capture" --db "$db"
done
log "events stored in $db"
