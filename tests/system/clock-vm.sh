#!/usr/bin/env bash
# The tamper check `clock-moved` done for real: root sets the clock of a
# Debian 12 booted under qemu, where the agent package runs. A container
# shares this machine's clock (setting it there would move the host's), so
# this one needs a machine of its own. qemu emulates it (TCG): this machine
# kind has /dev/kvm, but a guest under KVM hangs at its first instruction
# (nested virtualisation), and the test mostly waits anyway.
#
# The machine: the root file system of debian-packages.sh plus Debian's
# kernel, made into a disk image once (cached in target/system/) and booted
# through a throw-away overlay. The agent package and the steps to run
# (tests/system/clock-vm-steps.sh) come on a second disk, where the steps
# also write their results; the machine powers itself off when done. qemu
# is stopped by its PID at exit, whatever happens.
#
#   bash tests/system/clock-vm.sh   (root; builds the packages first unless
#                                    VIGIE_PACKAGES_BUILT=1)
#   bash tests/system/clock-vm.sh --prepare   (only makes the machine's disk:
#                                    tests/run.sh does it while it compiles)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

prepare_only=
case "${1:-}" in
    --prepare) prepare_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--prepare]" >&2; exit 2 ;;
esac
apt_ensure qemu-system-x86 qemu-utils e2fsprogs systemd-container

# --- what this run makes, and its end -------------------------------------------
work=$(mktemp -d /var/tmp/vigie-vm.XXXXXX)
qemu_pid=
staging=
cleanup() {
    set +e
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid"
        for _ in $(seq 1 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$qemu_pid" 2>/dev/null
    fi
    [ -n "$qemu_pid" ] && wait "$qemu_pid" 2>/dev/null
    rm -rf "$work"
    [ -n "$staging" ] && rm -rf "$staging"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the machine's disk, cached ------------------------------------------------
rootfs_tar=$(system_rootfs_tar)
[ -s "$rootfs_tar" ] || { echo "no root file system" >&2; exit 1; }
cache_dir=$(dirname "$rootfs_tar")
# Made again when the root file system (its name says its packages, its
# size and time say which build) or this recipe changes.
recipe=4
image_key=$(printf '%s %s %s' "$(basename "$rootfs_tar")" "$(stat -c '%s %Y' "$rootfs_tar")" "$recipe" | sha256sum | cut -c1-12)
image_dir=$cache_dir/vm-$image_key
if [ ! -s "$image_dir/disk.img" ]; then
    log "the machine's disk: Debian's kernel added to the root file system (once; cached in $image_dir)"
    # Older images are of no use any more.
    find "$cache_dir" -maxdepth 1 -name 'vm-*' -type d -exec rm -rf {} +
    staging=$(mktemp -d "$cache_dir/vm.XXXXXX")
    mkdir "$staging/root"
    tar -C "$staging/root" -xf "$rootfs_tar"
    # The kernel from the same mirror, installed by the machine's own apt
    # (systemd-nspawn gives it /proc and /dev; the host's network).
    systemd-nspawn --quiet --keep-unit --register=no --machine="vigie-vm-$$" --resolv-conf=replace-host --directory="$staging/root" \
        env DEBIAN_FRONTEND=noninteractive sh -c \
        'apt-get update -q && apt-get install -y -q --no-install-recommends linux-image-amd64 initramfs-tools' \
        >"$staging/apt.log" 2>&1 || { tail -20 "$staging/apt.log" >&2; rm -rf "$staging"; exit 1; }
    echo vigie-vm >"$staging/root/etc/hostname"
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$staging/root/etc/fstab"
    # At boot, the steps on the second disk run once, then the machine goes.
    cat >"$staging/root/etc/systemd/system/vigie-vm-steps.service" <<'UNIT'
[Unit]
Description=Vigie test steps from the second disk
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /mnt/steps && mount /dev/vdb /mnt/steps && sh /mnt/steps/steps.sh; sync; umount /mnt/steps'
ExecStopPost=/bin/systemctl --no-block poweroff
StandardOutput=journal+console
TimeoutStartSec=600
[Install]
WantedBy=multi-user.target
UNIT
    systemctl --root="$staging/root" --quiet enable vigie-vm-steps.service
    mkdir -p "$staging/out"
    cp "$staging"/root/boot/vmlinuz-* "$staging/out/vmlinuz"
    cp "$staging"/root/boot/initrd.img-* "$staging/out/initrd.img"
    mkfs.ext4 -q -F -L vigie-vm -d "$staging/root" "$staging/out/disk.img" 3G >/dev/null
    mv "$staging/out" "$image_dir"
    rm -rf "$staging"
    staging=
fi

if [ -n "$prepare_only" ]; then
    echo "the machine's disk is ready: $image_dir"
    exit 0
fi

# --- this run ---------------------------------------------------------------------

[ "${VIGIE_PACKAGES_BUILT:-}" = 1 ] || packages_build
agent_deb=$(ls -t "${CARGO_TARGET_DIR:-$PWD/target}"/debian/vigie-agent_*_amd64.deb | head -1)

qemu-img create -q -f qcow2 -b "$image_dir/disk.img" -F raw "$work/overlay.qcow2"
mkdir "$work/steps"
cp "$agent_deb" "$work/steps/vigie-agent.deb"
cp tests/system/clock-vm-steps.sh "$work/steps/steps.sh"
mkfs.ext4 -q -F -L steps -d "$work/steps" "$work/steps.img" 256M >/dev/null

log "boot Debian 12 under qemu and set its clock"
qemu-system-x86_64 -accel tcg -smp 2 -m 1536 -display none -no-reboot -nic none \
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 quiet" \
    -drive "file=$work/overlay.qcow2,if=virtio,format=qcow2" \
    -drive "file=$work/steps.img,if=virtio,format=raw" \
    -serial "file:$work/serial.log" -monitor none &
qemu_pid=$!
deadline=$((SECONDS + 420))
while kill -0 "$qemu_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 1; done
if kill -0 "$qemu_pid" 2>/dev/null; then
    tail -30 "$work/serial.log" >&2
    echo "the machine did not finish within 420 s" >&2
    exit 1
fi
wait "$qemu_pid" || true
qemu_pid=

results=$(debugfs -R "cat /results" "$work/steps.img" 2>/dev/null || true)
if [ -z "$results" ]; then
    tail -40 "$work/serial.log" >&2
    echo "the steps left no results" >&2
    exit 1
fi
echo "$results"
if grep -q '^FAIL' <<<"$results"; then
    debugfs -R "cat /agent.log" "$work/steps.img" 2>/dev/null | tail -30 >&2
    exit 1
fi
grep -q '^done' <<<"$results" || { echo "the steps did not reach their end" >&2; exit 1; }
echo "clock test: 0 failed"
