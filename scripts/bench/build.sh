#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the *benchmark* User-Mode Linux kernel: the same kernel tree and the
# same overlay of the module as scripts/uml/build.sh, but the configuration
# kunit/bench.kunitconfig (no KASAN, lockdep, kmemleak) and its own build
# directory, .build/uml-bench, so the test kernel (.build/uml) is untouched.
#
# Usage: scripts/bench/build.sh        (incremental; quick when up to date)
# Environment: FM_JOBS (default nproc), FM_SKIP_APT=1, FM_BENCH_UML (build
# dir, default .build/uml-bench).
# Output: $FM_BENCH_UML/linux; log .build/logs/bench-build.log.
# Exit status: 0 built, 2 the build failed.
set -euo pipefail

. "$(dirname "$0")/../uml/common.sh"

BUILD_DIR=${FM_BENCH_UML:-$FM_BUILD/uml-bench}
KUNITCONFIG=$FM_REPO/kunit/bench.kunitconfig
JOBS=${FM_JOBS:-$(nproc)}
LOG=$FM_BUILD/logs/bench-build.log
mkdir -p "$FM_BUILD/logs"

[ -n "${FM_SKIP_APT:-}" ] || apt_ensure "${FM_UML_PKGS[@]}"

# the same tree and overlay as the test kernel (fm_prepare_tree, common.sh)
( fm_prepare_tree ) || exit 2

cd "$FM_TREE"
start=$(date +%s)
log "bench kernel: kunit.py build --build_dir=$BUILD_DIR (log: $LOG)"
if ! python3 tools/testing/kunit/kunit.py build --arch=um \
		--build_dir="$BUILD_DIR" --kunitconfig="$KUNITCONFIG" \
		--jobs="$JOBS" >"$LOG" 2>&1; then
	tail -n 40 "$LOG" >&2
	log "bench kernel build FAILED after $(($(date +%s) - start)) s"
	exit 2
fi
for o in KASAN PROVE_LOCKING DEBUG_KMEMLEAK DM_FLUSHMIRROR_DEBUG; do
	if grep -q "^CONFIG_$o=y" "$BUILD_DIR/.config"; then
		die "CONFIG_$o is on in $BUILD_DIR/.config: not a timing kernel"
	fi
done
log "bench kernel built in $(($(date +%s) - start)) s: $BUILD_DIR/linux"
