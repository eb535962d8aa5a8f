#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: dm-flushmirror against dm-linear (the ceiling) and dm-mirror,
# side by side in User-Mode Linux (shared/SPEC.md section 6, B1 to B4; B5
# a remote destination over NBD, issue 11; B6 PostgreSQL, issue 13).
#
# Usage: scripts/bench/run.sh [--smoke] [--runs N] [--phases B1,...,B6]
#                             [--delays 0,5,20] [--jobs 1,8] [--runtime S]
#                             [--no-build] [--publish]
#   --smoke     every peer and phase, briefly (small devices, 1 run, 2 s
#               fio): keeps the script working in CI, figures meaningless
#   --phases    any of B1 B2 B3 B4 B5 B6, comma-separated; the records of
#               the other phases from an earlier run are kept and reported
#   --publish   also copy the plots to Documentation/bench/ and the table
#               to Documentation/bench/table.txt
#
# Steps: apt-get installs what is missing; scripts/bench/build.sh builds the
# non-debug UML kernel .build/uml-bench/linux; one UML boot per phase runs
# scripts/bench/guest.sh (results through a hostfs mount into
# .build/bench/raw/<phase>/); scripts/bench/report.py writes
# .build/bench/results.json, .build/bench/table.txt and the gnuplot PNGs in
# .build/bench/plots/, and prints the table.
#
# Benchmarks print figures, they never fail on timing: the exit status is
# non-zero only when the bench itself broke (build, boot, guest script,
# missing records).
#
# Environment: FMB_LINUX (another UML kernel, e.g. to compare two builds;
# implies --no-build), FMB_BENCH_DIR (output directory), FMB_* variables are passed to the guest (see guest.sh, e.g.
# FMB_SIZE_MB, FMB_B2_RATE, FMB_B4_SIZE_MB, FMB_B4_DELAY), FMB_MEM (UML
# mem=, default from the device sizes), FM_SKIP_APT=1.
set -euo pipefail

. "$(dirname "$0")/../uml/common.sh"

BENCH=${FMB_BENCH_DIR:-$FM_BUILD/bench}
LINUX=${FMB_LINUX:-$FM_BUILD/uml-bench/linux}
smoke= build=1 publish=
phases=B1,B2,B3,B4,B5,B6
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1 ;;
	--runs) export FMB_RUNS=$2; shift ;;
	--phases) phases=$2; shift ;;
	--delays) export FMB_DELAYS=$2; shift ;;
	--jobs) export FMB_JOBS=$2; shift ;;
	--runtime) export FMB_RUNTIME=$2; shift ;;
	--no-build) build= ;;
	--publish) publish=1 ;;
	*) sed -n '4,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
	shift
done

if [ -n "$smoke" ]; then
	: "${FMB_RUNS:=1}" "${FMB_RUNTIME:=2}" "${FMB_DELAYS:=5}"
	: "${FMB_SIZE_MB:=64}" "${FMB_CACHE_MB:=16}" "${FMB_B2_RATE:=4096}"
	: "${FMB_B4_SIZE_MB:=32}" "${FMB_B4_PRE:=1}" "${FMB_B4_POST:=1}"
	: "${FMB_B4_LINEAR_S:=2}" "${FMB_B3_JOBS:=1,16}"
	: "${FMB_B5_RTTS:=2}" "${FMB_B5_SIZE_MB:=32}" "${FMB_B5_CACHE_MB:=16}"
	: "${FMB_B5_RATE:=4096}" "${FMB_B5_COPY_JOBS:=8}" "${FMB_B5_DD_BS:=1M}"
	: "${FMB_B5_JOBS:=4}" "${FMB_B5_PRE:=1}" "${FMB_B5_POST:=1}"
	export FMB_RUNS FMB_RUNTIME FMB_DELAYS FMB_SIZE_MB FMB_CACHE_MB \
		FMB_B2_RATE FMB_B4_SIZE_MB FMB_B4_PRE FMB_B4_POST FMB_B4_LINEAR_S \
		FMB_B3_JOBS FMB_B5_RTTS FMB_B5_SIZE_MB FMB_B5_CACHE_MB FMB_B5_RATE \
		FMB_B5_COPY_JOBS FMB_B5_DD_BS FMB_B5_JOBS FMB_B5_PRE FMB_B5_POST
	BENCH=${FMB_BENCH_DIR:-$FM_BUILD/bench-smoke}
fi

# 1. packages: the UML build and guest tools, jq, gnuplot for the plots
if [ -z "${FM_SKIP_APT:-}" ]; then
	apt_ensure "${FM_UML_PKGS[@]}" jq gnuplot-nox
fi

log "$(fm_host_line)"

# 2. the non-debug kernel
[ -z "${FMB_LINUX:-}" ] || build=
if [ -n "$build" ]; then
	"$FM_REPO/scripts/bench/build.sh" || die "bench kernel build failed"
fi
[ -x "$LINUX" ] || die "$LINUX missing (run without --no-build)"

# 3. one boot per phase
size=${FMB_SIZE_MB:-1024}
cache=${FMB_CACHE_MB:-128}
# B5 boots with devices of its own (guest.sh: b5src, b5dst), the others
# with bsrc and bdst
b5size=${FMB_B5_SIZE_MB:-256}
b5cache=${FMB_B5_CACHE_MB:-64}
phase_mem() {
	if [ -n "${FMB_MEM:-}" ]; then echo "$FMB_MEM"
	elif [ "$1" = B5 ]; then echo "$((2 * b5size + 2 * b5cache + 768))M"
	else echo "$((2 * size + 2 * cache + 768))M"
	fi
}
# UML keeps its memory in a file under $TMPDIR: tmpfs when it has room
if [ -z "${TMPDIR:-}" ]; then
	TMPDIR=/tmp
	avail=$(df -Pm /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
	[ "${avail:-0}" -gt $((2 * size + 2 * cache + 1024)) ] && TMPDIR=/dev/shm
fi
export TMPDIR

# only the phases run now are replaced: "--phases B4" keeps B1-B3's records
for ph in ${phases//,/ }; do
	rm -rf "${BENCH:?}/raw/$ph"
done
mkdir -p "$BENCH/raw"
fmb_args=()
for v in $(compgen -v FMB_); do
	case $v in FMB_MEM|FMB_LINUX|FMB_BENCH_DIR) continue ;; esac
	fmb_args+=("$v=${!v}")
done

broke=0
start_all=$(date +%s)
for ph in ${phases//,/ }; do
	res=$BENCH/raw/$ph
	mkdir -p "$res"
	case $ph in
	B3|B4) tmo=${FMB_BOOT_TIMEOUT:-2400} ;;
	*) tmo=${FMB_BOOT_TIMEOUT:-3000} ;;
	esac
	mem=$(phase_mem "$ph")
	cmdline=(
		mem="$mem"
		rootfstype=hostfs rootflags=/ ro
		init="$FM_REPO/scripts/bench/init.sh"
		con=null con0=fd:0,fd:1
		kunit.enable=0 null_blk.nr_devices=0
		log_buf_len=4M
		FM_REPO="$FM_REPO" FM_RESULTS="$res"
		FMB_PHASE="$ph" FMB_GUEST_TIMEOUT="$((tmo - 60))"
		"${fmb_args[@]}"
	)
	# the host is shared: keep what else ran, for reading the spread
	{ echo "kernel $LINUX $(stat -c %y "$LINUX")"
	  echo "module source now (repo commit, tree overlay sha1; the kernel may be older, see its date): $(git -C "$FM_REPO" log -1 --format=%h -- dm-flushmirror-target.c dm-flushmirror.h 2>/dev/null) $(sha1sum "$FM_TREE/drivers/md/flushmirror/dm-flushmirror-target.c" 2>/dev/null | cut -c1-12)"
	  echo "start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
	  ps -eo pcpu,etime,comm --sort=-pcpu | head -n 6; } >"$res/host.txt"
	log "bench $ph: booting $LINUX (mem=$mem, timeout ${tmo}s, results $res)"
	t0=$(date +%s)
	rc=0
	setsid timeout -k 20 "$tmo" "$LINUX" "${cmdline[@]}" \
		</dev/null >"$res/console.log" 2>&1 &
	pid=$!
	wait "$pid" || rc=$?
	kill -KILL -- "-$pid" 2>/dev/null || true
	echo "end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$res/host.txt"
	log "bench $ph: UML exited with $rc after $(($(date +%s) - t0)) s"
	grc=$(cat "$res/guest.rc" 2>/dev/null || echo none)
	if [ "$grc" != 0 ] || [ ! -s "$res/records.jsonl" ]; then
		log "bench $ph: guest rc=$grc, $(wc -l <"$res/records.jsonl" 2>/dev/null || echo 0) records; last lines of $res/guest.log:"
		tail -n 15 "$res/guest.log" 2>/dev/null | sed 's/^/    /' >&2 || true
		broke=1
	fi
	if grep -aE 'HANG\?|BUG:|WARNING:|Oops|blocked for more than' \
			"$res/guest.log" "$res/dmesg.log" 2>/dev/null | head -n 10 >&2; then
		log "bench $ph: kernel/target reports above (see $res/)"
	fi
done
log "bench: all phases took $(($(date +%s) - start_all)) s"

# 4. report
cat "$BENCH"/raw/*/records.jsonl >"$BENCH/records.jsonl" 2>/dev/null || true
python3 "$FM_REPO/scripts/bench/report.py" "$BENCH" ${smoke:+--smoke} || broke=1
if [ -n "$publish" ] && [ -z "$smoke" ]; then
	mkdir -p "$FM_REPO/Documentation/bench"
	cp "$BENCH"/plots/*.png "$FM_REPO/Documentation/bench/"
	cp "$BENCH/table.txt" "$FM_REPO/Documentation/bench/table.txt"
	log "published plots and table to Documentation/bench/"
fi
exit $broke
