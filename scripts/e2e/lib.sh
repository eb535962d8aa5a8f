# SPDX-License-Identifier: GPL-2.0
# scripts/e2e/lib.sh - helpers for the dm-flushmirror end-to-end tests.
#
# Sourced by scripts/e2e/tNN-*.sh, which run inside the UML guest as
#   timeout 300 bash scripts/e2e/tNN-name.sh
# Every check prints exactly one line: "PASS: name", "FAIL: name: reason" or
# "SKIP: name: reason".  Other output is diagnosis only.

set -u
export DM_DISABLE_UDEV=1
export LC_ALL=C

E2E_TEST=$(basename "${0%.sh}")
E2E_FAILS=0
E2E_PASSES=0
E2E_TMP=$(mktemp -d /tmp/e2e.XXXXXX)
NB_CFG=/sys/kernel/config/nullb
FM_DMS=()	# dm devices to remove at exit (removed in reverse order)
FM_NBS=()	# null_blk configfs dirs to remove at exit
FM_PIDS=()	# background jobs to kill at exit
FM_ATEXIT=()	# commands (strings) run first at exit

# ---------------------------------------------------------------- output

pass() { echo "PASS: $1"; E2E_PASSES=$((E2E_PASSES + 1)); }
fail() { echo "FAIL: $1: $2"; E2E_FAILS=$((E2E_FAILS + 1)); }
skip() { echo "SKIP: $1: $2"; }
info() { echo "# $*"; }

# check NAME CMD [ARGS...]: PASS if CMD succeeds, FAIL with its output if not.
check() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		pass "$name"
	else
		fail "$name" "'$*' exited $rc: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
	fi
	return $rc
}

# check_not NAME CMD...: PASS if CMD fails.
check_not() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ]; then
		pass "$name"
		return 0
	fi
	fail "$name" "'$*' unexpectedly succeeded: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
	return 1
}

# expect NAME "A OP B" (integer test, OP as in test(1): -eq -le -lt -gt ...)
expect() {
	local name=$1 a=$2 op=$3 b=$4 why=${5:-}
	if [ "$a" "$op" "$b" ] 2>/dev/null; then
		pass "$name"
		return 0
	fi
	fail "$name" "expected $a $op $b${why:+ ($why)}"
	return 1
}

die() { fail "$E2E_TEST" "$*"; exit 1; }

# ---------------------------------------------------------------- environment

e2e_setup() {
	mountpoint -q /sys/kernel/config 2>/dev/null ||
		mount -t configfs none /sys/kernel/config 2>/dev/null
	# devtmpfs has no /dev/fd: bash process substitution needs it
	[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
	[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
	E2E_DMESG_LINES=$(dmesg 2>/dev/null | wc -l)
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
	[ -d "$NB_CFG" ] || die "no null_blk configfs at $NB_CFG"
	dmsetup targets 2>/dev/null | grep -q '^flushmirror ' ||
		die "flushmirror target not registered (dmsetup targets: $(dmsetup targets 2>&1 | tr '\n' ' '))"
	command -v fio >/dev/null || die "fio not found"
	info "flushmirror $(dmsetup targets | awk '$1 == "flushmirror" {print $2}') on $(uname -r)"
}

# Kernel log lines that must never appear.
E2E_BAD_LOG='WARNING:|BUG:|KASAN|UBSAN|kmemleak|possible circular|possible recursive|inconsistent lock|blocked for more than|general protection|Oops|refcount_t|dm_put_device call missing'

# UML noise that is no report on our code (tty and virt-pci at boot/open)
E2E_LOG_NOISE='WARNING: .* at (drivers/tty/|arch/um/)'

e2e_dmesg_new() { dmesg 2>/dev/null | tail -n +$((E2E_DMESG_LINES + 1)); }

e2e_cleanup() {
	local i rc=$?
	trap - EXIT
	for i in "${FM_ATEXIT[@]}"; do
		eval "$i"
	done
	# I/O stuck on a suspended device of ours would block the cleanup
	for i in "${FM_DMS[@]}"; do
		dmsetup info "$i" 2>/dev/null | grep -q SUSPENDED &&
			timeout 30 dmsetup resume "$i"
	done
	for i in "${FM_PIDS[@]}"; do
		kill "$i" 2>/dev/null
	done
	for i in "${FM_PIDS[@]}"; do
		wait "$i" 2>/dev/null
	done
	for ((i = ${#FM_DMS[@]} - 1; i >= 0; i--)); do
		dm_remove "${FM_DMS[i]}"
	done
	for ((i = ${#FM_NBS[@]} - 1; i >= 0; i--)); do
		nb_destroy "${FM_NBS[i]}"
	done
	if [ -n "${E2E_DMESG_LINES:-}" ]; then
		local bad
		# the reports, each with the file:line that follows it (an RCU
		# or lockdep splat names its site two lines below)
		bad=$(e2e_dmesg_new | grep -vE "$E2E_LOG_NOISE" |
			grep -E -A3 "$E2E_BAD_LOG" |
			grep -E "$E2E_BAD_LOG|[a-z0-9_/]+\.[ch]:[0-9]+" | head -n 6)
		if [ -n "$bad" ]; then
			fail "$E2E_TEST-kernel-log" "$(echo "$bad" | tr '\n' ' ')"
			e2e_dmesg_new | grep -E -B2 -A25 "$E2E_BAD_LOG" | head -n 80 | sed 's/^/# dmesg: /'
		else
			pass "$E2E_TEST-kernel-log"
		fi
	fi
	rm -rf "$E2E_TMP"
	info "$E2E_TEST: $E2E_PASSES passed, $E2E_FAILS failed"
	[ $E2E_FAILS -eq 0 ] && exit $rc
	exit 1
}

bg_start() {	# bg_start CMD...: run in background, pid in $BG_PID
	"$@" &
	BG_PID=$!
	FM_PIDS+=("$BG_PID")
}

# ---------------------------------------------------------------- block devices

# dev_sysdir DEV: /sys/dev/block/M:m of a block device node
# devno DEV: major:minor of a block device node
devno() {
	local t
	t=$(stat -L -c '%t %T' "$1" 2>/dev/null) || return 1
	set -- $t
	echo "$((0x$1)):$((0x$2))"
}
dev_sysdir() {
	local n
	n=$(devno "$1") || return 1
	echo "/sys/dev/block/$n"
}

# dev_stat DEV FIELD: field (1-based) of the block device's stat file.
# Field 16 = flush I/Os (Documentation/block/stat.rst, 6.12).
dev_stat() {
	local d
	d=$(dev_sysdir "$1") || { echo 0; return 1; }
	awk -v f="$2" '{ print $f + 0 }' "$d/stat"
}
flush_count() { dev_stat "$1" 16; }
write_count() { dev_stat "$1" 5; }

dev_sectors() { blockdev --getsz "$1"; }
# fsync_dev DEV: a flush of DEV and nothing else (an fsync of no new data)
fsync_dev() { dd if=/dev/null of="$1" conv=fsync,notrunc status=none; }
# wr DEV BLOCK: one 4 KiB direct write of random data at 4 KiB block BLOCK
wr() { dd if=/dev/urandom of="$1" bs=4k count=1 seek="$2" oflag=direct conv=notrunc status=none; }

wait_bdev() {	# wait_bdev PATH [seconds]
	local i n=$((${2:-10} * 10))
	for ((i = 0; i < n; i++)); do
		[ -b "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# nb_create NAME SIZE_MIB [CACHE_MIB]: memory-backed null_blk /dev/NAME,
# 512-byte blocks, discard on (NB_DISCARD=0: off); with CACHE_MIB a
# volatile write-back cache.
# null_blk 6.12 quirk: the cache only holds writes to pages that are not in
# its backing store yet; a write to a page that was flushed once goes
# straight to the store and survives any power cut.  A power-cut test must
# write to fresh pages: discard the area first (nb_fresh / blkdiscard).
# NB_IRQMODE (default 0: complete inline) and NB_COMPLETION_NSEC (with
# NB_IRQMODE=2, timer completion) make I/O asynchronous.
nb_create() {
	local name=$1 size=$2 cache=${3:-0} d=$NB_CFG/$1
	mkdir "$d" || return 1
	FM_NBS+=("$name")
	echo "$size" >"$d/size" &&
	echo 1 >"$d/memory_backed" &&
	echo 512 >"$d/blocksize" &&
	echo "${NB_IRQMODE:-0}" >"$d/irqmode" &&
	echo "${NB_DISCARD:-1}" >"$d/discard" &&
	{ [ -z "${NB_COMPLETION_NSEC:-}" ] ||
	  echo "$NB_COMPLETION_NSEC" >"$d/completion_nsec"; } &&
	{ [ "$cache" -eq 0 ] || echo "$cache" >"$d/cache_size"; } &&
	echo 1 >"$d/power" || return 1
	wait_bdev "/dev/$name" 10 || { echo "no /dev/$name" >&2; return 1; }
}

# fresh DEV OFFSET_BYTES LEN_BYTES: discard a range (through a dm device:
# both legs) so that null_blk's next writes there land in its cache
fresh() { blkdiscard -o "$2" -l "$3" "$1"; }

nb_power() { echo "$2" >"$NB_CFG/$1/power"; }

nb_destroy() {
	local d=$NB_CFG/$1
	[ -d "$d" ] || return 0
	echo 0 >"$d/power" 2>/dev/null
	rmdir "$d" 2>/dev/null || echo "# cannot rmdir $d" >&2
}

# nb_powercut NAME: drop the volatile cache (power 1 -> 0 -> 1).
nb_powercut() {
	nb_power "$1" 0 && nb_power "$1" 1 && wait_bdev "/dev/$1" 10
}

# ---------------------------------------------------------------- device mapper

# dm_create NAME TABLE: create and wait for /dev/mapper/NAME; registers
# the device for removal at exit.  Prints dmsetup's error on failure.
dm_create() {
	local name=$1 table=$2
	timeout 60 dmsetup create "$name" --table "$table" || return 1
	FM_DMS+=("$name")
	wait_bdev "/dev/mapper/$name" 5 ||
		{ dmsetup mknodes "$name"; wait_bdev "/dev/mapper/$name" 5; }
}

dm_exists() { dmsetup info "$1" >/dev/null 2>&1; }

dm_remove() {
	local name=$1 i
	dm_exists "$name" || return 0
	for i in 1 2 3 4 5; do
		timeout 60 dmsetup remove "$name" 2>/dev/null && break
		sleep 0.5
	done
	if dm_exists "$name"; then
		echo "# dmsetup remove $name failed, trying --force" >&2
		timeout 60 dmsetup remove --force "$name"
	fi
	! dm_exists "$name"
}

# dm_reload NAME TABLE: load + resume (atomic table switch)
dm_reload() {
	timeout 60 dmsetup load "$1" --table "$2" &&
	timeout 60 dmsetup resume "$1"
}

# suspended NAME: the dm device is suspended
suspended() { dmsetup info "$1" 2>/dev/null | grep -q SUSPENDED; }
# tfield NAME N: the Nth word of the device's live table
tfield() { local f=$2; set -- $(dmsetup table "$1"); eval echo "\${$f:-}"; }
# is_linear_on NAME DEV: the live table of NAME maps DEV alone, 1:1
is_linear_on() {
	local t
	t=$(dmsetup table "$1")
	set -- $t "$2"
	[ $# -eq 6 ] && [ "$1" = 0 ] && [ "$3" = linear ] &&
		[ "$4" = "$(devno "$6")" ] && [ "$5" = 0 ]
}
# run_fm CMD...: run a command (the admin command, say), its output in
# $OUT (also shown), its status in $RC
run_fm() {
	OUT=$(timeout 120 "$@" 2>&1)
	RC=$?
	echo "$OUT" | sed 's/^/# | /'
}

# expect_rc CHECK RC REGEX...: the last run_fm exited RC and its output
# matches every REGEX (extended, case-insensitive)
expect_rc() {
	local name=$1 want=$2 r miss=
	shift 2
	for r in "$@"; do
		echo "$OUT" | grep -qiE -- "$r" || miss+=" /$r/"
	done
	if [ "$RC" -eq "$want" ] && [ -z "$miss" ]; then
		pass "$name"
	else
		fail "$name" "exit $RC (want $want), missing$miss: $(echo "$OUT" | tail -n 3 | tr '\n' ' ' | cut -c1-300)"
	fi
}

# ---------------------------------------------------------------- power-cut writers
# The writers of powercut-writer.py (t27, t37, t44): the test defines
# writer K J, one writer of cut K, job J, that execs the writer (so that
# its pid is the writer's) and records its covered count in $E2E_TMP/cov.J.

# pc_start_writers K JOBS: JOBS writers for cut K, pids in WPIDS, each
# covered count starting at 0
pc_start_writers() {
	local k=$1 jobs=$2 j
	rm -f $E2E_TMP/cov.*
	WPIDS=()
	for ((j = 0; j < jobs; j++)); do
		echo 0 >$E2E_TMP/cov.$j
		writer $k $j &
		WPIDS+=($!)
	done
}

# pc_read_cov JOBS: the writers' covered counts in COV[j], their sum in
# CUT_COVERED.  Read the counts first, then cut: a fsync completing in
# between only adds coverage not counted.
pc_read_cov() {
	local j
	COV=()
	CUT_COVERED=0
	for ((j = 0; j < $1; j++)); do
		COV[j]=$(cat $E2E_TMP/cov.$j)
		CUT_COVERED=$((CUT_COVERED + COV[j]))
	done
}

# pc_stop_writers: kill the writers of WPIDS and wait for them
pc_stop_writers() {
	[ ${#WPIDS[@]} -gt 0 ] || return 0
	kill "${WPIDS[@]}" 2>/dev/null
	wait "${WPIDS[@]}" 2>/dev/null
	WPIDS=()
}

dm_events() { dmsetup info -c --noheadings -o events "$1" | tr -d ' '; }

# fm_table SRC DST REGION [FEATURE...]: flushmirror table over all of SRC
# (or $FM_LEN sectors).  Features are given as words, the count is added.
fm_table() {
	local src=$1 dst=$2 region=$3 len
	shift 3
	len=${FM_LEN:-$(dev_sectors "$src")}
	if [ $# -gt 0 ]; then
		echo "0 $len flushmirror $src $dst $region $# $*"
	else
		echo "0 $len flushmirror $src $dst $region"
	fi
}

# fm_create NAME SRC DST REGION [FEATURE...]
fm_create() {
	local name=$1
	shift
	dm_create "$name" "$(fm_table "$@")"
}

# fm_status NAME: parse "dmsetup status" into ST_* variables.
#   ST_PHASE ST_COPIED ST_TOTAL ST_SG ST_WM ST_FR ST_WF ST_GF ST_DF ST_DE
fm_status() {
	local s
	ST_RAW=$(timeout 30 dmsetup status "$1" 2>&1) || { ST_PHASE=none; return 1; }
	set -- $ST_RAW
	[ "${3:-}" = flushmirror ] && [ $# -ge 12 ] || { ST_PHASE=bad; return 1; }
	ST_PHASE=$4
	ST_COPIED=${5%/*}
	ST_TOTAL=${5#*/}
	ST_SG=$6 ST_WM=$7 ST_FR=$8 ST_WF=$9
	ST_GF=${10} ST_DF=${11} ST_DE=${12}
	for s in "$ST_COPIED" "$ST_TOTAL" "$ST_SG" "$ST_WM" "$ST_FR" "$ST_WF" \
		 "$ST_GF" "$ST_DF" "$ST_DE"; do
		case $s in ''|*[!0-9]*) ST_PHASE=bad; return 1 ;; esac
	done
	return 0
}

# fm_inv_ok NAME: sample status, return 0 if WF <= WM <= SG and FR <= SG
# and copied <= total; otherwise sets INV_ERR.
fm_inv_ok() {
	INV_ERR=
	fm_status "$1" || { INV_ERR="status unparsable: $ST_RAW"; return 1; }
	[ "$ST_WF" -le "$ST_WM" ] || INV_ERR+="WF>WM "
	[ "$ST_WM" -le "$ST_SG" ] || INV_ERR+="WM>SG "
	[ "$ST_FR" -le "$ST_SG" ] || INV_ERR+="FR>SG "
	[ "$ST_COPIED" -le "$ST_TOTAL" ] || INV_ERR+="copied>total "
	case $ST_PHASE in copying|paused|synced|failed) ;; *) INV_ERR+="phase=$ST_PHASE " ;; esac
	[ -z "$INV_ERR" ] && return 0
	INV_ERR+="($ST_RAW)"
	return 1
}

# check_inv CHECKNAME DEV: PASS/FAIL line for the invariants
check_inv() {
	if fm_inv_ok "$2"; then pass "$1"; else fail "$1" "$INV_ERR"; fi
}

# wait_phase NAME PHASE [TIMEOUT_S]: poll status until PHASE; every sample
# is invariant-checked (first violation kept in WAIT_INV_ERR).
wait_phase() {
	local name=$1 want=$2 t=${3:-60} end
	WAIT_INV_ERR=
	end=$((SECONDS + t))
	while :; do
		if ! fm_inv_ok "$name"; then
			[ -n "$WAIT_INV_ERR" ] || WAIT_INV_ERR=$INV_ERR
		fi
		[ "$ST_PHASE" = "$want" ] && return 0
		[ $SECONDS -ge $end ] && break
		sleep 0.2
	done
	echo "# wait_phase $name $want: timed out after ${t}s: $ST_RAW" >&2
	return 1
}

# check_phase CHECK NAME PHASE [TIMEOUT]
check_phase() {
	if wait_phase "$2" "$3" "${4:-60}"; then
		pass "$1"
	else
		fail "$1" "phase not $3 after ${4:-60}s: $ST_RAW"
	fi
}

# ---------------------------------------------------------------- fio

# fio_run OUTNAME FIO-ARGS...: fio with json output to $E2E_TMP/OUTNAME.json
# and stderr to $E2E_TMP/OUTNAME.err; returns fio's exit code.
fio_run() {
	local out=$1
	shift
	fio --output-format=json --output="$E2E_TMP/$out.json" "$@" \
		2>"$E2E_TMP/$out.err"
}

# fio_bg OUTNAME FIO-ARGS...: fio_run in the background; $BG_PID is fio's
# own pid (kill -TERM stops it cleanly and it still writes its json).
fio_bg() {
	local out=$1
	shift
	fio --output-format=json --output="$E2E_TMP/$out.json" "$@" \
		2>"$E2E_TMP/$out.err" &
	BG_PID=$!
	FM_PIDS+=("$BG_PID")
}

# fio_json OUTNAME: the json document (fio puts messages such as
# "fio: terminating on signal 15" in front of it)
fio_json() { sed -n '/^{/,$p' "$E2E_TMP/$1.json"; }

# fio_errors OUTNAME: sum of the jobs' error fields
fio_errors() {
	fio_json "$1" | jq '[.jobs[].error] | add' 2>/dev/null ||
		echo "parse-error($(head -c 200 "$E2E_TMP/$1.json" | tr '\n' ' '))"
}
fio_field() {	# fio_field OUTNAME JQ-EXPR-over-jobs  (summed)
	fio_json "$1" | jq "[.jobs[] | $2] | add" 2>/dev/null || echo 0
}
fio_stderr() { head -c 600 "$E2E_TMP/$1.err" | tr '\n' ' '; }

# check_fio CHECKNAME OUTNAME RC: PASS if fio exited 0 with no job error
check_fio() {
	local e
	e=$(fio_errors "$2")
	if [ "$3" -eq 0 ] && [ "$e" = 0 ]; then
		pass "$1"
	else
		fail "$1" "fio rc=$3 err=$e $(fio_stderr "$2")"
	fi
}

# Common fio options for raw block devices.
FIO_COMMON=(--ioengine=psync --direct=1 --bs=4k --group_reporting
	--randseed=1234 --allow_file_create=0 --verify_state_save=0)

# rd DEV: the device's contents with O_DIRECT reads (never the page cache:
# writes through a dm device leave the legs' own page caches stale).
rd() { dd if="$1" bs=1M iflag=direct status=none; }

# state_snapshot TAG FIELDS times|no-times DEV...: what a refused or
# dry-run admin command must leave as it is, into $E2E_TMP/snap.TAG: the
# dm devices (dmsetup info FIELDS, live and inactive tables), the bytes of
# each DEV (md5), and the admin command's journals ($FM_RUN_DIR and
# $FM_STATE_DIR: with "times" their files' modification times, with
# "no-times" neither those nor the journals' time= lines)
state_snapshot() {
	local tag=$1 fields=$2 times=$3 n
	shift 3
	{
		dmsetup ls | sort
		for n in $(dmsetup ls | awk '$1 != "No" { print $1 }' | sort); do
			echo "== $n: $(dmsetup info -c --noheadings -o "$fields" "$n")"
			dmsetup table "$n"
			dmsetup table --inactive "$n"
		done
		for n in "$@"; do
			echo "$n $(rd "$n" | md5sum)"
		done
		if [ "$times" = times ]; then
			ls -l --time-style=+%s.%N "$FM_RUN_DIR" "$FM_STATE_DIR" 2>&1
			cat "$FM_RUN_DIR"/* "$FM_STATE_DIR"/* 2>/dev/null
		else
			ls "$FM_RUN_DIR" "$FM_STATE_DIR" 2>&1
			cat "$FM_RUN_DIR"/* "$FM_STATE_DIR"/* 2>/dev/null | grep -v '^time='
		fi
	} >"$E2E_TMP/snap.$tag"
}

# same_snapshot CHECK A B: pass CHECK when snapshots A and B are equal
same_snapshot() {
	if cmp -s "$E2E_TMP/snap.$2" "$E2E_TMP/snap.$3"; then
		pass "$1"
	else
		fail "$1" "$(diff "$E2E_TMP/snap.$2" "$E2E_TMP/snap.$3" | head -n 6 | tr '\n' ' ')"
	fi
}

# same_at FILE DEV OFFSET: FILE equals DEV's bytes at OFFSET (O_DIRECT;
# FILE size and OFFSET multiples of 4 KiB).  Use it (not cmp with a process
# substitution) inside check: the substitution's fd does not reach check.
same_at() {
	local size
	size=$(stat -c %s "$1")
	dd if="$2" bs=4k skip=$(($3 / 4096)) count=$((size / 4096)) \
		iflag=direct status=none | cmp "$1" -
}

# dcmp A B [CMP-OPTIONS...]: cmp of two devices read with O_DIRECT
dcmp() {
	local a=$1 b=$2
	shift 2
	cmp "$@" <(rd "$a") <(rd "$b")
}

# ---------------------------------------------------------------- FUA

# dev_fua DEV: the device's queue/fua (1: it advertises FUA)
dev_fua() { cat "$(dev_sysdir "$1")/queue/fua" 2>/dev/null || echo none; }

# aio_write OUTNAME DEV OFFSET_BYTES SIZE_BYTES SEED [dsync]: SIZE bytes at
# OFFSET as 64 KiB O_DIRECT writes through libaio (one in flight), with
# fio verify headers (check them with verify_at).  With "dsync" the file
# is opened O_DSYNC: the block layer makes each write a REQ_FUA write and,
# as the I/O is asynchronous, sends nothing else.  A synchronous O_DSYNC
# write (dd oflag=dsync, pwritev2 RWF_DSYNC) is a FUA write followed by a
# flush of the whole device (generic_write_sync -> blkdev_fsync), which
# cannot tell a FUA device from one that only flushes.  Extra fio
# arguments may follow "dsync" (or "none").
aio_write() {
	local out=$1 dev=$2 off=$3 size=$4 seed=$5 sync=${6:-none}
	shift 5
	[ $# -gt 0 ] && shift
	[ "$sync" = dsync ] || sync=0
	fio_run "$out" --name=aio --filename="$dev" "${FIO_COMMON[@]}" \
		--ioengine=libaio --iodepth=1 --sync="$sync" --rw=write \
		--bs=64k --offset="$off" --size="$size" --verify=crc32c \
		--do_verify=0 --randseed="$seed" "$@"
}

# verify_at OUTNAME DEV OFFSET_BYTES SIZE_BYTES SEED: 0 if DEV holds, at
# OFFSET, what aio_write wrote with the same OFFSET SIZE SEED (O_DIRECT)
verify_at() {
	fio_run "$1" --name=aio --filename="$2" "${FIO_COMMON[@]}" \
		--rw=write --bs=64k --offset="$3" --size="$4" --verify=crc32c \
		--randseed="$5" --verify_only &&
	[ "$(fio_errors "$1")" = 0 ]
}

# ---------------------------------------------------------------- metadata
# (added for t44-resume-crash; nothing above changed)

# fm_md_status NAME: fm_status, then the metadata fields that follow the
# ten standard ones ("metadata <ok|failed> <commits> <secs since the last
# commit or -1> <kept> <recopied> <held_writes>") into ST_MD ST_MD_COMMITS
# ST_MD_AGE ST_MD_KEPT ST_MD_RECOPIED ST_MD_HELD.  Returns 1 (ST_MD=none)
# when the status has no metadata fields.
fm_md_status() {
	local w
	ST_MD=none ST_MD_COMMITS= ST_MD_AGE= ST_MD_KEPT= ST_MD_RECOPIED= ST_MD_HELD=
	fm_status "$1" || return 1
	set -- $ST_RAW
	while [ $# -gt 0 ] && [ "$1" != metadata ]; do shift; done
	[ $# -ge 7 ] || return 1
	ST_MD=$2 ST_MD_COMMITS=$3 ST_MD_AGE=$4 ST_MD_KEPT=$5 ST_MD_RECOPIED=$6 ST_MD_HELD=$7
	for w in "$ST_MD_COMMITS" "$ST_MD_KEPT" "$ST_MD_RECOPIED" "$ST_MD_HELD"; do
		case $w in ''|*[!0-9]*) ST_MD=bad; return 1 ;; esac
	done
}
