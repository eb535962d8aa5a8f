#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 600
# t43-nbd-faults: the rest of issue 11's remote destination (t37 has the
# test bed's checks, G2/G3 at 2 ms, G5, G4 with raw writers, G6 while
# synced and G7).  The same bed (nbd-lib.sh): a null_blk with a volatile
# cache (f43d) on the "remote host", exported by nbd-server, connected here
# with nbd-client -timeout $NBD_TIMEOUT (5 s) as /dev/nbdN under a
# dm-linear (f43dl) so that a new connection can be put under the target.
#  rtt      G2/G3 at 0.5 and 10 ms round trip: the copy converges under a
#           verifying fio writer, and with the writer held (suspended) the
#           server's null_blk equals the source; one fio runs from here to
#           the end of the copying part (a table reload starts each copy
#           anew under it) and must end without error
#  copying  G6 while copying (copy_rate 4096 KiB/s), the VM host's link
#           set down under the verifying fio load: failed, no guest error,
#           guest writes go on; link up, the fence, a new connection,
#           scripts/flushmirror retry, copy_rate 0: synced, fio ends
#           without error, the server's null_blk equals the source
#  hang     synced, idle, the link hangs (netem loss 100%, nothing errors):
#           one 4 KiB O_DIRECT write to a copied region is held until the
#           nbd timeout, then completes without error and the phase is
#           failed; a read issued while the write is held completes before
#           it (reads come from the source); a flush issued then completes
#           without error; the next write and flush send nothing to the
#           destination.  The times are printed (STAT: nbd_hang_*_ms).
#           Then link back, the fence, a new connection, retry (dmsetup
#           message): synced and equal
#  ext4     G4 with ext4 on top over NBD (t29's workload and oracle,
#           ext4-workload.py and ext4-check.py): synced, ext4 under an
#           fsync load, the server's null_blk loses its power: no guest
#           error, phase failed, every durable file on the destination
#           alone, e2fsck -fn clean.  Two cuts, policy generation: ext4's
#           default commit (a PREFLUSH|FUA commit block: the nbd device has
#           no FUA, so the block layer sends it as a write and a flush
#           after it, an NBD_CMD_FLUSH the target does not issue) and
#           data=writeback,journal_async_commit (a plain commit block and
#           a separate flush: what the target's destination flushes must
#           carry).  With debug_skip_dest_flush=1 (if the module has it) a
#           cut of the second kind must lose files or leave the fs
#           unclean; the first kind cannot bite over NBD (the FUA's flush)
# T43_BREAK (words, space or comma separated) breaks a step on purpose,
# to see the checks fail:
#  cmp-wrong     rtt: one block written around the target before the cmp
#  notimeout     hang: the connection of the hang made without -timeout
#  noreconnect   copying: the retry on the dead connection (no new one)
#  wrongdev      ext4: the oracle reads a fresh, empty null_blk instead
# Under UML the test skips unless T43_UML=1 or T37_UML=1 (t37 says why).
# T43_NBD_TIMEOUT (s, default 5) changes the nbd-client -timeout.
. "$(dirname "$0")/lib.sh"
e2e_setup
. "$(dirname "$0")/nbd-lib.sh"

if grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null &&
   [ -z "${T43_UML:-}${T37_UML:-}" ]; then
	skip "$E2E_TEST" "UML 6.12 crashed under sustained /dev/nbdN I/O over TCP with 16 KiB stacks (t37): T43_UML=1 runs it"
	exit 0
fi
NBD_TIMEOUT=${T43_NBD_TIMEOUT:-5}
T43_BREAK=${T43_BREAK:-}
BREAK=" ${T43_BREAK//,/ } "
broken() { case $BREAK in *" $1 "*) info "T43_BREAK: $1"; return 0 ;; esac; return 1; }
MIB=32
FM=$FM_REPO/scripts/flushmirror
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
PY=/usr/bin/python3

nbd_bed f43s f43d f43dl $MIB 0.5
M=/dev/mapper/f43
now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_sg() {	# wait_sg N: until the guest wrote N times (status SG, 30 s)
	local i
	for ((i = 0; i < 150; i++)); do
		fm_status f43
		[ "$ST_SG" -ge "$1" ] && return 0
		sleep 0.2
	done
	return 1
}
# wait_synced T: until synced (0), failed (1) or T seconds (1)
wait_synced() {
	local end=$((SECONDS + $1))
	while [ $SECONDS -lt $end ]; do
		fm_status f43
		case $ST_PHASE in synced) return 0 ;; failed) return 1 ;; esac
		sleep 0.2
	done
	return 1
}
# fence: on the destination host, nbd-server restarted before the retry
# (its child for the dead connection would still execute the writes TCP
# sends again once the link is back: flushmirror.rst, "After a link
# failure")
fence() {
	local t rc=0
	t=$(now_ms)
	nbd_server_stop && nbd_server_start $D || rc=1
	info "fence: nbd-server restarted in $(($(now_ms) - t)) ms"
	return $rc
}
relink() {
	local t rc=0
	t=$(now_ms)
	nbd_relink f43dl $N "$@" || rc=1
	info "relink: $NBD_DEV over $NBD_MODE in $(($(now_ms) - t)) ms"
	return $rc
}

info "time: rtt starts at ${SECONDS} s"
# ---- one verifying fio writer from here to the end of the copying part:
# the tables change under it (a reload starts a new copy), so that fio
# starts once (seconds on the Debian guest)
fm_create f43 $S $DL 1024 copy_jobs 8 || die "cannot create f43"
# the copier waits until the guest writes
timeout 10 dmsetup message f43 0 pause
# (at most 1000 writes/s: fewer reach the target while it copies over
# this link; at full speed on the source alone, once failed, reconnecting
# took 19 to 84 s on the Debian guest, nbd-server accepting late; 6 s with
# the limit)
fio_bg load --name=load --filename=$M "${FIO_COMMON[@]}" --ioengine=libaio \
	--iodepth=4 --rw=randwrite --size=${MIB}M --time_based --runtime=600 \
	--verify=crc32c --verify_backlog=256 --randseed=43 --rate_iops=1000,1000
LOAD=$BG_PID
wait_sg 20 || fail load-premise-fio-writing "fio not writing after 30 s: $ST_RAW"
info "time: fio writing at ${SECONDS} s"
timeout 10 dmsetup message f43 0 resume
# quiet_cmp CHECK: the destination equals the source with the load held
# (suspended: the copier drained, the destination flushed, WF = WM = SG)
quiet_cmp() {
	timeout 60 dmsetup suspend f43 || { fail $1 "cannot suspend f43"; return; }
	fm_status f43
	[ "$ST_PHASE" = synced ] && [ "$ST_WF" -eq "$ST_SG" ] ||
		fail $1-quiet "suspended, not quiet: $ST_RAW"
	check $1 dcmp $S $D
	timeout 60 dmsetup resume f43
}
# ---- G2/G3 at 0.5 and 10 ms
converge() {
	local rtt=$1 tag=$2 t0=$SECONDS
	if wait_phase f43 synced 240; then
		pass g2-$tag-synced-under-load
		info "G2 $rtt ms: synced under fio after $((SECONDS - t0)) s: $ST_RAW"
	else
		fail g2-$tag-synced-under-load "$ST_RAW"
	fi
	[ -z "$WAIT_INV_ERR" ] && pass g2-$tag-invariants || fail g2-$tag-invariants "$WAIT_INV_ERR"
	expect g2-$tag-guest-wrote-while-copying "$ST_SG" -gt 20 "$ST_RAW"
	kill -0 $LOAD 2>/dev/null && pass g2-$tag-fio-running ||
		fail g2-$tag-fio-running "fio ended: $(fio_stderr load)"
	[ $rtt = 10 ] && broken cmp-wrong && wr $S 4099
	quiet_cmp g3-$tag-server-equals-source
}
converge 0.5 0p5ms
# a new table: the copy starts over, at 10 ms
nbd_delay 10
dm_reload f43 "$(fm_table $S $DL 1024 copy_jobs 8)" || die "cannot reload f43"
converge 10 10ms

info "time: copying starts at ${SECONDS} s"
# ---- G6 while copying (a new table, copy_rate 4096 KiB/s: 8 s for the
# whole disk): the VM host's link goes down
nbd_delay 2
dm_reload f43 "$(fm_table $S $DL 1024 copy_jobs 8 copy_rate 4096)" || die "cannot reload f43"
for ((i = 0; i < 150; i++)); do
	fm_status f43
	[ $((ST_COPIED * 8)) -ge "$ST_TOTAL" ] && break
	sleep 0.2
done
[ "$ST_PHASE" = copying ] && [ "$ST_COPIED" -lt "$ST_TOTAL" ] && [ "$ST_COPIED" -gt 0 ] &&
	pass g6c-copying-at-cut || fail g6c-copying-at-cut "$ST_RAW"
info "copying: the link goes down at $ST_RAW"
nbd_link_down
t0=$(now_ms)
if wait_phase f43 failed $((NBD_TIMEOUT * 2 + 60)); then
	ms=$(($(now_ms) - t0))
	info "copying: failed ${ms} ms after the link went down: $ST_RAW"
	echo "STAT: nbd_linkdown_to_failed_ms=$ms"
	pass g6c-failed-after-cut
	expect g6c-dest-errors "$ST_DE" -gt 0 "$ST_RAW"
else
	fail g6c-failed-after-cut "$ST_RAW"
fi
fm_status f43; sg0=$ST_SG
sleep 1
fm_status f43
expect g6c-guest-writes-go-on "$ST_SG" -gt "$sg0" "$ST_RAW"
nbd_link_up
fence || fail g6c-fence "cannot restart nbd-server"
if broken noreconnect; then
	:
elif relink; then
	pass g6c-relink
else
	fail g6c-relink "no new connection"
fi
run_fm $FM retry f43
[ $RC -eq 0 ] && pass g6c-retry || fail g6c-retry "flushmirror retry exited $RC"
timeout 10 dmsetup message f43 0 copy_rate 0
t0=$SECONDS
if wait_synced 120; then
	pass g6c-synced-after-retry
	info "copying: synced $((SECONDS - t0)) s after the retry: $ST_RAW"
else
	fail g6c-synced-after-retry "$ST_RAW"
	# (broken on purpose: the new connection now, for the parts after)
	broken noreconnect && relink && timeout 10 dmsetup message f43 0 retry &&
		wait_synced 120
fi
kill -0 $LOAD 2>/dev/null && pass g6c-fio-ran-throughout ||
	fail g6c-fio-ran-throughout "fio ended early: $(fio_stderr load)"
kill -INT $LOAD 2>/dev/null
wait $LOAD
info "time: fio stopped at ${SECONDS} s"
e=$(fio_errors load)
w=$(fio_field load '.write.total_ios') r=$(fio_field load '.read.total_ios')
info "fio (0.5 ms, 10 ms, the cut, the retry): err=$e writes=$w verify-reads=$r"
[ "$e" = 0 ] && [ "${w:-0}" -gt 0 ] && [ "${r:-0}" -gt 0 ] && pass load-fio-verify-no-error ||
	fail load-fio-verify-no-error "err=$e writes=$w reads=$r $(fio_stderr load)"
fm_status f43
[ "$ST_PHASE" = synced ] && [ "$ST_WM" -eq "$ST_SG" ] && pass g6c-synced-quiet || fail g6c-synced-quiet "$ST_RAW"
check g6c-server-equals-source dcmp $S $D

info "time: hang starts at ${SECONDS} s"
# ---- a link that hangs: synced and idle (the copying part's table),
# 2 ms round trip
fm_status f43
[ "$ST_PHASE" = synced ] && pass hang-synced-first || fail hang-synced-first "$ST_RAW"
if broken notimeout; then
	relink 0 || fail hang-relink-notimeout "cannot connect without a timeout"
fi
dd if=/dev/urandom of=$E2E_TMP/blk bs=4k count=1 status=none
ev=$(dm_events f43)
rm -f $E2E_TMP/w.* $E2E_TMP/f.*
nbd_cut
# w.rc, w.end: the write's status and end; in the background, as a
# guest's write would be
t0=$(now_ms)
( dd if=$E2E_TMP/blk of=$M bs=4k seek=77 count=1 oflag=direct conv=notrunc status=none
  echo $? >$E2E_TMP/w.rc; now_ms >$E2E_TMP/w.end ) &
WP=$!
# held: the write is in flight on the nbd device (sent, no answer) and
# has not returned to the guest
for ((i = 0; i < 50; i++)); do
	set -- $(cat /sys/block/${NBD_DEV#/dev/}/inflight)
	[ "${2:-0}" -gt 0 ] && break
	[ -e $E2E_TMP/w.end ] && break
	sleep 0.1
done
fm_status f43
held="nbd in flight: reads ${1:-?} writes ${2:-?}, write returned: $([ -e $E2E_TMP/w.end ] && echo yes || echo no), $ST_RAW"
info "hang: $held"
[ "${2:-0}" -gt 0 ] && [ ! -e $E2E_TMP/w.end ] && [ "$ST_PHASE" = synced ] &&
	pass hang-write-held || fail hang-write-held "the write did not wait for the hung destination ($held)"
# a read while the write is held (1 MiB elsewhere)
t1=$(now_ms)
dd if=$M of=/dev/null bs=1M count=1 skip=8 iflag=direct status=none
rrc=$?
t2=$(now_ms)
read_ms=$((t2 - t1))
if [ $rrc -eq 0 ] && [ ! -e $E2E_TMP/w.end ]; then
	pass hang-read-not-held
else
	fail hang-read-not-held "read rc=$rrc in ${read_ms} ms, the write done before it: $([ -e $E2E_TMP/w.end ] && echo yes || echo no)"
fi
# a flush while the write is held
( fsync_dev $M; echo $? >$E2E_TMP/f.rc; now_ms >$E2E_TMP/f.end ) &
FP=$!
tf=$(now_ms)
# the write must end (not hang the guest): bounded here, not with
# timeout(1) (a process in D state cannot be killed)
for ((i = 0; i < (NBD_TIMEOUT * 2 + 20) * 5; i++)); do
	[ -e $E2E_TMP/w.end ] && [ -e $E2E_TMP/f.end ] && break
	sleep 0.2
done
if [ -e $E2E_TMP/w.end ]; then
	write_ms=$(($(cat $E2E_TMP/w.end) - t0))
	info "hang: the write was held ${write_ms} ms (nbd-client -timeout ${NBD_TIMEOUT}), rc $(cat $E2E_TMP/w.rc)"
	expect hang-write-completes-no-error "$(cat $E2E_TMP/w.rc)" -eq 0
else
	write_ms=-1
	fail hang-write-completes-no-error "the write still held $((NBD_TIMEOUT * 2 + 20)) s after the cut"
	# the link back now, or every later write waits as long
	nbd_restore
fi
if [ -e $E2E_TMP/f.end ]; then
	flush_ms=$(($(cat $E2E_TMP/f.end) - tf))
	info "hang: a flush issued ${read_ms} ms later was held ${flush_ms} ms, rc $(cat $E2E_TMP/f.rc)"
	expect hang-flush-completes-no-error "$(cat $E2E_TMP/f.rc)" -eq 0
else
	flush_ms=-1
	fail hang-flush-completes-no-error "the flush still held"
fi
if wait_phase f43 failed 10; then
	pass hang-failed
	expect hang-dest-errors "$ST_DE" -gt 0 "$ST_RAW"
else
	fail hang-failed "$ST_RAW"
fi
timeout 5 dmsetup wait f43 "$ev" >/dev/null 2>&1 && pass hang-event || fail hang-event "no event after $ev"
check hang-write-on-source same_at $E2E_TMP/blk $S $((77 * 4096))
# failed: the next write and flush go to the source alone (nothing
# reaches the destination's dm-linear, so nothing can wait for the link)
d0="$(write_count $DL) $(flush_count $DL)"
t1=$(now_ms)
wr $M 78 && fsync_dev $M
rc=$?
after_ms=$(($(now_ms) - t1))
d1="$(write_count $DL) $(flush_count $DL)"
expect hang-next-write-no-error $rc -eq 0
[ "$d0" = "$d1" ] && pass hang-next-write-source-only ||
	fail hang-next-write-source-only "$DL writes, flushes: $d0 -> $d1"
info "hang: write + flush after the failure: ${after_ms} ms; the read during the hang: ${read_ms} ms"
echo "STAT: nbd_hang_timeout_s=$NBD_TIMEOUT nbd_hang_write_ms=$write_ms nbd_hang_flush_ms=$flush_ms nbd_hang_read_ms=$read_ms nbd_after_fail_write_flush_ms=$after_ms"
nbd_restore
wait $WP $FP 2>/dev/null
fence || fail hang-fence "cannot restart nbd-server"
if relink; then
	timeout 10 dmsetup message f43 0 retry && pass hang-retry || fail hang-retry "message refused: $(dmsetup status f43)"
	wait_synced 120 && pass hang-synced-after-retry || fail hang-synced-after-retry "$ST_RAW"
else
	fail hang-relink "no new connection"
fi
check hang-server-equals-source dcmp $S $D

info "time: ext4 starts at ${SECONDS} s"
# ---- G4 with ext4 on top: the server's null_blk loses its power
MNT=$E2E_TMP/mnt
mkdir -p $MNT
WPID=
FM_ATEXIT+=('[ -z "$WPID" ] || { kill -KILL $WPID; wait $WPID; } 2>/dev/null'
	"mountpoint -q $MNT && umount $MNT")
RANDOM=43
# ext4_cut K POLICY BITE [MOUNT-OPTIONS]: as t29's powercut_run, with the
# destination over NBD; sets CUT_ERR (not done), CUT_BAD (what the guest
# saw), CUT_DMG (the destination after the cut), CUT_COV, CUT_LOST
ext4_cut() {
	local k=$1 pol=$2 bite=$3 mo=${4:-} ms i wrc post res fsck=0 chk=$D
	CUT_ERR='' CUT_BAD='' CUT_DMG='' CUT_COV=0 CUT_LOST=0
	dm_remove f43
	fm_create f43 $S $DL 1024 copy_jobs 8 flush_policy $pol ||
		{ CUT_ERR="cannot create f43"; return; }
	wait_synced 120 || { CUT_ERR="not synced: $ST_RAW"; return; }
	# after synced every destination page is in null_blk's store, where
	# writes are durable at once (lib.sh): both legs discarded (the
	# server's directly: nbd-server's trim does not reach null_blk's store)
	blkdiscard -f $M && blkdiscard -f $D || { CUT_ERR="discard failed"; return; }
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
		$M >$E2E_TMP/mkfs.out 2>&1 ||
		{ CUT_ERR="mkfs.ext4: $(tail -n 2 $E2E_TMP/mkfs.out | tr '\n' ' ')"; return; }
	mount -t ext4 -o noinit_itable${mo:+,$mo} $M $MNT || { CUT_ERR="cannot mount $M ($mo)"; return; }
	[ "$bite" = 1 ] && echo 1 >$PARAM
	: >$E2E_TMP/journal
	$PY $FM_REPO/scripts/e2e/ext4-workload.py $MNT $E2E_TMP/journal $((4300 + k)) &
	WPID=$!
	for ((i = 0; i < 300; i++)); do
		[ -s $E2E_TMP/journal ] && break
		kill -0 $WPID 2>/dev/null || break
		sleep 0.1
	done
	ms=$((1000 + RANDOM % 2000))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	cp $E2E_TMP/journal $E2E_TMP/snap
	nb_power f43d 0
	post=$(stat -c %s $E2E_TMP/journal)
	sleep 0.5
	kill -TERM $WPID 2>/dev/null
	wait $WPID
	wrc=$?
	WPID=
	[ "$bite" = 1 ] && echo 0 >$PARAM
	[ $wrc -eq 0 ] || CUT_BAD+="workload exited $wrc; "
	timeout 120 umount $MNT || CUT_BAD+="umount of the guest fs failed; "
	fm_status f43
	info "ext4 cut $k ($pol${mo:+, $mo}$([ "$bite" = 1 ] && echo ", dest flushes skipped"), after $ms ms): $(wc -l <$E2E_TMP/snap) records taken; $ST_RAW"
	[ "$ST_PHASE" = failed ] || CUT_BAD+="phase $ST_PHASE after the cut, not failed; "
	dm_remove f43 || { CUT_ERR="cannot remove f43"; return; }
	nb_power f43d 1 && wait_bdev $D 10 || { CUT_ERR="power on failed"; return; }
	if broken wrongdev; then
		nb_create f43x $MIB || { CUT_ERR="cannot create f43x"; return; }
		chk=/dev/f43x
	fi
	if mount -t ext4 $chk $MNT 2>$E2E_TMP/mount.err; then
		res=$($PY $FM_REPO/scripts/e2e/ext4-check.py $MNT $E2E_TMP/snap $E2E_TMP/journal $post 2>$E2E_TMP/check.err)
		head -n 8 $E2E_TMP/check.err | sed "s/^/# ext4 cut $k: /"
		set -- $res
		if [ $# -ne 3 ]; then
			CUT_ERR="check failed: $res $(head -c 300 $E2E_TMP/check.err)"
			umount $MNT
			return
		fi
		CUT_COV=$1 CUT_LOST=$2
		info "ext4 cut $k: durable files checked $1, lost $2, excluded $3"
		timeout 120 umount $MNT || CUT_DMG+="umount of the destination failed; "
	else
		CUT_DMG+="destination does not mount: $(tr '\n' ' ' <$E2E_TMP/mount.err); "
		CUT_COV=$($PY $FM_REPO/scripts/e2e/ext4-check.py /nonexistent $E2E_TMP/snap $E2E_TMP/journal $post 2>/dev/null | cut -d' ' -f1)
		CUT_LOST=$CUT_COV
	fi
	[ "$CUT_LOST" -eq 0 ] || CUT_DMG+="$CUT_LOST of $CUT_COV durable files lost; "
	e2fsck -fn $chk >$E2E_TMP/fsck.out 2>&1 || fsck=$?
	if [ $fsck -ne 0 ]; then
		CUT_DMG+="e2fsck -fn exited $fsck; "
		grep -v '^Pass\|^e2fsck [0-9]' $E2E_TMP/fsck.out | head -n 8 | sed "s/^/# ext4 cut $k e2fsck: /"
	fi
	[ $chk = $D ] || nb_destroy f43x
	# the old connection's child holds the disk that lost its power
	relink || CUT_ERR="no new connection"
}
if ! command -v mkfs.ext4 >/dev/null || ! command -v e2fsck >/dev/null || [ ! -x $PY ]; then
	skip ext4-powercut "no mkfs.ext4, e2fsck or $PY on the host"
else
	cov=0 lost=0 done_=0
	for c in "1 fua" "2 async"; do
		set -- $c
		mo=
		[ $2 = async ] && mo=data=writeback,journal_async_commit
		ext4_cut $1 generation 0 $mo
		[ -z "$CUT_ERR" ] || { fail ext4-cut-$1 "$CUT_ERR"; break; }
		done_=$((done_ + 1)) cov=$((cov + CUT_COV)) lost=$((lost + CUT_LOST))
		[ -z "$CUT_BAD$CUT_DMG" ] && pass ext4-cut-$1-$2 ||
			fail ext4-cut-$1-$2 "$CUT_BAD$CUT_DMG"
	done
	echo "STAT: ext4_cuts=$done_ files_covered=$cov files_lost=$lost"
	expect ext4-cuts-done $done_ -eq 2
	expect ext4-durable-files-checked "$cov" -gt 0
	expect ext4-durable-files-lost "$lost" -eq 0
	if [ $done_ -ne 2 ]; then
		skip ext4-test-bites "the normal cuts could not be done"
	elif [ -w $PARAM ]; then
		FM_ATEXIT+=("echo 0 > $PARAM")
		ext4_cut 11 generation 1 data=writeback,journal_async_commit
		echo 0 >$PARAM
		if [ -n "$CUT_ERR$CUT_BAD" ]; then
			fail ext4-test-bites "$CUT_ERR$CUT_BAD"
		elif [ -n "$CUT_DMG" ]; then
			pass ext4-test-bites
			info "with debug_skip_dest_flush=1: $CUT_DMG"
		else
			fail ext4-test-bites "no durable file lost and e2fsck clean with destination flushes skipped (checked $CUT_COV)"
		fi
	else
		skip ext4-test-bites "no $PARAM (module built without CONFIG_DM_FLUSHMIRROR_DEBUG)"
	fi
fi
info "time: done at ${SECONDS} s"
