#!/usr/bin/env bash
# The console's three figures, from release builds, in a real window (the
# end-to-end test, src-tauri/tests/e2e.rs), RUNS times (default 3):
#   cold start   process start → "Mon activité" painted with its data
#   prompt       `dig chatgpt.com` sent → the block prompt painted
#   filter       free text over a million stored events → total and first rows
#                (measured in the page, IPC and agent included)
#   clipboard    a NIR copied (xclip) with a ChatGPT window in front → the
#                prompt painted; the clipboard watcher's CPU over 10 s idle
# Needs root (namespaces, the agent). Usage: bash tests/bench/console-perf.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
rust_ensure
console_ensure
apt_ensure xvfb openbox webkit2gtk-driver imagemagick xclip x11-utils iproute2 dnsutils dnsmasq-base iptables nftables
cargo_tool_ensure tauri-driver 2.1.0 tauri-driver
# The collector too: the test reads the fleet view from a real one.
cargo build --release --locked -p vigie-agent -p vigie-tests -p vigie-console -p vigie-collector
for run in $(seq "${RUNS:-3}"); do
    log "run $run"
    cargo test --release --locked -q -p vigie-console --test e2e -- --nocapture 2>&1 |
        grep -E '^(cold start|prompt:|filter|security view|charts|clipboard)'
done
