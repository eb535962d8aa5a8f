#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (the admin command interrupted at every step: user space, the same under UML, and too slow for CI under TCG)
# fm-timeout: 900
# t32-admin-lifecycle: scripts/flushmirror proves where the disk is, keeps
# migrations apart, and survives being killed at any step (issue 10, points
# 5, 8 and 7), on null_blk disks behind dm-linear "VM disks":
#  5. the VM disk is reloaded behind the command's back (a table over the
#     source, as an LVM refresh would load; a table half on the
#     destination): complete refuses and says what it found, abort only
#     calls the source current when the disk maps it, and the disk keeps
#     its data;
#  8. a destination in use by another migration is refused; a second start
#     with other settings fails, with the same ones succeeds; status fails
#     when dmsetup does; a disk suspended by someone else is not resumed;
#     the helper has the dm uuid FLUSHMIRROR-<disk>, and a device of that
#     name without it is not taken as the helper; destinations are named
#     by dm name (a real start), /dev/mapper path, /dev/dm-N or dm-N
#     (start --dry-run: the table it would load names the device);
#  7. FM_TEST_STOP_AFTER kills the command (SIGKILL) after each step of
#     start, complete and abort; a rerun (or the other subcommand) finishes
#     or undoes it: the disk is not suspended, a dd write and read work
#     and it holds the right data.  SIGTERM while suspended resumes at
#     once; a suspend that hangs (a write held by dm-delay) is bounded by
#     FM_SUSPEND_TIMEOUT and undone; the journal copy in FM_STATE_DIR
#     lets complete finish when /run lost its own (a reboot).
# FM_CMD (kernel command line / environment) runs another flushmirror;
# T32_PARTS (default 5,8,7) runs only those parts.
. "$(dirname "$0")/lib.sh"
e2e_setup

FM=${FM_CMD:-$FM_REPO/scripts/flushmirror}
info "flushmirror command: $FM"
T32_PARTS=${T32_PARTS:-5,8,7}
part() { case ",$T32_PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib
# a distribution kernel (Debian guest) has dm-delay as a module
modprobe -q dm-delay 2>/dev/null
MIB=8
for d in fc_a fc_b fc_c fc_d fc_e fc_s; do
	nb_create $d $MIB || die "cannot create $d"
done
N=$(dev_sectors /dev/fc_a)
H=$((N / 2))
REF=$E2E_TMP/ref
head -c $((MIB << 20)) /dev/urandom >"$REF"
dd if="$REF" of=/dev/fc_a bs=1M oflag=direct status=none || die "cannot fill fc_a"
dm_create fc_vm "0 $N linear /dev/fc_a 0" || die "cannot create fc_vm"
V=/dev/mapper/fc_vm
FM_ATEXIT+=("dm_remove fc_vm-fmsrc" "dm_remove fc_vm2-fmsrc" "dm_remove fc_vs-fmsrc")



# expect_fail CHECK REGEX... : the last run_fm failed with exit 1 and its
# output matches every REGEX (extended, case-insensitive)
expect_fail() {
	local name=$1 r miss=
	shift
	for r in "$@"; do
		echo "$OUT" | grep -qiE -- "$r" || miss+=" /$r/"
	done
	if [ $RC -eq 1 ] && [ -z "$miss" ]; then
		pass "$name"
	else
		fail "$name" "exit $RC, missing$miss: $(echo "$OUT" | tail -n 3 | tr '\n' ' ' | cut -c1-300)"
	fi
}
expect_ok() {
	if [ $RC -eq 0 ]; then pass "$1"
	else fail "$1" "exit $RC: $(echo "$OUT" | tail -n 3 | tr '\n' ' ' | cut -c1-300)"; fi
}

# disk_ok CHECK [ro]: fc_vm is not suspended, is a block device, (unless
# ro) takes a 64 KiB write at a random offset and reads it back, and holds
# exactly $REF.
disk_ok() {
	local name=$1 ro=${2:-} off why=
	if suspended fc_vm; then
		fail "$name" "fc_vm is left suspended"
		timeout 30 dmsetup resume fc_vm
		return 1
	fi
	[ -b $V ] || { fail "$name" "no $V"; return 1; }
	if [ -z "$ro" ]; then
		# (few programs: under UML each costs about 0.1 s, and this
		# runs after every step)
		off=$((RANDOM % (MIB * 16)))
		head -c 65536 /dev/urandom >"$E2E_TMP/chunk"
		timeout 30 dd if="$E2E_TMP/chunk" of=$V bs=64k seek=$off oflag=direct \
			conv=notrunc status=none || why+="write failed; "
		dd if="$E2E_TMP/chunk" of="$REF" bs=64k seek=$off conv=notrunc status=none
		timeout 30 dd if=$V bs=64k skip=$off count=1 iflag=direct status=none |
			cmp -s - "$E2E_TMP/chunk" || why+="read back differs; "
	fi
	timeout 60 dd if=$V bs=1M iflag=direct status=none | cmp -s - "$REF" ||
		why+="contents differ from what was written; "
	if [ -z "$why" ]; then pass "$name"; else fail "$name" "$why(table: $(dmsetup table fc_vm | tr '\n' ' '))"; fi
}

# on DEV: fc_vm is a linear table on DEV alone, no helper
on() {
	local t
	t=$(dmsetup table fc_vm)
	[ "$t" = "0 $N linear $(devno /dev/$1) 0" ] && ! dm_exists fc_vm-fmsrc
}
migrating() { [ "$(tfield fc_vm 3)" = flushmirror ] && dm_exists fc_vm-fmsrc; }

HOME_=fc_a OTHER=fc_b
swap() { local t=$HOME_; HOME_=$OTHER; OTHER=$t; }

# ================================================================ 5. proof
info "$SECONDS s: 5. proof"
if part 5; then
run_fm "$FM" start fc_vm /dev/fc_b --region-size 64K
expect_ok p5-start
check p5-synced timeout 60 "$FM" wait --interval 1 fc_vm
# as an LVM refresh would: a table over the source (two segments: the same
# mapping as the original, not the same text)
printf '0 %d linear %s 0\n%d %d linear %s %d\n' $H "$(devno /dev/fc_a)" $H $H "$(devno /dev/fc_a)" $H |
	dmsetup load fc_vm && dmsetup resume fc_vm || die "cannot reload fc_vm"
t_src=$(dmsetup table fc_vm)
disk_ok p5-disk-on-source-table
run_fm "$FM" complete fc_vm
expect_fail p5-complete-refuses-source-table "source again" "not the destination" "$(devno /dev/fc_a)"
[ "$(dmsetup table fc_vm)" = "$t_src" ] && dm_exists fc_vm-fmsrc &&
	pass p5-complete-refusal-changes-nothing ||
	fail p5-complete-refusal-changes-nothing "table $(dmsetup table fc_vm | tr '\n' ' '), helper $(dm_exists fc_vm-fmsrc && echo kept || echo removed)"
disk_ok p5-disk-after-complete-refused
run_fm "$FM" abort fc_vm
expect_ok p5-abort-on-source-mapping
echo "$OUT" | grep -qi "stale" && fail p5-abort-no-stale-claim "abort called the source stale" ||
	pass p5-abort-no-stale-claim
! dm_exists fc_vm-fmsrc && pass p5-abort-removed-helper || fail p5-abort-removed-helper "fc_vm-fmsrc kept"
disk_ok p5-disk-after-abort

# half of the disk on the destination, half on the source
dm_reload fc_vm "0 $N linear /dev/fc_a 0" || die "cannot reload fc_vm"
run_fm "$FM" start fc_vm /dev/fc_b --region-size 64K
expect_ok p5-mixed-start
check p5-mixed-synced timeout 60 "$FM" wait --interval 1 fc_vm
printf '0 %d linear %s 0\n%d %d linear %s %d\n' $H "$(devno /dev/fc_b)" $H $H "$(devno /dev/fc_a)" $H |
	dmsetup load fc_vm && dmsetup resume fc_vm || die "cannot reload fc_vm"
t_mix=$(dmsetup table fc_vm)
run_fm "$FM" complete fc_vm
expect_fail p5-complete-refuses-mixed-table "not map the destination" "$(devno /dev/fc_a)"
[ "$(dmsetup table fc_vm)" = "$t_mix" ] && dm_exists fc_vm-fmsrc &&
	pass p5-mixed-refusal-changes-nothing || fail p5-mixed-refusal-changes-nothing "table or helper changed"
disk_ok p5-disk-after-mixed-refused ro
run_fm "$FM" abort fc_vm
expect_fail p5-abort-refuses-mixed-table "neither"
dm_exists fc_vm-fmsrc && pass p5-abort-mixed-keeps-helper || fail p5-abort-mixed-keeps-helper "helper removed"
dm_reload fc_vm "0 $N linear /dev/fc_a 0" || die "cannot reload fc_vm"
run_fm "$FM" abort fc_vm
expect_ok p5-abort-after-repair
disk_ok p5-disk-after-repair

# the happy path proves it too, and abort after a switch is refused
run_fm "$FM" start fc_vm /dev/fc_b --region-size 64K
check p5-happy-synced timeout 60 "$FM" wait --interval 1 fc_vm
run_fm env FM_TEST_STOP_AFTER=complete:resume "$FM" complete fc_vm
run_fm "$FM" abort fc_vm
expect_fail p5-abort-refuses-after-switch "stale" "fc_b"
run_fm "$FM" complete fc_vm
expect_ok p5-complete-finishes
on fc_b && pass p5-on-destination || fail p5-on-destination "table: $(dmsetup table fc_vm)"
disk_ok p5-disk-on-destination
[ ! -e "$FM_RUN_DIR/fc_vm" ] && [ ! -e "$FM_STATE_DIR/fc_vm" ] && pass p5-journal-dropped ||
	fail p5-journal-dropped "$(ls "$FM_RUN_DIR" "$FM_STATE_DIR" 2>&1 | tr '\n' ' ')"
swap	# fc_vm is on fc_b now

fi

# ================================================================ 8. apart
info "$SECONDS s: 8. apart"
if part 8; then
run_fm "$FM" start fc_vm /dev/$OTHER --region-size 64K --copy-rate 128
expect_ok p8-start
u=$(dmsetup info -c --noheadings -o uuid fc_vm-fmsrc 2>&1)
[ "$u" = FLUSHMIRROR-fc_vm ] && pass p8-helper-uuid || fail p8-helper-uuid "uuid '$u'"
grep -qx "dest=$(devno /dev/$OTHER)" "$FM_RUN_DIR/fc_vm" 2>/dev/null &&
	cmp -s "$FM_RUN_DIR/fc_vm" "$FM_STATE_DIR/fc_vm" && pass p8-journal-and-copy ||
	fail p8-journal-and-copy "$(cat "$FM_RUN_DIR/fc_vm" "$FM_STATE_DIR/fc_vm" 2>&1 | tr '\n' ' ')"
t_mig=$(dmsetup table fc_vm)
run_fm "$FM" start fc_vm /dev/$OTHER --region-size 64K --copy-rate 128
expect_ok p8-same-options-ok
echo "$OUT" | grep -qi "already migrating" && pass p8-same-options-says-so ||
	fail p8-same-options-says-so "no 'already migrating'"
run_fm "$FM" start fc_vm /dev/$OTHER --region-size 64K --copy-rate 512
expect_fail p8-other-rate-refused "already migrating" "copy rate 128"
run_fm "$FM" start fc_vm /dev/fc_c --region-size 64K --copy-rate 128
expect_fail p8-other-destination-refused "destination /dev/$OTHER"
[ "$(dmsetup table fc_vm)" = "$t_mig" ] && pass p8-second-starts-change-nothing ||
	fail p8-second-starts-change-nothing "table now $(dmsetup table fc_vm)"

# a second disk onto the same destination
dm_create fc_vm2 "0 $N linear /dev/fc_e 0" || die "cannot create fc_vm2"
t_vm2=$(dmsetup table fc_vm2)
run_fm "$FM" start fc_vm2 /dev/$OTHER
expect_fail p8-shared-destination-refused "already the destination of the migration of fc_vm"
[ "$(dmsetup table fc_vm2)" = "$t_vm2" ] && ! dm_exists fc_vm2-fmsrc &&
	pass p8-shared-refusal-changes-nothing || fail p8-shared-refusal-changes-nothing "fc_vm2 changed"

# status when dmsetup fails (not root: no access to /dev/mapper/control)
if command -v setpriv >/dev/null; then
	run_fm setpriv --reuid=65534 --regid=65534 --clear-groups "$FM" status
	if [ $RC -ne 0 ] && echo "$OUT" | grep -qi dmsetup && ! echo "$OUT" | grep -qi "no flushmirror devices"; then
		pass p8-status-fails-loudly
	else
		fail p8-status-fails-loudly "exit $RC: $(echo "$OUT" | tr '\n' ' ' | cut -c1-200)"
	fi
	run_fm setpriv --reuid=65534 --regid=65534 --clear-groups "$FM" status --json
	[ $RC -ne 0 ] && [ "$OUT" != "[]" ] && pass p8-status-json-fails-loudly ||
		fail p8-status-json-fails-loudly "exit $RC: $OUT"
else
	skip p8-status-fails-loudly "no setpriv"
fi

# a disk suspended by someone else stays suspended
dmsetup suspend fc_vm || die "cannot suspend fc_vm"
run_fm "$FM" complete fc_vm
expect_fail p8-complete-leaves-foreign-suspend "suspended, and not by"
suspended fc_vm && pass p8-still-suspended-after-complete || fail p8-still-suspended-after-complete "resumed"
dmsetup resume fc_vm
dmsetup suspend fc_vm2 || die "cannot suspend fc_vm2"
run_fm "$FM" start fc_vm2 /dev/fc_d
expect_fail p8-start-leaves-foreign-suspend "suspended, and not by"
suspended fc_vm2 && ! dm_exists fc_vm2-fmsrc && pass p8-start-still-suspended ||
	fail p8-start-still-suspended "resumed or helper made"
dmsetup resume fc_vm2

# a device named like the helper that is not one
dm_create fc_vm2-fmsrc "$t_vm2" || die "cannot create fc_vm2-fmsrc"
run_fm "$FM" start fc_vm2 /dev/fc_d
expect_fail p8-foreign-helper-refused "not the helper"
[ "$(dmsetup table fc_vm2)" = "$t_vm2" ] && [ "$(dmsetup table fc_vm2-fmsrc)" = "$t_vm2" ] &&
	pass p8-foreign-helper-untouched || fail p8-foreign-helper-untouched "changed"
dm_remove fc_vm2-fmsrc

# destinations named as the VM disk can be: a real start by dm name, the
# other forms with start --dry-run (the same resolution and checks; it
# prints the table it would load, which must name the same device)
dm_create fc_dl "0 $N linear /dev/fc_d 0" || die "cannot create fc_dl"
dl=$(devno /dev/mapper/fc_dl)
dmn=$(basename "$(readlink /sys/dev/block/$dl)")
run_fm "$FM" start fc_vm2 fc_dl --copy-rate 128
[ $RC -eq 0 ] && [ "$(tfield fc_vm2 5)" = "$dl" ] && pass "p8-destination-named-fc_dl" ||
	fail "p8-destination-named-fc_dl" "exit $RC, table $(dmsetup table fc_vm2)"
run_fm "$FM" abort fc_vm2
[ "$(dmsetup table fc_vm2)" = "$t_vm2" ] || fail "p8-abort-fc_dl" "table $(dmsetup table fc_vm2)"
for form in /dev/mapper/fc_dl /dev/$dmn $dmn; do
	run_fm "$FM" start fc_vm2 "$form" --copy-rate 128 --dry-run
	lt=$(echo "$OUT" | sed -n 's/.*would run: dmsetup load fc_vm2 --table //p')
	set -- $lt
	[ $RC -eq 0 ] && [ "${5:-}" = "$dl" ] && [ "$(dmsetup table fc_vm2)" = "$t_vm2" ] &&
		pass "p8-destination-named-$form" ||
		fail "p8-destination-named-$form" "exit $RC, would load '$lt', table $(dmsetup table fc_vm2)"
done
dm_remove fc_dl

run_fm "$FM" abort fc_vm
expect_ok p8-abort
on $HOME_ && pass p8-back-home || fail p8-back-home "table $(dmsetup table fc_vm)"
disk_ok p8-disk

fi

# ================================================================ 7. killed
info "$SECONDS s: 7. killed"
if part 7; then
# Rounds: start killed (SIGKILL) after step S, rerun start; wait; then
# either complete killed after step C, rerun complete (the disk moves to
# the other device), or abort killed after step A, rerun abort (it stays).
# kill_rerun OP STEP WHERE WHAT ARGS...: "$FM ARGS" killed after step STEP
# of OP, then run again whole: it must succeed, the disk must be WHERE (a
# command and its words: "migrating", "on DEV") and work
kill_rerun() {
	local op=$1 step=$2 where=$3 what=$4
	shift 4
	run_fm env FM_TEST_STOP_AFTER="$op:$step" "$FM" "$@"
	[ $RC -eq 137 ] || fail "p7-$op-$step-killed" "exit $RC (no kill after step $step?)"
	run_fm "$FM" "$@"
	expect_ok "p7-$op-$step-rerun"
	# shellcheck disable=SC2086  # WHERE is a command and its words
	$where && pass "p7-$op-$step-$what" || fail "p7-$op-$step-$what" "table $(dmsetup table fc_vm)"
	disk_ok "p7-$op-$step-disk"
}
start_round() {	# start_round STEP
	kill_rerun start "$1" migrating migrating start fc_vm /dev/$OTHER --region-size 64K
}
complete_round() {	# complete_round STEP
	timeout 60 "$FM" wait --interval 1 fc_vm >/dev/null 2>&1 || fail "p7-complete-$1-synced" "not synced"
	kill_rerun complete "$1" "on $OTHER" on-destination complete fc_vm
	swap
}
abort_round() {	# abort_round STEP
	kill_rerun abort "$1" "on $HOME_" home abort fc_vm
}
start_round journal;	complete_round load
start_round helper;	complete_round suspend
start_round load;	complete_round check
start_round suspend;	complete_round resume
start_round resume;	complete_round remove
for st in load suspend resume remove; do
	run_fm "$FM" start fc_vm /dev/$OTHER --region-size 64K
	abort_round $st
done
# killed in start with the flushmirror table loaded (inactive), undone by
# abort (that table holds the helper open: it must be dropped first)
run_fm env FM_TEST_STOP_AFTER=start:load "$FM" start fc_vm /dev/$OTHER --region-size 64K
run_fm "$FM" abort fc_vm
expect_ok p7-start-load-then-abort
on $HOME_ && pass p7-start-load-then-abort-home || fail p7-start-load-then-abort-home "table $(dmsetup table fc_vm)"
disk_ok p7-start-load-then-abort-disk
# killed in complete before the switch, undone by abort
run_fm "$FM" start fc_vm /dev/$OTHER --region-size 64K
timeout 60 "$FM" wait --interval 1 fc_vm >/dev/null 2>&1
run_fm env FM_TEST_STOP_AFTER=complete:check "$FM" complete fc_vm
run_fm "$FM" abort fc_vm
expect_ok p7-complete-check-then-abort
on $HOME_ && pass p7-complete-check-then-abort-home || fail p7-complete-check-then-abort-home "table $(dmsetup table fc_vm)"
disk_ok p7-complete-check-then-abort-disk
# SIGTERM while suspended: the trap resumes at once
START=(start fc_vm /dev/$OTHER --region-size 64K)
run_fm env FM_TEST_STOP_AFTER=start:suspend:TERM "$FM" "${START[@]}"
[ $RC -eq 130 ] && ! suspended fc_vm && pass p7-term-in-start-resumes ||
	fail p7-term-in-start-resumes "exit $RC, $(suspended fc_vm && echo suspended || echo resumed)"
disk_ok p7-term-in-start-disk
run_fm "$FM" "${START[@]}"
expect_ok p7-term-in-start-rerun
timeout 60 "$FM" wait --interval 1 fc_vm >/dev/null 2>&1
run_fm env FM_TEST_STOP_AFTER=complete:check:TERM "$FM" complete fc_vm
[ $RC -eq 130 ] && ! suspended fc_vm && migrating && pass p7-term-in-complete-resumes ||
	fail p7-term-in-complete-resumes "exit $RC, $(suspended fc_vm && echo suspended), table $(tfield fc_vm 3)"
disk_ok p7-term-in-complete-disk
# a reboot loses /run: the copy in FM_STATE_DIR still says where the disk went
run_fm env FM_TEST_STOP_AFTER=complete:resume "$FM" complete fc_vm
rm -f "$FM_RUN_DIR/fc_vm"
run_fm "$FM" complete fc_vm
expect_ok p7-complete-from-persistent-journal
on $OTHER && pass p7-persistent-on-destination || fail p7-persistent-on-destination "table $(dmsetup table fc_vm)"
disk_ok p7-persistent-disk
swap

# a suspend that hangs: a write held 60 s by dm-delay under the disk
dm_create fc_slow "0 $N delay /dev/fc_s 0 0 /dev/fc_s 0 60000" || die "cannot create fc_slow"
dm_create fc_vs "0 $N linear /dev/mapper/fc_slow 0" || die "cannot create fc_vs"
t_vs=$(dmsetup table fc_vs)
dd if=/dev/urandom of=/dev/mapper/fc_vs bs=64k count=1 oflag=direct status=none &
ddpid=$!
sleep 1
t0=$SECONDS
run_fm env FM_SUSPEND_TIMEOUT=2 "$FM" start fc_vs /dev/fc_c
el=$((SECONDS - t0))
expect_fail p7-suspend-timeout "did not finish within 2s"
[ $el -lt 50 ] && pass p7-suspend-timeout-bounded || fail p7-suspend-timeout-bounded "start took ${el}s"
! suspended fc_vs && [ "$(dmsetup table fc_vs)" = "$t_vs" ] && ! dm_exists fc_vs-fmsrc &&
	pass p7-suspend-timeout-undone ||
	fail p7-suspend-timeout-undone "$(dmsetup info fc_vs | grep State) table $(dmsetup table fc_vs) helper $(dm_exists fc_vs-fmsrc && echo kept)"
# suspending dm-delay sends what it holds on
timeout 60 dmsetup suspend fc_slow; dmsetup resume fc_slow
wait $ddpid && pass p7-held-write-completes || fail p7-held-write-completes "dd failed"
fi
info "$SECONDS s: end"
