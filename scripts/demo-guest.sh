#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The in-guest part of `make demo` (scripts/demo.sh boots User-Mode Linux
# with the host's / as a read-only hostfs root and this script as PID 1).
#
# As PID 1 it mounts the pseudo filesystems, runs the demo (itself, with the
# argument "run"), writes the exit status to $FM_DEMO_RES/rc on the host and
# powers off.  "demo-guest.sh run" can also be started by hand as root in any
# Linux with device-mapper, dm-flushmirror, null_blk (configfs) and ext4.
#
# The demo: two memory-backed null_blk disks with a volatile write cache
# stand for the VM's current storage and the new storage.  A dm-linear
# device "vmdisk" over the first is the VM's disk; it gets an ext4
# filesystem, data, and a guest-like fio workload with fsyncs.  While fio
# runs, `flushmirror start` / `wait` / `complete` moves vmdisk to the second
# disk.  Then the demo checks that the destination holds everything the guest
# wrote (byte comparison with the source, e2fsck, checksums of every file
# read back from the destination alone) and prints the flush figures.
#
# Settings (kernel command line words reach PID 1 as environment):
#   FM_REPO          the repository (required)
#   FM_DEMO_RES      host directory for rc and dmesg.log (PID 1 only)
#   FM_DEMO_TTY      1: show the progress bar (the host's output is a tty)
#   FM_DEMO_MB       size of each disk in MiB (default 256)
#   FM_DEMO_RATE     copy rate limit in KiB/s (default 32768; 0 = unlimited)
#   FM_DEMO_SYNCED_S seconds the workload runs on once synced (default 5)

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
	bash "$0" run
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
MB=${FM_DEMO_MB:-256}
RATE=${FM_DEMO_RATE:-32768}
SYNCED_S=${FM_DEMO_SYNCED_S:-5}
NB=/sys/kernel/config/nullb
SRC=fmdemo_src
DST=fmdemo_dst
VM=vmdisk
MNT=/tmp/vm
CHK=/tmp/check
W=/tmp/demo
mkdir -p "$W" "$MNT" "$CHK"

if [ "${FM_DEMO_TTY:-0}" = 1 ]; then
	B=$(printf '\033[1m') N=$(printf '\033[0m')
else
	B='' N=''
fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
note() { printf '   %s\n' "$*"; }
show() { printf '   $ %s\n' "$*"; "$@"; }
failed() { trap - ERR; printf '\n%sDEMO FAILED%s at step %d: %s\n' "$B" "$N" "$STEP" "$*"; exit 1; }
trap 'failed "command failed (line $LINENO)"' ERR

FIO_PID='' SAMPLER_PID=''
cleanup() {
	trap - ERR
	[ -n "$FIO_PID" ] && kill "$FIO_PID" 2>/dev/null
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	true
}

# Records the guest and destination flush counts of the last status sample
# taken while copying, to split the figures at the switch to synced.
copy_sampler() {
	local -a f
	while :; do
		read -r -a f <<<"$(dmsetup status "$VM" 2>/dev/null)"
		case ${f[3]:-} in
		copying|paused) echo "${f[9]} ${f[10]}" >"$W/copy_sample.tmp" &&
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

flushes_of() { awk '{ print $16 + 0 }' "/sys/class/block/${1#/dev/}/stat"; }

# "dmsetup status" fields of vmdisk into F_* (see Documentation/flushmirror.rst)
fm_fields() {
	local -a f
	read -r -a f <<<"$(dmsetup status "$VM")"
	F_SG=${f[5]} F_GF=${f[9]} F_DF=${f[10]}
}

uname_r=$(uname -r)
printf '%sdm-flushmirror demo%s: live migration of a VM disk (Linux %s, User-Mode Linux)\n' "$B" "$N" "$uname_r"
dmsetup targets | grep -q '^flushmirror ' || failed "the flushmirror target is not in this kernel"
note "target: $(dmsetup targets 2>/dev/null | grep '^flushmirror ' || true)"

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
cat >"$W/guest.fio" <<EOF
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
show "$FM" start "$VM" "$DSTDEV" "${copt[@]}"
copy_sampler &
SAMPLER_PID=$!
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
