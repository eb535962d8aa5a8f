#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 600
# t24-g6-faults: G6 isolation.  The destination sits behind a dm-linear
# ("fmx_dl") that is switched to dm-flakey (error_writes, or no feature:
# every I/O fails), or to the error target, during the copy and after
# synced, and a destination null_blk that is powered off while mirroring.
# In every case: the guest fio (with verify) sees no error, the phase goes
# to failed, the dm event fires (dmsetup wait), dest_errors > 0; once the
# destination is healthy again, "retry" returns to synced and the legs are
# equal.  dm-flakey drop_writes (writes silently ignored, reported done)
# cannot be seen by any mirror: the guest is unaffected, the legs differ,
# and a fresh copy repairs it.  dm-dust under the destination shows that
# guest reads never reach it.  Last, errors on the source (dm-flakey write
# errors, dm-dust read errors) do reach the guest, and a region whose
# source write failed is copied again.  Each injected fault prints
# "STAT: faults=1 guest_errors=<fio errors>".
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=32
N=$((MIB * 2048))
nb_create fmx_src $MIB || die "cannot create fmx_src"
nb_create fmx_dst $MIB || die "cannot create fmx_dst"
S=/dev/fmx_src D=/dev/fmx_dst L=/dev/mapper/fmx_dl M=/dev/mapper/fmx
dd if=/dev/urandom of=$S bs=1M count=$MIB oflag=direct status=none

LINEAR="0 $N linear $D 0"
dm_create fmx_dl "$LINEAR" || die "cannot create the destination linear"
# relink: point fmx_dl at the power-cycled disk.  The new disk has the same
# dev_t as the dead one, and dm reuses an open table device with the same
# dev_t, so the old one must be dropped first (an error table in between).
relink() { dm_reload fmx_dl "0 $N error" && dm_reload fmx_dl "$LINEAR"; }

# fault SCENARIO TABLE WHEN: WHEN is copying or synced
fault() {
	local sc=$1 table=$2 when=$3 ev rc e r
	info "=== $sc: destination -> '$table' while $when"
	if [ "$when" = copying ]; then
		fm_create fmx $S $L 128 copy_rate 2048 || { fail "$sc-create" "rejected"; return; }
		wait_phase fmx copying 5 ||
			{ fail "$sc-copying-first" "$ST_RAW"; dm_remove fmx; return; }
	else
		fm_create fmx $S $L 128 || { fail "$sc-create" "rejected"; return; }
		wait_phase fmx synced 60 || { fail "$sc-synced-first" "$ST_RAW"; dm_remove fmx; return; }
	fi
	# guest load: time based random writes verified by backlog, plus a
	# fixed area written fully and verified at the end
	fio_bg $sc --name=rand "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
		--offset=0 --size=24M --time_based --runtime=12 --verify=crc32c \
		--verify_backlog=256 --randseed=41 \
		--name=fixed "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
		--offset=24M --size=8M --verify=crc32c --do_verify=1 --randseed=42
	local FIO=$BG_PID
	sleep 2
	# the fault must come in the phase the scenario is named after
	fm_status fmx
	if [ "$ST_PHASE" = "$when" ]; then
		pass "$sc-inject-while-$when"
	else
		fail "$sc-inject-while-$when" "$ST_RAW"
	fi
	ev=$(dm_events fmx)
	if ! dm_reload fmx_dl "$table"; then
		fail "$sc-inject" "cannot load '$table' on fmx_dl"
		wait $FIO
		dm_remove fmx
		return
	fi
	# the event fires and the phase is failed
	if timeout 30 dmsetup wait fmx "$ev" >/dev/null 2>&1; then
		pass "$sc-event"
	else
		fail "$sc-event" "dmsetup wait fmx $ev: no event in 30 s"
	fi
	check_phase "$sc-phase-failed" fmx failed 30
	fm_status fmx
	expect "$sc-dest-errors" "$ST_DE" -gt 0 "$ST_RAW"
	wait $FIO
	rc=$?
	e=$(fio_errors $sc)
	r=$(fio_field $sc '.read.total_ios')
	echo "STAT: faults=1 guest_errors=$e"
	if [ $rc -eq 0 ] && [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ]; then
		pass "$sc-guest-sees-no-error"
	else
		fail "$sc-guest-sees-no-error" "fio rc=$rc err=$e verify-reads=$r $(fio_stderr $sc)"
	fi
	fm_status fmx
	[ "$ST_PHASE" = failed ] && pass "$sc-stays-failed" || fail "$sc-stays-failed" "$ST_RAW"
	check_inv "$sc-invariants-failed" fmx
	# retry on a still-broken destination must not bring it back to synced
	timeout 10 dmsetup message fmx 0 retry
	sleep 2
	fm_status fmx
	if [ "$ST_PHASE" = synced ]; then
		fail "$sc-retry-broken-stays-failed" "synced with a broken destination: $ST_RAW"
	else
		pass "$sc-retry-broken-stays-failed"
	fi
	check_phase "$sc-retry-broken-fails-again" fmx failed 30
	# heal, retry
	if ! dm_reload fmx_dl "$LINEAR"; then
		fail "$sc-heal" "cannot restore the linear"
		dm_remove fmx
		return
	fi
	ev=$(dm_events fmx)
	check "$sc-retry-accepted" timeout 10 dmsetup message fmx 0 retry
	check_phase "$sc-retry-synced" fmx synced 90
	if timeout 5 dmsetup wait fmx "$ev" >/dev/null 2>&1; then
		pass "$sc-retry-event"
	else
		fail "$sc-retry-event" "no event on failed -> synced"
	fi
	check "$sc-equal-after-retry" dcmp $S $D
	fio_run ${sc}v --name=fixed "${FIO_COMMON[@]}" --filename=$D \
		--rw=randwrite --offset=24M --size=8M --verify=crc32c \
		--randseed=42 --verify_only
	check_fio "$sc-dest-has-guest-data" ${sc}v $?
	check_inv "$sc-invariants-end" fmx
	dm_remove fmx || fail "$sc-remove" "cannot remove fmx"
}

fault flakey-copying "0 $N flakey $D 0 0 5 1 error_writes" copying
fault flakey-synced "0 $N flakey $D 0 0 5 1 error_writes" synced
fault error-synced "0 $N error" synced
fault error-copying "0 $N error" copying
fault flakey-allio-copying "0 $N flakey $D 0 0 5 0" copying
fault flakey-allio-synced "0 $N flakey $D 0 0 5 0" synced

# ---- dm-flakey drop_writes after synced: the destination acknowledges
# writes it never stores.  No mirror can see that (dm-raid1 cannot either):
# the guest must be unaffected and read its data from the source; the
# damage is found by a compare before a switchover (Documentation/
# flushmirror.rst, Limitations), and a fresh copy repairs it.
info "=== flakey-drop-synced: destination -> drop_writes while synced"
fm_create fmx $S $L 128 || die "cannot create fmx"
wait_phase fmx synced 60 || fail flakey-drop-synced-first "$ST_RAW"
dm_reload fmx_dl "0 $N flakey $D 0 0 5 1 drop_writes" ||
	fail flakey-drop-inject "cannot load drop_writes on fmx_dl"
fio_run drop --name=fixed "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--offset=24M --size=8M --verify=crc32c --do_verify=1 --randseed=43
rc=$?
echo "STAT: faults=1 guest_errors=$(fio_errors drop)"
check_fio flakey-drop-guest-sees-no-error drop $rc
fm_status fmx
info "flakey-drop-synced: $ST_RAW"
# the fault was real: what fio wrote is not on the destination
check_not flakey-drop-legs-differ dcmp $S $D -s
dm_reload fmx_dl "$LINEAR" || fail flakey-drop-heal "cannot restore the linear"
dm_remove fmx
fm_create fmx $S $L 128 || die "cannot recreate fmx"
check_phase flakey-drop-fresh-copy-synced fmx synced 60
check flakey-drop-equal-after-fresh-copy dcmp $S $D
dm_remove fmx

# ---- dm-dust under the destination: guest reads never go there (G1), so
# bad destination blocks cannot hurt the guest while it reads
info "=== dust-dest: bad blocks on the destination, guest reads"
if ! grep -q '^dust ' <<<"$(dmsetup targets)"; then
	skip dust-dest-reads "no dm-dust target in this kernel"
else
	dm_reload fmx_dl "0 $N dust $D 0 512" || die "cannot load dust on fmx_dl"
	fm_create fmx $S $L 128 || die "cannot create fmx"
	wait_phase fmx synced 60 || fail dust-dest-synced-first "$ST_RAW"
	for b in 100 101 4000 9000; do
		timeout 10 dmsetup message fmx_dl 0 addbadblock $b
	done
	timeout 10 dmsetup message fmx_dl 0 enable
	# the bad blocks bite when read directly
	check_not dust-dest-bad-block-fails dd if=$L of=/dev/null bs=512 skip=4000 \
		count=1 iflag=direct status=none
	ok=1
	for b in 100 101 4000 9000; do
		dd if=$M of=/dev/null bs=512 skip=$b count=1 iflag=direct status=none || ok=0
	done
	echo "STAT: faults=1 guest_errors=$((1 - ok))"
	[ $ok = 1 ] && pass dust-dest-guest-reads-ok ||
		fail dust-dest-guest-reads-ok "a guest read reached the destination"
	check_phase dust-dest-stays-synced fmx synced 5
	timeout 10 dmsetup message fmx_dl 0 disable
	dm_remove fmx
	dm_reload fmx_dl "$LINEAR" || die "cannot restore the linear"
fi

# ---- the destination disappears while mirroring (null_blk powered off),
# first write-through, then with a volatile cache (its unflushed content is
# lost with the power: the target must not believe those regions copied)
vanish() {	# vanish NAME CACHE_MIB load|quiet
	local sc=$1 cache=$2 mode=$3 ev rc
	info "=== $sc: destination null_blk (cache_size=$cache) powered off while synced, $mode"
	nb_power fmx_dst 0
	echo "$cache" >$NB_CFG/fmx_dst/cache_size
	nb_power fmx_dst 1 && wait_bdev $D 10
	relink || { fail "$sc-setup" "cannot reload the linear"; return; }
	fm_create fmx $S $L 128 || { fail "$sc-create" "rejected"; return; }
	wait_phase fmx synced 60 || { fail "$sc-synced-first" "$ST_RAW"; dm_remove fmx; return; }
	# fresh pages: with a cache, what fio writes now is volatile on the
	# destination until a flush
	fresh $M 0 $((24 * 1048576)) || fail $sc-discard "discard failed"
	fio_bg $sc --name=rand "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
		--offset=0 --size=24M --time_based --runtime=5 --verify=crc32c \
		--verify_backlog=256 --randseed=51
	local FIO=$BG_PID
	if [ $mode = load ]; then
		sleep 2
	else
		# quiet: the load ends, then the destination silently loses
		# power (and its cache); one later write finds it gone
		wait $FIO
	fi
	ev=$(dm_events fmx)
	nb_power fmx_dst 0
	[ $mode = quiet ] && dd if=/dev/urandom of=$M bs=4k count=1 seek=$((30 * 256)) \
		oflag=direct conv=notrunc status=none
	if timeout 30 dmsetup wait fmx "$ev" >/dev/null 2>&1; then
		pass $sc-event
	else
		fail $sc-event "no event"
	fi
	check_phase $sc-phase-failed fmx failed 30
	wait $FIO
	rc=$?
	echo "STAT: faults=1 guest_errors=$(fio_errors $sc)"
	check_fio $sc-guest-sees-no-error $sc $rc
	nb_power fmx_dst 1 && wait_bdev $D 10
	# the linear still refers to the dead disk: point it at the new one
	if relink; then
		check $sc-retry-accepted timeout 10 dmsetup message fmx 0 retry
		check_phase $sc-retry-synced fmx synced 90
		fm_status fmx
		info "$sc after retry: $ST_RAW"
		if dcmp $S $D -s; then
			pass $sc-equal-after-retry
		else
			fail $sc-equal-after-retry "synced but the legs differ: $(dcmp $S $D 2>&1 | head -n 1)"
		fi
	else
		fail $sc-heal "cannot reload the linear on the new disk"
	fi
	dm_remove fmx
}
vanish vanish-writethrough 0 load
vanish vanish-writeback $((MIB * 2)) load
vanish vanish-writeback-quiet $((MIB * 2)) quiet

# ---- write errors on the source reach the guest, and the region is not
# left marked in sync: source behind a linear switched to flakey
info "=== source write errors"
# the source gets a write-back cache, or the block layer drops the flushes
# to it (and to the flakey above it) before they can fail
nb_power fmx_src 0 && echo $((MIB * 2)) >$NB_CFG/fmx_src/cache_size &&
	nb_power fmx_src 1 && wait_bdev $S 10 || fail source-werr-setup "cannot give the source a cache"
dm_create fmx_sl "0 $N linear $S 0" || die "cannot create source linear"
SL=/dev/mapper/fmx_sl
relink || fail source-werr-setup "cannot relink the destination"
fm_create fmx $SL $L 128 && wait_phase fmx synced 60 ||
	fail source-werr-synced-first "$ST_RAW"
dm_reload fmx_sl "0 $N flakey $S 0 0 5 1 error_writes"
if dd if=/dev/urandom of=$M bs=4k count=1 seek=5000 oflag=direct conv=notrunc status=none 2>/dev/null; then
	fail source-write-error-reaches-guest "write to a failing source succeeded"
else
	pass source-write-error-reaches-guest
fi
if dd if=/dev/null of=$M conv=fsync,notrunc status=none 2>/dev/null; then
	fail source-flush-error-reaches-guest "flush of a failing source succeeded"
else
	pass source-flush-error-reaches-guest
fi
dm_reload fmx_sl "0 $N linear $S 0"
fm_status fmx
info "after source errors: $ST_RAW"
check_phase source-werr-back-to-synced fmx synced 60
check source-werr-legs-equal dcmp $S $D
check_inv source-werr-invariants fmx
dm_remove fmx

# ---- errors on the source reach the guest (dm-dust under the source)
info "=== source errors"
if ! grep -q '^dust ' <<<"$(dmsetup targets)"; then
	# Debian's 6.1 kernel ships no dm-dust
	skip source-read-error-reaches-guest "no dm-dust target in this kernel"
else
	dm_create fmx_sd "0 $N dust $S 0 512" || die "cannot create dust"
	SD=/dev/mapper/fmx_sd
	fm_create fmx $SD $L 128 && wait_phase fmx synced 60 ||
		fail source-rerr-synced-first "$ST_RAW"
	timeout 10 dmsetup message fmx_sd 0 addbadblock 1000
	timeout 10 dmsetup message fmx_sd 0 enable
	if dd if=$M of=/dev/null bs=512 skip=1000 count=1 iflag=direct status=none 2>/dev/null; then
		fail source-read-error-reaches-guest "read of a bad source block succeeded"
	else
		pass source-read-error-reaches-guest
	fi
	check source-good-blocks-readable dd if=$M of=/dev/null bs=512 skip=2000 count=8 iflag=direct status=none
	timeout 10 dmsetup message fmx_sd 0 disable
	check_inv source-error-invariants fmx
	dm_remove fmx
fi
