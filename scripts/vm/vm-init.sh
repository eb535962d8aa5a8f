#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the test VM's busybox initramfs (built by scripts/vm/vm-lib.sh,
# booted by scripts/e2e/t42-vm-migrate.sh and by make demo,
# scripts/demo-guest.sh): a small guest that writes
# checkable records to its virtio-blk disk (/dev/vda) and fsyncs each one.
#
# Control channel: the second serial port (/dev/ttyS1, a pipe on the
# host), raw, one line per message.  The host sends
#   area FIRST END   from the next record on, write records to blocks
#                    FIRST..END-1 (4 KiB blocks), in order (the writer
#                    idles when it has no area left)
#   stop             finish the current record, sync, power off
# and the VM answers
#   ready                     the writer runs
#   ack BLOCK SEQ             the record was written and fsync returned
#   error BLOCK SEQ RC        the write or the fsync failed (dd's status)
#   done FIRST END            the area is written
#   stopped                   before the power-off
# A record is 64 lines "fmrec BLOCK SEQ", each padded with spaces to 63
# characters and a newline: 4096 bytes; SEQ counts records from 1.  Each
# block is written once.  The kernel console is the first serial port.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp

fatal() {
	echo "vm-init: $*" >/dev/console
	echo o >/proc/sysrq-trigger
	sleep 3600
}

while read -r ko; do
	insmod "/lib/modules/$ko" || fatal "insmod $ko failed"
done </modules.list

i=0
while [ ! -b /dev/vda ]; do
	i=$((i + 1))
	[ $i -lt 300 ] || fatal "no /dev/vda"
	sleep 0.1
done
stty -F /dev/ttyS1 raw -echo || fatal "stty ttyS1 failed"
exec 3>/dev/ttyS1

# the reader: the last command wins; the writer polls for /tmp/cmd
while read -r line; do
	echo "$line" >/tmp/cmd.new && mv /tmp/cmd.new /tmp/cmd
done </dev/ttyS1 &

echo "vm-init: writer on /dev/vda ($(cat /sys/block/vda/size) sectors, write cache: $(cat /sys/block/vda/queue/write_cache))" >/dev/console
echo ready >&3

seq=0 blk=0 end=0 first=0
while :; do
	if [ -e /tmp/cmd ]; then
		read -r c a b </tmp/cmd
		rm -f /tmp/cmd
		case $c in
		area) first=$a blk=$a end=$b ;;
		stop)
			sync
			echo stopped >&3
			sleep 1
			echo o >/proc/sysrq-trigger
			sleep 3600
			;;
		esac
	fi
	if [ $blk -ge $end ]; then
		sleep 0.2
		continue
	fi
	seq=$((seq + 1))
	i=0
	while [ $i -lt 64 ]; do
		printf '%-63s\n' "fmrec $blk $seq"
		i=$((i + 1))
	done >/tmp/rec
	dd if=/tmp/rec of=/dev/vda bs=4096 seek=$blk count=1 conv=notrunc,fsync 2>/tmp/dd.err
	rc=$?
	if [ $rc -eq 0 ]; then
		echo "ack $blk $seq" >&3
	else
		echo "error $blk $seq $rc" >&3
		cat /tmp/dd.err >/dev/console
	fi
	blk=$((blk + 1))
	[ $blk -lt $end ] || echo "done $first $end" >&3
done
