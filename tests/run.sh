#!/usr/bin/env bash
# Every Vigie test, as CI runs it: formatting, lints, licences, a fuzz smoke
# run of every parser, the whole test suite, then the Debian packages under a
# real systemd. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
export CARGO_TERM_COLOR=never
# A run from a clean clone gains nothing from incremental caches, and they
# about double target/: a CI machine ran out of disk with them.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
FUZZ_SECONDS=${FUZZ_SECONDS:-8}
disk_report "at start"

rust_ensure
# Live tests: namespaces, real clients (curl, dig, headless Chromium), dnsmasq
# as the "internet" resolver, and the tools the agent drives (iptables, nft).
# dnsmasq-base is the binary without a system service.
apt_ensure iproute2 curl dnsutils python3 openssl util-linux dnsmasq-base iptables nftables chromium
# The fleet collector's tests start their own PostgreSQL (initdb + pg_ctl) and
# rsyslog (with its TLS driver) as the SIEM receiver of its exports.
apt_ensure postgresql-15 rsyslog rsyslog-gnutls poppler-utils
console_ensure
# The console and clipboard guard end to end: a real X display with a window
# manager, WebKitGTK's WebDriver behind tauri-driver, ImageMagick for
# screenshots, the real X clipboard (xclip) and xprop; for the Wayland
# watcher, a headless compositor with data-control (sway), a terminal to
# title windows (foot) and the Wayland clipboard tools.
apt_ensure xvfb openbox webkit2gtk-driver imagemagick xclip x11-utils sway foot wl-clipboard
# The booted-Debian tests' machines (tests/system/): their root file system
# and the qemu machine's disk, made in the background while the code
# compiles (downloads and unpacking, cached in target/system/), in a process
# group of their own that the end of this run stops if still there.
apt_ensure debootstrap systemd-container qemu-system-x86 qemu-utils e2fsprogs
work=$(mktemp -d)
machines_pid=
end_of_run() {
    if [ -n "$machines_pid" ] && kill -0 "$machines_pid" 2>/dev/null; then
        kill -- "-$machines_pid" 2>/dev/null
        wait "$machines_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap end_of_run EXIT
trap 'exit 130' INT TERM
setsid bash tests/system/clock-vm.sh --prepare >"$work/machines.log" 2>&1 &
machines_pid=$!
cargo_tool_ensure tauri-driver 2.1.0 tauri-driver
cargo_tool_ensure cargo-deny 0.20.2 cargo-deny
cargo_tool_ensure cargo-fuzz 0.13.2 cargo-fuzz

log "catalog: validity, and coverage of the public GenAI lists (tests/catalog)"
python3 tests/catalog/check.py
python3 tests/catalog/coverage.py

log "fmt"
cargo fmt --all --check

log "console UI: unit tests"
# (Its types generated from Rust are compared after the Rust tests, which
# write them: see "tests".)
(cd ui && npm test --silent)

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "the agent for Windows and macOS (cargo check; agent/PORTING.md)"
# The core, the fleet client, the daemon (its platform seams stubbed where
# the port is not built) and the command line, for Windows (MinGW compiles
# SQLite's and ring's C; the console too) and for macOS (zig's C compiler,
# which ships macOS's libc headers; not the console, whose notification
# plugin needs Apple's SDK). Skipped, and said, where a toolchain cannot be
# fetched.
agent_crates=(-p vigie-core -p vigie-fleet -p vigie-daemon -p vigie-agent)
cross_targets="x86_64-pc-windows-gnu x86_64-apple-darwin"
installed=$(rustup target list --installed)
missing=$(for t in $cross_targets; do grep -qx "$t" <<<"$installed" || echo "$t"; done)
# shellcheck disable=SC2086 # one word per target
if [ -z "$missing" ] || timeout 180 rustup target add $missing >/dev/null 2>&1; then
    apt_ensure gcc-mingw-w64-x86-64
    cargo check --locked --quiet "${agent_crates[@]}" -p vigie-console --target x86_64-pc-windows-gnu
    echo "the agent and the console build for Windows"
    zig=$(zig_ensure)
    if [ -n "$zig" ]; then
        VIGIE_ZIG=$zig CC_x86_64_apple_darwin="$PWD/tests/cross/zig-cc-macos" \
            cargo check --locked --quiet "${agent_crates[@]}" --target x86_64-apple-darwin
        echo "the agent builds for macOS"
    else
        cargo check --locked --quiet -p vigie-core --no-default-features --features sensor --target x86_64-apple-darwin
        echo "zig cannot be fetched here: for macOS, vigie-core without its store only"
    fi
else
    echo "rustup cannot fetch the standard libraries of $missing here: not checked"
fi

log "the console links no packet parser and no SQLite (vigie-core without default features)"
if cargo tree --locked -p vigie-console -e normal --prefix none | grep -E '^(rusqlite|libsqlite3-sys|hickory-proto|aes|aes-gcm|hkdf|pcap-parser) '; then
    echo "vigie-console depends on the crates above: keep vigie-core's sensor and store features out of it" >&2
    exit 1
fi

log "cargo-deny (licences, bans, sources)"
cargo deny --log-level error check licenses bans sources
# The advisory database is fetched from a git host this machine cannot reach;
# check advisories where it is there.
if cargo deny --log-level error check advisories >/dev/null 2>&1; then
    echo "advisories ok"
else
    echo "advisories: database unreachable here, not checked"
fi

log "service unit hardening (systemd-analyze security)"
unit=installers/systemd/vigie-agent.service
if command -v systemd-analyze >/dev/null 2>&1; then
    exposure=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | awk '/Overall exposure level/ { print $(NF-2) }')
    echo "exposure: $exposure (lower is better; 10 is unprotected)"
    awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }' || {
        echo "$unit: exposure ${exposure:-unknown} is above 3.0" >&2
        exit 1
    }
else
    echo "systemd-analyze not installed: unit not checked"
fi

log "fuzz smoke (${FUZZ_SECONDS}s per target)"
# cargo-fuzz needs unstable rustc flags; the machine has one stable toolchain.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir agent/fuzz
for target in $(cargo fuzz list --fuzz-dir agent/fuzz); do
    mkdir -p "$work/$target"
    # New inputs go to the scratch folder; the committed seeds stay as they are.
    cargo fuzz run --fuzz-dir agent/fuzz "$target" "$work/$target" "agent/fuzz/corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 >"$work/$target.log" 2>&1 || {
        tail -n 40 "$work/$target.log"
        echo "fuzz target $target failed" >&2
        exit 1
    }
    echo "$target: $(grep -E '^Done' "$work/$target.log" || echo ok)"
done
unset RUSTC_BOOTSTRAP
# The fuzzers' sanitizer build is not used again in this run.
disk_free_if_low agent/fuzz/target

log "tests"
touch "$work/tests.start"
cargo test --workspace --locked 2>&1 | tee "$work/tests.log"
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { print "tests: " p " passed, " f " failed" }' "$work/tests.log"
# The workspace's tests include ts-rs's `export_bindings_*`, which write the
# console protocol's TypeScript twins into ui/src/ipc/gen (vigie-core gets
# its `ts` feature from the console in the same build): they must match
# what is committed, and must have run.
exported=$(grep -c 'export_bindings_.* ok$' "$work/tests.log" || true)
[ "$exported" -gt 0 ] || { echo "no export_bindings test ran: ui/src/ipc/gen was not checked" >&2; exit 1; }
# ts-rs writes every file it exports (with the types they use) anew: a file
# left untouched is a type that is gone.
stale=$(find ui/src/ipc/gen -name '*.ts' ! -newer "$work/tests.start")
[ -z "$stale" ] || { printf 'no Rust type writes these any more: remove them\n%s\n' "$stale" >&2; exit 1; }
if [ -n "$(git status --porcelain -- ui/src/ipc/gen)" ]; then
    git status --short -- ui/src/ipc/gen
    echo "ui/src/ipc/gen differs from the Rust types: regenerate and commit it" >&2
    exit 1
fi
echo "ui/src/ipc/gen matches the Rust types ($exported types written)"

disk_report "after the tests"

log "SIEM documents against the published OCSF and ECS schemas (tests/siem)"
bash tests/siem/validate.sh

log "the booted-Debian machines, made in the background since the start"
if ! wait "$machines_pid"; then
    machines_pid=
    cat "$work/machines.log" >&2
    echo "the machines for the system tests could not be made" >&2
    exit 1
fi
machines_pid=
cat "$work/machines.log"

log "the Debian packages on a booted Debian 12 (systemd-nspawn)"
# The packages are release builds: the debug build is not used again.
disk_free_if_low "${CARGO_TARGET_DIR:-$PWD/target}/debug"
bash tests/system/debian-packages.sh

log "the clock moved, in a Debian 12 of its own (qemu)"
VIGIE_PACKAGES_BUILT=1 bash tests/system/clock-vm.sh
