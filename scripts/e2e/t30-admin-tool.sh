#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t30-admin-tool: the host admin's path (issue 5) with scripts/flushmirror.
# Unsafe destinations are refused and change nothing; then a live
# migration of a dm-linear "VM disk" that fio keeps writing to, with a
# verify backlog, all along: start, wait, complete.  Afterwards the disk is
# a linear table on the destination, the helper is gone, fio saw no error
# and verified what it wrote, and a full verify pass through the disk (now
# the destination alone) succeeds.  abort puts the original table back.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=$FM_REPO/scripts/flushmirror
MIB=64
nb_create fa_src $MIB 64 || die "cannot create fa_src"
nb_create fa_dst $MIB 64 || die "cannot create fa_dst"
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

# ---- live migration under a verifying fio load
bg_start fio --output-format=json --output=$E2E_TMP/load.json \
	--ioengine=libaio --direct=1 --bs=4k --allow_file_create=0 \
	--verify_state_save=0 --name=guest --filename=$V --rw=randwrite \
	--iodepth=8 --size=$((MIB / 2))M --time_based --runtime=600 \
	--verify=crc32c --verify_backlog=256 --randseed=30 --fsync=16 \
	2>$E2E_TMP/load.err
FIO=$BG_PID
sleep 2
check start-under-load $FM start fa_vm $D --region-size 64K --copy-jobs 4
fm_status fa_vm
info "after start: $ST_RAW"
check wait-until-synced timeout 300 $FM wait fa_vm
kill -0 $FIO 2>/dev/null && pass fio-writing-at-complete ||
	fail fio-writing-at-complete "fio ended early: $(fio_stderr load)"
check complete-under-load $FM complete fa_vm
sleep 2
kill -INT $FIO 2>/dev/null
wait $FIO
rc=$?
e=$(fio_errors load)
w=$(fio_field load '.write.total_ios')
r=$(fio_field load '.read.total_ios')
info "fio across start/wait/complete: rc=$rc err=$e writes=$w verify-reads=$r"
if [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ] && [ "${w:-0}" -gt 0 ]; then
	pass fio-no-error-across-migration
else
	fail fio-no-error-across-migration "rc=$rc err=$e writes=$w reads=$r $(fio_stderr load)"
fi

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
