#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (the admin command's subcommands: user space, the same under UML, and slow under TCG)
# fm-timeout: 400
# t39-admin-ops: the operator's subcommands of scripts/flushmirror (issue 10,
# "what admins expect"), on null_blk disks behind dm-linear "VM disks":
#  - start --dry-run and complete --dry-run print every step (the helper's
#    create, the tables they would load, the suspend and resume, the
#    remove) and change nothing: the list of dm devices, every table and
#    state (suspended, inactive table), the bytes of source and
#    destination and the journal directories are the same afterwards; the
#    table a real start then loads is the one the dry run printed;
#  - pause, resume, rate and retry send the target's messages (checked in
#    its status and table) and refuse, with a specific error and changing
#    nothing, what does not apply: pause when synced or failed, resume when
#    not paused, retry when paused, bad rates (units, limit, negative);
#    retry after a real destination failure (its dm table swapped for
#    'error' under the migration) copies again and gets back to synced;
#  - list shows a live migration, one interrupted (start killed after its
#    load step), a flushmirror table the command did not set up, and a
#    journal that only the copy in FM_STATE_DIR still has (a reboot: with
#    the helper left, and after complete was killed after its last step), with
#    the command that finishes it, in text and JSON; it fails when dmsetup
#    does;
#  - verify passes on a synced migration, idle and under a random-write
#    fio load (in-flight writes: differing regions are reread, then
#    rechecked with the disk briefly suspended), and fails, naming the
#    regions and the first differing byte, when the destination null_blk
#    was written behind the target's back; the disk is never left
#    suspended.
#  - status --json carries src_errors (the target's 10th status field).
# FM_CMD (kernel command line / environment) runs another flushmirror.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=${FM_CMD:-$FM_REPO/scripts/flushmirror}
info "flushmirror command: $FM"
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib
MIB=8
for d in fo_src fo_dst fo_s2 fo_d2 fo_x fo_y fo_z; do
	nb_create $d $MIB || die "cannot create $d"
done
N=$(dev_sectors /dev/fo_src)
dd if=/dev/urandom of=/dev/fo_src bs=1M count=$MIB oflag=direct status=none ||
	die "cannot fill fo_src"
dd if=/dev/urandom of=/dev/fo_s2 bs=1M count=$MIB oflag=direct status=none ||
	die "cannot fill fo_s2"
dm_create fo_vm "0 $N linear /dev/fo_src 0" || die "cannot create fo_vm"
dm_create fo_vm2 "0 $N linear /dev/fo_s2 0" || die "cannot create fo_vm2"
# the second disk's destination is a dm device, so that it can be failed
dm_create fo_dd "0 $N linear /dev/fo_d2 0" || die "cannot create fo_dd"
V=/dev/mapper/fo_vm
FM_ATEXIT+=("dm_remove fo_vm-fmsrc" "dm_remove fo_vm2-fmsrc")

# snapshot TAG: everything a dry run must leave as it is (file times too)
snapshot() { state_snapshot "$1" attr,open times /dev/fo_src /dev/fo_dst /dev/fo_s2 /dev/fo_d2; }

DST=$(devno /dev/fo_dst)
# ================================================================ dry runs
info "$SECONDS s: start --dry-run"
snapshot a
run_fm "$FM" start fo_vm /dev/fo_dst --region-size 64K --copy-rate 512K --dry-run
dry_table=$(echo "$OUT" | sed -n 's/.*would run: dmsetup load fo_vm --table //p')
expect_rc dry-start-ok 0 "dry run" \
	"would run: dmsetup create fo_vm-fmsrc --uuid FLUSHMIRROR-fo_vm" \
	"^    0 $N linear $(devno /dev/fo_src) 0" \
	"would run: dmsetup load fo_vm --table 0 $N flushmirror /dev/mapper/fo_vm-fmsrc $DST 128 2 copy_rate 512" \
	"would run: timeout [0-9]+ dmsetup suspend fo_vm" "would run: dmsetup resume fo_vm" \
	"nothing changed"
snapshot b
same_snapshot dry-start-changes-nothing a b
# a dry run that would be refused says so, and changes nothing either
run_fm "$FM" start fo_vm /dev/fo_src --dry-run
expect_rc dry-start-refused 1 "is a device under fo_vm"
snapshot c
same_snapshot dry-start-refused-changes-nothing a c

run_fm "$FM" start fo_vm /dev/fo_dst --region-size 64K --copy-rate 512K
expect_rc start 0 "started"
H=$(devno /dev/mapper/fo_vm-fmsrc)
live=$(dmsetup table fo_vm)
[ -n "$dry_table" ] && [ "$live" = "${dry_table//\/dev\/mapper\/fo_vm-fmsrc/$H}" ] &&
	pass start-loads-the-dry-run-table ||
	fail start-loads-the-dry-run-table "live '$live', dry run printed '$dry_table' (helper $H)"

# ================================================================ messages
info "$SECONDS s: pause, resume, rate, retry"
run_fm "$FM" rate fo_vm
expect_rc rate-show 0 "copy rate 512 KiB/s \(phase"
run_fm "$FM" pause fo_vm
expect_rc pause 0 "paused"
fm_status fo_vm
c0=$ST_COPIED
[ "$ST_PHASE" = paused ] && pass pause-phase || fail pause-phase "$ST_RAW"
sleep 1.5
fm_status fo_vm
[ "$ST_PHASE" = paused ] && [ "$ST_COPIED" = "$c0" ] && pass pause-holds ||
	fail pause-holds "copied $c0 -> $ST_COPIED, $ST_RAW"
run_fm "$FM" pause fo_vm
expect_rc pause-again-is-noop 0 "paused already"
run_fm "$FM" retry fo_vm
expect_rc retry-when-paused-refused 1 "paused, not failed" "flushmirror resume fo_vm"
t0=$(dmsetup table fo_vm)
run_fm "$FM" rate fo_vm 10x
expect_rc rate-bad-unit 2 "not a rate" "KiB/s"
run_fm "$FM" rate fo_vm 5000T
expect_rc rate-over-limit 2 "above the target's limit of 4294967295 KiB/s"
run_fm "$FM" rate fo_vm -5
expect_rc rate-negative 2 "negative"
run_fm "$FM" rate fo_vm 1M 2M
expect_rc rate-two-values 2 "one RATE"
run_fm "$FM" start fo_vm /dev/fo_dst --copy-rate 3Q
expect_rc start-copy-rate-bad 2 "not a rate"
[ "$(dmsetup table fo_vm)" = "$t0" ] && pass bad-rates-change-nothing ||
	fail bad-rates-change-nothing "table $(dmsetup table fo_vm)"
run_fm "$FM" rate fo_vm 1M
expect_rc rate-1m 0 "1024 KiB/s \(1 MiB/s\)" "was 512 KiB/s"
[ "$(tfield fo_vm 9)" = 1024 ] && pass rate-1m-in-table || fail rate-1m-in-table "$(dmsetup table fo_vm)"
run_fm "$FM" rate fo_vm 20MiB/s
expect_rc rate-mib 0 "20480 KiB/s \(20 MiB/s\)"
[ "$(tfield fo_vm 9)" = 20480 ] && pass rate-mib-in-table || fail rate-mib-in-table "$(dmsetup table fo_vm)"
run_fm "$FM" rate fo_vm 256
expect_rc rate-plain-is-kib 0 "256 KiB/s"
[ "$(tfield fo_vm 9)" = 256 ] && pass rate-plain-in-table || fail rate-plain-in-table "$(dmsetup table fo_vm)"
run_fm "$FM" resume fo_vm
expect_rc resume 0 "resumed"
fm_status fo_vm
[ "$ST_PHASE" = copying ] && pass resume-phase || fail resume-phase "$ST_RAW"
run_fm "$FM" resume fo_vm
expect_rc resume-when-copying-is-noop 0 "not paused.*nothing to do"
run_fm "$FM" retry fo_vm
expect_rc retry-when-copying-is-noop 0 "nothing to retry"
run_fm "$FM" rate fo_vm unlimited
expect_rc rate-unlimited 0 "unlimited"
[ "$(tfield fo_vm 7)" = "" ] && pass rate-unlimited-in-table || fail rate-unlimited-in-table "$(dmsetup table fo_vm)"
check synced timeout 120 "$FM" wait --interval 1 fo_vm
run_fm "$FM" pause fo_vm
expect_rc pause-when-synced-refused 1 "synced.*no background copy"
run_fm "$FM" resume fo_vm
expect_rc resume-when-synced-refused 1 "synced, not paused"
run_fm "$FM" pause fo_x
expect_rc pause-not-migrating 1 "not (a )?(dm|device-mapper) device|not migrating"
run_fm "$FM" pause fo_vm2
expect_rc pause-plain-disk-refused 1 "not migrating"
run_fm "$FM" pause
expect_rc pause-needs-disk 2 "needs <vm-disk>"

# retry after a real destination failure: fo_dd's table becomes 'error'
run_fm "$FM" start fo_vm2 fo_dd --region-size 64K
expect_rc start-vm2 0 "started"
check vm2-synced timeout 60 "$FM" wait --interval 1 fo_vm2
dm_reload fo_dd "0 $N error" || die "cannot fail fo_dd"
dd if=/dev/urandom of=/dev/mapper/fo_vm2 bs=4k count=4 seek=100 oflag=direct status=none ||
	fail vm2-guest-write-ok "a guest write failed (G6)"
check_phase vm2-failed fo_vm2 failed 20
run_fm "$FM" pause fo_vm2
expect_rc pause-when-failed-refused 1 "failed.*retry"
run_fm "$FM" resume fo_vm2
expect_rc resume-when-failed-refused 1 "failed, not paused"
dm_reload fo_dd "0 $N linear /dev/fo_d2 0" || die "cannot repair fo_dd"
run_fm "$FM" retry fo_vm2
expect_rc retry 0 "copying again"
check vm2-synced-after-retry timeout 60 "$FM" wait --interval 1 fo_vm2
check vm2-dest-equals-source dcmp /dev/mapper/fo_vm2-fmsrc /dev/mapper/fo_dd
run_fm "$FM" retry fo_vm2
expect_rc retry-when-synced-is-noop 0 "nothing to retry"

# ================================================================ status --json
run_fm "$FM" status --json --interval 0 fo_vm
se=$(echo "$OUT" | sed 's/^# | //' | jq -r '.[0].src_errors' 2>&1)
fm_status fo_vm
se_raw=$(set -- $ST_RAW; echo "${13:-}")
[ -n "$se_raw" ] && [ "$se" = "$se_raw" ] && pass status-json-src-errors ||
	fail status-json-src-errors "json src_errors '$se', status field '$se_raw' ($ST_RAW)"

# ================================================================ verify
info "$SECONDS s: verify"
run_fm "$FM" verify fo_vm
expect_rc verify-synced-idle 0 "equals the source"
fio_bg vload --name=vload --filename=$V "${FIO_COMMON[@]}" --ioengine=libaio \
	--iodepth=16 --rw=randwrite --size=${MIB}M --time_based --runtime=120
VPID=$BG_PID
sleep 1
run_fm "$FM" verify fo_vm
expect_rc verify-synced-under-load 0 "equals the source"
echo "$OUT" | sed -n 's/.*compared [0-9]* regions: \([0-9]*\) differed in the first pass, \([0-9]*\) again when reread, [0-9]* with .* (\([0-9]*\) suspends).*/STAT: verify_first_pass=\1 verify_reread=\2 verify_suspends=\3/p'
kill -INT $VPID 2>/dev/null
wait $VPID
check_fio verify-load-no-error vload 0
! suspended fo_vm && pass verify-leaves-disk-running || fail verify-leaves-disk-running "suspended"
grep -qx "step=migrating" "$FM_RUN_DIR/fo_vm" && pass verify-journal-restored ||
	fail verify-journal-restored "$(tr '\n' ' ' <"$FM_RUN_DIR/fo_vm")"

# complete --dry-run on the synced disk
snapshot d
run_fm "$FM" complete fo_vm --dry-run
expect_rc dry-complete-ok 0 "dry run" \
	"would run: dmsetup load fo_vm --table 0 $N linear $DST 0" \
	"would run: timeout [0-9]+ dmsetup suspend fo_vm" "would run: dmsetup resume fo_vm" \
	"would run: dmsetup remove fo_vm-fmsrc" "nothing changed"
snapshot e
same_snapshot dry-complete-changes-nothing d e
[ "$(tfield fo_vm 3)" = flushmirror ] && ! suspended fo_vm && pass dry-complete-still-migrating ||
	fail dry-complete-still-migrating "$(dmsetup table fo_vm)"
run_fm "$FM" complete fo_vm2 --dry-run
expect_rc dry-complete-vm2-ok 0 "would run: dmsetup load fo_vm2 --table 0 $N linear $(devno /dev/mapper/fo_dd) 0"

# the destination corrupted behind the target's back: region 7 and the last
RB=65536
off1=$((7 * RB + 4096)) off2=$(((N / 128 - 1) * RB + 512))
# junk: the source's bytes there, each plus 1 (mod 256): every byte differs
junk() {	# junk OFFSET BYTES
	dd if=/dev/fo_src bs=512 skip=$(($1 / 512)) count=$(($2 / 512)) iflag=direct status=none |
		tr '\000-\376\377' '\001-\377\000' >"$E2E_TMP/junk" &&
	dd if="$E2E_TMP/junk" of=/dev/fo_dst bs=512 seek=$(($1 / 512)) oflag=direct conv=notrunc status=none
}
junk $off1 4096 && junk $off2 512 || die "cannot write fo_dst"
run_fm "$FM" verify fo_vm
expect_rc verify-detects-corruption 1 "2 of $((N / 128)) regions differ" \
	"region 7: sectors 896-1023, first difference at byte $off1 " \
	"region $((N / 128 - 1)): .*first difference at byte $off2 " "do not complete"
! suspended fo_vm && pass verify-fail-leaves-disk-running || fail verify-fail-leaves-disk-running "suspended"
run_fm "$FM" verify fo_vm2
expect_rc verify-other-disk-passes 0 "equals the source"

# ================================================================ list
info "$SECONDS s: list"
run_fm "$FM" abort fo_vm2
expect_rc abort-vm2 0
run_fm env FM_TEST_STOP_AFTER=start:load "$FM" start fo_vm2 /dev/fo_y
[ $RC -eq 137 ] || fail list-setup-killed "exit $RC"
dm_create fo_raw "0 $N flushmirror /dev/fo_x /dev/fo_z 128" || die "cannot create fo_raw"
run_fm "$FM" list
expect_rc list 0 "^NAME +STATE" \
	"^fo_vm +migrating +synced +100.0% +/dev/fo_dst \($DST\)" \
	"^fo_vm2 +interrupted .*'flushmirror start' stopped after step 'load'.*finish it: flushmirror start fo_vm2" \
	"^fo_raw +foreign"
run_fm "$FM" list --json
js=$(echo "$OUT" | sed 's/^# | //')
r=$(echo "$js" | jq -r 'map("\(.name)=\(.state)/\(.step)") | sort | join(" ")' 2>&1)
[ "$r" = "fo_raw=foreign/null fo_vm2=interrupted/load fo_vm=migrating/migrating" ] &&
	pass list-json || fail list-json "$r"
mv "$FM_RUN_DIR/fo_vm2" "$E2E_TMP/j.vm2"	# as after a reboot: only the copy is left
run_fm "$FM" list
expect_rc list-persistent-journal 0 "^fo_vm2 +interrupted .*journal copy $FM_STATE_DIR/fo_vm2 only"
mv "$E2E_TMP/j.vm2" "$FM_RUN_DIR/fo_vm2"	# (no reboot: the inactive table is there)
run_fm "$FM" start fo_vm2 /dev/fo_y
expect_rc interrupted-start-finishes 0 "started"
# complete killed after its last step (the helper is gone), and /run lost
# its journal: only the copy knows of the migration
check vm2-synced-again timeout 60 "$FM" wait --interval 1 fo_vm2
run_fm env FM_TEST_STOP_AFTER=complete:remove "$FM" complete fo_vm2
[ $RC -eq 137 ] || fail list-setup-complete-killed "exit $RC"
mv "$FM_RUN_DIR/fo_vm2" "$E2E_TMP/j.vm2"
run_fm "$FM" list
expect_rc list-journal-copy-only 0 "^fo_vm2 +interrupted .*'flushmirror complete' stopped after step 'resume'.*finish it: flushmirror complete fo_vm2.*journal copy $FM_STATE_DIR/fo_vm2 only"
run_fm "$FM" complete fo_vm2
expect_rc vm2-complete-finishes 0 "complete"
[ "$(dmsetup table fo_vm2)" = "0 $N linear $(devno /dev/fo_y) 0" ] && pass vm2-on-destination ||
	fail vm2-on-destination "$(dmsetup table fo_vm2)"
run_fm "$FM" list --json
r=$(echo "$OUT" | sed 's/^# | //' | jq -r 'map(.name) | sort | join(" ")' 2>&1)
[ "$r" = "fo_raw fo_vm" ] && pass list-after-abort || fail list-after-abort "$r"
if command -v setpriv >/dev/null; then
	run_fm setpriv --reuid=65534 --regid=65534 --clear-groups "$FM" list
	[ $RC -ne 0 ] && echo "$OUT" | grep -qi dmsetup && ! echo "$OUT" | grep -qi "no migrations" &&
		pass list-fails-loudly || fail list-fails-loudly "exit $RC: $(echo "$OUT" | tr '\n' ' ' | cut -c1-200)"
else
	skip list-fails-loudly "no setpriv"
fi
dm_remove fo_raw
run_fm "$FM" abort fo_vm
expect_rc abort 0
info "$SECONDS s: end"
