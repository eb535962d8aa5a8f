# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers for the scripts in scripts/uml/ and scripts/check.sh.
# Sourced, not executed.

FM_REPO=${FM_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
FM_BUILD=$FM_REPO/.build
FM_TREE=$FM_BUILD/linux-source-6.12
FM_UML=$FM_BUILD/uml
FM_SRC_TARBALL=/usr/src/linux-source-6.12.tar.xz

# The module's files that are overlaid into the kernel tree / copied for
# out-of-tree builds.
FM_MODULE_FILES=(dm-flushmirror-target.c dm-flushmirror.h dm-flushmirror-metadata.c dm-flushmirror-metadata.h Kconfig Kbuild kunit)

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt_ensure PKG...: install the packages that are not installed yet.
# Quick (dpkg -s only) when everything is already there.
apt_ensure() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [ -z "${FM_APT_UPDATED:-}" ]; then
		apt-get update -qq
		export FM_APT_UPDATED=1
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# newest_pkg REGEX: the newest Debian package whose name matches REGEX
# (anchored), among those apt knows and the kernel headers in /usr/src
newest_pkg() {
	{ apt-cache pkgnames "${1%%[\\[]*}" 2>/dev/null
	  ls -d /usr/src/linux-headers-* 2>/dev/null | sed 's|.*/||'; } |
		grep -E "^$1\$" | sort -uV | tail -n 1
}

# Packages needed to build and boot the UML kernel and run the e2e tests
# (lvm2, cryptsetup-bin and qemu-system-x86: t31-admin-safety runs the real
# tools inside the guest; nbd-server, nbd-client and iproute2: the remote
# destination of t37-nbd-remote; postgresql-15: the database of
# t38-pg-migrate).
FM_UML_PKGS=(linux-source-6.12 build-essential flex bison bc libelf-dev
	libssl-dev python3 xz-utils rsync kmod dmsetup fio busybox-static
	e2fsprogs util-linux procps coreutils jq perl patch
	lvm2 cryptsetup-bin qemu-system-x86
	nbd-server nbd-client iproute2 postgresql-15)

# count_results LABEL RES TEST_TIMEOUT TEST...: count the results of a guest
# run (scripts/uml/run-e2e.sh, scripts/qemu/run-debian.sh) from RES/<test>.log
# ("PASS: ", "FAIL: ", "SKIP: " lines), RES/<test>.rc (exit code; missing:
# the test never finished), RES/<test>.timeout and RES/<test>.secs
# (optional), a "# fm-require: TEXT" header line of a test (its
# "PASS: TEXT..." line must be in the log), RES/dmesg.log (kernel reports
# count one failure) and
# RES/kmemleak.log (suspected leaks count one failure).  With
# RES/budget-timeout (the guest was stopped by its time limit), a test that
# never started (no log at all) is a SKIP, not a failure; the one that was
# running still fails.  Sums the tests'
# "STAT: key=N ..." lines per key.  Writes RES/summary
# ("passed=N failed=N skipped=N") and RES/stats ("key=N ..."), prints a line
# per test, then "LABEL stats: ..." and "LABEL: N passed, N failed, N
# skipped" last; returns 1 when anything failed.
count_results() {
	local label=$1 res=$2 tmo=$3 t logf p f s trc why secs reports started
	local pass=0 fail=0 skip=0
	local -A stat=()
	local k v kv t_tmo
	shift 3
	for t in "$@"; do
		logf=$res/$t.log
		# a guest creates a test's log when it starts the test
		started=1
		[ -f "$logf" ] || { started=0; touch "$logf"; }
		# "# fm-require: TEXT" in a test's first 20 lines: a check whose
		# PASS line must be there, checked here on the host, since a
		# guest broken enough (a user FP state not restored, say) may not
		# print its FAIL line either
		while read -r req; do
			grep -aqF "PASS: $req" "$logf" ||
				echo "FAIL: $t: required check '$req' did not pass (no PASS line)" >>"$logf"
		done < <(awk 'NR > 20 { exit } /^# *fm-require: / { sub(/^# *fm-require: */, ""); print }' \
			"$FM_REPO/scripts/e2e/$t.sh" 2>/dev/null)
		p=$(grep -ac '^PASS: ' "$logf" || true)
		f=$(grep -ac '^FAIL: ' "$logf" || true)
		s=$(grep -ac '^SKIP: ' "$logf" || true)
		if [ "$started" = 0 ] && [ -f "$res/budget-timeout" ]; then
			echo "SKIP: $t: not started: the guest was stopped by the time budget ($(cat "$res/budget-timeout")s)" | tee -a "$logf"
			s=$((s + 1))
		elif [ ! -f "$res/$t.rc" ]; then
			echo "FAIL: $t: did not complete" | tee -a "$logf"
			f=$((f + 1))
		else
			trc=$(cat "$res/$t.rc")
			if [ "$trc" != 0 ] && [ "$f" -eq 0 ]; then
				t_tmo=$tmo
				[ -f "$res/$t.timeout" ] && t_tmo=$(cat "$res/$t.timeout")
				case $trc in
				124) why=" (timed out after ${t_tmo}s)" ;;
				137) why=" (killed: timed out after ${t_tmo}s, ignored SIGTERM)" ;;
				*) why= ;;
				esac
				echo "FAIL: $t: exit $trc$why" | tee -a "$logf"
				f=1
			fi
		fi
		grep -a '^FAIL: ' "$logf" | grep -v "^FAIL: $t: \(exit\|did not\)" || true
		secs=
		[ -f "$res/$t.secs" ] && secs="  ($(cat "$res/$t.secs") s)"
		printf '  %-32s %3d passed, %d failed, %d skipped%s\n' "$t" "$p" "$f" "$s" "$secs"
		pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
		while read -r -a kv; do
			for k in "${kv[@]:1}"; do
				v=${k#*=} k=${k%%=*}
				case $v in ''|*[!0-9]*) continue ;; esac
				stat[$k]=$((${stat[$k]:-0} + v))
			done
		done < <(grep -a '^STAT: ' "$logf" || true)
	done

	reports='BUG:|WARNING:|KASAN|kmemleak: [0-9]+ new suspected|possible circular locking|Call Trace|INFO: task .* blocked|Kernel panic|Oops|UBSAN|list_(add|del) corruption'
	if [ -f "$res/dmesg.log" ]; then
		# each report with the lines after it (the file:line of a
		# lockdep or RCU splat, the top of its call trace)
		if grep -aE -A14 "$reports" "$res/dmesg.log" >"$res/kernel-reports.txt"; then
			echo "FAIL: dmesg: kernel reports (first lines; full log $res/dmesg.log):"
			head -n 60 "$res/kernel-reports.txt" | sed 's/^/    /'
			fail=$((fail + 1))
		else
			rm -f "$res/kernel-reports.txt"
		fi
	elif [ -f "$res/budget-timeout" ] &&
	     ! grep -aE -A14 "$reports" "$res/console.log" >"$res/kernel-reports.txt" 2>/dev/null; then
		# stopped by the time budget before it wrote its log: what
		# the kernel printed on the console has no report in it
		rm -f "$res/kernel-reports.txt"
		echo "SKIP: dmesg: no dmesg.log: the guest was stopped by the time budget (console.log has no kernel report)"
		skip=$((skip + 1))
	else
		echo "FAIL: dmesg: no dmesg.log (guest did not finish; see $res/console.log)"
		[ -s "$res/kernel-reports.txt" ] && head -n 20 "$res/kernel-reports.txt" | sed 's/^/    /'
		tail -n 30 "$res/console.log" 2>/dev/null | sed 's/^/    /'
		fail=$((fail + 1))
	fi
	if grep -q 'unreferenced object' "$res/kmemleak.log" 2>/dev/null; then
		echo "FAIL: kmemleak: $(grep -c 'unreferenced object' "$res/kmemleak.log") suspected leak(s), see $res/kmemleak.log:"
		head -n 30 "$res/kmemleak.log" | sed 's/^/    /'
		fail=$((fail + 1))
	fi

	kv=()
	for k in $(printf '%s\n' "${!stat[@]}" | sort); do
		kv+=("$k=${stat[$k]}")
	done
	echo "${kv[*]}" >"$res/stats"
	[ ${#kv[@]} -eq 0 ] || echo "$label stats: ${kv[*]}"
	echo "passed=$pass failed=$fail skipped=$skip" >"$res/summary"
	echo "$label: $pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}

# fm_simd_check: build scripts/e2e/simd-check.c into $FM_BUILD/simd-check
# (when missing or older than its source); the guests' t00-testbed runs it
# from there (the host's / is their root).  Returns 1 when it cannot.
FM_SIMD_CHECK=$FM_BUILD/simd-check
fm_simd_check() {
	local src=$FM_REPO/scripts/e2e/simd-check.c
	[ -x "$FM_SIMD_CHECK" ] && [ "$FM_SIMD_CHECK" -nt "$src" ] && return 0
	mkdir -p "$FM_BUILD" &&
		gcc -O2 -Wall -pthread -o "$FM_SIMD_CHECK.tmp" "$src" &&
		mv "$FM_SIMD_CHECK.tmp" "$FM_SIMD_CHECK"
}

# fm_host_line: the one line that diagnoses the host for a UML run: the
# CPU, its XSAVE size and the ptrace NT_X86_XSTATE regset size UML must
# use (simd-check --probe), and the FP path the UML kernel will take (the
# test bed's patch 0001 sizes the buffer from the host; unpatched, 6.12
# dies at its first user process when the regset is larger than 2696
# bytes, as on AMX hosts).  The UML kernel prints the path it took at boot
# ("x86/um: host XSTATE regset ..."), which t00-testbed reports.
fm_host_line() {
	local probe fp
	if fm_simd_check >/dev/null 2>&1; then
		probe=$("$FM_SIMD_CHECK" --probe 2>&1)
	else
		probe="host cpu \"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)\" (no probe: gcc missing)"
	fi
	if [ -f "$FM_TREE/.fm-patches/0001-um-x86-size-the-xstate-ptrace-buffer-from-the-host.patch" ]; then
		fp="UML FP path: PTRACE_SETREGSET NT_X86_XSTATE through a host-sized buffer (test bed patch 0001 applied)"
	elif [ -f "$FM_TREE/Makefile" ]; then
		fp="UML FP path: UNPATCHED tree, fixed 2696-byte NT_X86_XSTATE buffer"
	else
		fp="UML FP path: tree not unpacked yet (patch 0001 is applied when it is)"
	fi
	echo "$probe; $fp"
}

# fm_uml_death LOG: the cause of a UML boot that died, from its console
# LOG (the lines that name it, and for the known AMX failure what to
# check), printed to stdout; nothing when LOG names no known cause.
fm_uml_death() {
	local cause
	cause=$(grep -aE 'ptrace set fp regs failed|get_fp_registers failed|Kernel panic|fatal|Failed to|cannot|ERROR' \
		"$1" 2>/dev/null | head -n 3 | tr '\n' ' ')
	[ -n "$cause" ] || return 0
	echo "cause: $cause"
	case $cause in
	*"set fp regs failed, errno = 14"*)
		echo "(PTRACE_SETREGSET refused UML's FP buffer: the host's XSTATE regset is larger than it; is scripts/uml/patches/0001 applied to $FM_TREE?)" ;;
	esac
}

# fm_apply_patches TREE: bring TREE to exactly the patches in
# scripts/uml/patches/*.patch (each says in its header what it fixes and
# why the test bed carries it).  A copy of every applied patch is kept in
# TREE/.fm-patches/; when the set differs from the repository's (a patch
# added, changed or removed), the applied ones are reverted newest first
# and the whole set is applied again, so a cached tree follows the
# repository.  A patch that does not apply is an error, never skipped.
fm_apply_patches() {
	local tree=$1 src=$FM_REPO/scripts/uml/patches done_dir=$1/.fm-patches
	local p want have
	want=$(cd "$src" 2>/dev/null && for p in *.patch; do
		[ -f "$p" ] && printf '%s %s\n' "$p" "$(cksum <"$p")"; done)
	have=$(cd "$done_dir" 2>/dev/null && for p in *.patch; do
		[ -f "$p" ] && printf '%s %s\n' "$p" "$(cksum <"$p")"; done)
	[ "$want" = "$have" ] && return 0
	mkdir -p "$done_dir" || return 1
	for p in $(ls -r "$done_dir"/*.patch 2>/dev/null); do
		log "reverting $(basename "$p") in $tree"
		patch -d "$tree" -p1 -R -s --no-backup-if-mismatch <"$p" ||
			{ log "could not revert $p"; return 1; }
		rm -f "$p"
	done
	for p in "$src"/*.patch; do
		[ -f "$p" ] || continue
		log "applying $(basename "$p") to $tree"
		patch -d "$tree" -p1 -N -s --no-backup-if-mismatch <"$p" ||
			{ log "could not apply $p"; return 1; }
		cp "$p" "$done_dir/" || return 1
	done
}

# fm_prepare_tree: the kernel tree every in-tree build uses
# (.build/linux-source-6.12) with the module in drivers/md/flushmirror/.
# Unpacks Debian's linux-source-6.12 once (to a temporary directory, then
# renamed: a half unpacked tree is never mistaken for a complete one), then
# overlays the module's files with a content compare (an unchanged file
# keeps its mtime, so make rebuilds only what changed) and hooks the
# directory into drivers/md/{Kconfig,Makefile} once, and applies the test
# bed's kernel patches (scripts/uml/patches/, fm_apply_patches).  Used by
# scripts/uml/build.sh, scripts/bench/build.sh and run-debian.sh -x.
fm_prepare_tree() {
	local dest=$FM_TREE/drivers/md/flushmirror f srcs=()
	if [ ! -f "$FM_TREE/Makefile" ]; then
		[ -f "$FM_SRC_TARBALL" ] || die "$FM_SRC_TARBALL missing (linux-source-6.12)"
		log "unpacking $FM_SRC_TARBALL"
		# (every step checked: the callers test this function's status,
		# which turns set -e off inside it)
		rm -rf "$FM_BUILD/unpack.tmp" && mkdir -p "$FM_BUILD/unpack.tmp" ||
			die "cannot make $FM_BUILD/unpack.tmp"
		tar -C "$FM_BUILD/unpack.tmp" -xf "$FM_SRC_TARBALL" ||
			die "cannot unpack $FM_SRC_TARBALL"
		rm -rf "$FM_TREE" &&
			mv "$FM_BUILD/unpack.tmp/linux-source-6.12" "$FM_TREE" ||
			die "cannot move the unpacked tree to $FM_TREE"
		rm -rf "$FM_BUILD/unpack.tmp"
	fi
	fm_apply_patches "$FM_TREE" || die "cannot patch $FM_TREE"
	for f in Kconfig Kbuild dm-flushmirror-target.c; do
		[ -f "$FM_REPO/$f" ] || die "$FM_REPO/$f missing"
	done
	mkdir -p "$dest" || die "cannot make $dest"
	for f in "${FM_MODULE_FILES[@]}"; do
		[ -e "$FM_REPO/$f" ] && srcs+=("$FM_REPO/$f")
	done
	rsync -rc --delete "${srcs[@]}" "$dest/" || die "cannot overlay the module into $dest"
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
}
