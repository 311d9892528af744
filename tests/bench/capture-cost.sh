#!/usr/bin/env bash
# What the live capture costs while the workstation moves bulk data, against
# tcpdump in the same run. iperf3 moves data through port 443 between two
# network namespaces this script creates, at a fixed rate, downloading then
# uploading; each capturer in turn watches the workstation's interface:
#   vigie            vigie-agent run (monitor mode) with its kernel filter
#   vigie-unfiltered the same, every frame copied to user space (--no-kernel-filter)
#   tcpdump          tcpdump -w /dev/null 'port 53 or port 443'
# Reported: CPU of the capturer as % of one core, and its peak RSS.
#
#   bash tests/bench/capture-cost.sh [RATE] [SECONDS]     (default 1G 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
rate=${1:-1G}
seconds=${2:-5}
rust_ensure
apt_ensure iperf3 tcpdump iproute2 python3
log "build"
cargo build --release --locked -p vigie-agent -p vigie-tests
agent=$(release_dir)/vigie-agent
lab=$(release_dir)/vigie-lab
id=$(( $$ % 100000 ))
work=$(mktemp -d)
cleanup() {
    "$lab" down bc "$id"
    rm -rf "$work"
}
trap cleanup EXIT
eval "$("$lab" up bc "$id")"
c=$LAB_CLIENT s=$LAB_SERVER
ip netns exec "$s" timeout 600 iperf3 -s -p 443 -D --pidfile "$work/iperf3.pid"
sleep 0.5

# cpu_seconds PID: user + system time so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

measure() { # name, command...
    local name=$1; shift
    ip netns exec "$c" "$@" > "$work/$name.log" 2>&1 &
    local pid=$!
    sleep 1.5 # let it open its socket
    for direction in download upload; do
        local flag=""; [ "$direction" = download ] && flag=-R
        local before; before=$(cpu_seconds "$pid")
        local start; start=$(date +%s.%N)
        ip netns exec "$c" timeout $((seconds + 10)) iperf3 -c "$LAB_SERVER_IP" -p 443 -t "$seconds" -b "$rate" $flag --json > "$work/iperf.json"
        local end; end=$(date +%s.%N)
        local after; after=$(cpu_seconds "$pid")
        local gbits; gbits=$(python3 -c "import json;print(round(json.load(open('$work/iperf.json'))['end']['sum_received']['bits_per_second']/1e9,2))")
        local rss; rss=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
        python3 -c "print(f'{\"$name\":18} {\"$direction\":9} {$gbits:6.2f} Gbit/s   CPU {100*($after-$before)/($end-$start):6.2f} % of a core   peak RSS {$rss/1024:6.1f} MiB')"
    done
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}

log "bulk transfers at $rate for ${seconds}s each way, through port 443"
measure vigie env VIGIE_LOG=warn "$agent" run -i "$LAB_CLIENT_IF" --db "$work/v.db" --socket "$work/v.sock"
measure vigie-unfiltered env VIGIE_LOG=warn "$agent" run -i "$LAB_CLIENT_IF" --db "$work/u.db" --socket "$work/u.sock" --no-kernel-filter
measure tcpdump tcpdump -i "$LAB_CLIENT_IF" -n -q -w /dev/null 'port 53 or port 443'
