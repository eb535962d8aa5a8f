# SPDX-License-Identifier: GPL-2.0
# ext4-check.py MNT SNAPSHOT JOURNAL POST: the oracle of the ext4 power-cut
# tests (t29's, here for t43 too).  The durable set of SNAPSHOT (complete
# lines of ext4-workload.py's journal), less the files whose "- NAME" line
# the full JOURNAL has before offset POST (taken after the power went off:
# such a change may have reached the disk); prints "checked lost excluded"
# and the first losses.
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
