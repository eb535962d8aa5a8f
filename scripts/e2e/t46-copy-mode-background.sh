#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 300
# t46-copy-mode-background: copy_mode background (issue 11).  While the
# device is copying, the first write to a copied region goes to the source
# only and sends the region back to be copied (the copied count drops, the
# destination does not get the write); once the region is copied again, the
# next write is mirrored (the destination gets it at once, the count stays).
# Then G2/G3 in this mode: under full-speed random writes with fio verify
# all over the device, the copy still reaches "synced" while fio writes,
# and afterwards the destination equals the source.  `dmsetup table`
# prints the feature back.  Then the admin command: `flushmirror start
# --copy-mode background` loads the feature (status and --json show it),
# a start with another mode is refused and changes nothing, a bad mode is a
# usage error, complete switches over with the data equal.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=${T46_MIB:-64}
RUNTIME=${T46_RUNTIME:-45}
REGION=256			# 128 KiB regions
# T46_MODE=sync runs the same checks on the default mode: they must fail
MODE=${T46_MODE:-background}
nb_create fmb_src $MIB || die "cannot create fmb_src"
nb_create fmb_dst $MIB || die "cannot create fmb_dst"
S=/dev/fmb_src D=/dev/fmb_dst M=/dev/mapper/fmb

blk() { printf '%-4095s\n' "$1"; }
# at DEV BLOCK: the 4 KiB block BLOCK of DEV, read with O_DIRECT
at() { dd if="$1" bs=4k skip="$2" count=1 iflag=direct status=none; }
put() { blk "$2" | dd of=$M bs=4k seek="$1" oflag=direct conv=notrunc status=none; }

# ---- 1. the route, step by step, with the copier paused.  One copy job
# at 128 KiB/s (a region a second) over the first 4 MiB (32 regions), so
# that the copier can be paused between the second copy of region 0 and
# that of region 3.
FM_LEN=8192 fm_create fmb $S $D $REGION copy_mode $MODE copy_jobs 1 \
	copy_rate 128 || die "cannot create flushmirror"
check table-prints-copy-mode bash -c "dmsetup table fmb | grep -q 'copy_mode background'"
for ((i = 0; i < 100; i++)); do
	fm_status fmb
	[ "$ST_COPIED" -ge 5 ] && break
	sleep 0.2
done
dmsetup message fmb 0 pause || die "pause refused: $ST_RAW"
sleep 1
fm_status fmb
c0=$ST_COPIED
info "paused with $c0 of $ST_TOTAL regions copied: $ST_RAW"
[ "$c0" -ge 1 ] || die "region 0 not copied yet: $ST_RAW"

# regions 0 and 3 are among the first the copier took: they are copied
put 0 "first write to a copied region"
put 96 "region 3"
fm_status fmb
expect first-write-sends-region-back "$ST_COPIED" -eq $((c0 - 2)) "$ST_RAW"
if at $D 0 | grep -q "first write to a copied region"; then
	fail first-write-source-only "the destination has the write"
else
	pass first-write-source-only
fi
at $S 0 | grep -q "first write to a copied region" &&
	pass first-write-on-source || fail first-write-on-source "not on the source"

# copy it again: resume until the destination has it, then pause again
dmsetup message fmb 0 resume || die "resume refused"
for ((i = 0; i < 900; i++)); do
	at $D 0 | grep -q "first write to a copied region" && break
	sleep 0.1
done
dmsetup message fmb 0 pause || die "pause refused: $(dmsetup status fmb)"
sleep 1
at $D 0 | grep -q "first write to a copied region" &&
	pass region-copied-again || fail region-copied-again "the destination never got it"
fm_status fmb
c1=$ST_COPIED
put 0 "second write, mirrored"
fm_status fmb
expect second-write-keeps-region "$ST_COPIED" -eq "$c1" "$ST_RAW"
at $D 0 | grep -q "second write, mirrored" &&
	pass second-write-mirrored || fail second-write-mirrored "not on the destination"

dmsetup message fmb 0 copy_rate 0 && dmsetup message fmb 0 resume ||
	die "cannot restart the copier"
check_phase synced-after-resume fmb synced 120
check dest-equals-source-1 dcmp $S $D -n $((8192 * 512))
dm_remove fmb

# ---- 2. G2/G3 in background mode: converges under full-speed writes
dd if=/dev/urandom of=$D bs=1M count=1 seek=$((MIB / 2)) oflag=direct status=none
# a pass at 6 MiB/s takes about 11 s, and at most two are needed: fio
# writes all through them
fm_create fmb $S $D $REGION copy_mode $MODE copy_jobs 8 copy_rate 6144 ||
	die "cannot create flushmirror (2)"
t0=$SECONDS
fio_bg load --ioengine=libaio --direct=1 --bs=4k --allow_file_create=0 \
	--verify_state_save=0 --name=rand --filename=$M --rw=randwrite \
	--iodepth=16 --size=${MIB}M --time_based --runtime=$RUNTIME \
	--verify=crc32c --verify_backlog=512 --randseed=46
FIO=$BG_PID
# writes send copied regions back: the copied count goes down at times
prev=0 went_down=0
while fm_status fmb && [ "$ST_PHASE" = copying ] && [ $((SECONDS - t0)) -lt $((RUNTIME - 5)) ]; do
	[ "$ST_COPIED" -lt "$prev" ] && went_down=$((went_down + 1))
	prev=$ST_COPIED
	sleep 0.5
done
expect copied-count-goes-down-under-writes "$went_down" -gt 0 "$ST_RAW"
if wait_phase fmb synced $((RUNTIME - 5 - (SECONDS - t0))); then
	expect fio-wrote-during-copy "$ST_SG" -gt 2000 "$ST_RAW"
	if kill -0 $FIO 2>/dev/null; then
		pass synced-while-fio-writes
	else
		fail synced-while-fio-writes "fio ended before synced"
	fi
	info "synced after $((SECONDS - t0)) s under load: $ST_RAW"
else
	fail synced-while-fio-writes "not synced after $((RUNTIME - 5)) s: $ST_RAW"
fi
[ -z "$WAIT_INV_ERR" ] && pass invariants-during-copy || fail invariants-during-copy "$WAIT_INV_ERR"
wait $FIO
rc=$?
e=$(fio_errors load)
r=$(fio_field load '.read.total_ios')
if [ $rc -eq 0 ] && [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ]; then
	pass fio-verify-during-copy
else
	fail fio-verify-during-copy "rc=$rc err=$e reads=$r $(fio_stderr load)"
fi
fm_status fmb
[ "$ST_PHASE" = synced ] && pass synced-after-load || fail synced-after-load "$ST_RAW"
expect quiet-WM-eq-SG "$ST_WM" -eq "$ST_SG" "$ST_RAW"
check dest-equals-source-2 dcmp $S $D
dm_remove fmb

# ---- 3. the admin command: start --copy-mode
FM=$FM_REPO/scripts/flushmirror
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib
dd if=/dev/urandom of=$D bs=1M count=1 oflag=direct status=none
dm_create fmb_vm "0 $(dev_sectors $S) linear $S 0" || die "cannot create fmb_vm"
FM_ATEXIT+=("dm_remove fmb_vm" "dm_remove fmb_vm-fmsrc")
run_fm "$FM" start fmb_vm $D --copy-mode fast --force
expect_rc admin-bad-copy-mode 2 "--copy-mode must be sync or background"
if is_linear_on fmb_vm $S; then pass admin-bad-mode-changes-nothing
else fail admin-bad-mode-changes-nothing "$(dmsetup table fmb_vm)"; fi
run_fm "$FM" start fmb_vm $D --copy-mode $MODE --copy-rate 4M --force
expect_rc admin-start-copy-mode 0
check admin-table-has-copy-mode bash -c "dmsetup table fmb_vm | grep -q 'copy_mode background'"
run_fm "$FM" status fmb_vm
expect_rc admin-status-copy-mode 0 "copy_mode background"
run_fm "$FM" status --json fmb_vm
expect_rc admin-json-copy-mode 0 '"copy_mode":"background"'
t0=$(dmsetup table fmb_vm)
run_fm "$FM" start fmb_vm $D --copy-mode sync --copy-rate 4M --force
expect_rc admin-other-mode-refused 1 "copy mode background, not sync"
[ "$(dmsetup table fmb_vm)" = "$t0" ] && pass admin-other-mode-changes-nothing ||
	fail admin-other-mode-changes-nothing "$(dmsetup table fmb_vm)"
# writes while it copies, then the switchover
fio_run adm --name=adm --ioengine=psync --direct=1 --bs=4k --filename=/dev/mapper/fmb_vm \
	--rw=randwrite --size=${MIB}M --io_size=8M --randseed=463
check_fio admin-writes-while-copying adm $?
run_fm "$FM" rate fmb_vm 0
expect_rc admin-rate-unlimited 0
run_fm "$FM" wait fmb_vm
expect_rc admin-wait-synced 0
run_fm "$FM" complete fmb_vm
expect_rc admin-complete 0
is_linear_on fmb_vm $D && pass admin-complete-linear-on-dest ||
	fail admin-complete-linear-on-dest "$(dmsetup table fmb_vm)"
check admin-dest-equals-source dcmp $S $D
