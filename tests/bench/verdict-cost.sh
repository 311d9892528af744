#!/usr/bin/env bash
# What packet verdicts and attribution cost a connection, in one run, in
# network namespaces this script creates: sequential curl connections to an
# HTTPS server in the "internet" namespace, with no agent, then with
# `vigie-agent run --enforce` (each connection's packets go through NFQUEUE
# until the agent has read its handshake and marked it decided). Reported:
#   - connect + TLS handshake time (curl's time_appconnect) to a catalogued,
#     monitored name (huggingface.co), p50 and p99, without and with the
#     agent: the added time is what a user waits;
#   - the agent's own decision time per queued packet (status: decision_nanos
#     / packets), which excludes the kernel round trip;
#   - attribution per new flow (status: p50/p99), for a catalogued name
#     (huggingface.co, monitored: every connection is attributed and let
#     through) — uncatalogued names are never attributed.
#
#   bash tests/bench/verdict-cost.sh [CONNECTIONS]      (default 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
connections=${1:-300}
rust_ensure
apt_ensure iptables nftables curl python3 openssl iproute2
log "build"
cargo build --release --locked -p vigie-agent -p vigie-tests
agent=$(release_dir)/vigie-agent
lab=$(release_dir)/vigie-lab
id=$(( $$ % 100000 ))
work=$(mktemp -d)
cleanup() {
    "$lab" down vc "$id"
    rm -rf "$work"
}
trap cleanup EXIT
eval "$("$lab" up vc "$id")"
c=$LAB_CLIENT s=$LAB_SERVER
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=internet -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat > "$work/server.py" <<'PY'
import ssl, sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    timeout = 5
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", 443), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = c.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)
s.serve_forever()
PY
ip netns exec "$s" timeout 900 python3 "$work/server.py" "$work/cert.pem" "$work/key.pem" &
sleep 1

# appconnect NAME: curl's connect + TLS time for each connection, in µs, sorted.
appconnect() {
    for _ in $(seq "$connections"); do
        ip netns exec "$c" curl -sk -o /dev/null --max-time 5 --resolve "$1:443:$LAB_SERVER_IP" \
            -w '%{time_appconnect}\n' "https://$1/"
    done | awk '{ printf "%d\n", $1 * 1e6 }' | sort -n
}
pct() { # file, quantile
    awk -v q="$2" '{ v[NR] = $1 } END { i = int((NR - 1) * q + 0.5) + 1; print v[i] }' "$1"
}

log "$connections connections without the agent"
appconnect huggingface.co > "$work/none.txt"
cat > "$work/agent.toml" <<EOF
enforce = true
database = "$work/events.db"
socket = "$work/agent.sock"
[resolver]
listen = ["127.0.0.153:53"]
upstreams = ["$LAB_SERVER_IP:53"]
EOF
ip netns exec "$c" env VIGIE_LOG=warn timeout 900 "$agent" run --config "$work/agent.toml" -i "$LAB_CLIENT_IF" &
sleep 2
log "$connections connections with the agent enforcing"
appconnect example.org > "$work/plain.txt"
"$agent" status --socket "$work/agent.sock" --json > "$work/status-plain.json"
appconnect huggingface.co > "$work/agent.txt"
"$agent" status --socket "$work/agent.sock" --json > "$work/status.json"
python3 - "$work/status-plain.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["verdicts"]
print(f"uncatalogued name (example.org): {v['packets']} packets queued, "
      f"decision {v['decision_nanos'] / max(v['packets'], 1) / 1000:.1f} us per packet on average")
PY
python3 - "$work/status.json" \
    "$(pct "$work/none.txt" 0.5)" "$(pct "$work/none.txt" 0.99)" \
    "$(pct "$work/agent.txt" 0.5)" "$(pct "$work/agent.txt" 0.99)" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
n50, n99, a50, a99 = map(int, sys.argv[2:])
v = status["verdicts"]
print(f"connect + TLS handshake, no agent:   p50 {n50} us, p99 {n99} us")
print(f"connect + TLS handshake, enforcing:  p50 {a50} us, p99 {a99} us  (added: p50 {a50 - n50} us, p99 {a99 - n99} us)")
print(f"all verdicts: {v['packets']} packets queued, {v['accepted']} accepted, {v['rejected']} rejected; "
      f"decision {v['decision_nanos'] / max(v['packets'], 1) / 1000:.1f} us per packet on average "
      f"(attribution of each huggingface.co connection included)")
a = status["attribution"]
print(f"attribution: {a['count']} flows, p50 {a['p50_us']} us, p99 {a['p99_us']} us, max {a['max_us']} us")
PY
