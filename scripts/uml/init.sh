#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# PID 1 of the UML test guest (booted by scripts/uml/run-e2e.sh with the
# host's / as a read-only hostfs root).  Mounts what a test needs
# (scripts/guest-lib.sh), the host's results directory ($FM_RESULTS,
# hostfs), runs the e2e tests in turn, scans for leaks and powers off.
#
# Kernel command line variables (they reach PID 1 as environment):
#   FM_REPO     the repository (on the read-only root)
#   FM_RESULTS  host directory for the logs (mounted read-write via hostfs)
#   FM_TESTS    comma-separated test names (tNN-name, without .sh);
#               empty: every $FM_REPO/scripts/e2e/t*.sh
#   FM_TEST_TIMEOUT  seconds per test (default 300); a test can ask for
#               more with a line "# fm-timeout: <seconds>" in its first
#               20 lines
#
# Results: per test as guest_run_tests says (<test>.log, .rc, .secs,
# .timeout); at the end kmemleak.log, dmesg.log and done.
# No "set -e": PID 1 must never exit before the power-off.
set -u
# The braces make bash read the whole script before it runs any of it:
# editing the file while it runs cannot break the run.
{

. "$(dirname "$0")/../guest-lib.sh"
GUEST_TAG=fm-init
export FM_REPO FM_RESULTS
trap guest_power_off EXIT
guest_mounts

if [ -z "${FM_RESULTS:-}" ] || [ -z "${FM_REPO:-}" ]; then
	say "FM_RESULTS or FM_REPO not set on the kernel command line"
	exit 1
fi
mkdir -p /run/fm-results /tmp/fm
if ! mount -t hostfs -o "$FM_RESULTS" none /run/fm-results; then
	say "cannot mount hostfs $FM_RESULTS"
	exit 1
fi
R=/run/fm-results
cd /tmp/fm || exit 1

guest_run_tests "$R"

# kmemleak (the test kernel has it): the report to kmemleak.log; a kernel
# without it writes none
guest_kmemleak_scan "$R/kmemleak.log"

dmesg >"$R/dmesg.log" 2>&1
echo done >"$R/done"
sync
exit 0
exit
}
