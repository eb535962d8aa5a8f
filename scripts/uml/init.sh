#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the UML test guest (booted by scripts/uml/run-e2e.sh with the
# host's / as a read-only hostfs root).  Mounts the pseudo filesystems and
# tmpfs on the writable places, mounts the host's results directory
# ($FM_RESULTS, hostfs), runs each e2e test in turn and powers off.
#
# Kernel command line variables (they reach PID 1 as environment):
#   FM_REPO     the repository (on the read-only root)
#   FM_RESULTS  host directory for the logs (mounted read-write via hostfs)
#   FM_TESTS    comma-separated test names (tNN-name, without .sh);
#               empty: every $FM_REPO/scripts/e2e/t*.sh
#   FM_TEST_TIMEOUT  seconds per test (default 300); a test can set its own
#               with a line "# fm-timeout: <seconds>" in its first 20 lines
#
# For each test: $FM_RESULTS/<test>.log (stdout+stderr) and <test>.rc (its
# exit status; 124 on timeout).  At the end: dmesg.log and done.
# No "set -e": PID 1 must never exit before the power-off.
set -u
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1 HOME=/root TERM=dumb LANG=C LC_ALL=C
export FM_REPO FM_RESULTS

say() { echo "fm-init: $*" >/dev/console 2>/dev/null || echo "fm-init: $*"; }

power_off() {
	sync
	say "powering off"
	busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger 2>/dev/null
	busybox halt -f 2>/dev/null
	sleep 3600
}
trap power_off EXIT

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# what udev would add: bash process substitution needs /dev/fd
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /dev/shm
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config
for d in /tmp /run /var/tmp /var/lock /var/run /root; do
	[ -d "$d" ] && [ ! -L "$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$d"
done
# a repository under one of those (e.g. a CI clone in /tmp) is hidden by the
# tmpfs now: show it again at the same path (hostfs, read-only)
if [ -n "${FM_REPO:-}" ] && [ ! -d "$FM_REPO/scripts/e2e" ]; then
	mkdir -p "$FM_REPO" && mount -r -t hostfs -o "$FM_REPO" none "$FM_REPO" ||
		say "cannot mount hostfs $FM_REPO"
fi
mkdir -p /run/lock /run/fm-results /tmp/fm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

if [ -z "${FM_RESULTS:-}" ] || [ -z "${FM_REPO:-}" ]; then
	say "FM_RESULTS or FM_REPO not set on the kernel command line"
	exit 1
fi
if ! mount -t hostfs -o "$FM_RESULTS" none /run/fm-results; then
	say "cannot mount hostfs $FM_RESULTS"
	exit 1
fi
R=/run/fm-results
cd /tmp/fm || exit 1

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

say "kernel $(uname -r), ${#tests[@]} test(s)"
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	say "=== $name"
	start=$(date +%s)
	tt=$(awk 'NR > 20 { exit } /^# *fm-timeout: *[0-9]+/ { sub(/^# *fm-timeout: */, ""); print $1 + 0; exit }' "$t")
	timeout -k 10 "${tt:-${FM_TEST_TIMEOUT:-300}}" bash "$t" </dev/null >>"$R/$name.log" 2>&1
	rc=$?
	echo "$rc" >"$R/$name.rc"
	grep -aE '^(PASS|FAIL|SKIP): ' "$R/$name.log" >/dev/console 2>/dev/null
	[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "${tt:-${FM_TEST_TIMEOUT:-300}}" >"$R/$name.timeout"
	say "=== $name: exit $rc after $(($(date +%s) - start)) s"
	# leave nothing behind for the next test: dm devices (--force: an open
	# one gets an error table), null_blk devices, loop devices
	timeout 60 dmsetup remove_all --force >/dev/null 2>&1
	for d in /sys/kernel/config/nullb/*/; do
		[ -d "$d" ] || continue
		echo 0 >"$d/power" 2>/dev/null
		rmdir "$d" 2>/dev/null
	done
	losetup -D 2>/dev/null
	sync
done

# kmemleak: two scans (an object must stay unreferenced), the report to
# kmemleak.log (the host counts "unreferenced object" in it)
if [ -w /sys/kernel/debug/kmemleak ]; then
	say "kmemleak scan"
	echo scan >/sys/kernel/debug/kmemleak
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$R/kmemleak.log" 2>&1
fi

dmesg >"$R/dmesg.log" 2>&1
echo done >"$R/done"
sync
exit 0
exit
}
