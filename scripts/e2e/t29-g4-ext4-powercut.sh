#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 500
# t29-g4-ext4-powercut: G4 with a real filesystem on top.  ext4 is made on
# the synced device (source null_blk, destination null_blk with a volatile
# cache, discarded first so that the cache matters) and mounted; a Python
# workload creates many small files with unique contents, renames, replaces
# and deletes them, fsyncing file and directory, and records every file that
# is durable (fsync(file) + fsync(dir) returned, untouched since) in a
# journal outside the fs.  At a random (seeded) moment the durable set is
# taken and the destination loses its power with the workload running; the
# guest must see no error.  Then the destination alone is mounted (ext4
# replays its journal): every durable file must be there with its contents,
# and e2fsck -fn must find the fs clean.  Devices are made afresh per cut.
# With debug_skip_dest_flush=1 a cut must lose files (the test bites).
# T29_CUTS (default 4: policies generation and always in turn) and
# T29_SEED (default 29) change the run.
# Last line: "STAT: cuts=N files_covered=N files_lost=N" (the normal cuts).
. "$(dirname "$0")/lib.sh"
e2e_setup

CUTS=${T29_CUTS:-4}
SEED=${T29_SEED:-29}
MIB=64
S=/dev/f29s D=/dev/f29d M=/dev/mapper/f29
MNT=$E2E_TMP/mnt
PY=/usr/bin/python3
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
RANDOM=$SEED
mkdir -p $MNT
WPID=
FM_ATEXIT+=('[ -z "$WPID" ] || { kill -KILL $WPID; wait $WPID; } 2>/dev/null'
	"mountpoint -q $MNT && umount $MNT")

for t in mkfs.ext4 e2fsck; do
	if ! command -v $t >/dev/null; then
		skip ext4-powercut "no $t (e2fsprogs) on the host"
		exit 0
	fi
done
[ -x $PY ] || { skip ext4-powercut "no $PY on the host"; exit 0; }

# the workload (journal of durable files) and its oracle, shared with t43:
# ext4-workload.py MNT JOURNAL SEED and ext4-check.py MNT SNAPSHOT JOURNAL
# POST (see their headers)
WORKLOAD=$(dirname "$0")/ext4-workload.py
CHECK=$(dirname "$0")/ext4-check.py

# powercut_run K POLICY BITE: one power cut; sets CUT_ERR (the run could
# not be done), CUT_BAD (errors the guest saw), CUT_DMG (the destination
# after the cut: files lost, e2fsck unclean, no mount), CUT_COV, CUT_LOST
powercut_run() {
	local k=$1 policy=$2 bite=$3 ms i wrc post fl res fsck=0
	CUT_ERR='' CUT_BAD='' CUT_DMG='' CUT_COV=0 CUT_LOST=0
	nb_create f29s $MIB || { CUT_ERR="cannot create f29s"; return; }
	nb_create f29d $MIB $((MIB * 2)) || { CUT_ERR="cannot create f29d"; return; }
	fm_create f29 $S $D 1024 flush_policy "$policy" ||
		{ CUT_ERR="cannot create flushmirror"; return; }
	wait_phase f29 synced 90 || { CUT_ERR="not synced: $ST_RAW"; return; }
	# after synced every destination page is in null_blk's store, where
	# writes are durable at once (lib.sh): discard all, through the target
	fresh $M 0 $((MIB << 20)) || { CUT_ERR="discard through the target failed"; return; }
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
		$M >$E2E_TMP/mkfs.out 2>&1 ||
		{ CUT_ERR="mkfs.ext4: $(tail -n 2 $E2E_TMP/mkfs.out | tr '\n' ' ')"; return; }
	mount -t ext4 -o noinit_itable $M $MNT || { CUT_ERR="cannot mount $M"; return; }
	# (the fs itself is made with flushes: the bite is about the workload)
	[ "$bite" = 1 ] && echo 1 >$PARAM
	: >$E2E_TMP/journal
	$PY $WORKLOAD $MNT $E2E_TMP/journal $((SEED * 100 + k)) &
	WPID=$!
	# python starts slowly in UML: the clock runs from its first record
	for ((i = 0; i < 300; i++)); do
		[ -s $E2E_TMP/journal ] && break
		kill -0 $WPID 2>/dev/null || break
		sleep 0.1
	done
	ms=$((1000 + RANDOM % 3000))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	fl=$(flush_count $D)
	# durable set first, then the cut: a file made durable in between is
	# only not counted
	cp $E2E_TMP/journal $E2E_TMP/snap
	nb_power f29d 0
	post=$(stat -c %s $E2E_TMP/journal)
	# the workload goes on a little on the failed target, then stops
	sleep 0.5
	kill -TERM $WPID 2>/dev/null
	wait $WPID
	wrc=$?
	WPID=
	[ "$bite" = 1 ] && echo 0 >$PARAM
	[ $wrc -eq 0 ] || CUT_BAD+="workload exited $wrc; "
	timeout 120 umount $MNT || CUT_BAD+="umount of the guest fs failed; "
	fm_status f29
	info "cut $k ($policy$([ "$bite" = 1 ] && echo ", dest flushes skipped"), after $ms ms): $(wc -l <$E2E_TMP/snap) records taken, $fl destination flushes before the cut; $ST_RAW"
	[ "$ST_PHASE" = failed ] || info "cut $k: target is $ST_PHASE after the cut, not failed"
	# drop the target (and the dead disk it holds) before the new disk
	# comes up with the same dev_t
	timeout 60 dmsetup remove f29 || { CUT_ERR="cannot remove f29"; return; }
	nb_power f29d 1 && wait_bdev $D 10 || { CUT_ERR="power on failed"; return; }
	if mount -t ext4 $D $MNT 2>$E2E_TMP/mount.err; then
		res=$($PY $CHECK $MNT $E2E_TMP/snap $E2E_TMP/journal $post 2>$E2E_TMP/check.err)
		head -n 8 $E2E_TMP/check.err | sed "s/^/# cut $k: /"
		set -- $res
		if [ $# -ne 3 ]; then
			CUT_ERR="check failed: $res $(head -c 300 $E2E_TMP/check.err)"
			umount $MNT
			return
		fi
		CUT_COV=$1 CUT_LOST=$2
		info "cut $k: durable files checked $1, lost $2, excluded $3 (changed between the snapshot and the cut)"
		timeout 120 umount $MNT || CUT_DMG+="umount of the destination failed; "
	else
		CUT_DMG+="destination does not mount: $(tr '\n' ' ' <$E2E_TMP/mount.err); "
		CUT_COV=$($PY $CHECK /nonexistent $E2E_TMP/snap $E2E_TMP/journal $post 2>/dev/null | cut -d' ' -f1)
		CUT_LOST=$CUT_COV
	fi
	[ "$CUT_LOST" -eq 0 ] || CUT_DMG+="$CUT_LOST of $CUT_COV durable files lost; "
	e2fsck -fn $D >$E2E_TMP/fsck.out 2>&1 || fsck=$?
	if [ $fsck -ne 0 ]; then
		CUT_DMG+="e2fsck -fn exited $fsck; "
		grep -v '^Pass\|^e2fsck [0-9]' $E2E_TMP/fsck.out | head -n 8 | sed "s/^/# cut $k e2fsck: /"
	fi
	nb_destroy f29d
	nb_destroy f29s
}

total_cov=0 total_lost=0 cuts_done=0
configs=(generation always)
for ((k = 1; k <= CUTS; k++)); do
	policy=${configs[$(((k - 1) % 2))]}
	powercut_run $k $policy 0
	if [ -n "$CUT_ERR" ]; then
		fail "ext4-cut-$k" "$CUT_ERR"
		break
	fi
	cuts_done=$((cuts_done + 1))
	total_cov=$((total_cov + CUT_COV))
	total_lost=$((total_lost + CUT_LOST))
	if [ -z "$CUT_BAD$CUT_DMG" ]; then
		pass "ext4-cut-$k-$policy"
	else
		fail "ext4-cut-$k-$policy" "$CUT_BAD$CUT_DMG"
	fi
done
expect ext4-cuts-done "$cuts_done" -eq "$CUTS"
expect ext4-durable-files-checked "$total_cov" -gt 0
expect ext4-durable-files-lost "$total_lost" -eq 0

# ---- the test bites
if [ -n "$CUT_ERR" ]; then
	skip test-bites "the normal cuts could not be done"
elif [ -w $PARAM ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	powercut_run 101 generation 1
	echo 0 >$PARAM
	if [ -n "$CUT_ERR$CUT_BAD" ]; then
		fail test-bites "$CUT_ERR$CUT_BAD"
	elif [ -n "$CUT_DMG" ]; then
		pass test-bites
		info "with debug_skip_dest_flush=1: $CUT_DMG"
	else
		fail test-bites "no durable file lost and e2fsck clean with destination flushes skipped (checked $CUT_COV)"
	fi
else
	skip test-bites "no $PARAM (not a debug build)"
fi

echo "STAT: cuts=$cuts_done files_covered=$total_cov files_lost=$total_lost"
