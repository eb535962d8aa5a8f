#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 600
# t40-fuzz: generated tables and messages (issue 3, "Bad input").
# scripts/e2e/fuzz_t40.py does the work, over the dm ioctls and /dev/kmsg
# (a process per case is too slow in UML): a seeded generator builds tables
# from argument pools chosen around every limit (argument and feature
# counts, numbers at and past 2^32 and 2^64, signs, junk, region sizes
# around 8 and 2097152, lengths up to sector_t overflow, duplicate and
# conflicting features, missing, wrong-type and small devices, odd
# whitespace and escapes); an oracle written from SPEC.md section 3 says
# what must happen.  The target must accept exactly the valid tables,
# reject the others with the specific error the oracle names, and leave no
# table, device or reference behind, also when the load goes to a device
# with a live table.  Messages are fuzzed the same way on synced, copying,
# paused and failed devices.  A few cases go through dmsetup.  Afterwards a
# valid table must still copy and sync.
# FUZZ_SEED, FUZZ_TABLES (3000) and FUZZ_MSGS (1000) override.
. "$(dirname "$0")/lib.sh"
e2e_setup

SEED=${FUZZ_SEED:-20261125}
NT=${FUZZ_TABLES:-3000}
NM=${FUZZ_MSGS:-1000}

nb_create fz_src 16 || die "cannot create null_blk fz_src"
nb_create fz_dst 16 || die "cannot create null_blk fz_dst"
nb_create fz_small 8 || die "cannot create null_blk fz_small"
N=$(dev_sectors /dev/fz_src)
# destinations for the message devices: writes delayed 500 ms keep a copy
# going for the whole run; dm-error fails one
dm_create fz_slow "0 $N delay /dev/fz_dst 0 0 /dev/fz_dst 0 500" ||
	die "cannot create the dm-delay device"
dm_create fz_err "0 $N error" || die "cannot create the dm-error device"
# the driver's devices: removed at exit should it leave any
FM_DMS+=(fz_fuzz fz_ds fz_live fz_ms fz_mc fz_mf)

RES=$E2E_TMP/fuzz.results
python3 -B "$(dirname "$0")/fuzz_t40.py" --seed "$SEED" --tables "$NT" \
	--msgs "$NM" --slow fz_slow --err fz_err --results "$RES" \
	--bad-log "$E2E_BAD_LOG" --log-noise "$E2E_LOG_NOISE"
rc=$?
[ -f "$RES" ] || die "fuzz_t40.py exited $rc and wrote no results"
# shellcheck disable=SC1090
. "$RES"
if [ $rc -ne 0 ] || [ -n "$FZ_CRASH" ]; then
	fail fuzz-driver "exit $rc: $FZ_CRASH"
fi
info "driver: ${FZ_SECS}s, $FZ_IOCTLS ioctls, $FZ_KMSG_LOST kernel log records lost, longest retry-to-failed ${FZ_RETRY_WAIT}s"
# each phase change raises its own dm event, also when they come back to
# back (the event work once raised one for all that were pending)
info "dm events for 20 pause/resume pairs back to back: $FZ_BURST_EVENTS"
expect fuzz-event-per-phase-change "$FZ_BURST_EVENTS" -eq 40

# fz_check NAME COUNT FIRST: PASS if COUNT offending cases is 0
fz_check() {
	if [ "$2" -eq 0 ]; then
		pass "$1"
	else
		fail "$1" "$2 cases, first: $3"
	fi
}

fz_check fuzz-tables-match-oracle "$FZ_P_TABLES_ORACLE" "$FZ_P_TABLES_ORACLE_FIRST"
fz_check fuzz-tables-specific-errors "$FZ_P_TABLES_ERROR_LINE" "$FZ_P_TABLES_ERROR_LINE_FIRST"
fz_check fuzz-tables-accepted-state "$FZ_P_TABLES_STATE" "$FZ_P_TABLES_STATE_FIRST"
fz_check fuzz-tables-nothing-left "$FZ_P_TABLES_LEFTOVER" "$FZ_P_TABLES_LEFTOVER_FIRST"
expect fuzz-tables-both-outcomes "$((FZ_T_ACC > NT / 10 && FZ_T_REJ > NT / 10))" -eq 1 \
	"$FZ_T_ACC accepted, $FZ_T_REJ rejected of $NT"
expect fuzz-tables-dmsetup-cases "$FZ_T_DMSETUP" -gt 0
fz_check fuzz-messages-match-oracle "$FZ_P_MESSAGES_ORACLE" "$FZ_P_MESSAGES_ORACLE_FIRST"
fz_check fuzz-messages-log-lines "$FZ_P_MESSAGES_LOG" "$FZ_P_MESSAGES_LOG_FIRST"
fz_check fuzz-messages-phase-table-events "$FZ_P_MESSAGES_PHASE" "$FZ_P_MESSAGES_PHASE_FIRST"
fz_check fuzz-no-kernel-reports "$FZ_P_KERNEL_REPORT" "$FZ_P_KERNEL_REPORT_FIRST"
case " $FZ_FINAL " in
*" fz_ms=synced "*) pass fuzz-device-still-synced ;;
*) fail fuzz-device-still-synced "phases at the end: ${FZ_FINAL:-none}" ;;
esac
echo "STAT: fuzz_tables=$FZ_TABLES fuzz_msgs=$FZ_MSGS fuzz_rejected=$FZ_T_REJ fuzz_accepted=$FZ_T_ACC"

# ---- the kernel is healthy: a valid table copies and syncs
fm_create fz_ok /dev/fz_src /dev/fz_dst 64 || die "valid table rejected after fuzzing"
pass fuzz-valid-table-after
if wait_phase fz_ok synced 120; then
	pass fuzz-valid-table-syncs
else
	fail fuzz-valid-table-syncs "phase $ST_PHASE"
fi
