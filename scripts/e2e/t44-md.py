# SPDX-License-Identifier: GPL-2.0
# t44-md.py: reads and tears dm-flushmirror metadata devices (format 1,
# dm-flushmirror-metadata.h) for t44-resume-crash, independently of the
# kernel's code: what a load must find there is computed here and compared
# with what the kernel reports.
#
#   t44-md.py load DEV
#       prints "SEQ KEPT SLOT NEWEST_SEQ": the commit a load must use (the
#       newest valid superblock, or the one before it if the newest one's
#       bitmaps fail their checksum), the regions it keeps (copied and
#       without intent), its slot, and the newest valid superblock's
#       number; "none" if no commit is usable.  Exit 0.
#   t44-md.py slots DEV
#       one line per slot: "slot S sb ok|bad|blank seq Q bitmaps ok|bad
#       kept K" (diagnosis).
#   t44-md.py tear DEV SLOT SEED
#       overwrites one 512-byte sector (chosen by SEED) of SLOT's
#       superblock with SEED's random bytes, as a torn write would leave
#       it; prints the sector.
#
# Superblock (4 KiB, little-endian): crc32c 0, magic "FMMD" 4, version 8,
# block_size 12, seq 16, nr_regions 24, target_len 32, src_sectors 40,
# dst_sectors 48, region_size 56, bitmap_blocks 60, bitmap_crc 64.  Block
# 0 and 1: the superblocks of slot 0 and 1; then slot 0's copied and
# intent bitmaps (bitmap_blocks each), then slot 1's.  Checksums: crc32c
# without final inversion, seeded ~0 ^ "FSB1" (superblock, over bytes
# 4..4095) and ~0 ^ "FMB1" (the slot's bitmap blocks).
import mmap, os, random, struct, sys

BS = 4096
SB_SEED = 0xffffffff ^ 0x46534231
BM_SEED = 0xffffffff ^ 0x464d4231
MAGIC = 0x444d4d46

_T = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(seed, data):
    c = seed
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xff] ^ (c >> 8)
    return c


def pread(fd, off, n):
    buf = mmap.mmap(-1, n)
    got = os.preadv(fd, [buf], off)
    if got != n:
        raise SystemExit("short read at %d" % off)
    return bytes(buf)


def superblock(fd, slot):
    """(state, fields): state ok, bad (not a valid superblock for this
    slot) or blank (all zero)"""
    blk = pread(fd, slot * BS, BS)
    if not any(blk):
        return "blank", None
    crc, magic, version, bsize, seq = struct.unpack_from("<IIIIQ", blk, 0)
    nr, tlen, ssz, dsz = struct.unpack_from("<QQQQ", blk, 24)
    rsz, bmb, bmcrc = struct.unpack_from("<III", blk, 56)
    if magic != MAGIC or crc != crc32c(SB_SEED, blk[4:]) or \
       version != 1 or bsize != BS or seq % 2 != slot:
        return "bad", None
    return "ok", dict(seq=seq, nr=nr, bmb=bmb, bmcrc=bmcrc)


def bitmaps(fd, slot, sb):
    """(checksum ok, kept regions)"""
    n = 2 * sb["bmb"] * BS
    img = pread(fd, (2 + slot * 2 * sb["bmb"]) * BS, n)
    ok = crc32c(BM_SEED, img) == sb["bmcrc"]
    half = sb["bmb"] * BS
    copied = int.from_bytes(img[:half], "little")
    intent = int.from_bytes(img[half:], "little")
    kept = copied & ~intent & ((1 << sb["nr"]) - 1)
    return ok, bin(kept).count("1")


def main():
    cmd, dev = sys.argv[1], sys.argv[2]
    if cmd == "tear":
        slot, seed = int(sys.argv[3]), int(sys.argv[4])
        rnd = random.Random(seed)
        sector = rnd.randrange(8)
        buf = mmap.mmap(-1, 512)
        buf.write(bytes(rnd.randrange(256) for _ in range(512)))
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
        os.pwritev(fd, [buf], slot * BS + sector * 512)
        os.fsync(fd)
        os.close(fd)
        print(sector)
        return
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    sbs = [superblock(fd, s) for s in (0, 1)]
    if cmd == "slots":
        for s in (0, 1):
            st, sb = sbs[s]
            if st != "ok":
                print("slot %d sb %s" % (s, st))
                continue
            ok, kept = bitmaps(fd, s, sb)
            print("slot %d sb ok seq %d bitmaps %s kept %d" %
                  (s, sb["seq"], "ok" if ok else "bad", kept))
        return
    valid = [s for s in (0, 1) if sbs[s][0] == "ok"]
    if not valid:
        print("none")
        return
    new = max(valid, key=lambda s: sbs[s][1]["seq"])
    ok, kept = bitmaps(fd, new, sbs[new][1])
    use = new
    if not ok:
        old = 1 - new
        if sbs[old][0] == "ok" and sbs[old][1]["seq"] + 1 == sbs[new][1]["seq"]:
            use = old
            ok, kept = bitmaps(fd, old, sbs[old][1])
        if not ok:
            print("none")
            return
    print(sbs[use][1]["seq"], kept, use, sbs[new][1]["seq"])


main()
