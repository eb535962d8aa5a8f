#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t33-g3-inflight-copy: G3/G7 (issue 9, defect 1).  A copy of a region must
# wait for every guest write in flight to it, mirrored ones too.  The
# source is built so that, in each of 16 regions, a write to its first
# 4 KiB fails at once (dm-flakey error_writes) and a write to the rest is
# slow (dm-delay, 10 s on writes, none on reads; T33_DELAY_MS).  Synced from the start
# (nosync over two zeroed disks), the guest writes a slow block W2 into
# every region, and while those are in flight a failing block W1: W1's
# source error takes the region out of sync and the copier copies it
# again.  If that copy read the source before W2 landed there, it would
# write the old data over W2 on the destination, and the target would
# still report synced with the legs different.  Checks: W1 fails to the
# guest, W2 succeeds, the target gets synced again, and both legs are
# equal byte for byte, W2 in every region of the destination.
. "$(dirname "$0")/lib.sh"
e2e_setup

R=128			# region: 64 KiB
NREG=16
LEN=$((R * NREG))
# (T33_DELAY_MS: longer on a slow kernel, run-debian.sh -x).  10 s: on a
# busy host UML took more than 3 s to start the 16 W1 writers, the W2
# writes had landed by then and the premise failed.
DELAY_MS=${T33_DELAY_MS:-10000}
nb_create fmr_src 8 || die "cannot create fmr_src"
nb_create fmr_dst 8 || die "cannot create fmr_dst"
S=/dev/mapper/fmr_s D=/dev/fmr_dst M=/dev/mapper/fmr

table=
for r in $(seq 0 $((NREG - 1))); do
	b=$((r * R))
	table+="$b 8 flakey /dev/fmr_src $b 0 5 1 error_writes"$'\n'
	table+="$((b + 8)) $((R - 8)) delay /dev/fmr_src $((b + 8)) 0 /dev/fmr_src $((b + 8)) $DELAY_MS"$'\n'
done
if printf '%s' "$table" | timeout 60 dmsetup create fmr_s; then
	FM_DMS+=(fmr_s)
	wait_bdev "$S" 5 || dmsetup mknodes fmr_s
else
	die "cannot create the source fmr_s"
fi
FM_LEN=$LEN fm_create fmr "$S" "$D" $R nosync || die "cannot create flushmirror"
check_phase synced-at-start fmr synced 30

head -c 4096 /dev/urandom >"$E2E_TMP/w1"
head -c 4096 /dev/urandom >"$E2E_TMP/w2"
# W2: 4 KiB at 16 KiB into each region (slow on the source)
w2_pids=()
for r in $(seq 0 $((NREG - 1))); do
	dd if="$E2E_TMP/w2" of=$M bs=4k seek=$((r * 16 + 4)) count=1 \
		oflag=direct conv=notrunc status=none 2>"$E2E_TMP/w2.$r.err" &
	w2_pids+=($!)
done
# until every W2 is in flight in the target (the dm device's inflight
# count), not a fixed time: on a slow kernel the dd processes start late
for ((i = 0; i < 100; i++)); do
	read -r _ w2_inflight <"$(dev_sysdir $M)/inflight"
	[ "$w2_inflight" -ge $NREG ] && break
	sleep 0.1
done
info "W2 writes in flight: $w2_inflight"
# W1: the first 4 KiB of each region (fails on the source at once)
w1_pids=()
for r in $(seq 0 $((NREG - 1))); do
	dd if="$E2E_TMP/w1" of=$M bs=4k seek=$((r * 16)) count=1 \
		oflag=direct conv=notrunc status=none 2>/dev/null &
	w1_pids+=($!)
done
w1_fail=0
for p in "${w1_pids[@]}"; do
	wait "$p" || w1_fail=$((w1_fail + 1))
done
fm_status fmr
info "after the failing writes: $ST_RAW"
# the premise: W2 still in flight when the W1 errors sent regions back
# to copying (SG counts completed writes: 16 W1 + the W2 done so far)
expect premise-w2-in-flight "$ST_SG" -lt $((2 * NREG)) "the slow writes ended before the failing ones: the race was not set up"
w2_fail=0
for p in "${w2_pids[@]}"; do
	wait "$p" || w2_fail=$((w2_fail + 1))
done
expect w1-fails-to-the-guest "$w1_fail" -eq $NREG "source errors reach the guest (G1)"
expect w2-succeeds "$w2_fail" -eq 0 "slow writes to the same regions complete"
check_phase synced-again fmr synced 60

# the legs, region by region
differ=0
for r in $(seq 0 $((NREG - 1))); do
	a=$(dd if=$S bs=64k skip=$r count=1 iflag=direct status=none | sha256sum)
	b=$(dd if=$D bs=64k skip=$r count=1 iflag=direct status=none | sha256sum)
	[ "$a" = "$b" ] || differ=$((differ + 1))
done
info "regions that differ between the legs: $differ of $NREG"
expect legs-equal "$differ" -eq 0 "a copy ran over a mirrored write in flight"
w2_on_dst=0
for r in $(seq 0 $((NREG - 1))); do
	same_at "$E2E_TMP/w2" $D $((r * 65536 + 16384)) && w2_on_dst=$((w2_on_dst + 1))
done
expect w2-on-destination "$w2_on_dst" -eq $NREG "W2 missing on the destination in some regions"
check_inv invariants fmr
