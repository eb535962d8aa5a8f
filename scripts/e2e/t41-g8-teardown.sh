#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t41-g8-teardown: issue 9, defect 3 (teardown windows).  Removing a device
# that is not suspended runs its presuspend, postsuspend and destructor in
# the remover's thread; every completion still running on another CPU must
# be done with the target before that thread may free it.
#  a. remove-after-fsync: a guest fsync is answered by a destination
#     flush's completion, which then still holds the target; the test-only
#     switch debug_flush_endio_delay_ms makes that completion spin on after
#     it answered, so the writer's "dmsetup remove" lands while it runs (on
#     two CPUs: the run on the KASAN/lockdep kernel, run-debian.sh -x).  The
#     remove must succeed and wait; a use-after-free is a KASAN report,
#     which this test's kernel-log check fails on.
#  b. remove-while-copying: remove (unsuspended) in the middle of a copy
#     with several kcopyd jobs running, on a destination whose writes
#     complete from dm-delay's workqueue; the removal waits for the jobs.
#  c. remove-while-failed: remove after the destination failed, with
#     the copy stopped and guest writes going to the source only.
# Each round checks that the device is gone, that the destination flush
# this round depends on was issued (the premise), and the kernel log.
# Made to fail once: with fm_dest_flush_endio() releasing dflush_bios before
# it completed the guest flushes (the order of the defect), round (a) on
# the debug kernel reported "BUG: KASAN: slab-use-after-free".
# T41_ROUNDS (default 4) sets the rounds of (a).
. "$(dirname "$0")/lib.sh"
e2e_setup

ROUNDS=${T41_ROUNDS:-4}
PARAM=/sys/module/dm_flushmirror/parameters/debug_flush_endio_delay_ms
MIB=16
FM_ATEXIT+=("echo 0 >$PARAM 2>/dev/null")

info "$(nproc) CPU(s)"
# ---- a. remove right after an fsync answered by a running completion
if [ ! -w "$PARAM" ]; then
	skip a-remove-after-fsync "module built without CONFIG_DM_FLUSHMIRROR_DEBUG (no $PARAM)"
elif [ "$(nproc)" -lt 2 ]; then
	# (the completion spins on the only CPU: the remover cannot run
	# before it is done, and the window cannot be reached)
	skip a-remove-after-fsync "one CPU: the window needs two (run-debian.sh -x)"
else
	# round 0 has no spin: how long a remove takes on this kernel
	bad=0 noflush=0 waited=0 base=
	for ((i = 0; i <= ROUNDS; i++)); do
		nb_create f41s $MIB || die "cannot create f41s"
		nb_create f41d $MIB 4 || die "cannot create f41d"
		fm_create f41 /dev/f41s /dev/f41d 256 || die "cannot create f41"
		wait_phase f41 synced 60 || die "round $i: not synced (${ST_RAW:-})"
		df0=$(flush_count /dev/f41d)
		[ "$i" = 0 ] || echo 4000 >"$PARAM"
		dd if=/dev/urandom of=/dev/mapper/f41 bs=4k count=1 seek=$((i * 7)) \
			oflag=direct conv=fsync status=none || bad=$((bad + 1))
		# the completion that answered the fsync is still spinning now
		t0=$(date +%s%N)
		if ! timeout 60 dmsetup remove f41; then
			bad=$((bad + 1))
			info "round $i: dmsetup remove failed"
		fi
		ms=$((($(date +%s%N) - t0) / 1000000))
		info "round $i: dmsetup remove took $ms ms"
		# the premise: a remove had to wait for the spinning completion
		# (1 s longer than the one without the spin)
		if [ "$i" = 0 ]; then
			base=$ms
		elif [ "$ms" -ge $((base + 1000)) ]; then
			waited=$((waited + 1))
		fi
		echo 0 >"$PARAM"
		dm_exists f41 && { bad=$((bad + 1)); info "round $i: f41 still exists"; }
		[ "$(flush_count /dev/f41d)" -gt "$df0" ] || noflush=$((noflush + 1))
		dm_remove f41
		nb_destroy f41s
		nb_destroy f41d
		FM_NBS=()
	done
	expect a-premise-dest-flushed "$noflush" -eq 0 \
		"in $noflush of $((ROUNDS + 1)) rounds the fsync issued no destination flush (the path under test was not reached)"
	expect a-premise-remove-overlapped "$waited" -ge 1 \
		"no remove took 1 s longer than the one without the spin ($base ms): the window was not reached"
	expect a-remove-after-fsync "$bad" -eq 0 "$bad failed steps in $ROUNDS rounds"
fi

# ---- b. remove in the middle of a copy (kcopyd jobs running)
nb_create f41s 64 || die "cannot create f41s"
nb_create f41d 64 || die "cannot create f41d"
dd if=/dev/urandom of=/dev/f41s bs=1M count=64 oflag=direct status=none ||
	die "cannot fill the source"
dm_create f41dl "0 $((64 * 2048)) delay /dev/f41d 0 0 /dev/f41d 0 50" ||
	die "cannot create the delayed destination"
fm_create f41 /dev/f41s /dev/mapper/f41dl 256 copy_jobs 8 ||
	die "cannot create f41"
sleep 1
fm_status f41
info "before the remove: $ST_RAW"
expect b-premise-copying "$ST_PHASE" = copying "phase $ST_PHASE: the copy ended before the remove"
if timeout 120 dmsetup remove f41 && ! dm_exists f41; then
	pass b-remove-while-copying
else
	fail b-remove-while-copying "dmsetup remove failed or left the device"
fi
dm_remove f41dl
nb_destroy f41d

# ---- c. remove while failed, guest writes going to the source only
dm_create f41dl "0 $((64 * 2048)) error" || die "cannot create the failing destination"
fm_create f41 /dev/f41s /dev/mapper/f41dl 256 || die "cannot create f41"
wait_phase f41 failed 30
expect c-premise-failed "$ST_PHASE" = failed "phase $ST_PHASE"
dd if=/dev/urandom of=/dev/mapper/f41 bs=4k count=16 oflag=direct conv=fsync status=none
expect c-guest-writes-ok "$?" -eq 0 "a guest write failed while the destination was failed"
if timeout 60 dmsetup remove f41 && ! dm_exists f41; then
	pass c-remove-while-failed
else
	fail c-remove-while-failed "dmsetup remove failed or left the device"
fi
exit 0
