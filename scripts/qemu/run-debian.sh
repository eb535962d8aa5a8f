#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot Debian's stock kernel (linux-image-$KVER) in QEMU (TCG, two CPUs)
# with dm-flushmirror built out of tree against the matching linux-headers
# and loaded by insmod next to the distribution's own dm-mod, and run the
# end-to-end tests (scripts/e2e/t*.sh) in it: G9 on an unmodified kernel
# and the two-CPU run of the e2e suite.
#
# Usage: run-debian.sh [options] [TEST...]
#   TEST        tNN-name, tNN-name.sh or scripts/e2e/tNN-name.sh
#               (default: $FM_QEMU_DEFAULT_TESTS, "all": every test)
#   -t SECONDS  overall timeout for QEMU (default: sum of test timeouts + 300)
#   -T SECONDS  per-test timeout inside the guest (default 600; with -x
#               1200: KASAN, lockdep and kmemleak under TCG on a busy host
#               took t26 612 s)
#   -o DIR      results directory (default .build/results/qemu-debian, emptied)
#   -k KVER     Debian kernel version (default: the newest 6.1.0-N-amd64)
#   -m MEM      guest memory (default 2G)
#   -s N        guest CPUs (default 2)
#   -a ARG      extra kernel command line argument (repeatable); a
#               NAME=value word reaches the tests as environment
#   -c          count only: no build, no boot; count the results already in DIR
#               (FM_DEADLINE=EPOCH in the environment caps the boot so that
#               it ends by then, whatever the builds before it took)
#   -d          build the module with its test-only fault switches
#               (CONFIG_DM_FLUSHMIRROR_DEBUG: debug_skip_dest_flush, so that
#               t23/t27 can show their checks bite); default: as shipped
#   -x          instead of Debian's kernel, the x86_64 debug kernel: the
#               6.12 tree of the UML kernel built for x86_64 in
#               .build/x86-debug from scripts/qemu/x86_64-debug.config
#               (SMP, PREEMPT, KASAN, lockdep, kmemleak), with
#               dm-flushmirror as a module (KUnit suites and fault
#               switches inside).  The guest insmods it (its KUnit suites
#               run then: counted as the pseudo-test "kunit-module"), runs
#               the tests, rmmods it ("module-unload") and scans kmemleak.
#               Default tests: $FM_DEBUG_DEFAULT_TESTS; default results
#               directory .build/results/x86-debug
#
# The host's / is shared read-only with the guest over virtio-9p (the guest
# runs the host's bash, dmsetup, fio), the results directory read-write.
# Needs qemu-system-x86, linux-image-$KVER, linux-headers-$KVER and
# busybox-static (installed with apt-get when missing).  No KVM: TCG only.
#
# Results contract as scripts/uml/run-e2e.sh: PASS/FAIL/SKIP lines counted
# from DIR/<test>.log, a test that exits non-zero without a FAIL line
# counts one FAIL, one that did not finish counts "did not complete";
# kernel reports in DIR/dmesg.log count one more FAIL.  Prints
# "qemu-debian: N passed, N failed, N skipped" last; exits 1 on failures.
#
set -euo pipefail

. "$(dirname "$0")/../uml/common.sh"

# Debian's newest 6.1 kernel ABI (older ones leave the mirrors)
KVER=$(newest_pkg 'linux-image-6\.1\.0-[0-9]+-amd64' || true)
KVER=${KVER#linux-image-}
KVER=${KVER:-6.1.0-56-amd64}
RES=$FM_BUILD/results/qemu-debian
QDIR=$FM_BUILD/qemu
timeout_s=
test_timeout=
mem=2G
smp=2
extra=()
debug=
count_only=
# The default set: every e2e test (the whole suite on two CPUs).  Measured
# seconds per test on idle cores: t00 4, t10 33, t11 22, t20 17, t22 40,
# t23 8, t24 220, t25 24, t26 31, t27 66-148, t28 42, t29 50, t30 27, t40 88
# (boot about 15); FM_QEMU_DEFAULT_TESTS narrows it.
FM_QEMU_DEFAULT_TESTS=${FM_QEMU_DEFAULT_TESTS:-all}
# -x: the tests of concurrency in the data path (teardown under running
# completions, copies against in-flight writes, suspend/resume/reload/
# remove under load, the switchover) on the KASAN/lockdep/kmemleak kernel
# with two CPUs.  That kernel runs about 13 times slower than Debian's
# under TCG (t10-table: 438 s against 33 s), so make check runs these
# four; "make check-full" adds the rest of the data-path tests
# (FM_DEBUG_DEFAULT_TESTS=full).
FM_DEBUG_DEFAULT_TESTS=${FM_DEBUG_DEFAULT_TESTS:-t41-g8-teardown \
t33-g3-inflight-copy t26-g8-lifecycle t25-g7-switchover}
[ "$FM_DEBUG_DEFAULT_TESTS" != full ] || FM_DEBUG_DEFAULT_TESTS="t41-g8-teardown \
t33-g3-inflight-copy t26-g8-lifecycle t25-g7-switchover t20-g1-source \
t21-g2-g3-converge t22-g5-economy t23-g4-fua-synced t35-g4-sync-epoch \
t36-g7-suspend-bounded t10-table t11-messages"
xdebug=
XDIR=$FM_BUILD/x86-debug

while getopts "t:T:o:k:m:s:a:cdxh" opt; do
	case $opt in
	t) timeout_s=$OPTARG ;;
	T) test_timeout=$OPTARG ;;
	o) RES=$OPTARG ;;
	k) KVER=$OPTARG ;;
	m) mem=$OPTARG ;;
	s) smp=$OPTARG ;;
	a) extra+=("$OPTARG") ;;
	c) count_only=1 ;;
	d) debug=1 ;;
	x) xdebug=1 ;;
	*) sed -n '/^# Usage/,/^#$/p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ -n "$xdebug" ]; then
	[ "$RES" != "$FM_BUILD/results/qemu-debian" ] || RES=$FM_BUILD/results/x86-debug
	# shellcheck disable=SC2086  # a list of names
	[ $# -gt 0 ] || set -- $FM_DEBUG_DEFAULT_TESTS
fi

tests=()
# shellcheck disable=SC2086  # a list of names
[ $# -gt 0 ] || set -- $FM_QEMU_DEFAULT_TESTS
qemu_skipped=()
if [ "$*" = all ]; then
	# "# fm-qemu: skip REASON" in a test's first 20 lines keeps it out of
	# "all" (it still runs under UML, and here when named)
	for t in "$FM_REPO"/scripts/e2e/t[0-9]*.sh; do
		[ -f "$t" ] || continue
		if awk 'NR > 20 { exit } /^# *fm-qemu: *skip/ { f = 1; exit } END { exit !f }' "$t"; then
			qemu_skipped+=("$(basename "$t" .sh)")
			continue
		fi
		tests+=("$(basename "$t" .sh)")
	done
	[ ${#qemu_skipped[@]} -eq 0 ] ||
		log "not run on Debian's kernel (fm-qemu: skip, they run under UML): ${qemu_skipped[*]}"
else
	for t in "$@"; do
		tests+=("$(basename "$t" .sh)")
	done
fi
for t in "${tests[@]}"; do
	[ -f "$FM_REPO/scripts/e2e/$t.sh" ] || die "no test scripts/e2e/$t.sh"
done
[ ${#tests[@]} -gt 0 ] || die "no tests"
[ -n "$test_timeout" ] || test_timeout=$([ -n "$xdebug" ] && echo 1200 || echo 600)
[ -n "$timeout_s" ] || timeout_s=$((test_timeout * ${#tests[@]} + 300))

# build_debug_kernel: the x86_64 debug kernel of -x in $XDIR, from the
# module-overlaid 6.12 tree of the UML kernel (fm_prepare_tree) and
# scripts/qemu/x86_64-debug.config merged over the defaults; incremental
# when the fragment has not changed.  Sets VMLINUZ and MOD.
build_debug_kernel() {
	local frag=$FM_REPO/scripts/qemu/x86_64-debug.config line missing=0 start
	local blog=$FM_BUILD/logs/x86-debug-build.log
	apt_ensure "${FM_UML_PKGS[@]}"
	fm_prepare_tree
	mkdir -p "$XDIR" "$FM_BUILD/logs"
	if ! cmp -s "$frag" "$XDIR/.fm-fragment"; then
		log "configuring $XDIR from $frag"
		grep -E '^CONFIG_' "$frag" >"$XDIR/.config"
		make -s -C "$FM_TREE" O="$XDIR" ARCH=x86_64 olddefconfig >"$blog" 2>&1 ||
			{ cat "$blog" >&2; die "make olddefconfig failed"; }
		while read -r line; do
			grep -qx "$line" "$XDIR/.config" ||
				{ log "not in the final .config: $line"; missing=1; }
		done < <(grep -E '^CONFIG_' "$frag")
		[ "$missing" = 0 ] || die "$frag: options lost by olddefconfig (missing dependencies)"
		cp "$frag" "$XDIR/.fm-fragment"
	fi
	start=$(date +%s)
	log "building the x86_64 debug kernel in $XDIR (log: $blog)"
	make -C "$FM_TREE" O="$XDIR" ARCH=x86_64 -j"${FM_JOBS:-$(nproc)}" \
		bzImage modules >"$blog" 2>&1 ||
		{ tail -n 40 "$blog" >&2; die "x86_64 debug kernel build failed"; }
	log "x86_64 debug kernel built in $(($(date +%s) - start)) s"
	VMLINUZ=$XDIR/arch/x86/boot/bzImage
	MOD=$XDIR/drivers/md/flushmirror
	KVER=$(cat "$XDIR/include/config/kernel.release")
}

boot() {
if [ -n "$xdebug" ]; then
	apt_ensure qemu-system-x86 busybox-static kmod cpio gzip dmsetup fio jq \
		nbd-server nbd-client iproute2
	build_debug_kernel
else
KDIR=/usr/src/linux-headers-$KVER
apt_ensure qemu-system-x86 "linux-image-$KVER" "linux-headers-$KVER" \
	busybox-static kmod cpio gzip dmsetup fio jq \
	nbd-server nbd-client iproute2 postgresql-15
VMLINUZ=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
[ -r "$VMLINUZ" ] || die "$VMLINUZ missing"
[ -d "$KDIR" ] || die "$KDIR missing"

# ---- 1. the module, out of tree against the distribution's headers
MOD=$QDIR/module-$KVER${debug:+-debug}
kflags=()
[ -z "$debug" ] || kflags=(KCFLAGS=-DCONFIG_DM_FLUSHMIRROR_DEBUG)
mkdir -p "$MOD"
for f in "${FM_MODULE_FILES[@]}"; do
	[ -e "$FM_REPO/$f" ] && cp -a "$FM_REPO/$f" "$MOD/"
done
log "building dm-flushmirror.ko against $KDIR${debug:+ (with the debug switches)}"
make -s -C "$KDIR" M="$MOD" "${kflags[@]}" modules >"$QDIR/module-build.log" 2>&1 ||
	{ cat "$QDIR/module-build.log" >&2; die "module build failed"; }
grep -E 'warning|error' "$QDIR/module-build.log" >&2 || true
fi
vm=$(modinfo -F vermagic "$MOD/dm-flushmirror.ko")
[ "${vm%% *}" = "$KVER" ] || die "vermagic '$vm' is not $KVER"

# ---- 2. a busybox initramfs with the modules needed to mount 9p
IRD=$QDIR/initramfs-$KVER
rm -rf "$IRD"
mkdir -p "$IRD"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$IRD/bin/busybox"
for a in sh mount umount insmod switch_root mkdir sleep cat echo; do
	ln -s busybox "$IRD/bin/$a"
done
cp "$FM_REPO/scripts/qemu/initramfs-init" "$IRD/init"
: >"$IRD/modules.list"
# (the debug kernel has virtio and 9p built in)
[ -n "$xdebug" ] || for m in virtio_pci 9pnet_virtio 9p; do
	modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
	b=$(basename "$ko")
	case $ko in
	*.ko) cp "$ko" "$IRD/lib/modules/$b" ;;
	*.ko.xz) b=${b%.xz}; xz -dc "$ko" >"$IRD/lib/modules/$b" ;;
	*.ko.zst) b=${b%.zst}; zstd -qdc "$ko" >"$IRD/lib/modules/$b" ;;
	*) die "unknown module file $ko" ;;
	esac
	echo "$b" >>"$IRD/modules.list"
done
[ -n "$xdebug" ] || [ -s "$IRD/modules.list" ] || die "no modules for 9p found in $MODDIR"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) >"$QDIR/initramfs-$KVER.cpio.gz"

# ---- 3. boot
# (-x: pci=noacpi, since under a slow TCG the evaluation of the ACPI _PRT
# method hits AML's loop timeout, virtio-pci then gets no interrupt line
# and the 9p root never mounts; the BIOS's PIRQ table routes it instead.
# The null_blk built in must not create a device of its own.)
# FM_DEADLINE (epoch seconds, from scripts/check.sh's budget): the boot
# ends then at the latest, counted after the builds above
if [ -n "${FM_DEADLINE:-}" ] && [ $((FM_DEADLINE - $(date +%s))) -lt "$timeout_s" ]; then
	timeout_s=$((FM_DEADLINE - $(date +%s)))
	[ "$timeout_s" -ge 120 ] || timeout_s=120
fi
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
rm -f "$RES"/*.log "$RES"/*.rc "$RES"/*.secs "$RES"/*.timeout "$RES"/*.txt \
	"$RES"/done "$RES"/summary "$RES"/stats "$RES"/budget-timeout

cmdline=(
	console=ttyS0 panic=-1 rdinit=/init
	log_buf_len=16M printk.devkmsg=on
	FM_REPO="$FM_REPO" FM_MODULE="$MOD/dm-flushmirror.ko"
	FM_TESTS="$(IFS=,; echo "${tests[*]}")"
	FM_TEST_TIMEOUT="$test_timeout"
	${xdebug:+null_blk.nr_devices=0 FM_UNLOAD=1 FM_BUILTIN=1 pci=noacpi T33_DELAY_MS=20000 T26_COPY_RATE=128}
	FM_STOP_AFTER=$((timeout_s > 900 ? timeout_s - 300 : timeout_s))
	"${extra[@]}"
)
qemu=(
	qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$smp" -m "$mem"
	-nographic -no-reboot
	-kernel "$VMLINUZ" -initrd "$QDIR/initramfs-$KVER.cpio.gz"
	-append "${cmdline[*]}"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$RES,mount_tag=results,security_model=none"
)
log "booting $KVER in QEMU (TCG, $smp CPUs, $mem) for ${#tests[@]} test(s), timeout ${timeout_s}s, results in $RES"
log "${qemu[*]}"
start=$(date +%s)
setsid timeout -k 20 "$timeout_s" "${qemu[@]}" </dev/null >"$RES/console.log" 2>&1 &
pid=$!
rc=0
wait "$pid" || rc=$?
kill -KILL -- "-$pid" 2>/dev/null || true
log "QEMU exited with $rc after $(($(date +%s) - start)) s"
if [ "$rc" -eq 124 ]; then
	log "QEMU TIMED OUT after ${timeout_s}s"
	# count_results: tests the guest never started were cut by the time
	# budget (SKIP); the one running at the timeout still fails
	echo "$timeout_s" >"$RES/budget-timeout"
fi

}

if [ -z "$count_only" ]; then
	boot
else
	RES=$(cd "$RES" && pwd)
fi

# kunit_from_dmesg: the KTAP the module's KUnit suites printed when the
# guest loaded it (kunit-dmesg.log, saved right after the insmod; else
# dmesg.log), parsed by kunit.py, as the pseudo-test kunit-module: one
# PASS/FAIL/SKIP line per case, kunit.py's [ERROR]s as FAILs, and a FAIL
# when the cases do not add up to kunit.py's "Ran N tests".  The log is cut
# to the module's KTAP first: the kernel prints an empty plan ("1..0") for
# its built-in suites at boot, and kunit.py would stop there.
kunit_from_dmesg() {
	local out=$RES/kunit-module.log in=$RES/kunit-dmesg.log line ran n
	: >"$out"
	[ -f "$in" ] || in=$RES/dmesg.log
	if [ -f "$in" ]; then
		sed 's/^\[ *[0-9.]*\] //' "$in" | awk '
			{ l[NR] = $0 }
			/^KTAP version/ && NR > 0 { k = NR }
			/^1\.\.[1-9]/ && k == NR - 1 { start = k }
			END { if (start) for (i = start; i <= NR; i++) print l[i] }' \
			>"$RES/kunit-ktap.txt"
		(cd "$FM_TREE" && python3 tools/testing/kunit/kunit.py parse \
			"$RES/kunit-ktap.txt") 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$RES/kunit-parse.txt" || true
		while read -r line; do
			case $line in
			*"[ERROR]"*) echo "FAIL: kunit-parse: ${line#*\[ERROR\] }" ;;
			*==*) ;;	# a suite's line: its cases are counted
			*"[PASSED] "*) echo "PASS: kunit ${line##*\[PASSED\] }" ;;
			*"[SKIPPED] "*) echo "SKIP: kunit ${line##*\[SKIPPED\] }: skipped" ;;
			*"[FAILED] "* | *"[CRASHED] "*) echo "FAIL: kunit ${line##*\] }: see $RES/kunit-parse.txt" ;;
			esac
		done < <(sed 's/^\[[0-9:]*\] *//' "$RES/kunit-parse.txt") >>"$out"
		line=$(grep -a 'Testing complete\.' "$RES/kunit-parse.txt" | tail -n 1 || true)
		echo "# kunit.py: ${line:-no summary}" >>"$out"
		ran=$(echo "$line" | sed -n 's/.*Ran \([0-9]*\) tests.*/\1/p')
		n=$(grep -cE '^(PASS|FAIL|SKIP): kunit ' "$out" || true)
		[ -z "$ran" ] || [ "$ran" = "$n" ] ||
			echo "FAIL: kunit-count: kunit.py ran $ran tests, $n counted" >>"$out"
	fi
	if [ ! -f "$in" ] && [ -f "$RES/budget-timeout" ]; then
		echo "SKIP: kunit-module: the guest was stopped by the time budget before it loaded the module" >>"$out"
	elif ! grep -q '^PASS: ' "$out"; then
		echo "FAIL: kunit-module: no KUnit results in $in (see $RES/kunit-parse.txt)" >>"$out"
	fi
	echo 0 >"$RES/kunit-module.rc"
}

# ---- 4. count results
if [ -n "$xdebug" ]; then
	kunit_from_dmesg
	count_results x86-debug "$RES" "$test_timeout" kunit-module "${tests[@]}" module-unload
	exit
fi
count_results qemu-debian "$RES" "$test_timeout" "${tests[@]}"
