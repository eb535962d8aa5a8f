#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make demo: a live migration of a running VM's disk with dm-flushmirror,
# end to end, in User-Mode Linux.  Run as root on Debian bookworm.
#
#  1. scripts/uml/build.sh (build only, FM_NO_KUNIT=1) installs the packages
#     it needs with apt-get, unpacks Debian's linux-source-6.12 into .build/
#     and builds the User-Mode Linux kernel .build/uml/linux with
#     dm-flushmirror built in.  The first run takes 10 to 25 minutes on two
#     cores; later runs reuse the build.  Debian's 6.1 kernel image (the
#     VM's kernel) is installed too when /boot has none.
#  2. boots it with the host's / as a read-only hostfs root (no image, no
#     root filesystem to build), the way scripts/uml/run-e2e.sh does, with
#     scripts/demo-guest.sh as PID 1, and shows what the guest prints: UML
#     plays the VM's host, a QEMU VM (scripts/vm/) runs on the disk that
#     is migrated, with a writer that fsyncs records; the admin command
#     moves the disk; the checks at the end (see demo-guest.sh).
#
# Usage: scripts/demo.sh [-n] [-f] [-s MIB] [-r KIB_PER_S]
#   -n          do not build; use the existing .build/uml/linux
#   -f          no VM: ext4 and fio on the migrated disk (the demo's
#               workload when the host cannot run the VM)
#   -s MIB      size of the demo disks (default 128; 256 with -f)
#   -r KIB/S    copy rate limit (default 8192; 32768 with -f; 0 = unlimited)
#   -a WORD     one more word for the UML kernel command line (repeatable):
#               a NAME=value word reaches the guest as environment, e.g.
#               FM_DEMO_SYNCED_S=10, or VM_CACHE=unsafe VM_AIO=threads
#               (QEMU drops the VM's flushes: the demo must fail)
# Output: the guest's output, also in .build/results/demo/guest.log; its
# kernel log in .build/results/demo/dmesg.log, UML's console in uml.log,
# the VM's console and serial output in vm-console.log and vm-out.log.
# Exit status 0 when the demo passed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
COMMON=$REPO/scripts/uml/common.sh
if [ -f "$COMMON" ]; then
	# shellcheck disable=SC1090,SC1091  # the test bed's helpers (log, die)
	. "$COMMON"
fi
FM_REPO=${FM_REPO:-$REPO}
FM_BUILD=${FM_BUILD:-$REPO/.build}
FM_UML=${FM_UML:-$FM_BUILD/uml}
type log >/dev/null 2>&1 || log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
type die >/dev/null 2>&1 || die() { log "ERROR: $*"; exit 1; }

build=1 size='' rate='' guest=vm extra=()
while getopts "nfs:r:a:h" opt; do
	case $opt in
	n) build=0 ;;
	a) extra+=("$OPTARG") ;;
	f) guest=fio ;;
	s) size=$OPTARG ;;
	r) rate=$OPTARG ;;
	*) sed -n '3,33p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done

LINUX=$FM_UML/linux
RES=$FM_BUILD/results/demo

# the host diagnosis first (CPU, XSTATE size, the FP path UML takes): a
# host that breaks User-Mode Linux is named in one line
if type fm_host_line >/dev/null 2>&1; then
	( fm_prepare_tree ) >/dev/null 2>&1 || true  # (build.sh reports a failure)
	log "$(fm_host_line)"
fi

if [ "$build" = 1 ]; then
	[ -x "$REPO/scripts/uml/build.sh" ] || die "scripts/uml/build.sh missing"
	[ "$(id -u)" = 0 ] || log "not root: the package check (apt-get) may fail"
	log "building the User-Mode Linux kernel with dm-flushmirror (first run: 10 minutes or more)"
	FM_NO_KUNIT=1 "$REPO/scripts/uml/build.sh" ||
		die "the UML build failed (log: .build/logs/kunit.log)"
fi
# the VM's kernel: Debian's 6.1 (its modules give the initramfs virtio)
if [ "$build" = 1 ] && [ "$guest" = vm ] && [ -z "${FM_SKIP_APT:-}" ] &&
   ! ls /boot/vmlinuz-6.1.0-*-amd64 >/dev/null 2>&1 && type newest_pkg >/dev/null 2>&1; then
	kver=$(newest_pkg 'linux-image-6\.1\.0-[0-9]+-amd64' || true)
	if [ -n "$kver" ]; then
		apt_ensure "$kver" || log "cannot install $kver: the demo runs without the VM"
	fi
fi
[ -x "$LINUX" ] || die "$LINUX missing: run scripts/uml/build.sh"
for tool in dmsetup fio mkfs.ext4 e2fsck blockdev cmp sha256sum busybox perl python3; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "$tool not found on the host (the guest uses the host's tools)"
done

mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
rm -f "$RES/rc" "$RES/dmesg.log" "$RES/guest.log" "$RES/uml.log" \
	"$RES/vm-console.log" "$RES/vm-out.log"
: >"$RES/guest.log"

tty=0
[ -t 1 ] && tty=1
# shellcheck disable=SC2054  # con0=fd:0,fd:1 is one word
cmdline=(
	mem=2G
	rootfstype=hostfs rootflags=/ ro
	init="$REPO/scripts/demo-guest.sh"
	con0=fd:0,fd:1
	kunit.enable=0 null_blk.nr_devices=0
	FM_REPO="$REPO" FM_DEMO_RES="$RES" FM_DEMO_TTY="$tty"
	FM_DEMO_GUEST="$guest"
)
[ -z "$size" ] || cmdline+=(FM_DEMO_MB="$size")
[ -z "$rate" ] || cmdline+=(FM_DEMO_RATE="$rate")
cmdline+=("${extra[@]}")
[ "$tty" = 1 ] && cmdline+=(TERM=xterm)

export TMPDIR=${TMPDIR:-/tmp}
log "booting User-Mode Linux: $LINUX ${cmdline[*]}"
start=$(date +%s)
rc=0
# setsid: UML and its helpers get a process group of their own, killed
# below to leave nothing behind.  The guest writes its output to
# $RES/guest.log through hostfs; tail shows it live.
setsid timeout -k 20 1800 "$LINUX" "${cmdline[@]}" </dev/null \
	>"$RES/uml.log" 2>&1 &
pid=$!
tail -n +1 -s 0.2 -f --pid="$pid" "$RES/guest.log" || true
wait "$pid" || rc=$?
kill -KILL -- "-$pid" 2>/dev/null || true
log "User-Mode Linux exited after $(($(date +%s) - start)) s"

if [ ! -f "$RES/rc" ]; then
	log "the guest did not finish (UML exit $rc); see $RES/uml.log"
	if type fm_uml_death >/dev/null 2>&1; then
		fm_uml_death "$RES/uml.log" | while read -r l; do log "$l"; done
	fi
	tail -n 20 "$RES/uml.log" >&2
	exit 1
fi
grc=$(cat "$RES/rc")
if [ "$grc" != 0 ]; then
	log "the demo FAILED in the guest (exit $grc); output: $RES/guest.log, kernel log: $RES/dmesg.log"
	exit 1
fi
log "demo passed; output: $RES/guest.log"
