#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t34-src-read-errors: issue 9, defect 4.  A source read error while the
# copier copies a region is the source's fault, not the destination's: the
# phase must not go to failed, dest_errors must stay 0, the new status
# field src_errors (the 10th) counts it, the kernel log names the region,
# and the copier retries the region with a back-off until it reads, then
# finishes (synced, legs equal).  The source is dm-dust over a null_blk
# with one bad block (reads of it fail with EIO until it is removed).
. "$(dirname "$0")/lib.sh"
e2e_setup

if ! dmsetup targets | grep -q '^dust '; then
	skip "$E2E_TEST" "no dm-dust target in this kernel"
	exit 0
fi
MIB=16
nb_create fms_src $MIB || die "cannot create fms_src"
nb_create fms_dst $MIB || die "cannot create fms_dst"
N=$((MIB * 2048))
dd if=/dev/urandom of=/dev/fms_src bs=1M count=$MIB oflag=direct status=none ||
	die "cannot fill the source"
dm_create fms_dust "0 $N dust /dev/fms_src 0 4096" || die "cannot create dm-dust"
BAD=1000			# 4 KiB block: byte 4096000, region 62 of 64 KiB
BAD_REGION=$((BAD * 8 / 128))
dmsetup message fms_dust 0 addbadblock $BAD >/dev/null &&
	dmsetup message fms_dust 0 enable >/dev/null || die "cannot arm dm-dust"
check_not premise-bad-block-unreadable \
	dd if=/dev/mapper/fms_dust of=/dev/null bs=4k skip=$BAD count=1 iflag=direct status=none

before=$(dmesg | wc -l)
fm_create fms /dev/mapper/fms_dust /dev/fms_dst 128 || die "cannot create flushmirror"
M=/dev/mapper/fms

# src_errors is the 10th status field (13th word of dmsetup status)
src_errors() { dmsetup status fms | awk '{ print $13 }'; }
se=0
for _ in $(seq 1 150); do
	se=$(src_errors)
	[ "${se:-0}" -ge 2 ] 2>/dev/null && break
	sleep 0.2
done
fm_status fms
info "with the bad block: $ST_RAW"
expect src-errors-counted "${se:-0}" -ge 2 "the copier's read errors are not counted, or not retried"
if [ "$ST_PHASE" = copying ]; then
	pass not-failed-for-a-source-error
else
	fail not-failed-for-a-source-error "phase $ST_PHASE: $ST_RAW"
fi
expect no-dest-errors "$ST_DE" -eq 0 "a source read error counted against the destination"
expect all-other-regions-copied "$ST_COPIED" -eq $((ST_TOTAL - 1)) "$ST_RAW"
if dmesg | tail -n +$((before + 1)) | grep -q "source read error copying region $BAD_REGION "; then
	pass log-names-the-region
else
	fail log-names-the-region "no 'source read error copying region $BAD_REGION' line: $(dmesg | tail -n 3 | tr '\n' ' ')"
fi
check_inv invariants-with-errors fms

# the block reads again: the retry copies it and the copy ends
dmsetup message fms_dust 0 removebadblock $BAD >/dev/null || die "cannot heal dm-dust"
check_phase synced-after-heal fms synced 120
check legs-equal dcmp /dev/fms_src /dev/fms_dst
fm_status fms
expect still-no-dest-errors "$ST_DE" -eq 0 "$ST_RAW"
