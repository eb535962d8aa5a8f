# SPDX-License-Identifier: GPL-2.0
# powercut-check.py DEV K AREA COV0 COV1...: the oracle of the power-cut
# tests (t27, t37): prints how many of the blocks each job's fsyncs
# covered are not on DEV as written.
import sys
dev, k, area = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lost = 0
with open(dev, "rb", buffering=0) as f:
    for j, cov in enumerate(map(int, sys.argv[4:])):
        f.seek(j * area * 4096)
        got = f.read(cov * 4096)
        for i in range(cov):
            want = ("cut %d job %d seq %d" % (k, j, i)).ljust(4095).encode() + b"\n"
            lost += got[i * 4096:(i + 1) * 4096] != want
print(lost)
