#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the QEMU test guest (Debian's stock kernel), started by the
# initramfs /init (scripts/qemu/initramfs-init) on the host's / shared
# read-only over virtio-9p.  The counterpart of scripts/uml/init.sh:
# mounts the pseudo filesystems and tmpfs on the writable places, the
# results share (9p tag "results", read-write), loads the distribution's
# dm modules with modprobe and the module under test with insmod, runs each
# e2e test in turn and powers off.
#
# Kernel command line variables (they reach PID 1 as environment):
#   FM_REPO     the repository (on the read-only root)
#   FM_MODULE   the dm-flushmirror.ko to insmod
#   FM_TESTS    comma-separated test names (tNN-name, without .sh);
#               empty: every $FM_REPO/scripts/e2e/t*.sh
#   FM_TEST_TIMEOUT  seconds per test (default 300)
#
# Results: <test>.log and <test>.rc (124 on timeout) per test, modules.log,
# dmesg.log, done.  No "set -e": PID 1 must never exit before the power-off.
set -u

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1 HOME=/root TERM=dumb LANG=C LC_ALL=C
export FM_REPO

say() { echo "fm-init: $*" >/dev/console 2>/dev/null || echo "fm-init: $*"; }

power_off() {
	sync
	say "powering off"
	echo o >/proc/sysrq-trigger 2>/dev/null
	sleep 30
	busybox poweroff -f 2>/dev/null
	sleep 3600
}
trap power_off EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm
# A repository under one of the tmpfs places below (a CI clone in /tmp, say)
# would be hidden by them: keep a view of the root to show it again.
mkdir -p /dev/.root && mount --bind / /dev/.root
for d in /tmp /run /var/tmp /var/lock /var/run /root; do
	[ -d "$d" ] && [ ! -L "$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$d"
done
if [ -n "${FM_REPO:-}" ] && [ ! -d "$FM_REPO/scripts/e2e" ]; then
	mkdir -p "$FM_REPO" &&
		mount --bind "/dev/.root$FM_REPO" "$FM_REPO" ||
		say "cannot show $FM_REPO again"
fi
mkdir -p /run/lock /run/fm-results /tmp/fm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 \
	results /run/fm-results; then
	say "cannot mount the results share (9p tag results)"
	exit 1
fi
R=/run/fm-results
cd /tmp/fm || exit 1

# the distribution's modules (the host's /lib/modules/$(uname -r), with its
# modules.dep, is on the shared root): modprobe resolves the dependencies
{
	echo "kernel $(uname -r) ($(cat /proc/version))"
	echo "cpus: $(nproc)"
	for m in configfs dm-mod dm-mirror dm-delay dm-flakey dm-log-writes \
		dm-dust; do
		modprobe -v "$m" 2>&1 || echo "modprobe $m failed"
	done
	modprobe -v null_blk nr_devices=0 2>&1 || echo "modprobe null_blk failed"
	mountpoint -q /sys/kernel/config ||
		mount -t configfs configfs /sys/kernel/config
	echo "insmod ${FM_MODULE:-}"
	insmod "${FM_MODULE:-/nonexistent}" 2>&1 || echo "insmod ${FM_MODULE:-} failed"
	echo "--- lsmod"
	cat /proc/modules
	echo "--- dmsetup targets"
	dmsetup targets 2>&1
} >"$R/modules.log" 2>&1
grep -a '^flushmirror ' <(dmsetup targets 2>&1) >/dev/console ||
	say "flushmirror target NOT registered: see modules.log"

tests=()
if [ -n "${FM_TESTS:-}" ]; then
	IFS=, read -r -a names <<<"$FM_TESTS"
	for n in "${names[@]}"; do
		tests+=("$FM_REPO/scripts/e2e/${n%.sh}.sh")
	done
else
	for t in "$FM_REPO"/scripts/e2e/t[0-9]*.sh; do
		[ -f "$t" ] && tests+=("$t")
	done
fi

say "kernel $(uname -r), $(nproc) CPUs, ${#tests[@]} test(s)"
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	say "=== $name"
	start=$(date +%s)
	timeout -k 10 "${FM_TEST_TIMEOUT:-300}" bash "$t" </dev/null >>"$R/$name.log" 2>&1
	rc=$?
	echo "$rc" >"$R/$name.rc"
	echo "$(($(date +%s) - start))" >"$R/$name.secs"
	grep -aE '^(PASS|FAIL|SKIP): ' "$R/$name.log" >/dev/console 2>/dev/null
	say "=== $name: exit $rc after $(($(date +%s) - start)) s"
	# leave nothing behind for the next test
	timeout 60 dmsetup remove_all --force >/dev/null 2>&1
	for d in /sys/kernel/config/nullb/*/; do
		[ -d "$d" ] || continue
		n=$(basename "$d")
		echo 0 >"$d/power" 2>/dev/null
		rmdir "$d" 2>/dev/null
		[ -L "/dev/$n" ] && rm -f "/dev/$n"
	done
	losetup -D 2>/dev/null
	sync
done

dmesg >"$R/dmesg.log" 2>&1
echo done >"$R/done"
sync
exit 0
