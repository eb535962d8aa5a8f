#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark phases, run inside the UML benchmark guest by
# scripts/bench/init.sh (never on a host: it creates null_blk and dm devices).
#
# Devices (the same for every peer):
#   /dev/bsrc   memory-backed null_blk, write-back cache (the source)
#   /dev/bdst   memory-backed null_blk, write-back cache (the destination)
#   ddst        dm-delay over bdst: reads and writes undelayed, flushes
#               delayed by the phase's flush delay; every peer's destination
#               is /dev/mapper/ddst.  Destination flushes are counted at
#               bdst (stat field 16): dm-delay is bio-based, counts none.
# Peers:
#   linear      dm-linear on the source alone (the ceiling)
#   dm-mirror   mirror, core log, the same two devices
#   fm-always   flushmirror flush_policy always
#   fm-gen      flushmirror flush_policy generation
#
# Phases (FMB_PHASE, comma-separated):
#   B1  synced, fio randwrite 4k direct fsync=1 for each flush delay and job
#       count: IOPS, p99 latencies, destination flushes per guest flush
#   B2  the same load while the peer is still copying (resyncing)
#   B3  idle copy of the whole source: time to synced per copier, and dd
#   B4  migration under load: fio runs on a linear table, the table is
#       reloaded to the peer, fio goes on until synced + FMB_B4_POST s
#   B6  PostgreSQL 15 (scripts/e2e/pg-lib.sh) on ext4 on the source, pgbench
#       (TPC-B-like) for each peer, synced and copying, for each flush
#       delay: TPS, latency, guest and destination flushes per transaction
#
# Results: one JSON object per measurement appended to $FMB_OUT/records.jsonl,
# raw fio JSON in $FMB_OUT/fio/, time series in $FMB_OUT/series/.
set -u
export DM_DISABLE_UDEV=1 LC_ALL=C

OUT=${FMB_OUT:?}
PHASES=${FMB_PHASE:-B1,B2,B3,B4}
RUNS=${FMB_RUNS:-3}
DELAYS=${FMB_DELAYS:-0,5,20}
JOBS=${FMB_JOBS:-1,8}
RUNTIME=${FMB_RUNTIME:-10}
SIZE_MB=${FMB_SIZE_MB:-1024}
CACHE_MB=${FMB_CACHE_MB:-128}
REGION=${FMB_REGION:-1024}
B2_RATE=${FMB_B2_RATE:-32768}
# dm-mirror has no KiB/s limit: its kcopyd throttle (percent of time) in B2
B2_MIRROR_THROTTLE=${FMB_B2_MIRROR_THROTTLE:-10}
MIRROR_THROTTLE=/sys/module/dm_mirror/parameters/raid1_resync_throttle
B3_JOBS=${FMB_B3_JOBS:-1,4,16}
B4_SIZE_MB=${FMB_B4_SIZE_MB:-$SIZE_MB}
B4_DELAY=${FMB_B4_DELAY:-5}
B4_PRE=${FMB_B4_PRE:-3}
B4_POST=${FMB_B4_POST:-3}
B4_LINEAR_S=${FMB_B4_LINEAR_S:-10}
SYNC_TIMEOUT=${FMB_SYNC_TIMEOUT:-600}
B6_SCALE=${FMB_B6_SCALE:-1}
B6_CLIENTS=${FMB_B6_CLIENTS:-4}
B6_RUNTIME=${FMB_B6_RUNTIME:-$RUNTIME}
B6_RATE=${FMB_B6_RATE:-$B2_RATE}
PEERS=${FMB_PEERS:-linear,dm-mirror,fm-always,fm-gen}

NB=/sys/kernel/config/nullb
SRC=/dev/bsrc
DSTNB=/dev/bdst
DST=/dev/mapper/ddst
TMP=/tmp/fmb
mkdir -p "$TMP" "$OUT/fio" "$OUT/series"
REC=$OUT/records.jsonl

log() { echo "[$(date +%H:%M:%S)] $*"; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
split() { echo "$1" | tr ',' ' '; }

# ------------------------------------------------------------ devices

dev_sysdir() {
	local t
	t=$(stat -L -c '%t %T' "$1" 2>/dev/null) || return 1
	set -- $t
	echo "/sys/dev/block/$((0x$1)):$((0x$2))"
}
# stat field 16: flush requests completed (request-based devices only)
flushes() { awk '{ print $16 + 0 }' "$(dev_sysdir "$1")/stat"; }

wait_bdev() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ -b "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

nb_make() {	# nb_make NAME SIZE_MB CACHE_MB
	local d=$NB/$1
	mkdir "$d" &&
	echo "$2" >"$d/size" &&
	echo 1 >"$d/memory_backed" &&
	echo 512 >"$d/blocksize" &&
	echo 0 >"$d/irqmode" &&
	echo "$3" >"$d/cache_size" &&
	echo 1 >"$d/power" &&
	wait_bdev "/dev/$1"
}

dm_mk() {	# dm_mk NAME TABLE
	timeout 120 dmsetup create "$1" --table "$2" || return 1
	wait_bdev "/dev/mapper/$1" || { dmsetup mknodes "$1"; wait_bdev "/dev/mapper/$1"; }
}

dm_rm() {
	local i
	dmsetup info "$1" >/dev/null 2>&1 || return 0
	for i in 1 2 3 4 5; do
		timeout 120 dmsetup remove "$1" 2>/dev/null && return 0
		sleep 0.5
	done
	log "HANG? dmsetup remove $1 failed 5 times; status: $(dmsetup status "$1" 2>&1)"
	timeout 60 dmsetup remove --force "$1"
}

set_delay() {	# set_delay FLUSH_MS: reload ddst (no peer on top)
	local len t
	len=$(blockdev --getsz "$DSTNB")
	t="0 $len delay $DSTNB 0 0 $DSTNB 0 0 $DSTNB 0 $1"
	if dmsetup info ddst >/dev/null 2>&1; then
		dmsetup load ddst --table "$t" && dmsetup resume ddst
	else
		dm_mk ddst "$t"
	fi
	CUR_DELAY=$1
}

setup_devices() {
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	nb_make bsrc "$SIZE_MB" "$CACHE_MB" || { log "FATAL: null_blk bsrc"; exit 1; }
	nb_make bdst "$SIZE_MB" "$CACHE_MB" || { log "FATAL: null_blk bdst"; exit 1; }
	# allocate every page of both devices (first writes to a memory-backed
	# null_blk allocate; no peer should pay that and another not)
	local t0
	t0=$(now)
	dd if=/dev/zero of=$SRC bs=1M count="$SIZE_MB" oflag=direct conv=fsync status=none
	dd if=/dev/zero of=$DSTNB bs=1M count="$SIZE_MB" oflag=direct conv=fsync status=none
	log "prefilled 2 x $SIZE_MB MiB in $(fsub "$(now)" "$t0") s"
	set_delay 0 || { log "FATAL: dm-delay"; exit 1; }
	dmsetup targets | grep -q '^flushmirror ' || { log "FATAL: no flushmirror target"; exit 1; }
}

# ------------------------------------------------------------ peers

# peer_table PEER MODE LEN [FM-FEATURES...]: MODE synced|copy
peer_table() {
	local peer=$1 mode=$2 len=$3 ns=
	shift 3
	[ "$mode" = synced ] && ns=nosync
	case $peer in
	linear) echo "0 $len linear $SRC 0" ;;
	dm-mirror)
		if [ -n "$ns" ]; then
			echo "0 $len mirror core 2 $REGION nosync 2 $SRC 0 $DST 0"
		else
			echo "0 $len mirror core 1 $REGION 2 $SRC 0 $DST 0"
		fi ;;
	fm-always|fm-gen)
		local pol=generation f
		[ "$peer" = fm-always ] && pol=always
		f=(flush_policy "$pol" $ns "$@")
		echo "0 $len flushmirror $SRC $DST $REGION ${#f[@]} ${f[*]}" ;;
	esac
}

# sync_state NAME: "<phase> <copied> <total>" for flushmirror and mirror
sync_state() {
	local s w
	s=$(timeout 60 dmsetup status "$1" 2>/dev/null) || { echo "none 0 0"; return; }
	set -- $s
	case $3 in
	flushmirror) echo "$4 ${5%/*} ${5#*/}" ;;
	mirror)
		for w in "$@"; do
			case $w in
			*/*) case ${w%/*}${w#*/} in *[!0-9]*) ;; *)
				if [ "${w%/*}" = "${w#*/}" ]; then
					echo "synced ${w%/*} ${w#*/}"
				else
					echo "copying ${w%/*} ${w#*/}"
				fi
				return ;; esac ;;
			esac
		done
		echo "none 0 0" ;;
	*) echo "synced 1 1" ;;
	esac
}

fm_counters() {	# "<guest_flushes> <dest_flushes>" or "null null"
	local s
	s=$(timeout 60 dmsetup status "$1" 2>/dev/null)
	set -- $s
	if [ "${3:-}" = flushmirror ]; then echo "${10} ${11}"; else echo "null null"; fi
}

# wait_synced NAME TIMEOUT: 0 when synced (dm events, no busy polling)
wait_synced() {
	local name=$1 end ev st
	end=$(($(date +%s) + $2))
	while :; do
		ev=$(dmsetup info -c --noheadings -o events "$name" 2>/dev/null | tr -d ' ')
		st=$(sync_state "$name")
		case $st in synced*) return 0 ;; failed*|none*) log "wait_synced $name: $st"; return 1 ;; esac
		[ "$(date +%s)" -ge "$end" ] && { log "HANG? $name not synced after $2 s: $(dmsetup status "$name")"; return 1; }
		timeout 2 dmsetup wait "$name" "${ev:-0}" >/dev/null 2>&1
	done
}

# ------------------------------------------------------------ fio

FIO_COMMON=(--ioengine=psync --direct=1 --bs=4k --rw=randwrite --thread
	--group_reporting --randseed=4242 --allow_file_create=0)

jf() { jq -r "$2" "$1" 2>/dev/null || echo null; }

# record JSON-OBJECT-ARGS: jq -n with --arg/--argjson pairs
record() { jq -nc "$@" >>"$REC"; }

# fio_json_copy FROM TO: fio's JSON without the lines fio may print before
# it ("fio: terminating on signal 2")
fio_json_copy() { sed -n '/^{/,$p' "$1" >"$2" 2>/dev/null; }

# run_fio ID DEV JOBS: fio for $RUNTIME s; sets FIO_JSON
run_fio() {
	FIO_JSON=$OUT/fio/$1.json
	timeout $((RUNTIME * 3 + 120)) fio "${FIO_COMMON[@]}" --name="$1" \
		--filename="$2" --numjobs="$3" --fsync=1 --time_based \
		--runtime="$RUNTIME" --output-format=json --output="$TMP/fio.json" \
		2>"$TMP/fio.err"
	local rc=$?
	fio_json_copy "$TMP/fio.json" "$FIO_JSON"
	[ $rc -eq 0 ] || log "fio $1 rc=$rc: $(head -c 300 "$TMP/fio.err")"
	return $rc
}

# measure_fio PHASE PEER MODE DELAY JOBS RUN: create the peer, run fio,
# count, remove, append a record
measure_fio() {
	local ph=$1 peer=$2 mode=$3 d=$4 j=$5 run=$6 len feats=() id
	local s0 s1 f0 f1 fs0 fs1 st0 st1 c gf df rc
	len=$(blockdev --getsz $SRC)
	[ "$mode" = copy ] && feats=(copy_rate "$B2_RATE")
	local thr=null
	[ "$mode" = copy ] && [ "$peer" = dm-mirror ] && thr=$(cat $MIRROR_THROTTLE 2>/dev/null || echo null)
	id="$ph-$peer-d$d-j$j-r$run"
	dm_mk bench "$(peer_table "$peer" "$mode" "$len" "${feats[@]}")" ||
		{ log "ERROR: cannot create $peer ($mode)"; return 1; }
	if [ "$mode" = synced ]; then
		wait_synced bench 120 || { dm_rm bench; return 1; }
	fi
	st0=$(sync_state bench)
	f0=$(flushes $DSTNB); fs0=$(flushes $SRC)
	s0=$(now)
	run_fio "$id" /dev/mapper/bench "$j"
	rc=$?
	s1=$(now)
	f1=$(flushes $DSTNB); fs1=$(flushes $SRC)
	st1=$(sync_state bench)
	c=$(fm_counters bench)
	gf=${c% *} df=${c#* }
	dm_rm bench
	set -- $st0; local ph0=$1 cp0=$2 tot=$3
	set -- $st1; local ph1=$1 cp1=$2
	record --arg phase "$ph" --arg peer "$peer" --arg mode "$mode" \
		--argjson delay_ms "$d" --argjson jobs "$j" --argjson run "$run" \
		--argjson fio_rc "$rc" --argjson wall_s "$(fsub "$s1" "$s0")" \
		--argjson iops "$(jf "$FIO_JSON" '.jobs[0].write.iops')" \
		--argjson writes "$(jf "$FIO_JSON" '.jobs[0].write.total_ios')" \
		--argjson guest_flushes "$(jf "$FIO_JSON" '.jobs[0].sync.total_ios')" \
		--argjson write_p99_us "$(jf "$FIO_JSON" '(.jobs[0].write.clat_ns.percentile["99.000000"] // null) | if . then ./1000 else null end')" \
		--argjson sync_p50_us "$(jf "$FIO_JSON" '(.jobs[0].sync.lat_ns.percentile["50.000000"] // null) | if . then ./1000 else null end')" \
		--argjson sync_mean_us "$(jf "$FIO_JSON" '(.jobs[0].sync.lat_ns.mean // null) | if . then ./1000 else null end')" \
		--argjson sync_p99_us "$(jf "$FIO_JSON" '(.jobs[0].sync.lat_ns.percentile["99.000000"] // null) | if . then ./1000 else null end')" \
		--argjson dst_flushes "$((f1 - f0))" --argjson src_flushes "$((fs1 - fs0))" \
		--argjson fm_guest_flushes "$gf" --argjson fm_dest_flushes "$df" \
		--arg phase_before "$ph0" --arg phase_after "$ph1" \
		--argjson copied_before "$cp0" --argjson copied_after "$cp1" \
		--argjson regions "$tot" --argjson region_sectors "$REGION" \
		--argjson copy_rate_kib "$([ "$mode" = copy ] && echo "$B2_RATE" || echo null)" \
		--argjson mirror_throttle_pct "$thr" \
		'$ARGS.named'
	log "$id: $(tail -n 1 "$REC" | jq -r '"iops=\(.iops) dstfl=\(.dst_flushes) gfl=\(.guest_flushes) sync_p99=\(.sync_p99_us)us \(.phase_before)->\(.phase_after) \(.copied_before)->\(.copied_after)/\(.regions)"')"
}

phase_fio() {	# phase_fio B1|B2
	local ph=$1 mode=synced d j run peer
	if [ "$ph" = B2 ]; then
		mode=copy
		[ -w $MIRROR_THROTTLE ] && echo "$B2_MIRROR_THROTTLE" >$MIRROR_THROTTLE
	fi
	for d in $(split "$DELAYS"); do
		set_delay "$d"
		for j in $(split "$JOBS"); do
			for ((run = 1; run <= RUNS; run++)); do
				# peers interleaved within a run: drift hits all alike
				for peer in $(split "$PEERS"); do
					[ "$mode" = copy ] && [ "$peer" = linear ] && continue
					measure_fio "$ph" "$peer" "$mode" "$d" "$j" "$run"
				done
			done
		done
	done
	[ -w $MIRROR_THROTTLE ] && echo 100 >$MIRROR_THROTTLE
}

# ------------------------------------------------------------ B3

phase_b3() {
	local len run cfg t0 t1 f0 f1 jobs peer ok
	len=$(blockdev --getsz $SRC)
	set_delay 0
	for ((run = 1; run <= RUNS; run++)); do
		for cfg in dd dm-mirror $(for jobs in $(split "$B3_JOBS"); do echo "fm-j$jobs"; done); do
			f0=$(flushes $DSTNB)
			ok=true
			case $cfg in
			dd)
				t0=$(now)
				dd if=$SRC of=$DST bs=1M iflag=direct oflag=direct \
					conv=fsync status=none || ok=false
				t1=$(now) ;;
			dm-mirror)
				t0=$(now)
				dm_mk bench "$(peer_table dm-mirror copy "$len")" || ok=false
				$ok && { wait_synced bench "$SYNC_TIMEOUT" || ok=false; }
				t1=$(now)
				dm_rm bench ;;
			fm-j*)
				t0=$(now)
				dm_mk bench "$(peer_table fm-gen copy "$len" copy_jobs "${cfg#fm-j}")" || ok=false
				$ok && { wait_synced bench "$SYNC_TIMEOUT" || ok=false; }
				t1=$(now)
				dm_rm bench ;;
			esac
			f1=$(flushes $DSTNB)
			record --arg phase B3 --arg peer "$cfg" --argjson run "$run" \
				--argjson ok "$ok" --argjson bytes "$((len * 512))" \
				--argjson time_s "$(fsub "$t1" "$t0")" \
				--argjson dst_flushes "$((f1 - f0))" \
				--argjson region_sectors "$REGION" '$ARGS.named'
			log "B3 $cfg run $run: $(fsub "$t1" "$t0") s ok=$ok dst_flushes=$((f1 - f0))"
		done
	done
}

# ------------------------------------------------------------ B4

phase_b4() {
	local len run peer id t0 tr ts te fpid ppid ok st f0 f1
	len=$((B4_SIZE_MB * 2048))
	set_delay "$B4_DELAY"
	for ((run = 1; run <= RUNS; run++)); do
		for peer in $(split "$PEERS"); do
			id=B4-$peer-r$run
			dm_mk b4 "0 $len linear $SRC 0" || { log "ERROR: b4 linear"; continue; }
			f0=$(flushes $DSTNB)
			t0=$(now)
			fio "${FIO_COMMON[@]}" --name="$id" --filename=/dev/mapper/b4 \
				--numjobs=1 --fsync=1 --time_based --runtime=$SYNC_TIMEOUT \
				--write_iops_log="$TMP/$id" --log_avg_msec=250 --log_unix_epoch=1 \
				--output-format=json --output="$TMP/fio.json" 2>"$TMP/fio.err" &
			fpid=$!
			sleep "$B4_PRE"
			tr=$(now)
			ok=true
			if [ "$peer" = linear ]; then
				sleep "$B4_LINEAR_S"
				ts=$(now)
			else
				# the migration starts (t=0): reload under load, pvmove's way
				tr=$(now)
				timeout 120 dmsetup load b4 --table "$(peer_table "$peer" copy "$len")" &&
					timeout 120 dmsetup resume b4 || ok=false
				# copy progress, every second
				( while :; do
					st=$(sync_state b4)
					echo "$(fsub "$(now)" "$tr") $st"
					case $st in synced*|none*|failed*) break ;; esac
					sleep 1
				  done ) >"$OUT/series/$id.progress" &
				ppid=$!
				$ok && { wait_synced b4 "$SYNC_TIMEOUT" || ok=false; }
				ts=$(now)
				wait $ppid 2>/dev/null
				sleep "$B4_POST"
			fi
			te=$(now)
			kill -INT $fpid 2>/dev/null
			wait $fpid
			f1=$(flushes $DSTNB)
			fio_json_copy "$TMP/fio.json" "$OUT/fio/$id.json"
			# fio log: unix epoch msec, iops; shift to t=0 at the reload
			awk -F', *' -v tr="$tr" '{ printf "%.3f %s\n", $1 / 1000 - tr, $2 }' \
				"$TMP/${id}_iops.1.log" >"$OUT/series/$id.iops" 2>/dev/null
			rm -f "$TMP/${id}"_iops.*.log
			dm_rm b4
			record --arg phase B4 --arg peer "$peer" --argjson run "$run" \
				--argjson ok "$ok" --argjson delay_ms "$B4_DELAY" \
				--argjson bytes "$((len * 512))" \
				--argjson time_to_synced_s "$([ "$peer" = linear ] && echo null || fsub "$ts" "$tr")" \
				--argjson iops_during "$(awk -v a=0 -v b="$(fsub "$ts" "$tr")" '$1 > a && $1 <= b { s += $2; n++ } END { print n ? s / n : "null" }' "$OUT/series/$id.iops")" \
				--argjson iops_after "$(awk -v a="$(fsub "$ts" "$tr")" '$1 > a + 0.5 { s += $2; n++ } END { print n ? s / n : "null" }' "$OUT/series/$id.iops")" \
				--argjson iops_before "$(awk '$1 <= 0 && $1 > -'"$B4_PRE"' + 0.5 { s += $2; n++ } END { print n ? s / n : "null" }' "$OUT/series/$id.iops")" \
				--argjson dst_flushes "$((f1 - f0))" \
				--argjson guest_flushes "$(jf "$OUT/fio/$id.json" '.jobs[0].sync.total_ios')" \
				'$ARGS.named'
			log "B4 $peer run $run: $(tail -n 1 "$REC" | jq -c 'del(.phase, .peer, .run)')"
		done
	done
}

# ------------------------------------------------------------ B6

# pgbench_run ID CLIENTS: pgbench for $B6_RUNTIME s; its output in
# $OUT/fio/ID.txt (the raw-output directory of every phase)
pgbench_run() {
	timeout $((B6_RUNTIME * 3 + 120)) "$PG_BIN/pgbench" -n -c "$2" -j "$2" \
		-T "$B6_RUNTIME" -h "$PG_RUN/sock" -U postgres postgres \
		>"$OUT/fio/$1.txt" 2>&1
}

# pgbench_field ID REGEX: the number after REGEX in pgbench's output
pgbench_field() {
	sed -n "s/^$2 *\([0-9.]*\).*/\1/p" "$OUT/fio/$1.txt" | head -n 1 | grep . || echo null
}

# The database lives on ext4 on the source behind "bvm", a linear table
# made once; for each measurement bvm is reloaded live with the peer's
# table (synced: nosync; copy: the copy starts at the reload, at
# $B6_RATE KiB/s) and back to linear after it.  One server for the phase.
phase_b6() {
	local len d run peer mode id f0 f1 fs0 fs1 st0 st1 c gf df rc feats
	local mnt=$TMP/pgmnt
	if ! grep -qw ext4 /proc/filesystems; then
		log "SKIP B6: no ext4 in this kernel (CONFIG_EXT4_FS)"
		return 0
	fi
	E2E_TMP=$TMP/pg FM_ATEXIT=() FM_PIDS=()
	mkdir -p "$E2E_TMP"
	. "$FM_REPO/scripts/e2e/pg-lib.sh"
	local miss
	miss=$(pg_missing)
	[ -z "$miss" ] || { log "SKIP B6: not on the host: $miss"; return 0; }
	len=$(blockdev --getsz $SRC)
	set_delay 0
	dm_mk bvm "0 $len linear $SRC 0" || { log "ERROR: B6 bvm"; return 1; }
	mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
		/dev/mapper/bvm || { log "ERROR: B6 mkfs"; return 1; }
	pg_init_run && pg_template || { log "ERROR: B6 initdb"; return 1; }
	# a benchmark, not a power-cut test: PostgreSQL's own WAL defaults
	# (an eighth of the disk for WAL between checkpoints: the smoke run's
	# 64 MiB disk holds the database too)
	printf '%s\n' "wal_init_zero = on" "wal_recycle = on" \
		"min_wal_size = 4MB" \
		"max_wal_size = $((SIZE_MB / 8 > 4 ? SIZE_MB / 8 : 4))MB" \
		>>"$PG_RUN/template/postgresql.conf"
	mnt=$PG_RUN/mnt
	mkdir -p "$mnt" && mount -t ext4 -o noinit_itable /dev/mapper/bvm "$mnt" &&
		pg_install "$mnt/pgdata" && pg_start "$mnt/pgdata" ||
		{ log "ERROR: B6 PostgreSQL: $(pg_log_tail)"; return 1; }
	"$PG_BIN/pgbench" -i -q -s "$B6_SCALE" -h "$PG_RUN/sock" -U postgres \
		postgres >"$OUT/fio/B6-init.txt" 2>&1 ||
		{ log "ERROR: pgbench -i: $(tail -n 3 "$OUT/fio/B6-init.txt")"; return 1; }
	log "B6: scale $B6_SCALE, $B6_CLIENTS clients, ${B6_RUNTIME}s per run"
	for d in $(split "$DELAYS"); do
		set_delay "$d"
		for ((run = 1; run <= RUNS; run++)); do
			for mode in synced copy; do
				for peer in $(split "$PEERS"); do
					[ "$mode" = copy ] && [ "$peer" = linear ] && continue
					id=B6-$peer-$mode-d$d-r$run
					feats=()
					[ "$mode" = copy ] && feats=(copy_rate "$B6_RATE")
					timeout 120 dmsetup load bvm --table \
						"$(peer_table "$peer" "$mode" "$len" "${feats[@]}")" &&
						timeout 120 dmsetup resume bvm ||
						{ log "ERROR: cannot reload bvm to $peer ($mode)"; continue; }
					[ "$mode" = synced ] && { wait_synced bvm 120 || continue; }
					st0=$(sync_state bvm)
					f0=$(flushes $DSTNB); fs0=$(flushes $SRC)
					c=$(fm_counters bvm)
					local gf0=${c% *} df0=${c#* }
					pgbench_run "$id" "$B6_CLIENTS"
					rc=$?
					f1=$(flushes $DSTNB); fs1=$(flushes $SRC)
					st1=$(sync_state bvm)
					c=$(fm_counters bvm)
					gf=${c% *} df=${c#* }
					if [ "$gf" != null ]; then
						gf=$((gf - gf0)) df=$((df - df0))
					fi
					timeout 120 dmsetup load bvm --table "0 $len linear $SRC 0" &&
						timeout 120 dmsetup resume bvm ||
						{ log "ERROR: cannot reload bvm to linear"; return 1; }
					set -- $st0; local ph0=$1 cp0=$2 tot=$3
					set -- $st1; local ph1=$1 cp1=$2
					record --arg phase B6 --arg peer "$peer" --arg mode "$mode" \
						--argjson delay_ms "$d" --argjson clients "$B6_CLIENTS" \
						--argjson run "$run" --argjson pgbench_rc "$rc" \
						--argjson scale "$B6_SCALE" --argjson runtime_s "$B6_RUNTIME" \
						--argjson tps "$(pgbench_field "$id" 'tps =')" \
						--argjson lat_avg_ms "$(pgbench_field "$id" 'latency average =')" \
						--argjson txns "$(pgbench_field "$id" 'number of transactions actually processed:')" \
						--argjson dst_flushes "$((f1 - f0))" --argjson src_flushes "$((fs1 - fs0))" \
						--argjson fm_guest_flushes "$gf" --argjson fm_dest_flushes "$df" \
						--arg phase_before "$ph0" --arg phase_after "$ph1" \
						--argjson copied_before "$cp0" --argjson copied_after "$cp1" \
						--argjson regions "$tot" \
						--argjson copy_rate_kib "$([ "$mode" = copy ] && echo "$B6_RATE" || echo null)" \
						'$ARGS.named'
					log "$id: $(tail -n 1 "$REC" | jq -r '"tps=\(.tps) lat=\(.lat_avg_ms)ms txns=\(.txns) srcfl=\(.src_flushes) dstfl=\(.dst_flushes) fm_gf=\(.fm_guest_flushes) fm_df=\(.fm_dest_flushes) \(.phase_before)->\(.phase_after)"')"
				done
			done
		done
	done
	pg_stop || log "B6: pg_ctl stop failed: $(pg_log_tail)"
	cp "$PG_RUN/server.log" "$OUT/pg-server.log"
	umount "$mnt"
	dm_rm bvm
	rm -rf --one-file-system "$PG_RUN" "$E2E_TMP"
}

# ------------------------------------------------------------ main

log "bench guest: $(uname -r) phases=$PHASES runs=$RUNS delays=$DELAYS jobs=$JOBS runtime=${RUNTIME}s size=${SIZE_MB}MiB region=$REGION"
setup_devices
for ph in $(split "$PHASES"); do
	log "=== $ph"
	case $ph in
	B1) phase_fio B1 ;;
	B2) phase_fio B2 ;;
	B3) phase_b3 ;;
	B4) phase_b4 ;;
	B6) phase_b6 ;;
	*) log "unknown phase $ph" ;;
	esac
done
dmsetup remove_all
log "bench guest: done"
