#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t21-g2-g3-converge: G2 convergence and G3 equality.  A 256 MiB source is
# copied while fio writes at full speed all over it (random 4k writes,
# verify=crc32c with a verify backlog); the copy must reach "synced" while
# fio is still writing; once fio stops the destination equals the source
# byte for byte and a full write+verify pass through the target succeeds.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=${T21_MIB:-256}
RUNTIME=${T21_RUNTIME:-50}	# fio run time; synced must come before it ends
REGION=256			# 128 KiB regions
nb_create fmc_src $MIB || die "cannot create fmc_src"
nb_create fmc_dst $MIB || die "cannot create fmc_dst"
S=/dev/fmc_src D=/dev/fmc_dst M=/dev/mapper/fmc

# non-trivial source content, a different destination
dd if=/dev/urandom of=$E2E_TMP/rnd bs=1M count=4 status=none
for ((i = 0; i < MIB; i += 4)); do
	dd if=$E2E_TMP/rnd of=$S bs=1M seek=$i count=4 oflag=direct status=none
done
dd if=/dev/zero of=$D bs=1M count=1 seek=$((MIB / 2)) oflag=direct status=none 2>/dev/null

fm_create fmc $S $D $REGION copy_jobs 8 || die "cannot create flushmirror"
t0=$SECONDS

# writer 1: time based, random over the lower 3/4, backlog verify
# writer 2: fixed size over the upper 1/4, written fully then verified
lo=$((MIB * 3 / 4))
bg_start fio --output-format=json --output=$E2E_TMP/load.json \
	--ioengine=libaio --direct=1 --bs=4k --allow_file_create=0 --verify_state_save=0 \
	--name=rand --filename=$M --rw=randwrite --iodepth=16 --offset=0 \
	--size=${lo}M --time_based --runtime=$RUNTIME --verify=crc32c \
	--verify_backlog=512 --randseed=21 \
	--name=fixed --filename=$M --rw=randwrite --iodepth=4 --offset=${lo}M \
	--size=$((MIB - lo))M --verify=crc32c --do_verify=1 --randseed=22 \
	2>$E2E_TMP/load.err
FIO=$BG_PID

if wait_phase fmc synced $((RUNTIME - 10)); then
	tsync=$((SECONDS - t0))
	if kill -0 $FIO 2>/dev/null; then
		pass synced-while-fio-writes
	else
		fail synced-while-fio-writes "fio ended before synced"
	fi
	info "synced after ${tsync}s under load: $ST_RAW"
else
	fail synced-while-fio-writes "not synced after $((RUNTIME - 10))s: $ST_RAW"
fi
[ -z "$WAIT_INV_ERR" ] && pass invariants-during-copy || fail invariants-during-copy "$WAIT_INV_ERR"
fm_status fmc; c1=$ST_SG
sleep 2
fm_status fmc
expect fio-still-writing-after-synced "$ST_SG" -gt "$c1"
[ "$ST_PHASE" = synced ] && pass stays-synced-under-load || fail stays-synced-under-load "$ST_RAW"
check_inv invariants-synced-under-load fmc

wait $FIO
rc=$?
e=$(fio_errors load)
w=$(fio_field load '.write.total_ios')
r=$(fio_field load '.read.total_ios')
info "fio under copy: rc=$rc err=$e writes=$w verify-reads=$r"
if [ $rc -eq 0 ] && [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ]; then
	pass fio-verify-during-copy
else
	fail fio-verify-during-copy "rc=$rc err=$e reads=$r $(head -c 400 $E2E_TMP/load.err | tr '\n' ' ')"
fi

# ---- quiet: equality and counters
fm_status fmc
[ "$ST_PHASE" = synced ] && pass synced-after-load || fail synced-after-load "$ST_RAW"
expect all-regions-copied "$ST_COPIED" -eq "$ST_TOTAL"
expect quiet-WM-eq-SG "$ST_WM" -eq "$ST_SG" "$ST_RAW"
check dest-equals-source dcmp $S $D

# ---- full write + verify pass through the synced target
fio_run fin --name=fin --filename=$M "${FIO_COMMON[@]}" --ioengine=libaio \
	--iodepth=8 --rw=randwrite --size=32M --offset=$((MIB / 2))M \
	--verify=crc32c --do_verify=1 --randseed=23
check_fio fio-verify-synced fin $?
check dest-equals-source-after-verify dcmp $S $D
check_inv invariants-end fmc
