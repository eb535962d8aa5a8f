#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""t40 fuzzer: generated flushmirror tables and messages (issue 3, "Bad input").

Run by scripts/e2e/t40-fuzz.sh inside the UML guest.  A seeded generator
builds tables and messages from pools chosen around every limit; an oracle
written from SPEC.md section 3 and Documentation/flushmirror.rst says what
the kernel must do with each one; the driver talks to device-mapper through
ioctls on /dev/mapper/control (no process per case) and reads the kernel's
answer from /dev/kmsg.  A few cases still go through the real dmsetup.

Tables: the target must accept exactly the valid ones (and then report the
normalized table and a fresh status), reject the others with the error the
oracle names ("device-mapper: table: <maj:min>: flushmirror: <error>
(-E...)", or dm core's own line for what core rejects first) and leave no
table, device or device reference behind.  Most cases load into a new
device; some reload a device with a live table, which must survive a
rejected load untouched.

Messages go to three devices: synced (nosync), copying (destination behind
dm-delay, so the copy cannot finish meanwhile; pause and resume flip it
between copying and paused) and failed (destination is dm-error; a retry
goes back to copying and fails again).  Each must succeed or fail with
-EINVAL exactly as the oracle says, a rejected one must log the line naming
what was wrong, and phase and normalized table must follow; each phase
change must raise one dm event (awaited before the next message), also
in a burst of 40 back-to-back changes.

Writes a shell file of results (FZ_*=...) for the test script, which prints
the PASS/FAIL lines; prints "# ..." diagnosis, including the first few
offending cases of each kind.  Exit 0 when it ran to the end (whatever it
found), 2 when the harness itself broke.
"""

import argparse
import errno
import os
import random
import re
import shlex
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_dm import (Dm, DmError, Kmsg, split_args, quote_word,  # noqa: E402
                     kstrtouint, strcaseeq, kmsg_escape, show,
                     DM_ACTIVE_PRESENT_FLAG, DM_INACTIVE_PRESENT_FLAG,
                     SECTOR_MAX)

# ---------------------------------------------------------------- the contract
# SPEC.md 3 and Documentation/flushmirror.rst ("Constructor", "Messages")

MIN_REGION = 8			# 4 KiB
MAX_REGION = 2097152		# 1 GiB
MAX_FEATURE_ARGS = 14		# the names and values of every feature
MIN_JOBS, MAX_JOBS, DEFAULT_JOBS = 1, 64, 8
LLONG_MAX = (1 << 63) - 1
UINT_MAX = (1 << 32) - 1

# the metadata features (metadata <dev>, checkpoint_interval,
# discard_metadata) open a third device: t44 and t45 test them, the fuzzer
# never generates their names
FEATURES = (b"nosync", b"flush_policy", b"copy_rate", b"copy_jobs",
            b"copy_mode")
COPY_MODES = (b"sync", b"background")
POLICIES = (b"generation", b"always")
MESSAGES = {b"pause": 1, b"resume": 1, b"copy_rate": 2, b"flush_policy": 2,
            b"retry": 1}


class Verdict:
    """What the kernel must do with a case.  ok: accept it; line: the
    kernel log line it must leave (with "{mm}" for the dm device), errno:
    the ioctl's error; the rest describes an accepted table."""

    def __init__(self, ok, line=None, err="EINVAL", **kw):
        self.ok, self.line, self.errno = ok, line, err
        self.__dict__.update(kw)


def t_core(why):
    return Verdict(False, "device-mapper: table: {mm}: " + why)


def t_reject(why, err="EINVAL"):
    return Verdict(False, "device-mapper: table: {mm}: flushmirror: %s (-%s)"
                   % (why, err), err)


# dm_get_device() before Linux 6.5 (dm_get_dev_t) reports every path that
# does not name a block device as -ENODEV; since, lookup_bdev()'s own error
PATH_ERRNO = ("ENODEV" if tuple(map(int, re.findall(r"[0-9]+",
                                                   os.uname().release)[:2]))
              < (6, 5) else None)


class Env:
    """What the oracle needs to know of the machine: how a device argument
    resolves (dm_devt_from_path: "maj:min" or a path) and device sizes."""

    def resolve(self, arg, selfdev):
        """(dev_t as (major, minor), None) or (None, errno name)."""
        m = re.fullmatch(rb"([0-9]+):([0-9]+)", arg)
        if m:
            maj, mnr = int(m.group(1)), int(m.group(2))
            assert maj <= UINT_MAX and mnr <= UINT_MAX	# no sscanf wrap
            if maj >= 1 << 12 or mnr >= 1 << 20:
                return None, "EOVERFLOW"
            dev = (maj, mnr)
        else:
            try:
                st = os.stat(arg)
            except OSError as e:
                return None, PATH_ERRNO or errno.errorcode[e.errno]
            if not stat.S_ISBLK(st.st_mode):
                return None, PATH_ERRNO or "ENOTBLK"
            dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if dev == selfdev:			# a table cannot use its own device
            return None, "SELF"
        if not os.path.exists("/sys/dev/block/%d:%d" % dev):
            return None, "ENXIO"
        return dev, None

    @staticmethod
    def _sys(dev, leaf):
        with open("/sys/dev/block/%d:%d/%s" % (dev + (leaf,))) as f:
            return int(f.read())

    def sectors(self, dev):
        return self._sys(dev, "size")

    def lbs(self, dev):
        return self._sys(dev, "queue/logical_block_size")


def norm_table(src, dst, region, nosync, policy, rate, jobs, mode=b"sync"):
    """The TABLE line the target prints: devices as maj:min, only the
    features that differ from the defaults, in a fixed order."""
    f = []
    if nosync:
        f.append("nosync")
    if policy != b"generation":
        f += ["flush_policy", policy.decode()]
    if rate:
        f += ["copy_rate", str(rate)]
    if jobs != DEFAULT_JOBS:
        f += ["copy_jobs", str(jobs)]
    if mode != b"sync":
        f += ["copy_mode", mode.decode()]
    s = "%d:%d %d:%d %d" % (src + dst + (region,))
    return s + (" %d %s" % (len(f), " ".join(f)) if f else "")


def table_oracle(env, start, length, argv, selfdev):
    """The verdict on "<start> <length> flushmirror <argv>"."""
    # dm core (dm_table_add_target) before the target sees anything
    if length == 0:
        return t_core("zero-length target")
    if start + length > SECTOR_MAX or start + length > LLONG_MAX >> 9:
        return t_core("too large device")
    if start != 0:
        return t_reject("Gap in table")	# core's, under the target's name
    # the target: <source_dev> <dest_dev> <region_size> [<#f> <f>*]
    if len(argv) < 3:
        return t_reject("Invalid argument count")
    region = kstrtouint(argv[2])
    if region is None:
        return t_reject("Invalid region size: not a number")
    if region == 0 or region & (region - 1):
        return t_reject("Invalid region size: not a power of two")
    if region < MIN_REGION:
        return t_reject("Invalid region size: below 8 sectors")
    if region > MAX_REGION:
        return t_reject("Invalid region size: above 2097152 sectors")
    nosync, policy, rate, jobs = False, b"generation", 0, DEFAULT_JOBS
    mode = b"sync"
    feat = argv[3:]
    if feat:
        count = kstrtouint(feat[0])
        if count is None or count > MAX_FEATURE_ARGS:
            return t_reject("Invalid number of feature arguments")
        if count > len(feat) - 1:
            return t_reject("Feature count exceeds the arguments given")
        words = feat[1:1 + count]
        seen = set()
        i = 0
        while i < count:
            name = [f for f in FEATURES if strcaseeq(words[i], f)]
            i += 1
            if not name:
                return t_reject("Unknown feature argument")
            name = name[0]
            if name in seen:
                return t_reject("Duplicate feature argument")
            seen.add(name)
            if name == b"nosync":
                nosync = True
                continue
            if i == count:
                return t_reject("Feature argument lacks its value")
            val = words[i]
            i += 1
            if name == b"flush_policy":
                p = [p for p in POLICIES if strcaseeq(val, p)]
                if not p:
                    return t_reject("Invalid flush_policy: expected "
                                    "generation or always")
                policy = p[0]
            elif name == b"copy_rate":
                rate = kstrtouint(val)
                if rate is None:
                    return t_reject("Invalid copy_rate: expected KiB/s")
            elif name == b"copy_mode":
                m = [m for m in COPY_MODES if strcaseeq(val, m)]
                if not m:
                    return t_reject("Invalid copy_mode: expected sync or "
                                    "background")
                mode = m[0]
            else:
                jobs = kstrtouint(val)
                if jobs is None or not MIN_JOBS <= jobs <= MAX_JOBS:
                    return t_reject("Invalid copy_jobs: expected 1 to 64")
        if len(feat) - 1 > count:
            return t_reject("Too many arguments: feature count does not "
                            "match")
    # the target checks for its own device before dm core opens a leg
    src, err = env.resolve(argv[0], selfdev)
    if err == "SELF":
        return t_reject("Source is the flushmirror device itself")
    if err:
        return t_reject("Cannot open source device", err)
    dst, err = env.resolve(argv[1], selfdev)
    if err == "SELF":
        return t_reject("Destination is the flushmirror device itself")
    if err:
        return t_reject("Cannot open destination device", err)
    if src == dst:
        return t_reject("Source and destination are the same device")
    if env.sectors(src) < length:
        return t_reject("Source device is smaller than the target length")
    if env.sectors(dst) < length:
        return t_reject("Destination device is smaller than the target "
                        "length")
    if region * 512 < max(env.lbs(src), env.lbs(dst)):
        return t_reject("Region size is below a device's logical block size")
    return Verdict(True, nosync=nosync, region=region,
                   total=-(-length // region),
                   table=norm_table(src, dst, region, nosync, policy, rate,
                                    jobs, mode))


def msg_oracle(phase, length, sector, argv):
    """The verdict on a message to a device in phase; .phase is the phase
    after an accepted one, .policy/.rate what it sets."""
    # dm core (target_message) first
    if not argv:
        return Verdict(False, "device-mapper: ioctl: Empty message received.")
    assert argv[0][:1] != b"@"		# dm core's own messages: not ours
    if sector >= length:
        return Verdict(False, "device-mapper: ioctl: Target message sector "
                       "outside device.")
    shown = kmsg_escape(argv[0]) + \
        (" " + kmsg_escape(argv[1]) if len(argv) > 1 else "")
    pre = 'device-mapper: flushmirror: {mm}: message "%s" rejected: '

    def bad(why):
        return Verdict(False, pre % shown + why)

    cmd = [m for m in MESSAGES if strcaseeq(argv[0], m)]
    if not cmd:
        return bad("unknown message")
    cmd = cmd[0]
    if len(argv) != MESSAGES[cmd]:
        return bad("wrong number of arguments")
    if cmd == b"copy_rate":
        rate = kstrtouint(argv[1])
        if rate is None:
            return bad("copy_rate is not a number of KiB/s")
        return Verdict(True, phase=phase, rate=rate)
    if cmd == b"flush_policy":
        p = [p for p in POLICIES if strcaseeq(argv[1], p)]
        if not p:
            return bad("flush_policy is neither generation nor always")
        return Verdict(True, phase=phase, policy=p[0])
    need, to = {b"pause": ("copying", "paused"),
                b"resume": ("paused", "copying"),
                b"retry": ("failed", "copying")}[cmd]
    if phase != need:
        return Verdict(False, pre % kmsg_escape(argv[0]) + "%s: not %s"
                       % (cmd.decode(), need))
    return Verdict(True, phase=to)


# ---------------------------------------------------------------- the generator

def B(*xs):
    """bytes of each: a str is taken as Latin-1, so "\xa0" is one byte"""
    return [x if isinstance(x, bytes) else str(x).encode("latin-1")
            for x in xs]


# symbolic devices, made concrete once the dm device exists
SELF, SRC_MM, DST_MM, SMALL_MM, NB_GONE, DM_GONE = (
    b"<self>", b"<src-mm>", b"<dst-mm>", b"<small-mm>", b"<nb-gone>",
    b"<dm-gone>")
DEVS = B("/dev/fz_src", "/dev/fz_dst", "/dev/fz_small", "/dev/fz_small",
         "/dev/fz_nonexistent", "junk", "fz_src", "/dev/fz_src/",
         "/dev//fz_dst", "/dev/./fz_src", "/dev/null", "/dev/mapper/control",
         "/dev", "0:0", "4096:0", "7:1048576", "", SELF, SELF, SRC_MM,
         DST_MM, SMALL_MM, NB_GONE, DM_GONE)
GOOD_REGIONS = B(8, 16, 32, 64, 64, 128, 1024, 4096, 65536, 1048576,
                 2097152, "0008", "+8", "+2097152", "64\n",
                 "00000000000000000064")
# powers of two out of range twice: only they tell the limits apart from
# "not a power of two"
REGIONS = B(0, 1, 2, 3, 4, 4, 6, 7, 9, 12, 15, 17, 24, 1000, 1023, 1025,
            2097151, 2097153, 3145728, 4194304, 4194304, 1 << 31, UINT_MAX,
            1 << 32, (1 << 32) + 8, 1 << 33, (1 << 64) - 1, 1 << 64,
            (1 << 64) + 8, -8, "-0", "abc", "8k", "0x10", "1e3", "+", "++8",
            "8.0", " 8", "8 ", "8\n\n", "\n8", "1" * 40, "", "\xa08",
            "0" * 30)
NUMBERS = B(0, 1, 7, 64, 65, 1000, UINT_MAX - 1, UINT_MAX, 1 << 32,
            99999999999, (1 << 64) - 1, 1 << 64, -1, "-0", "+5", "++5",
            "007", "5\n", "5 ", "0x10", "1e3", "5k", "x", "", "9" * 25,
            "0" * 25 + "1")
POLICY_WORDS = B("generation", "always", "Generation", "ALWAYS", "never",
                 "gen", "always ", "generation\n", "0", "1", "", "\xc3\xa9")
FEATURE_NAMES = {
    b"nosync": B("nosync", "nosync", "nosync", "NOSYNC", "NoSync"),
    b"flush_policy": B("flush_policy", "flush_policy", "FLUSH_POLICY"),
    b"copy_rate": B("copy_rate", "copy_rate", "Copy_Rate"),
    b"copy_jobs": B("copy_jobs", "copy_jobs", "COPY_JOBS"),
    b"copy_mode": B("copy_mode", "copy_mode", "Copy_Mode"),
}
MODE_WORDS = B("sync", "background", "Background", "SYNC", "blocking",
               "back ground", "background\n", "", "0")
WORDS = B("nosync", "NOSYNC", "flush_policy", "copy_rate", "copy_jobs",
          "generation", "never", "sync", "nosync2", "copy-rate", 0, 65, -1,
          1 << 32, 99999999999, "x", "", "\\", "\xa0", "\xc3\xa9", "\x7f",
          "nosync\n")
COUNTS = B(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, -1, 1 << 32, (1 << 32) + 1,
           "+3", "03", "3\n", "x", "")
SEPARATORS = B(" ", "  ", "\t", "\n", " \t ", "\xa0", "\v\f\r")


class Gen:
    def __init__(self, seed, n, small):
        self.r = random.Random(seed)
        self.n, self.small = n, small
        m = n
        self.lens = [m, m, m - 1, m // 2, 1, 7, 8, 9, small, small + 1,
                     m + 1, 2 * m, 1 << 32, (1 << 32) + m, (LLONG_MAX >> 9),
                     (LLONG_MAX >> 9) + 1, 1 << 63, SECTOR_MAX, 0]

    def choose(self, good, pool, odds=6):
        """good (odds - 1) times in odds, else a random element of pool"""
        r = self.r
        return good if r.randrange(odds) else r.choice(pool)

    def number(self, good):
        return self.choose(str(good).encode(), NUMBERS)

    def feature(self, name):
        r = self.r
        w = [r.choice(FEATURE_NAMES[name])]
        if name == b"flush_policy":
            w.append(self.choose(r.choice(POLICIES), POLICY_WORDS))
        elif name == b"copy_rate":
            w.append(self.number(r.choice([0, r.randrange(1 << 31)])))
        elif name == b"copy_jobs":
            w.append(self.number(r.randrange(MIN_JOBS, MAX_JOBS + 1)))
        elif name == b"copy_mode":
            w.append(self.choose(r.choice(COPY_MODES), MODE_WORDS))
        return w

    def table(self):
        """(start, length, words, recipe): words may hold symbolic
        devices; recipe says how to join them into the parameter string."""
        r = self.r
        start = 0 if r.randrange(100) else r.choice([1, 8])
        length = self.n if r.randrange(6) else r.choice(self.lens)
        nf = r.randrange(3) if r.randrange(20) == 0 else 3	# too few
        words = [self.choose(b"/dev/fz_src", DEVS, 9),
                 self.choose(b"/dev/fz_dst", DEVS, 9),
                 self.choose(r.choice(GOOD_REGIONS), REGIONS)][:nf]
        if nf == 3 and r.randrange(8):
            feats = []
            k = r.randrange(10)
            if k == 0:			# every feature, in some order
                names = list(FEATURES)
                r.shuffle(names)
                for name in names:
                    feats += self.feature(name)
                if r.randrange(3) == 0:
                    feats.insert(r.randrange(len(feats) + 1), r.choice(WORDS))
            else:
                for _ in range(r.randrange(5)):
                    c = r.randrange(14)
                    if c < 10:
                        feats += self.feature(FEATURES[c // 2])
                    elif c == 10:	# a stray word
                        feats.append(r.choice(WORDS))
                    elif c == 11 and feats and r.randrange(2):
                        # a duplicate, maybe conflicting
                        have = [f for f in FEATURES
                                if any(strcaseeq(w, f) for w in feats)]
                        feats += self.feature(r.choice(have or FEATURES))
                    elif c == 12:	# a name without its value
                        feats.append(r.choice(FEATURES))
            c = r.randrange(8)
            if c == 0:
                count = r.choice(COUNTS)
            elif c == 1:
                count = str(max(0, len(feats) + r.choice([-2, -1, 1, 2])))
                count = count.encode()
            else:
                count = str(len(feats)).encode()
            words += [count] + feats
        # how to join them: mostly plain, sometimes odd whitespace, escapes,
        # a word left unquoted, a trailing backslash
        recipe = {}
        if r.randrange(12) == 0:
            k = r.randrange(7)
            if k == 0:
                recipe["seps"] = [r.choice(SEPARATORS) for _ in words]
            elif k == 1:
                recipe["lead"] = r.choice(SEPARATORS)
                recipe["trail"] = r.choice(SEPARATORS)
            elif k == 2 and len(words) > 1:
                recipe["glue"] = r.randrange(len(words) - 1)
            elif k == 3:
                recipe["raw"] = r.randrange(max(1, len(words)))
            elif k == 4:
                recipe["tailbs"] = True
            elif k == 5 and words:
                recipe["escape"] = (r.randrange(len(words)),
                                    r.randrange(1 << 16))
            else:
                recipe["empty"] = True		# an empty word in the middle
        return start, length, words, recipe

    def message(self, length):
        """(sector, words, recipe)"""
        r = self.r
        k = r.randrange(20)
        cmd = [r.choice([b"pause", b"resume", b"retry"])]
        if k < 7:
            words = cmd
        elif k < 10:
            words = self.feature(b"copy_rate")
        elif k < 13:
            words = self.feature(b"flush_policy")
        elif k < 15:
            words = r.choice([cmd, self.feature(b"copy_rate"),
                              self.feature(b"flush_policy")])
            if r.randrange(2) and len(words) > 1:
                words = words[:1]
            else:
                words = words + [r.choice(WORDS + NUMBERS)]
        elif k < 19:
            pool = B("pause", "resume", "retry", "copy_rate", "copy_rate",
                     "flush_policy", "flush_policy", "PAUSE", "Resume",
                     "RETRY", "generation", "always", "never", "stop",
                     "nosync", "copy_jobs", "frob") + NUMBERS + WORDS
            words = [r.choice(pool) for _ in range(r.randrange(1, 5))]
        else:
            words = [r.choice(B("", " ", "pause\\", "pa\\use",
                                "\xa0pause", "copy_rate\xa05",
                                "copy_rate\\ 5", "\\ pause", "pause\x7f",
                                "retry\n", "\xc3\x89"))]
        if r.randrange(3) == 0:
            words = [w.upper() if r.randrange(4) == 0 else w for w in words]
        sector = 0 if r.randrange(12) else r.choice(
            [1, length - 1, length, length + 1, 1 << 32, 1 << 63,
             SECTOR_MAX])
        recipe = {}
        if r.randrange(10) == 0:
            recipe["seps"] = [r.choice(SEPARATORS) for _ in words]
            recipe["lead"] = r.choice(SEPARATORS + [b""])
        if k == 19:
            recipe["raw"] = 0
        return sector, words, recipe


def materialize(words, recipe, devs):
    """The parameter string: words quoted for dm_split_args() and joined,
    symbolic devices replaced by devs[...], then the recipe's oddities."""
    words = [devs.get(w, w) for w in words]
    out = []
    for i, w in enumerate(words):
        if recipe.get("empty") and i == len(words) // 2:
            out.append(b"")			# no word at all: just space
        if recipe.get("raw") == i:
            out.append(w)			# its spaces split it
        elif "escape" in recipe and recipe["escape"][0] == i and w:
            j = recipe["escape"][1] % len(w)	# "no\sync" is "nosync"
            out.append(quote_word(w[:j]) + b"\\" + quote_word(w[j:]))
        else:
            out.append(quote_word(w))
    if recipe.get("tailbs"):
        out.append(b"\\")			# a lone backslash, kept as is
    seps = recipe.get("seps") or [b" "] * len(out)
    s = b""
    for i, w in enumerate(out):
        if i:
            g = recipe.get("glue") == i - 1
            s += b"\\ " if g else seps[i % len(seps)]
        s += w
    return recipe.get("lead", b"") + s + recipe.get("trail", b"")


# what passes through dmsetup's command line as is (a word starting with
# "-" would be an option of dmsetup message)
DMSETUP_SAFE = re.compile(rb"[\w/:.+][\w/:.+-]*( [\w/:.+][\w/:.+-]*)*",
                          re.ASCII)


# ---------------------------------------------------------------- the driver

class Fuzz:
    def __init__(self, a):
        self.a = a
        self.dm = Dm()
        self.kmsg = Kmsg()
        self.env = Env()
        self.bad_log = re.compile(a.bad_log) if a.bad_log else None
        self.noise = re.compile(a.log_noise) if a.log_noise else None
        self.problems = {}
        self.cnt = dict(tables=0, t_acc=0, t_rej=0, t_rej_core=0,
                        t_dmsetup=0, t_reload=0, t_resumed=0, t_cleared=0,
                        msgs=0, m_acc=0, m_rej=0, m_dmsetup=0, m_core=0)
        self.case = "setup"
        self.retry_wait = 0.0
        self.burst_events = -1
        self.t0 = time.monotonic()
        self.nb = {}
        for name in ("fz_src", "fz_dst", "fz_small"):
            st = os.stat("/dev/" + name)
            self.nb[name] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        self.n = self.env.sectors(self.nb["fz_src"])
        self.small = self.env.sectors(self.nb["fz_small"])
        self.gen = Gen(a.seed, self.n, self.small)
        self.helpers = {}
        for name in (a.slow, a.err):
            i = self.dm.info(name.encode())
            if not i:
                raise RuntimeError("no helper device " + name)
            self.helpers[name] = (os.major(i["dev"]), os.minor(i["dev"]))
        self.devs0 = set(self.dm.list_devices())

    # -------------------------------------------------------------- records

    def problem(self, kind, what):
        lst = self.problems.setdefault(kind, [])
        lst.append(what)
        if len(lst) <= self.a.show:
            print("# %s: %s" % (kind, what), flush=True)

    def log(self):
        """New kernel log records; reports (KASAN, lockdep, WARNING...) are
        problems of the case that was running."""
        recs = self.kmsg.drain()
        if self.bad_log:
            for t in recs:
                if self.bad_log.search(t) and not (
                        self.noise and self.noise.search(t)):
                    self.problem("kernel-report", "%s: %s" % (self.case, t))
        return recs

    def info(self, msg):
        print("# %s (%.1fs)" % (msg, time.monotonic() - self.t0), flush=True)

    def devmap(self, selfdev):
        mm = {k: b"%d:%d" % v for k, v in self.nb.items()}
        nbmaj = self.nb["fz_src"][0]
        return {SELF: b"%d:%d" % selfdev, SRC_MM: mm["fz_src"],
                DST_MM: mm["fz_dst"], SMALL_MM: mm["fz_small"],
                NB_GONE: b"%d:%d" % (nbmaj, (1 << 20) - 1),
                DM_GONE: b"%d:%d" % (selfdev[0], (1 << 20) - 1)}

    @staticmethod
    def parse_info(text):
        """INFO: <phase> <copied>/<total> <SG> <WM> <FR> <WF> <guest
        flushes> <dest flushes> <dest errors> [more] -> a flat list"""
        f = text.split()
        if len(f) < 9 or "/" not in f[1]:
            return None
        try:
            c, t = f[1].split("/")
            return [f[0], int(c), int(t)] + [int(x) for x in f[2:9]]
        except ValueError:
            return None

    def check_new(self, name, v, length, inactive, kind):
        """A freshly accepted table: normalized TABLE line, INFO as a new
        target (counters zero, regions, phase)."""
        tab = self.dm.status(name, table=True, inactive=inactive)
        inf = self.dm.status(name, inactive=inactive)
        want = [(0, length, "flushmirror", v.table)]
        if tab != want:
            self.problem(kind, "%s: table %r, expected %r"
                         % (self.case, tab, want))
        s = self.parse_info(inf[0][3]) if len(inf) == 1 else None
        ok = s is not None
        if ok:
            ph, copied, total, sg, wm, fr, wf, gfl, dfl, derr = s
            ok = total == v.total and sg == wm == fr == wf == gfl == derr == 0
            if v.nosync:
                ok = ok and ph == "synced" and copied == total and dfl == 0
            elif inactive:
                ok = ok and ph == "copying" and copied == 0 and dfl == 0
            else:
                ok = ok and (ph == "copying" and copied <= total and
                             dfl <= 1 or ph == "synced" and
                             copied == total and dfl == 1)
        if not ok:
            self.problem(kind, "%s: status %r (%d regions, nosync %s)"
                         % (self.case, inf, v.total, v.nosync))

    def check_log(self, recs, expect, mm, kind, prefix):
        lines = [t for t in recs if t.startswith(prefix)]
        want = [expect.replace("{mm}", mm)] if expect else []
        if lines != want:
            self.problem(kind, "%s: log %r, expected %r"
                         % (self.case, lines, want))
            return False
        return True

    # -------------------------------------------------------------- tables

    def remove(self, name):
        for i in range(50):
            try:
                self.dm.remove(name)
                break
            except DmError as e:
                if e.errno != errno.EBUSY or i == 49:
                    self.problem("tables-leftover", "%s: remove: %s"
                                 % (self.case, e))
                    return False
                time.sleep(0.1)
        if self.dm.info(name) is not None:
            self.problem("tables-leftover", "%s: still there after remove"
                         % self.case)
            return False
        return True

    def table_case(self, idx, mode):
        start, length, words, recipe = self.gen.table()
        if mode == "reload":
            name = b"fz_live"
            selfdev = self.live_dev
        elif mode == "dmsetup":
            name = b"fz_ds"
            selfdev = None
        else:
            name = b"fz_fuzz"
            selfdev = self.dm.create(name)
        if mode == "dmsetup":
            # the minor dmsetup will get is not known beforehand
            words = [w for w in words if w != SELF]
            selfdev = (self.live_dev[0], (1 << 20) - 2)
        params = materialize(words, recipe, self.devmap(selfdev))
        if mode == "dmsetup" and not (
                start == 0 and 0 < length < 1 << 40 and
                DMSETUP_SAFE.fullmatch(params)):
            return False			# not for a shell: try the next
        argv = split_args(params)
        v = table_oracle(self.env, start, length, argv, selfdev)
        line = "%d %d flushmirror %s" % (start, length, show(params))
        self.case = "table %d [%s] '%s'" % (idx, mode, line)
        self.cnt["tables"] += 1
        err = None
        if mode == "dmsetup":
            self.cnt["t_dmsetup"] += 1
            p = subprocess.run(["dmsetup", "create", "fz_ds", "--table",
                                line], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            ok = p.returncode == 0
            err = p.stdout.decode("latin-1").strip().replace("\n", " | ")
            i = self.dm.info(name)
            if ok and i:
                selfdev = (os.major(i["dev"]), os.minor(i["dev"]))
            elif not ok and i:
                self.problem("tables-leftover", "%s: dmsetup left the device"
                             % self.case)
        else:
            try:
                self.dm.load(name, start, length, b"flushmirror", params)
                ok = True
            except DmError as e:
                ok = False
                err = errno.errorcode.get(e.errno, str(e.errno))
        recs = self.log()
        mm = "%d:%d" % selfdev if mode != "dmsetup" else "[^ ]+"
        if ok != v.ok:
            seen = [t for t in recs if t.startswith("device-mapper: table: ")]
            self.problem("tables-oracle", "%s: %s, expected %s"
                         % (self.case, "accepted" if ok else
                            "rejected (%s, log %r)" % (err, seen),
                            "accepted" if v.ok else "rejected: "
                            + v.line.replace("{mm}", mm)))
        if not ok:
            if v.ok:
                pass
            elif mode == "dmsetup":
                lines = [t for t in recs
                         if t.startswith("device-mapper: table: ")]
                pat = re.escape(v.line).replace(re.escape("{mm}"), "[^ ]+")
                if len(lines) != 1 or not re.fullmatch(pat, lines[0]):
                    self.problem("tables-error-line", "%s: log %r, expected "
                                 "%r" % (self.case, lines, v.line))
                else:
                    self.count_rejected(v)
            else:
                good = self.check_log(recs, v.line, mm, "tables-error-line",
                                      "device-mapper: table: ")
                if err != v.errno:
                    self.problem("tables-error-line", "%s: error %s, "
                                 "expected %s" % (self.case, err, v.errno))
                elif good:
                    self.count_rejected(v)
        else:
            self.check_log(recs, None, mm, "tables-error-line",
                           "device-mapper: ")
        if mode == "reload":
            self.reload_after(ok, v, length)
        elif mode == "dmsetup":
            if ok:
                if v.ok:
                    self.cnt["t_acc"] += 1
                    self.check_new(name, v, length, False, "tables-state")
                p = subprocess.run(["dmsetup", "remove", "fz_ds"],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=60)
                if p.returncode:
                    self.problem("tables-leftover", "%s: dmsetup remove: %s"
                                 % (self.case, p.stdout.decode("latin-1")))
                    self.remove(name)
            if self.dm.info(name) is not None:
                self.problem("tables-leftover", "%s: device left behind"
                             % self.case)
                self.remove(name)
        else:
            i = self.dm.info(name)
            want = DM_INACTIVE_PRESENT_FLAG if ok else 0
            flags = i["flags"] & (DM_ACTIVE_PRESENT_FLAG |
                                  DM_INACTIVE_PRESENT_FLAG)
            if flags != want or i["open_count"]:
                self.problem("tables-leftover", "%s: device flags %#x open "
                             "%d after the load" % (self.case, i["flags"],
                                                    i["open_count"]))
            if ok and v.ok:
                self.cnt["t_acc"] += 1
                self.check_new(name, v, length, True, "tables-state")
                if self.gen.r.randrange(3):
                    self.dm.resume(name)
                    self.cnt["t_resumed"] += 1
                    self.check_new(name, v, length, False, "tables-state")
                else:
                    self.dm.clear(name)
                    self.cnt["t_cleared"] += 1
                    i = self.dm.info(name)
                    if i["flags"] & (DM_ACTIVE_PRESENT_FLAG |
                                     DM_INACTIVE_PRESENT_FLAG):
                        self.problem("tables-leftover", "%s: table left "
                                     "after clear" % self.case)
            self.remove(name)
            self.log()
        return True

    def count_rejected(self, v):
        self.cnt["t_rej"] += 1
        if "flushmirror:" not in v.line:
            self.cnt["t_rej_core"] += 1

    def live_table(self):
        return self.dm.status(b"fz_live", table=True)

    def reload_after(self, ok, v, length):
        """fz_live keeps its live table through any load; an accepted one is
        cleared, or swapped in and then the original put back."""
        name = b"fz_live"
        self.cnt["t_reload"] += 1
        i = self.dm.info(name)
        want = DM_ACTIVE_PRESENT_FLAG | (DM_INACTIVE_PRESENT_FLAG if ok
                                         else 0)
        if i["flags"] & (DM_ACTIVE_PRESENT_FLAG | DM_INACTIVE_PRESENT_FLAG) \
                != want:
            self.problem("tables-leftover", "%s: fz_live flags %#x after the "
                         "load" % (self.case, i["flags"]))
        if ok and v.ok:
            self.cnt["t_acc"] += 1
            self.check_new(name, v, length, True, "tables-state")
        if ok and v.ok and self.gen.r.randrange(2):
            self.dm.resume(name)
            self.cnt["t_resumed"] += 1
            self.check_new(name, v, length, False, "tables-state")
            self.dm.load(name, 0, self.n, b"flushmirror", self.live_params)
            self.dm.resume(name)
        elif ok:
            self.dm.clear(name)
            self.cnt["t_cleared"] += 1
        if self.live_table() != self.live_want:
            self.problem("tables-state", "%s: fz_live table now %r"
                         % (self.case, self.live_table()))
        s = self.parse_info(self.dm.status(name)[0][3])
        if not s or s[0] != "synced":
            self.problem("tables-state", "%s: fz_live status now %r"
                         % (self.case, s))
        self.log()

    def tables(self):
        a = self.a
        r = random.Random(a.seed + 1)
        # fz_live: a synced device that reload cases load into
        self.live_dev = self.dm.create(b"fz_live")
        mm = self.devmap(self.live_dev)
        self.live_params = b"%s %s 64 1 nosync" % (mm[SRC_MM], mm[DST_MM])
        self.dm.load(b"fz_live", 0, self.n, b"flushmirror", self.live_params)
        self.dm.resume(b"fz_live")
        self.live_want = [(0, self.n, "flushmirror", "%s %s 64 1 nosync"
                           % (mm[SRC_MM].decode(), mm[DST_MM].decode()))]
        self.log()
        every = max(1, a.tables // max(1, a.dmsetup_tables))
        pending = 0
        idx = 0
        while idx < a.tables:
            if idx % 500 == 0 and idx:
                self.info("table %d" % idx)
            if idx % every == every // 2:
                pending += 1
            if pending and self.table_case(idx, "dmsetup"):
                pending -= 1
                idx += 1
                continue
            self.table_case(idx, "reload" if r.randrange(10) == 0
                            else "fresh")
            idx += 1
        self.case = "after the tables"
        self.remove(b"fz_live")
        self.log()
        left = set(self.dm.list_devices()) - self.devs0
        if left:
            self.problem("tables-leftover", "devices left: %s"
                         % sorted(left))
        helpers = {"dm-%d" % d[1] for d in self.helpers.values()}
        for nb in self.nb:
            h = set(os.listdir("/sys/block/%s/holders" % nb)) - helpers
            if h:
                self.problem("tables-leftover", "%s still held by %s"
                             % (nb, h))

    # -------------------------------------------------------------- messages

    def mdev(self, name, dst, region, feats):
        mm = self.devmap((0, 0))
        params = b"%s %d:%d %d" % ((mm[SRC_MM],) + dst + (region,))
        if feats:
            params += b" %d %s" % (len(feats.split()), feats)
        self.dm.create(name)
        self.dm.load(name, 0, self.n, b"flushmirror", params)
        self.dm.resume(name)
        return {"name": name, "src": self.nb["fz_src"], "dst": dst,
                "region": region, "nosync": b"nosync" in feats,
                "jobs": int(feats.split()[-1]) if b"copy_jobs" in feats
                else DEFAULT_JOBS, "policy": b"generation", "rate": 0,
                "phase": "synced" if b"nosync" in feats else "copying",
                "changes": 0}

    def phase_of(self, d):
        s = self.parse_info(self.dm.status(d["name"])[0][3])
        return s[0] if s else None

    def wait_phase(self, d, want, secs=20):
        end = time.monotonic() + secs
        while True:
            ph = self.phase_of(d)
            if ph == want or time.monotonic() > end:
                return ph
            time.sleep(0.05)

    def events(self, d):
        return self.dm.info(d["name"])["event_nr"]

    def wait_events(self, d, want, secs=5):
        end = time.monotonic() + secs
        while True:
            ev = self.events(d) - d["ev0"]
            if ev >= want or time.monotonic() > end:
                return ev
            time.sleep(0.05)

    def messages(self):
        a = self.a
        r = random.Random(a.seed + 2)
        self.case = "message devices"
        devs = [self.mdev(b"fz_ms", self.nb["fz_dst"], 64, b"nosync"),
                self.mdev(b"fz_mc", self.helpers[a.slow], 8, b"copy_jobs 1"),
                # 8-sector regions: even at copy_rate 1 a retry fails
                # within 4 s (the throttle runs before the copy)
                self.mdev(b"fz_mf", self.helpers[a.err], 8, b"")]
        ms, mc, mf = devs
        ph = self.wait_phase(mf, "failed")
        if ph != "failed":
            raise RuntimeError("fz_mf (destination dm-error) is %s, not "
                               "failed" % ph)
        mf["phase"] = "failed"
        mc["ev0"] = ms["ev0"] = 0
        mf["ev0"] = 0
        if self.wait_events(mf, 1) != 1:
            self.problem("messages-phase", "fz_mf: events %d after failing, "
                         "expected 1" % self.events(mf))
        for d in devs:
            d["ev0"] = self.events(d)
            if self.phase_of(d) != d["phase"]:
                raise RuntimeError("%s is %s at the start" %
                                   (d["name"], self.phase_of(d)))
        self.log()
        every = max(1, a.msgs // max(1, a.dmsetup_msgs))
        pending = 0
        for idx in range(a.msgs):
            if idx % 250 == 0 and idx:
                self.info("message %d" % idx)
            if idx % every == every // 2:
                pending += 1
            d = r.choice([ms, ms, mc, mc, mf])
            sector, words, recipe = self.gen.message(self.n)
            params = materialize(words, recipe, {})
            use_dmsetup = bool(pending and sector == 0 and
                               DMSETUP_SAFE.fullmatch(params))
            if use_dmsetup:
                pending -= 1
            self.msg_case(idx, d, sector, params, use_dmsetup)
        self.case = "after the messages"
        for d in devs:
            ev = self.wait_events(d, d["changes"], 5)
            if ev != d["changes"]:
                self.problem("messages-phase", "%s: %d dm events for %d "
                             "phase changes" % (d["name"].decode(), ev,
                                                d["changes"]))
        self.final = {d["name"].decode(): self.phase_of(d) for d in devs}
        self.burst(mc)
        for d in devs:
            self.remove(d["name"])
        self.log()
        left = set(self.dm.list_devices()) - self.devs0
        if left:
            self.problem("messages-phase", "devices left: %s" % sorted(left))

    def burst(self, d):
        """dm events for pause/resume pairs sent back to back, with no
        pause for the event work to run in between (t40-fuzz.sh expects
        one per phase change: 40)."""
        self.case = "burst"
        if d["phase"] == "paused":
            self.dm.message(d["name"], 0, b"resume")
            d["phase"] = "copying"
            d["changes"] += 1
        # every earlier change's event first (each is awaited, no sleep)
        e0 = self.wait_events(d, d["changes"], 10)
        for _ in range(20):
            self.dm.message(d["name"], 0, b"pause")
            self.dm.message(d["name"], 0, b"resume")
        d["changes"] += 40
        # returns as soon as all 40 are there; 30 s for a loaded guest
        self.burst_events = self.wait_events(d, e0 + 40, 30) - e0
        self.log()

    def msg_case(self, idx, d, sector, params, use_dmsetup):
        name = d["name"]
        argv = split_args(params)
        v = msg_oracle(d["phase"], self.n, sector, argv)
        mm = "%d:%d" % self.dm_dev(name)
        self.case = "message %d to %s (%s) at sector %d%s: '%s'" % (
            idx, name.decode(), d["phase"], sector,
            " [dmsetup]" if use_dmsetup else "", show(params))
        self.cnt["msgs"] += 1
        err = None
        if use_dmsetup:
            self.cnt["m_dmsetup"] += 1
            p = subprocess.run(["dmsetup", "message", name.decode(), "0"] +
                               [w.decode() for w in argv],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            ok = p.returncode == 0
            if not ok:
                err = "EINVAL" if "Invalid argument" in \
                    p.stdout.decode("latin-1") else p.stdout.decode(
                        "latin-1").strip().replace("\n", " | ")
        else:
            try:
                self.dm.message(name, sector, params)
                ok = True
            except DmError as e:
                ok = False
                err = errno.errorcode.get(e.errno, str(e.errno))
        recs = self.log()
        lines = [t for t in recs if t.startswith("device-mapper: ioctl: ") or
                 t.startswith("device-mapper: flushmirror: ") and
                 'message "' in t]
        if ok != v.ok:
            self.problem("messages-oracle", "%s: %s, expected %s"
                         % (self.case, "accepted" if ok else
                            "rejected (%s, log %r)" % (err, lines),
                            "accepted" if v.ok else "rejected: "
                            + v.line.replace("{mm}", mm)))
        elif not ok and err != "EINVAL":
            self.problem("messages-oracle", "%s: error %s, expected EINVAL"
                         % (self.case, err))
        if ok:
            self.cnt["m_acc"] += 1
        else:
            self.cnt["m_rej"] += 1
            if v.line and "ioctl:" in v.line:
                self.cnt["m_core"] += 1
        want = [v.line.replace("{mm}", mm)] if not v.ok else []
        if lines != want:
            self.problem("messages-log", "%s: log %r, expected %r"
                         % (self.case, lines, want))
        # the model moves as the oracle says; on a disagreement, as the
        # kernel says (one wrong answer is reported once, not cascaded)
        before = d["phase"]
        if v.ok and ok:
            d["phase"] = v.phase
            d["policy"] = getattr(v, "policy", d["policy"])
            d["rate"] = getattr(v, "rate", d["rate"])
        changes = d["changes"]
        if d["name"] == b"fz_mf" and d["phase"] == "copying":
            # retry: copying again, until the dm-error destination fails it
            t = time.monotonic()
            ph = self.wait_phase(d, "failed")
            self.retry_wait = max(self.retry_wait, time.monotonic() - t)
            d["phase"] = "failed"
            d["changes"] += 2
            if ph != "failed":
                self.problem("messages-phase", "%s: %s 20 s after retry"
                             % (self.case, ph))
        elif d["phase"] != before:
            d["changes"] += 1
        ph = self.phase_of(d)
        if ph != d["phase"]:
            self.problem("messages-phase", "%s: phase %s, expected %s"
                         % (self.case, ph, d["phase"]))
            d["phase"] = ph
            d["changes"] = changes + (ph != before)
        if d["changes"] != changes:
            # one dm event per phase change (SPEC 3), before the next one
            ev = self.wait_events(d, d["changes"], 5)
            if ev != d["changes"]:
                self.problem("messages-phase", "%s: %d dm events after %d "
                             "phase changes" % (self.case, ev, d["changes"]))
                d["ev0"] += ev - d["changes"]
        tab = self.dm.status(name, table=True)[0][3]
        want = norm_table(d["src"], d["dst"], d["region"], d["nosync"],
                          d["policy"], d["rate"], d["jobs"])
        if tab != want:
            self.problem("messages-phase", "%s: table '%s', expected '%s'"
                         % (self.case, tab, want))
            f = tab.split()		# go on from what the kernel has
            d["policy"] = f[f.index("flush_policy") + 1].encode() \
                if "flush_policy" in f else b"generation"
            d["rate"] = int(f[f.index("copy_rate") + 1]) \
                if "copy_rate" in f else 0

    def dm_dev(self, name):
        i = self.dm.info(name)
        return os.major(i["dev"]), os.minor(i["dev"])

    # -------------------------------------------------------------- results

    def results(self, path, crashed):
        c = self.cnt
        kinds = ("tables-oracle", "tables-error-line", "tables-state",
                 "tables-leftover", "messages-oracle", "messages-log",
                 "messages-phase", "kernel-report")
        out = {"FZ_CRASH": crashed or "",
               "FZ_SECS": "%d" % (time.monotonic() - self.t0),
               "FZ_IOCTLS": str(self.dm.ioctls),
               "FZ_KMSG_LOST": str(self.kmsg.lost),
               "FZ_BURST_EVENTS": str(self.burst_events),
               "FZ_RETRY_WAIT": "%.1f" % self.retry_wait,
               "FZ_FINAL": " ".join("%s=%s" % kv for kv in
                                    sorted(getattr(self, "final",
                                                   {}).items()))}
        for k, v in c.items():
            out["FZ_" + k.upper()] = str(v)
        for k in kinds:
            key = "FZ_P_" + k.upper().replace("-", "_")
            lst = self.problems.get(k, [])
            out[key] = str(len(lst))
            out[key + "_FIRST"] = lst[0][:600] if lst else ""
        for k in self.problems:
            if k not in kinds:
                out["FZ_CRASH"] += " unknown problem kind " + k
        with open(path, "w") as f:
            for k, v in out.items():
                f.write("%s=%s\n" % (k, shlex.quote(v)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--tables", type=int, default=3000)
    p.add_argument("--msgs", type=int, default=1000)
    p.add_argument("--dmsetup-tables", type=int, default=20)
    p.add_argument("--dmsetup-msgs", type=int, default=10)
    p.add_argument("--slow", default="fz_slow",
                   help="dm device: the copying device's destination")
    p.add_argument("--err", default="fz_err",
                   help="dm device: the failed device's destination")
    p.add_argument("--bad-log", default="",
                   help="regex: kernel log lines that are reports")
    p.add_argument("--log-noise", default="",
                   help="regex: report lines that are not ours")
    p.add_argument("--show", type=int, default=5,
                   help="offending cases printed per kind")
    p.add_argument("--results", required=True)
    a = p.parse_args()
    fz = Fuzz(a)
    crashed = ""
    try:
        fz.info("tables: %d (seed %d), %d of them with dmsetup"
                % (a.tables, a.seed, a.dmsetup_tables))
        fz.tables()
        c = fz.cnt
        fz.info("tables: %d run, %d accepted (%d resumed, %d cleared), "
                "%d rejected with the expected error (%d by dm core), %d "
                "reloads of a live device, %d through dmsetup"
                % (c["tables"], c["t_acc"], c["t_resumed"], c["t_cleared"],
                   c["t_rej"], c["t_rej_core"], c["t_reload"],
                   c["t_dmsetup"]))
        fz.messages()
        fz.info("messages: %d sent, %d accepted, %d rejected (%d by dm "
                "core), %d through dmsetup; phases at the end: %s"
                % (c["msgs"], c["m_acc"], c["m_rej"], c["m_core"],
                   c["m_dmsetup"], fz.final))
    except Exception as e:		# the harness broke: say where
        import traceback
        traceback.print_exc()
        crashed = "%s: %s: %s" % (fz.case, type(e).__name__, e)
    fz.log()
    fz.results(a.results, crashed)
    return 2 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
