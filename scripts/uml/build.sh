#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the User-Mode Linux test kernel with dm-flushmirror built in, and run
# its KUnit suites with the kernel's own KUnit tool (kunit.py).
#
#  1. apt-get installs what is missing (a quick dpkg -s check otherwise);
#  2. unpacks Debian's linux-source-6.12 into .build/linux-source-6.12;
#  3. overlays the module (dm-flushmirror-*.c, dm-flushmirror*.h, Kconfig, Kbuild, kunit/) into
#     drivers/md/flushmirror/ (only changed files are copied: make stays
#     incremental) and hooks it into drivers/md/{Kconfig,Makefile} once;
#  4. kunit.py build + exec with --build_dir=.build/uml and the repo's
#     kunit/.kunitconfig; the UML binary is .build/uml/linux.
#
# Output: .build/logs/kunit.log (full) and .build/results/kunit.summary
# ("passed=N failed=N skipped=N").  Prints "KUnit: ..." counts at the end.
# Exit status: 0 all KUnit cases passed, 1 some failed, 2 the build failed.
#
# Environment: FM_KUNITCONFIG (default kunit/.kunitconfig), FM_JOBS (default
# nproc), FM_SKIP_APT=1 (do not check packages), FM_NO_KUNIT=1 (build only).
set -euo pipefail
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

. "$(dirname "$0")/common.sh"

KUNITCONFIG=${FM_KUNITCONFIG:-$FM_REPO/kunit/.kunitconfig}
JOBS=${FM_JOBS:-$(nproc)}
LOGDIR=$FM_BUILD/logs
RESDIR=$FM_BUILD/results
KLOG=$LOGDIR/kunit.log
SUMMARY=$RESDIR/kunit.summary
mkdir -p "$LOGDIR" "$RESDIR"
rm -f "$SUMMARY"

summary() { # passed failed skipped
	echo "passed=$1 failed=$2 skipped=$3" >"$SUMMARY"
	echo "KUnit: $1 passed, $2 failed, $3 skipped"
}

# 1. packages
[ -n "${FM_SKIP_APT:-}" ] || apt_ensure "${FM_UML_PKGS[@]}"

# 2. + 3. kernel tree with the module overlaid (fm_prepare_tree, common.sh)
( fm_prepare_tree ) || exit 2

# 4. build and run KUnit
[ -f "$KUNITCONFIG" ] || die "$KUNITCONFIG missing"
KUNITCONFIG=$(realpath "$KUNITCONFIG")
cd "$FM_TREE"
kunit=(python3 tools/testing/kunit/kunit.py)
kargs=(--arch=um --build_dir="$FM_UML")

start=$(date +%s)
log "kunit.py build (log: $KLOG)"
if ! "${kunit[@]}" build "${kargs[@]}" --kunitconfig="$KUNITCONFIG" \
		--jobs="$JOBS" >"$KLOG" 2>&1; then
	tail -n 40 "$KLOG" >&2
	log "UML build FAILED after $(($(date +%s) - start)) s"
	summary 0 1 0
	exit 2
fi
log "UML build took $(($(date +%s) - start)) s"

if [ -n "${FM_NO_KUNIT:-}" ]; then
	summary 0 0 0
	exit 0
fi

start=$(date +%s)
rc=0
"${kunit[@]}" exec "${kargs[@]}" >>"$KLOG" 2>&1 || rc=$?
log "kunit.py exec took $(($(date +%s) - start)) s (rc=$rc)"

# kunit.py ends with e.g.
#   Testing complete. Ran 12 tests: passed: 11, failed: 1, skipped: 0
# (a zero count is left out; "crashed: N" and "errors: N" may be added).
line=$(sed 's/\x1b\[[0-9;]*m//g' "$KLOG" | grep -a 'Testing complete\.' | tail -n 1 || true)
num() { echo "$line" | grep -o "$1: [0-9]*" | grep -o '[0-9]*$' || echo 0; }
if [ -z "$line" ]; then
	tail -n 40 "$KLOG" >&2
	summary 0 1 0
	exit 1
fi
passed=$(num passed)
failed=$(( $(num failed) + $(num crashed) + $(num errors) ))
skipped=$(num skipped)
# no summary line with no test at all is a failure too (e.g. kunit not run)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	failed=1
fi
sed 's/\x1b\[[0-9;]*m//g' "$KLOG" | grep -aE '\[(FAILED|CRASHED)\]' >&2 || true
summary "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
exit
}
