#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the UML benchmark guest (booted by scripts/bench/run.sh with the
# host's / as a read-only hostfs root, like scripts/uml/init.sh).  Mounts what
# the benchmark needs (scripts/guest-lib.sh) and the host's results
# directory ($FM_RESULTS, hostfs), runs scripts/bench/guest.sh for the phase
# in $FMB_PHASE and powers off.  Output: $FM_RESULTS/guest.log,
# guest.rc, dmesg.log, done.
set -u

. "$(dirname "$0")/../guest-lib.sh"
GUEST_TAG=fmb-init
trap guest_power_off EXIT
guest_mounts
mkdir -p /run/fm-results /tmp/fmb

if [ -z "${FM_RESULTS:-}" ] || [ -z "${FM_REPO:-}" ]; then
	say "FM_RESULTS or FM_REPO not set on the kernel command line"
	exit 1
fi
if ! mount -t hostfs -o "$FM_RESULTS" none /run/fm-results; then
	say "cannot mount hostfs $FM_RESULTS"
	exit 1
fi
export FM_REPO FMB_OUT=/run/fm-results
cd /tmp/fmb || exit 1

say "kernel $(uname -r), phase ${FMB_PHASE:-?}"
timeout -k 10 "${FMB_GUEST_TIMEOUT:-3000}" bash "$FM_REPO/scripts/bench/guest.sh" \
	</dev/null >>"$FMB_OUT/guest.log" 2>&1
rc=$?
echo "$rc" >"$FMB_OUT/guest.rc"
say "phase ${FMB_PHASE:-?}: exit $rc"
dmsetup remove_all >/dev/null 2>&1
dmesg >"$FMB_OUT/dmesg.log" 2>&1
echo done >"$FMB_OUT/done"
sync
exit 0
