#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian package, as an admin gets it: builds dm-flushmirror-dkms with
# "make deb", runs lintian on it, installs it with dpkg -i on this machine
# and checks what it promises, then purges it and checks that nothing is
# left.  Needs root (apt-get, dpkg, dkms); a CI machine runs it as is.
#
#  build      make deb writes .build/deb/dm-flushmirror-dkms_<v>_all.deb;
#  lintian    lintian -L '>=pedantic' on the .changes (the source package,
#             the .deb and the .buildinfo): no error, warning, info or
#             pedantic tag at all (experimental ones are not shown);
#  contents   the .deb holds /usr/src/dm-flushmirror-<v>/ with dkms.conf and
#             the module source, /usr/sbin/flushmirror and flushmirror.8.gz,
#             the unit /lib/systemd/system/flushmirror-resume.service,
#             and depends on dkms, dmsetup, kmod and util-linux;
#  install    dpkg -i succeeds (its postinst adds the module to DKMS and
#             builds it for the kernels it picks);
#  dkms-<k>   for each Debian 6.1 and 6.12 headers package installed here
#             (the newest of each is installed first, as scripts/check.sh
#             does): "dkms status" says dm-flushmirror/<v> is installed for
#             <k> (dkms install -k <k> when the postinst did not build it),
#             and modinfo of /lib/modules/<k>/updates/dkms/dm-flushmirror.ko*
#             gives vermagic <k> and version <v>;
#  command    /usr/sbin/flushmirror --help prints the synopsis, --version <v>;
#  unit       the postinst enabled flushmirror-resume.service (the symlink
#             /etc/systemd/system/multi-user.target.wants/...) and its
#             ExecStart runs "flushmirror reattach --all";
#  manpage    "man -w flushmirror" finds /usr/share/man/man8/flushmirror.8.gz
#             and man renders it without a warning;
#  purge      dpkg --purge succeeds and removes the package's files, DKMS's
#             tree (/var/lib/dkms/dm-flushmirror) and every built
#             dm-flushmirror.ko* under /lib/modules; the DKMS signing key is
#             removed too when this run created it (the machine is left as
#             it was).
# Each check prints one "PASS: name" or "FAIL: name: reason" line (a check
# that cannot run: "SKIP: name: reason"); the last line is "deb: N passed,
# N failed, N skipped", also written to .build/results/deb.summary as
# "passed=N failed=N skipped=N".  Logs: .build/logs/deb-*.log.  Exit status
# 1 when a check failed.  Takes about a minute here (two DKMS builds).
#
# Environment: FM_SKIP_APT=1 (do not check packages).
set -uo pipefail
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

. "$(dirname "$0")/uml/common.sh"
cd "$FM_REPO" || exit 1

PKG=dm-flushmirror-dkms
MOD=dm-flushmirror
LOGDIR=$FM_BUILD/logs
RESDIR=$FM_BUILD/results
SUMMARY=$RESDIR/deb.summary
DEBDIR=$FM_BUILD/deb
mkdir -p "$LOGDIR" "$RESDIR"
rm -f "$SUMMARY"

P=0 F=0 S=0
pass() { echo "PASS: $1"; P=$((P + 1)); }
fail() { echo "FAIL: $1: $2"; F=$((F + 1)); }
skip() { echo "SKIP: $1: $2"; S=$((S + 1)); }
finish() {
	echo "passed=$P failed=$F skipped=$S" >"$SUMMARY"
	echo "deb: $P passed, $F failed, $S skipped"
	[ "$F" -eq 0 ]
	exit
}
# the first lines of a log, indented, for a FAIL line's context
show() { grep -v '^$' "$1" | head -n "${2:-15}" | sed 's/^/    /'; }

t0=$(date +%s)
if [ "$(id -u)" != 0 ]; then
	skip deb "not root: apt-get, dpkg -i and dkms need root"
	finish
fi

hdr61=$(newest_pkg 'linux-headers-6\.1\.0-[0-9]+-amd64' || true)
hdr612=$(newest_pkg 'linux-headers-6\.12\.[0-9]+\+deb12-amd64' || true)
if [ -z "${FM_SKIP_APT:-}" ]; then
	apt_ensure make git dpkg-dev debhelper dh-dkms dkms lintian \
		python3-docutils man-db build-essential kmod dmsetup \
		${hdr61:+"$hdr61"} ${hdr612:+"$hdr612"} >"$LOGDIR/deb-apt.log" 2>&1 ||
		{ log "apt-get failed, see $LOGDIR/deb-apt.log"; show "$LOGDIR/deb-apt.log"; }
fi

ver=$(dpkg-parsechangelog -S Version 2>/dev/null)
if [ -z "$ver" ]; then
	fail build "no version in debian/changelog (dpkg-parsechangelog)"
	finish
fi
deb=$DEBDIR/${PKG}_${ver}_all.deb
changes=$(ls "$DEBDIR"/*_"$ver"_*.changes 2>/dev/null | head -n 1)

# A dm-flushmirror in DKMS that is not this package's (make dkms-install)
# would be replaced and then removed by the purge: leave it alone.  A
# dm-flushmirror-dkms left installed by an interrupted run is purged first.
if dpkg -s "$PKG" >/dev/null 2>&1; then
	log "purging $PKG left installed (an earlier run?)"
	dpkg --purge "$PKG" >"$LOGDIR/deb-purge-before.log" 2>&1 ||
		{ fail deb "$PKG is installed and dpkg --purge fails, see $LOGDIR/deb-purge-before.log"; finish; }
fi
if [ -n "$(dkms status -m "$MOD" 2>/dev/null)" ] || [ -e "/var/lib/dkms/$MOD" ]; then
	skip deb "$MOD is in DKMS already, not from $PKG (make dkms-remove first): $(dkms status -m "$MOD" 2>&1 | head -n 1)"
	finish
fi

# dkms creates a signing key (/var/lib/dkms/mok.key, mok.pub) at its first
# build; remove it afterwards if this run created it
mok_before=0
[ -e /var/lib/dkms/mok.key ] && mok_before=1
installed=0
cleanup() {
	if [ "$installed" = 1 ] && dpkg -s "$PKG" >/dev/null 2>&1; then
		dpkg --purge "$PKG" >>"$LOGDIR/deb-purge.log" 2>&1 ||
			log "dpkg --purge $PKG failed, see $LOGDIR/deb-purge.log"
	fi
	if [ "$mok_before" = 0 ]; then
		rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build ----------------------------------------------------------------
blog=$LOGDIR/deb-build.log
if make deb >"$blog" 2>&1 && [ -f "$deb" ]; then
	pass "build ($deb, $(($(date +%s) - t0)) s)"
	changes=$(ls "$DEBDIR"/*_"$ver"_*.changes 2>/dev/null | head -n 1)
else
	fail build "make deb failed or wrote no ${deb##*/}, see $blog"
	tail -n 15 "$blog" | sed 's/^/    /'
	finish
fi

# --- lintian --------------------------------------------------------------
llog=$LOGDIR/deb-lintian.log
lrc=0
lintian -L '>=pedantic' --fail-on error,warning,info,pedantic "${changes:-$deb}" \
	>"$llog" 2>&1 || lrc=$?
tags=$(grep -E '^[EWIPX]: ' "$llog" || true)
if [ "$lrc" -eq 0 ] && [ -z "$tags" ]; then
	pass "lintian (${changes##*/}, -L >=pedantic: no tag)"
elif [ -n "$tags" ]; then
	fail lintian "$(wc -l <<<"$tags") tag(s), see $llog: $(head -n 1 <<<"$tags")"
	head -n 15 <<<"$tags" | sed 's/^/    /'
else
	fail lintian "exit $lrc, see $llog"
	show "$llog"
fi

# --- contents -------------------------------------------------------------
files=$(dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|')
depends=$(dpkg-deb -f "$deb" Depends)
why=
for f in "/usr/src/$MOD-$ver/dkms.conf" "/usr/src/$MOD-$ver/$MOD-target.c" \
	"/usr/src/$MOD-$ver/$MOD.h" "/usr/src/$MOD-$ver/Kbuild" \
	/usr/sbin/flushmirror /usr/share/man/man8/flushmirror.8.gz \
	/lib/systemd/system/flushmirror-resume.service \
	"/usr/share/doc/$PKG/copyright"; do
	grep -qxF "$f" <<<"$files" || why+=" no $f;"
done
for d in dkms dmsetup kmod util-linux; do
	grep -qE "(^|, )$d( |,|$)" <<<"$depends" || why+=" no Depends: $d;"
done
if [ -z "$why" ]; then
	pass "contents (Depends: $depends)"
else
	fail contents "${why%;}"
fi

# --- install --------------------------------------------------------------
ilog=$LOGDIR/deb-install.log
installed=1
if timeout 900 dpkg -i "$deb" >"$ilog" 2>&1; then
	pass "install (dpkg -i, $(($(date +%s) - t0)) s)"
else
	fail install "dpkg -i exit $?, see $ilog"
	grep -iE 'error|failed|bad' "$ilog" | head -n 10 | sed 's/^/    /'
fi

# --- DKMS, per kernel -----------------------------------------------------
kernels=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'linux-headers-*' 2>/dev/null |
	awk '$1 == "ii" { print $2 }' |
	grep -E '^linux-headers-(6\.1\.0-[0-9]+-amd64|6\.12\.[0-9]+\+deb12-amd64)$' |
	sed 's/^linux-headers-//' | sort -V)
for series in 6.1 6.12; do
	grep -q "^$series\." <<<"$kernels" ||
		fail "dkms-$series" "no linux-headers-$series.*-amd64 installed (apt-get failed?)"
done
for k in $kernels; do
	name=dkms-$k
	dlog=$LOGDIR/deb-dkms-$k.log
	: >"$dlog"
	st=$(dkms status -m "$MOD" -v "$ver" -k "$k" 2>>"$dlog")
	how="by the postinst"
	if ! grep -q ': installed' <<<"$st"; then
		how="by dkms install -k $k"
		timeout 900 dkms install -m "$MOD" -v "$ver" -k "$k" >>"$dlog" 2>&1 ||
			echo "dkms install exit $?" >>"$dlog"
		st=$(dkms status -m "$MOD" -v "$ver" -k "$k" 2>>"$dlog")
	fi
	echo "dkms status: $st" >>"$dlog"
	if ! grep -q ': installed' <<<"$st"; then
		fail "$name" "dkms status: '${st:-nothing}' (not installed), see $dlog"
		[ -f "/var/lib/dkms/$MOD/$ver/build/make.log" ] &&
			grep -E 'error|Error' "/var/lib/dkms/$MOD/$ver/build/make.log" | head -n 10 | sed 's/^/    /'
		continue
	fi
	ko=$(ls "/lib/modules/$k/updates/dkms/$MOD".ko* 2>/dev/null | head -n 1)
	if [ -z "$ko" ]; then
		fail "$name" "dkms says installed, but no /lib/modules/$k/updates/dkms/$MOD.ko*"
		continue
	fi
	vm=$(modinfo -F vermagic "$ko" 2>>"$dlog")
	mv=$(modinfo -F version "$ko" 2>>"$dlog")
	if [ "${vm%% *}" != "$k" ]; then
		fail "$name" "$ko: vermagic '$vm', not $k"
	elif [ "$mv" != "$ver" ]; then
		fail "$name" "$ko: version '$mv', not $ver"
	else
		pass "$name (built $how: ${ko##*/}, vermagic ${vm%% *}, version $mv)"
	fi
done

# --- the command and its manual page ---------------------------------------
out=$(/usr/sbin/flushmirror --help 2>&1)
rc=$?
v=$(/usr/sbin/flushmirror --version 2>&1)
if [ "$rc" -ne 0 ]; then
	fail command "/usr/sbin/flushmirror --help: exit $rc: $(head -n 1 <<<"$out")"
elif ! grep -q 'flushmirror start <vm-disk> <destination>' <<<"$out"; then
	fail command "/usr/sbin/flushmirror --help prints no synopsis: $(head -n 1 <<<"$out")"
elif [ "$v" != "flushmirror $ver" ]; then
	fail command "/usr/sbin/flushmirror --version: '$v', not 'flushmirror $ver'"
else
	pass "command (/usr/sbin/flushmirror --help, --version $ver)"
fi

unit=/lib/systemd/system/flushmirror-resume.service
wl=/etc/systemd/system/multi-user.target.wants/flushmirror-resume.service
if [ ! -f "$unit" ]; then
	fail unit "no $unit"
elif [ "$(readlink "$wl" 2>/dev/null)" != "$unit" ]; then
	fail unit "not enabled: $wl -> '$(readlink "$wl" 2>/dev/null)', not $unit"
elif ! grep -qx 'ExecStart=/usr/sbin/flushmirror reattach --all.*' "$unit"; then
	fail unit "$unit does not run flushmirror reattach --all: $(grep ExecStart "$unit")"
else
	pass "unit ($unit, enabled: $wl)"
fi

mp=$(man -w flushmirror 2>&1)
mlog=$LOGDIR/deb-man.log
if [ "$mp" != /usr/share/man/man8/flushmirror.8.gz ]; then
	fail manpage "man -w flushmirror: '$mp', not /usr/share/man/man8/flushmirror.8.gz"
elif ! MANWIDTH=80 man --warnings -l "$mp" >"$mlog" 2>"$mlog.err"; then
	fail manpage "man -l $mp failed: $(head -n 1 "$mlog.err")"
elif [ -s "$mlog.err" ]; then
	fail manpage "man --warnings: $(head -n 1 "$mlog.err")"
elif ! grep -q 'live migration of a virtual machine' "$mlog"; then
	fail manpage "$mp renders without its NAME line, see $mlog"
else
	pass "manpage ($mp, $(wc -l <"$mlog") lines, no warning)"
fi

# --- purge ------------------------------------------------------------------
plog=$LOGDIR/deb-purge.log
: >"$plog"
if ! dpkg -s "$PKG" >/dev/null 2>&1; then
	fail purge "$PKG is not installed (dpkg -i failed?)"
elif ! timeout 600 dpkg --purge "$PKG" >"$plog" 2>&1; then
	fail purge "dpkg --purge exit $?, see $plog"
	show "$plog"
else
	installed=0
	left=()
	[ -z "$(dkms status -m "$MOD" 2>/dev/null)" ] ||
		left+=("dkms status: $(dkms status -m "$MOD" 2>&1 | head -n 1)")
	for f in "/var/lib/dkms/$MOD" "/usr/src/$MOD-$ver" /usr/sbin/flushmirror \
		/usr/share/man/man8/flushmirror.8.gz "/usr/share/doc/$PKG" \
		/lib/systemd/system/flushmirror-resume.service \
		/etc/systemd/system/multi-user.target.wants/flushmirror-resume.service; do
		[ -e "$f" ] && left+=("$f")
	done
	while read -r f; do
		[ -n "$f" ] && left+=("$f")
	done < <(find /lib/modules -name "$MOD.ko*" 2>/dev/null)
	if [ ${#left[@]} -eq 0 ]; then
		pass "purge (no $MOD in DKMS, /usr/src or /lib/modules)"
	else
		fail purge "left behind: ${left[*]}"
	fi
fi

log "deb checks took $(($(date +%s) - t0)) s"
finish
}
