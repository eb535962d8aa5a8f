#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the User-Mode Linux test kernel with dm-flushmirror built in, and run
# its KUnit suites with the kernel's own KUnit tool (kunit.py).
#
#  1. apt-get installs what is missing (a quick dpkg -s check otherwise);
#  2. unpacks Debian's linux-source-6.12 into .build/linux-source-6.12;
#  3. overlays the module (dm-flushmirror.[ch], Kconfig, Kbuild, kunit/) into
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

# 2. kernel tree (unpacked to a temporary directory, then renamed: a half
#    unpacked tree is never mistaken for a complete one)
if [ ! -f "$FM_TREE/Makefile" ]; then
	[ -f "$FM_SRC_TARBALL" ] || die "$FM_SRC_TARBALL missing (linux-source-6.12)"
	log "unpacking $FM_SRC_TARBALL"
	rm -rf "$FM_BUILD/unpack.tmp"
	mkdir -p "$FM_BUILD/unpack.tmp"
	tar -C "$FM_BUILD/unpack.tmp" -xf "$FM_SRC_TARBALL"
	rm -rf "$FM_TREE"
	mv "$FM_BUILD/unpack.tmp/linux-source-6.12" "$FM_TREE"
	rm -rf "$FM_BUILD/unpack.tmp"
fi

# 3. overlay the module into drivers/md/flushmirror/
dest=$FM_TREE/drivers/md/flushmirror
if [ -f "$FM_REPO/Kconfig" ] && [ -f "$FM_REPO/Kbuild" ]; then
	mkdir -p "$dest"
	srcs=()
	for f in "${FM_MODULE_FILES[@]}"; do
		[ -e "$FM_REPO/$f" ] && srcs+=("$FM_REPO/$f")
	done
	# -c: compare contents, copy only what changed (mtimes of unchanged
	# files are kept, so make rebuilds only what changed)
	rsync -rc --delete "${srcs[@]}" "$dest/"
	if ! grep -q 'drivers/md/flushmirror/Kconfig' "$FM_TREE/drivers/md/Kconfig"; then
		log "hooking flushmirror into drivers/md/Kconfig"
		sed -i 's|^endif # MD$|source "drivers/md/flushmirror/Kconfig"\n\n&|' \
			"$FM_TREE/drivers/md/Kconfig"
		grep -q 'drivers/md/flushmirror/Kconfig' "$FM_TREE/drivers/md/Kconfig" ||
			die "could not patch drivers/md/Kconfig"
	fi
	if ! grep -q 'CONFIG_DM_FLUSHMIRROR' "$FM_TREE/drivers/md/Makefile"; then
		log "hooking flushmirror into drivers/md/Makefile"
		printf '\nobj-$(CONFIG_DM_FLUSHMIRROR)\t+= flushmirror/\n' \
			>>"$FM_TREE/drivers/md/Makefile"
	fi
else
	log "WARNING: no Kconfig/Kbuild in $FM_REPO: building without dm-flushmirror"
fi

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
