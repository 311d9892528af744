#!/usr/bin/env bash
# The local resolver against dnsmasq and unbound, in one run, in a network
# namespace this script creates. Each forwards to the same upstream (a
# dnsmasq that answers every name at once, TTL 300) and blocks the same
# GenAI names (20 % of the queries); 80 % are forwarded names, so the run
# measures forwarding, blocking and caching together:
#   vigie    vigie-agent run --enforce (resolver only, bundled policy)
#   dnsmasq  --cache-size=10000, the blocked names as --address=/name/0.0.0.0
#   unbound  2 threads, the blocked names as always_null local zones
# Throughput: dnsperf (10 s, 16 clients). Latency: after every name was asked
# once (warm caches), dns-latency sends 5,000 queries one at a time (an
# unloaded server) and reports p50/p99; "added" is over the upstream queried
# directly.
#
#   bash tests/bench/resolver-vs-peers.sh [SECONDS]      (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
seconds=${1:-10}
rust_ensure
apt_ensure dnsperf unbound dnsmasq-base iproute2
log "build"
cargo build --release --locked -p vigie-agent -p vigie-tests
agent=$(release_dir)/vigie-agent
latency=$(release_dir)/dns-latency
lab=$(release_dir)/vigie-lab
id=$(( $$ % 100000 ))
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
    "$lab" down rv "$id"
    rm -rf "$work"
}
trap cleanup EXIT
# The workstation namespace of the lab; the agent captures on its veth,
# which sees nothing: only its resolver is measured.
eval "$("$lab" up rv "$id")"
ns=$LAB_CLIENT
inns() { ip netns exec "$ns" "$@"; }

blocked=(chatgpt.com chat.openai.com claude.ai chat.mistral.ai chat.deepseek.com www.perplexity.ai gemini.google.com copilot.microsoft.com character.ai)
# 80 % forwarded (1,000 names), 20 % blocked.
python3 - "$work/queries.txt" "${blocked[@]}" <<'PY'
import random, sys
out, blocked = sys.argv[1], sys.argv[2:]
rng = random.Random(7)
lines = []
for i in range(8000):
    lines.append(f"w{rng.randrange(1000)}.bench.example A")
for i in range(2000):
    lines.append(f"{rng.choice(blocked)} A")
rng.shuffle(lines)
open(out, "w").write("\n".join(lines) + "\n")
PY

inns timeout 900 dnsmasq -k --conf-file=/dev/null --pid-file= --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.2 --local-ttl=300 --address=/#/192.0.2.1 --cache-size=0 &
addresses=()
for name in "${blocked[@]}"; do addresses+=("--address=/$name/0.0.0.0"); done
inns timeout 900 dnsmasq -k --conf-file=/dev/null --pid-file= --no-resolv --no-hosts --bind-interfaces \
    --listen-address=127.0.0.154 --server=127.0.0.2 --cache-size=10000 --dns-forward-max=1000 "${addresses[@]}" &
{
    cat <<EOF
server:
    interface: 127.0.0.155
    num-threads: 2
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    chroot: ""
    username: ""
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    msg-cache-size: 16m
    rrset-cache-size: 32m
EOF
    for name in "${blocked[@]}"; do echo "    local-zone: \"$name.\" always_null"; done
    cat <<EOF
forward-zone:
    name: "."
    forward-addr: 127.0.0.2
EOF
} > "$work/unbound.conf"
inns timeout 900 unbound -d -c "$work/unbound.conf" &
cat > "$work/agent.toml" <<EOF
enforce = true
database = "$work/events.db"
socket = "$work/agent.sock"
[resolver]
listen = ["127.0.0.153:53"]
upstreams = ["127.0.0.2:53"]
cache_entries = 10000
[verdicts]
enabled = false
EOF
VIGIE_LOG=warn inns timeout 900 "$agent" run --config "$work/agent.toml" -i "$LAB_CLIENT_IF" &
sleep 2

log "unloaded latency (5,000 queries one at a time)"
direct=$(inns "$latency" 127.0.0.2:53 "$work/queries.txt" 5000)
echo "upstream direct  $direct"
declare -A p99
for who in vigie:127.0.0.153 dnsmasq:127.0.0.154 unbound:127.0.0.155; do
    name=${who%%:*} addr=${who#*:}
    inns "$latency" "$addr:53" "$work/queries.txt" 10000 >/dev/null # every name once: warm caches
    result=$(inns "$latency" "$addr:53" "$work/queries.txt" 5000)
    p99[$name]=$(python3 -c "import json;print(json.loads('$result')['p99_us'])")
    echo "$(printf '%-16s' "$name") $result"
done

log "throughput (dnsperf, ${seconds}s, 16 clients)"
declare -A qps
for who in vigie:127.0.0.153 dnsmasq:127.0.0.154 unbound:127.0.0.155; do
    name=${who%%:*} addr=${who#*:}
    out=$(inns dnsperf -s "$addr" -d "$work/queries.txt" -l "$seconds" -c 16 -q 200 2>&1)
    qps[$name]=$(echo "$out" | awk '/Queries per second/ { print $4 }')
    lost=$(echo "$out" | awk '/Queries lost/ { print $3 }')
    avg=$(echo "$out" | awk '/Average Latency/ { print $4 }')
    echo "$(printf '%-8s' "$name") ${qps[$name]} queries/s, lost $lost, average latency ${avg}s"
done
python3 - "${qps[vigie]}" "${qps[dnsmasq]}" "${qps[unbound]}" "${p99[vigie]}" "${p99[dnsmasq]}" "$direct" <<'PY'
import json, sys
v, d, u, vp99, dp99, direct = sys.argv[1:]
direct = json.loads(direct)
print(f"\nvigie / dnsmasq = {float(v)/float(d):.2f}x queries/s, vigie / unbound = {float(v)/float(u):.2f}x")
print(f"p99 added over the upstream: vigie {float(vp99)-direct['p99_us']:.0f} us, dnsmasq {float(dp99)-direct['p99_us']:.0f} us")
PY
log "vigie resolver counters"
"$agent" status --socket "$work/agent.sock" | grep resolver
