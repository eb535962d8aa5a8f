#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t22-g5-economy: G5 flush economy with policy generation, counted twice:
# from the status fields (guest_flushes, dest_flushes) and from the
# destination's own stat flush counter (null_blk with a write-back cache).
#  (a) synced, fsync with no new writes: no destination flush
#  (b) several concurrent fsyncing fio jobs: fewer destination flushes than
#      guest flushes (ratio reported)
#  (c) a whole copy phase under an fsync-heavy load: exactly one
#      destination flush, the one at the transition to synced
#  (d) policy always: at least one destination flush per guest flush
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=32
# timer completion (50 us): I/O is asynchronous, so guest flushes overlap
export NB_IRQMODE=2 NB_COMPLETION_NSEC=50000
nb_create fme_src $MIB 64 || die "cannot create fme_src"
nb_create fme_dst $MIB 64 || die "cannot create fme_dst"
S=/dev/fme_src D=/dev/fme_dst M=/dev/mapper/fme

dfl() { flush_count $D; }
fsync_dev() { dd if=/dev/null of=$1 conv=fsync,notrunc status=none; }

# ---- (c) first, on a fresh device: a whole copy phase under fsync load.
# Every sample while copying must show no destination flush (status and
# stat); the exact count at the transition is checked in the second run,
# where the load stops just before the end (after synced the load's own
# fsyncs legitimately flush the destination).
df_stat0=$(dfl)
fm_create fme $S $D 64 copy_rate 4096 copy_jobs 2 || die "cannot create flushmirror"
fio_bg copyload --name=cl --filename=$M "${FIO_COMMON[@]}" \
	--rw=randwrite --numjobs=4 --fsync=1 --time_based --runtime=600 \
	--size=${MIB}M
LOAD=$BG_PID
bad= last_copying= n=0
end=$((SECONDS + 150))
while [ $SECONDS -lt $end ]; do
	# the flush count first: if the status read after it still shows a
	# region to copy, no transition flush can be in that count
	st=$(dfl)
	fm_status fme
	[ "$ST_PHASE" = copying ] || break
	# every region copied: the transition flush may be in flight while
	# the phase still says copying (SPEC 2); that flush is checked below
	[ "$ST_COPIED" -lt "$ST_TOTAL" ] || break
	n=$((n + 1))
	last_copying="$ST_RAW stat+$((st - df_stat0))"
	if [ "$ST_DF" -ne 0 ] || [ "$st" -ne "$df_stat0" ]; then
		bad="dest flush while copying: $last_copying"
		break
	fi
	fm_inv_ok fme || bad="invariants: $INV_ERR"
	sleep 0.2
done
[ -n "$bad" ] || [ "$ST_PHASE" != copying ] || wait_phase fme synced 30
phase=$ST_PHASE first_synced=$ST_RAW
kill $LOAD 2>/dev/null; wait $LOAD 2>/dev/null
info "(c) $n samples while copying, last: $last_copying"
info "(c) first sample after: $first_synced"
if [ -n "$bad" ]; then
	fail c-no-dest-flush-while-copying "$bad"
elif [ "$phase" != synced ] || [ "$n" -lt 5 ]; then
	fail c-no-dest-flush-while-copying "phase $phase after $n copying samples"
else
	pass c-no-dest-flush-while-copying
	set -- $last_copying
	expect c-guest-flushes-while-copying "${10}" -gt 20
	set -- $first_synced
	expect c-dest-flush-at-transition "${11}" -ge 1
fi

# the stat counter has to be read without load after the transition:
# rerun the copy phase with the load stopped right at synced
dm_remove fme
df_stat0=$(dfl)
fm_create fme $S $D 64 copy_rate 4096 copy_jobs 2 || die "cannot create flushmirror"
fio_bg copyload2 --name=cl --filename=$M "${FIO_COMMON[@]}" \
	--rw=randwrite --numjobs=4 --fsync=1 --time_based --runtime=600 \
	--size=${MIB}M
LOAD=$BG_PID
sleep 3
fm_status fme
df_mid_stat=$(dfl)
info "(c) copying under fsync load: $ST_RAW; dest stat flushes +$((df_mid_stat - df_stat0))"
expect c-no-dest-flush-while-copying-stat $((df_mid_stat - df_stat0)) -eq 0
expect c-no-dest-flush-while-copying-status "$ST_DF" -eq 0
kill $LOAD 2>/dev/null; wait $LOAD 2>/dev/null
fm_status fme
gf_load=$ST_GF
timeout 10 dmsetup message fme 0 copy_rate 0
if wait_phase fme synced 120; then
	df_stat1=$(dfl)
	info "(c) synced: $ST_RAW; dest stat flushes +$((df_stat1 - df_stat0))"
	expect c-guest-flushes-during-copy-2 "$gf_load" -gt 20
	expect c-one-dest-flush-stat $((df_stat1 - df_stat0)) -eq 1
	expect c-one-dest-flush-status-2 "$ST_DF" -eq 1
else
	fail c-synced-2 "$ST_RAW"
fi

# ---- (a) synced, fsync without new writes
dd if=/dev/urandom of=$M bs=4k count=8 seek=100 oflag=direct conv=fsync,notrunc status=none
fm_status fme; gf0=$ST_GF df0=$ST_DF; s0=$(dfl)
for i in 1 2 3 4 5; do fsync_dev $M; done
fm_status fme; s1=$(dfl)
info "(a) 5 fsyncs, no writes: guest_flushes $gf0 -> $ST_GF, dest_flushes $df0 -> $ST_DF, dest stat +$((s1 - s0))"
expect a-guest-flushes-counted $((ST_GF - gf0)) -ge 5
expect a-no-dest-flush-status "$ST_DF" -eq "$df0"
expect a-no-dest-flush-stat "$s1" -eq "$s0"
# ... and one write makes the next fsync flush the destination once
dd if=/dev/urandom of=$M bs=4k count=1 seek=200 oflag=direct conv=notrunc status=none
fsync_dev $M; fsync_dev $M
fm_status fme; s2=$(dfl)
expect a-write-then-fsync-one-dest-flush $((ST_DF - df0)) -eq 1
expect a-write-then-fsync-one-dest-flush-stat $((s2 - s1)) -eq 1
check_inv a-invariants fme
expect a-WF-eq-WM "$ST_WF" -eq "$ST_WM" "$ST_RAW"

# ---- (b) concurrent fsyncing jobs
JOBS=8
fm_status fme; gf0=$ST_GF df0=$ST_DF; s0=$(dfl)
fio_run conc --name=conc --filename=$M "${FIO_COMMON[@]}" --rw=randwrite \
	--numjobs=$JOBS --fsync=1 --size=${MIB}M --time_based --runtime=10
rc=$?
check_fio b-fio-ok conc $rc
fm_status fme; s1=$(dfl)
gf=$((ST_GF - gf0)) df=$((ST_DF - df0)) sf=$((s1 - s0))
fio_sync=$(fio_field conc '.sync.total_ios')
info "(b) $JOBS jobs fsync=1: fio fsyncs $fio_sync, guest_flushes $gf, dest_flushes $df, dest stat $sf"
if [ "$gf" -gt 0 ]; then
	info "(b) destination flushes per guest flush: $(awk -v d=$df -v g=$gf 'BEGIN{printf "%.3f", d/g}')"
fi
expect b-guest-flushes-seen "$gf" -ge "${fio_sync:-1}"
expect b-fewer-dest-flushes "$df" -lt "$gf"
expect b-stat-matches-status "$sf" -le "$df"
check_inv b-invariants fme

# ---- (d) policy always, side by side
timeout 10 dmsetup message fme 0 flush_policy always
fm_status fme; gf0=$ST_GF df0=$ST_DF; s0=$(dfl)
for i in 1 2 3 4 5; do fsync_dev $M; done
fm_status fme; s1=$(dfl)
info "(d) always, 5 fsyncs: guest +$((ST_GF - gf0)), dest +$((ST_DF - df0)), dest stat +$((s1 - s0))"
expect d-always-dest-ge-guest $((ST_DF - df0)) -ge $((ST_GF - gf0))
expect d-always-stat $((s1 - s0)) -ge 5
fm_status fme; gf0=$ST_GF df0=$ST_DF
fio_run conc2 --name=conc --filename=$M "${FIO_COMMON[@]}" --rw=randwrite \
	--numjobs=$JOBS --fsync=1 --size=${MIB}M --time_based --runtime=10
check_fio d-fio-ok conc2 $?
fm_status fme
info "(d) always, $JOBS jobs: guest +$((ST_GF - gf0)), dest +$((ST_DF - df0))"
expect d-always-concurrent-dest-ge-guest $((ST_DF - df0)) -ge $((ST_GF - gf0))
timeout 10 dmsetup message fme 0 flush_policy generation
check_inv d-invariants fme
