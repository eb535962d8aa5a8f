#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t27-g4-powercut-many: G4 at many cut points (issue 3).  Writers put
# blocks with unique contents ("cut K job J seq I") on the synced device
# and fsync now and then, recording after each completed fsync how far they
# are covered.  At a random (seeded) moment the covered counts are taken
# and the destination (null_blk, volatile cache) loses its power while I/O
# is in flight; then every covered block must be on the destination.
# Policies generation and always, 1 and 4 concurrent writers.  The device
# is then copied afresh for the next cut.  With debug_skip_dest_flush=1 a
# few cuts must report lost writes (the test bites).
# T27_CUTS (default 20) and T27_SEED (default 27) change the run.
. "$(dirname "$0")/lib.sh"
e2e_setup

CUTS=${T27_CUTS:-20}
SEED=${T27_SEED:-27}
MIB=16
N=$((MIB * 2048))
AREA=512			# 4 KiB blocks per writer (2 MiB)
nb_create fmp_src $MIB || die "cannot create fmp_src"
nb_create fmp_dst $MIB $((MIB * 2)) || die "cannot create fmp_dst"
S=/dev/fmp_src D=/dev/fmp_dst L=/dev/mapper/fmp_dl M=/dev/mapper/fmp
LINEAR="0 $N linear $D 0"
dm_create fmp_dl "$LINEAR" || die "cannot create linear"
relink() { dm_reload fmp_dl "0 $N error" && dm_reload fmp_dl "$LINEAR"; }
fm_create fmp $S $L 64 || die "cannot create flushmirror"
wait_phase fmp synced 60 || die "not synced: $ST_RAW"
# writers must hit fresh null_blk pages (see lib.sh): discard their areas
fresh $M 0 $((4 * AREA * 4096)) || die "discard through the target failed"
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
RANDOM=$SEED

blk() { printf '%-4095s\n' "$1"; }

# writer K J: blocks J*AREA + i, fsync with probability 1/3 after a write
writer() {
	local k=$1 j=$2 i=0
	RANDOM=$((SEED * 100 + k * 10 + j))
	while [ $i -lt $AREA ]; do
		blk "cut $k job $j seq $i" | dd of=$M bs=4k seek=$((j * AREA + i)) \
			iflag=fullblock oflag=direct conv=notrunc status=none || break
		i=$((i + 1))
		if [ $((RANDOM % 3)) = 0 ]; then
			dd if=/dev/null of=$M conv=fsync,notrunc status=none || break
			echo $i >$E2E_TMP/cov.$j.tmp && mv $E2E_TMP/cov.$j.tmp $E2E_TMP/cov.$j
		fi
	done
}

# cut K POLICY JOBS: prints nothing; sets CUT_COVERED, CUT_LOST, CUT_ERR
cut() {
	local k=$1 policy=$2 jobs=$3 j pids=() cov i lost=0 covered=0 ms
	CUT_ERR=
	timeout 10 dmsetup message fmp 0 flush_policy $policy
	rm -f $E2E_TMP/cov.*
	for ((j = 0; j < jobs; j++)); do
		echo 0 >$E2E_TMP/cov.$j
		writer $k $j &
		pids+=($!)
	done
	ms=$((300 + RANDOM % 1700))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	# covered counts first, then the cut: a fsync completing in between
	# only adds coverage that is not counted
	for ((j = 0; j < jobs; j++)); do
		COV[j]=$(cat $E2E_TMP/cov.$j)
	done
	nb_power fmp_dst 0
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	nb_power fmp_dst 1 && wait_bdev $D 10 || { CUT_ERR="power on failed"; return; }
	for ((j = 0; j < jobs; j++)); do
		cov=${COV[j]}
		covered=$((covered + cov))
		[ "$cov" -gt 0 ] || continue
		dd if=$D of=$E2E_TMP/area bs=4k skip=$((j * AREA)) count=$cov \
			iflag=direct status=none
		for ((i = 0; i < cov; i++)); do blk "cut $k job $j seq $i"; done >$E2E_TMP/want
		cmp -s $E2E_TMP/area $E2E_TMP/want && continue
		for ((i = 0; i < cov; i++)); do
			cmp -s <(dd if=$E2E_TMP/area bs=4k skip=$i count=1 status=none) \
				<(blk "cut $k job $j seq $i") || lost=$((lost + 1))
		done
	done
	CUT_COVERED=$covered CUT_LOST=$lost
	# start the next cut from a fresh copy (healing by retry after a lost
	# cache is t24's business)
	fm_status fmp
	info "cut $k ($policy, $jobs jobs, after ${ms} ms): covered $covered, lost $lost; $ST_RAW"
	timeout 60 dmsetup remove fmp || { CUT_ERR="cannot remove fmp"; return; }
	relink || { CUT_ERR="relink failed"; return; }
	fm_create fmp $S $L 64 || { CUT_ERR="cannot recreate fmp"; return; }
	wait_phase fmp synced 60 || { CUT_ERR="not synced again: $ST_RAW"; return; }
	fresh $M 0 $((4 * AREA * 4096)) || CUT_ERR="discard failed"
}

total_cov=0 total_lost=0 cuts_done=0 errs=
configs=("generation 1" "generation 4" "always 1" "always 4")
for ((k = 1; k <= CUTS; k++)); do
	set -- ${configs[$(((k - 1) % 4))]}
	cut $k "$1" "$2"
	if [ -n "$CUT_ERR" ]; then
		errs+="cut $k: $CUT_ERR; "
		break
	fi
	cuts_done=$((cuts_done + 1))
	total_cov=$((total_cov + CUT_COVERED))
	total_lost=$((total_lost + CUT_LOST))
done
info "power cuts: $cuts_done tried, writes covered $total_cov, writes lost $total_lost"
[ -z "$errs" ] && pass powercut-runs || fail powercut-runs "$errs"
expect powercut-covered-writes "$total_cov" -gt 0
expect powercut-lost-writes "$total_lost" -eq 0
check_inv powercut-invariants fmp

# ---- the test bites
if [ -w $PARAM ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	echo 1 >$PARAM
	bite_cov=0 bite_lost=0 errs=
	for k in 101 102 103; do
		cut $k generation 2
		[ -n "$CUT_ERR" ] && { errs+="cut $k: $CUT_ERR; "; break; }
		bite_cov=$((bite_cov + CUT_COVERED)) bite_lost=$((bite_lost + CUT_LOST))
	done
	echo 0 >$PARAM
	info "with debug_skip_dest_flush=1: covered $bite_cov, lost $bite_lost"
	if [ -n "$errs" ]; then
		fail test-bites "$errs"
	elif [ "$bite_lost" -gt 0 ]; then
		pass test-bites
	else
		fail test-bites "no write lost with destination flushes skipped (covered $bite_cov)"
	fi
else
	skip test-bites "no $PARAM"
fi
