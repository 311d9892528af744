#!/usr/bin/env bash
# The Debian packages on a real Debian 12 booted under systemd-nspawn -b:
# install, the agent under its unit in monitor then enforce mode (capture,
# resolver, packet verdicts with the rules in force), stop / kill -9 /
# watchdog, the journal's fields, the unit's exposure, tamper evidence,
# upgrade, refused downgrade, failed migration, remove, purge; the console
# package's dependencies.
#
# The machine is made with debootstrap from the host's Debian mirror, kept
# as a tarball in target/system/ (rebuilt when the package list changes) and
# unpacked fresh for every run. Its network is a namespace pair this script
# makes: the workstation and an "internet" with dnsmasq and a TLS server.
# Everything started here is stopped by PID at exit, namespaces included.
#
#   bash tests/system/debian-packages.sh   (root; builds the packages first
#                                           unless VIGIE_PACKAGES_BUILT=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

apt_ensure debootstrap systemd-container iproute2 dnsmasq-base openssl python3
[ "${VIGIE_PACKAGES_BUILT:-}" = 1 ] || packages_build
# --- the machine's root file system, cached -----------------------------------
rootfs_tar=$(system_rootfs_tar)

# --- what this run starts, and its end -----------------------------------------
work=$(mktemp -d /var/tmp/vigie-system.XXXXXX)
root=$work/root
ws=vsys-ws-$$
net=vsys-net-$$
nspawn_pid=
leader=
server_pids=()
cleanup() {
    set +e
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        [ -n "$leader" ] && in_machine systemctl --no-block poweroff >/dev/null 2>&1
        for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        # The container's init first: every process of the machine goes with it.
        [ -n "$leader" ] && kill -KILL "$leader" 2>/dev/null
        kill -KILL "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
    fi
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    ip netns del "$ws" 2>/dev/null
    ip netns del "$net" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The packages of packages_build, made again into this run's folder (cargo
# deb removes a package's other versions from target/debian), and the same
# agent under a later version: what an upgrade goes through.
mkdir -p "$work/debs"
agent_deb=$work/debs/vigie-agent.deb
cargo deb --no-build --locked -p vigie-agent -o "$agent_deb" >/dev/null
version=$(dpkg-deb -f "$agent_deb" Version)
upgrade_version=${version%-*}-$((${version##*-} + 1))
upgrade_deb=$work/debs/upgrade.deb
cargo deb --no-build --locked -p vigie-agent --deb-version "$upgrade_version" -o "$upgrade_deb" >/dev/null
console_deb=
if [ "${VIGIE_CONSOLE_PACKAGE:-1}" = 1 ]; then
    console_deb=$work/debs/vigie-console.deb
    cargo deb --no-build --locked -p vigie-console -o "$console_deb" >/dev/null
fi
# Put back in target/debian what packages_build left there.
deb_dir=${CARGO_TARGET_DIR:-$PWD/target}/debian
mkdir -p "$deb_dir"
cp "$agent_deb" "$deb_dir/vigie-agent_${version}_amd64.deb"
[ -z "$console_deb" ] || cp "$console_deb" "$deb_dir/vigie-console_$(dpkg-deb -f "$console_deb" Version)_amd64.deb"

failures=0
ok() { echo "ok - $*"; }
fail() {
    echo "FAIL - $*" >&2
    failures=$((failures + 1))
    # What the agent said just before, to see why.
    [ -n "$leader" ] && in_machine journalctl -u vigie-agent -n 30 --no-pager >&2 || true
}
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
# Waits up to $1 seconds for a command to succeed.
eventually() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

in_machine() {
    nsenter --target "$leader" --all -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# The container's init: pid 1 of its own namespace, below systemd-nspawn.
find_leader() {
    local pid child
    for pid in $(pgrep -P "$1"); do
        if awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$pid/status" 2>/dev/null; then
            echo "$pid"
            return 0
        fi
        child=$(find_leader "$pid") && { echo "$child"; return 0; }
    done
    return 1
}

# --- the network: workstation <-> internet ------------------------------------
# A run cut off before its cleanup (a CI job killed at its time limit)
# leaves its namespaces: those of a script whose PID is gone are removed,
# with what still runs in them.
for stale in $(ip netns list | awk '$1 ~ /^vsys-(ws|net)-[0-9]+$/ { print $1 }'); do
    kill -0 "${stale##*-}" 2>/dev/null && continue
    for pid in $(ip netns pids "$stale" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$stale" && echo "removed $stale, left by a run that did not end"
done
ip netns add "$ws"
ip netns add "$net"
ip link add "vw$$" netns "$ws" type veth peer name "vn$$" netns "$net"
ip -n "$net" addr add 10.77.0.1/24 dev "vn$$"
ip -n "$net" link set "vn$$" up
ip -n "$net" link set lo up
ip -n "$ws" link set lo up
ip -n "$ws" addr add 10.77.0.2/24 dev "vw$$"
ip -n "$ws" link set "vw$$" up
ip -n "$ws" route add default via 10.77.0.1
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=internet -keyout "$work/key.pem" \
    -out "$work/cert.pem" >/dev/null 2>&1
ip netns exec "$net" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=10.77.0.1 --address=/chatgpt.com/10.77.0.1 --address=/example.org/10.77.0.1 \
    --pid-file= --log-facility=- >"$work/dnsmasq.log" 2>&1 &
server_pids+=($!)
ip netns exec "$net" python3 tests/clients/https_server.py 10.77.0.1 "$work/cert.pem" "$work/key.pem" 443 \
    >"$work/https.log" 2>&1 &
server_pids+=($!)

# --- boot -----------------------------------------------------------------------
mkdir -p "$root"
tar -C "$root" -xf "$rootfs_tar"
echo vigie-ws >"$root/etc/hostname"
# A plain resolv.conf first (Debian's default); systemd-resolved, which the
# machine has, is switched on later for its own checks.
systemctl --root="$root" --quiet disable systemd-resolved.service
rm -f "$root/etc/resolv.conf"
printf 'nameserver 10.77.0.1\n' >"$root/etc/resolv.conf"
cp "$agent_deb" "$root/root/vigie-agent.deb"
[ -n "$console_deb" ] && cp "$console_deb" "$root/root/vigie-console.deb"

log "boot Debian 12 under systemd-nspawn"
systemd-nspawn --quiet --boot --directory="$root" --machine="vigie-$$" --keep-unit --register=no \
    --resolv-conf=off --network-namespace-path="/run/netns/$ws" --capability=CAP_NET_ADMIN >"$work/console.log" 2>&1 &
nspawn_pid=$!
eventually 30 find_leader "$nspawn_pid" >/dev/null || { tail -20 "$work/console.log" >&2; exit 1; }
leader=$(find_leader "$nspawn_pid")
booted() {
    local state
    state=$(in_machine systemctl is-system-running 2>/dev/null || true)
    [ "$state" = running ] || [ "$state" = degraded ]
}
eventually 60 booted || {
    tail -20 "$work/console.log" >&2
    in_machine systemctl is-system-running >&2
    in_machine systemctl --failed --no-pager >&2
    exit 1
}
ok "booted ($(in_machine systemctl is-system-running || true))"


# --- install ---------------------------------------------------------------------
agent_active() { [ "$(in_machine systemctl is-active vigie-agent)" = active ]; }
agent_inactive() { [ "$(in_machine systemctl is-active vigie-agent)" != active ]; }
main_pid() { in_machine systemctl show -P MainPID vigie-agent; }
# How many stored events name service $1 (as the console would read them).
events_about() {
    in_machine vigie-agent request events --params '{"limit":500}' 2>/dev/null | grep -c "\"service_id\": \"$1\"" || true
}
recorded() { [ "$(events_about "$1")" -ge "${2:-1}" ]; }
# How many times check $1 was recorded: identical events close in time are
# stored once with a repeat count.
tamper_count() {
    in_machine vigie-agent request events --params '{"limit":500}' 2>/dev/null | python3 -c '
import json, sys
print(sum(e.get("repeats", 1) for e in json.load(sys.stdin) if e.get("rule_id") == "tamper:" + sys.argv[1]))' "$1"
}
# Tamper evidence of check $1: an event (the journal entry comes with it).
tamper_recorded() {
    in_machine vigie-agent request events --params '{"limit":500}' 2>/dev/null | grep -q "\"rule_id\": \"tamper:$1\""
}
journal_has() { in_machine vigie-agent request journal --params '{"limit":200}' 2>/dev/null | grep -q "\"kind\": \"$1\""; }
contains() { grep -q -- "$2" <<<"$1"; }
# curl to https://$1/, with curl's further arguments.
reaches() {
    local host=$1
    shift
    in_machine curl -sk --max-time 5 -o /dev/null "$@" "https://$host/"
}
refused() { ! reaches "$@"; }
dig_answer() { in_machine dig +short +time=2 +tries=1 "$@" | head -1; }
# The agent's packet rules, from nftables or iptables (whichever took them).
rules_in_place() {
    in_machine nft list table inet vigie >/dev/null 2>&1 || in_machine iptables -w -t mangle -S VIGIE >/dev/null 2>&1
}
no_rules() { ! rules_in_place; }

log "install vigie-agent"
install_out=$(in_machine apt-get install -y /root/vigie-agent.deb 2>&1) || { echo "$install_out" >&2; exit 1; }
ok "apt install ./vigie-agent.deb"
check "the unit is enabled" test "$(in_machine systemctl is-enabled vigie-agent)" = enabled
check "the agent runs under its unit (Type=notify: it said it was ready)" eventually 15 agent_active
check "the vigie-admin group exists" in_machine getent group vigie-admin
conffiles=$(in_machine dpkg-query -W -f='${Conffiles}' vigie-agent)
check "/etc/vigie/agent.toml is a configuration file" contains "$conffiles" /etc/vigie/agent.toml
check "/etc/vigie/policy.toml is a configuration file" contains "$conffiles" /etc/vigie/policy.toml
# Every option of `run --help` is in its manual page.
help_options=$(in_machine vigie-agent run --help | grep -oE -- '--[a-z-]+' | sort -u)
manual=$(in_machine cat /usr/share/man/man1/vigie-agent-run.1)
missing=$(for option in $help_options; do grep -qF -- "${option//-/\\-}" <<<"$manual" || echo "$option"; done)
check "the manual page of \`run\` has every option of its --help${missing:+ (missing: $missing)}" test -z "$missing"
check "monitor mode by default" contains "$(in_machine vigie-agent status)" monitor
exposure=$(in_machine systemd-analyze security vigie-agent 2>/dev/null | awk '/Overall exposure level/ { print $(NF-2) }')
check "exposure of the running unit is ${exposure:-unknown} (at most 3.0)" \
    awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }'

# --- monitor mode -----------------------------------------------------------------
check "monitor: chatgpt.com is reachable" reaches chatgpt.com
check "monitor: its TLS handshake is recorded" eventually 10 recorded chatgpt
check "monitor: no packet rule" no_rules
fields=$(in_machine journalctl -u vigie-agent -o json --no-pager | grep '"VIGIE_SERVICE":"chatgpt"' | head -1)
check "the journal has the decision's fields (VIGIE_SERVICE, VIGIE_ACTION, …)" contains "$fields" '"VIGIE_ACTION"'

# --- enforce mode -------------------------------------------------------------------
log "enforce mode"
before_resolv=$(in_machine cat /etc/resolv.conf)
in_machine sed -i 's/^enforce = false/enforce = true/' /etc/vigie/agent.toml
# The tamper checks every 2 s instead of 30, for this test's pace.
printf '\n[tamper]\ncheck_every_secs = 2\nconsole_grace_secs = 4\n' | in_machine tee -a /etc/vigie/agent.toml >/dev/null
# The workstation's own SIEM lines, to a file and to the journal.
printf '\n[export]\nformat = "ocsf"\nfile = "/var/log/vigie/events.ocsf.jsonl"\njournald = true\n' |
    in_machine tee -a /etc/vigie/agent.toml >/dev/null
in_machine vigie-agent dns on
in_machine systemctl restart vigie-agent
check "enforce: the agent is back under its unit" eventually 15 agent_active
check "enforce: status says enforce" contains "$(in_machine vigie-agent status)" enforce
check "enforce: the packet rules are in force" rules_in_place
# Under the unit's system-call filter too: the agent waits on its queue's
# socket with its buffer enlarged, and the per-user limit is in.
agent_said=$(in_machine journalctl -u vigie-agent -o json --no-pager)
check "enforce: the packet queue's socket found and sized (no fallback)" \
    test -z "$(grep -E "packet queue's socket|enlarge the packet queue" <<<"$agent_said")"
check "enforce: the per-user limit on new connections is in force" \
    contains "$agent_said" '"VIGIE_NEW_CONNECTIONS_PER_SECOND":"1000"'
check "enforce: /etc/resolv.conf asks the agent first" \
    contains "$(in_machine head -5 /etc/resolv.conf)" "nameserver 127.0.0.153"
check "enforce: a blocked name resolves to nothing (0.0.0.0)" test "$(dig_answer chatgpt.com)" = 0.0.0.0
check "enforce: another name is forwarded upstream" test "$(dig_answer example.org)" = 10.77.0.1
check "enforce: a TLS handshake to chatgpt.com by address is refused (packet verdict)" refused chatgpt.com --resolve chatgpt.com:443:10.77.0.1
check "enforce: another site works" reaches example.org
exported_file() { in_machine grep -q '"sni":"chatgpt.com"' /var/log/vigie/events.ocsf.jsonl; }
exported_journal() { in_machine journalctl -t vigie-events -o json --no-pager | grep -q 'chatgpt.com'; }
check "export: the refused handshake is an OCSF line in /var/log/vigie (the unit's LogsDirectory)" eventually 10 exported_file
check "export: and a journal entry (-t vigie-events) carrying the document" eventually 10 exported_journal
check "export: status shows each destination" contains "$(in_machine vigie-agent status)" "export      journald"

# --- tamper evidence: what a user with sudo does, each recorded -------------------
log "tamper evidence"
in_machine sh -c 'echo "# loosened by hand" >> /etc/vigie/policy.toml'
check "tamper: a policy edited by hand is recorded" eventually 10 tamper_recorded policy-changed
in_machine cp /etc/resolv.conf /root/resolv.conf.agent
in_machine sh -c 'echo "nameserver 10.77.0.1" > /etc/resolv.conf'
check "tamper: DNS moved away from the agent is recorded" eventually 10 tamper_recorded dns-moved-away
in_machine cp /root/resolv.conf.agent /etc/resolv.conf
in_machine ip link add vsysdummy type veth peer name vsysdummy1
in_machine ip link set vsysdummy up
check "tamper: a new interface is recorded" eventually 10 tamper_recorded interfaces-changed
in_machine ip link del vsysdummy
in_machine systemctl disable --quiet vigie-agent
check "tamper: the unit disabled is recorded" eventually 10 tamper_recorded service-disabled
in_machine systemctl enable --quiet vigie-agent
in_machine cp -p /usr/bin/vigie-agent /root/vigie-agent.packaged
in_machine sh -c 'cp /usr/bin/vigie-agent /root/patched && printf "\0" >> /root/patched && mv /root/patched /usr/bin/vigie-agent'
check "tamper: the agent's program replaced is recorded" eventually 10 tamper_recorded binary-changed
in_machine mv /root/vigie-agent.packaged /usr/bin/vigie-agent
# A graphical login without the console (so without the clipboard guard):
# the PAM session a display manager opens for an X11 session.
in_machine useradd --create-home alice
in_machine systemd-run --quiet --unit=alice-x11 --uid=alice -p PAMName=login \
    --setenv=XDG_SESSION_TYPE=x11 --setenv=XDG_SESSION_CLASS=user sleep 600
graphical_session() { in_machine loginctl list-sessions --no-legend | grep -q alice; }
check "a graphical session of alice is open (logind)" eventually 10 graphical_session
check "tamper: her session without a console is recorded" eventually 15 tamper_recorded console-absent
in_machine systemctl stop alice-x11
pid=$(main_pid)
in_machine sh -c 'nft delete table inet vigie; iptables -w -t mangle -F VIGIE' || true
check "tamper: the packet rules removed are recorded" eventually 10 tamper_recorded firewall-rules-removed
restarted() { agent_active && [ "$(main_pid)" != "$pid" ] && [ "$(main_pid)" != 0 ]; }
rules_back() { restarted && rules_in_place; }
check "tamper: the agent restarts and puts the rules back" eventually 30 rules_back
check "tamper: enforcement holds again" refused chatgpt.com --resolve chatgpt.com:443:10.77.0.1
tamper_journal=$(in_machine journalctl -u vigie-agent -o json --no-pager | grep -c '"VIGIE_CHECK"' || true)
check "tamper: each is a journal entry with its fields ($tamper_journal with VIGIE_CHECK)" test "$tamper_journal" -ge 6

# --- the software inventory under the hardened unit ---------------------------------
# Alice's home is hers alone (0700): the unit reads it read-only with
# CAP_DAC_READ_SEARCH, and an extension she installs is recorded.
ext=/home/alice/.config/google-chrome/Default/Extensions/difoiogjjojoaoomphldepapgpbgkhkb/4.10.0_0
in_machine chmod 700 /home/alice
in_machine runuser -u alice -- mkdir -p "$ext"
in_machine runuser -u alice -- sh -c "printf '%s' '{\"manifest_version\":3,\"name\":\"Sider\",\"version\":\"4.10.0\",\"host_permissions\":[\"<all_urls>\"]}' > $ext/manifest.json"
inventoried() { in_machine vigie-agent request inventory 2>/dev/null | grep -q '"key": "difoiogjjojoaoomphldepapgpbgkhkb"'; }
check "inventory: an extension alice installs in her 0700 home is found by the unit" eventually 20 inventoried
inventory_event() {
    in_machine vigie-agent request events --params '{"limit":500}' 2>/dev/null | grep -q '"rule_id": "inventory:installed"'
}
check "inventory: and recorded as an event" eventually 10 inventory_event

# --- stop, kill -9, watchdog ------------------------------------------------------
log "stop, kill -9, watchdog"
pid=$(main_pid)
in_machine systemctl kill --signal=KILL vigie-agent
check "kill -9: systemd restarts the agent" eventually 15 restarted
check "kill -9: recorded as tamper evidence at the restart" eventually 10 tamper_recorded agent-killed
check "kill -9: the restart journals the unclean stop" eventually 5 journal_has unclean-stop
check "kill -9: the rules are back" eventually 5 rules_in_place
# Killed the moment it is up: its start was committed before anything else.
kills_before=$(tamper_count agent-killed)
in_machine systemctl restart vigie-agent
eventually 15 agent_active
pid=$(main_pid)
in_machine kill -KILL "$pid"
one_more_kill() { restarted && [ "$(tamper_count agent-killed)" -gt "$kills_before" ]; }
check "kill -9 the moment the agent is up: still recorded at the restart" eventually 20 one_more_kill

in_machine mkdir -p /etc/systemd/system/vigie-agent.service.d
printf '[Service]\nWatchdogSec=3s\n' | in_machine tee /etc/systemd/system/vigie-agent.service.d/watchdog-test.conf >/dev/null
in_machine systemctl daemon-reload
in_machine systemctl restart vigie-agent
eventually 15 agent_active
pid=$(main_pid)
since=$(in_machine date '+%Y-%m-%d %H:%M:%S')
sleep 7
check "a healthy agent keeps pinging: the same process after twice WatchdogSec=3s" test "$(main_pid)" = "$pid"
in_machine kill -STOP "$pid"
watchdog_fired() { in_machine journalctl -u vigie-agent --since "$since" --no-pager | grep -q "Watchdog timeout"; }
check "a frozen agent stops its pings: systemd's watchdog kills it" eventually 20 watchdog_fired
check "and restarts it" eventually 30 restarted
in_machine rm -r /etc/systemd/system/vigie-agent.service.d
in_machine systemctl daemon-reload

stops_before=$(tamper_count service-stopped)
in_machine systemctl stop vigie-agent
check "systemctl stop: the agent is stopped" agent_inactive
check "systemctl stop: its packet rules are gone (fail-open)" no_rules
check "systemctl stop: chatgpt.com is reachable while no agent runs (documented fail-open)" reaches chatgpt.com
check "systemctl stop: names still resolve (the next nameserver answers)" \
    eventually 10 bash -c "[ -n \"\$(nsenter --target $leader --all -- getent hosts example.org)\" ]"
in_machine systemctl start vigie-agent
one_more_stop() { [ "$(tamper_count service-stopped)" -gt "$stops_before" ]; }
check "the stop is tamper evidence (one more tamper:service-stopped than before it)" eventually 10 one_more_stop

eventually 15 agent_active
pid=$(main_pid)
in_machine kill "$pid"
check "a plain kill (SIGTERM to the process): systemd starts the agent again" eventually 15 restarted

# --- upgrade, downgrade, failed migration ------------------------------------------
log "upgrade and downgrade"
eventually 15 agent_active
in_machine sh -c 'echo "# edited on this workstation" >> /etc/vigie/policy.toml'
events_before=$(events_about chatgpt)
cp "$upgrade_deb" "$root/root/vigie-agent-upgrade.deb"
check "upgrade to $upgrade_version installs" in_machine apt-get install -y /root/vigie-agent-upgrade.deb
check "upgrade: the agent runs the new version" eventually 15 agent_active
check "upgrade: the store is kept ($events_before events about chatgpt)" recorded chatgpt "$events_before"
check "upgrade: the edited policy is kept" contains "$(in_machine tail -1 /etc/vigie/policy.toml)" "edited on this workstation"
downgrade=$(in_machine apt-get install -y --allow-downgrades /root/vigie-agent.deb 2>&1) &&
    fail "a downgrade is refused" || ok "a downgrade is refused"
check "the refusal says why" contains "$downgrade" "refusing to downgrade"
check "after the refusal the newer version stays, running" \
    bash -c "[ \"\$(nsenter --target $leader --all -- dpkg-query -W -f='\${Version}' vigie-agent)\" = '$upgrade_version' ]"
check "after the refusal the agent runs" eventually 15 agent_active

log "a migration that fails"
in_machine systemctl stop vigie-agent
db=$root/var/lib/vigie/events.db
schema=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA user_version').fetchone()[0])" "$db")
# A store that says it is at version 2 but has migration 3's column: step 3 fails.
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version = 2'); c.commit()" "$db"
sum_before=$(sha256sum <"$db")
in_machine systemctl start vigie-agent || true
migration_failed() { in_machine journalctl -u vigie-agent --no-pager | grep -q "migration 3 of $schema failed"; }
check "a failed migration says which step and why, in the journal" eventually 10 migration_failed
in_machine systemctl stop vigie-agent || true
check "a failed migration leaves the store as it was" test "$(sha256sum <"$db")" = "$sum_before"
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version = $schema'); c.commit()" "$db"
in_machine systemctl reset-failed vigie-agent
in_machine systemctl start vigie-agent
check "the store back at its version, the agent starts" eventually 15 agent_active

# --- systemd-resolved: the agent in front of its stub --------------------------------
log "DNS under systemd-resolved"
in_machine vigie-agent dns on >/dev/null
in_machine vigie-agent dns off >/dev/null
check "dns off: /etc/resolv.conf is back as it was" test "$(in_machine cat /etc/resolv.conf)" = "$before_resolv"
# As Ubuntu and Debian's systemd-resolved package set a workstation up: the
# network's server per link (as DHCP gives it), resolv.conf a link to the stub.
in_machine systemctl enable --quiet --now systemd-resolved
in_machine resolvectl dns "vw$$" 10.77.0.1
in_machine ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
check "resolved: names resolve through its stub" eventually 10 bash -c "[ \"\$(nsenter --target $leader --all -- dig +short +time=2 +tries=1 example.org)\" = 10.77.0.1 ]"
dns_on_out=$(in_machine vigie-agent dns on 2>&1) || fail "resolved: dns on ($dns_on_out)"
check "resolved: \`dns on\` says it replaced resolved's link" contains "$dns_on_out" "systemd-resolved"
nameservers() { in_machine awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf | paste -sd, -; }
check "resolved: /etc/resolv.conf is a file asking the agent, then resolved's stub ($(nameservers))" \
    test "$(nameservers)" = 127.0.0.153,127.0.0.53
in_machine systemctl restart vigie-agent
check "resolved: the agent is back under its unit" eventually 15 agent_active
check "resolved: a blocked name resolves to nothing" test "$(dig_answer chatgpt.com)" = 0.0.0.0
check "resolved: another name goes through the agent to the server resolved uses for the link" \
    test "$(dig_answer example.org)" = 10.77.0.1
asked_by_dig() {
    in_machine vigie-agent request events --params '{"limit":500}' 2>/dev/null | python3 -c '
import json, sys
sys.exit(not any(e.get("source") == "resolver" and e.get("service_id") == "chatgpt" and e.get("program") == "dig"
                 for e in json.load(sys.stdin)))'
}
check "resolved: the blocked lookup is attributed to dig, not to systemd-resolved" eventually 10 asked_by_dig
moves_before=$(tamper_count dns-moved-away)
in_machine ln -sf ../run/systemd/resolve/stub-resolv.conf /etc/resolv.conf
one_more_move() { [ "$(tamper_count dns-moved-away)" -gt "$moves_before" ]; }
check "resolved: resolv.conf linked back to the stub is recorded (tamper:dns-moved-away)" eventually 10 one_more_move
in_machine vigie-agent dns on >/dev/null

# --- remove, purge --------------------------------------------------------------------
log "remove and purge"
# What a killed agent of an earlier version left in the kernel: the
# package's clean-up removes it too.
in_machine sh -c 'nft add table inet vigie; nft add chain inet vigie output; iptables -w -t mangle -N VIGIE; iptables -w -t mangle -I OUTPUT -j VIGIE'
remove_out=$(in_machine apt-get remove -y vigie-agent 2>&1) || { echo "$remove_out" >&2; fail "apt remove"; }
check "remove: the agent is stopped" agent_inactive
check "remove: every packet rule is gone" no_rules
check "remove: /etc/resolv.conf is back as it was, a link to resolved's stub" \
    test "$(in_machine readlink /etc/resolv.conf)" = ../run/systemd/resolve/stub-resolv.conf
check "remove: the events are kept" in_machine test -s /var/lib/vigie/events.db
downgrade=$(in_machine apt-get install -y --allow-downgrades /root/vigie-agent.deb 2>&1) &&
    fail "after remove, a downgrade onto the kept store is refused" ||
    ok "after remove, a downgrade onto the kept store is refused"
purge_out=$(in_machine apt-get purge -y vigie-agent 2>&1) || { echo "$purge_out" >&2; fail "apt purge"; }
check "purge: says what it deletes" contains "$purge_out" "purge deletes this workstation's events"
check "purge: /var/lib/vigie is gone" in_machine test ! -e /var/lib/vigie
check "purge: /etc/vigie is gone" in_machine test ! -e /etc/vigie

# --- the console package --------------------------------------------------------------
if [ -n "$console_deb" ]; then
    log "install vigie-console"
    check "apt install ./vigie-console.deb" in_machine apt-get install -y /root/vigie-console.deb
    check "its autostart entry is in place" in_machine test -s /etc/xdg/autostart/vigie-console.desktop
    unresolved=$(in_machine ldd /usr/bin/vigie-console | grep "not found" || true)
    check "every library it links is installed by its dependencies${unresolved:+ ($unresolved)}" test -z "$unresolved"
fi

echo "system tests: $failures failed"
[ "$failures" -eq 0 ]
