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
#   fm-gen-md   fm-gen with a metadata device (resumable migration):
#               /dev/bmeta, a null_blk of its own with a write-back cache,
#               formatted anew for every measurement (discard_metadata);
#               metadata writes and flushes are counted at bmeta (B1, B2,
#               and B3 as fm-md-jN)
#   fm-gen-bg   fm-gen with copy_mode background (B5)
#
# Phases (FMB_PHASE, comma-separated):
#   B1  synced, fio randwrite 4k direct fsync=1 for each flush delay and job
#       count: IOPS, p99 latencies, destination flushes per guest flush
#   B2  the same load while the peer is still copying (resyncing)
#   B3  idle copy of the whole source: time to synced per copier, and dd
#   B4  migration under load: fio runs on a linear table, the table is
#       reloaded to the peer, fio goes on until synced + FMB_B4_POST s
#   B5  remote destination over NBD (scripts/e2e/nbd-lib.sh): a "remote
#       host" network namespace, a veth pair with netem for each round trip
#       of FMB_B5_RTTS, nbd-server there exporting a null_blk (b5dst, the
#       destination flushes are counted there: the server side), nbd-client
#       here; own devices of FMB_B5_SIZE_MB (b5src local).  Per round trip:
#       the idle copy (dd over the link, dm-mirror, flushmirror per
#       copy_jobs), fio fsync load synced and copying (and the source
#       alone), and the migration under that load (time to synced).
#       FMB_B5_RTTS, _SIZE_MB, _JOBS, _RATE, _COPY_JOBS, _DD_BS,
#       _LOAD_JOBS, _RUNS, _RUNTIME (below)
#   B6  PostgreSQL 15 (scripts/e2e/pg-lib.sh) on ext4 on the source, pgbench
#       (TPC-B-like) for each peer, synced and copying, for each flush
#       delay: TPS, latency, guest and destination flushes per transaction
#       (FMB_B6_RUNS runs, default 2)
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
B3_JOBS=${FMB_B3_JOBS:-1,4,8,16}
B4_SIZE_MB=${FMB_B4_SIZE_MB:-$SIZE_MB}
B4_DELAY=${FMB_B4_DELAY:-5}
B4_PRE=${FMB_B4_PRE:-3}
B4_POST=${FMB_B4_POST:-3}
B4_LINEAR_S=${FMB_B4_LINEAR_S:-10}
SYNC_TIMEOUT=${FMB_SYNC_TIMEOUT:-600}
B6_SCALE=${FMB_B6_SCALE:-1}
B6_CLIENTS=${FMB_B6_CLIENTS:-4}
B6_RUNTIME=${FMB_B6_RUNTIME:-$RUNTIME}
B6_RUNS=${FMB_B6_RUNS:-${FMB_RUNS:-2}}
B6_RATE=${FMB_B6_RATE:-$B2_RATE}
PEERS=${FMB_PEERS:-linear,dm-mirror,fm-always,fm-gen}
# B1 and B2 add the metadata peer, B5 the background copy mode
FIO_PEERS=${FMB_FIO_PEERS:-$PEERS,fm-gen-md}
B5_PEERS=${FMB_B5_PEERS:-$PEERS,fm-gen-bg}
B3_MD_JOBS=${FMB_B3_MD_JOBS:-8,16}
MD_MB=${FMB_MD_MB:-16}
B5_RTTS=${FMB_B5_RTTS:-0.5,2,10}
B5_SIZE_MB=${FMB_B5_SIZE_MB:-256}
B5_CACHE_MB=${FMB_B5_CACHE_MB:-64}
# B5 and B6 repeat twice and run fio 8 s unless --runs/--runtime say
# (FMB_RUNS, FMB_RUNTIME): a phase of minutes
B5_RUNS=${FMB_B5_RUNS:-${FMB_RUNS:-2}}
B5_RUNTIME=${FMB_B5_RUNTIME:-${FMB_RUNTIME:-8}}
B5_JOBS=${FMB_B5_JOBS:-1,4}
# copying: flushmirror's copy_rate, low enough that a fio run ends before
# the copy (256 MiB at 16 MiB/s: 16 s)
B5_RATE=${FMB_B5_RATE:-16384}
B5_COPY_JOBS=${FMB_B5_COPY_JOBS:-1,4,8,16,32}
B5_DD_BS=${FMB_B5_DD_BS:-1M,4M}
B5_LOAD_JOBS=${FMB_B5_LOAD_JOBS:-4}
B5_PRE=${FMB_B5_PRE:-2}
B5_POST=${FMB_B5_POST:-2}

NB=/sys/kernel/config/nullb
SRC=/dev/bsrc
DSTNB=/dev/bdst
DST=/dev/mapper/ddst
MDDEV=/dev/bmeta
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
# stat field 5: write requests completed
writes() { awk '{ print $5 + 0 }' "$(dev_sysdir "$1")/stat"; }

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
	nb_make bmeta "$MD_MB" 4 || { log "FATAL: null_blk bmeta"; exit 1; }
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
	fm-always|fm-gen|fm-gen-md|fm-gen-bg)
		local pol=generation f
		[ "$peer" = fm-always ] && pol=always
		f=(flush_policy "$pol" $ns)
		case $peer in
		fm-gen-md) f+=(metadata "$MDDEV" discard_metadata) ;;
		fm-gen-bg) f+=(copy_mode background) ;;
		esac
		f+=("$@")
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

# md_fields NAME: "<commits> <held writes>" of the metadata status fields,
# or "null null" without metadata
md_fields() {
	local s
	s=$(timeout 60 dmsetup status "$1" 2>/dev/null)
	set -- $s
	while [ $# -gt 0 ] && [ "$1" != metadata ]; do shift; done
	if [ $# -ge 7 ]; then echo "$3 $7"; else echo "null null"; fi
}

# md_wait_commit NAME: wait (at most 20 s) for a checkpoint after the
# load's format: from then on the regions are recorded as copied, and the
# first write to each waits for an intent commit, as in a long migration
md_wait_commit() {
	local c0 c i
	c0=$(md_fields "$1"); c0=${c0% *}
	for ((i = 0; i < 200; i++)); do
		c=$(md_fields "$1"); c=${c% *}
		[ "$c" != null ] && [ "$c" -gt "$c0" ] && return 0
		sleep 0.1
	done
	log "md_wait_commit $1: no checkpoint in 20 s ($(dmsetup status "$1"))"
	return 1
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
	# B5 measures both modes in one phase, at round trips
	[ "$ph" = B5 ] && id="$ph-$peer-$mode-rtt$d-j$j-r$run"
	dm_mk bench "$(peer_table "$peer" "$mode" "$len" "${feats[@]}")" ||
		{ log "ERROR: cannot create $peer ($mode)"; return 1; }
	if [ "$mode" = synced ]; then
		wait_synced bench 120 || { dm_rm bench; return 1; }
	fi
	local md=false mw0=0 mw1=0 mf0=0 mf1=0 m0="null null" m1="null null"
	case $peer in *-md) md=true ;; esac
	if $md; then
		[ "$mode" = synced ] && md_wait_commit bench
		m0=$(md_fields bench)
		mw0=$(writes $MDDEV); mf0=$(flushes $MDDEV)
	fi
	st0=$(sync_state bench)
	f0=$(flushes $DSTNB); fs0=$(flushes $SRC)
	local l0=0 l1=0
	[ -z "${LINK_DEV:-}" ] || l0=$(flushes "$LINK_DEV")
	s0=$(now)
	run_fio "$id" /dev/mapper/bench "$j"
	rc=$?
	s1=$(now)
	f1=$(flushes $DSTNB); fs1=$(flushes $SRC)
	[ -z "${LINK_DEV:-}" ] || l1=$(flushes "$LINK_DEV")
	st1=$(sync_state bench)
	c=$(fm_counters bench)
	gf=${c% *} df=${c#* }
	if $md; then
		m1=$(md_fields bench)
		mw1=$(writes $MDDEV); mf1=$(flushes $MDDEV)
	fi
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
		--argjson rtt_ms "${CUR_RTT:-null}" \
		--argjson link_flushes "$([ -n "${LINK_DEV:-}" ] && echo $((l1 - l0)) || echo null)" \
		--argjson md_writes "$($md && echo $((mw1 - mw0)) || echo null)" \
		--argjson md_flushes "$($md && echo $((mf1 - mf0)) || echo null)" \
		--argjson md_commits "$($md && echo $((${m1% *} - ${m0% *})) || echo null)" \
		--argjson md_held_writes "$($md && echo $((${m1#* } - ${m0#* })) || echo null)" \
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
				for peer in $(split "$FIO_PEERS"); do
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
	local len run cfg t0 t1 f0 f1 mw0 mw1 jobs peer ok
	len=$(blockdev --getsz $SRC)
	set_delay 0
	for ((run = 1; run <= RUNS; run++)); do
		for cfg in dd dm-mirror $(for jobs in $(split "$B3_JOBS"); do echo "fm-j$jobs"; done) \
				$(for jobs in $(split "$B3_MD_JOBS"); do echo "fm-md-j$jobs"; done); do
			f0=$(flushes $DSTNB) mw0=$(writes $MDDEV)
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
			fm-j*|fm-md-j*)
				local p=fm-gen
				[ "${cfg#fm-md-}" = "$cfg" ] || p=fm-gen-md
				t0=$(now)
				dm_mk bench "$(peer_table $p copy "$len" copy_jobs "${cfg##*-j}")" || ok=false
				$ok && { wait_synced bench "$SYNC_TIMEOUT" || ok=false; }
				t1=$(now)
				dm_rm bench ;;
			esac
			f1=$(flushes $DSTNB) mw1=$(writes $MDDEV)
			record --arg phase B3 --arg peer "$cfg" --argjson run "$run" \
				--argjson ok "$ok" --argjson bytes "$((len * 512))" \
				--argjson time_s "$(fsub "$t1" "$t0")" \
				--argjson dst_flushes "$((f1 - f0))" \
				--argjson md_writes "$((mw1 - mw0))" \
				--argjson region_sectors "$REGION" '$ARGS.named'
			log "B3 $cfg run $run: $(fsub "$t1" "$t0") s ok=$ok dst_flushes=$((f1 - f0))"
		done
	done
}

# ------------------------------------------------------------ B4

# load_migrate ID PEER LEN JOBS PRE POST LINEAR_S: fio (randwrite 4k
# fsync=1, JOBS jobs) runs on "b4", a linear table over $SRC; after PRE s
# the table is reloaded to PEER (the migration starts, t=0: pvmove's way),
# the copy runs to synced and fio goes on POST s (linear: not reloaded,
# fio runs LINEAR_S s more: the ceiling line).  Sets LM_OK, LM_T (time to
# synced in s, null for linear), LM_DSTFL (flushes $DSTNB completed),
# LM_FIO (fio's JSON in $OUT/fio/ID.json) and the IOPS series
# $OUT/series/ID.iops (t=0 at the reload), progress in ID.progress.
load_migrate() {
	local id=$1 peer=$2 len=$3 jobs=$4 pre=$5 post=$6 lin=$7
	local t0 tr ts fpid ppid st f0
	LM_OK=false LM_T=null LM_DSTFL=null LM_FIO=$OUT/fio/$id.json
	dm_mk b4 "0 $len linear $SRC 0" || { log "ERROR: b4 linear"; return 1; }
	f0=$(flushes $DSTNB)
	t0=$(now)
	fio "${FIO_COMMON[@]}" --name="$id" --filename=/dev/mapper/b4 \
		--numjobs="$jobs" --fsync=1 --time_based --runtime=$SYNC_TIMEOUT \
		--write_iops_log="$TMP/$id" --log_avg_msec=250 --log_unix_epoch=1 \
		--output-format=json --output="$TMP/fio.json" 2>"$TMP/fio.err" &
	fpid=$!
	sleep "$pre"
	tr=$(now)
	LM_OK=true
	if [ "$peer" = linear ]; then
		sleep "$lin"
	else
		timeout 120 dmsetup load b4 --table "$(peer_table "$peer" copy "$len")" &&
			timeout 120 dmsetup resume b4 || LM_OK=false
		# copy progress, every second
		( while :; do
			st=$(sync_state b4)
			echo "$(fsub "$(now)" "$tr") $st"
			case $st in synced*|none*|failed*) break ;; esac
			sleep 1
		  done ) >"$OUT/series/$id.progress" &
		ppid=$!
		$LM_OK && { wait_synced b4 "$SYNC_TIMEOUT" || LM_OK=false; }
		ts=$(now)
		LM_T=$(fsub "$ts" "$tr")
		wait $ppid 2>/dev/null
		sleep "$post"
	fi
	kill -INT $fpid 2>/dev/null
	wait $fpid
	LM_DSTFL=$(($(flushes $DSTNB) - f0))
	fio_json_copy "$TMP/fio.json" "$LM_FIO"
	# fio's log: one file per job (unix epoch msec, IOPS per 250 ms);
	# the Nth lines of the jobs summed, at the first job's time, shifted
	# to t=0 at the reload
	awk -F', *' -v tr="$tr" 'FNR == NR { t[FNR] = $1 } { s[FNR] += $2; n = FNR > n ? FNR : n }
		END { for (i = 1; i <= n; i++) if (i in t) printf "%.3f %s\n", t[i] / 1000 - tr, s[i] }' \
		"$TMP/${id}"_iops.*.log >"$OUT/series/$id.iops" 2>/dev/null
	rm -f "$TMP/${id}"_iops.*.log
	dm_rm b4
	$LM_OK
}

# series_mean ID FROM TO: mean IOPS of the series between FROM and TO s
series_mean() {
	awk -v a="$2" -v b="$3" '$1 > a && $1 <= b { s += $2; n++ }
		END { print n ? s / n : "null" }' "$OUT/series/$1.iops"
}

phase_b4() {
	local len run peer id tlim
	len=$((B4_SIZE_MB * 2048))
	set_delay "$B4_DELAY"
	for ((run = 1; run <= RUNS; run++)); do
		for peer in $(split "$PEERS"); do
			id=B4-$peer-r$run
			load_migrate "$id" "$peer" "$len" 1 "$B4_PRE" "$B4_POST" "$B4_LINEAR_S"
			tlim=$LM_T
			[ "$tlim" = null ] && tlim=$B4_LINEAR_S
			record --arg phase B4 --arg peer "$peer" --argjson run "$run" \
				--argjson ok "$LM_OK" --argjson delay_ms "$B4_DELAY" \
				--argjson bytes "$((len * 512))" \
				--argjson time_to_synced_s "$LM_T" \
				--argjson iops_during "$(series_mean "$id" 0 "$tlim")" \
				--argjson iops_after "$(series_mean "$id" "$(fsub "$tlim" -0.5)" 1e9)" \
				--argjson iops_before "$(series_mean "$id" "$(fsub 0.5 "$B4_PRE")" 0)" \
				--argjson dst_flushes "$LM_DSTFL" \
				--argjson guest_flushes "$(jf "$LM_FIO" '.jobs[0].sync.total_ios')" \
				'$ARGS.named'
			log "B4 $peer run $run: $(tail -n 1 "$REC" | jq -c 'del(.phase, .peer, .run)')"
		done
	done
}

# ------------------------------------------------------------ B5

# b5_rtt: the link's measured round trip in ms (median of 15 TCP
# connects to a closed port of the remote host: SYN out, RST back, no
# server involved)
b5_rtt() {
	python3 - "$NBD_REMOTE_IP" <<-'PY'
	import socket, statistics, sys, time
	ts = []
	for _ in range(15):
	    s = socket.socket()
	    s.settimeout(5)
	    t = time.perf_counter()
	    try:
	        s.connect((sys.argv[1], 9))
	    except OSError:
	        pass
	    ts.append((time.perf_counter() - t) * 1000)
	    s.close()
	print("%.3f" % statistics.median(ts))
	PY
}

# b5_copy RTT RUN CFG: one idle copy of the whole source to the NBD
# device, timed to synced (dd: to its end, conv=fsync)
b5_copy() {
	local rtt=$1 run=$2 cfg=$3 len t0 t1 f0 f1 l0 l1 ok=true
	len=$(blockdev --getsz $SRC)
	f0=$(flushes $DSTNB); l0=$(flushes "$LINK_DEV")
	t0=$(now)
	case $cfg in
	dd-*)
		dd if=$SRC of="$DST" bs="${cfg#dd-}" iflag=direct oflag=direct \
			conv=fsync status=none || ok=false ;;
	dm-mirror)
		dm_mk bench "$(peer_table dm-mirror copy "$len")" || ok=false
		$ok && { wait_synced bench "$SYNC_TIMEOUT" || ok=false; } ;;
	fm-j*)
		dm_mk bench "$(peer_table fm-gen copy "$len" copy_jobs "${cfg#fm-j}")" || ok=false
		$ok && { wait_synced bench "$SYNC_TIMEOUT" || ok=false; } ;;
	esac
	t1=$(now)
	dm_rm bench
	f1=$(flushes $DSTNB); l1=$(flushes "$LINK_DEV")
	record --arg phase B5 --arg kind copy --arg peer "$cfg" \
		--argjson rtt_ms "$rtt" --argjson rtt_measured_ms "$B5_RTT_MEAS" \
		--argjson run "$run" --argjson ok "$ok" \
		--argjson bytes "$((len * 512))" --argjson time_s "$(fsub "$t1" "$t0")" \
		--argjson dst_flushes "$((f1 - f0))" --argjson link_flushes "$((l1 - l0))" \
		--argjson region_sectors "$REGION" '$ARGS.named'
	log "B5 ${rtt}ms copy $cfg run $run: $(fsub "$t1" "$t0") s ok=$ok server flushes=$((f1 - f0))"
}

# B5: the destination on a "remote host" over NBD (nbd-lib.sh), for each
# round trip of $B5_RTTS.  Devices of its own: b5src (local, the source)
# and b5dst (the null_blk nbd-server exports from the remote namespace;
# destination flushes are counted there, at the server, as $DSTNB), both
# with a volatile cache.  The peers' destination is the NBD device ($DST).
phase_b5() {
	local SRC=/dev/b5src DSTNB=/dev/b5dst DST LINK_DEV CUR_RTT
	local B2_RATE=$B5_RATE RUNTIME=$B5_RUNTIME len rtt run cfg j peer mode id tlim jb
	local E2E_TMP=$TMP/nbd FM_ATEXIT=() FM_PIDS=() FM_DMS=()
	mkdir -p "$E2E_TMP"
	# what nbd-lib.sh takes from the e2e lib.sh
	flush_count() { flushes "$1"; }
	dm_remove() { dm_rm "$1"; }
	. "$FM_REPO/scripts/e2e/nbd-lib.sh"
	NBD_TIMEOUT=${FMB_B5_NBD_TIMEOUT:-30}
	if ! nbd_init 2>"$TMP/nbd-init.err"; then
		log "SKIP B5: $(cat "$TMP/nbd-init.err")"
		return 0
	fi
	nb_make b5src "$B5_SIZE_MB" "$B5_CACHE_MB" && nb_make b5dst "$B5_SIZE_MB" "$B5_CACHE_MB" ||
		{ log "FATAL: B5 null_blk"; return 1; }
	dd if=/dev/zero of=$SRC bs=1M count="$B5_SIZE_MB" oflag=direct conv=fsync status=none
	dd if=/dev/zero of=$DSTNB bs=1M count="$B5_SIZE_MB" oflag=direct conv=fsync status=none
	nbd_net_up 0 && nbd_server_start $DSTNB && nbd_connect ||
		{ log "ERROR: B5 link/nbd-server/nbd-client"; nbd_cleanup; return 1; }
	DST=$NBD_DEV LINK_DEV=$NBD_DEV
	len=$(blockdev --getsz $SRC)
	log "B5: $DST over $NBD_MODE (timeout ${NBD_TIMEOUT}s), write cache: $(cat "/sys/block/${DST#/dev/}/queue/write_cache"), ${B5_SIZE_MB} MiB, runs $B5_RUNS, fio ${B5_RUNTIME}s"
	[ "$(blockdev --getsz "$DST")" = "$len" ] || { log "ERROR: B5: $DST size"; nbd_cleanup; return 1; }
	for rtt in $(split "$B5_RTTS"); do
		nbd_delay "$rtt"
		CUR_RTT=$rtt
		B5_RTT_MEAS=$(b5_rtt)
		log "=== B5 round trip $rtt ms (measured $B5_RTT_MEAS ms)"
		for ((run = 1; run <= B5_RUNS; run++)); do
			# 1. idle copy
			for cfg in $(for jb in $(split "$B5_DD_BS"); do echo "dd-$jb"; done) dm-mirror \
					$(for jb in $(split "$B5_COPY_JOBS"); do echo "fm-j$jb"; done); do
				b5_copy "$rtt" "$run" "$cfg"
			done
			# 2. fsync load, synced and copying, and the source alone
			for j in $(split "$B5_JOBS"); do
				for mode in synced copy; do
					for peer in $(split "$B5_PEERS"); do
						[ "$mode" = copy ] && [ "$peer" = linear ] && continue
						measure_fio B5 "$peer" "$mode" "$rtt" "$j" "$run"
					done
				done
			done
			# 3. the migration under that load (B4 over the link)
			for peer in $(split "$B5_PEERS"); do
				id=B5-$peer-rtt$rtt-r$run
				load_migrate "$id" "$peer" "$len" "$B5_LOAD_JOBS" "$B5_PRE" "$B5_POST" 5
				tlim=$LM_T
				[ "$tlim" = null ] && tlim=5
				record --arg phase B5 --arg kind load --arg peer "$peer" \
					--argjson rtt_ms "$rtt" --argjson rtt_measured_ms "$B5_RTT_MEAS" \
					--argjson run "$run" --argjson ok "$LM_OK" \
					--argjson jobs "$B5_LOAD_JOBS" --argjson bytes "$((len * 512))" \
					--argjson time_to_synced_s "$LM_T" \
					--argjson iops_during "$(series_mean "$id" 0 "$tlim")" \
					--argjson iops_after "$(series_mean "$id" "$(fsub "$tlim" -0.5)" 1e9)" \
					--argjson iops_before "$(series_mean "$id" "$(fsub 0.5 "$B5_PRE")" 0)" \
					--argjson dst_flushes "$LM_DSTFL" \
					--argjson guest_flushes "$(jf "$LM_FIO" '.jobs[0].sync.total_ios')" \
					--argjson sync_p99_us "$(jf "$LM_FIO" '(.jobs[0].sync.lat_ns.percentile["99.000000"] // null) | if . then ./1000 else null end')" \
					'$ARGS.named'
				log "B5 ${rtt}ms load $peer run $run: $(tail -n 1 "$REC" | jq -c 'del(.phase, .peer, .run, .kind)')"
			done
		done
	done
	nbd_cleanup
	unset -f flush_count dm_remove
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
	log "B6: scale $B6_SCALE, $B6_CLIENTS clients, ${B6_RUNTIME}s per run, $B6_RUNS runs"
	for d in $(split "$DELAYS"); do
		set_delay "$d"
		for ((run = 1; run <= B6_RUNS; run++)); do
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
case ,$PHASES, in
*,B5,*) log "B5: round trips $B5_RTTS ms, ${B5_SIZE_MB} MiB, runs $B5_RUNS, fio ${B5_RUNTIME}s, jobs $B5_JOBS, copy_rate $B5_RATE KiB/s, copy_jobs $B5_COPY_JOBS, load jobs $B5_LOAD_JOBS" ;;
esac
# B5 has devices of its own: bsrc/bdst only for the other phases
if [ -n "$(split "$PHASES" | tr ' ' '\n' | grep -vx 'B5')" ]; then
	setup_devices
else
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	dmsetup targets | grep -q '^flushmirror ' || { log "FATAL: no flushmirror target"; exit 1; }
fi
for ph in $(split "$PHASES"); do
	log "=== $ph"
	case $ph in
	B1) phase_fio B1 ;;
	B2) phase_fio B2 ;;
	B3) phase_b3 ;;
	B4) phase_b4 ;;
	B5) phase_b5 ;;
	B6) phase_b6 ;;
	*) log "unknown phase $ph" ;;
	esac
done
dmsetup remove_all
log "bench guest: done"
