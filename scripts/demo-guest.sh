#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The in-guest part of `make demo` (scripts/demo.sh boots User-Mode Linux
# with the host's / as a read-only hostfs root and this script as PID 1).
# The UML guest plays the host of a virtual machine.
#
# As PID 1 it mounts the pseudo filesystems, runs the demo (itself, with the
# argument "run"), writes the exit status to $FM_DEMO_RES/rc on the host and
# powers off.  "demo-guest.sh run" can also be started by hand as root in any
# Linux with device-mapper, dm-flushmirror, null_blk (configfs) and ext4.
#
# The demo: two memory-backed null_blk disks with a volatile write cache
# stand for the VM's current storage and the new storage.  A dm-linear
# device "vmdisk" over the first is the VM's disk (as an LVM volume would
# be).  It is filled with data, then a real virtual machine boots on it:
# QEMU (TCG) with Debian's 6.1 kernel and the busybox initramfs of
# scripts/vm/ (the one t42-vm-migrate boots), vmdisk as its virtio-blk disk
# (cache=none, aio=native: every guest flush reaches vmdisk as a flush).
# In the VM a writer writes 4 KiB records with checkable contents to its
# disk and fsyncs each one; the VM reports a record only once its fsync
# returned.  While it writes, `flushmirror start` / `wait` (progress, with
# the VM's records) / `complete` moves vmdisk to the second disk.  The VM
# keeps writing on the destination after the switch; then it powers off
# and the demo checks the destination: the data from before the VM, every
# record the VM fsynced, the records written after the switch on the
# destination and not on the old disk; then it prints the flush figures.
#
# Without what the VM needs on the host (qemu-system-x86_64, a static
# busybox, /boot/vmlinuz-6.1.0-*-amd64 with its modules; see vm_missing in
# scripts/vm/vm-lib.sh), or with FM_DEMO_GUEST=fio, the VM is replaced by
# the demo's earlier workload: ext4 on vmdisk, data and fio with fsyncs on
# it, and the checks of that data.
#
# Settings (kernel command line words reach PID 1 as environment):
#   FM_REPO          the repository (required)
#   FM_DEMO_RES      host directory for rc, dmesg.log, vm-*.log (PID 1 only)
#   FM_DEMO_TTY      1: the host's output is a tty (bold step titles; with
#                    fio, wait's progress bar)
#   FM_DEMO_GUEST    vm (default) or fio
#   FM_DEMO_MB       size of each disk in MiB (default 128 vm, 256 fio)
#   FM_DEMO_RATE     copy rate limit in KiB/s (default 8192 vm, 32768 fio;
#                    0 = unlimited)
#   FM_DEMO_SYNCED_S seconds the workload runs on once synced (default 5)
#   FM_DEMO_AFTER_S  vm: seconds the VM runs on after complete (default 5)

. "$(dirname "$0")/guest-lib.sh"

# ------------------------------------------------------------ PID 1 part

if [ $$ -eq 1 ]; then
	set -u
	GUEST_TAG=demo-init
	trap guest_power_off EXIT
	guest_mounts
	# The kernel found no /dev/console on the hostfs root, so there is no
	# stdio yet; the output goes to $FM_DEMO_RES/guest.log, which the host
	# shows as it grows (the UML console needs channel drivers that a
	# KUnit-style UML config may lack).
	exec </dev/null >/dev/null 2>&1
	mkdir -p /run/lock /run/demo-res
	res=
	if [ -n "${FM_DEMO_RES:-}" ] &&
	   mount -t hostfs -o "$FM_DEMO_RES" none /run/demo-res; then
		res=/run/demo-res
		exec >"$res/guest.log" 2>&1
	else
		say "cannot mount the results directory '${FM_DEMO_RES:-}' (hostfs)"
	fi
	cd /tmp || exit 1
	FM_DEMO_OUT=$res bash "$0" run
	rc=$?
	if [ -n "$res" ]; then
		dmesg >"$res/dmesg.log" 2>&1
		echo "$rc" >"$res/rc"
	fi
	sync
	exit 0
fi

# ------------------------------------------------------------ the demo

[ "${1:-}" = run ] || { echo "usage: $0 run   (as root, in a disposable guest)" >&2; exit 2; }
set -eEuo pipefail

: "${FM_REPO:?FM_REPO must point to the repository}"
FM=$FM_REPO/scripts/flushmirror
# the journal's copy that would survive a reboot: /var/lib is on the
# read-only root here
export FM_STATE_DIR=${FM_STATE_DIR:-/var/tmp/flushmirror}
GUEST=${FM_DEMO_GUEST:-vm}
SYNCED_S=${FM_DEMO_SYNCED_S:-5}
AFTER_S=${FM_DEMO_AFTER_S:-5}
NB=/sys/kernel/config/nullb
SRC=fmdemo_src
DST=fmdemo_dst
VM=vmdisk
MNT=/tmp/vm
CHK=/tmp/check
W=/tmp/demo
OUT=${FM_DEMO_OUT:-}
mkdir -p "$W" "$MNT" "$CHK"

if [ "${FM_DEMO_TTY:-0}" = 1 ]; then
	B=$(printf '\033[1m') N=$(printf '\033[0m')
else
	B='' N=''
fi
STEP=0
# (each step title ends with the seconds since the demo started)
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s  [%d s]\n' "$B" "$STEP" "$*" "$N" "$SECONDS"; }
note() { printf '   %s\n' "$*"; }
show() { printf '   $ %s\n' "$*"; "$@"; }
failed() { trap - ERR; printf '\n%sDEMO FAILED%s at step %d: %s\n' "$B" "$N" "$STEP" "$*"; exit 1; }
trap 'failed "command failed (line $LINENO)"' ERR

# what vm-lib.sh expects from scripts/e2e/lib.sh: a scratch directory and
# the list of background processes
E2E_TMP=$W
FM_PIDS=()
PY=/usr/bin/python3
# shellcheck source=scripts/vm/vm-lib.sh
. "$FM_REPO/scripts/vm/vm-lib.sh"

FIO_PID='' SAMPLER_PID=''
cleanup() {
	trap - ERR
	[ -n "$FIO_PID" ] && kill "$FIO_PID" 2>/dev/null
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	if [ -n "$VM_PID" ]; then
		kill -KILL "$VM_PID" 2>/dev/null || true
		kill "$VM_CAT" 2>/dev/null || true
	fi
	# the VM's side, for a look after the demo (failed or not)
	if [ -n "$OUT" ] && [ -n "$VM_DIR" ]; then
		cp "$VM_DIR/console.log" "$OUT/vm-console.log" 2>/dev/null || true
		cp "$VM_DIR/out" "$OUT/vm-out.log" 2>/dev/null || true
	fi
	true
}

# Started before "flushmirror start": records the VM's records fsynced when
# the flushmirror table is first seen live (start_acks), then the guest and
# destination flush counts of the last status sample taken while copying
# (with the VM's records by then), to split the figures at the switch to
# synced.
copy_sampler() {
	local -a f
	local a seen=0
	while :; do
		a=
		[ -z "$VM_DIR" ] || a=$(acks)
		read -r -a f <<<"$(dmsetup status "$VM" 2>/dev/null)"
		if [ "${f[2]:-}" != flushmirror ]; then
			[ "$seen" = 0 ] || return 0
			sleep 0.2
			continue
		fi
		[ "$seen" = 1 ] || { seen=1; echo "$a" >"$W/start_acks"; }
		case ${f[3]:-} in
		copying|paused) echo "${f[9]} ${f[10]} $a" >"$W/copy_sample.tmp" &&
				mv "$W/copy_sample.tmp" "$W/copy_sample" ;;
		*) return 0 ;;
		esac
		sleep 0.2
	done
}
trap cleanup EXIT

# /dev node of a null_blk made through configfs: 6.12 names the disk after
# the configfs directory, older kernels nullb<index>.
nb_dev() {
	if [ -b "/dev/$1" ]; then
		echo "/dev/$1"
	else
		echo "/dev/nullb$(cat "$NB/$1/index")"
	fi
}

nb_create() {	# nb_create NAME SIZE_MIB CACHE_MIB
	local d=$NB/$1 i
	mkdir "$d"
	echo "$2" >"$d/size"
	echo 1 >"$d/memory_backed"
	echo 512 >"$d/blocksize"
	echo "$3" >"$d/cache_size"
	echo 1 >"$d/power"
	for i in $(seq 50); do
		[ -b "$(nb_dev "$1")" ] && return 0
		sleep 0.1
	done
	failed "no block device for null_blk $1"
}

# /sys/class/block/<dev>/stat: writes completed, flushes completed
writes_of() { awk '{ print $5 + 0 }' "/sys/class/block/${1#/dev/}/stat"; }
flushes_of() { awk '{ print $16 + 0 }' "/sys/class/block/${1#/dev/}/stat"; }
devno_of() { printf '%d:%d' "0x$(stat -L -c %t "$1")" "0x$(stat -L -c %T "$1")"; }

# "dmsetup status" fields of vmdisk into F_* (see Documentation/flushmirror.rst)
fm_fields() {
	local -a f
	read -r -a f <<<"$(dmsetup status "$VM")"
	F_SG=${f[5]} F_GF=${f[9]} F_DF=${f[10]}
}

if [ "$GUEST" = vm ]; then
	miss=$(vm_missing)
	[ -x "$PY" ] || miss+="$PY "
	if [ -n "$miss" ]; then
		GUEST=fio
		GUEST_WHY="the VM cannot run here: not on the host: $miss"
	fi
fi
case $GUEST in
vm) MB=${FM_DEMO_MB:-128} RATE=${FM_DEMO_RATE:-8192} ;;
fio) MB=${FM_DEMO_MB:-256} RATE=${FM_DEMO_RATE:-32768} ;;
*) failed "FM_DEMO_GUEST is vm or fio, not '$GUEST'" ;;
esac

uname_r=$(uname -r)
printf '%sdm-flushmirror demo%s: live migration of a VM disk (Linux %s, User-Mode Linux)\n' "$B" "$N" "$uname_r"
dmsetup targets | grep -q '^flushmirror ' || failed "the flushmirror target is not in this kernel"
note "target: $(dmsetup targets 2>/dev/null | grep '^flushmirror ' || true)"
if [ "$GUEST" = vm ]; then
	note "this User-Mode Linux plays the VM's host; the VM is QEMU (TCG) in it"
else
	note "the guest: ext4 and fio on the VM's disk${GUEST_WHY:+ ($GUEST_WHY)}"
fi

# ------------------------------------------------------------------------
step "Two disks: the VM's current storage and the new one"
note "memory-backed null_blk, ${MB} MiB each, with a volatile write cache"
note "(a flush is needed to make writes durable, like a real disk)"
nb_create "$SRC" "$MB" 64
nb_create "$DST" "$MB" 64
SRCDEV=$(nb_dev "$SRC")
DSTDEV=$(nb_dev "$DST")
note "source $SRCDEV, destination $DSTDEV"
SECTORS=$(blockdev --getsz "$SRCDEV")

# ------------------------------------------------------------------------
step "The VM's disk: a dm device (as an LVM logical volume would be)"
show dmsetup create "$VM" --table "0 $SECTORS linear $SRCDEV 0"
[ -b "/dev/mapper/$VM" ] || dmsetup mknodes "$VM"
[ -b "/dev/mapper/$VM" ] || failed "/dev/mapper/$VM is not a block device"

# ------------------------------------------------------------ the VM

# rd DEV [MIB]: DEV's contents (O_DIRECT: no stale page cache of DEV)
rd() { dd if="$1" bs=1M ${2:+count=$2} iflag=direct status=none; }
# acks: records the VM acknowledged (grep -c exits 1 on none)
# shellcheck disable=SC2119  # (no file: the VM's output)
acks() { vm_acks || true; }
out_lines() { wc -l <"$VM_DIR/out"; }

demo_vm() {
	local nblk=$((MB * 256)) half=$((MB / 2)) sum got res ird t0 i qrc
	local a_start a_sync a_fin a1 a2 g1 g2 d1 d2 l1 n sw sw2 dw dw2 errs kerr
	local checked lost copt=()

	# ----------------------------------------------------------------
	step "The VM's data"
	note "$half MiB of pseudo-random data at the start of $VM: the VM's data from"
	note "before it boots, which it leaves alone (it writes to the second half)"
	sum=$("$PY" - "/dev/mapper/$VM" "$half" <<-'PYEOF'
	import hashlib, os, random, sys
	r, h = random.Random(13), hashlib.sha256()
	with open(sys.argv[1], "wb", buffering=0) as f:
	    for _ in range(int(sys.argv[2])):
	        b = r.randbytes(1 << 20)
	        f.write(b)
	        h.update(b)
	    os.fsync(f.fileno())
	print(h.hexdigest())
	PYEOF
	)
	note "written and fsynced; sha256 ${sum:0:16}..."

	# ----------------------------------------------------------------
	step "Boot a virtual machine on $VM"
	VM_KVER=$(vm_kver)
	ird=$W/initramfs.cpio.gz
	vm_initramfs "$ird" >"$W/initramfs.out" 2>&1 ||
		{ cat "$W/initramfs.out"; failed "cannot build the VM's initramfs"; }
	VM_IRD=$ird
	# qboot (qemu-system-data) starts the kernel sooner than SeaBIOS
	[ -n "${VM_BIOS:-}" ] || [ ! -f /usr/share/qemu/qboot.rom ] ||
		VM_BIOS=/usr/share/qemu/qboot.rom
	note "QEMU (TCG), Debian's kernel /boot/vmlinuz-$VM_KVER, a busybox initramfs"
	note "($(stat -c %s "$ird") bytes: virtio modules, scripts/vm/vm-init.sh as /init)"
	note "and one virtio-blk disk: $VM, with cache=none (O_DIRECT) and aio=native, so"
	note "that every flush of the VM reaches $VM as a flush (REQ_PREFLUSH)"
	printf '   $ %s\n     %s\n' "qemu-system-x86_64 -accel tcg -m ${VM_MEM:-160}${VM_BIOS:+ -bios $VM_BIOS} -kernel /boot/vmlinuz-$VM_KVER -initrd initramfs.cpio.gz \\" \
		"-drive file=/dev/mapper/$VM,format=raw,if=none,id=d0,cache=${VM_CACHE:-none},aio=${VM_AIO:-native} -device virtio-blk-pci,drive=d0 ..."
	t0=$SECONDS
	vm_start "/dev/mapper/$VM" || failed "cannot start QEMU"
	if ! vm_wait_line '^ready' 300; then
		tail -n 20 "$VM_DIR/console.log" "$VM_DIR/qemu.out" | sed 's/^/     /'
		kill -0 "$VM_PID" 2>/dev/null ||
			failed "the VM did not boot: QEMU exited after $((SECONDS - t0)) s (its console above)"
		failed "the VM did not boot: no 'ready' in 300 s"
	fi
	note "booted in $((SECONDS - t0)) s: $(grep -a -m 1 -o 'Linux version [^ ]*' "$VM_DIR/console.log" || true)"
	note "in the VM: $(grep -a 'vm-init:' "$VM_DIR/console.log" | tail -n 1 | sed 's/^.*vm-init: //' || true)"
	vm_send "area $((nblk / 2)) $nblk"
	for i in $(seq 600); do
		[ "$(acks)" -ge 5 ] && break
		sleep 0.1
	done
	[ "$(acks)" -ge 5 ] || failed "the VM's writer fsynced $(acks) records in 60 s"
	note "the VM's writer: 4 KiB records \"fmrec BLOCK SEQ\" to the second half of"
	note "its disk, one after the other, each fsynced; it reports a record only"
	note "once its fsync returned ($(acks) so far)"

	# ----------------------------------------------------------------
	step "Start the live migration of $VM to $DSTDEV"
	[ "$RATE" = 0 ] || copt=(--copy-rate "$RATE")
	copy_sampler &
	SAMPLER_PID=$!
	show "$FM" start "$VM" "$DSTDEV" "${copt[@]}"
	show dmsetup table "$VM"

	# ----------------------------------------------------------------
	step "Wait for the copy (the VM keeps writing and fsyncing)"
	note "each progress line of flushmirror wait, with the records the VM has fsynced"
	printf '   $ %s\n' "$FM wait --interval 2 $VM"
	timeout 1800 "$FM" wait --interval 2 "$VM" | while IFS= read -r l; do
		case $l in
		*" $VM: "*) printf '   %s | VM: %d records\n' "$l" "$(acks)" ;;
		*) printf '   %s\n' "$l" ;;
		esac
	done
	wait "$SAMPLER_PID" || true
	SAMPLER_PID=
	# (no sample: the copy took less than a sampling period)
	[ -s "$W/start_acks" ] || acks >"$W/start_acks"
	read -r a_start <"$W/start_acks"
	[ -s "$W/copy_sample" ] || echo "0 0 $a_start" >"$W/copy_sample"
	read -r COPY_GF COPY_DF a_sync <"$W/copy_sample"
	note "the last sample while copying: the VM had fsynced $((a_sync - a_start)) records since the"
	note "start, the target had received $COPY_GF guest flushes and sent $COPY_DF destination"
	note "flushes (none is needed before the copy is done: the destination is"
	note "flushed once at the switch to synced)"
	[ $((a_sync - a_start)) -gt 0 ] || failed "the VM fsynced no record while the disk was copied"

	# ----------------------------------------------------------------
	step "Synced: every guest flush is now durable on the destination too"
	fm_fields
	g1=$F_GF d1=$F_DF a1=$(acks)
	note "letting the VM write ${SYNCED_S}s more"
	sleep "$SYNCED_S"
	fm_fields
	g2=$F_GF d2=$F_DF a2=$(acks)
	show "$FM" status "$VM"
	note "in ${SYNCED_S} s the VM fsynced $((a2 - a1)) records; the target received $((g2 - g1))"
	note "guest flushes and sent $((d2 - d1)) destination flushes"
	[ $((a2 - a1)) -gt 0 ] || failed "the VM fsynced no record in ${SYNCED_S} s once synced"
	# (a record fsynced just before the first sample may be reported after it)
	[ $((g2 - g1)) -ge $((a2 - a1 - 2)) ] ||
		failed "fewer guest flushes than the VM's fsyncs: its flushes do not reach $VM"
	note "OK: the VM's fsyncs arrive as guest flushes"

	# ----------------------------------------------------------------
	step "Switch the VM's disk to the destination, with the VM running"
	fm_fields
	FIN_GF=$F_GF FIN_DF=$F_DF FIN_SG=$F_SG a_fin=$(acks)
	show "$FM" complete "$VM"
	l1=$(out_lines)
	sw=$(writes_of "$SRCDEV") dw=$(writes_of "$DSTDEV")
	show dmsetup table "$VM"
	[ "$(dmsetup table "$VM")" = "0 $SECTORS linear $(devno_of "$DSTDEV") 0" ] ||
		failed "$VM is not a linear device on $DSTDEV ($(devno_of "$DSTDEV"))"
	note "OK: $VM is a plain dm-linear device on $DSTDEV ($(devno_of "$DSTDEV")): the target"
	note "and the source's helper device are gone, the VM never noticed"

	# ----------------------------------------------------------------
	step "The VM runs on, on the destination"
	sleep "$AFTER_S"
	n=$(tail -n +$((l1 + 1)) "$VM_DIR/out" | grep -c '^ack ' || true)
	sw2=$(writes_of "$SRCDEV") dw2=$(writes_of "$DSTDEV")
	note "in ${AFTER_S} s after complete the VM fsynced $n more records"
	note "writes completed by the old disk $SRCDEV: $sw, then $sw2"
	note "writes completed by the new disk $DSTDEV: $dw, then $dw2"
	[ "$n" -gt 0 ] || failed "the VM fsynced no record after complete"
	[ "$sw2" = "$sw" ] || failed "the old disk still gets writes after complete"
	[ "$dw2" -gt "$dw" ] || failed "the destination gets no writes after complete"
	note "OK: the VM goes on writing, to the destination only"

	# ----------------------------------------------------------------
	step "Power the VM off"
	qrc=0
	vm_stop || qrc=$?
	grep -q '^stopped' "$VM_DIR/out" && [ "$qrc" = 0 ] ||
		failed "the VM did not power off cleanly (QEMU exit $qrc): $(tail -n 2 "$VM_DIR/out" | tr '\n' ' ')"
	errs=$(grep -c '^error ' "$VM_DIR/out" || true)
	kerr=$(grep -aciE 'I/O error|blk_update_request|critical (medium|target) error' "$VM_DIR/console.log" || true)
	[ "$errs" = 0 ] && [ "$kerr" = 0 ] ||
		failed "the VM saw I/O errors: $errs failed writes, $kerr kernel log lines ($(grep -a -m 3 -E '^error|I/O error' "$VM_DIR/out" "$VM_DIR/console.log" | tr '\n' ' ' || true))"
	note "OK: QEMU exited cleanly; the VM's writer and kernel saw no I/O error"
	note "$(acks) records fsynced in all"

	# ----------------------------------------------------------------
	step "Check the destination, read from $DSTDEV alone"
	show dmsetup remove "$VM"
	rd "$DSTDEV" >"$W/dst.img"
	got=$(head -c $((half << 20)) "$W/dst.img" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$sum" ] || failed "the VM's data from before it booted differs on $DSTDEV (sha256 ${got:0:16}...)"
	note "OK: the first $half MiB, the VM's data from before, are there (sha256 ${got:0:16}...)"
	res=$(vm_check_records "$W/dst.img" "$VM_DIR/out" 2>"$W/check.err") ||
		{ cat "$W/check.err"; failed "the record check failed"; }
	read -r checked lost <<<"$res"
	sed 's/^/     /' "$W/check.err" | head -n 5
	[ "$lost" = 0 ] && [ "$checked" -gt 0 ] ||
		failed "$lost of the $checked records the VM fsynced are not on $DSTDEV"
	note "OK: all $checked records the VM fsynced (before, during and after the"
	note "migration) are on $DSTDEV, each with its contents"
	rm -f "$W/dst.img"
	# the records acknowledged after complete returned, but the first two
	# (the one in flight during the switch may have been written before it)
	tail -n +$((l1 + 1)) "$VM_DIR/out" | grep '^ack ' | tail -n +3 >"$W/after" || true
	rd "$SRCDEV" >"$W/src.img"
	res=$(vm_check_records "$W/src.img" "$W/after" 2>/dev/null) ||
		failed "the record check failed on $SRCDEV"
	rm -f "$W/src.img"
	read -r checked lost <<<"$res"
	[ "$checked" -gt 0 ] && [ "$lost" = "$checked" ] ||
		failed "$((checked - lost)) of $checked records written after complete are on the old disk $SRCDEV"
	note "OK: the $checked records written after the switch are not on $SRCDEV"

	# ----------------------------------------------------------------
	step "Flush figures"
	local saved pct
	saved=$((FIN_GF > FIN_DF ? FIN_GF - FIN_DF : 0))
	pct=$(awk -v s="$saved" -v g="$FIN_GF" 'BEGIN { printf "%.0f", g ? 100 * s / g : 0 }')
	row() { printf '   %-34s %10s %10s %10s\n' "$@"; }
	row "" "VM" "guest" "dest."
	row "" "fsyncs" "flushes" "flushes"
	row "while copying (last sample)" "$((a_sync - a_start))" "$COPY_GF" "$COPY_DF"
	row "synced, until complete" "$((a_fin - a_sync))" "$((FIN_GF - COPY_GF))" "$((FIN_DF - COPY_DF))"
	row "total, as flushmirror counts them" "$((a_fin - a_start))" "$FIN_GF" "$FIN_DF"
	note ""
	note "The guest completed $FIN_SG writes under the target.  flushmirror sent"
	note "$FIN_DF destination flushes for $FIN_GF guest flushes: $saved ($pct%) fewer than"
	note "flush_policy always, which sends one per guest flush, as dm-mirror does."
	note "This VM's writer fsyncs one record at a time, so once synced almost"
	note "every guest flush covers a write of its own and needs a destination"
	note "flush; the saving here is the copy, when none is needed.  QEMU's mirror"
	note "job sends none on guest flushes, and its destination is not durable"
	note "until the pivot."

	printf '\n%sDEMO PASSED%s: %s migrated live under a running VM, which went on on the destination; every record it fsynced is there.\n' "$B" "$N" "$VM"
}

# ------------------------------------------------------------ without the VM: ext4 and fio

demo_fio() {
	# ------------------------------------------------------------------------
	step "The guest's filesystem and data"
	show mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "/dev/mapper/$VM"
	show mount "/dev/mapper/$VM" "$MNT"
	mkdir -p "$MNT/data" "$MNT/fio"
	for i in 1 2 3 4; do
		head -c $((12 * 1024 * 1024)) /dev/urandom >"$MNT/data/file$i"
	done
	cp -a /usr/share/common-licenses "$MNT/data/" 2>/dev/null || true
	sync
	note "$(find "$MNT/data" -type f | wc -l) files, $(du -sm "$MNT/data" | cut -f1) MiB written and synced"

	# ------------------------------------------------------------------------
	step "A guest-like workload: fio with fsyncs, running all along"
	cat >"$W/guest.fio" <<-EOF
	[global]
	directory=$MNT/fio
	ioengine=psync
	; threads, not processes: no System V shared memory needed
	thread=1
	bs=4k
	time_based=1
	runtime=3600
	randrepeat=0
	; database-like: random writes, fsync every 4 writes
	[db]
	rw=randwrite
	size=24m
	fsync=4
	numjobs=2
	rate_iops=300
	; log-like: appends, fdatasync after each one
	[log]
	rw=write
	size=8m
	fdatasync=1
	rate_iops=100
	EOF
	note "2 jobs of 4k random writes with an fsync every 4 writes, 1 log job"
	note "with an fdatasync after every 4k append (see $W/guest.fio)"
	fio --output-format=json --output="$W/fio.json" "$W/guest.fio" >"$W/fio.out" 2>&1 &
	FIO_PID=$!
	sleep 3
	kill -0 "$FIO_PID" 2>/dev/null || { cat "$W/fio.out"; failed "fio did not start"; }
	note "fio is running (pid $FIO_PID)"

	# ------------------------------------------------------------------------
	step "Start the live migration of $VM to $DSTDEV"
	copt=()
	[ "$RATE" = 0 ] || copt=(--copy-rate "$RATE")
	copy_sampler &
	SAMPLER_PID=$!
	show "$FM" start "$VM" "$DSTDEV" "${copt[@]}"
	show dmsetup table "$VM"

	# ------------------------------------------------------------------------
	step "Wait for the copy (the guest keeps writing and fsyncing)"
	if [ "${FM_DEMO_TTY:-0}" = 1 ] && command -v script >/dev/null; then
		# script(1) gives "wait" a terminal, so it draws its progress bar
		printf '   $ %s\n' "$FM wait $VM"
		timeout 1800 script -qfec "$FM wait $VM" /dev/null
	else
		show timeout 1800 "$FM" wait --interval 2 "$VM" | cat
	fi
	wait "$SAMPLER_PID" || true
	SAMPLER_PID=
	[ -s "$W/copy_sample" ] || echo "0 0" >"$W/copy_sample"
	read -r COPY_GF COPY_DF <"$W/copy_sample"
	note "last sample while copying: $COPY_GF guest flushes, $COPY_DF destination flushes"
	note "(while copying the destination is not flushed; it is flushed once at the"
	note "switch to synced, and from then on when a guest flush needs it)"

	# ------------------------------------------------------------------------
	step "Synced: every guest flush is now durable on the destination too"
	note "letting the workload run ${SYNCED_S}s more"
	sleep "$SYNCED_S"
	show "$FM" status "$VM"

	# ------------------------------------------------------------------------
	step "Stop the workload, record what the guest sees"
	kill -INT "$FIO_PID"
	wait "$FIO_PID" || true
	FIO_PID=
	sync
	(cd "$MNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$W/sums"
	note "$(wc -l <"$W/sums") files checksummed through $VM"
	note "remounting it read-only so that the two disks can be compared byte for byte"
	show mount -o remount,ro "$MNT"
	fm_fields
	DST_FLUSHES_DEV=$(flushes_of "$DSTDEV")
	FIN_GF=$F_GF FIN_DF=$F_DF FIN_SG=$F_SG

	# ------------------------------------------------------------------------
	step "Switch the VM's disk to the destination"
	show "$FM" complete "$VM"
	show dmsetup table "$VM"

	# ------------------------------------------------------------------------
	step "Check the destination"
	show cmp "$SRCDEV" "$DSTDEV"
	note "OK: the destination equals the source byte for byte"
	show umount "$MNT"
	show dmsetup remove "$VM"
	printf '   $ %s\n' "e2fsck -fn $DSTDEV"
	e2fsck -fn "$DSTDEV" >"$W/fsck.out" 2>&1 || { cat "$W/fsck.out"; failed "e2fsck found errors"; }
	sed 's/^/     /' "$W/fsck.out"
	note "OK: e2fsck found no error (hints like 'could be narrower' are not errors)"
	show mount -o ro "$DSTDEV" "$CHK"
	(cd "$CHK" && sha256sum --quiet -c "$W/sums") || failed "checksum mismatch on the destination"
	note "OK: all $(wc -l <"$W/sums") files read back from $DSTDEV alone match"
	umount "$CHK"

	# ------------------------------------------------------------------------
	step "Flush figures"
	fsyncs=$(python3 -c '
import json, sys
t = open(sys.argv[1]).read()
j = json.loads(t[t.index("{"):])
print(sum(x.get("sync", {}).get("total_ios", 0) for x in j["jobs"]))
' "$W/fio.json" 2>/dev/null || echo "n/a")
	saved=$((FIN_GF > FIN_DF ? FIN_GF - FIN_DF : 0))
	pct=$(awk -v s="$saved" -v g="$FIN_GF" 'BEGIN { printf "%.0f", g ? 100 * s / g : 0 }')
	SYN_GF=$((FIN_GF - COPY_GF)) SYN_DF=$((FIN_DF - COPY_DF))
	row() { printf '   %-44s %10s %10s\n' "$@"; }
	row "" "guest" "dest."
	row "" "flushes" "flushes"
	row "while copying (last sample)" "$COPY_GF" "$COPY_DF"
	row "from then on (incl. the switch to synced)" "$SYN_GF" "$SYN_DF"
	row "total, as flushmirror counts them" "$FIN_GF" "$FIN_DF"
	row "flushes $DSTDEV itself completed" "" "$DST_FLUSHES_DEV"
	note ""
	note "fio issued $fsyncs fsync/fdatasync calls and the guest completed $FIN_SG"
	note "writes.  flushmirror saved $saved destination flushes ($pct%) against"
	note "flush_policy always, which sends one per guest flush ($FIN_GF), as"
	note "dm-mirror does.  QEMU's mirror job sends none on guest flushes, and"
	note "its destination is not durable until the pivot."

	printf '\n%sDEMO PASSED%s: %s migrated live; the destination holds every write.\n' "$B" "$N" "$VM"
}

if [ "$GUEST" = vm ]; then
	demo_vm
else
	demo_fio
fi
