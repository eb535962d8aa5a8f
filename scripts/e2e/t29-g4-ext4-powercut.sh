#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fm-timeout: 500
# t29-g4-ext4-powercut: G4 with a real filesystem on top.  ext4 is made on
# the synced device (source null_blk, destination null_blk with a volatile
# cache, discarded first so that the cache matters) and mounted; a Python
# workload creates many small files with unique contents, renames, replaces
# and deletes them, fsyncing file and directory, and records every file that
# is durable (fsync(file) + fsync(dir) returned, untouched since) in a
# journal outside the fs.  At a random (seeded) moment the durable set is
# taken and the destination loses its power with the workload running; the
# guest must see no error.  Then the destination alone is mounted (ext4
# replays its journal): every durable file must be there with its contents,
# and e2fsck -fn must find the fs clean.  Devices are made afresh per cut.
# With debug_skip_dest_flush=1 a cut must lose files (the test bites).
# T29_CUTS (default 4: policies generation and always in turn) and
# T29_SEED (default 29) change the run.
# Last line: "STAT: cuts=N files_covered=N files_lost=N" (the normal cuts).
. "$(dirname "$0")/lib.sh"
e2e_setup

CUTS=${T29_CUTS:-4}
SEED=${T29_SEED:-29}
MIB=64
S=/dev/f29s D=/dev/f29d M=/dev/mapper/f29
MNT=$E2E_TMP/mnt
PY=/usr/bin/python3
PARAM=/sys/module/dm_flushmirror/parameters/debug_skip_dest_flush
RANDOM=$SEED
mkdir -p $MNT
WPID=
FM_ATEXIT+=('[ -z "$WPID" ] || { kill -KILL $WPID; wait $WPID; } 2>/dev/null'
	"mountpoint -q $MNT && umount $MNT")

for t in mkfs.ext4 e2fsck; do
	if ! command -v $t >/dev/null; then
		skip ext4-powercut "no $t (e2fsprogs) on the host"
		exit 0
	fi
done
[ -x $PY ] || { skip ext4-powercut "no $PY on the host"; exit 0; }

# workload.py MNT JOURNAL SEED: runs until SIGTERM, then exits 0; any I/O
# error is a traceback and a non-zero exit.  Journal lines: "+ NAME SHA
# SIZE" once NAME is durable (file and directory fsynced), "- NAME" before
# the workload starts to change NAME (rename away, replace, unlink).  One
# write(2) per line on an O_APPEND fd.
cat >$E2E_TMP/workload.py <<'PYEOF'
import hashlib, os, random, signal, sys
mnt, jpath, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
stop = False
def on_term(sig, frm):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
jfd = os.open(jpath, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
def rec(s):
    os.write(jfd, (s + "\n").encode())
NDIR = 8
dfd = []
for d in range(NDIR):
    os.mkdir("%s/d%d" % (mnt, d))
    dfd.append(os.open("%s/d%d" % (mnt, d), os.O_RDONLY | os.O_DIRECTORY))
top = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(top)
live = {}       # durable in the workload's view: name -> (sha, size)
scratch = []    # written, never fsynced, never recorded
seq = 0
def data(name):
    b = ("seed %d seq %d %s\n" % (seed, seq, name)).encode()
    return b + rnd.randbytes(rnd.randint(0, 12000))
def put(rel, b, sync):
    fd = os.open("%s/%s" % (mnt, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    v = memoryview(b)
    while v:
        v = v[os.write(fd, v):]
    if sync:
        os.fsync(fd)
    os.close(fd)
def fsync_file(rel):
    fd = os.open("%s/%s" % (mnt, rel), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
def P(rel):
    return "%s/%s" % (mnt, rel)
def dnum(rel):
    return int(rel[1:rel.index("/")])
def durable(name, b):
    live[name] = (hashlib.sha256(b).hexdigest(), len(b))
    rec("+ %s %s %d" % (name, live[name][0], len(b)))
while not stop:
    seq += 1
    r = rnd.random()
    d = rnd.randrange(NDIR)
    if r < 0.45 or len(live) < 30:
        # create as a temporary name, fsync, rename, fsync the directory
        name, tmp = "d%d/f%07d" % (d, seq), "d%d/.t%07d" % (d, seq)
        b = data(name)
        put(tmp, b, True)
        os.rename(P(tmp), P(name))
        os.fsync(dfd[d])
        durable(name, b)
    elif r < 0.55:
        name = "d%d/n%07d" % (d, seq)
        put(name, data(name), False)
        scratch.append(name)
    elif r < 0.67:
        # rename a durable file (maybe to another directory)
        old = rnd.choice(list(live))
        rec("- " + old)
        sha, size = live.pop(old)
        name = "d%d/r%07d" % (d, seq)
        os.rename(P(old), P(name))
        fsync_file(name)
        os.fsync(dfd[d])
        if dnum(old) != d:
            os.fsync(dfd[dnum(old)])
        live[name] = (sha, size)
        rec("+ %s %s %d" % (name, sha, size))
    elif r < 0.77:
        # replace a durable file's contents: write, fsync, rename over
        old = rnd.choice(list(live))
        tmp = "d%d/.t%07d" % (dnum(old), seq)
        b = data(old)
        put(tmp, b, True)
        rec("- " + old)
        del live[old]
        os.rename(P(tmp), P(old))
        os.fsync(dfd[dnum(old)])
        durable(old, b)
    elif r < 0.92 or not scratch:
        old = rnd.choice(list(live))
        rec("- " + old)
        del live[old]
        os.unlink(P(old))
        if rnd.random() < 0.5:
            os.fsync(dfd[dnum(old)])
    else:
        os.unlink(P(scratch.pop(rnd.randrange(len(scratch)))))
    # keep the fs from filling up
    while len(live) > 2500:
        old = rnd.choice(list(live))
        rec("- " + old)
        del live[old]
        os.unlink(P(old))
    while len(scratch) > 500:
        os.unlink(P(scratch.pop(0)))
print("# workload: %d operations, %d durable files" % (seq, len(live)))
PYEOF

# check.py MNT SNAPSHOT JOURNAL POST: the durable set of SNAPSHOT (complete
# lines), less the files whose "- NAME" line the full JOURNAL has before
# offset POST (taken after the power went off: such a change may have
# reached the disk); prints "checked lost excluded" and the first losses.
cat >$E2E_TMP/check.py <<'PYEOF'
import hashlib, sys
mnt, snap, full, post = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = open(snap, "rb").read()
soff = s.rfind(b"\n") + 1
dur = {}
for l in s[:soff].decode().splitlines():
    f = l.split()
    if f[0] == "+":
        dur[f[1]] = (f[2], int(f[3]))
    else:
        dur.pop(f[1], None)
j = open(full, "rb").read()
e = j.find(b"\n", post)
e = len(j) if e < 0 else e + 1
excl = set()
for l in j[soff:e].decode(errors="replace").splitlines():
    f = l.split()
    if len(f) == 2 and f[0] == "-":
        excl.add(f[1])
checked = lost = 0
why = []
for name, (sha, size) in sorted(dur.items()):
    if name in excl:
        continue
    checked += 1
    try:
        b = open("%s/%s" % (mnt, name), "rb").read()
    except OSError as x:
        lost += 1
        why.append("%s: %s" % (name, x.strerror))
        continue
    if hashlib.sha256(b).hexdigest() != sha:
        lost += 1
        why.append("%s: %d bytes, wrong contents (want %d)" % (name, len(b), size))
print(checked, lost, len(excl & set(dur)))
for w in why[:5]:
    print("lost " + w, file=sys.stderr)
PYEOF

# powercut_run K POLICY BITE: one power cut; sets CUT_ERR (the run could
# not be done), CUT_BAD (errors the guest saw), CUT_DMG (the destination
# after the cut: files lost, e2fsck unclean, no mount), CUT_COV, CUT_LOST
powercut_run() {
	local k=$1 policy=$2 bite=$3 ms i wrc post fl res fsck=0
	CUT_ERR='' CUT_BAD='' CUT_DMG='' CUT_COV=0 CUT_LOST=0
	nb_create f29s $MIB || { CUT_ERR="cannot create f29s"; return; }
	nb_create f29d $MIB $((MIB * 2)) || { CUT_ERR="cannot create f29d"; return; }
	fm_create f29 $S $D 1024 flush_policy "$policy" ||
		{ CUT_ERR="cannot create flushmirror"; return; }
	wait_phase f29 synced 90 || { CUT_ERR="not synced: $ST_RAW"; return; }
	# after synced every destination page is in null_blk's store, where
	# writes are durable at once (lib.sh): discard all, through the target
	fresh $M 0 $((MIB << 20)) || { CUT_ERR="discard through the target failed"; return; }
	mkfs.ext4 -q -F -b 4096 -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 \
		$M >$E2E_TMP/mkfs.out 2>&1 ||
		{ CUT_ERR="mkfs.ext4: $(tail -n 2 $E2E_TMP/mkfs.out | tr '\n' ' ')"; return; }
	mount -t ext4 -o noinit_itable $M $MNT || { CUT_ERR="cannot mount $M"; return; }
	# (the fs itself is made with flushes: the bite is about the workload)
	[ "$bite" = 1 ] && echo 1 >$PARAM
	: >$E2E_TMP/journal
	$PY $E2E_TMP/workload.py $MNT $E2E_TMP/journal $((SEED * 100 + k)) &
	WPID=$!
	# python starts slowly in UML: the clock runs from its first record
	for ((i = 0; i < 300; i++)); do
		[ -s $E2E_TMP/journal ] && break
		kill -0 $WPID 2>/dev/null || break
		sleep 0.1
	done
	ms=$((1000 + RANDOM % 3000))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	fl=$(flush_count $D)
	# durable set first, then the cut: a file made durable in between is
	# only not counted
	cp $E2E_TMP/journal $E2E_TMP/snap
	nb_power f29d 0
	post=$(stat -c %s $E2E_TMP/journal)
	# the workload goes on a little on the failed target, then stops
	sleep 0.5
	kill -TERM $WPID 2>/dev/null
	wait $WPID
	wrc=$?
	WPID=
	[ "$bite" = 1 ] && echo 0 >$PARAM
	[ $wrc -eq 0 ] || CUT_BAD+="workload exited $wrc; "
	timeout 120 umount $MNT || CUT_BAD+="umount of the guest fs failed; "
	fm_status f29
	info "cut $k ($policy$([ "$bite" = 1 ] && echo ", dest flushes skipped"), after $ms ms): $(wc -l <$E2E_TMP/snap) records taken, $fl destination flushes before the cut; $ST_RAW"
	[ "$ST_PHASE" = failed ] || info "cut $k: target is $ST_PHASE after the cut, not failed"
	# drop the target (and the dead disk it holds) before the new disk
	# comes up with the same dev_t
	timeout 60 dmsetup remove f29 || { CUT_ERR="cannot remove f29"; return; }
	nb_power f29d 1 && wait_bdev $D 10 || { CUT_ERR="power on failed"; return; }
	if mount -t ext4 $D $MNT 2>$E2E_TMP/mount.err; then
		res=$($PY $E2E_TMP/check.py $MNT $E2E_TMP/snap $E2E_TMP/journal $post 2>$E2E_TMP/check.err)
		head -n 8 $E2E_TMP/check.err | sed "s/^/# cut $k: /"
		set -- $res
		if [ $# -ne 3 ]; then
			CUT_ERR="check failed: $res $(head -c 300 $E2E_TMP/check.err)"
			umount $MNT
			return
		fi
		CUT_COV=$1 CUT_LOST=$2
		info "cut $k: durable files checked $1, lost $2, excluded $3 (changed between the snapshot and the cut)"
		timeout 120 umount $MNT || CUT_DMG+="umount of the destination failed; "
	else
		CUT_DMG+="destination does not mount: $(tr '\n' ' ' <$E2E_TMP/mount.err); "
		CUT_COV=$($PY $E2E_TMP/check.py /nonexistent $E2E_TMP/snap $E2E_TMP/journal $post 2>/dev/null | cut -d' ' -f1)
		CUT_LOST=$CUT_COV
	fi
	[ "$CUT_LOST" -eq 0 ] || CUT_DMG+="$CUT_LOST of $CUT_COV durable files lost; "
	e2fsck -fn $D >$E2E_TMP/fsck.out 2>&1 || fsck=$?
	if [ $fsck -ne 0 ]; then
		CUT_DMG+="e2fsck -fn exited $fsck; "
		grep -v '^Pass\|^e2fsck [0-9]' $E2E_TMP/fsck.out | head -n 8 | sed "s/^/# cut $k e2fsck: /"
	fi
	nb_destroy f29d
	nb_destroy f29s
}

total_cov=0 total_lost=0 cuts_done=0
configs=(generation always)
for ((k = 1; k <= CUTS; k++)); do
	policy=${configs[$(((k - 1) % 2))]}
	powercut_run $k $policy 0
	if [ -n "$CUT_ERR" ]; then
		fail "ext4-cut-$k" "$CUT_ERR"
		break
	fi
	cuts_done=$((cuts_done + 1))
	total_cov=$((total_cov + CUT_COV))
	total_lost=$((total_lost + CUT_LOST))
	if [ -z "$CUT_BAD$CUT_DMG" ]; then
		pass "ext4-cut-$k-$policy"
	else
		fail "ext4-cut-$k-$policy" "$CUT_BAD$CUT_DMG"
	fi
done
expect ext4-cuts-done "$cuts_done" -eq "$CUTS"
expect ext4-durable-files-checked "$total_cov" -gt 0
expect ext4-durable-files-lost "$total_lost" -eq 0

# ---- the test bites
if [ -n "$CUT_ERR" ]; then
	skip test-bites "the normal cuts could not be done"
elif [ -w $PARAM ]; then
	FM_ATEXIT+=("echo 0 > $PARAM")
	powercut_run 101 generation 1
	echo 0 >$PARAM
	if [ -n "$CUT_ERR$CUT_BAD" ]; then
		fail test-bites "$CUT_ERR$CUT_BAD"
	elif [ -n "$CUT_DMG" ]; then
		pass test-bites
		info "with debug_skip_dest_flush=1: $CUT_DMG"
	else
		fail test-bites "no durable file lost and e2fsck clean with destination flushes skipped (checked $CUT_COV)"
	fi
else
	skip test-bites "no $PARAM (not a debug build)"
fi

echo "STAT: cuts=$cuts_done files_covered=$total_cov files_lost=$total_lost"
