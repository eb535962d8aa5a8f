#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t35-g4-sync-epoch: issue 9, defect 5.  "synced" may be reported only by
# the transition flush of the current sync attempt.  The destination is
# behind dm-delay with a 3 s flush delay.  Once every region is copied, the
# transition flush T1 is in flight; a guest write then fails on the source
# (its first 4 KiB are dm-flakey error_writes), which sends the target back
# to copying; the region is copied again and a second transition flush T2
# follows.  T1 completes first: if it reported synced, the status (and the
# dm event a tool acts on) would come while T2, which covers the recopied
# data, is still in flight.  Checks: when synced is first seen, the
# destination disk has completed as many flushes as the target issued.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=4
nb_create fme_src $MIB || die "cannot create fme_src"
nb_create fme_dst $MIB $((MIB * 2)) || die "cannot create fme_dst"
N=$((MIB * 2048))
dm_create fme_s "0 8 flakey /dev/fme_src 0 0 5 1 error_writes
8 $((N - 8)) linear /dev/fme_src 8" || die "cannot create the source"
dm_create fme_d "0 $N delay /dev/fme_dst 0 0 /dev/fme_dst 0 0 /dev/fme_dst 0 3000" ||
	die "cannot create the delayed destination"
f0=$(flush_count /dev/fme_dst)
fm_create fme /dev/mapper/fme_s /dev/mapper/fme_d 128 || die "cannot create flushmirror"

# every region copied, T1 in flight (the phase waits for it)
for _ in $(seq 1 100); do
	fm_status fme
	[ "$ST_COPIED" = "$ST_TOTAL" ] && break
	sleep 0.1
done
sleep 1
fm_status fme
info "T1 in flight: $ST_RAW"
if [ "$ST_PHASE" = copying ] && [ "$ST_COPIED" = "$ST_TOTAL" ]; then
	pass premise-t1-in-flight
else
	fail premise-t1-in-flight "expected copying with every region copied: $ST_RAW"
fi
check_not source-error-reaches-guest \
	dd if=/dev/urandom of=/dev/mapper/fme bs=4k count=1 oflag=direct status=none

# the first sample that says synced
seen=
for _ in $(seq 1 300); do
	fm_status fme
	if [ "$ST_PHASE" = synced ]; then
		seen=$(($(flush_count /dev/fme_dst) - f0))
		break
	fi
	sleep 0.05
done
info "first synced sample: $ST_RAW; flushes completed by the destination: ${seen:-none}"
if [ -z "$seen" ]; then
	fail synced-reached "never synced: $ST_RAW"
else
	pass synced-reached
	expect dest-flushes-done-when-synced "$seen" -ge "$ST_DF" \
		"synced reported while a later transition flush was still in flight"
	expect two-transition-flushes "$ST_DF" -ge 2 "the source error did not start a new sync attempt: $ST_RAW"
fi
check legs-equal dcmp /dev/mapper/fme_s /dev/fme_dst
