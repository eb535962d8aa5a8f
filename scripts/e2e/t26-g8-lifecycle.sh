#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# t26-g8-lifecycle: G8.  Under a verifying fio load: 10 suspend/resume
# cycles while copying and while synced, table reloads with the same and
# with changed feature args, pause/resume/copy_rate messages, reload while
# paused; then remove while copying, while paused, while synced and while
# failed, and in the failed phase, under a writer load: suspend/resume,
# reload and retry.  Every step runs under a timeout (a hang fails the step
# instead of the run) and the counters' invariants are checked after every
# status sample.
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

# (T26_COPY_RATE: slower on a slow kernel, run-debian.sh -x, where ten
# suspends take longer than the whole copy at 1 MiB/s)
fm_create fml $S $D 128 copy_rate "${T26_COPY_RATE:-1024}" copy_jobs 2 ||
	die "cannot create flushmirror"

# verifying load for the whole test: backlog verify + fsyncs (stopped
# below; 3600 s, since under KASAN in TCG on a busy host this part took
# longer than the 600 s it had and fio ended on its own: "fio died")
fio_bg load --name=load "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--size=${MIB}M --time_based --runtime=3600 --verify=crc32c \
	--verify_backlog=128 --fsync=16 --randseed=71
LOAD=$BG_PID
sleep 1

# ---- while copying
fm_status fml
info "copying: $ST_RAW"
steps suspend-resume-copying-x10 10 suspend_resume fml
fm_status fml
if [ "$ST_PHASE" = copying ]; then
	pass still-copying-after-suspends
else
	fail still-copying-after-suspends "$ST_RAW"
fi
T_SAME=$(dmsetup table fml)
steps reload-same-table-copying 3 reload "$T_SAME"
steps reload-changed-features-copying 1 reload \
	"0 $N flushmirror $S $D 128 6 copy_rate 2048 copy_jobs 8 flush_policy always"
steps reload-back-copying 1 reload "$T_SAME"
steps msg-pause 1 tdm message fml 0 pause
check_phase paused-after-message fml paused 10
steps suspend-resume-paused-x3 3 suspend_resume fml
# a pause holds until the resume message (Documentation/flushmirror.rst)
check_phase still-paused-after-suspends fml paused 5
# reload while paused: a new table starts copying (pause is no table
# argument); it must not hang, and the phase must be a copy phase
T_PAUSED=$(dmsetup table fml)
steps reload-same-table-paused 1 reload "$T_PAUSED"
fm_status fml
info "after a reload while paused: $ST_RAW"
case $ST_PHASE in
copying|paused) pass reload-paused-copy-phase ;;
*) fail reload-paused-copy-phase "$ST_RAW" ;;
esac
[ "$ST_PHASE" = paused ] || steps msg-pause-again 1 tdm message fml 0 pause
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

# ---- remove while paused
fm_create fml $S $D 128 copy_rate 512 || die "cannot recreate"
dd if=/dev/urandom of=$M bs=64k count=16 seek=100 oflag=direct conv=fsync status=none
steps msg-pause-before-remove 1 tdm message fml 0 pause
check_phase paused-before-remove fml paused 10
remove_check remove-paused

# ---- remove right after create (copier just starting), 5 times
for i in 1 2 3 4 5; do
	fm_create fml $S $D 8 copy_jobs 64 || break
	timeout 60 dmsetup remove fml || break
done
dm_exists fml && fail remove-just-created "device left" || pass remove-just-created

# ---- failed (destination behind a linear switched to error), under a
# verifying writer load: suspend/resume, reload (a new table copies again
# onto the broken destination: failed again), retry; then remove
dm_create fml_dl "0 $N linear $D 0" || die "cannot create linear"
fm_create fml $S /dev/mapper/fml_dl 128 || die "cannot recreate"
wait_phase fml synced 90 || info "not synced before the fault: $ST_RAW"
fio_bg fload --name=fload "${FIO_COMMON[@]}" --filename=$M --rw=randwrite \
	--size=8M --time_based --runtime=3600 --verify=crc32c \
	--verify_backlog=64 --fsync=8 --randseed=73
FLOAD=$BG_PID
sleep 1
INV_BAD=
dm_reload fml_dl "0 $N error"
if wait_phase fml failed 30; then
	pass failed-phase
	steps suspend-resume-failed-x3 3 suspend_resume fml
	check_phase still-failed-after-suspends fml failed 5
	T_FAILED=$(dmsetup table fml)
	steps reload-same-table-failed 2 reload "$T_FAILED"
	check_phase reload-failed-fails-again fml failed 30
	steps msg-retry-failed 1 tdm message fml 0 retry
	check_phase retry-broken-dest-fails-again fml failed 30
	kill -0 $FLOAD 2>/dev/null && pass load-alive-failed || fail load-alive-failed "fio died"
else
	fail failed-phase "$ST_RAW"
fi
kill $FLOAD; wait $FLOAD
e=$(fio_errors fload)
r=$(fio_field fload '.read.total_ios')
if [ "$e" = 0 ] && [ "${r:-0}" -gt 0 ]; then
	pass failed-load-verify-no-error
else
	fail failed-load-verify-no-error "err=$e verify-reads=$r $(fio_stderr fload)"
fi
if [ -z "$INV_BAD" ]; then pass invariants-failed; else fail invariants-failed "$INV_BAD"; fi
fm_status fml
[ "$ST_PHASE" = failed ] || info "not failed before the remove: $ST_RAW"
remove_check remove-failed
dm_remove fml_dl
# the legs are free again
held=$(ls -A /sys/block/fml_src/holders /sys/block/fml_dst/holders | grep -v '^/sys\|^$')
[ -z "$held" ] && pass legs-released || fail legs-released "still held by: $held"
