# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The PID-1 setup shared by the test bed's guests, which all run on the
# host's / as a read-only root: scripts/uml/init.sh (e2e under UML),
# scripts/qemu/guest-init.sh (e2e on Debian's kernel in QEMU),
# scripts/bench/init.sh (make bench) and scripts/demo-guest.sh (make demo).
# Sourced, not executed; the caller sets its own "say" prefix with
# GUEST_TAG and installs "trap guest_power_off EXIT" (PID 1 must never
# return: the kernel would panic instead of powering off).

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1 HOME=/root LANG=C LC_ALL=C
export TERM=${TERM:-dumb}

# say MSG: a line on the console (before stdio exists, to stdout)
say() {
	echo "${GUEST_TAG:-guest}: $*" >/dev/console 2>/dev/null ||
		echo "${GUEST_TAG:-guest}: $*"
}

# guest_power_off: the EXIT trap.  busybox's poweroff -f is the reboot(2)
# call; sysrq "o" and halt are the fallbacks.
guest_power_off() {
	sync
	say "powering off"
	busybox poweroff -f 2>/dev/null
	echo o >/proc/sysrq-trigger 2>/dev/null
	sleep 30
	busybox halt -f 2>/dev/null
	sleep 3600
}

# guest_mounts: the pseudo filesystems, what udev would add (/dev/fd for
# bash's process substitution, the std links), tmpfs on the places tools
# write to, and the repository ($FM_REPO) visible at its own path even when
# it lives under one of those places (a CI clone in /tmp).  configfs is
# mounted when the kernel has it built in; a guest that loads it as a module
# mounts it after the modprobe.
guest_mounts() {
	local d
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
	mountpoint -q /sys/kernel/config ||
		mount -t configfs configfs /sys/kernel/config 2>/dev/null
	# a view of the root, to show the repository again after the tmpfs
	mkdir -p /dev/.root && mount --bind / /dev/.root
	for d in /tmp /run /var/tmp /var/lock /var/run /root; do
		[ -d "$d" ] && [ ! -L "$d" ] && mount -t tmpfs -o mode=1777 tmpfs "$d"
	done
	if [ -n "${FM_REPO:-}" ] && [ ! -d "$FM_REPO/scripts" ]; then
		mkdir -p "$FM_REPO" &&
			mount --bind "/dev/.root$FM_REPO" "$FM_REPO" ||
			say "cannot show $FM_REPO again"
	fi
	mkdir -p /run/lock
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	return 0
}

# guest_kmemleak_scan OUT: two kmemleak scans (an object must stay
# unreferenced across both to be reported), the report to OUT (the host
# counts "unreferenced object" in it).  Returns 1 and writes nothing when
# the kernel has no writable /sys/kernel/debug/kmemleak.
guest_kmemleak_scan() {
	[ -w /sys/kernel/debug/kmemleak ] || return 1
	say "kmemleak scan"
	echo scan >/sys/kernel/debug/kmemleak
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$1" 2>&1
	return 0
}

# guest_cleanup_extras: what a test killed on its timeout may leave behind
# beside dm devices and null_blk: processes of network namespaces (an
# nbd-server), the namespaces, nbd connections, veth links, PostgreSQL and
# QEMU guests started by a test, and mounts under /tmp.
guest_cleanup_extras() {
	local ns p d m
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		ip netns delete "$ns" 2>/dev/null
	done
	pkill -KILL -x nbd-server 2>/dev/null
	pkill -KILL -x postgres 2>/dev/null
	pkill -KILL -f '^qemu-system' 2>/dev/null
	for d in /dev/nbd*; do
		[ -b "$d" ] || continue
		[ "$(cat "/sys/block/${d#/dev/}/size" 2>/dev/null || echo 0)" = 0 ] ||
			timeout 20 nbd-client -d "$d" >/dev/null 2>&1
	done
	ip -o link show type veth 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
		while read -r d; do
			ip link delete "$d" 2>/dev/null
		done
	# (not the repository: a CI clone under /tmp is bind-mounted there)
	awk '$2 ~ "^/tmp/" { print $2 }' /proc/mounts | sort -r | while read -r m; do
		case $m in "${FM_REPO:-/nonexistent}" | "${FM_REPO:-/nonexistent}"/*) continue ;; esac
		umount -l "$m" 2>/dev/null
	done
	return 0
}

# guest_run_tests RESULTS_DIR: run the e2e tests named in $FM_TESTS
# (comma-separated tNN-name; empty: every scripts/e2e/t[0-9]*.sh) one after
# the other, each under a timeout: the larger of "# fm-timeout: N" in its
# first 20 lines and $FM_TEST_TIMEOUT (default 300 s).  Per test: <test>.log (stdout and
# stderr), <test>.rc (exit status; 124/137 on timeout), <test>.secs and,
# after a timeout, <test>.timeout.  Between tests every dm device, null_blk
# and loop device is removed, and the debug switches are reset.
guest_run_tests() {
	local r=$1 t name start tt rc d n names=() tests=()
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
	say "kernel $(uname -r), $(nproc) CPU(s), ${#tests[@]} test(s)"
	for t in "${tests[@]}"; do
		name=$(basename "$t" .sh)
		# FM_STOP_AFTER: the time budget (seconds of uptime); the tests
		# not started count as budget SKIPs on the host
		if [ -n "${FM_STOP_AFTER:-}" ] &&
		   [ "$(cut -d. -f1 /proc/uptime)" -ge "$FM_STOP_AFTER" ]; then
			say "time budget: no test started after ${FM_STOP_AFTER}s of uptime; $name and the rest not run"
			echo "$FM_STOP_AFTER (guest uptime)" >"$r/budget-timeout"
			break
		fi
		say "=== $name"
		start=$(date +%s)
		tt=$(awk 'NR > 20 { exit } /^# *fm-timeout: *[0-9]+/ { sub(/^# *fm-timeout: */, ""); print $1 + 0; exit }' "$t")
		[ "${tt:-0}" -ge "${FM_TEST_TIMEOUT:-300}" ] || tt=${FM_TEST_TIMEOUT:-300}
		timeout -k 10 "$tt" bash "$t" </dev/null >>"$r/$name.log" 2>&1
		rc=$?
		echo "$rc" >"$r/$name.rc"
		echo "$(($(date +%s) - start))" >"$r/$name.secs"
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "$tt" >"$r/$name.timeout"
		fi
		grep -aE '^(PASS|FAIL|SKIP): ' "$r/$name.log" >/dev/console 2>/dev/null
		say "=== $name: exit $rc after $(($(date +%s) - start)) s"
		# nothing left behind for the next test (--force: an open dm
		# device gets an error table)
		timeout 60 dmsetup remove_all --force >/dev/null 2>&1
		for d in /sys/kernel/config/nullb/*/; do
			[ -d "$d" ] || continue
			n=$(basename "$d")
			echo 0 >"$d/power" 2>/dev/null
			rmdir "$d" 2>/dev/null
			[ -L "/dev/$n" ] && rm -f "/dev/$n"
		done
		losetup -D 2>/dev/null
		guest_cleanup_extras
		# a test killed on timeout cannot reset the debug switches
		for d in debug_skip_dest_flush debug_flush_endio_delay_ms; do
			echo 0 >"/sys/module/dm_flushmirror/parameters/$d" 2>/dev/null
		done
		sync
	done
}
