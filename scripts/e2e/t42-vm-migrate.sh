#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (QEMU inside the Debian guest is nested TCG: too slow)
# fm-timeout: 600
# t42-vm-migrate: a real virtual machine on the migrating disk (issue 13).
# QEMU (TCG) boots Debian's 6.1 kernel with a busybox initramfs
# (scripts/vm/vm-lib.sh, vm-init.sh); its one virtio-blk disk
# (cache=none, aio=native) is a dm-linear "VM disk" over a null_blk with a
# write-back cache.  In the VM a writer writes 4 KiB records with
# checkable contents to the raw disk, each once, fsyncs each one and
# reports it over a serial line only once fsync returned.
#  1. scripts/flushmirror start, wait, complete while it writes: records
#     are fsynced while the copy runs, the target's guest_flushes grows at
#     least as fast as the VM's fsyncs (QEMU turns the guest's flushes
#     into REQ_PREFLUSH), the disk is then a linear table on the
#     destination and the VM goes on writing on it.
#  2. A second migration, from that destination to a null_blk with a
#     volatile cache (a live reload, the admin command's checks are part
#     1's): once synced, the area the VM writes next is discarded through
#     the target (fresh pages in null_blk's cache), the VM writes there,
#     and the new destination loses its power.  The VM goes on on the
#     source; the target is put back to the source alone; the new
#     destination, powered on, holds every record fsynced before the cut.
#     With debug_skip_dest_flush=1 the same cut loses records (the test
#     bites).
#  3. At the end the VM powers off cleanly; it never saw an I/O error
#     (writer and kernel console), and the disk holds every record it
#     ever fsynced.
# Needs qemu-system-x86_64, a static busybox and Debian's 6.1 kernel
# (/boot, /lib/modules) on the host.  T42_SEED (42) changes the cut times.
# Last line: "STAT: vm_records_acked=N vm_records_lost=N".
. "$(dirname "$0")/lib.sh"
. "$FM_REPO/scripts/vm/vm-lib.sh"
e2e_setup

RANDOM=${T42_SEED:-42}
FM=$FM_REPO/scripts/flushmirror
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib
PY=/usr/bin/python3
MIB=64
NBLK=$((MIB * 256))
# the writer's areas (4 KiB blocks): the migration, the cut, the bite
AREA1="0 $((NBLK / 2))"
AREA2="$((NBLK / 2)) $((NBLK * 3 / 4))"
AREA3="$((NBLK * 3 / 4)) $NBLK"

miss=$(vm_missing)
[ -x $PY ] || miss+="$PY "
[ -z "$miss" ] || { skip vm-migrate "not on the host: $miss"; exit 0; }
VM_KVER=$(vm_kver)
V=/dev/mapper/v42
FM_ATEXIT+=('[ -z "$VM_PID" ] || { kill -KILL $VM_PID; wait $VM_PID; } 2>/dev/null'
	"dm_remove v42" "dm_remove v42-fmsrc")

at() { info "[$SECONDS s] $*"; }
sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }
# acks_since LINE: records acknowledged in the VM's output after line LINE
acks_since() { tail -n +$(($1 + 1)) "$VM_DIR/out" | grep -c '^ack '; }
out_lines() { wc -l <"$VM_DIR/out"; }

nb_create v42s $MIB $MIB || die "cannot create v42s"
nb_create v42d $MIB $MIB || die "cannot create v42d"
N=$(dev_sectors /dev/v42s)
dm_create v42 "0 $N linear /dev/v42s 0" || die "cannot create the VM disk"
VM_IRD=$E2E_TMP/initramfs.cpio.gz
vm_initramfs "$VM_IRD" || die "cannot build the initramfs for $VM_KVER"
info "VM: $VM_KVER, initramfs $(stat -c %s "$VM_IRD") bytes"

# ---- boot
at "booting the VM"
vm_start $V || die "cannot start QEMU"
if ! vm_wait_line '^ready' 240; then
	fail vm-boots "no 'ready' from the VM: $(tail -n 5 "$VM_DIR/console.log" "$VM_DIR/qemu.out" | tr '\n' ' ' | cut -c1-500)"
	exit 1
fi
pass vm-boots
at "VM ready: $(grep -a 'vm-init:' "$VM_DIR/console.log" | tail -n 1); kernel: $(grep -a '^\[ *[0-9]' "$VM_DIR/console.log" | tail -n 1 | cut -c1-100)"
vm_send "area $AREA1"
for ((i = 0; i < 600; i++)); do
	[ "$(vm_acks)" -ge 5 ] && break
	sleep 0.1
done
expect vm-writer-fsyncs "$(vm_acks)" -ge 5 "records fsynced in 60 s"
at "writer: $(vm_acks) records"

# ---- 1. live migration with the admin command
n1=$(vm_acks)
check vm-start $FM start v42 /dev/v42d --copy-rate 8M
at "started"
check vm-wait timeout 240 $FM wait --interval 2 v42
at "synced"
n2=$(vm_acks)
expect vm-fsyncs-while-copying $((n2 - n1)) -gt 0 "records fsynced between start and synced"
fm_status v42
g1=$ST_GF
a1=$(vm_acks)
sleep 4
a2=$(vm_acks)
fm_status v42
g2=$ST_GF
info "synced: $ST_RAW; $((a2 - a1)) records fsynced, $((g2 - g1)) guest flushes in 4 s"
# (a record fsynced just before the first sample may be reported after it)
if [ $((a2 - a1)) -gt 0 ] && [ $((g2 - g1)) -ge $((a2 - a1 - 2)) ]; then
	pass vm-guest-flushes-grow-with-fsyncs
else
	fail vm-guest-flushes-grow-with-fsyncs "$((a2 - a1)) records fsynced, $((g2 - g1)) guest flushes"
fi
check vm-complete $FM complete v42
at "complete"
check vm-disk-is-linear-on-destination is_linear_on v42 /dev/v42d
n3=$(vm_acks)
sleep 3
n4=$(vm_acks)
expect vm-runs-on-destination $((n4 - n3)) -gt 0 "records fsynced in 3 s after complete"

# ---- 2. destination power cut once synced
# vm_cut DEST AREA BITE: sets CUT_ERR (could not be done), CUT_BAD (what
# the VM saw), CUT_DMG (records lost), CUT_COV, CUT_LOST
vm_cut() {
	local dst=$1 area=$2 bite=$3 l ms fl res a b
	CUT_ERR= CUT_BAD= CUT_DMG= CUT_COV=0 CUT_LOST=0
	set -- $area
	a=$1 b=$2
	nb_create $dst $MIB $MIB || { CUT_ERR="cannot create $dst"; return; }
	dm_reload v42 "$(fm_table /dev/v42d /dev/$dst 1024)" ||
		{ CUT_ERR="cannot reload v42 with a flushmirror table"; return; }
	wait_phase v42 synced 120 || { CUT_ERR="not synced: $ST_RAW"; return; }
	at "$dst: synced"
	# the copy put every destination page into null_blk's store (written
	# through at once): the area the VM writes next is discarded first
	blkdiscard -f -o $((a * 4096)) -l $(((b - a) * 4096)) $V 2>"$E2E_TMP/discard.err" ||
		{ CUT_ERR="discard through the target failed: $(tr '\n' ' ' <"$E2E_TMP/discard.err")"; return; }
	[ "$bite" = 1 ] && echo 1 >$PARAM
	l=$(out_lines)
	vm_send "area $area"
	for ((i = 0; i < 600; i++)); do
		[ "$(acks_since $l)" -ge 10 ] && break
		sleep 0.1
	done
	ms=$((1000 + RANDOM % 2000))
	sleep_ms $ms
	fl=$(flush_count /dev/$dst)
	# the fsynced set first, then the cut
	cp "$VM_DIR/out" "$E2E_TMP/out.snap"
	l=$(out_lines)
	nb_power $dst 0
	sleep 2
	[ "$bite" = 1 ] && echo 0 >$PARAM
	[ "$(acks_since $l)" -gt 0 ] || CUT_BAD+="no record fsynced in 2 s after the cut; "
	fm_status v42
	info "cut $dst ($([ "$bite" = 1 ] && echo "destination flushes skipped, ")$ms ms after the area's 10th record): $(vm_acks "$E2E_TMP/out.snap") records fsynced before, $(acks_since $l) in 2 s after the cut; $fl destination flushes before the cut; $ST_RAW"
	# (G6: writes that fail on the powered-off destination fail it)
	[ "$ST_PHASE" = failed ] || CUT_BAD+="target is $ST_PHASE 2 s after the cut, not failed; "
	# back to the source alone (what abort does)
	dm_reload v42 "0 $N linear /dev/v42d 0" || { CUT_ERR="cannot reload v42 on v42d"; return; }
	nb_power $dst 1 && wait_bdev /dev/$dst 10 || { CUT_ERR="power on failed"; return; }
	rd /dev/$dst >"$E2E_TMP/image" || { CUT_ERR="cannot read $dst"; return; }
	nb_destroy $dst
	res=$(vm_check_records "$E2E_TMP/image" "$E2E_TMP/out.snap" 2>"$E2E_TMP/check.err")
	sed "s/^/# cut $dst: /" "$E2E_TMP/check.err" | head -n 5
	rm -f "$E2E_TMP/image"
	set -- $res
	[ $# -eq 2 ] || { CUT_ERR="check failed: $res $(head -c 200 "$E2E_TMP/check.err")"; return; }
	CUT_COV=$1 CUT_LOST=$2
	info "cut $dst: records checked $1, lost $2"
	[ "$CUT_LOST" -eq 0 ] || CUT_DMG+="$CUT_LOST of $CUT_COV fsynced records lost; "
}

total_cov=0 total_lost=0
vm_cut v42e "$AREA2" 0
if [ -n "$CUT_ERR" ]; then
	fail vm-cut "$CUT_ERR"
else
	[ -z "$CUT_BAD" ] && pass vm-no-error-across-cut || fail vm-no-error-across-cut "$CUT_BAD"
	[ -z "$CUT_DMG" ] && pass vm-cut-loses-no-fsynced-record ||
		fail vm-cut-loses-no-fsynced-record "$CUT_DMG"
	expect vm-cut-records-checked "$CUT_COV" -gt 0
	total_cov=$((total_cov + CUT_COV)) total_lost=$((total_lost + CUT_LOST))
fi

if [ -n "$CUT_ERR" ]; then
	skip vm-test-bites "the normal cut could not be done"
elif [ -w $PARAM ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	vm_cut v42f "$AREA3" 1
	echo 0 >$PARAM
	if [ -n "$CUT_ERR$CUT_BAD" ]; then
		fail vm-test-bites "$CUT_ERR$CUT_BAD"
	elif [ -n "$CUT_DMG" ]; then
		pass vm-test-bites
		info "with debug_skip_dest_flush=1: $CUT_DMG"
		echo "STAT: vm_bite_records_lost=$CUT_LOST"
	else
		fail vm-test-bites "no fsynced record lost with destination flushes skipped (checked $CUT_COV)"
	fi
else
	skip vm-test-bites "no $PARAM (not a debug build)"
fi

# ---- 3. the end
at "stopping the VM"
vm_stop
rc=$?
grep -q '^stopped' "$VM_DIR/out" && [ $rc -eq 0 ] && pass vm-clean-poweroff ||
	fail vm-clean-poweroff "QEMU exited $rc, $(tail -n 2 "$VM_DIR/out" | tr '\n' ' ')"
errs=$(grep -c '^error ' "$VM_DIR/out")
kerr=$(grep -aciE 'I/O error|blk_update_request|critical (medium|target) error' "$VM_DIR/console.log")
if [ "$errs" -eq 0 ] && [ "$kerr" -eq 0 ]; then
	pass vm-no-io-error
else
	fail vm-no-io-error "$errs failed writes in the VM, $kerr kernel I/O error lines: $(grep -a -m 3 -E '^error|I/O error' "$VM_DIR/out" "$VM_DIR/console.log" | tr '\n' ' ')"
fi
rd $V >"$E2E_TMP/image" || die "cannot read $V"
res=$(vm_check_records "$E2E_TMP/image" "$VM_DIR/out" 2>"$E2E_TMP/check.err")
sed 's/^/# disk: /' "$E2E_TMP/check.err" | head -n 5
set -- $res
if [ $# -eq 2 ]; then
	info "the disk at the end: $1 records checked, $2 lost"
	expect vm-disk-holds-every-record "$2" -eq 0 "$2 of $1 fsynced records lost"
	total_cov=$((total_cov + $1)) total_lost=$((total_lost + $2))
else
	fail vm-disk-holds-every-record "check failed: $res"
fi
echo "STAT: vm_records_acked=$total_cov vm_records_lost=$total_lost"
