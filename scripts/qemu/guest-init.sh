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
#   FM_TEST_TIMEOUT  seconds per test (default 300; "# fm-timeout: N" in a
#               test's first 20 lines asks for more)
#   FM_UNLOAD   1: after the tests, rmmod the module (the pseudo-test
#               module-unload) and scan kmemleak (the debug kernel of
#               run-debian.sh -x; automatic scans off, earlier objects
#               cleared before the insmod)
#   FM_BUILTIN  1: the kernel has the dm modules and null_blk built in
#   FM_STOP_AFTER  seconds of uptime after which no test is started
#               (guest_run_tests; the time budget)
#
# Results: per test as guest_run_tests (scripts/guest-lib.sh) says
# (<test>.log, .rc, .secs, .timeout); modules.log, kunit-dmesg.log (the
# log after the insmod), dmesg.log, done; with FM_UNLOAD also
# module-unload.log/.rc and kmemleak.log.
# No "set -e": PID 1 must never exit before the power-off.
set -u

. "$(dirname "$0")/../guest-lib.sh"
GUEST_TAG=fm-init
export FM_REPO
trap guest_power_off EXIT
guest_mounts
mkdir -p /run/fm-results /tmp/fm

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
	# (libcrc32c: dm-flushmirror's metadata checksums; insmod does not
	# load dependencies)
	for m in configfs dm-mod dm-mirror dm-delay dm-flakey dm-log-writes \
		dm-dust libcrc32c; do
		# (FM_BUILTIN: the debug kernel has them all built in)
		[ -n "${FM_BUILTIN:-}" ] && continue
		modprobe -v "$m" 2>&1 || echo "modprobe $m failed"
	done
	[ -n "${FM_BUILTIN:-}" ] ||
		modprobe -v null_blk nr_devices=0 2>&1 || echo "modprobe null_blk failed"
	if [ "${FM_UNLOAD:-}" = 1 ] && [ -w /sys/kernel/debug/kmemleak ]; then
		# only what is allocated from here on is looked at, and only
		# by the scan after the rmmod
		echo scan=off >/sys/kernel/debug/kmemleak
		echo clear >/sys/kernel/debug/kmemleak
	fi
	mountpoint -q /sys/kernel/config ||
		mount -t configfs configfs /sys/kernel/config
	echo "insmod ${FM_MODULE:-}"
	insmod "${FM_MODULE:-/nonexistent}" 2>&1 || echo "insmod ${FM_MODULE:-} failed"
	# the KTAP of the module's KUnit suites (debug kernel), kept now:
	# dmesg.log is written only at the end
	dmesg >"$R/kunit-dmesg.log" 2>&1
	echo "--- lsmod"
	cat /proc/modules
	echo "--- dmsetup targets"
	dmsetup targets 2>&1
} >"$R/modules.log" 2>&1
grep -a '^flushmirror ' <(dmsetup targets 2>&1) >/dev/console ||
	say "flushmirror target NOT registered: see modules.log"

guest_run_tests "$R"

if [ "${FM_UNLOAD:-}" = 1 ]; then
	# the module must unload once every device is gone, and leave nothing
	# behind: kmemleak scans twice (guest_kmemleak_scan), the host counts
	# "unreferenced object" in kmemleak.log
	say "=== module-unload"
	{
		if rmmod dm_flushmirror 2>&1; then
			echo "PASS: rmmod-dm-flushmirror"
		else
			echo "FAIL: rmmod-dm-flushmirror: rmmod failed"
		fi
		if grep -q '^flushmirror ' <(dmsetup targets 2>&1); then
			echo "FAIL: target-unregistered: still in dmsetup targets"
		else
			echo "PASS: target-unregistered"
		fi
	} >"$R/module-unload.log" 2>&1
	echo 0 >"$R/module-unload.rc"
	guest_kmemleak_scan "$R/kmemleak.log" ||
		echo "FAIL: kmemleak: /sys/kernel/debug/kmemleak not writable" >>"$R/module-unload.log"
fi

dmesg >"$R/dmesg.log" 2>&1
echo done >"$R/done"
sync
exit 0
