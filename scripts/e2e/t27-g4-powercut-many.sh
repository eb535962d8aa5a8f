#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 600
# t27-g4-powercut-many: G4 at many cut points (issue 3).  Writers put
# blocks with unique contents ("cut K job J seq I") on the synced device
# and fsync now and then, recording after each completed fsync how far they
# are covered.  At a random (seeded) moment the covered counts are taken
# and the destination (null_blk, volatile cache) loses its power while I/O
# is in flight; then every covered block must be on the destination.
# Policies generation and always, 1 and 4 concurrent writers.  The device
# is then copied afresh for the next cut.  Then T27_COPYING_CUTS (default 4)
# cuts while still copying take the power of both legs (the source has a
# volatile cache too): every covered block must be on the source.  With debug_skip_dest_flush=1 a
# few cuts must report lost writes (the test bites).
# T27_CUTS (default 20) and T27_SEED (default 27) change the run.
. "$(dirname "$0")/lib.sh"
e2e_setup

CUTS=${T27_CUTS:-20}
SEED=${T27_SEED:-27}
MIB=24
N=$((MIB * 2048))
AREA=1024			# 4 KiB blocks per writer (4 MiB)
# the source has a volatile cache too: the copying cuts power both legs
nb_create fmp_src $MIB $((MIB * 2)) || die "cannot create fmp_src"
nb_create fmp_dst $MIB $((MIB * 2)) || die "cannot create fmp_dst"
S=/dev/fmp_src D=/dev/fmp_dst M=/dev/mapper/fmp
fm_create fmp $S $D 1024 || die "cannot create flushmirror"
wait_phase fmp synced 60 || die "not synced: $ST_RAW"
# writers must hit fresh null_blk pages (see lib.sh): discard their areas
fresh $M 0 $((4 * AREA * 4096)) || die "discard through the target failed"
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
RANDOM=$SEED

blk() { printf '%-4095s\n' "$1"; }

# writer K J: blocks J*AREA + i in order, O_DIRECT; after a write, with
# probability 1/3, fsync and record how many blocks that fsync covers.
# Python (the host's, through hostfs): a dd per block is too slow in UML.
PY=/usr/bin/python3
WRITER=$(dirname "$0")/powercut-writer.py
CHECK=$(dirname "$0")/powercut-check.py
# powercut-check.py DEV K AREA COV0 COV1...: blocks lost among the covered ones
writer() {
	if [ -x $PY ]; then
		exec $PY $WRITER $M $1 $2 $AREA $((SEED * 100 + $1 * 10 + $2)) $E2E_TMP
	fi
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

# The steps both kinds of cut share.  Each sets CUT_ERR on failure.
# run_writers K JOBS: start JOBS writers for cut K (pids in WPIDS), let
# them run a random (seeded) 200-1500 ms (in CUT_MS), then read the covered
# counts (COV[j], their sum in CUT_COVERED).  Covered counts first, then
# the cut: a fsync completing in between only adds coverage not counted.
run_writers() {
	pc_start_writers "$1" "$2"
	CUT_MS=$((200 + RANDOM % 1300))
	sleep "$((CUT_MS / 1000)).$(printf %03d $((CUT_MS % 1000)))"
	pc_read_cov "$2"
}
# check_lost DEV K JOBS: covered blocks of cut K missing on DEV, in
# CUT_LOST (one python for every writer: its start-up is slow in UML);
# returns 1 when the check itself failed
check_lost() {
	CUT_LOST=$($PY $CHECK $1 $2 $AREA "${COV[@]:0:$3}") ||
		{ CUT_ERR+="check failed: $CUT_LOST"; return 1; }
}
# heal SECONDS: a fresh synced copy with the writers' areas discarded, for
# the next cut (fmp removed first: with it goes the dead disk, whose dev_t
# the new one has, and dm would reuse it)
heal() {
	fm_create fmp $S $D 1024 || { CUT_ERR+="cannot recreate fmp"; return; }
	wait_phase fmp synced "$1" || { CUT_ERR+="not synced again: $ST_RAW"; return; }
	fresh $M 0 $((4 * AREA * 4096)) || CUT_ERR+="discard failed"
}

# cut K POLICY JOBS: the destination loses its power on the synced device;
# every covered block must be on it.  Sets CUT_COVERED, CUT_LOST, CUT_ERR.
cut() {
	local k=$1 policy=$2 jobs=$3 t0 t1 t2 t3
	CUT_ERR=
	timeout 10 dmsetup message fmp 0 flush_policy $policy
	run_writers $k $jobs
	t0=$(date +%s.%N)
	nb_power fmp_dst 0
	pc_stop_writers
	t1=$(date +%s.%N)
	nb_power fmp_dst 1 && wait_bdev $D 10 || { CUT_ERR="power on failed"; return; }
	check_lost $D $k $jobs || return
	t2=$(date +%s.%N)
	# start the next cut from a fresh copy (healing by retry after a lost
	# cache is t24's business)
	fm_status fmp
	info "cut $k ($policy, $jobs jobs, after ${CUT_MS} ms): covered $CUT_COVERED, lost $CUT_LOST; $ST_RAW"
	timeout 60 dmsetup remove fmp || { CUT_ERR="cannot remove fmp"; return; }
	heal 60
	t3=$(date +%s.%N)
	info "cut $k timing: cut+kill $(echo "$t1 - $t0" | bc)s, check $(echo "$t2 - $t1" | bc)s, heal $(echo "$t3 - $t2" | bc)s"
}

# cut_copying K POLICY JOBS: the same writers while the device is still
# copying (1 MiB/s), then both legs lose power at once, as with a host
# power failure: every covered block must be on the source (before synced
# the destination is promised nothing).  Sets CUT_COVERED, CUT_LOST,
# CUT_ERR; leaves the device synced again.
cut_copying() {
	local k=$1 policy=$2 jobs=$3
	CUT_ERR=
	timeout 60 dmsetup remove fmp || { CUT_ERR="cannot remove fmp"; return; }
	fm_create fmp $S $D 1024 flush_policy $policy copy_rate 1024 ||
		{ CUT_ERR="cannot create fmp copying"; return; }
	fresh $M 0 $((4 * AREA * 4096)) || { CUT_ERR="discard failed"; return; }
	run_writers $k $jobs
	fm_status fmp
	[ "$ST_PHASE" = copying ] || CUT_ERR="not copying at the cut: $ST_RAW"
	nb_power fmp_dst 0
	nb_power fmp_src 0
	pc_stop_writers
	info "copying cut $k ($policy, $jobs jobs, after ${CUT_MS} ms): $ST_RAW"
	timeout 60 dmsetup remove fmp || CUT_ERR+="cannot remove fmp; "
	nb_power fmp_src 1 && wait_bdev $S 10 && nb_power fmp_dst 1 &&
		wait_bdev $D 10 || { CUT_ERR+="power on failed"; return; }
	check_lost $S $k $jobs || return
	info "copying cut $k: covered $CUT_COVERED, lost on the source $CUT_LOST"
	heal 90
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

# ---- while copying: the source keeps what the guest flushed
c_cov=0 c_lost=0 c_done=0 errs=
for ((k = 51; k < 51 + ${T27_COPYING_CUTS:-4}; k++)); do
	set -- ${configs[$(((k - 51) % 4))]}
	cut_copying $k "$1" "$2"
	if [ -n "$CUT_ERR" ]; then
		errs+="cut $k: $CUT_ERR; "
		break
	fi
	c_done=$((c_done + 1))
	c_cov=$((c_cov + CUT_COVERED)) c_lost=$((c_lost + CUT_LOST))
done
info "power cuts while copying: $c_done tried, writes covered $c_cov, lost on the source $c_lost"
[ -z "$errs" ] && pass copying-powercut-runs || fail copying-powercut-runs "$errs"
expect copying-powercut-covered-writes "$c_cov" -gt 0
expect copying-powercut-source-lost-writes "$c_lost" -eq 0
echo "STAT: cuts=$((cuts_done + c_done)) covered=$((total_cov + c_cov)) lost=$((total_lost + c_lost))"

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
