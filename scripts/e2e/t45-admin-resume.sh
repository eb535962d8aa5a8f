#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (the admin command's resumable migration: user space, the same under UML)
# fm-timeout: 600
# t45-admin-resume: a resumable migration driven by scripts/flushmirror
# (issue 12), on null_blk devices (source, destination, metadata) with a
# dm-linear "VM disk" over the source:
#  - start --metadata refuses, changing nothing, a metadata device that is
#    too small, the destination itself, one that holds a signature (swap)
#    and one that a process has open; started with one, the table carries
#    "metadata <dev>", the journal copy in FM_STATE_DIR says resumable and
#    names the metadata device, and status (text and --json) shows its
#    state and commits;
#  - a reboot is simulated while copying (at a copy_rate, 128 KiB/s, that leaves it half
#    done): the VM disk suspended and removed (as a shutdown does), the
#    helper removed, the /run journal (FM_RUN_DIR) deleted, the copy in
#    FM_STATE_DIR kept;
#  - reattach refuses, changing nothing (dm devices, tables, the metadata
#    device's bytes, the journal): without a journal; a VM disk that is open
#    (a "VM" started on the source alone); a VM disk written since it was
#    created; resume (the copier's verb) points to reattach;
#  - reattach over a missing disk (it creates it) and, after a second
#    reboot, "reattach --all" over a disk a boot script created: the target
#    keeps regions (kept > 0, kept + recopied = total, the second time at
#    least what the first kept), mirrors guest writes made in between,
#    reaches synced; source and destination are equal and hold the guest's
#    writes; complete switches to the destination, drops the journal and
#    clears the metadata device's superblocks.
# FM_CMD (kernel command line / environment) runs another flushmirror.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=${FM_CMD:-$FM_REPO/scripts/flushmirror}
info "flushmirror command: $FM"
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib
MIB=16
for d in rs_src rs_dst rs_md rs_x rs_y; do
	nb_create $d $MIB || die "cannot create $d"
done
N=$(dev_sectors /dev/rs_src)
dd if=/dev/urandom of=/dev/rs_src bs=1M count=$MIB oflag=direct status=none ||
	die "cannot fill rs_src"
dm_create rs_vm "0 $N linear /dev/rs_src 0" || die "cannot create rs_vm"
# 40 sectors: less than the 48 the metadata of 256 regions needs; rs_y
# will hold a swap signature
dm_create rs_tiny "0 40 linear /dev/rs_x 0" || die "cannot create rs_tiny"
V=/dev/mapper/rs_vm
MD=$(devno /dev/rs_md)
FM_ATEXIT+=("dm_remove rs_vm" "dm_remove rs_vm-fmsrc")

# snapshot TAG: what a refused command must leave as it is: the dm devices
# and their tables, the metadata device's and rs_y's bytes, the journals
# (without times: the journal's time= lines)
snapshot() { state_snapshot "$1" attr no-times /dev/rs_md /dev/rs_y; }

# md_fields NAME: the metadata fields of the target's status ("metadata
# <ok|failed> <commits> <age> <kept> <recopied> <held>") into MD_*
md_fields() {
	MD_STATE=none MD_COMMITS= MD_KEPT= MD_RECOPIED=
	fm_status "$1" || return 1
	set -- $ST_RAW
	while [ $# -gt 0 ] && [ "$1" != metadata ]; do shift; done
	[ $# -ge 7 ] || return 1
	MD_STATE=$2 MD_COMMITS=$3 MD_KEPT=$5 MD_RECOPIED=$6
}

# reboot: what a reboot does to the devices and the journals: the VM disk
# suspended and removed (a shutdown's dm teardown; the target's last
# checkpoint commits at the suspend), the helper gone, /run lost
reboot() {
	timeout 60 dmsetup suspend rs_vm &&
	timeout 60 dmsetup remove rs_vm &&
	timeout 60 dmsetup remove rs_vm-fmsrc &&
	rm -rf "$FM_RUN_DIR"
}

# ================================================================ start refusals
info "$SECONDS s: start --metadata refusals"
mkswap /dev/rs_y >/dev/null 2>&1 || die "mkswap /dev/rs_y failed"
snapshot a
run_fm "$FM" start rs_vm /dev/rs_dst --region-size 64K --metadata /dev/mapper/rs_tiny
expect_rc start-md-too-small 1 "too small: 40 sectors.*needs 48"
run_fm "$FM" start rs_vm /dev/rs_dst --region-size 64K --metadata /dev/rs_dst
expect_rc start-md-is-destination 1 "metadata device /dev/rs_dst is the destination"
run_fm "$FM" start rs_vm /dev/rs_dst --region-size 64K --metadata /dev/rs_y
expect_rc start-md-signature 1 "metadata device /dev/rs_y holds data" "swap" "--discard-metadata"
sleep 60 </dev/rs_md &
OPENER=$!
FM_PIDS+=("$OPENER")
run_fm "$FM" start rs_vm /dev/rs_dst --region-size 64K --metadata /dev/rs_md
expect_rc start-md-open 1 "metadata device is in use: .*open by process $OPENER"
kill $OPENER; wait $OPENER 2>/dev/null
run_fm "$FM" start rs_vm /dev/rs_dst --checkpoint-interval 2
expect_rc start-checkpoint-needs-md 2 "needs --metadata"
snapshot b
same_snapshot start-refusals-change-nothing a b

# ================================================================ start
info "$SECONDS s: start --metadata"
run_fm "$FM" start rs_vm /dev/rs_dst --region-size 64K --copy-rate 128K \
	--metadata /dev/rs_md --checkpoint-interval 1
expect_rc start 0 "metadata device /dev/rs_md \($MD\): blank" "started" "reattach"
t=$(dmsetup table rs_vm)
case " $t " in
*" metadata $MD checkpoint_interval 1 "*) pass start-table-has-metadata ;;
*) fail start-table-has-metadata "$t" ;;
esac
J=$FM_STATE_DIR/rs_vm
grep -qx resumable=1 "$J" && grep -qx "md=$MD" "$J" && grep -qx mdpath=/dev/rs_md "$J" &&
	grep -qx "srctab=0 $N linear $(devno /dev/rs_src) 0" "$J" &&
	pass journal-copy-resumable || fail journal-copy-resumable "$(tr '\n' ' ' <"$J" 2>&1)"
# guest writes while copying: the first MiB (copied soon) and the last
dd if=/dev/urandom of="$E2E_TMP/w1" bs=64k count=16 status=none
dd if=/dev/urandom of="$E2E_TMP/w2" bs=64k count=4 status=none
dd if="$E2E_TMP/w1" of=$V bs=64k seek=0 oflag=direct conv=notrunc status=none ||
	fail guest-write-1 "dd to $V failed"
sleep 3
run_fm "$FM" status --interval 0 rs_vm
expect_rc status-metadata 0 "metadata +ok on /dev/rs_md: [1-9][0-9]* commits, last [0-9]+ s ago \(checkpoint every 1 s\)" \
	"at load +kept 0 of 256 regions, 256 copied again"
run_fm "$FM" status --json --interval 0 rs_vm
js=$(echo "$OUT" | sed 's/^# | //')
v=$(echo "$js" | jq -r '.[0].metadata | "\(.state) \(.commits > 0) \(.kept_regions) \(.recopied_regions) \(.checkpoint_interval) \(.device)"' 2>&1)
[ "$v" = "ok true 0 256 1 /dev/rs_md" ] && pass status-json-metadata ||
	fail status-json-metadata "'$v'"
fm_status rs_vm
c1=$ST_COPIED
info "copied before the first reboot: $c1 of $ST_TOTAL"
[ "$c1" -gt 0 ] && [ "$c1" -lt "$ST_TOTAL" ] ||
	die "premise: the copy is not half done ($ST_RAW): the reboot would prove nothing"

# ================================================================ reboot 1
info "$SECONDS s: reboot 1"
reboot || die "cannot simulate the reboot"
[ -f "$J" ] && [ ! -e "$FM_RUN_DIR/rs_vm" ] && ! dm_exists rs_vm ||
	die "premise: after the reboot the journal copy is kept, /run's lost and rs_vm gone"
run_fm "$FM" list
expect_rc list-resumable 0 "rs_vm +resumable .*reattach rs_vm"
snapshot c
FM_STATE_DIR=$E2E_TMP/empty run_fm "$FM" reattach rs_vm
expect_rc reattach-no-journal-refused 1 "rs_vm: no journal .*no migration of rs_vm to reattach"
run_fm "$FM" reattach rs_other
expect_rc reattach-other-no-journal-refused 1 "rs_other: no journal"
run_fm "$FM" resume rs_vm
expect_rc resume-points-to-reattach 1 "resumes a paused copy.*flushmirror reattach rs_vm"
snapshot d
same_snapshot no-journal-changes-nothing c d

# a boot script recreates the VM disk on the source, and the VM starts on it
dm_create rs_vm "0 $N linear /dev/rs_src 0" || die "cannot recreate rs_vm"
sleep 60 <$V &
VMPID=$!
FM_PIDS+=("$VMPID")
snapshot e
run_fm "$FM" reattach rs_vm
expect_rc reattach-open-refused 1 "rs_vm is open .*process $VMPID.*nothing changed"
snapshot f
same_snapshot open-refusal-changes-nothing e f
kill $VMPID; wait $VMPID 2>/dev/null
# the "VM" wrote (the same bytes: the test goes on with the map)
dd if=$V of="$E2E_TMP/b0" bs=4k count=1 iflag=direct status=none &&
dd if="$E2E_TMP/b0" of=$V bs=4k count=1 oflag=direct conv=notrunc status=none ||
	die "cannot write $V"
run_fm "$FM" reattach rs_vm
expect_rc reattach-written-refused 1 "written since it was created .*--discard-metadata"
snapshot g
same_snapshot written-refusal-changes-nothing e g
dm_remove rs_vm

info "$SECONDS s: reattach over a missing disk"
run_fm "$FM" reattach rs_vm
expect_rc reattach 0 "creating rs_vm with the flushmirror table" "kept [0-9]+ of 256 regions"
md_fields rs_vm
k1=$MD_KEPT
info "reattach 1: kept $MD_KEPT, recopied $MD_RECOPIED (copied before the reboot $c1)"
echo "STAT: t45_total=256 t45_kept1=${MD_KEPT:-0} t45_copied_before1=$c1"
[ "$MD_STATE" = ok ] && [ "${MD_KEPT:-0}" -gt 0 ] && [ $((MD_KEPT + MD_RECOPIED)) -eq 256 ] &&
	pass reattach-kept || fail reattach-kept "metadata $MD_STATE kept '$MD_KEPT' recopied '$MD_RECOPIED': $ST_RAW"
case " $(dmsetup table rs_vm) " in
*" metadata $MD checkpoint_interval 1 "*) pass reattach-same-table ;;
*) fail reattach-same-table "$(dmsetup table rs_vm)" ;;
esac
[ "$(tfield rs_vm 5)" = "$(devno /dev/rs_dst)" ] && [ "$(tfield rs_vm 4)" = "$(devno /dev/mapper/rs_vm-fmsrc)" ] &&
	pass reattach-legs || fail reattach-legs "$(dmsetup table rs_vm)"
run_fm "$FM" status --interval 0 rs_vm
expect_rc status-after-reattach 0 "at load +kept $k1 of 256 regions"
run_fm "$FM" reattach rs_vm
expect_rc reattach-again-is-noop 0 "migrating already"
grep -qx step=migrating "$FM_RUN_DIR/rs_vm" && grep -qx op=start "$FM_RUN_DIR/rs_vm" &&
	pass reattach-journal || fail reattach-journal "$(tr '\n' ' ' <"$FM_RUN_DIR/rs_vm" 2>&1)"
dd if="$E2E_TMP/w2" of=$V bs=64k seek=$((N / 128 - 4)) oflag=direct conv=notrunc status=none ||
	fail guest-write-2 "dd to $V failed"
sleep 2

# ================================================================ reboot 2
info "$SECONDS s: reboot 2, a boot script creates the disk, reattach --all"
fm_status rs_vm
c2=$ST_COPIED
reboot || die "cannot simulate the second reboot"
dm_create rs_vm "0 $N linear /dev/rs_src 0" || die "cannot recreate rs_vm"
run_fm "$FM" reattach --all
expect_rc reattach-all 0 "loading the flushmirror table into rs_vm" "kept [0-9]+ of 256 regions"
md_fields rs_vm
info "reattach 2: kept $MD_KEPT, recopied $MD_RECOPIED (copied before the reboot $c2, kept the first time $k1)"
echo "STAT: t45_kept2=${MD_KEPT:-0} t45_copied_before2=$c2"
[ "$MD_STATE" = ok ] && [ "${MD_KEPT:-0}" -gt 0 ] && [ "$MD_KEPT" -ge "$k1" ] &&
	[ $((MD_KEPT + MD_RECOPIED)) -eq 256 ] &&
	pass reattach-all-kept || fail reattach-all-kept "kept '$MD_KEPT' (first time $k1) recopied '$MD_RECOPIED': $ST_RAW"

# ================================================================ synced, complete
run_fm "$FM" rate rs_vm unlimited
check synced timeout 120 "$FM" wait --interval 1 rs_vm
check dest-equals-source dcmp /dev/rs_src /dev/rs_dst
same_at "$E2E_TMP/w1" /dev/rs_dst 0 && same_at "$E2E_TMP/w2" /dev/rs_dst $(((N / 128 - 4) * 65536)) &&
	pass dest-has-guest-writes || fail dest-has-guest-writes "the guest's writes are not on rs_dst"
run_fm "$FM" complete rs_vm
expect_rc complete 0 "clearing the superblocks of the metadata device" "migration is complete"
is_linear_on rs_vm /dev/rs_dst && pass complete-on-destination || fail complete-on-destination "$(dmsetup table rs_vm)"
[ ! -e "$J" ] && [ ! -e "$FM_RUN_DIR/rs_vm" ] && pass complete-drops-journal ||
	fail complete-drops-journal "$(ls "$FM_RUN_DIR" "$FM_STATE_DIR" 2>&1 | tr '\n' ' ')"
[ -z "$(dd if=/dev/rs_md bs=4096 count=2 iflag=direct status=none | tr -d '\0' | head -c 1)" ] &&
	pass complete-clears-metadata || fail complete-clears-metadata "the first 8 KiB of rs_md are not zero"
run_fm "$FM" reattach rs_vm
expect_rc reattach-after-complete-refused 1 "no journal"
