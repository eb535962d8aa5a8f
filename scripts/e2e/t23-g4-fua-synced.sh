#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t23-g4-fua-synced: G4 flush durability, checked by a power cut of the
# destination (null_blk with a volatile write-back cache, power 1->0->1).
# Once synced: a write followed by fsync and an O_DSYNC (FUA) write must
# survive the cut, and so must everything copied before synced (the
# transition flush); an unflushed write is lost (the cut bites).  Policies
# generation and always.  With debug_skip_dest_flush=1 (test builds only)
# the same run must lose data: that proves the test can fail.
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
# O_DSYNC = FUA write), p3 at 100 (after synced, unflushed: expected lost).
cut_run() {
	local tag=$1 policy=$2 d=fmg_d_$1 D
	CUT_OK=1 LOST=
	D=/dev/$d
	if ! nb_create $d $MIB $((MIB * 2)); then
		CUT_OK=0; LOST="cannot create $d"; return
	fi
	if ! fm_create fmg $S $D 64 flush_policy $policy copy_rate 4096; then
		CUT_OK=0; LOST="table rejected"; return
	fi
	pat p0; pat p1; pat p2; pat p3
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
	dd if=$E2E_TMP/p2 of=$M bs=$BS seek=70 oflag=direct,dsync conv=notrunc status=none
	dd if=$E2E_TMP/p3 of=$M bs=$BS seek=100 oflag=direct conv=notrunc status=none
	fm_status fmg
	info "$tag before the cut: $ST_RAW; dest flushes (stat) $(flush_count $D)"
	info "$tag dm queue: write_cache=$(cat $(dev_sysdir $M)/queue/write_cache) fua=$(cat $(dev_sysdir $M)/queue/fua)"
	# sanity: everything is on the destination (in its cache) before the cut
	if ! dcmp $S $D -s; then
		CUT_OK=0; LOST="destination differs from source before the cut"; return
	fi
	if ! nb_powercut $d; then
		CUT_OK=0; LOST="power cycle failed"; return
	fi
	cmp -s $E2E_TMP/p0 <(at $D 10) || LOST+="p0(fsync-while-copying) "
	cmp -s $E2E_TMP/p1 <(at $D 40) || LOST+="p1(write+fsync) "
	cmp -s $E2E_TMP/p2 <(at $D 70) || LOST+="p2(FUA) "
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
else
	skip "test-bites" "no $PARAM (not a test build)"
fi
