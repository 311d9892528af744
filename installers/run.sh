#!/usr/bin/env bash
# The main job, on embedded defaults (bundled policy and catalog, SQLite):
# the live agent in monitor mode. It watches every interface that is up,
# prints each decision about a GenAI service with the program and user
# behind it, stores the events in /var/lib/vigie/events.db and serves the
# console socket /run/vigie/agent.sock. Nothing on the machine is changed.
# Ctrl-C stops it. Extra arguments go to `vigie-agent run` (e.g. --enforce).
#
# From a desktop session (DISPLAY or WAYLAND_DISPLAY set, run with sudo), the
# console is built too and started as the desktop user, in the tray; with
# --enforce, opening chatgpt.com in a browser brings up its prompt.
# VIGIE_CONSOLE=0 skips it, VIGIE_CONSOLE=1 builds it even without a display.
#
# VIGIE_DEMO=1: replay the bundled real-client captures instead (no root,
# no network), storing their events in target/vigie-demo/events.db.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
rust_ensure
log "build"
cargo build --release --locked -p vigie-agent
agent=$PWD/target/release/vigie-agent

if [ -n "${VIGIE_DEMO:-}" ]; then
    db=${VIGIE_DB:-target/vigie-demo/events.db}
    mkdir -p "$(dirname "$db")"
    for capture in dns-udp-tcp.pcap chromium-tcp-split.pcap chromium-quic.pcap curl-tls.pcap; do
        log "vigie-agent scan tests/fixtures/pcap/$capture"
        "$agent" scan "tests/fixtures/pcap/$capture" --db "$db"
    done
    log "events stored in $db"
    exit 0
fi

if [[ " $* " == *" --enforce "* ]]; then
    # Enforcement installs packet rules: their tools must be there.
    apt_ensure iptables nftables
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "the live agent captures packets: run this as root (or with sudo)" >&2
    exit 1
fi
desktop=${DISPLAY:-${WAYLAND_DISPLAY:-}}
if [ "${VIGIE_CONSOLE:-}" = 1 ] || { [ "${VIGIE_CONSOLE:-}" != 0 ] && [ -n "$desktop" ]; }; then
    log "build the console"
    console_ensure
    cargo build --release --locked -p vigie-console
    console=$PWD/target/release/vigie-console
    if [ -n "$desktop" ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        log "starting the console as $SUDO_USER (tray; its window: \`$console --show\`)"
        sudo -u "$SUDO_USER" --preserve-env=DISPLAY,WAYLAND_DISPLAY,XDG_RUNTIME_DIR,DBUS_SESSION_BUS_ADDRESS \
            "$console" --show >/dev/null 2>&1 &
    else
        echo "start the console in your desktop session: $console --show"
    fi
fi
log "vigie-agent run $* (Ctrl-C to stop; \`$agent status\` in another terminal)"
export VIGIE_LOG=${VIGIE_LOG:-info}
exec "$agent" run "$@"
