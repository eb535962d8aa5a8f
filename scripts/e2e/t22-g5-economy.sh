#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t22-g5-economy: G5 flush economy with policy generation, counted twice:
# from the status fields (guest_flushes, dest_flushes) and from the
# destination's own stat flush counter (null_blk with a write-back cache).
#  (a) synced, fsync with no new writes: no destination flush
#  (b) several concurrent fsyncing fio jobs: fewer destination flushes than
#      guest flushes (ratio reported); then coalescing counted exactly:
#      rounds of one write and concurrent guest flushes, the destination
#      behind a dm-delay that holds its flushes, so that the flushes of a
#      round can only be saved by sharing the one in flight; policy always
#      (no coalescing) must fail the same check
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

# ---- (c) first, on a fresh device: a whole copy phase under fsync load.
# Every sample while copying must show no destination flush (status and
# stat); the exact count at the transition is checked in the second run,
# where the load stops just before the end (after synced the load's own
# fsyncs legitimately flush the destination).
df_stat0=$(dfl)
# 8 s of copying under UML; 16 s on the Debian guest, where a status
# sample under this load takes longer (at least 5 samples are wanted)
RATE_C=4096
grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null || RATE_C=2048
fm_create fme $S $D 64 copy_rate $RATE_C copy_jobs 2 || die "cannot create flushmirror"
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
expect b-fio-fewer-dest-flushes "$df" -lt "$gf"
# the block layer may merge two destination flushes in flight at once
# (blk-flush), so the device can count fewer than the target issued; but
# it must count some: these jobs wrote
if [ "$sf" -ge 1 ] && [ "$sf" -le "$df" ]; then
	pass b-fio-stat-within-status
else
	fail b-fio-stat-within-status "destination stat $sf flushes, status $df: expected 1 <= stat <= status"
fi
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

# ---- (b) coalescing counted exactly.  CO_ROUNDS rounds, each: one 4 KiB
# write (completed), then CO_JOBS threads released together call fsync.
# Every guest flush of a round arrives after a write completed since the
# last destination flush (WF < FR <= WM): none can be saved by an earlier,
# completed flush.  The first issues a destination flush, which dm-delay
# holds CO_MS; the others arrive while it is in flight, issued at WM >= FR,
# and must wait for it instead of issuing their own (SPEC 2).  So: exactly
# one destination flush per round, in status and at the destination's stat
# counter (one at a time: nothing for the block layer to merge), CO_JOBS
# guest flushes per round, and most guest flushes took about CO_MS (they
# waited for a flush they did not issue, rather than finding it done).
CO_JOBS=6 CO_ROUNDS=8 CO_MS=300
cat >$E2E_TMP/rounds.py <<'PYEOF'
import mmap, os, sys, threading, time
dev, jobs, rounds, slow_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
wfd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
buf.write(os.urandom(4096))
fds = [os.open(dev, os.O_RDONLY) for _ in range(jobs)]
start = threading.Barrier(jobs + 1)
done = threading.Barrier(jobs + 1)
lat = []
def flusher(j):
    for r in range(rounds):
        start.wait()
        t = time.monotonic()
        os.fsync(fds[j])
        lat.append(time.monotonic() - t)
        done.wait()
ts = [threading.Thread(target=flusher, args=(j,)) for j in range(jobs)]
for t in ts:
    t.start()
for r in range(rounds):
    os.pwrite(wfd, buf, (2048 + r) * 4096)
    start.wait()
    done.wait()
for t in ts:
    t.join()
print(sum(1 for x in lat if x >= slow_s), len(lat),
      int(min(lat) * 1000), int(max(lat) * 1000))
PYEOF
dm_remove fme
N=$(dev_sectors $S)
dm_create fme_dly "0 $N delay $D 0 0 $D 0 0 $D 0 $CO_MS" ||
	die "cannot create the dm-delay under the destination"
# the legs are equal (synced, then removed: switchover flush): nosync
fm_create fme $S /dev/mapper/fme_dly 64 nosync || die "cannot create flushmirror over dm-delay"
wait_phase fme synced 10 || fail b-coalesce-synced "$ST_RAW"
# dm-delay status: reads, writes, flushes it holds now
dly_flushes() { dmsetup status fme_dly | awk '{ print $6 + 0 }'; }
# coalesce_rounds: sets CO_GF CO_DF CO_SF (deltas) CO_SLOW CO_N CO_LAT
coalesce_rounds() {
	local i out s0
	for ((i = 0; i < 50; i++)); do
		[ "$(dly_flushes)" -eq 0 ] && break
		sleep 0.1
	done
	fm_status fme; CO_GF=$ST_GF CO_DF=$ST_DF; s0=$(dfl)
	out=$(/usr/bin/python3 $E2E_TMP/rounds.py $M $CO_JOBS $CO_ROUNDS \
		"$(awk -v m=$CO_MS 'BEGIN { print m / 2000 }')" 2>&1)
	set -- $out
	CO_SLOW=${1:-0} CO_N=${2:-0} CO_LAT="min ${3:-?} ms, max ${4:-?} ms"
	fm_status fme
	CO_GF=$((ST_GF - CO_GF)) CO_DF=$((ST_DF - CO_DF)) CO_SF=$(($(dfl) - s0))
	[ "$CO_N" -eq $((CO_JOBS * CO_ROUNDS)) ] || info "rounds.py: $out"
}
# coalesced: the check proper (exactly one destination flush per round)
coalesced() {
	[ "$CO_DF" -eq "$CO_ROUNDS" ] && [ "$CO_SF" -eq "$CO_ROUNDS" ]
}
coalesce_rounds
info "(b) $CO_ROUNDS rounds x $CO_JOBS flushes: guest_flushes +$CO_GF, dest_flushes +$CO_DF, dest stat +$CO_SF; $CO_SLOW of $CO_N fsyncs waited >= $((CO_MS / 2)) ms ($CO_LAT)"
expect b-coalesce-guest-flushes "$CO_GF" -eq $((CO_JOBS * CO_ROUNDS))
expect b-fewer-dest-flushes "$CO_DF" -eq "$CO_ROUNDS" \
	"one destination flush per round of $CO_JOBS concurrent guest flushes, each with a new write before it"
if [ "$CO_SF" -ge "$CO_ROUNDS" ] && [ "$CO_SF" -eq "$CO_DF" ]; then
	pass b-stat-matches-status
else
	fail b-stat-matches-status "destination stat +$CO_SF, status +$CO_DF: expected equal and >= $CO_ROUNDS"
fi
# most of them waited for the round's flush: saved by coalescing, not found done
expect b-coalesced-flushes-waited "$CO_SLOW" -ge $((CO_ROUNDS + CO_ROUNDS * (CO_JOBS - 1) / 2)) \
	"fsyncs that waited for the destination flush in flight"
check_inv b-coalesce-invariants fme
# the check bites: policy always issues a destination flush per guest flush
timeout 10 dmsetup message fme 0 flush_policy always
coalesce_rounds
timeout 10 dmsetup message fme 0 flush_policy generation
info "(b) always: guest_flushes +$CO_GF, dest_flushes +$CO_DF, dest stat +$CO_SF"
if coalesced; then
	fail b-coalesce-check-bites "policy always passes the coalescing check: dest_flushes +$CO_DF, stat +$CO_SF"
else
	pass b-coalesce-check-bites
fi
dm_remove fme
