# SPDX-License-Identifier: GPL-2.0
# ext4-workload.py MNT JOURNAL SEED: the file workload of the ext4 power-cut
# tests (t29's, here for t43 too): runs until SIGTERM, then exits 0; any I/O
# error is a traceback and a non-zero exit.  Journal lines: "+ NAME SHA
# SIZE" once NAME is durable (file and directory fsynced), "- NAME" before
# the workload starts to change NAME (rename away, replace, unlink).  One
# write(2) per line on an O_APPEND fd.
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
