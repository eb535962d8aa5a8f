#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 600
# t40-fuzz: generated tables and messages (issue 3, "Bad input").
# A seeded generator builds tables from argument pools chosen around every
# limit (counts, numbers at and past 32 bits, region sizes around 8 and
# 2097152, duplicate and conflicting features, missing and small devices).
# An oracle written from SPEC.md section 3 says whether each one is valid;
# the target must accept exactly the valid ones, reject the others with a
# "flushmirror:" error line in the kernel log, and leave no device behind.
# Messages are fuzzed the same way on a synced device.  Afterwards a valid
# table must still work.  FUZZ_SEED and FUZZ_TABLES / FUZZ_MSGS override.
. "$(dirname "$0")/lib.sh"
e2e_setup

SEED=${FUZZ_SEED:-20261125}
NT=${FUZZ_TABLES:-600}
NM=${FUZZ_MSGS:-200}
RANDOM=$SEED

nb_create fz_src 16 || die "cannot create null_blk fz_src"
nb_create fz_dst 16 || die "cannot create null_blk fz_dst"
nb_create fz_small 8 || die "cannot create null_blk fz_small"
N=$(dev_sectors /dev/fz_src)
declare -A SIZE=([/dev/fz_src]=$N [/dev/fz_dst]=$N
	[/dev/fz_small]=$(dev_sectors /dev/fz_small))

# pick VAR ARRAY: a random element (no subshell: UML forks are slow)
pick() { local -n _v=$1 _a=$2; _v=${_a[RANDOM % ${#_a[@]}]}; }
# choose VAR GOOD ARRAY: GOOD 5 times in 6, else a random element of ARRAY
choose() { if ((RANDOM % 6)); then printf -v "$1" %s "$2"; else pick "$1" "$3"; fi; }

# kstrtouint, as the target parses numbers: decimal digits, <= 2^32-1
is_uint() {
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	[ ${#1} -le 10 ] && [ $((10#$1)) -le 4294967295 ]
}

DEVS=(/dev/fz_src /dev/fz_dst /dev/fz_small /dev/fz_nonexistent junk
	253:250)
GOOD_REGIONS=(8 16 64 1024 2097152 0008)
REGIONS=(0 1 4 7 9 12 1023 4194304 2097153 4294967296 4294967304
	18446744073709551616 -8 abc 8k 0x10 1e3)
LENS=($N $N $N $((N / 2)) 8 $((N + 1)) $((N * 2)))
GOOD_VALUES=(generation always Always 0 1 8 64 4294967295)
WORDS=(nosync NOSYNC flush_policy copy_rate copy_jobs generation never 0 65
	-1 4294967296 99999999999 x "")
COUNTS=(0 1 2 3 4 5 6 7 8 -1 4294967297 x)

# valid_table LEN ARGS...: the oracle (exit 0: must be accepted)
valid_table() {
	local len=$1 src dst reg cnt i name val seen=" "
	shift
	[ $# -ge 3 ] || return 1
	src=$1 dst=$2 reg=$3
	shift 3
	is_uint "$reg" || return 1
	reg=$((10#$reg))
	[ "$reg" -ge 8 ] && [ "$reg" -le 2097152 ] &&
		[ $((reg & (reg - 1))) -eq 0 ] || return 1
	if [ $# -gt 0 ]; then
		cnt=$1
		shift
		is_uint "$cnt" && [ $((10#$cnt)) -le 7 ] || return 1
		cnt=$((10#$cnt))
		[ "$cnt" -eq $# ] || return 1
		while [ $# -gt 0 ]; do
			name=${1,,}
			shift
			case $seen in *" $name "*) return 1 ;; esac
			seen="$seen$name "
			[ "$name" = nosync ] && continue
			[ $# -gt 0 ] || return 1
			val=$1
			shift
			case $name in
			flush_policy)
				case ${val,,} in generation|always) ;; *) return 1 ;; esac ;;
			copy_rate) is_uint "$val" || return 1 ;;
			copy_jobs)
				is_uint "$val" && [ $((10#$val)) -ge 1 ] &&
					[ $((10#$val)) -le 64 ] || return 1 ;;
			*) return 1 ;;
			esac
		done
	fi
	[ -n "${SIZE[$src]:-}" ] && [ -n "${SIZE[$dst]:-}" ] || return 1
	[ "$src" != "$dst" ] || return 1
	[ "$len" -le "${SIZE[$src]}" ] && [ "$len" -le "${SIZE[$dst]}" ]
}

gen_table() {
	local nf i w
	ARGS=()
	case $((RANDOM % 10)) in
	0) nf=$((RANDOM % 3)) ;;			# too few arguments
	*) nf=3 ;;
	esac
	choose w /dev/fz_src DEVS
	[ $nf -ge 1 ] && ARGS+=("$w")
	choose w /dev/fz_dst DEVS
	[ $nf -ge 2 ] && ARGS+=("$w")
	pick w GOOD_REGIONS
	choose w "$w" REGIONS
	[ $nf -ge 3 ] && ARGS+=("$w")
	[ $nf -lt 3 ] && return
	case $((RANDOM % 8)) in
	0) return ;;					# no features
	1) pick w COUNTS; ARGS+=("$w") ;;		# a count, maybe wrong
	*) ARGS+=(COUNT) ;;				# the right count
	esac
	nf=$((RANDOM % 4))
	for ((i = 0; i < nf; i++)); do
		# mostly well-formed pairs, sometimes a random word
		pick w GOOD_VALUES
		case $((RANDOM % 9)) in
		0|1) w=nosync ;;
		2|3) ARGS+=(flush_policy); choose w "${w/[0-9]*/always}" WORDS ;;
		4|5) ARGS+=(copy_rate); choose w "$((RANDOM * 7))" WORDS ;;
		6|7) ARGS+=(copy_jobs); choose w "$((RANDOM % 64 + 1))" WORDS ;;
		*) pick w WORDS ;;
		esac
		ARGS+=("$w")
	done
	if [ "${ARGS[3]:-}" = COUNT ]; then
		ARGS[3]=$((${#ARGS[@]} - 4))
	fi
}

# Empty words cannot pass through a dm table line; drop them.
squash() { local a out=(); for a in "$@"; do [ -n "$a" ] && out+=("$a"); done; ARGS=("${out[@]}"); }

t_bad=0 t_rej=0 t_acc=0
log0=$(dmesg | wc -l)
for ((n = 0; n < NT; n++)); do
	[ $((n % 100)) -eq 0 ] && info "table $n at ${SECONDS}s"
	gen_table
	squash "${ARGS[@]}"
	choose len "$N" LENS
	table="0 $len flushmirror ${ARGS[*]}"
	valid_table "$len" "${ARGS[@]}"
	want=$?
	if timeout 30 dmsetup create fz_dev --table "$table" >/dev/null 2>&1; then
		t_acc=$((t_acc + 1))
		timeout 30 dmsetup remove fz_dev >/dev/null 2>&1 ||
			{ t_bad=$((t_bad + 1)); echo "# cannot remove after: $table"; }
		if [ $want -ne 0 ]; then
			t_bad=$((t_bad + 1))
			echo "# accepted but invalid: $table"
		fi
	else
		t_rej=$((t_rej + 1))
		if dm_exists fz_dev; then
			t_bad=$((t_bad + 1))
			echo "# rejected but left a device: $table"
			dmsetup remove --force fz_dev >/dev/null 2>&1
		fi
		if [ $want -eq 0 ]; then
			t_bad=$((t_bad + 1))
			echo "# rejected but valid: $table"
		fi
	fi
done
# every rejection logs "table: <dev>: flushmirror: <specific error> (-E...)"
t_log=$(dmesg | tail -n +$((log0 + 1)) |
	grep -cE 'device-mapper: table: [^ ]+ flushmirror: [A-Z][^(]+ \(-E[A-Z]+\)')
info "tables: $NT generated (seed $SEED), $t_acc accepted, $t_rej rejected, $t_bad wrong, $t_log specific error lines"
expect fuzz-tables-match-oracle "$t_bad" -eq 0
expect fuzz-tables-specific-errors "$t_log" -eq "$t_rej"
expect fuzz-tables-both-outcomes "$((t_acc > 50 && t_rej > 50))" -eq 1

# ---- messages on a synced device: pause/resume/retry are phase errors
fm_create fz_m /dev/fz_src /dev/fz_dst 64 nosync || die "cannot create fz_m"
MSGW=(pause resume retry copy_rate copy_rate flush_policy flush_policy
	generation always never 0 1 4294967295 4294967296 -1 x frob "")
m_bad=0 m_acc=0 m_rej=0
for ((n = 0; n < NM; n++)); do
	ARGS=()
	case $((RANDOM % 4)) in
	0) ARGS=(copy_rate "$((RANDOM * 3))") ;;
	1) pick w GOOD_VALUES; ARGS=(flush_policy "$w") ;;
	*) for ((i = RANDOM % 4; i > 0; i--)); do
		pick w MSGW
		ARGS+=("$w")
	   done ;;
	esac
	squash "${ARGS[@]}"
	[ ${#ARGS[@]} -gt 0 ] || ARGS=(x)
	want=1
	case "${ARGS[*]}" in
	"copy_rate "*)
		[ ${#ARGS[@]} -eq 2 ] && is_uint "${ARGS[1]}" && want=0 ;;
	"flush_policy "*)
		[ ${#ARGS[@]} -eq 2 ] &&
		case ${ARGS[1],,} in generation|always) true ;; *) false ;; esac &&
		want=0 ;;
	esac
	if timeout 30 dmsetup message fz_m 0 "${ARGS[@]}" >/dev/null 2>&1; then
		m_acc=$((m_acc + 1))
		[ $want -eq 0 ] || { m_bad=$((m_bad + 1)); echo "# message accepted but invalid: ${ARGS[*]}"; }
	else
		m_rej=$((m_rej + 1))
		[ $want -ne 0 ] || { m_bad=$((m_bad + 1)); echo "# message rejected but valid: ${ARGS[*]}"; }
	fi
done
fm_status fz_m
info "messages: $NM generated, $m_acc accepted, $m_rej rejected, $m_bad wrong; status $ST_RAW"
expect fuzz-messages-match-oracle "$m_bad" -eq 0
check fuzz-device-still-synced test "$ST_PHASE" = synced
dm_remove fz_m

# ---- the kernel is healthy: a valid table copies and syncs
fm_create fz_ok /dev/fz_src /dev/fz_dst 64 || die "valid table rejected after fuzzing"
pass fuzz-valid-table-after
wait_phase fz_ok synced 120 && pass fuzz-valid-table-syncs ||
	fail fuzz-valid-table-syncs "phase $ST_PHASE"
