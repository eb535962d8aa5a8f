#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t25-g7-switchover: G7.  Synced under fio load; fio stops; dmsetup suspend
# drains and flushes the destination: WF = WM = SG, one destination flush
# counted in its stat.  The destination (write-back cache) is then power
# cut while suspended - so only what the suspend flushed survives - and the
# device is switched, in place, to a linear table on the destination alone:
# the guest sees exactly what it wrote (fio verify_only of the writer job,
# cmp with the source).
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=32
nb_create fmw_src $MIB || die "cannot create fmw_src"
nb_create fmw_dst $MIB $((MIB * 2)) || die "cannot create fmw_dst"
S=/dev/fmw_src D=/dev/fmw_dst M=/dev/mapper/fmw
N=$((MIB * 2048))

fm_create fmw $S $D 128 || die "cannot create flushmirror"
check_phase synced-first fmw synced 90
# fresh destination pages (null_blk keeps only those in its volatile cache)
check discard-all fresh $M 0 $((MIB * 1048576))

# the writer: every block of [0, 16M) once, with verify headers; plus a
# random load on [16M, 32M) without any fsync (so the destination holds
# unflushed mirrored writes when the suspend comes)
# (no --filename in WRITER: fio adds a file per --filename option)
WRITER=(--name=writer "${FIO_COMMON[@]}" --rw=randwrite
	--offset=0 --size=16M --verify=crc32c --randseed=61)
fio_run load "${WRITER[@]}" --filename=$M --do_verify=0 \
	--name=noise "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--offset=16M --size=16M --time_based --runtime=8 --randseed=62
check_fio fio-load load $?

fm_status fmw
info "before suspend: $ST_RAW"
[ "$ST_PHASE" = synced ] && pass synced-after-load || fail synced-after-load "$ST_RAW"
expect unflushed-before-suspend "$ST_WF" -lt "$ST_WM" "else the suspend flush is not needed and this test proves little"
f0=$(flush_count $D)
if timeout 60 dmsetup suspend fmw; then
	pass suspend
else
	fail suspend "dmsetup suspend failed or hung"
fi
f1=$(flush_count $D)
fm_status fmw
info "suspended: $ST_RAW; dest stat flushes $f0 -> $f1"
if [ "$ST_WF" = "$ST_WM" ] && [ "$ST_WM" = "$ST_SG" ]; then
	pass suspended-WF-eq-WM-eq-SG
else
	fail suspended-WF-eq-WM-eq-SG "$ST_RAW"
fi
expect suspend-flushed-destination "$f1" -gt "$f0"
expect suspend-status-dest-flushes "$ST_DF" -ge 1

# power cut of the destination while suspended: only flushed data remains;
# read the power-cycled destination directly (the suspended device still
# holds the dead disk, which has the same dev_t)
if nb_powercut fmw_dst; then
	fio_run verify "${WRITER[@]}" --filename=$D --verify_only
	check_fio powercut-dest-has-writer-data verify $?
	check powercut-dest-equals-source dcmp $D $S
else
	fail powercut "power cycle of fmw_dst failed"
fi
timeout 30 dmsetup resume fmw
dm_remove fmw

# ---- a second switchover without power cut, policy always, while the
# load runs right up to the suspend (fio killed, then suspend)
nb_destroy fmw_dst
nb_create fmw_dst $MIB $((MIB * 2)) || die "cannot recreate fmw_dst"
fm_create fmw $S $D 128 flush_policy always || die "cannot create flushmirror"
check_phase synced-always fmw synced 90
WRITER2=(--name=writer "${FIO_COMMON[@]}" --filename=$M --rw=randwrite
	--offset=0 --size=16M --verify=crc32c --randseed=64)
fio_run load2w "${WRITER2[@]}" --do_verify=0
check_fio fio-writer-2 load2w $?
fio_bg load2 --name=noise "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--ioengine=libaio --iodepth=16 --offset=16M --size=16M --time_based \
	--runtime=60 --randseed=63
L2=$BG_PID
sleep 4
kill $L2; wait $L2
if timeout 60 dmsetup suspend fmw; then pass suspend-2; else fail suspend-2 "failed or hung"; fi
fm_status fmw
if [ "$ST_WF" = "$ST_WM" ] && [ "$ST_WM" = "$ST_SG" ]; then
	pass suspended-2-WF-eq-WM-eq-SG
else
	fail suspended-2-WF-eq-WM-eq-SG "$ST_RAW"
fi
# switchover in place: the guest's device becomes a linear on the dest
if timeout 30 dmsetup load fmw --table "0 $N linear $D 0" &&
   timeout 30 dmsetup resume fmw; then
	pass switch-to-linear
else
	fail switch-to-linear "load/resume of the linear table failed"
	timeout 30 dmsetup resume fmw
fi
dmsetup table fmw | grep -q " linear " || fail switched-table "$(dmsetup table fmw)"
fio_run verify2 "${WRITER2[@]}" --verify_only
check_fio switched-verify-writer-data verify2 $?
check switched-equals-source dcmp $M $S
