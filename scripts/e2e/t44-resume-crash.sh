#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 900
# fm-qemu: skip (never run under Debian 6.1, whose null_blk cache behaves differently; the crash cuts run under UML, where the debug switch of the bite is built in)
# t44-resume-crash: resumable migration (issue 12) across host crashes.
# Source, destination and metadata are null_blk devices, each with a
# volatile cache.  A crash: all three lose power one right after the other
# (legs first: a commit the metadata device takes after that can only add
# intent or keep the copied bits it had, as in a real crash), the target is
# removed, power comes back, and the same table with the same metadata is
# loaded again.  Then:
#   - the load keeps what the newest valid commit on the device records
#     (regions copied and without intent, computed by t44-md.py from the
#     device, not by the kernel's code) and logs that commit's number;
#   - kept > 0 for most cuts taken mid-copy (else nothing shows a resume);
#   - the target reaches synced, source == destination (cmp), and every
#     write a writer's fsync covered before the cut is on the source and,
#     after the sync, on the destination (powercut-writer.py/-check.py).
# Parts: (1) T44_CUTS (default 20) seeded cuts (T44_SEED), most mid-copy
# (copy_rate T44_RATE KiB/s, checkpoint_interval 1, cut after a
# checkpoint), every fourth after synced, under 1 or 2 writers; (2) torn
# commits: after a crash, one sector of the newest superblock is
# overwritten (it fails its crc32c), the load must use the commit before
# it; (3) a clean stop (suspend + remove) mid-copy keeps exactly the
# regions copied at the suspend, and one after synced keeps all; (4) bad
# metadata refused with its specific error, nothing left behind, the
# device untouched, and discard_metadata accepting garbage; (5) the test
# bites: with debug_md_skip_flush=1 (checkpoints commit without flushing
# the legs; the destination's cache holds the copies) mid-copy cuts must
# show unequal legs or lost writes; (6) the metadata device fails (power
# off alone), a write goes on to the source alone, then the host crashes
# and the same table is loaded again (as flushmirror reattach does at
# boot; flushmirror(8): after a metadata failure "a crash now copies
# everything again"): the legs must end equal (or the load refuse).
# T44_PARTS (default "1 2 3 4 5 6") runs some parts only.
# Mid-copy cut points are copy progress (seeded), not times: UML's pace
# varies with the host's load.
. "$(dirname "$0")/lib.sh"
e2e_setup

CUTS=${T44_CUTS:-20}
SEED=${T44_SEED:-44}
MIB=${T44_MIB:-8}
RATE=${T44_RATE:-1024}		# KiB/s: the 8 MiB copy takes 8 s
AREA=${T44_AREA:-512}		# 4 KiB blocks per writer (2 MiB)
REG=256				# sectors per region: 128 KiB, 64 regions
WBYTES=$((2 * AREA * 4096))	# the two writers' areas
PY=/usr/bin/python3
PYS="$PY -S"	# without site: python starts in half the time under UML
WRITER=$(dirname "$0")/powercut-writer.py
CHECK=$(dirname "$0")/powercut-check.py
MDPY=${T44_MDPY:-$(dirname "$0")/t44-md.py}	# (another one: to see the checks fail)
PARAM=/sys/module/dm_flushmirror/parameters/debug_md_skip_flush
[ -x $PY ] || die "no $PY (the writer, the oracle and t44-md.py need it)"
RANDOM=$SEED
T_START=$SECONDS

# the caches hold twice the disk: nothing is written back before a flush
nb_create fmr_src $MIB $((MIB * 2)) || die "cannot create fmr_src"
nb_create fmr_dst $MIB $((MIB * 2)) || die "cannot create fmr_dst"
nb_create fmr_md 1 2 || die "cannot create fmr_md"
S=/dev/fmr_src D=/dev/fmr_dst MD=/dev/fmr_md M=/dev/mapper/fmr
N=$(dev_sectors $S)
# the source's data, durable: a region the copy skipped would differ
dd if=/dev/urandom of=$S bs=1M count=$MIB oflag=direct conv=fsync status=none ||
	die "cannot fill the source"

# kmark: a line in the kernel log; klog: the log since the last kmark
# (line counts do not work: earlier tests of the boot can fill the ring)
KMARK_N=0
kmark() {
	KMARK_N=$((KMARK_N + 1))
	KMARK="t44-mark-$KMARK_N-$$"
	echo "$KMARK" >/dev/kmsg
}
klog() { dmesg | sed -n "/$KMARK\$/,\$p"; }
msleep() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }
# wait_copied X: until X regions are copied (or the copy is not running)
wait_copied() {
	local end=$((SECONDS + 60))
	while fm_md_status fmr && [ "$ST_PHASE" = copying ] &&
		[ "$ST_COPIED" -lt "$1" ] && [ $SECONDS -lt $end ]; do
		sleep 0.1
	done
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# the table of every load of a run: same metadata, checkpoint every 1 s
FEAT=(metadata $MD checkpoint_interval 1)

writer() {
	exec $PYS $WRITER $M $1 $2 $AREA $((SEED * 100 + $1 * 10 + $2)) $E2E_TMP \
		2>>$E2E_TMP/writer.err
}
# start_writers K JOBS: pc_start_writers (lib.sh), and the time they began
start_writers() {
	pc_start_writers "$1" "$2"
	WSTART=$SECONDS
}
# lost DEV K JOBS: covered blocks of cut K missing on DEV (echo), 1 if the
# oracle itself failed
lost() { $PYS $CHECK $1 $2 $AREA "${COV[@]:0:$3}"; }

crash_off() { nb_power fmr_dst 0; nb_power fmr_src 0; nb_power fmr_md 0; }
crash_on() {
	nb_power fmr_src 1 && nb_power fmr_dst 1 && nb_power fmr_md 1 &&
		wait_bdev $S 10 && wait_bdev $D 10 && wait_bdev $MD 10
}

# fresh_all: no target; the destination and the metadata device blank,
# the writers' areas of the source discarded (null_blk caches writes only
# to pages its store does not hold yet: lib.sh)
fresh_all() {
	dm_remove fmr || return 1
	blkdiscard $D && blkdiscard $MD && blkdiscard -o 0 -l $WBYTES $S
}

# md_expect: what a load must use, from the device (t44-md.py load):
# EXP_SEQ EXP_KEPT EXP_SLOT EXP_NEWEST
md_expect() {
	local out
	out=$($PYS $MDPY load $MD) || out=error
	set -- $out
	EXP_SEQ=${1:-none} EXP_KEPT=${2:-} EXP_SLOT=${3:-} EXP_NEWEST=${4:-}
}

# load_again ERR_PREFIX [FEATURE...]: create fmr with the run's table and
# check what it kept against md_expect's; sets LOAD_KEPT LOAD_SEQ and
# appends to CUT_ERR / CUT_KMIS
load_again() {
	local line
	kmark
	fm_create fmr $S $D $REG "${FEAT[@]}" "$@" ||
		{ CUT_ERR+="reload refused: $(klog | grep flushmirror | tail -n 1); "; return 1; }
	fm_md_status fmr || { CUT_ERR+="no metadata status: $ST_RAW; "; return 1; }
	LOAD_KEPT=$ST_MD_KEPT
	line=$(klog |
		grep -o 'metadata commit [0-9]*: [0-9]* of [0-9]* regions kept' | tail -n 1)
	set -- $line
	LOAD_SEQ=${3%:}
	[ "$LOAD_SEQ" = "$EXP_SEQ" ] && [ "$LOAD_KEPT" = "$EXP_KEPT" ] &&
		[ "${4:-}" = "$LOAD_KEPT" ] && [ $((ST_MD_KEPT + ST_MD_RECOPIED)) = "$ST_TOTAL" ] ||
		CUT_KMIS+="load used commit '$LOAD_SEQ' kept $LOAD_KEPT (log: '$line'), the device's newest valid commit is $EXP_SEQ keeping $EXP_KEPT; "
}

# finish K JOBS: after a load, copy the rest at full speed; sets
# CUT_SYNCED CUT_EQUAL CUT_DLOST
finish() {
	CUT_SYNCED=0 CUT_EQUAL=0 CUT_DLOST=0
	timeout 10 dmsetup message fmr 0 copy_rate 0
	wait_phase fmr synced 60 && CUT_SYNCED=1
	dcmp $S $D >/dev/null 2>&1 && CUT_EQUAL=1
	CUT_DLOST=$(lost $D $1 $2) || { CUT_ERR+="oracle failed: $CUT_DLOST; "; CUT_DLOST=0; }
}

# crash_cut K KIND JOBS: one crash and resume.  KIND: copying (cut while
# copying, after >= 1 checkpoint), bite (the same, earlier in the copy),
# synced (cut after synced), torn (the
# writers stop, three more commits, the cut; then the newest superblock
# is torn).  Sets CUT_* (CUT_ERR on failure of the test's own steps,
# CUT_RETRY when a torn cut must be taken again).
crash_cut() {
	local k=$1 kind=$2 jobs=$3 x wms c0 end t0=$SECONDS sector ts tc tw tx ty tz rate y
	CUT_ERR= CUT_KMIS= CUT_RETRY= CUT_SLOST=0 CUT_DLOST=0 CUT_SYNCED=0 CUT_EQUAL=0
	CUT_COVERED=0 LOAD_KEPT=0 CUT_TORN=
	ts=$(now_ms)
	fresh_all || { CUT_ERR="cannot reset the devices"; return; }
	tc=$(now_ms)
	if [ "$kind" = synced ]; then
		fm_create fmr $S $D $REG "${FEAT[@]}" ||
			{ CUT_ERR="cannot create fmr"; return; }
		wait_phase fmr synced 60 || { CUT_ERR="not synced: $ST_RAW"; return; }
		fresh $M 0 $WBYTES || { CUT_ERR="discard failed"; return; }
		tw=$(now_ms)
		start_writers $k $jobs
		msleep $((2000 + RANDOM % 1500))
		pc_read_cov $jobs
	else
		# the cut point is a copy progress, not a time: UML's pace
		# varies.  The writers start 16 regions (2 s at 1 MiB/s: python
		# is slow to start under UML) before it; at 1 MiB/s the first
		# checkpoint (1 s) has copied 8 regions.  A torn cut copies at a
		# quarter of the rate: three commits after the writers stopped
		# must still find the copy running.
		rate=$RATE
		if [ "$kind" = torn ]; then
			rate=$((RATE / 4)) x=$((8 + RANDOM % 9)) y=0
		elif [ "$kind" = bite ]; then
			x=$((18 + RANDOM % 16)) y=$((x - 16))
		else
			x=$((18 + RANDOM % 28)) y=$((x - 16))
		fi
		fm_create fmr $S $D $REG "${FEAT[@]}" copy_rate $rate ||
			{ CUT_ERR="cannot create fmr"; return; }
		wait_copied $y
		tw=$(now_ms)
		start_writers $k $jobs
		wait_copied $x
		pc_read_cov $jobs
	fi
	if [ "$kind" = torn ]; then
		# the writers' last writes are done before the commit before the
		# newest one begins: nothing written relied on the newest commit
		# alone, as with a commit torn by the crash (a later one never
		# started).  Then three more commits (the copy goes on).
		pc_stop_writers
		pc_read_cov $jobs
		fm_md_status fmr
		c0=${ST_MD_COMMITS:-0} end=$((SECONDS + 15))
		while fm_md_status fmr && [ "$ST_MD_COMMITS" -lt $((c0 + 3)) ] &&
			[ $SECONDS -lt $end ]; do
			sleep 0.2
		done
	fi
	tx=$(now_ms)
	wms="$((tx - tc)) ms (set-up $((tc - ts)) ms), writers $((tx - tw)) ms"
	fm_md_status fmr
	CUT_PHASE=$ST_PHASE CUT_COPIED=$ST_COPIED CUT_COMMITS=$ST_MD_COMMITS
	crash_off
	pc_stop_writers
	# a loaded host can delay the cut past the copy's end: such a cut
	# counts as one after synced (CUT_KIND), except where the copy
	# matters (torn: commits after the writers; the bite: copies in the
	# cache)
	CUT_KIND=$kind
	case $kind in
	synced) [ "$CUT_PHASE" = synced ] || CUT_ERR+="not synced at the cut: $ST_RAW; " ;;
	copying) [ "$CUT_PHASE" = copying ] || CUT_KIND=synced ;;
	*) [ "$CUT_PHASE" = copying ] || CUT_ERR+="not copying at the cut: $ST_RAW; " ;;
	esac
	[ "$CUT_PHASE" = copying ] || [ "$CUT_PHASE" = synced ] ||
		CUT_ERR+="copying nor synced at the cut: $ST_RAW; "
	[ "${CUT_COMMITS:-0}" -ge 1 ] || CUT_ERR+="no commit before the cut: $ST_RAW; "
	timeout 60 dmsetup remove fmr || CUT_ERR+="cannot remove fmr; "
	crash_on || { CUT_ERR+="power on failed"; return; }
	ty=$(now_ms)
	CUT_SLOST=$(lost $S $k $jobs) || { CUT_ERR+="oracle failed: $CUT_SLOST; "; return; }
	md_expect
	case $EXP_SEQ in
	none) CUT_ERR+="no usable commit on the device: $($PYS $MDPY slots $MD | tr '\n' ' '); "; return ;;
	''|*[!0-9]*) CUT_ERR+="t44-md.py failed: $EXP_SEQ; "; return ;;
	esac
	if [ "$kind" = torn ]; then
		# the commit before the newest must be whole (it is unless a
		# commit was being written at the cut: then cut again)
		local newest=$EXP_NEWEST slots
		slots=$($PYS $MDPY slots $MD | tr '\n' ' ')
		if ! echo "$slots" | grep -q "slot $((1 - newest % 2)) sb ok seq $((newest - 1)) bitmaps ok"; then
			CUT_RETRY="a commit was in flight at the cut: $slots"
			return
		fi
		sector=$($PYS $MDPY tear $MD $((newest % 2)) $((SEED * 1000 + k)))
		md_expect
		CUT_TORN="newest commit $newest torn (sector $sector of slot $((newest % 2)))"
		[ "$EXP_SEQ" = $((newest - 1)) ] ||
			{ CUT_ERR+="tear premise: the torn superblock still reads as valid ($EXP_SEQ); "; return; }
	fi
	# the same table as before the crash
	if [ "$kind" = synced ]; then
		load_again || return
	else
		load_again copy_rate $rate || return
	fi
	tz=$(now_ms)
	finish $k $jobs
	CUT_SECS=$((SECONDS - t0))
	wms+="; cut to power on $((ty - tx)) ms, to loaded $((tz - ty)) ms, to checked $(($(now_ms) - tz)) ms"
	info "cut $k ($CUT_KIND, $jobs jobs, cut after $wms, $CUT_COPIED/$ST_TOTAL copied, $CUT_COMMITS commits): kept $LOAD_KEPT recopied $((ST_TOTAL - LOAD_KEPT)) of $ST_TOTAL (commit $LOAD_SEQ${CUT_TORN:+; $CUT_TORN}); covered $CUT_COVERED, lost on source $CUT_SLOST, on destination $CUT_DLOST; synced $CUT_SYNCED, equal $CUT_EQUAL; ${CUT_SECS}s${CUT_KMIS:+; MISMATCH: $CUT_KMIS}"
}

# ---- (1) crashes at seeded cut points, mid-copy and after synced
part1() {
	t1=$SECONDS
	n_done=0 n_copy=0 n_kept=0 n_synced=0 n_equal=0 cov=0 slost=0 dlost=0 errs= kmis=
	sum_kept=0 sum_total=0
	for ((k = 1; k <= CUTS; k++)); do
		kind=copying
		[ $((k % 4)) = 0 ] && kind=synced
		crash_cut $k $kind $((1 + k % 2))
		[ -n "$CUT_ERR" ] && { errs+="cut $k: $CUT_ERR"; break; }
		n_done=$((n_done + 1))
		cov=$((cov + CUT_COVERED)) slost=$((slost + CUT_SLOST)) dlost=$((dlost + CUT_DLOST))
		n_synced=$((n_synced + CUT_SYNCED)) n_equal=$((n_equal + CUT_EQUAL))
		sum_kept=$((sum_kept + LOAD_KEPT)) sum_total=$((sum_total + ST_TOTAL))
		[ -n "$CUT_KMIS" ] && kmis+="cut $k: $CUT_KMIS"
		if [ $CUT_KIND = copying ]; then
			n_copy=$((n_copy + 1))
			[ "$LOAD_KEPT" -gt 0 ] && n_kept=$((n_kept + 1))
		fi
	done
	info "crashes: $n_done of $CUTS cuts ($n_copy mid-copy, $((n_done - n_copy)) after synced), kept $sum_kept of $sum_total regions in all, mid-copy cuts with kept > 0: $n_kept; covered $cov, lost on source $slost, on destination $dlost; $((SECONDS - t1)) s"
	[ -z "$errs" ] && [ $n_done = $CUTS ] && pass crash-runs || fail crash-runs "${errs:-$n_done of $CUTS cuts}"
	[ -z "$kmis" ] && pass crash-load-uses-newest-commit || fail crash-load-uses-newest-commit "$kmis"
	expect crash-copying-cuts-kept "$((4 * n_kept))" -ge "$((3 * n_copy))" \
		"mid-copy cuts keeping regions: $n_kept of $n_copy, need 3/4"
	expect crash-copying-cuts-tried "$n_copy" -gt 0
	expect crash-synced-after-resume "$n_synced" -eq "$n_done"
	expect crash-legs-equal "$n_equal" -eq "$n_done"
	expect crash-covered-writes "$cov" -gt 0
	expect crash-source-lost-writes "$slost" -eq 0
	expect crash-destination-lost-writes "$dlost" -eq 0
	echo "STAT: cuts=$n_done covered=$cov lost=$((slost + dlost)) kept=$sum_kept"
}

# ---- (2) torn commit: the newest superblock fails its checksum
part2() {
	t2=$SECONDS
	torn_ok=0 torn_n=${T44_TORN:-2} errs= kmis= tries=0
	for ((k = 61; k < 61 + torn_n; k++)); do
		for try in 1 2 3; do
			tries=$((tries + 1))
			crash_cut $k torn $((1 + k % 2))
			[ -n "$CUT_RETRY" ] || break
			info "torn cut $k, try $try: $CUT_RETRY"
		done
		[ -n "$CUT_RETRY" ] && { errs+="cut $k: $CUT_RETRY; "; continue; }
		[ -n "$CUT_ERR" ] && { errs+="cut $k: $CUT_ERR"; continue; }
		[ -n "$CUT_KMIS" ] && kmis+="cut $k: $CUT_KMIS"
		if [ $CUT_SYNCED = 1 ] && [ $CUT_EQUAL = 1 ] && [ $CUT_SLOST = 0 ] && [ $CUT_DLOST = 0 ]; then
			torn_ok=$((torn_ok + 1))
		else
			errs+="cut $k: synced $CUT_SYNCED equal $CUT_EQUAL lost $CUT_SLOST/$CUT_DLOST; "
		fi
	done
	info "torn commits: $torn_ok of $torn_n resumed from the commit before the torn one ($tries cuts); $((SECONDS - t2)) s"
	[ -z "$errs" ] && pass torn-commit-runs || fail torn-commit-runs "$errs"
	[ -z "$kmis" ] && pass torn-commit-older-used || fail torn-commit-older-used "$kmis"
	expect torn-commit-synced-equal "$torn_ok" -eq "$torn_n"
}

# ---- (3) a clean stop keeps what was copied
part3() {
	t3=$SECONDS
	CUT_ERR= CUT_KMIS=
	fresh_all || die "cannot reset the devices"
	fm_create fmr $S $D $REG "${FEAT[@]}" copy_rate $RATE || die "cannot create fmr"
	end=$((SECONDS + 30))
	while fm_status fmr && [ "$ST_COPIED" -lt $((ST_TOTAL / 4)) ] && [ $SECONDS -lt $end ]; do
		sleep 0.2
	done
	# a write into a copied region: its intent is committed, then the suspend
	# clears it (its checkpoint flushes both legs)
	printf '%-4095s\n' "t44 clean stop" >$E2E_TMP/blk
	dd if=$E2E_TMP/blk of=$M bs=4k seek=3 oflag=direct conv=notrunc,fsync status=none ||
		fail clean-stop-write "dd failed"
	timeout 30 dmsetup suspend fmr || die "cannot suspend fmr"
	fm_md_status fmr
	sus_copied=$ST_COPIED sus_raw=$ST_RAW
	timeout 30 dmsetup remove fmr || die "cannot remove fmr"
	md_expect
	info "clean stop: $sus_raw; the device's newest commit $EXP_SEQ keeps $EXP_KEPT"
	if [ "$sus_copied" -gt 0 ] && [ "$sus_copied" -lt "$ST_TOTAL" ]; then
		pass clean-stop-mid-copy
	else
		fail clean-stop-mid-copy "copied $sus_copied of $ST_TOTAL at the suspend: not mid-copy"
	fi
	load_again copy_rate $RATE
	info "clean stop: reload kept $LOAD_KEPT of $ST_TOTAL (commit $LOAD_SEQ), copied at the suspend $sus_copied"
	expect clean-stop-kept-all-copied "${LOAD_KEPT:-0}" -eq "$sus_copied"
	[ -z "$CUT_KMIS" ] && [ -z "$CUT_ERR" ] && pass clean-stop-load-uses-newest-commit ||
		fail clean-stop-load-uses-newest-commit "$CUT_ERR$CUT_KMIS"
	COV=(0 0)
	finish 0 0
	if [ $CUT_SYNCED = 1 ] && [ $CUT_EQUAL = 1 ] && same_at $E2E_TMP/blk $D $((3 * 4096)); then
		pass clean-stop-synced-equal
	else
		fail clean-stop-synced-equal "synced $CUT_SYNCED equal $CUT_EQUAL, the write on the destination: $(same_at $E2E_TMP/blk $D $((3 * 4096)) && echo yes || echo no)"
	fi
	# after synced, a clean stop keeps everything
	timeout 30 dmsetup remove fmr || die "cannot remove fmr"
	md_expect
	CUT_ERR= CUT_KMIS=
	load_again
	expect clean-stop-synced-kept-all "${LOAD_KEPT:-0}" -eq "$ST_TOTAL"
	info "clean stop: $((SECONDS - t3)) s"
}

# ---- (4) metadata that does not fit is refused
part4() {
	t4=$SECONDS
	# $MD holds a clean commit for region REG over N sectors
	fresh_all || die "cannot reset the devices"
	fm_create fmr $S $D $REG "${FEAT[@]}" || die "cannot create fmr"
	wait_phase fmr synced 60 || die "not synced: $ST_RAW"
	timeout 30 dmsetup remove fmr || die "cannot remove fmr"
	md_sum() { dd if=$MD bs=4k count=8 iflag=direct status=none | md5sum; }
	# (fmr_small, the too-small metadata device, holds fmr_md: not counted)
	HOLD_OK=none
	holders() { ls /sys/block/fmr_src/holders /sys/block/fmr_dst/holders \
		/sys/block/fmr_md/holders 2>/dev/null | grep -v "^/sys\|^\$\|^$HOLD_OK\$" | tr '\n' ' '; }
	# refuse NAME REGEX TABLE: dmsetup create fails, no device is left, no
	# device held, the kernel log gives the error, the metadata is unchanged
	refuse() {
		local name=$1 want=$2 table=$3 sum out log
		sum=$(md_sum)
		kmark
		out=$(timeout 30 dmsetup create fmr_bad --table "$table" 2>&1)
		if [ $? = 0 ]; then
			fail "refuse-$name" "table accepted: $table"
			dmsetup remove fmr_bad
			return
		fi
		log=$(klog | grep -E 'device-mapper: (table|flushmirror)' | head -n 2 | tr '\n' ' ')
		if dm_exists fmr_bad; then
			fail "refuse-$name" "refused but fmr_bad left behind"
			dmsetup remove fmr_bad
		elif [ -n "$(holders)" ]; then
			fail "refuse-$name" "devices still held: $(holders)"
		elif ! echo "$log" | grep -q "$want"; then
			fail "refuse-$name" "want '$want' in the log, got '$log' (dmsetup: $out)"
		elif [ "$(md_sum)" != "$sum" ]; then
			fail "refuse-$name" "the metadata device was written"
		else
			pass "refuse-$name"
		fi
	}
	refuse region-size "Metadata was written with another region size" \
		"0 $N flushmirror $S $D $((REG * 2)) 2 metadata $MD"
	refuse mapped-length "Metadata was written for another mapped length" \
		"0 $((N / 2)) flushmirror $S $D $REG 2 metadata $MD"
	refuse source-as-metadata "Metadata device is one of the legs" \
		"0 $N flushmirror $S $D $REG 2 metadata $S"
	refuse destination-as-metadata "Metadata device is one of the legs" \
		"0 $N flushmirror $S $D $REG 2 metadata $D"
	# 40 sectors: 64 regions need 48
	dm_create fmr_small "0 40 linear $MD 0" || die "cannot create fmr_small"
	HOLD_OK=$(basename "$(readlink -f "$(dev_sysdir /dev/mapper/fmr_small)")")
	refuse too-small "Metadata device too small for the number of regions" \
		"0 $N flushmirror $S $D $REG 2 metadata /dev/mapper/fmr_small"
	dm_remove fmr_small
	HOLD_OK=none
	dd if=/dev/urandom of=$MD bs=4k count=2 oflag=direct conv=fsync status=none ||
		die "cannot write garbage"
	refuse garbage "Metadata device not blank, no valid superblock" \
		"0 $N flushmirror $S $D $REG 2 metadata $MD"
	kmark
	if fm_create fmr $S $D $REG metadata $MD discard_metadata; then
		fm_md_status fmr
		if ! klog | grep -q 'metadata device formatted'; then
			fail discard-metadata-accepts "no 'metadata device formatted' in the log"
		elif [ "$ST_MD" != ok ] || [ "$ST_MD_KEPT" != 0 ]; then
			fail discard-metadata-accepts "status: $ST_RAW"
		elif tab=$(dmsetup table fmr); echo "$tab" | grep -q discard_metadata ||
			! echo "$tab" | grep -q "metadata $(devno $MD)"; then
			fail discard-metadata-accepts "table (metadata $(devno $MD) shown, discard_metadata not): $tab"
		else
			pass discard-metadata-accepts
		fi
		wait_phase fmr synced 60 && dcmp $S $D >/dev/null 2>&1 &&
			pass discard-metadata-synced-equal ||
			fail discard-metadata-synced-equal "$ST_RAW"
	else
		fail discard-metadata-accepts "refused: $(klog | grep flushmirror | tail -n 1)"
	fi
	info "bad metadata: $((SECONDS - t4)) s"
}

# ---- (5) the test bites: checkpoints that do not flush the legs
part5() {
	t5=$SECONDS
	if [ -w $PARAM ]; then
		FM_ATEXIT+=("echo 0 > $PARAM")
		echo 1 >$PARAM
		bites=0 bite_n=${T44_BITE_CUTS:-2} errs= bk=0
		for ((k = 101; k < 101 + bite_n; k++)); do
			crash_cut $k bite 2
			[ -n "$CUT_ERR" ] && { errs+="cut $k: $CUT_ERR"; break; }
			bk=$((bk + LOAD_KEPT))
			if [ $CUT_EQUAL = 0 ] || [ $CUT_SLOST != 0 ] || [ $CUT_DLOST != 0 ]; then
				bites=$((bites + 1))
			fi
		done
		echo 0 >$PARAM
		info "with debug_md_skip_flush=1: $bites of $bite_n cuts show unequal legs or lost writes (kept $bk regions in all); $((SECONDS - t5)) s"
		if [ -n "$errs" ]; then
			fail test-bites "$errs"
		elif [ $bites -gt 0 ]; then
			pass test-bites
		else
			fail test-bites "no cut showed unequal legs or lost writes with debug_md_skip_flush=1"
		fi
	else
		skip test-bites "no $PARAM"
	fi
}

# ---- (6) the metadata device fails alone, the table is loaded again
part6() {
	t6=$SECONDS
	CUT_ERR=
	fresh_all || die "cannot reset the devices"
	fm_create fmr $S $D $REG "${FEAT[@]}" || die "cannot create fmr"
	wait_phase fmr synced 60 || die "not synced: $ST_RAW"
	# two commits after synced: the device records every region copied
	fm_md_status fmr
	c0=$ST_MD_COMMITS end=$((SECONDS + 10))
	while fm_md_status fmr && [ "$ST_MD_COMMITS" -lt $((c0 + 2)) ] && [ $SECONDS -lt $end ]; do
		sleep 0.2
	done
	md_before=$ST_RAW
	nb_power fmr_md 0
	printf '%-4095s\n' "t44 metadata failed" >$E2E_TMP/blk2
	timeout 60 dd if=$E2E_TMP/blk2 of=$M bs=4k seek=$((5 * REG / 8)) oflag=direct conv=notrunc,fsync status=none
	wrc=$?
	fm_md_status fmr
	info "metadata device off, a write (rc $wrc) to region 5: $ST_RAW (before: $md_before); then a crash"
	if [ "$ST_MD" = failed ]; then
		pass mdfail-premise
	else
		fail mdfail-premise "the target did not notice the metadata failure: $ST_RAW"
	fi
	# then the host crashes (the write, fsynced, is on the source)
	nb_power fmr_dst 0
	nb_power fmr_src 0
	timeout 60 dmsetup remove fmr || die "cannot remove fmr"
	crash_on || die "power on failed"
	kmark
	if fm_create fmr $S $D $REG "${FEAT[@]}"; then
		fm_md_status fmr
		kept=$ST_MD_KEPT
		wait_phase fmr synced 60
		if [ "$ST_PHASE" = synced ] && dcmp $S $D >/dev/null 2>&1; then
			pass mdfail-reload-equal
		else
			fail mdfail-reload-equal "after the reload (kept $kept of $ST_TOTAL: $(klog | grep -o 'metadata commit.*' | tail -n 1)) the legs differ: $(dcmp $S $D 2>&1 | head -n 1); $ST_RAW"
		fi
	else
		info "reload refused: $(klog | grep flushmirror | tail -n 1)"
		pass mdfail-reload-equal
	fi
	info "metadata failure: $((SECONDS - t6)) s"
}

for p in ${T44_PARTS:-1 2 3 4 5 6}; do
	part$p
done
info "t44 total: $((SECONDS - T_START)) s"
