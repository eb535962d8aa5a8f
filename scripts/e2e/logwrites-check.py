#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""logwrites-check.py - replay a dm-log-writes log to every flush entry (t28).

Usage: logwrites-check.py LOGDEV CFG AREA COMMIT_BLOCK START_MARK NCOMMIT...

The log (drivers/md/dm-log-writes.c, 6.12): a super block at byte 0
(le64 magic, le64 version, le64 nr_entries, le32 sectorsize), then from
byte sectorsize on nr_entries entries, each a header sector (le64 sector,
le64 nr_sectors, le64 flags, le64 data_len; a mark's text follows in the
same sector) and, unless it is a discard or a mark, nr_sectors sectors of
the data written.  Sectors are the data device's logical blocks.

dm-log-writes logs a write only once a flush covers it: the writes that
completed before a flush was mapped go to the log right before that flush
entry, a FUA write as soon as it completes; at removal the writes no flush
covered and the mark "dm-log-writes-end" close the log.  So the data device
as it would be after a power cut right after a flush entry is: every write
logged before that flush entry, plus any FUA write.

The replay keeps two images: "completed" (every write logged so far) and
"durable" (what a power cut at this point would leave: promoted at every
FLUSH entry, and a FUA write itself).  The writers of t28 (CFG) write 4 KiB
blocks "lw cfg C job J seq I" in order to block J*AREA+I, and after each
fsync that returned a commit record "commit cfg C job J covered N" to block
COMMIT_BLOCK+J.  At each commit record in the log, every block I < N of
job J must be in the durable image with its exact contents.  NCOMMIT is the
number of commit records each job wrote (one argument per job): the log
must hold exactly that many.

Prints one line "entries=.. flushes=.. fua=.. discards=.. marks=..
writes=.. commits=.. covered=.. checks=.. lost=.. written=.." (covered:
distinct blocks a commit record covered; checks: block checks done, one per
covered block per commit; lost: distinct covered blocks missing from the
durable image at a commit; written: job blocks in the final completed
image).  Details of lost blocks go to stderr.  Exits 2 if the log is
unusable (bad super, no start mark, no end mark, truncated).
"""
import mmap
import os
import struct
import sys

MAGIC = 0x6a736677736872
LOG_FLUSH, LOG_FUA, LOG_DISCARD, LOG_MARK = 1, 2, 4, 8
BLK = 4096


def die(msg):
    print("logwrites-check: " + msg, file=sys.stderr)
    sys.exit(2)


class Dev:
    """The log device read with O_DIRECT (writes through dm-log-writes
    leave its page cache stale: an earlier check read it), as far as the
    parse goes: a log fills only the start of its device."""

    CHUNK = 4 << 20

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        self.buf = mmap.mmap(-1, self.CHUNK)
        self.data = bytearray()

    def need(self, end):
        """Read up to byte END at least; False if END is past the device."""
        if end > self.size:
            return False
        while len(self.data) < end:
            off = len(self.data)
            n = os.preadv(self.fd, [self.buf], off)
            if n <= 0:
                die("short read of %s at %d" % (self.path, off))
            self.data += self.buf[:n]
        return True


def block(text):
    return text.ljust(BLK - 1).encode() + b"\n"


def main():
    if len(sys.argv) < 7:
        die("usage: LOGDEV CFG AREA COMMIT_BLOCK START_MARK NCOMMIT...")
    logdev, cfg, area, cblk, start_mark = (sys.argv[1], int(sys.argv[2]),
        int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    ncommit = [int(a) for a in sys.argv[6:]]
    jobs = len(ncommit)
    dev = Dev(logdev)
    dev.need(4096)
    log = dev.data

    magic, version, nr_entries, ss = struct.unpack_from("<QQQI", log, 0)
    if magic != MAGIC or version != 1:
        die("bad super: magic %#x version %d" % (magic, version))
    if ss < 512 or ss & (ss - 1) or BLK % ss:
        die("bad sectorsize %d" % ss)

    # first pass: the entries, and the data device size they reach
    ents = []
    pos = ss
    dev_bytes = 0
    for n in range(nr_entries):
        if not dev.need(pos + ss):
            die("entry %d at byte %d beyond the log device" % (n, pos))
        sector, nr, flags, dlen = struct.unpack_from("<QQQQ", log, pos)
        hdr = pos
        pos += ss
        mark = None
        if flags & LOG_MARK:
            mark = bytes(log[hdr + 32:hdr + 32 + dlen]).decode(errors="replace")
        elif not flags & LOG_DISCARD:
            pos += nr * ss
            if not dev.need(pos):
                die("entry %d data beyond the log device" % n)
        ents.append((sector, nr, flags, hdr + ss, mark))
        if not flags & LOG_MARK:
            dev_bytes = max(dev_bytes, (sector + nr) * ss)
    marks = [e[4] for e in ents if e[4] is not None]
    if start_mark not in marks:
        die("no start mark %r in the log (marks: %s): a stale log?"
            % (start_mark, marks[:5]))
    if not ents or ents[-1][4] != "dm-log-writes-end":
        die("log does not end with the mark dm-log-writes-end "
            "(%d entries): logging stopped early?" % len(ents))
    dev_bytes = max(dev_bytes, (cblk + jobs) * BLK)

    completed = bytearray(dev_bytes)
    durable = bytearray(dev_bytes)
    dur = memoryview(durable)
    pending = []		# (offset, data or None: a discard, length) since the last flush

    def put(img, off, data, length):
        if data is None:
            img[off:off + length] = bytes(length)
        else:
            img[off:off + length] = data

    want = [[block("lw cfg %d job %d seq %d" % (cfg, j, i))
             for i in range(area)] for j in range(jobs)]
    cprefix = [("commit cfg %d job %d covered " % (cfg, j)).encode()
               for j in range(jobs)]
    st = dict(entries=len(ents), flushes=0, fua=0, discards=0, marks=0,
              writes=0, commits=0, covered=0, checks=0, lost=0, written=0)
    seen_commits = [0] * jobs
    covered = [0] * jobs
    lost = set()
    seen = 0			# entries replayed so far (for the reports)

    for sector, nr, flags, doff, mark in ents:
        seen += 1
        if mark is not None:
            st["marks"] += 1
            continue
        off, length = sector * ss, nr * ss
        if flags & LOG_FLUSH:
            # PREFLUSH: everything logged before it is on the media
            st["flushes"] += 1
            for p in pending:
                put(durable, *p)
            pending = []
        if not length:
            continue
        if flags & LOG_DISCARD:
            st["discards"] += 1
            data = None
        else:
            st["writes"] += 1
            data = bytes(log[doff:doff + length])
        put(completed, off, data, length)
        if flags & LOG_FUA:
            st["fua"] += 1
            put(durable, off, data, length)
        else:
            pending.append((off, data, length))
        if data is None:
            continue
        # commit records in this write
        for j in range(jobs):
            c = (cblk + j) * BLK
            if not (off <= c and c + BLK <= off + length):
                continue
            rec = data[c - off:c - off + BLK]
            if not rec.startswith(cprefix[j]):
                continue
            n = int(rec[len(cprefix[j]):].split()[0])
            if rec != block("commit cfg %d job %d covered %d" % (cfg, j, n)) \
                    or not 0 < n <= area:
                die("malformed commit record in entry %d: %r" % (seen, rec[:60]))
            st["commits"] += 1
            seen_commits[j] += 1
            covered[j] = max(covered[j], n)
            base = j * area * BLK
            for i in range(n):
                st["checks"] += 1
                b = base + i * BLK
                if dur[b:b + BLK] != want[j][i] and (j, i) not in lost:
                    lost.add((j, i))
                    if len(lost) <= 5:
                        print("LOST: job %d seq %d (covered %d by the commit "
                              "in log entry %d of %d, %d flush entries "
                              "before it): durable holds %r" %
                              (j, i, n, seen, len(ents), st["flushes"],
                               bytes(dur[b:b + 40]).rstrip(b"\0 ") or "zeros"),
                              file=sys.stderr)

    st["covered"] = sum(covered)
    st["lost"] = len(lost)
    for j in range(jobs):
        for i in range(area):
            b = (j * area + i) * BLK
            st["written"] += completed[b:b + BLK] == want[j][i]
        if seen_commits[j] != ncommit[j]:
            print("job %d: %d commit records in the log, the writer wrote %d"
                  % (j, seen_commits[j], ncommit[j]), file=sys.stderr)
    st["commits_expected"] = sum(ncommit)
    print(" ".join("%s=%d" % kv for kv in st.items()))


if __name__ == "__main__":
    main()
