#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t23-g4-fua-synced: G4 flush durability, checked by a power cut of the
# destination (null_blk with a volatile write-back cache, power 1->0->1).
# Once synced: a write followed by fsync and a FUA write must survive the
# cut, and so must everything copied before synced (the transition flush);
# an unflushed write is lost (the cut bites).  The FUA write is a pure one
# (asynchronous O_DSYNC, see aio_write): the target advertises FUA and
# neither leg sees a flush for it.  Policies generation and always.  Then
# the FUA-hold path: a FUA write issued while copying that completes after
# synced.  With debug_skip_dest_flush=1 (test builds only) the same runs
# must lose data: that proves the test can fail.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=16
BS=64k				# pattern block: 2 x 64 KiB per pattern
nb_create fmg_src $MIB || die "cannot create fmg_src"
S=/dev/fmg_src M=/dev/mapper/fmg
dd if=/dev/urandom of=$S bs=1M count=$MIB oflag=direct status=none
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush

pat() { dd if=/dev/urandom of=$E2E_TMP/$1 bs=$BS count=2 status=none; }
at() { dd if=$1 bs=$BS skip=$2 count=2 iflag=direct status=none; }

# cut_run TAG POLICY: prints "LOST <what>..." lines for covered data lost,
# and sets CUT_OK=0 if the run itself could not be done.
# Pattern slots (in 64 KiB blocks): p0 at 10 (written + fsynced while
# copying), p1 at 40 (after synced, write + fsync), p2 at 70 (after synced,
# FUA writes, fio verify data), p3 at 100 (after synced, unflushed: expected
# lost).
cut_run() {
	local tag=$1 policy=$2 d=fmg_d_$1 D
	CUT_OK=1 LOST= CUT_FUA=none CUT_FUA_NOFLUSH=0 CUT_FUA_FLUSHES=
	D=/dev/$d
	if ! nb_create $d $MIB $((MIB * 2)); then
		CUT_OK=0; LOST="cannot create $d"; return
	fi
	if ! fm_create fmg $S $D 64 flush_policy $policy copy_rate 4096; then
		CUT_OK=0; LOST="table rejected"; return
	fi
	pat p0; pat p1; pat p3
	dd if=$E2E_TMP/p0 of=$M bs=$BS seek=10 oflag=direct conv=fsync,notrunc status=none
	timeout 10 dmsetup message fmg 0 copy_rate 0
	if ! wait_phase fmg synced 60; then
		CUT_OK=0; LOST="not synced: $ST_RAW"; return
	fi
	# fresh pages for the patterns: after the transition flush every
	# destination page is in null_blk's store, where writes are durable
	# at once (see lib.sh); a discard through the target frees them
	if ! fresh $M $((40 * 65536)) $((62 * 65536)); then
		CUT_OK=0; LOST="discard through the target failed"; return
	fi
	dd if=/dev/zero of=$E2E_TMP/z bs=64k count=62 status=none
	if ! same_at $E2E_TMP/z $D $((40 * 65536)) >/dev/null; then
		CUT_OK=0; LOST="discard did not reach the destination"; return
	fi
	dd if=$E2E_TMP/p1 of=$M bs=$BS seek=40 oflag=direct conv=fsync,notrunc status=none
	# p2: FUA writes and nothing else (aio_write dsync); neither leg may
	# see a flush for them, or they were write + flush, not FUA
	CUT_FUA=$(dev_fua $M)
	local f0s f0d
	f0s=$(flush_count $S) f0d=$(flush_count $D)
	if ! aio_write p2$tag $M $((70 * 65536)) 128k 72 dsync; then
		CUT_OK=0; LOST="FUA write failed: $(fio_stderr p2$tag)"; return
	fi
	CUT_FUA_FLUSHES="source $f0s -> $(flush_count $S), destination $f0d -> $(flush_count $D)"
	[ "$(flush_count $S)" -eq "$f0s" ] && [ "$(flush_count $D)" -eq "$f0d" ] &&
		CUT_FUA_NOFLUSH=1 || CUT_FUA_NOFLUSH=0
	dd if=$E2E_TMP/p3 of=$M bs=$BS seek=100 oflag=direct conv=notrunc status=none
	fm_status fmg
	info "$tag before the cut: $ST_RAW; dest flushes (stat) $(flush_count $D)"
	info "$tag dm queue: write_cache=$(cat $(dev_sysdir $M)/queue/write_cache) fua=$CUT_FUA; FUA write: flushes $CUT_FUA_FLUSHES"
	# sanity: everything is on the destination (in its cache) before the cut
	if ! dcmp $S $D -s; then
		CUT_OK=0; LOST="destination differs from source before the cut"; return
	fi
	if ! nb_powercut $d; then
		CUT_OK=0; LOST="power cycle failed"; return
	fi
	cmp -s $E2E_TMP/p0 <(at $D 10) || LOST+="p0(fsync-while-copying) "
	cmp -s $E2E_TMP/p1 <(at $D 40) || LOST+="p1(write+fsync) "
	verify_at p2v$tag $D $((70 * 65536)) 128k 72 || LOST+="p2(FUA) "
	# the whole copy, except the unflushed p3 slot (blocks 100..101)
	dcmp $S $D -s -n $((100 * 65536)) || LOST+="copy-before-p3 "
	dcmp $S $D -s -i $((102 * 65536)) || LOST+="copy-after-p3 "
	if cmp -s $E2E_TMP/p3 <(at $D 100); then
		P3_LOST=0
	else
		P3_LOST=1
	fi
	# the device still holds the dead destination: it must go away cleanly
	timeout 60 dmsetup remove fmg || timeout 60 dmsetup remove --force fmg
	dm_exists fmg && { CUT_OK=0; LOST+="cannot remove fmg after the cut"; }
	nb_destroy $d
}

for policy in generation always; do
	cut_run $policy $policy
	if [ $CUT_OK = 0 ]; then
		fail "powercut-$policy" "$LOST"
		continue
	fi
	expect "fua-$policy-advertised" "$CUT_FUA" -eq 1 "queue/fua of $M"
	if [ $CUT_FUA_NOFLUSH = 1 ]; then
		pass "fua-$policy-no-flush"
	else
		fail "fua-$policy-no-flush" "a FUA write moved the flush counters ($CUT_FUA_FLUSHES): write + flush, not FUA"
	fi
	if [ -z "$LOST" ]; then
		pass "powercut-$policy-flushed-writes-survive"
	else
		fail "powercut-$policy-flushed-writes-survive" "lost: $LOST"
	fi
	if [ $P3_LOST = 1 ]; then
		pass "powercut-$policy-unflushed-lost"
	else
		fail "powercut-$policy-unflushed-lost" "unflushed write survived: the cut does not bite"
	fi
done

# ---- the FUA-hold path (fm_mirror_done()): a FUA write W issued while
# copying goes to the destination without FUA; when it completes after the
# target got synced, it must not complete before a destination flush made
# it durable there.  The destination sits behind a dm-delay (fmg_dly).  The
# copy is paused once region 0 (W's) is copied; then fmg_dly is reloaded to
# hold writes to region 0 for HOLD_MS; a discard of region 0 (so that W
# lands in null_blk's volatile cache: see nb_create) and then W are issued,
# both held there; the copy resumes at full speed and the target is synced,
# transition flush done, while W still waits.  W completes; a power cut of
# the destination must not lose it.  A plain write after W (covered by no
# flush) is lost: the cut bites in this stack too.
# 3 s under UML; 10 s on the Debian guest, whose emulated CPUs take longer
# to copy and flush between W's issue and its release
HOLD_MS=3000
grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null || HOLD_MS=10000
HREG=128			# region size: 64 KiB
ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
# held_writes: writes held in fmg_dly's first segment (dm-delay status:
# reads, writes and flushes it holds now)
held_writes() { dmsetup status fmg_dly | awk 'NR == 1 { print $5 + 0 }'; }
wait_writes() {	# wait_writes N [PID]: up to 15 s for N writes held, or
	local i	# N - 1 once PID (the discard, held first) is done
	for ((i = 0; i < 300; i++)); do
		[ "$(held_writes)" -ge "$1" ] && return 0
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null &&
			[ "$(held_writes)" -ge $(($1 - 1)) ] && return 0
		sleep 0.05
	done
	return 1
}
# fua_hold TAG: sets HOLD_OK (0: the scenario could not be set up, reason
# in HOLD_ERR), HOLD_LOST (W lost), HOLD_CTL (1: the control survived)
fua_hold() {
	local tag=$1 d=fmg_h_$1 D DLY=/dev/mapper/fmg_dly N t0 tc
	local wpid= dpid= rc=1 df_sync=0 tw=0 ts=0 te=0
	HOLD_OK=1 HOLD_ERR= HOLD_LOST= HOLD_CTL=0
	D=/dev/$d
	N=4096			# 2 MiB mapped: the copy after the pause is short
	nb_create $d $MIB $((MIB * 2)) || { HOLD_OK=0 HOLD_ERR="cannot create $d"; return; }
	if ! dm_create fmg_dly "0 $N delay $D 0 0"; then
		HOLD_OK=0 HOLD_ERR="cannot create the dm-delay"; nb_destroy $d; return
	fi
	if ! FM_LEN=$N fm_create fmg $S $DLY $HREG copy_jobs 1 copy_rate 64; then
		HOLD_OK=0 HOLD_ERR="table rejected"; dm_remove fmg_dly; nb_destroy $d; return
	fi
	t0=$(ms)
	while fm_status fmg && [ "$ST_COPIED" -lt 1 ] &&
		[ $(($(ms) - t0)) -lt 20000 ]; do
		sleep 0.05
	done
	tc=$(($(ms) - t0))
	timeout 10 dmsetup message fmg 0 pause
	wait_phase fmg paused 10
	info "fua-hold $tag: first region copied after $tc ms, paused: $ST_RAW"
	if [ "$ST_PHASE" != paused ] || [ "$ST_COPIED" -lt 1 ] ||
		[ "$ST_COPIED" -ge "$ST_TOTAL" ]; then
		HOLD_OK=0 HOLD_ERR="not paused with some regions copied: $ST_RAW"
	fi
	# from now on writes to region 0 wait HOLD_MS on their way to $D
	if [ $HOLD_OK = 1 ] &&
		! { printf '%s\n' "0 $HREG delay $D 0 0 $D 0 $HOLD_MS $D 0 0" \
			"$HREG $((N - HREG)) delay $D $HREG 0" |
			timeout 60 dmsetup load fmg_dly &&
			timeout 60 dmsetup resume fmg_dly; }; then
		HOLD_OK=0 HOLD_ERR="cannot reload the dm-delay"
	fi
	if [ $HOLD_OK = 1 ]; then
		blkdiscard -o 0 -l 65536 $M &
		dpid=$!
		wait_writes 1 || { HOLD_OK=0 HOLD_ERR="the discard is not held in dm-delay"; }
	fi
	if [ $HOLD_OK = 1 ]; then
		aio_write hold$tag $M 0 64k 81 dsync &
		wpid=$!
		wait_writes 2 $dpid || { HOLD_OK=0 HOLD_ERR="W is not held in dm-delay"; }
		tw=$(ms)
		fm_status fmg
		[ "$ST_PHASE" = paused ] ||
			{ HOLD_OK=0 HOLD_ERR="W not issued while copying: $ST_RAW"; }
	fi
	if [ $HOLD_OK = 1 ]; then
		timeout 10 dmsetup message fmg 0 copy_rate 0
		timeout 10 dmsetup message fmg 0 resume
		wait_phase fmg synced 30
		ts=$(ms)
		df_sync=$ST_DF
		info "fua-hold $tag: synced $((ts - tw)) ms after W was issued: $ST_RAW"
		if [ "$ST_PHASE" != synced ]; then
			HOLD_OK=0 HOLD_ERR="not synced: $ST_RAW"
		elif [ "$(held_writes)" -lt 1 ] || ! kill -0 $wpid 2>/dev/null; then
			# W is released after the discard: one held is W
			HOLD_OK=0 HOLD_ERR="synced only after W's destination leg left dm-delay ($((ts - tw)) ms)"
		fi
	fi
	[ -n "$wpid" ] && { wait $wpid; rc=$?; te=$(ms); }
	[ -n "$dpid" ] && wait $dpid
	if [ $HOLD_OK = 1 ]; then
		fm_status fmg
		info "fua-hold $tag: W done $((te - tw)) ms after issue: $ST_RAW; destination flushes since synced: $((ST_DF - df_sync))"
		if [ $rc -ne 0 ] || [ "$(fio_errors hold$tag)" != 0 ]; then
			HOLD_OK=0 HOLD_ERR="W failed: $(fio_stderr hold$tag)"
		elif [ $((te - tw)) -lt $((HOLD_MS / 2)) ]; then
			HOLD_OK=0 HOLD_ERR="W done after $((te - tw)) ms: its destination leg was not delayed"
		fi
	fi
	if [ $HOLD_OK = 1 ]; then
		# control: a plain write after W, on fresh pages, flushed by nothing
		fresh $M $((8 * 65536)) 65536 &&
			aio_write ctl$tag $M $((8 * 65536)) 64k 82 ||
			{ HOLD_OK=0 HOLD_ERR="control write failed"; }
	fi
	if [ $HOLD_OK = 1 ]; then
		if nb_powercut $d; then
			verify_at holdv$tag $D 0 64k 81 || HOLD_LOST="W(FUA, issued while copying)"
			verify_at ctlv$tag $D $((8 * 65536)) 64k 82 && HOLD_CTL=1
		else
			HOLD_OK=0 HOLD_ERR="power cycle failed"
		fi
	fi
	timeout 60 dmsetup remove fmg || timeout 60 dmsetup remove --force fmg
	dm_remove fmg_dly
	nb_destroy $d
}

fua_hold hold
if [ $HOLD_OK = 0 ]; then
	fail fua-hold-setup "$HOLD_ERR"
else
	pass fua-hold-setup
	if [ -z "$HOLD_LOST" ]; then
		pass fua-hold-survives-powercut
	else
		fail fua-hold-survives-powercut "lost $HOLD_LOST"
	fi
	if [ $HOLD_CTL = 0 ]; then
		pass fua-hold-unflushed-lost
	else
		fail fua-hold-unflushed-lost "unflushed control write survived: the cut does not bite"
	fi
fi

# ---- the test bites: no destination flushes at all must lose data
if [ -w $PARAM ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	echo 1 >$PARAM
	cut_run bite generation
	echo 0 >$PARAM
	if [ $CUT_OK = 0 ]; then
		fail "test-bites" "$LOST"
	elif [ -n "$LOST" ]; then
		pass "test-bites"
		info "with debug_skip_dest_flush=1 lost: $LOST"
	else
		fail "test-bites" "nothing lost with destination flushes skipped"
	fi
	# ... and the FUA-hold check: without the flush it waits for, W is lost
	echo 1 >$PARAM
	fua_hold bite
	echo 0 >$PARAM
	if [ $HOLD_OK = 0 ]; then
		fail "fua-hold-test-bites" "$HOLD_ERR"
	elif [ -n "$HOLD_LOST" ]; then
		pass "fua-hold-test-bites"
	else
		fail "fua-hold-test-bites" "W survived with destination flushes skipped"
	fi
else
	skip "test-bites" "no $PARAM (not a test build)"
fi
