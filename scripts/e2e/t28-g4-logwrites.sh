#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t28-g4-logwrites: G4 a second way, through dm-log-writes under the
# destination (source null_blk; destination a log-writes device over a
# null_blk data device with a write-back cache and a null_blk log device).
# On the synced device writers put blocks with unique contents ("lw cfg C
# job J seq I") in order, fsync now and then, and after each fsync that
# returned write a commit record "commit cfg C job J covered N" (O_DIRECT,
# no fsync).  dm-log-writes logs a write only when a flush covers it, in
# completion order, so replaying the log to every flush entry gives the
# destination as a power cut right after that flush would leave it.
# logwrites-check.py does that replay and, at each commit record in the
# log, requires every covered block in that image with its exact contents.
# Policies generation and always, 1 and 4 concurrent writers.  With
# debug_skip_dest_flush=1 the destination sees no flush and the covered
# writes are lost (the test bites).
# The model trusts the log's order: dm-log-writes takes the writes a flush
# covers when it maps the flush and logs them when it completes, so a flush
# completing before an earlier mapped one would make that one's writes look
# late.  null_blk completes inline (irqmode 0); with one CPU (UML) flushes
# complete in issue order.  With several CPUs (QEMU) only one writer runs:
# then one guest flush, so one destination flush, is in flight at a time.
# T28_SEED (default 28) and T28_AREA (blocks per writer, default 512)
# change the run.
# shellcheck source=/dev/null
. "$(dirname "$0")/lib.sh"
e2e_setup

SEED=${T28_SEED:-28}
AREA=${T28_AREA:-512}		# 4 KiB blocks per writer
JOBS_MAX=4
CBLK=$((JOBS_MAX * AREA))	# commit record of job J: block CBLK + J
MIB=$(((CBLK + JOBS_MAX) * 4096 / 1048576 + 2))
LOG_MIB=$((MIB * 6))
PY=/usr/bin/python3
CHECK=$(dirname "$0")/logwrites-check.py
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
[ -x "$PY" ] || { skip "$E2E_TEST" "no $PY"; exit 0; }
[ -r "$CHECK" ] || die "no $CHECK"
dmsetup targets | grep -q '^log-writes ' ||
	{ skip "$E2E_TEST" "no log-writes target"; exit 0; }

nb_create lw_src $MIB || die "cannot create lw_src"
# the data device needs a volatile write cache: without one the block
# layer drops flushes before they reach dm-log-writes (no flush entries)
nb_create lw_data $MIB $((MIB * 2)) || die "cannot create lw_data"
nb_create lw_log $LOG_MIB || die "cannot create lw_log"
S=/dev/lw_src L=/dev/mapper/lwd M=/dev/mapper/lwfm
RANDOM=$SEED

# writer CFG J AREA CBLK SEED PROB OUT: blocks J*AREA + i in order, O_DIRECT;
# after a write, with probability PROB, fsync, and once it returned write
# the commit record.  OUT gets "<commit records written> <last covered>".
cat >"$E2E_TMP/writer.py" <<'PYEOF'
import mmap, os, random, sys
dev, c, j, area, cblk, seed, prob, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
rnd = random.Random(seed)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
def put(text, blk):
    buf.seek(0)
    buf.write(text.ljust(4095).encode() + b"\n")
    if os.pwrite(fd, buf, blk * 4096) != 4096:
        sys.exit("short write")
commits = last = 0
for i in range(area):
    put("lw cfg %d job %d seq %d" % (c, j, i), j * area + i)
    if rnd.random() < prob:
        os.fsync(fd)
        put("commit cfg %d job %d covered %d" % (c, j, i + 1), cblk + j)
        commits, last = commits + 1, i + 1
os.close(fd)
with open(out, "w") as f:
    f.write("%d %d\n" % (commits, last))
PYEOF

# run_cfg C POLICY JOBS BITE: one log-writes run; sets CFG_ERR (the run or
# its log unusable), CFG_OUT (the checker's line) and CFG_* counts.
run_cfg() {
	local c=$1 policy=$2 jobs=$3 bite=$4 j pids=() ncommit=() prob out
	local wc t0 t1 t2 kv note=
	local -A r=()
	CFG_ERR='' CFG_OUT='' CFG_FLUSHES=0 CFG_COVERED=0 CFG_LOST=0
	t0=$(date +%s.%N)
	# a zeroed log device, so that nothing of an earlier run can pass
	blkdiscard /dev/lw_log || { CFG_ERR="cannot discard the log"; return; }
	dm_create lwd "0 $(dev_sectors /dev/lw_data) log-writes /dev/lw_data /dev/lw_log" ||
		{ CFG_ERR="cannot create log-writes"; return; }
	wc=$(cat "$(dev_sysdir "$L")/queue/write_cache")
	[ "$wc" = "write back" ] ||
		{ CFG_ERR="log-writes device has write_cache '$wc': flushes would not reach it"; return; }
	timeout 10 dmsetup message lwd 0 mark "t28_cfg_$c" ||
		{ CFG_ERR="cannot mark the log"; return; }
	fm_create lwfm $S $L 1024 flush_policy "$policy" ||
		{ CFG_ERR="cannot create flushmirror"; return; }
	wait_phase lwfm synced 60 || { CFG_ERR="not synced: $ST_RAW"; return; }
	# a discard through the target: the work area starts from nothing
	fresh $M 0 $(((CBLK + JOBS_MAX) * 4096)) ||
		{ CFG_ERR="discard through the target failed"; return; }
	if [ "$bite" = 1 ]; then
		echo 1 >"$PARAM" || { CFG_ERR="cannot set $PARAM"; return; }
		note=", destination flushes skipped"
	fi
	prob=0.$((15 + RANDOM % 30))
	t1=$(date +%s.%N)
	for ((j = 0; j < jobs; j++)); do
		rm -f "$E2E_TMP/w.$j"
		"$PY" "$E2E_TMP/writer.py" "$M" "$c" "$j" "$AREA" "$CBLK" \
			$((SEED * 100 + c * 10 + j)) "$prob" "$E2E_TMP/w.$j" &
		pids+=($!)
	done
	wait "${pids[@]}"
	if [ "$bite" = 1 ]; then
		echo 0 >"$PARAM"
	fi
	for ((j = 0; j < jobs; j++)); do
		[ -s "$E2E_TMP/w.$j" ] || { CFG_ERR="writer $j failed"; return; }
		read -r out _ <"$E2E_TMP/w.$j"
		ncommit+=("$out")
	done
	t2=$(date +%s.%N)
	fm_inv_ok lwfm || { CFG_ERR="invariants: $INV_ERR"; return; }
	info "cfg $c: $ST_RAW"
	dm_remove lwfm || { CFG_ERR="cannot remove flushmirror"; return; }
	out=$(dmsetup status lwd)
	info "cfg $c log-writes: $out"
	case $out in *logging_disabled*) CFG_ERR="log-writes stopped logging: $out"; return ;; esac
	# removal logs the writes no flush covered and the end mark
	dm_remove lwd || { CFG_ERR="cannot remove log-writes"; return; }
	if ! CFG_OUT=$("$PY" "$CHECK" /dev/lw_log "$c" "$AREA" "$CBLK" "t28_cfg_$c" \
		"${ncommit[@]}" 2>"$E2E_TMP/check.err"); then
		CFG_ERR="checker: $(head -c 300 "$E2E_TMP/check.err")"
		return
	fi
	head -n 5 "$E2E_TMP/check.err" | sed 's/^/# /'
	info "cfg $c ($policy, $jobs jobs, fsync p=$prob$note): $CFG_OUT"
	info "cfg $c timing: setup $(echo "$t1 - $t0" | bc)s, writers $(echo "$t2 - $t1" | bc)s, check $(echo "$(date +%s.%N) - $t2" | bc)s"
	for kv in $CFG_OUT; do
		r[${kv%%=*}]=${kv#*=}
	done
	CFG_FLUSHES=${r[flushes]:-0} CFG_COVERED=${r[covered]:-0} CFG_LOST=${r[lost]:-0}
	# the log is whole: every block written and every commit record in it
	[ "${r[written]:-0}" -eq $((jobs * AREA)) ] ||
		CFG_ERR="only ${r[written]:-0} of $((jobs * AREA)) written blocks in the log"
	[ "${r[commits]:-0}" -eq "${r[commits_expected]:--1}" ] ||
		CFG_ERR+="${CFG_ERR:+; }${r[commits]:-0} commit records in the log, ${r[commits_expected]:-?} written"
}

cuts=0 covered=0 lost=0 errs=
configs=("generation 1" "generation 4" "always 1" "always 4")
if [ "$(nproc)" -gt 1 ]; then
	info "$(nproc) CPUs: one writer only (see the header)"
	configs=("generation 1" "always 1")
fi
for ((c = 1; c <= ${#configs[@]}; c++)); do
	read -r policy jobs <<<"${configs[c - 1]}"
	run_cfg "$c" "$policy" "$jobs" 0
	if [ -n "$CFG_ERR" ]; then
		errs+="cfg $c ($policy, $jobs jobs): $CFG_ERR; "
		dm_remove lwfm; dm_remove lwd
		continue
	fi
	[ "$CFG_FLUSHES" -gt 0 ] || errs+="cfg $c ($policy, $jobs jobs): no flush entry in the log; "
	cuts=$((cuts + CFG_FLUSHES))
	covered=$((covered + CFG_COVERED))
	lost=$((lost + CFG_LOST))
done
info "log-writes: $cuts flush entries replayed, writes covered $covered, writes lost $lost"
if [ -z "$errs" ]; then
	pass logwrites-runs
else
	fail logwrites-runs "$errs"
fi
expect logwrites-covered-writes "$covered" -gt 0
expect logwrites-lost-writes "$lost" -eq 0

# ---- the test bites
if [ -w "$PARAM" ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	run_cfg 9 generation 4 1
	echo 0 >"$PARAM"
	if [ -n "$CFG_ERR" ]; then
		fail test-bites "$CFG_ERR"
	elif [ "$CFG_LOST" -gt 0 ]; then
		info "with debug_skip_dest_flush=1: covered $CFG_COVERED, lost $CFG_LOST"
		pass test-bites
	else
		fail test-bites "no write lost with destination flushes skipped (covered $CFG_COVERED)"
	fi
else
	skip test-bites "no $PARAM"
fi
echo "STAT: replay_points=$cuts covered=$covered lost=$lost"
