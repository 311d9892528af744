#!/usr/bin/env bash
# What the software inventory costs.
#  1. A full look at a large profile: N Chromium extensions (a third AI, with
#     real manifests from tests/fixtures/inventory, the rest uBlock-like),
#     N/2 VS Code extensions, N/4 Firefox add-ons and 20 JetBrains plugin
#     jars; `vigie-agent inventory --home` (processes and sockets included)
#     against jq parsing the same manifests and package.json files, the
#     least a JSON-reading inventory does, in the same run (hyperfine).
#  2. The idle cost of watching: `vigie-agent run` (monitor mode, loopback
#     only) with the inventory on that profile, the inventory thread's CPU
#     time over a quiet minute, then the time an installed extension takes to
#     be recorded.
#
#   bash tests/bench/inventory-cost.sh [N] [IDLE_SECONDS]     (default 400 60)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh
n=${1:-400}
idle=${2:-60}
rust_ensure
apt_ensure hyperfine jq python3 sqlite3 zip
log "build"
cargo build --release --locked -p vigie-agent
agent=$(release_dir)/vigie-agent
work=$(mktemp -d)
agent_pid=
cleanup() {
    if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
home=$work/home

log "a profile of $n Chromium extensions, $((n / 2)) VS Code extensions, $((n / 4)) Firefox add-ons, 20 plugins"
python3 - "$home" "$n" <<'EOF'
import json, os, random, shutil, sys, zipfile
home, n = sys.argv[1], int(sys.argv[2])
fx = "tests/fixtures/inventory"
random.seed(7)
ai_manifest = open(f"{fx}/home/.config/google-chrome/Default/Extensions/ekkkmnbhbmbdkhmcbdkgbeikpgaknkkb/2.1.7_0/manifest.json").read()
plain_manifest = open(f"{fx}/home/.config/google-chrome/Default/Extensions/cjpalhdlnbpafiamejdnhcphjbkeiagm/1.58.0_0/manifest.json").read()
def chromium_id():
    return "".join(random.choice("abcdefghijklmnop") for _ in range(32))
for i in range(n):
    d = f"{home}/.config/google-chrome/Profile {i % 3}/Extensions/{chromium_id()}/1.{i}.0_0"
    os.makedirs(d)
    open(f"{d}/manifest.json", "w").write(ai_manifest if i % 3 == 0 else plain_manifest)
cline = json.load(open(f"{fx}/home/.vscode/extensions/saoudrizwan.claude-dev-3.37.1/package.json"))
for i in range(n // 2):
    ai = i % 3 == 0
    publisher, name = ("saoudrizwan", "claude-dev") if i == 0 else (f"pub{i}", f"ai-helper-{i}" if ai else f"tool-{i}")
    d = f"{home}/.vscode/extensions/{publisher}.{name}-1.0.{i}"
    os.makedirs(d)
    json.dump(dict(cline, publisher=publisher, name=name, version=f"1.0.{i}"), open(f"{d}/package.json", "w"))
base = json.load(open(f"{fx}/home/.mozilla/firefox/owclmdyt.default-release/extensions.json"))
addon = base["addons"][0]
addons = []
for i in range(n // 4):
    a = json.loads(json.dumps(addon))
    a["id"] = f"addon{i}@example.org"
    a["defaultLocale"]["name"] = f"ChatGPT helper {i}" if i % 3 == 0 else f"Tab tool {i}"
    addons.append(a)
os.makedirs(f"{home}/.mozilla/firefox/bench.default")
json.dump({"schemaVersion": 33, "addons": addons}, open(f"{home}/.mozilla/firefox/bench.default/extensions.json", "w"))
xml = open(f"{fx}/continue.plugin.xml").read()
for i in range(20):
    d = f"{home}/.local/share/JetBrains/IntelliJIdea2025.2/plugin-{i}/lib"
    os.makedirs(d)
    with zipfile.ZipFile(f"{d}/plugin-{i}.jar", "w", zipfile.ZIP_DEFLATED) as jar:
        jar.writestr("META-INF/plugin.xml", xml.replace("com.github.continuedev.continueintellijextension", f"org.example.plugin{i}"))
        jar.writestr("classes/Big.class", os.urandom(200_000))
shutil.copytree(f"{fx}/home/.config/Code", f"{home}/.config/Code")
EOF
files=$(find "$home" -type f | wc -l)
found=$("$agent" inventory --home "$home" --json | wc -l)
echo "profile: $files files, $found AI finds"

log "a full look: vigie-agent inventory against jq on the same JSON files"
manifests=$work/manifests
# (VS Code's settings allow comments, which jq refuses: left out, two files.)
find "$home" \( -name manifest.json -o -name package.json -o -name extensions.json \) >"$manifests"
hyperfine --warmup 2 --runs 15 --export-json "$work/full.json" \
    -n vigie "$agent inventory --home $home --json" \
    -n jq "xargs -d '\n' jq -c '{name, version, permissions}' <$manifests" >/dev/null
python3 - "$work/full.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
v, j = r["vigie"], r["jq"]
print(f"full look: vigie {v['median']*1000:.1f} ms (±{v['stddev']*1000:.1f}), jq {j['median']*1000:.1f} ms, ratio vigie/jq {v['median']/j['median']:.2f}")
EOF

log "the idle cost of watching, over ${idle}s"
cat >"$work/agent.toml" <<EOF
database = "$work/events.db"
socket = "$work/agent.sock"
interfaces = ["lo"]
[inventory]
homes = ["$home"]
applications = []
EOF
"$agent" run --config "$work/agent.toml" 2>"$work/agent.log" &
agent_pid=$!
# The first look is done once its events are stored.
for _ in $(seq 1 200); do
    [ "$(sqlite3 "file:$work/events.db?mode=ro" "select count(*) from events where source = 'inventory'" 2>/dev/null || echo 0)" -gt 0 ] && break
    sleep 0.1
done
sleep 2
thread_ticks() {
    for task in /proc/"$agent_pid"/task/*; do
        if [ "$(cat "$task/comm")" = inventory ]; then awk '{ print $14 + $15 }' "$task/stat"; return; fi
    done
    echo 0
}
hz=$(getconf CLK_TCK)
before=$(thread_ticks)
all_before=$(awk '{ print $14 + $15 }' /proc/"$agent_pid"/stat)
sleep "$idle"
after=$(thread_ticks)
all_after=$(awk '{ print $14 + $15 }' /proc/"$agent_pid"/stat)
python3 -c "
hz, idle = $hz, $idle
t, a = ($after - $before) * 1000 / hz, ($all_after - $all_before) * 1000 / hz
print(f'idle: inventory thread {t:.0f} ms of CPU in {idle} s ({t / idle / 10:.3f} % of a core); the whole agent {a:.0f} ms')
"
rss=$(awk '/VmRSS/ { print $2 }' /proc/"$agent_pid"/status)
echo "agent RSS: $((rss / 1024)) MiB"

log "an extension installed while watched"
ext="$home/.config/google-chrome/Profile 0/Extensions/difoiogjjojoaoomphldepapgpbgkhkb/4.10.0_0"
start=$(date +%s%N)
mkdir -p "$ext"
echo '{"manifest_version":3,"name":"Sider","version":"4.10.0","host_permissions":["<all_urls>"]}' >"$ext/manifest.json"
for _ in $(seq 1 200); do
    seen=$(sqlite3 "file:$work/events.db?mode=ro" "select count(*) from events where name = 'difoiogjjojoaoomphldepapgpbgkhkb'" 2>/dev/null || echo 0)
    [ "$seen" -gt 0 ] && break
    sleep 0.05
done
echo "install recorded after $(( ($(date +%s%N) - start) / 1000000 )) ms"
