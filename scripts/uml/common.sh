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
FM_MODULE_FILES=(dm-flushmirror.c dm-flushmirror.h Kconfig Kbuild kunit)

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

# Packages needed to build and boot the UML kernel and run the e2e tests.
FM_UML_PKGS=(linux-source-6.12 build-essential flex bison bc libelf-dev
	libssl-dev python3 xz-utils rsync kmod dmsetup fio busybox-static
	e2fsprogs util-linux procps coreutils jq perl)
