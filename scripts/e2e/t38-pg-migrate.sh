#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-qemu: skip (about 6 minutes under TCG, PostgreSQL is fork-heavy; passed on Debian 6.1 once, 20/0 in 361 s with -d)
# fm-timeout: 420
# t38-pg-migrate: a real database on the migrating disk (issue 13).
# Debian's PostgreSQL 15 runs on ext4 on a dm-linear "VM disk" over a
# null_blk, fsync, synchronous_commit and full_page_writes on (pg-lib.sh);
# python3 clients commit one INSERT per transaction through psql and log
# each transaction id outside the disk only once psql acknowledged it.
#  A. scripts/flushmirror start, wait, complete under that load: no client
#     sees an error, transactions are acknowledged while the copy runs and
#     after complete (the disk is then a linear table on the destination).
#     After a clean shutdown e2fsck -fn is clean, and with the filesystem
#     mounted again and PostgreSQL started again (from the destination,
#     not from caches) every acknowledged transaction is in the table with
#     its value, nothing that was never sent is, and pg_amcheck (heap and
#     btree, all relations) is clean.
#  B. The VM disk is reloaded live with a flushmirror table (what start
#     does; its checks, slow under UML, are A's part).  Once synced (and
#     the free space trimmed through the target, so that new WAL lands on
#     pages null_blk holds in its volatile cache), the
#     destination loses its power while the clients commit; they go on on
#     the source without an error; then PostgreSQL is killed hard.  The
#     destination alone is mounted, PostgreSQL recovers on it and must hold
#     every transaction acknowledged before the cut; pg_amcheck and
#     e2fsck -fn clean.  With debug_skip_dest_flush=1 the same cut must
#     lose acknowledged transactions (the test bites).
# T38_MIB (disk size, default 128), T38_CLIENTS (2), T38_SEED (38),
# T38_RATE (copy rate of A, default 12M), T38_PARTS (a,b: only those
# scenarios; B includes its bite check); T38_BREAK=nosync starts A with
# --nosync --force (a wrong step: the destination never gets the data) to
# show A's checks fail.
# Last line: "STAT: txns_acked=N txns_lost=N" (A, and B's normal cut).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg-lib.sh"
e2e_setup

MIB=${T38_MIB:-128}
CLIENTS=${T38_CLIENTS:-2}
RANDOM=${T38_SEED:-38}
RATE=${T38_RATE:-12M}
T38_PARTS=${T38_PARTS:-a,b}
part() { case ",$T38_PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
FM=$FM_REPO/scripts/flushmirror
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
export FM_RUN_DIR=$E2E_TMP/run FM_STATE_DIR=$E2E_TMP/varlib

miss=$(pg_missing)
for t in mkfs.ext4 e2fsck fstrim; do
	command -v $t >/dev/null || miss+="$t "
done
[ -z "$miss" ] || { skip pg-migrate "not on the host: $miss"; exit 0; }

VMS=()
pg38_cleanup() {
	local v
	[ ${#PG_CLIENT_PIDS[@]} -eq 0 ] || kill -KILL "${PG_CLIENT_PIDS[@]}" 2>/dev/null
	[ -z "${PG_DATA:-}" ] || pg_kill
	mountpoint -q "$MNT" && timeout 120 umount "$MNT"
	for v in "${VMS[@]}"; do
		dm_remove "$v"
		dm_remove "$v-fmsrc"
	done
}
FM_ATEXIT+=(pg38_cleanup)
pg_init_run || die "cannot make the PostgreSQL run directory"
MNT=$PG_RUN/mnt
mkdir -m 755 "$MNT"
t0=$SECONDS
pg_template || die "initdb failed: $(tail -n 3 $PG_RUN/initdb.log | tr '\n' ' ')"
info "initdb: $((SECONDS - t0)) s"


# vm_disk NAME: null_blk NAMEs (source) and NAMEd (destination, volatile
# cache as large as the disk), a dm-linear /dev/mapper/NAME over NAMEs with
# ext4 on it, mounted on $MNT, PostgreSQL installed and started, the table
# made, $CLIENTS clients committing.  Sets VM_ERR on failure.
vm_disk() {
	local n=$1 t
	VM_ERR=
	at "$n: setting up"
	nb_create ${n}s $MIB $MIB || { VM_ERR="cannot create ${n}s"; return 1; }
	nb_create ${n}d $MIB $MIB || { VM_ERR="cannot create ${n}d"; return 1; }
	dm_create $n "0 $(dev_sectors /dev/${n}s) linear /dev/${n}s 0" ||
		{ VM_ERR="cannot create the VM disk $n"; return 1; }
	VMS+=("$n")
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
		/dev/mapper/$n >$E2E_TMP/mkfs.out 2>&1 ||
		{ VM_ERR="mkfs.ext4: $(tail -n 2 $E2E_TMP/mkfs.out | tr '\n' ' ')"; return 1; }
	mount -t ext4 -o noinit_itable /dev/mapper/$n "$MNT" ||
		{ VM_ERR="cannot mount /dev/mapper/$n"; return 1; }
	at "$n: mkfs and mount done"
	pg_install "$MNT/pgdata" || { VM_ERR="cannot copy the data directory"; return 1; }
	at "$n: data directory copied"
	t=$SECONDS
	pg_start "$MNT/pgdata" || { VM_ERR="PostgreSQL does not start: $(pg_log_tail)"; return 1; }
	info "$n: PostgreSQL started in $((SECONDS - t)) s"
	pg_schema >/dev/null || { VM_ERR="CREATE TABLE failed"; return 1; }
	t=$SECONDS
	pg_clients_start $CLIENTS ||
		{ VM_ERR="clients do not commit: $(cat $PG_RUN/client.*.err | head -c 300)"; return 1; }
	info "$n: $CLIENTS clients committing after $((SECONDS - t)) s"
}


# at WHAT: a diagnosis line with the seconds since the test started
at() { info "[$SECONDS s] $*"; }

sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

total_acked=0 total_lost=0

# ======================================================== A: live migration
scenario_a() {
	local V=/dev/mapper/p38a D=/dev/p38ad opts n1 n2 n3 n4 gf_copy logs
	vm_disk p38a || { fail pg-a-setup "$VM_ERR"; return; }
	sleep 1
	opts=(--copy-rate "$RATE")
	[ "${T38_BREAK:-}" = nosync ] && opts=(--nosync --force)
	n1=$(pg_clients_acked)
	at "A: start"
	check pg-a-start $FM start p38a $D "${opts[@]}"
	at "A: started"
	check pg-a-wait timeout 240 $FM wait --interval 2 p38a
	at "A: synced"
	n2=$(pg_clients_acked)
	fm_status p38a
	info "A synced: $ST_RAW"
	gf_copy=$ST_GF
	expect pg-a-commits-while-copying $((n2 - n1)) -gt 0 \
		"transactions acknowledged between start and synced"
	sleep 2
	n3=$(pg_clients_acked)
	fm_status p38a
	info "A before complete: $ST_RAW"
	expect pg-a-guest-flushes-grow "$ST_GF" -gt "$gf_copy" \
		"commits while synced ($((n3 - n2)) acknowledged) must send guest flushes"
	at "A: complete"
	check pg-a-complete $FM complete p38a
	at "A: complete done"
	check pg-a-disk-is-linear-on-destination is_linear_on p38a $D
	sleep 2
	n4=$(pg_clients_acked)
	expect pg-a-commits-after-complete $((n4 - n3)) -gt 0 \
		"transactions acknowledged on the destination alone"
	pg_clients_stop
	if [ -z "$PG_CLIENT_ERR" ]; then
		pass pg-a-no-client-error
	else
		fail pg-a-no-client-error "$PG_CLIENT_ERR"
	fi
	# what the server has in memory and in the page cache proves nothing
	# about the destination: a clean shutdown, the filesystem checked and
	# mounted again, PostgreSQL started again, all from the destination
	check pg-a-clean-shutdown pg_stop
	PG_DATA=
	grep -E 'PANIC|FATAL|ERROR' $PG_RUN/server.log | head -n 5 | sed 's/^/# A server log: /'
	timeout 120 umount "$MNT"
	check pg-a-e2fsck e2fsck -fn $V
	at "A: e2fsck done"
	if ! mount -t ext4 $V "$MNT" 2>$E2E_TMP/mount.err; then
		fail pg-a-restart-on-destination "mount: $(tr '\n' ' ' <$E2E_TMP/mount.err)"
		return
	fi
	if ! pg_start "$MNT/pgdata"; then
		fail pg-a-restart-on-destination "$(pg_log_tail 6)"
		return
	fi
	pass pg-a-restart-on-destination
	logs=$(pg_client_logs)
	if pg_verify "$logs" "$logs"; then
		info "A: acknowledged $PV_ACKED (copying $((n2 - n1)), after complete $((n4 - n3))), rows $PV_ROWS, lost $PV_LOST, never sent $PV_PHANTOM, wrong value $PV_BAD"
		expect pg-a-acked-checked "$PV_ACKED" -gt 0
		expect pg-a-acked-lost "$PV_LOST" -eq 0
		expect pg-a-no-phantom-rows $((PV_PHANTOM + PV_BAD)) -eq 0 \
			"$PV_PHANTOM ids never sent, $PV_BAD wrong values"
		total_acked=$((total_acked + PV_ACKED))
		total_lost=$((total_lost + PV_LOST))
	else
		fail pg-a-verify "$PV_ERR"
	fi
	at "A: verified"
	check pg-a-amcheck pg_amcheck_all
	at "A: amcheck done"
	pg_stop
	PG_DATA=
}

# ======================================================== B: power cut
# pg_cut NAME BITE: one cut; sets CUT_ERR (could not be done), CUT_BAD
# (what the clients saw), CUT_DMG (the destination after the cut), CUT_ACKED,
# CUT_LOST
pg_cut() {
	local n=$1 bite=$2 ms fl a_cut t
	CUT_ERR='' CUT_BAD='' CUT_DMG='' CUT_ACKED=0 CUT_LOST=0
	vm_disk $n || { CUT_ERR=$VM_ERR; return; }
	at "$n: start"
	# what "flushmirror start" does (A), without its checks (slow under
	# UML, where the clients share one CPU with it): a live reload of the
	# VM disk with a flushmirror table
	dm_reload $n "$(fm_table /dev/${n}s /dev/${n}d 1024)" ||
		{ CUT_ERR="cannot reload $n with a flushmirror table"; return; }
	wait_phase $n synced 120 || { CUT_ERR="not synced: $ST_RAW"; return; }
	at "$n: synced"
	# the copy put every destination page into null_blk's store (written
	# through at once): discard the free space through the target, and
	# go on with a new (sparse) WAL segment in it
	fstrim "$MNT" || { CUT_ERR="fstrim through the target failed"; return; }
	pg_sql "SELECT pg_switch_wal()" >/dev/null || { CUT_ERR="pg_switch_wal failed"; return; }
	[ "$bite" = 1 ] && echo 1 >$PARAM
	ms=$((1500 + RANDOM % 2500))
	sleep_ms $ms
	fl=$(flush_count /dev/${n}d)
	# the acknowledged set first, then the cut: a transaction acknowledged
	# in between is only not counted
	pg_clients_snapshot
	a_cut=$(pg_clients_acked)
	nb_power ${n}d 0
	sleep 1
	[ "$bite" = 1 ] && echo 0 >$PARAM
	t=$(pg_clients_acked)
	pg_clients_stop
	[ -z "$PG_CLIENT_ERR" ] || CUT_BAD+="$PG_CLIENT_ERR"
	[ $((t - a_cut)) -gt 0 ] || CUT_BAD+="no commit after the cut; "
	fm_status $n
	info "cut $n ($([ "$bite" = 1 ] && echo "destination flushes skipped, ")after $ms ms): $a_cut acknowledged, $((t - a_cut)) more on the source in 1 s after the cut; $fl destination flushes before the cut; $ST_RAW"
	[ "$ST_PHASE" = failed ] || info "cut $n: target is $ST_PHASE after the cut, not failed"
	at "$n: clients stopped"
	pg_kill
	timeout 120 umount "$MNT" || { CUT_ERR="umount of the VM disk failed"; return; }
	dm_remove $n && dm_remove $n-fmsrc || { CUT_ERR="cannot remove $n"; return; }
	nb_power ${n}d 1 && wait_bdev /dev/${n}d 10 || { CUT_ERR="power on failed"; return; }
	# the destination alone
	if ! mount -t ext4 /dev/${n}d "$MNT" 2>$E2E_TMP/mount.err; then
		CUT_DMG+="destination does not mount: $(tr '\n' ' ' <$E2E_TMP/mount.err); "
	else
		t=$SECONDS
		if ! pg_start "$MNT/pgdata"; then
			CUT_DMG+="PostgreSQL does not start on the destination: $(pg_log_tail 6); "
		else
			info "cut $n: recovery and start on the destination: $((SECONDS - t)) s; $(grep -E 'redo (starts|done)|invalid record|record with' $PG_RUN/server.log | tail -n 3 | sed 's/^.*LOG: *//' | tr '\n' ';')"
			if pg_verify "$(pg_client_logs .snap)" "$(pg_client_logs)"; then
				CUT_ACKED=$PV_ACKED CUT_LOST=$PV_LOST
				info "cut $n: acknowledged before the cut $PV_ACKED, rows $PV_ROWS, lost $PV_LOST, never sent $PV_PHANTOM, wrong value $PV_BAD"
				[ "$PV_LOST" -eq 0 ] || CUT_DMG+="$PV_LOST of $PV_ACKED acknowledged transactions lost; "
				[ $((PV_PHANTOM + PV_BAD)) -eq 0 ] ||
					CUT_DMG+="$PV_PHANTOM rows never sent, $PV_BAD wrong values; "
			else
				CUT_DMG+="$PV_ERR; "
			fi
			at "$n: verified"
			pg_amcheck_all >$E2E_TMP/amcheck.out 2>&1 ||
				CUT_DMG+="pg_amcheck: $(head -n 3 $E2E_TMP/amcheck.out | tr '\n' ' '); "
			pg_stop || CUT_DMG+="PostgreSQL does not stop; "
		fi
		PG_DATA=
		timeout 120 umount "$MNT" || CUT_DMG+="umount of the destination failed; "
	fi
	PG_DATA=
	at "$n: destination checked, e2fsck next"
	if ! e2fsck -fn /dev/${n}d >$E2E_TMP/fsck.out 2>&1; then
		CUT_DMG+="e2fsck -fn unclean; "
		grep -v '^Pass\|^e2fsck [0-9]' $E2E_TMP/fsck.out | head -n 6 | sed "s/^/# cut $n e2fsck: /"
	fi
	nb_destroy ${n}d
	nb_destroy ${n}s
}

scenario_b() {
	pg_cut p38b 0
	if [ -n "$CUT_ERR" ]; then
		fail pg-b-cut "$CUT_ERR"
	else
		[ -z "$CUT_BAD" ] && pass pg-b-no-client-error-across-cut ||
			fail pg-b-no-client-error-across-cut "$CUT_BAD"
		[ -z "$CUT_DMG" ] && pass pg-b-destination-recovers-with-every-ack ||
			fail pg-b-destination-recovers-with-every-ack "$CUT_DMG"
		expect pg-b-acked-checked "$CUT_ACKED" -gt 0
		total_acked=$((total_acked + CUT_ACKED))
		total_lost=$((total_lost + CUT_LOST))
	fi
	pg38_cleanup
	VMS=()

	# ---- the test bites
	if [ -n "$CUT_ERR" ]; then
		skip pg-b-test-bites "the normal cut could not be done"
	elif [ -w $PARAM ]; then
		FM_ATEXIT+=("echo 0 > $PARAM")
		pg_cut p38c 1
		echo 0 >$PARAM
		if [ -n "$CUT_ERR$CUT_BAD" ]; then
			fail pg-b-test-bites "$CUT_ERR$CUT_BAD"
		elif [ -n "$CUT_DMG" ]; then
			pass pg-b-test-bites
			info "with debug_skip_dest_flush=1: $CUT_DMG"
			echo "STAT: bite_txns_lost=$CUT_LOST"
		else
			fail pg-b-test-bites "no acknowledged transaction lost, PostgreSQL, pg_amcheck and e2fsck clean with destination flushes skipped (checked $CUT_ACKED)"
		fi
		pg38_cleanup
	else
		skip pg-b-test-bites "no $PARAM (not a debug build)"
	fi
}

if part a; then
	scenario_a
	pg38_cleanup
	VMS=()
	nb_destroy p38ad
	nb_destroy p38as
else
	skip pg-a "not in T38_PARTS=$T38_PARTS"
fi
if part b; then
	scenario_b
else
	skip pg-b "not in T38_PARTS=$T38_PARTS"
fi

echo "STAT: txns_acked=$total_acked txns_lost=$total_lost"
