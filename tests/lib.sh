# Shared by the README's two commands: installs what they need, idempotently.
# Sourced, not run.

# Each step with the seconds since the script started: where CI time goes.
log() { printf '\n== %s (at %ss)\n' "$*" "$SECONDS"; }

# Free space where target/ lives, in GiB.
disk_free_gib() {
    local dir=${CARGO_TARGET_DIR:-$PWD/target}
    mkdir -p "$dir"
    df -P -BG "$dir" | awk 'NR == 2 { sub("G", "", $4); print $4 }'
}

# One line a step, so that a CI log shows where the disk went.
disk_report() {
    echo "disk: $(disk_free_gib) GiB free ($*); target/ uses $(du -sh "${CARGO_TARGET_DIR:-$PWD/target}" 2>/dev/null | cut -f1)"
}

# Removes a build folder this run no longer needs when the disk runs low
# (under VIGIE_DISK_LOW_GIB, 20 by default); kept otherwise, so that the
# next local run does not rebuild it.
disk_free_if_low() {
    local free
    free=$(disk_free_gib)
    if [ "$free" -lt "${VIGIE_DISK_LOW_GIB:-20}" ]; then
        echo "disk: ${free} GiB free: removing $*"
        rm -rf "$@"
    fi
}

# apt-get install only what is missing; `apt-get update` at most once.
apt_ensure() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
        return 1
    fi
    # Another apt of this run (tests/run.sh makes machines in the
    # background) may hold the lock for a while: wait for it.
    local wait_lock=(-o DPkg::Lock::Timeout=600)
    if [ -z "${VIGIE_APT_UPDATED:-}" ]; then
        apt-get "${wait_lock[@]}" update -q >/dev/null
        export VIGIE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get "${wait_lock[@]}" install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# cargo install a tool at a pinned version unless that version is there.
cargo_tool_ensure() {
    local crate=$1 version=$2 bin=$3
    if command -v "$bin" >/dev/null 2>&1 && cargo install --list | grep -q "^$crate v$version:"; then
        return 0
    fi
    # Tools of the tests, never shipped: built to build fast rather than to
    # run fast (a cold cargo-deny took 142 s, 89 s so, its checks as quick).
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_DEBUG=false cargo install --locked --quiet "$crate" --version "$version"
}

# zig, for its C compiler with macOS's libc headers (tests/cross/zig-cc-macos):
# pip's `ziglang` package, pinned, in a cache folder. Prints zig's path, or
# nothing when it cannot be fetched.
zig_ensure() {
    local version=0.17.1 dir="${XDG_CACHE_HOME:-$HOME/.cache}/vigie/ziglang"
    local zig="$dir/$version/ziglang/zig"
    if [ ! -x "$zig" ]; then
        timeout 300 python3 -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$dir/$version" "ziglang==$version" >/dev/null 2>&1 || return 0
    fi
    [ -x "$zig" ] && echo "$zig"
}

rust_ensure() {
    apt_ensure build-essential pkg-config
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: this machine kind ships a Rust toolchain (rustup)" >&2
        return 1
    fi
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
}

# The console: Tauri 2 on WebKitGTK (Debian's -dev packages), and its web
# front end built with Node.js into ui/dist, which the Rust build embeds.
console_ensure() {
    apt_ensure libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev file
    command -v npm >/dev/null 2>&1 || apt_ensure nodejs npm
    # `npm ci` only when the lock file changed since the last install. The
    # scripts run as root: no dependency's install scripts run (Vite's
    # native parts come as prebuilt optional packages and need none).
    local stamp=ui/node_modules/.vigie-lock.sha256
    if ! sha256sum --status -c "$stamp" 2>/dev/null; then
        (cd ui && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
        sha256sum ui/package-lock.json >"$stamp"
    fi
    (cd ui && npm run --silent build >/dev/null)
}

# Where cargo puts release binaries (CARGO_TARGET_DIR is honoured).
release_dir() { echo "${CARGO_TARGET_DIR:-$PWD/target}/release"; }

# The Debian packages, from release builds, into target/debian/:
# vigie-agent_<version>_amd64.deb and vigie-console_<version>_amd64.deb.
# VIGIE_DEB_VERSION overrides the packages' version (upgrade tests).
packages_build() {
    apt_ensure dpkg-dev
    cargo_tool_ensure cargo-deb 3.8.0 cargo-deb
    local version=()
    [ -n "${VIGIE_DEB_VERSION:-}" ] && version=(--deb-version "$VIGIE_DEB_VERSION")
    cargo build --release --locked -p vigie-agent
    # The manual pages come from the same option definitions as --help.
    "$(release_dir)/vigie-agent" manual "$(release_dir)/man"
    cargo deb --no-build --locked -p vigie-agent "${version[@]}"
    if [ "${VIGIE_CONSOLE_PACKAGE:-1}" = 1 ]; then
        console_ensure
        cargo build --release --locked -p vigie-console --features custom-protocol
        cargo deb --no-build --locked -p vigie-console "${version[@]}"
    fi
}

# The root file system of the booted-Debian tests (tests/system/): Debian 12
# made with debootstrap from the host's Debian mirror, kept as a tarball in
# target/system/ (made again when the package list changes). Prints its path.
system_rootfs_tar() {
    # Called in $(…), where set -e does not hold: each step says its failure.
    apt_ensure debootstrap || return 1
    local includes=systemd,systemd-sysv,dbus,dbus-user-session,iptables,nftables,iproute2,dnsutils,curl,ca-certificates,procps,passwd
    includes+=,libwebkit2gtk-4.1-0,libayatana-appindicator3-1,systemd-resolved
    local cache_dir=${CARGO_TARGET_DIR:-$PWD/target}/system
    local tar=$cache_dir/bookworm-$(echo "$includes" | sha256sum | cut -c1-12).tar
    if [ ! -s "$tar" ]; then
        local mirror staging
        mirror=$(debian_mirror) || return 1
        log "debootstrap bookworm (once; cached in $tar)" >&2
        mkdir -p "$cache_dir" || return 1
        staging=$(mktemp -d "$cache_dir/debootstrap.XXXXXX") || return 1
        # This runs in a subshell of its own: its end removes the staging.
        trap 'rm -rf "$staging" "$tar.tmp"' EXIT
        debootstrap --variant=minbase --include="$includes" bookworm "$staging/root" "$mirror" >"$staging/log" 2>&1 ||
            { tail -20 "$staging/log" >&2; return 1; }
        tar -C "$staging/root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar" || return 1
    fi
    echo "$tar"
}

# The mirror the host's apt uses (this machine reaches no other).
debian_mirror() {
    local mirror
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "no Debian mirror in the host's apt sources" >&2; return 1; }
    echo "$mirror"
}
