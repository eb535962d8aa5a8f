#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The project's whole test run ("make check"), in two lanes side by side
# (the machine has two cores; most of a guest's time is spent waiting):
#  UML lane (this shell):
#  1. KUnit: scripts/uml/build.sh builds the UML kernel with the module built
#     in and runs its KUnit suites (kunit.py);
#  2. e2e: scripts/uml/run-e2e.sh boots it and runs every scripts/e2e/t*.sh;
#  3. build/style (G9): out-of-tree module builds with W=1 against Debian's
#     newest linux-headers 6.1 and 6.12 (any warning fails), sparse (C=2,
#     6.12 headers) and checkpatch --strict;
#  4. deb: scripts/deb-check.sh builds the Debian package (make deb),
#     lintian, dpkg -i, dkms builds for the 6.1 and 6.12 headers, purge
#     (once the QEMU lane has ended: it changes the host's /, the guests'
#     root);
#  QEMU lane (in the background, its output printed after the UML lane's):
#  5. x86-debug (G8 on two CPUs): scripts/qemu/run-debian.sh -x builds the
#     same 6.12 tree for x86_64 (SMP, PREEMPT, KASAN, lockdep, kmemleak)
#     with dm-flushmirror as a module, boots it under QEMU TCG -smp 2,
#     insmods the module (its KUnit suites run then), runs the data-path
#     e2e tests, rmmods it and scans kmemleak;
#  6. qemu-debian (G9, two CPUs): scripts/qemu/run-debian.sh boots Debian's
#     stock 6.1 kernel in QEMU (TCG, -smp 2) with the module built against
#     its headers and insmod-ed, and runs the e2e tests there with what is
#     left of the budget (tests it cannot start count as budget SKIPs).
#  FM_NO_QEMU=1 leaves the QEMU lane out.
# Prints per-section counts, the fault-injection figures the tests report
# (cut points, writes covered and lost, faults injected, guest errors, fuzz
# cases rejected) and ends with exactly one line
# "N passed, N failed, N skipped"; exits 1 when anything failed.
# Logs: .build/logs/ (the QEMU lane's output: qemu-lane.log), .build/results/.
set -euo pipefail
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

. "$(dirname "$0")/uml/common.sh"
cd "$FM_REPO"
LOGDIR=$FM_BUILD/logs
mkdir -p "$LOGDIR"
# time budget (CI stops at 90 min): the e2e boot gets what is left of it
t0=$(date +%s)
BUDGET=${FM_BUDGET:-5100}
start=${FM_CI_START:-$t0}

hdr61=$(newest_pkg 'linux-headers-6\.1\.0-[0-9]+-amd64' || true)
hdr612=$(newest_pkg 'linux-headers-6\.12\.[0-9]+\+deb12-amd64' || true)
img61=$(newest_pkg 'linux-image-6\.1\.0-[0-9]+-amd64' || true)
# installed first: all apt work up front, before the timed sections and
# before the two lanes fork (two apt-get runs would fight over dpkg's lock)
apt_ensure sparse perl build-essential ${hdr61:+"$hdr61"} ${hdr612:+"$hdr612"} ||
	log "WARNING: could not install the headers packages"
apt_ensure "${FM_UML_PKGS[@]}" qemu-system-x86 kmod cpio gzip ${img61:+"$img61"} \
	dpkg-dev debhelper dh-dkms dkms lintian python3-docutils man-db ||
	log "WARNING: could not install the test bed's packages"

# counts and figures of an earlier run must not stand in for a section
# that does not run this time
rm -f "$FM_BUILD"/results/kunit.summary "$FM_BUILD"/results/deb.summary \
	"$FM_BUILD"/results/{e2e,qemu-debian,x86-debug}/{summary,stats}

# one line that diagnoses the host for User-Mode Linux (CPU, XSTATE size,
# the FP path UML takes); t00-testbed reports what the UML kernel did.
# (The tree is unpacked here, before the lanes fork, so that they never
# unpack it at the same time; build.sh reports a failure.)
( fm_prepare_tree ) >/dev/null 2>&1 || true
echo "=== host: $(fm_host_line)"

# --- the QEMU lane (5. x86-debug, 6. qemu-debian), in the background -----
# qemu_left: seconds of the budget left for a QEMU step (minus a margin for
# the UML lane's end and the counting)
qemu_left() { echo $((BUDGET - ($(date +%s) - start) - 240)); }
qemu_lane() {
	local left
	echo "=== x86-debug: the data-path e2e tests and the KUnit suites on" \
		"x86_64 with KASAN, lockdep, kmemleak (QEMU TCG -smp 2, module" \
		"insmod-ed and rmmod-ed)"
	left=$(qemu_left)
	if [ "$left" -lt 1500 ]; then
		echo "SKIP: x86-debug: only ${left}s of the time budget left"
		echo "passed=0 failed=0 skipped=1" >"$FM_BUILD/results/x86-debug/summary"
	else
		# the boot ends 10 minutes before the budget does at the latest
		# (FM_DEADLINE: counted after the kernel build), leaving those
		# to the Debian run
		FM_DEADLINE=$((start + BUDGET - 240 - 600)) \
			scripts/qemu/run-debian.sh -x || true
	fi
	echo "=== qemu-debian: e2e on Debian's stock 6.1 kernel (QEMU TCG" \
		"-smp 2, module insmod-ed)"
	left=$(qemu_left)
	if [ "$left" -lt 600 ]; then
		echo "SKIP: qemu-debian: only ${left}s of the time budget left"
		echo "passed=0 failed=0 skipped=1" >"$FM_BUILD/results/qemu-debian/summary"
	else
		FM_DEADLINE=$((start + BUDGET - 240)) scripts/qemu/run-debian.sh -t "$left" || true
	fi
}
mkdir -p "$FM_BUILD"/results/{x86-debug,qemu-debian}
rm -f "$FM_BUILD"/results/{x86-debug,qemu-debian}/{summary,stats}
qpid=
if [ "${FM_NO_QEMU:-}" ]; then
	echo "=== QEMU lane: not run (FM_NO_QEMU is set)"
else
	qemu_lane >"$LOGDIR/qemu-lane.log" 2>&1 &
	qpid=$!
	echo "=== QEMU lane started in the background (log: $LOGDIR/qemu-lane.log)"
fi

P=0 F=0 S=0
add() { P=$((P + $1)) F=$((F + $2)) S=$((S + $3)); }
readsum() { # file -> "passed failed skipped"
	local passed=0 failed=1 skipped=0
	# shellcheck disable=SC1090
	[ -f "$1" ] && . "$1"
	echo "$passed $failed $skipped"
}

# --- 1. KUnit ------------------------------------------------------------
echo "=== KUnit (UML build + kunit.py)"
brc=0
scripts/uml/build.sh || brc=$?
read -r kp kf ks < <(readsum "$FM_BUILD/results/kunit.summary")
add "$kp" "$kf" "$ks"
echo "--- KUnit: $kp passed, $kf failed, $ks skipped"

# --- 2. e2e --------------------------------------------------------------
echo "=== e2e (UML boot, scripts/e2e/t*.sh)"
if [ "$brc" -eq 2 ]; then
	echo "FAIL: e2e: not run, the UML build failed"
	ep=0 ef=1 es=0
else
	# (what build/style and deb need after it: about 8 minutes)
	left=$((BUDGET - ($(date +%s) - start) - 480))
	[ "$left" -lt 600 ] && left=600
	scripts/uml/run-e2e.sh -m "$left" || true
	read -r ep ef es < <(readsum "$FM_BUILD/results/e2e/summary")
fi
add "$ep" "$ef" "$es"
echo "--- e2e: $ep passed, $ef failed, $es skipped"

# --- 3. build and style --------------------------------------------------
echo "=== build/style (out-of-tree W=1 builds, sparse, checkpatch)"
bp=0 bf=0
ok() { echo "PASS: $1"; bp=$((bp + 1)); }
ko() { echo "FAIL: $1: $2"; bf=$((bf + 1)); }

have_src=1
for f in dm-flushmirror-target.c dm-flushmirror-metadata.c dm-flushmirror.h dm-flushmirror-metadata.h Kbuild; do
	[ -f "$f" ] || { have_src=0; log "module source $f missing"; }
done

# oot_build NAME HEADERS_PKG [make args]: copy the sources to .build/oot/NAME
# and build them there; PASS only with no warning and no error at all.
oot_build() {
	local name=$1 pkg=$2 kdir dir logf
	shift 2
	kdir=/usr/src/$pkg
	dir=$FM_BUILD/oot/$name
	logf=$LOGDIR/oot-$name.log
	if [ "$have_src" -eq 0 ]; then ko "$name" "module sources missing"; return; fi
	if [ -z "$pkg" ] || [ ! -f "$kdir/Makefile" ]; then
		ko "$name" "headers ${pkg:-package} not installed"; return
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	for f in "${FM_MODULE_FILES[@]}"; do
		[ -e "$f" ] && cp -a "$f" "$dir/"
	done
	if make -C "$kdir" M="$dir" "$@" modules >"$logf" 2>&1 &&
		! grep -qE 'warning:|error:|Error [0-9]' "$logf"; then
		ok "$name ($kdir)"
	else
		ko "$name" "see $logf"
		grep -E 'warning:|error:|Error [0-9]' "$logf" | head -n 20 | sed 's/^/    /'
	fi
}
oot_build "build-6.1-W1" "$hdr61" W=1
oot_build "build-6.12-W1" "$hdr612" W=1
oot_build "sparse-6.12" "$hdr612" C=2

if [ "$have_src" -eq 1 ] && [ -x "$FM_TREE/scripts/checkpatch.pl" ]; then
	if "$FM_TREE/scripts/checkpatch.pl" --strict --no-tree --no-summary \
		--terse -f dm-flushmirror-target.c dm-flushmirror.h \
		dm-flushmirror-metadata.c dm-flushmirror-metadata.h \
		kunit/dm-flushmirror-test.c kunit/dm-flushmirror-metadata-test.c \
		>"$LOGDIR/checkpatch.log" 2>&1 &&
		[ ! -s "$LOGDIR/checkpatch.log" ]; then
		ok "checkpatch --strict"
	else
		ko "checkpatch --strict" "see $LOGDIR/checkpatch.log"
		head -n 20 "$LOGDIR/checkpatch.log" | sed 's/^/    /'
	fi
else
	ko "checkpatch --strict" "module sources or $FM_TREE/scripts/checkpatch.pl missing"
fi
add "$bp" "$bf" 0
echo "--- build/style: $bp passed, $bf failed"

# --- 5. + 6. the QEMU lane's results ---------------------------------------
xp=0 xf=0 xs=1 qp=0 qf=0 qs=1
if [ -n "$qpid" ]; then
	wait "$qpid" || true
	cat "$LOGDIR/qemu-lane.log"
	read -r xp xf xs < <(readsum "$FM_BUILD/results/x86-debug/summary")
	read -r qp qf qs < <(readsum "$FM_BUILD/results/qemu-debian/summary")
fi
add "$xp" "$xf" "$xs"
echo "--- x86-debug: $xp passed, $xf failed, $xs skipped"
add "$qp" "$qf" "$qs"
echo "--- qemu-debian: $qp passed, $qf failed, $qs skipped"

# --- 4. the Debian package (after the QEMU lane: dpkg -i and the DKMS
# builds change the host's /, which the Debian guest runs on) --------------
echo "=== deb (make deb, lintian, dpkg -i, dkms for the 6.1 and 6.12 headers)"
dp=0 df=1 ds=0
if [ -x scripts/deb-check.sh ]; then
	rm -f "$FM_BUILD/results/deb.summary"
	FM_SKIP_APT=1 scripts/deb-check.sh || true
	read -r dp df ds < <(readsum "$FM_BUILD/results/deb.summary")
else
	echo "FAIL: deb: scripts/deb-check.sh missing"
fi
add "$dp" "$df" "$ds"
echo "--- deb: $dp passed, $df failed, $ds skipped"

# --- the figures of the fault-injection tests (issue 3) ------------------
# figure KEY: the sum of KEY over the three guest runs' stats files
figure() {
	cat "$FM_BUILD"/results/{e2e,qemu-debian,x86-debug}/stats \
		2>/dev/null | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { n += $2 } END { print n + 0 }'
}
echo "=== fault injection (UML, x86-debug, Debian 6.1): cut points tried: $(figure cuts)" \
	"power cuts, $(figure replay_points) log replay points; covered writes" \
	"checked $(figure covered), lost $(figure lost); fsynced files checked" \
	"$(figure files_covered), lost $(figure files_lost); faults injected" \
	"$(figure faults), guest errors $(figure guest_errors); fuzz cases" \
	"rejected with a specific error $(figure fuzz_rejected), valid ones" \
	"accepted $(figure fuzz_accepted)"

echo "=== total after $(($(date +%s) - t0)) s: KUnit $kp/$kf/$ks, e2e $ep/$ef/$es, build/style $bp/$bf/0, deb $dp/$df/$ds, x86-debug $xp/$xf/$xs, qemu-debian $qp/$qf/$qs (passed/failed/skipped)"
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
exit
}
