#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t11-messages: pause / resume / copy_rate / flush_policy / retry messages
# (SPEC.md section 3).  Junk is rejected (non-zero exit, kernel log line);
# "paused" stops the copy, "resume" continues it, copy_rate throttles it;
# phase changes raise dm events.
. "$(dirname "$0")/lib.sh"
e2e_setup

nb_create fmm_src 64 || die "cannot create fmm_src"
nb_create fmm_dst 64 128 || die "cannot create fmm_dst"
S=/dev/fmm_src D=/dev/fmm_dst	# dst has a write-back cache: the dm device gets flushes
REGION=128			# 64 KiB regions, 1024 of them
fm_create fmm $S $D $REGION copy_rate 512 copy_jobs 1 || die "cannot create flushmirror"

msg() { timeout 30 dmsetup message fmm 0 "$@"; }
copied() { fm_status fmm; echo "$ST_COPIED"; }

# junk_rejected CHECK WORDS...: non-zero exit and a kernel log line
junk_rejected() {
	local name=$1 before out
	shift
	before=$(dmesg | wc -l)
	if out=$(msg "$@" 2>&1); then
		fail "$name" "message '$*' accepted"
		return
	fi
	if dmesg | tail -n +$((before + 1)) | grep -qi 'flushmirror\|device-mapper'; then
		pass "$name"
	else
		fail "$name" "rejected but no kernel log line for '$*'"
	fi
}

fm_status fmm
check_phase starts-copying fmm copying 10
ev0=$(dm_events fmm)

# ---- copy_rate throttles (512 KiB/s): over 4 s at most ~2 MiB + slack
c0=$(copied); sleep 4; c1=$(copied)
kib=$(( (c1 - c0) * REGION / 2 ))
info "copy_rate 512: $((c1 - c0)) regions ($kib KiB) in 4 s"
expect copy-progresses "$c1" -gt "$c0"
expect copy-rate-throttles "$kib" -le $((512 * 4 * 2 + 256))

# ---- junk while copying
junk_rejected junk-word-copying foo
junk_rejected junk-pause-arg pause now
junk_rejected junk-resume-arg resume 1
junk_rejected junk-copy_rate-missing copy_rate
junk_rejected junk-copy_rate-negative "copy_rate -5"	# one word: not a dmsetup option
junk_rejected junk-copy_rate-nonnumeric copy_rate fast
junk_rejected junk-copy_rate-extra copy_rate 10 20
junk_rejected junk-policy-missing flush_policy
junk_rejected junk-policy-bad flush_policy foo
junk_rejected junk-retry-arg retry now
fm_status fmm
expect junk-leaves-copying "$([ "$ST_PHASE" = copying ] && echo 1 || echo 0)" -eq 1 "$ST_RAW"

# ---- pause
check msg-pause-accepted msg pause
check_phase phase-paused fmm paused 10
ev1=$(dm_events fmm)
expect event-on-pause "$ev1" -gt "$ev0"
sleep 1
c0=$(copied); sleep 3; c1=$(copied)
expect paused-copy-stops "$c1" -eq "$c0" "copied moved while paused"
# writes while paused still work and reach the source
dd if=/dev/urandom of=$E2E_TMP/pat bs=64k count=2 2>/dev/null
dd if=$E2E_TMP/pat of=/dev/mapper/fmm bs=64k seek=900 oflag=direct conv=fsync 2>/dev/null
check paused-write-reaches-source same_at $E2E_TMP/pat $S $((900 * 65536))
check msg-copy_rate-while-paused msg copy_rate 0
sleep 2
c2=$(copied)
expect paused-copy_rate-does-not-unpause "$c2" -eq "$c0"
fm_status fmm
expect still-paused "$([ "$ST_PHASE" = paused ] && echo 1 || echo 0)" -eq 1 "$ST_RAW"
junk_rejected junk-word-paused foo
check msg-policy-always-paused msg flush_policy always
check msg-policy-generation-paused msg flush_policy generation

# ---- resume: continues and, unthrottled, finishes
ev2=$(dm_events fmm)
check msg-resume-accepted msg resume
if wait_phase fmm copying 10 || [ "$ST_PHASE" = synced ]; then
	pass phase-after-resume
else
	fail phase-after-resume "$ST_RAW"
fi
check_phase resume-reaches-synced fmm synced 120
ev3=$(dm_events fmm)
expect events-on-resume-and-synced "$ev3" -ge $((ev2 + 2)) "events $ev2 -> $ev3"
[ -z "$WAIT_INV_ERR" ] && pass invariants-during-copy || fail invariants-during-copy "$WAIT_INV_ERR"
check synced-equal dcmp $S $D

# ---- messages while synced
check msg-copy_rate-synced msg copy_rate 1000
check msg-policy-always-synced msg flush_policy always
check msg-policy-generation-synced msg flush_policy generation
junk_rejected junk-word-synced hello world
junk_rejected junk-policy-synced flush_policy sometimes
for m in pause resume retry; do
	if msg $m 2>/dev/null; then r=accepted; else r=rejected; fi
	fm_status fmm
	info "message '$m' while synced: $r, phase now $ST_PHASE"
	# whatever the answer, it must not lose the synced state for good
	if [ "$m" = pause ] && [ "$ST_PHASE" = paused ]; then
		msg resume
	fi
done
check_phase synced-after-pause-resume-retry fmm synced 30
check_inv invariants-synced fmm

# ---- policy change is visible in behaviour: always forwards flushes
msg flush_policy always
fm_status fmm; df0=$ST_DF gf0=$ST_GF
for i in 1 2 3; do
	dd if=/dev/zero of=/dev/mapper/fmm bs=4k count=1 seek=$i oflag=direct conv=fsync 2>/dev/null
done
fm_status fmm
info "policy always: guest flushes $gf0 -> $ST_GF, dest flushes $df0 -> $ST_DF"
expect policy-always-guest-flushes $((ST_GF - gf0)) -ge 3
expect policy-always-forwards $((ST_DF - df0)) -ge $((ST_GF - gf0))
msg flush_policy generation
