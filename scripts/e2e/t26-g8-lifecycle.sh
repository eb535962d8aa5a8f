#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t26-g8-lifecycle: G8.  Under a verifying fio load: 10 suspend/resume
# cycles while copying and while synced, table reloads with the same and
# with changed feature args, pause/resume/copy_rate messages; then remove
# while copying, while synced and while failed.  Every step runs under a
# timeout (a hang fails the step instead of the run) and the counters'
# invariants are checked after every status sample.
. "$(dirname "$0")/lib.sh"
e2e_setup

MIB=32
N=$((MIB * 2048))
nb_create fml_src $MIB 64 || die "cannot create fml_src"
nb_create fml_dst $MIB 64 || die "cannot create fml_dst"
S=/dev/fml_src D=/dev/fml_dst M=/dev/mapper/fml
dd if=/dev/urandom of=$S bs=1M count=$MIB oflag=direct status=none

INV_BAD=
# step NAME CMD...: run CMD (every dmsetup call in it is under a timeout:
# a hang fails the step), then sample the invariants
step() {
	local name=$1 out
	shift
	if ! out=$("$@" 2>&1); then
		fail "$name" "'$*': $(echo "$out" | tail -n 2 | tr '\n' ' ')"
		return 1
	fi
	dm_exists fml || return 0
	if ! fm_inv_ok fml; then
		[ -n "$INV_BAD" ] || INV_BAD="after $name: $INV_ERR"
	fi
	return 0
}
# remove_check NAME: dmsetup remove fml under timeout, device must be gone
remove_check() {
	step "$1" tdm remove fml || return
	if dm_exists fml; then fail "$1" "device still there"; else pass "$1"; fi
}
steps() {	# steps CHECK COUNT CMD...: COUNT times, one PASS/FAIL line
	local name=$1 n=$2 i
	shift 2
	for ((i = 1; i <= n; i++)); do
		step "$name" "$@" || return 1
	done
	pass "$name"
}
tdm() { timeout 60 dmsetup "$@"; }
suspend_resume() { tdm suspend "$1" && tdm resume "$1"; }
reload() { tdm load fml --table "$1" && tdm resume fml; }

fm_create fml $S $D 128 copy_rate 1024 copy_jobs 2 || die "cannot create flushmirror"

# verifying load for the whole test: backlog verify + fsyncs
fio_bg load --name=load "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--size=${MIB}M --time_based --runtime=600 --verify=crc32c \
	--verify_backlog=128 --fsync=16 --randseed=71
LOAD=$BG_PID
sleep 1

# ---- while copying
fm_status fml
info "copying: $ST_RAW"
steps suspend-resume-copying-x10 10 suspend_resume fml
fm_status fml
[ "$ST_PHASE" = copying ] && pass still-copying-after-suspends || info "phase after suspends: $ST_RAW"
T_SAME=$(dmsetup table fml)
steps reload-same-table-copying 3 reload "$T_SAME"
steps reload-changed-features-copying 1 reload \
	"0 $N flushmirror $S $D 128 6 copy_rate 2048 copy_jobs 8 flush_policy always"
steps reload-back-copying 1 reload "$T_SAME"
steps msg-pause 1 tdm message fml 0 pause
steps suspend-resume-paused-x3 3 suspend_resume fml
steps msg-resume 1 tdm message fml 0 resume
steps msg-copy_rate 1 tdm message fml 0 copy_rate 0
kill -0 $LOAD 2>/dev/null && pass load-alive-copying || fail load-alive-copying "fio died"

# ---- synced
check_phase synced-under-load fml synced 120
[ -z "$WAIT_INV_ERR" ] || INV_BAD=${INV_BAD:-$WAIT_INV_ERR}
steps suspend-resume-synced-x10 10 suspend_resume fml
T_SYNC=$(dmsetup table fml)
steps reload-same-table-synced 3 reload "$T_SYNC"
steps reload-changed-features-synced 1 reload \
	"0 $N flushmirror $S $D 128 4 copy_jobs 1 flush_policy always"
steps reload-back-synced 1 reload "$T_SYNC"
steps msg-policy-synced 2 tdm message fml 0 flush_policy generation
check_phase synced-after-reloads fml synced 120
kill -0 $LOAD 2>/dev/null && pass load-alive-synced || fail load-alive-synced "fio died"

# stop the load: no error, equal legs
kill $LOAD; wait $LOAD
e=$(fio_errors load)
r=$(fio_field load '.read.total_ios')
if [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ]; then
	pass load-verify-no-error
else
	fail load-verify-no-error "err=$e verify-reads=$r $(fio_stderr load)"
fi
check_phase synced-quiet fml synced 60
check equal-after-lifecycle dcmp $S $D
if [ -z "$INV_BAD" ]; then pass invariants-every-sample; else fail invariants-every-sample "$INV_BAD"; fi

# ---- remove while synced
remove_check remove-synced

# ---- remove while copying (copier busy, slow rate)
fm_create fml $S $D 128 copy_rate 512 || die "cannot recreate"
fio_run cl --name=cl "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--size=4M --verify=crc32c --do_verify=1 --randseed=72
check_fio remove-copying-fio cl $?
fm_status fml
info "before remove while copying: $ST_RAW"
[ "$ST_PHASE" = copying ] || info "not copying any more?"
remove_check remove-copying

# ---- remove right after create (copier just starting), 5 times
for i in 1 2 3 4 5; do
	fm_create fml $S $D 8 copy_jobs 64 || break
	timeout 60 dmsetup remove fml || break
done
dm_exists fml && fail remove-just-created "device left" || pass remove-just-created

# ---- remove while failed (destination behind a linear switched to error)
dm_create fml_dl "0 $N linear $D 0" || die "cannot create linear"
fm_create fml $S /dev/mapper/fml_dl 128 || die "cannot recreate"
wait_phase fml synced 90
dm_reload fml_dl "0 $N error"
dd if=/dev/urandom of=$M bs=4k count=16 oflag=direct conv=fsync status=none
if wait_phase fml failed 30; then
	pass failed-phase
	fio_run fl --name=fl "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
		--size=4M --verify=crc32c --do_verify=1 --randseed=73 --fsync=8
	check_fio failed-guest-io-ok fl $?
	steps suspend-resume-failed-x3 3 suspend_resume fml
	remove_check remove-failed
else
	fail failed-phase "$ST_RAW"
fi
dm_remove fml_dl
# the legs are free again
held=$(ls -A /sys/block/fml_src/holders /sys/block/fml_dst/holders | grep -v '^/sys\|^$')
[ -z "$held" ] && pass legs-released || fail legs-released "still held by: $held"
