#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the UML test kernel (.build/uml/linux, built by build.sh) with the
# host's / as a read-only hostfs root and scripts/uml/init.sh as PID 1, run
# the e2e tests in it, and count their results.
#
# Usage: run-e2e.sh [-a KERNEL_ARG]... [-t SECONDS] [TEST...]
#   TEST        tNN-name, tNN-name.sh or scripts/e2e/tNN-name.sh
#               (default: every scripts/e2e/t[0-9]*.sh)
#   -a ARG      extra kernel command line argument (repeatable)
#   -T SECONDS  per-test timeout inside the guest (default 300); a test
#               asks for more with "# fm-timeout: <seconds>" in its first
#               20 lines
#   -t SECONDS  overall boot timeout (default: sum of the tests' timeouts
#               + 120)
#   -m SECONDS  cap on the overall boot timeout (scripts/check.sh's budget)
#   -o DIR      results directory (default .build/results/e2e, emptied)
#
# Results contract: each test prints "PASS: <name>", "FAIL: <name>: <reason>"
# or "SKIP: <name>: <reason>" lines (at the start of a line) to stdout/stderr;
# they land in DIR/<test>.log.  A test that exits non-zero (or times out:
# 124) without any FAIL line counts one "FAIL: <test>: exit <rc>"; a test
# that never finished (guest crashed / hung) counts "FAIL: <test>: did not
# complete".  Kernel reports in DIR/dmesg.log (BUG:, WARNING:, KASAN,
# kmemleak, possible circular locking, Call Trace, INFO: task .* blocked)
# count one failure "FAIL: dmesg: kernel reports"; kmemleak's report after
# the tests (DIR/kmemleak.log, "unreferenced object") counts one more.
# Tests may print "STAT: key=N ..." lines (cut points, writes covered and
# lost, faults injected, guest errors, fuzz cases): they are summed per key
# into DIR/stats and printed as "e2e stats: ...".  Counting is
# count_results in common.sh (shared with scripts/qemu/run-debian.sh).
# Writes DIR/summary ("passed=N failed=N skipped=N"), prints
# "e2e: N passed, N failed, N skipped" last; exits 1 when anything failed.
set -euo pipefail
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

. "$(dirname "$0")/common.sh"

extra=()
timeout_s=
test_timeout=300
RES=$FM_BUILD/results/e2e
cap=
while getopts "a:t:T:m:o:h" opt; do
	case $opt in
	a) extra+=("$OPTARG") ;;
	t) timeout_s=$OPTARG ;;
	T) test_timeout=$OPTARG ;;
	m) cap=$OPTARG ;;
	o) RES=$OPTARG ;;
	*) sed -n '4,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

LINUX=$FM_UML/linux
[ -x "$LINUX" ] || die "$LINUX missing: run scripts/uml/build.sh first"

tests=()
if [ $# -gt 0 ]; then
	for t in "$@"; do
		t=$(basename "$t" .sh)
		[ -f "$FM_REPO/scripts/e2e/$t.sh" ] || die "no test scripts/e2e/$t.sh"
		tests+=("$t")
	done
else
	for t in "$FM_REPO"/scripts/e2e/t[0-9]*.sh; do
		[ -f "$t" ] && tests+=("$(basename "$t" .sh)")
	done
fi
[ ${#tests[@]} -gt 0 ] || die "no tests in scripts/e2e/"
if [ -z "$timeout_s" ]; then
	timeout_s=120
	for t in "${tests[@]}"; do
		tt=$(awk 'NR > 20 { exit } /^# *fm-timeout: *[0-9]+/ { sub(/^# *fm-timeout: */, ""); print $1 + 0; exit }' \
			"$FM_REPO/scripts/e2e/$t.sh")
		# as the guest does (guest_run_tests): the larger of the two
		[ "${tt:-0}" -ge "$test_timeout" ] || tt=$test_timeout
		timeout_s=$((timeout_s + tt + 10))
	done
fi
if [ -n "$cap" ] && [ "$timeout_s" -gt "$cap" ]; then
	timeout_s=$cap
fi

mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
rm -f "$RES"/*.log "$RES"/*.rc "$RES"/*.timeout "$RES"/*.secs "$RES"/*.txt \
	"$RES"/done "$RES"/summary "$RES"/stats "$RES"/budget-timeout

cmdline=(
	mem=2G
	rootfstype=hostfs rootflags=/ ro
	init="$FM_REPO/scripts/uml/init.sh"
	con=null con0=fd:0,fd:1
	kunit.enable=0 null_blk.nr_devices=0
	log_buf_len=16M printk.devkmsg=on
	FM_REPO="$FM_REPO" FM_RESULTS="$RES"
	FM_TESTS="$(IFS=,; echo "${tests[*]}")"
	FM_TEST_TIMEOUT="$test_timeout"
	# no test is started in the last 5 minutes of the time limit, so
	# that the guest ends with its logs rather than being killed
	FM_STOP_AFTER=$((timeout_s > 900 ? timeout_s - 300 : timeout_s))
	"${extra[@]}"
)

log "$(fm_host_line)"
fm_simd_check || log "WARNING: cannot build $FM_SIMD_CHECK (t00 builds it in the guest)"

# UML keeps its memory in a file under $TMPDIR (default /dev/shm, then /tmp)
export TMPDIR=${TMPDIR:-/tmp}
log "booting UML for ${#tests[@]} test(s), timeout ${timeout_s}s, results in $RES"
log "$LINUX ${cmdline[*]}"
start=$(date +%s)
# UML calls setsid() first thing: its pid is the process group of all its
# helper processes, killed below (and on any exit of this script) so that
# nothing is left behind.
timeout -k 20 "$timeout_s" "$LINUX" "${cmdline[@]}" \
	</dev/null >"$RES/console.log" 2>&1 &
tpid=$!
upid=
kill_uml() { [ -z "$upid" ] || kill -KILL -- "-$upid" 2>/dev/null || true; }
trap kill_uml EXIT
for _ in $(seq 100); do
	upid=$(ps -o pid= --ppid "$tpid" | head -n 1 | tr -d ' ' || true)
	[ -n "$upid" ] && break
	sleep 0.1
done
rc=0
wait "$tpid" || rc=$?
kill_uml
log "UML exited with $rc after $(($(date +%s) - start)) s"
if [ "$rc" -eq 124 ]; then
	log "UML TIMED OUT after ${timeout_s}s"
	# count_results: tests never started are SKIPs of the time budget
	echo "$timeout_s" >"$RES/budget-timeout"
fi

# A guest that died before its first test finished is named as such, with
# the cause from its console, not only as tests that "did not complete".
started=0
for t in "${tests[@]}"; do
	[ -f "$RES/$t.rc" ] && started=1
done
if [ "$started" -eq 0 ]; then
	echo "FAIL: uml-boot: the UML guest died before its first test (exit $rc); see $RES/console.log"
	fm_uml_death "$RES/console.log" | sed 's/^/    /'
	tail -n 15 "$RES/console.log" 2>/dev/null | sed 's/^/    /'
fi
count_results e2e "$RES" "$test_timeout" "${tests[@]}"
exit
}
