#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-require: SIMD registers
#
# t00: checks the test bed itself (runs in the UML guest, see
# scripts/uml/init.sh): dm core and the peer targets are there, a null_blk
# memory-backed device with a write-back cache can be made through configfs,
# dm-linear over it round-trips data with dd and passes a fio verify job,
# flushes reach the null_blk (stat field 16), and a power cut drops
# unflushed writes but keeps flushed ones.  First of all, user threads
# keep their FP/SIMD registers across context switches (simd-check.c: the
# UML kernel moves them through ptrace, scripts/uml/patches/0001-*.patch),
# and under UML the FP path the kernel took at boot is reported.
# Prints PASS:/FAIL:/SKIP: lines (the scripts/e2e results contract).
set -uo pipefail

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; }
skip() { echo "SKIP: $1: $2"; }
check() { local n=$1; shift; if "$@"; then pass "$n"; else fail "$n" "'$*' failed"; fi; }

export DM_DISABLE_UDEV=1
NB=fmtb0
CFG=/sys/kernel/config/nullb/$NB
DM=fmtb-linear
TMP=$(mktemp -d)

cleanup() {
	dmsetup remove "$DM" >/dev/null 2>&1
	if [ -d "$CFG" ]; then
		echo 0 >"$CFG/power" 2>/dev/null
		rmdir "$CFG" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

flushes() { awk '{print $16}' "/sys/block/$NB/stat"; }

# --- FP/SIMD state of user threads (first: everything else relies on it)
if grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	fpline=$(dmesg | grep -m 1 'x86/um: host XSTATE\|x86/um: host has no')
	if [ -n "$fpline" ]; then
		pass "UML FP path: ${fpline#*x86/um: }"
	else
		fail "UML FP path" "no 'x86/um: host XSTATE' boot line: this UML kernel lacks scripts/uml/patches/0001 (unpatched, it cannot run user processes on hosts whose XSTATE regset exceeds 2696 bytes, such as AMX hosts)"
	fi
else
	echo "NOTE: $("${FM_REPO:-.}/.build/simd-check" --probe 2>&1)"
fi
SIMD=${FM_REPO:-.}/.build/simd-check
if [ ! -x "$SIMD" ] || [ "$SIMD" -ot "${FM_REPO:-.}/scripts/e2e/simd-check.c" ]; then
	SIMD=$TMP/simd-check
	gcc -O2 -pthread -o "$SIMD" "${FM_REPO:-.}/scripts/e2e/simd-check.c" 2>&1 | tail -n 5
fi
if [ ! -x "$SIMD" ]; then
	fail "SIMD state check" "no simd-check binary (gcc failed?)"
else
	# 3 processes x 4 threads, 3000 sched_yield() calls per thread and
	# register class with the registers live
	out=$("$SIMD" 3 4 3000 2>&1)
	rc=$?
	sed 's/^/    /' <<<"$out"
	# the classes the CPU has must all have been checked (UML's
	# /proc/cpuinfo shows the host's flags)
	want="simd-check: all intact: xmm"
	grep -qw avx2 /proc/cpuinfo && want+=" ymm"
	grep -qw avx512f /proc/cpuinfo && want+=" zmm k"
	if [ "$rc" -eq 0 ] && grep -q "^$want" <<<"$out"; then
		pass "SIMD registers (xmm, ymm, zmm, k as the CPU has them) of 12 threads in 3 processes intact across context switches"
	else
		fail "SIMD state check" "exit $rc, no '$want' line: $(grep -v ': 0 corrupted' <<<"$out" | tr '\n' ' ' | head -c 300)"
	fi
fi

check "dmsetup version" dmsetup version
targets=$(dmsetup targets 2>&1)
for t in linear mirror delay flakey log-writes dust flushmirror; do
	# (a here-string: "echo | grep -q" can fail with SIGPIPE under pipefail)
	if grep -q "^$t " <<<"$targets"; then
		pass "dm target $t"
	elif [ "$t" = dust ]; then
		# optional: Debian's 6.1 kernel has none; t24 skips what needs it
		skip "dm target dust" "not in 'dmsetup targets'"
	else
		fail "dm target $t" "not in 'dmsetup targets'"
	fi
done

if [ ! -d /sys/kernel/config/nullb ]; then
	fail "null_blk configfs" "/sys/kernel/config/nullb missing"
	exit 1
fi
mkdir "$CFG" &&
	echo 64 >"$CFG/size" &&          # MiB
	echo 1 >"$CFG/memory_backed" &&
	echo 16 >"$CFG/cache_size" &&    # MiB: write-back cache, honours flushes
	echo 1 >"$CFG/power"
udevadm settle >/dev/null 2>&1 || sleep 1
if [ -b "/dev/$NB" ]; then
	pass "null_blk $NB memory_backed cache_size is a block device"
else
	fail "null_blk $NB" "/dev/$NB is not a block device ($(ls /dev | tr '\n' ' '))"
	exit 1
fi
check "null_blk has a write-back cache" \
	grep -q 'write back' "/sys/block/$NB/queue/write_cache"

sectors=$(blockdev --getsz "/dev/$NB")
check "dm-linear create" dmsetup create "$DM" --table "0 $sectors linear /dev/$NB 0"
if ! [ -b "/dev/mapper/$DM" ]; then
	fail "dm-linear node" "/dev/mapper/$DM is not a block device"
	exit 1
fi
pass "dm-linear node /dev/mapper/$DM"

head -c 1M /dev/urandom >"$TMP/a"
dd if="$TMP/a" of="/dev/mapper/$DM" bs=64k oflag=direct seek=16 status=none &&
	dd if="/dev/mapper/$DM" of="$TMP/b" bs=64k iflag=direct skip=16 count=16 status=none
check "dd round trip through dm-linear" cmp -s "$TMP/a" "$TMP/b"

f0=$(flushes)
dd if="$TMP/a" of="/dev/mapper/$DM" bs=64k oflag=direct conv=fsync status=none
f1=$(flushes)
if [ "$f1" -gt "$f0" ]; then
	pass "flush through dm-linear counted in /sys/block/$NB/stat field 16 ($f0 -> $f1)"
else
	fail "flush counted" "stat field 16 stayed at $f0"
fi

if fio --name=verify --filename="/dev/mapper/$DM" --rw=randwrite --bs=4k \
	--size=8M --direct=1 --ioengine=psync --verify=crc32c --do_verify=1 \
	--output-format=terse >"$TMP/fio.out" 2>&1; then
	pass "fio verify job on dm-linear"
else
	fail "fio verify" "$(tail -n 3 "$TMP/fio.out" | tr '\n' ' ')"
fi
check "dm-linear remove" dmsetup remove "$DM"

# Power cut (power 1 -> 0 -> 1).  null_blk's cache only holds writes to
# 4 KiB pages that have no page in its data store yet: a page written there
# once (by a flush, or evicted from a full cache) takes every later write
# directly (write-through).  So a power cut drops only unflushed writes to
# pages never flushed before.
head -c 1M /dev/urandom >"$TMP/old"
head -c 1M /dev/urandom >"$TMP/new"
head -c 1M /dev/urandom >"$TMP/fresh"
# MiB 0: flushed, then overwritten without a flush; MiB 48: never written
# before (fio above wrote the first 8 MiB)
dd if="$TMP/old" of="/dev/$NB" bs=64k oflag=direct conv=fsync status=none
dd if="$TMP/new" of="/dev/$NB" bs=64k oflag=direct status=none
dd if="$TMP/fresh" of="/dev/$NB" bs=64k seek=768 oflag=direct status=none
echo 0 >"$CFG/power" && echo 1 >"$CFG/power"
udevadm settle >/dev/null 2>&1 || sleep 1
dd if="/dev/$NB" of="$TMP/after" bs=64k iflag=direct count=16 status=none
dd if="/dev/$NB" of="$TMP/after2" bs=64k iflag=direct skip=768 count=16 status=none
if cmp -s "$TMP/after2" <(head -c 1M /dev/zero); then
	pass "null_blk power cut drops unflushed writes to never-flushed pages"
else
	fail "null_blk power cut" "unflushed writes to fresh pages survived"
fi
if cmp -s "$TMP/new" "$TMP/after"; then
	pass "null_blk quirk: overwrites of flushed pages are write-through (survive a power cut)"
elif cmp -s "$TMP/old" "$TMP/after"; then
	pass "null_blk power cut drops unflushed overwrites too (write-through quirk gone)"
else
	fail "null_blk power cut" "flushed data lost"
fi
exit 0
