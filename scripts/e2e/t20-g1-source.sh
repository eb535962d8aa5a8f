#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t20-g1-source: G1 source authority.  Reads come from the source (source
# and destination hold different data beforehand); fio verify through the
# target and again directly on the source; guest flushes reach the source
# (its stat flush counter); flushed and FUA writes survive a power cut of
# the source, an unflushed one does not (the cut bites).  The FUA write is
# a pure one (asynchronous O_DSYNC: REQ_FUA and no flush): the device must
# advertise FUA and the source's flush counter must not move for it, so
# that a write turned into write + flush cannot pass for FUA.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=32
nb_create fms_src $MIB 64 || die "cannot create fms_src"
nb_create fms_dst $MIB 64 || die "cannot create fms_dst"
S=/dev/fms_src D=/dev/fms_dst M=/dev/mapper/fms

# different contents on the two legs
dd if=/dev/urandom of=$S bs=1M count=$MIB oflag=direct conv=fsync status=none
dd if=/dev/urandom of=$D bs=1M count=$MIB oflag=direct conv=fsync status=none
check_not legs-differ dcmp $S $D -s

# ---- nosync: reads must still come from the source
if fm_create fms $S $D 64 nosync; then
	check_phase nosync-starts-synced fms synced 5
	check nosync-reads-from-source dcmp $M $S
	dm_remove fms
else
	fail nosync-create "table rejected"
fi

# ---- copying (paused half way): reads come from the source
fm_create fms $S $D 64 copy_rate 1024 copy_jobs 1 || die "cannot create flushmirror"
sleep 2
timeout 10 dmsetup message fms 0 pause
wait_phase fms paused 10
info "paused at $ST_RAW"
check copying-reads-from-source dcmp $M $S
timeout 10 dmsetup message fms 0 resume

# ---- flush reaches the source while copying
f0=$(flush_count $S)
dd if=/dev/zero of=$M bs=4k count=1 seek=3 oflag=direct conv=fsync status=none
f1=$(flush_count $S)
expect copying-flush-reaches-source "$f1" -gt "$f0" "source flushes $f0 -> $f1"

# ---- fio verify through the target while copying, then on the source alone
FIO_W=(--name=g1 --filename=$M "${FIO_COMMON[@]}" --rw=randwrite
	--size=16M --verify=crc32c --randseed=20)
fio_run g1 "${FIO_W[@]}" --do_verify=1
rc=$?
fm_status fms
info "after fio: $ST_RAW"
check_fio fio-verify-through-target g1 $rc
FIO_S=(--name=g1 --filename=$S "${FIO_COMMON[@]}" --rw=randwrite
	--size=16M --verify=crc32c --randseed=20)
fio_run g1s "${FIO_S[@]}" --verify_only
check_fio fio-writes-on-source g1s $?
check reads-equal-source-after-fio dcmp $M $S

# ---- synced: reads and flushes
timeout 10 dmsetup message fms 0 copy_rate 0
check_phase reaches-synced fms synced 120
check synced-reads-from-source dcmp $M $S
f0=$(flush_count $S)
dd if=/dev/zero of=$M bs=4k count=1 seek=5 oflag=direct conv=fsync status=none
dd if=/dev/null of=$M conv=fsync,notrunc status=none
f1=$(flush_count $S)
expect synced-flushes-reach-source "$f1" -ge $((f0 + 2)) "source flushes $f0 -> $f1"

# ---- power cut of the source: fsync'ed and FUA writes survive
# (discard the pattern area first: null_blk caches only fresh pages)
check discard-through-target fresh $M $((10 * 65536)) $((22 * 65536))
dd if=/dev/zero of=$E2E_TMP/z bs=64k count=22 status=none
check discard-reaches-source same_at $E2E_TMP/z $S $((10 * 65536))
check discard-reaches-dest same_at $E2E_TMP/z $D $((10 * 65536))
pat() { dd if=/dev/urandom of=$E2E_TMP/$1 bs=64k count=2 status=none; }
pat p1; pat p3
# p1: O_DIRECT write then fsync; p2: FUA writes only (aio_write dsync: no
# flush); p3: unflushed
dd if=$E2E_TMP/p1 of=$M bs=64k seek=10 oflag=direct conv=fsync,notrunc status=none
expect dm-advertises-fua "$(dev_fua $M)" -eq 1 "queue/fua of $M"
f0=$(flush_count $S)
aio_write p2 $M $((20 * 65536)) 128k 21 dsync
check_fio fua-write-ok p2 $?
f1=$(flush_count $S)
expect fua-write-no-source-flush "$f1" -eq "$f0" \
	"source flushes $f0 -> $f1: the FUA write became write + flush"
dd if=$E2E_TMP/p3 of=$M bs=64k seek=30 oflag=direct conv=notrunc status=none
check source-has-p3-before-cut same_at $E2E_TMP/p3 $S $((30 * 65536))
if nb_powercut fms_src; then
	check powercut-source-keeps-fsynced same_at $E2E_TMP/p1 $S $((10 * 65536))
	check powercut-source-keeps-fua verify_at p2v $S $((20 * 65536)) 128k 21
	check_not powercut-drops-unflushed same_at $E2E_TMP/p3 $S $((30 * 65536))
else
	fail powercut-source "power cycle of fms_src failed"
fi
# the device still refers to the dead source: remove it (must not hang)
check remove-after-source-vanished dm_remove fms
