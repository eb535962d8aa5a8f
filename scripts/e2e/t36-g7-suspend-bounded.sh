#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 400
# t36-g7-suspend-bounded: issue 9, defect 6 (copy in chunks).  A suspend
# (the switchover's first step) waits for the copy I/O in flight, and that
# must be bounded by a chunk (4 MiB) per copy job, not by whole regions:
# with 64 MiB regions and a destination whose writes take 1 s (dm-delay),
# copying one region takes over 10 s, and a suspend in the middle of the
# copy must return within a few seconds.  The partly copied regions are
# copied again after the resume (which takes over 8 s: the premise that an
# unbounded suspend would wait that long), and the copy ends equal.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=128
R=131072		# sectors: 64 MiB regions, 2 of them
nb_create fmb_src $MIB || die "cannot create fmb_src"
nb_create fmb_dst $MIB || die "cannot create fmb_dst"
N=$((MIB * 2048))
dd if=/dev/urandom of=/dev/fmb_src bs=1M count=$MIB oflag=direct status=none ||
	die "cannot fill the source"
dm_create fmb_d "0 $N delay /dev/fmb_dst 0 0 /dev/fmb_dst 0 1000" ||
	die "cannot create the slow destination"
t0=$SECONDS
fm_create fmb /dev/fmb_src /dev/mapper/fmb_d $R || die "cannot create flushmirror"
sleep 3
fm_status fmb
info "before the suspend: $ST_RAW"
expect premise-still-copying "$ST_COPIED" -eq 0 "a region was copied within 3 s: the destination is not slow enough for this test"

start=$(date +%s%N)
check suspend-mid-copy timeout 60 dmsetup suspend fmb
ms=$((($(date +%s%N) - start) / 1000000))
info "suspend took $ms ms, $((SECONDS - t0)) s after the start"
expect suspend-bounded "$ms" -lt 5000 "the suspend waited for whole regions to be copied"
fm_status fmb
expect not-synced-while-suspended "$ST_COPIED" -lt "$ST_TOTAL" "$ST_RAW"
check resume timeout 60 dmsetup resume fmb
t1=$SECONDS
check_phase synced-after-resume fmb synced 180
info "synced $((SECONDS - t1)) s after the resume"
expect premise-region-copy-slow $((SECONDS - t1)) -ge 8 "the regions copy too fast for the suspend bound to mean anything"
check legs-equal dcmp /dev/fmb_src /dev/fmb_dst
