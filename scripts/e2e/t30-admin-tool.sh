#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t30-admin-tool: the host admin's path (issue 5) with scripts/flushmirror.
# Unsafe destinations are refused and change nothing; abort puts the
# original table back.  Then a live migration of a dm-linear "VM disk"
# whose source is filled with random data first (so the copier has the
# whole disk to copy: the destination starts as zeros), while fio writes
# over the whole disk, with a verify backlog, during the rate-limited copy
# (seen in phase copying) and while 'flushmirror verify' compares the legs;
# that load stops, a random-read load runs through complete.  At the
# switchover the destination must equal the source byte for byte (cmp
# after complete); the disk is a linear table on the destination, the
# helper is gone, fio saw no error and verified what it wrote, and a full
# write + verify pass through the disk (now the destination alone)
# succeeds.
# FM_CMD (kernel command line / environment) runs another flushmirror.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=${FM_CMD:-$FM_REPO/scripts/flushmirror}
MIB=64
nb_create fa_src $MIB $((MIB * 2)) || die "cannot create fa_src"
nb_create fa_dst $MIB $((MIB * 2)) || die "cannot create fa_dst"
nb_create fa_small $((MIB / 2)) || die "cannot create fa_small"
S=/dev/fa_src D=/dev/fa_dst
N=$(dev_sectors $S)
dm_create fa_vm "0 $N linear $S 0" || die "cannot create the VM disk"
V=/dev/mapper/fa_vm
orig=$(dmsetup table fa_vm)
FM_ATEXIT+=("dm_remove fa_vm-fmsrc")

unchanged() {
	[ "$(dmsetup table fa_vm)" = "$orig" ] && ! dm_exists fa_vm-fmsrc
}

# ---- refusals change nothing
check_not refuse-smaller-destination $FM start fa_vm /dev/fa_small
check_not refuse-same-device $FM start fa_vm $S
check_not refuse-the-disk-itself $FM start fa_vm $V
dm_create fa_holder "0 8 linear $D 0" || die "cannot create fa_holder"
check_not refuse-destination-in-use $FM start fa_vm $D
dm_remove fa_holder
check unchanged-after-refusals unchanged

# ---- abort puts the original table back
check start-then-abort-start $FM start fa_vm $D --copy-rate 1024
check start-then-abort-abort $FM abort fa_vm
check abort-restores-table unchanged

# ---- live migration under a verifying fio load over the whole disk
# the whole source holds new data the copier must copy
dd if=/dev/urandom of=$V bs=1M count=$MIB oflag=direct status=none || die "cannot fill the source"
if dcmp $S $D >/dev/null 2>&1; then
	fail destination-starts-different "the destination already equals the source"
else
	pass destination-starts-different
fi
bg_start fio --output-format=json --output=$E2E_TMP/load.json \
	--ioengine=libaio --direct=1 --bs=4k --allow_file_create=0 \
	--verify_state_save=0 --name=guest --filename=$V --rw=randwrite \
	--iodepth=8 --size=${MIB}M --time_based --runtime=600 \
	--verify=crc32c --verify_backlog=256 --randseed=30 --fsync=16 \
	2>$E2E_TMP/load.err
FIO=$BG_PID
sleep 2
# 16 MiB/s: the copy of 64 MiB takes about 4 s, with the guest writing
check start-under-load $FM start fa_vm $D --region-size 64K --copy-jobs 4 --copy-rate 16M
fm_status fa_vm
info "after start: $ST_RAW"
[ "$ST_PHASE" = copying ] && [ "$ST_COPIED" -lt "$ST_TOTAL" ] && pass copy-under-load ||
	fail copy-under-load "not copying right after start: $ST_RAW"
check wait-until-synced timeout 300 $FM wait fa_vm
check verify-under-load $FM verify fa_vm
kill -0 $FIO 2>/dev/null && pass fio-writing-until-verified ||
	fail fio-writing-until-verified "fio ended early: $(fio_stderr load)"
kill -INT $FIO 2>/dev/null
wait $FIO
rc=$?
e=$(fio_errors load)
w=$(fio_field load '.write.total_ios')
r=$(fio_field load '.read.total_ios')
info "fio across start/wait/verify: rc=$rc err=$e writes=$w verify-reads=$r"
if [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ] && [ "${w:-0}" -gt 0 ]; then
	pass fio-no-error-across-migration
else
	fail fio-no-error-across-migration "rc=$rc err=$e writes=$w reads=$r $(fio_stderr load)"
fi
# complete with reads in flight (writes would make the source stale at the
# switchover, and the comparison below meaningless)
fio_bg reads --name=reads --filename=$V "${FIO_COMMON[@]}" --ioengine=libaio \
	--iodepth=8 --rw=randread --size=${MIB}M --time_based --runtime=600
RFIO=$BG_PID
sleep 1
check complete-under-read-load $FM complete fa_vm
sleep 1
kill -INT $RFIO 2>/dev/null
wait $RFIO
check_fio reads-across-complete reads 0
# at the switchover the destination holds exactly what the source held
check destination-equals-source-after-complete dcmp $S $D

# ---- the disk now is the destination alone
set -- $(dmsetup table fa_vm)
dst_devt=$(printf '%d:%d' $((0x$(stat -L -c %t $D))) $((0x$(stat -L -c %T $D))))
if [ "$3" = linear ] && [ "$4" = "$dst_devt" ]; then
	pass disk-is-linear-on-destination
else
	fail disk-is-linear-on-destination "table: $(dmsetup table fa_vm) (destination $dst_devt)"
fi
dm_exists fa_vm-fmsrc && fail helper-removed "fa_vm-fmsrc still exists" ||
	pass helper-removed
# a full write + verify pass through the disk lands on the destination
fio_run post --name=post --filename=$V "${FIO_COMMON[@]}" --rw=write \
	--size=$((MIB / 2))M --verify=crc32c --do_verify=1
check_fio verify-pass-on-destination post $?
check disk-reads-the-destination dcmp $V $D
