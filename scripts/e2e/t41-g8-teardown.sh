#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t41-g8-teardown: issue 9, defect 3 (teardown windows).  Removing a device
# that is not suspended runs its presuspend, postsuspend and destructor in
# the remover's thread; every completion still running on another CPU must
# be done with the target before that thread may free it.
#  a. remove-after-fsync: a guest fsync is answered by a destination
#     flush's completion, and the test-only switch
#     debug_flush_endio_delay_ms makes that completion end 4 s later,
#     from a work item (it still holds the target until then); the
#     writer removes the device in between.  The remove must succeed and
#     wait for it (the premise: in at least one round the remove took 1 s
#     longer than the one without the switch), the fsync must have
#     issued a destination flush (the other premise), and the kernel log
#     stays clean: a use-after-free is a KASAN report on the debug kernel
#     (run-debian.sh -x; one CPU cannot reach the window, and the part is
#     skipped).
#  b. remove-while-copying: remove (unsuspended) in the middle of a copy
#     with several kcopyd jobs running, on a destination whose writes
#     complete from dm-delay's workqueue; the removal waits for the jobs.
#  c. remove-while-failed: remove after the destination failed, with
#     the copy stopped and guest writes going to the source only.
# Each round checks that the device is gone and the kernel log.
# Made to fail once: with fm_dest_flush_endio() releasing dflush_bios before
# its last touch of the target (the defect's order), (a) on the debug
# kernel reported "BUG: KASAN: slab-use-after-free" in the deferred end
# (fm_debug_tail_fn), and its removes took 0.8-1.2 s; with the fix they
# took 4.3-4.5 s (the baseline 0.9 s) and the log stayed clean.
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
	# round 0 has the switch off: how long a remove takes here
	bad=0 noflush=0 waited=0 base=0
	for ((i = 0; i <= ROUNDS; i++)); do
		nb_create f41s $MIB || die "cannot create f41s"
		nb_create f41d $MIB 4 || die "cannot create f41d"
		# (a 1 ms dm-delay: the destination's completions run in
		# dm-delay's worker, not in the writer's thread)
		dm_create f41dl "0 $((MIB * 2048)) delay /dev/f41d 0 1" ||
			die "cannot create f41dl"
		fm_create f41 /dev/f41s /dev/mapper/f41dl 256 || die "cannot create f41"
		wait_phase f41 synced 60 || die "round $i: not synced (${ST_RAW:-})"
		df0=$(flush_count /dev/f41d)
		[ "$i" = 0 ] || echo 4000 >"$PARAM"
		t0=$(date +%s%N)
		dd if=/dev/urandom of=/dev/mapper/f41 bs=4k count=1 seek=$((i * 7)) \
			oflag=direct conv=fsync status=none || bad=$((bad + 1))
		info "round $i: the write and fsync took $((($(date +%s%N) - t0) / 1000000)) ms"
		# the completion that answered the fsync has not ended yet
		t0=$(date +%s%N)
		if ! timeout 60 dmsetup remove f41; then
			bad=$((bad + 1))
			info "round $i: dmsetup remove failed"
		fi
		ms=$((($(date +%s%N) - t0) / 1000000))
		info "round $i: dmsetup remove took $ms ms"
		# the premise: a remove had to wait for the deferred end of the
		# completion (1 s longer than the one without the switch)
		if [ "$i" = 0 ]; then
			base=$ms
		elif [ "$ms" -ge $((base + 1000)) ]; then
			waited=$((waited + 1))
		fi
		echo 0 >"$PARAM"
		dm_exists f41 && { bad=$((bad + 1)); info "round $i: f41 still exists"; }
		[ "$(flush_count /dev/f41d)" -gt "$df0" ] || noflush=$((noflush + 1))
		dm_remove f41
		dm_remove f41dl
		nb_destroy f41s
		nb_destroy f41d
		FM_NBS=()
	done
	expect a-premise-dest-flushed "$noflush" -eq 0 \
		"in $noflush of $((ROUNDS + 1)) rounds the fsync issued no destination flush (the path under test was not reached)"
	expect a-premise-remove-waited "$waited" -ge 1 \
		"no remove took 1 s longer than the one without the switch ($base ms): the window was not reached"
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
