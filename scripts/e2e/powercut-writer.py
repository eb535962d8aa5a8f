# SPDX-License-Identifier: GPL-2.0
# powercut-writer.py DEV K J AREA SEED TMP: the writer of the power-cut
# tests (t27, t37).  Writes AREA numbered 4 KiB blocks (O_DIRECT) into job
# J's area of DEV; after a block, with probability 1/3, fsyncs and records
# in TMP/cov.J how many blocks that fsync covers.
import mmap, os, random, sys
dev, k, j, area, seed, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rnd = random.Random(seed)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for i in range(area):
    buf.seek(0)
    buf.write(("cut %d job %d seq %d" % (k, j, i)).ljust(4095).encode() + b"\n")
    os.pwrite(fd, buf, (j * area + i) * 4096)
    if rnd.random() < 1 / 3:
        os.fsync(fd)
        with open("%s/cov.%d.tmp" % (tmp, j), "w") as f:
            f.write("%d\n" % (i + 1))
        os.replace("%s/cov.%d.tmp" % (tmp, j), "%s/cov.%d" % (tmp, j))
