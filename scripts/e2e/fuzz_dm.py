# SPDX-License-Identifier: GPL-2.0
"""Device-mapper ioctls, /dev/kmsg and kernel string models for the fuzzer.

Used by scripts/e2e/fuzz_t40.py inside the UML guest: one ioctl on
/dev/mapper/control instead of one dmsetup process per case (a fork and exec
costs tens of milliseconds in UML).  Layouts from
include/uapi/linux/dm-ioctl.h (interface 4.x); string models from
lib/kstrtox.c, lib/ctype.c, drivers/md/dm-table.c (dm_split_args) and
kernel/printk/printk.c (the escaping of /dev/kmsg records).
"""

import errno
import fcntl
import os
import struct

# ---------------------------------------------------------------- ioctls

# struct dm_ioctl: version[3] data_size data_start target_count open_count
# flags event_nr padding dev name[128] uuid[129] data[7]
DM_HDR = struct.Struct("=3IIIIiIIIQ128s129s7s")
# struct dm_target_spec: sector_start length status next target_type[16]
DM_SPEC = struct.Struct("=QQiI16s")
assert DM_HDR.size == 312 and DM_SPEC.size == 40

(DM_VERSION_CMD, DM_REMOVE_ALL_CMD, DM_LIST_DEVICES_CMD, DM_DEV_CREATE_CMD,
 DM_DEV_REMOVE_CMD, DM_DEV_RENAME_CMD, DM_DEV_SUSPEND_CMD, DM_DEV_STATUS_CMD,
 DM_DEV_WAIT_CMD, DM_TABLE_LOAD_CMD, DM_TABLE_CLEAR_CMD, DM_TABLE_DEPS_CMD,
 DM_TABLE_STATUS_CMD, DM_LIST_VERSIONS_CMD, DM_TARGET_MSG_CMD) = range(15)

DM_READONLY_FLAG = 1 << 0
DM_SUSPEND_FLAG = 1 << 1
DM_STATUS_TABLE_FLAG = 1 << 4
DM_ACTIVE_PRESENT_FLAG = 1 << 5
DM_INACTIVE_PRESENT_FLAG = 1 << 6
DM_BUFFER_FULL_FLAG = 1 << 8
DM_QUERY_INACTIVE_TABLE_FLAG = 1 << 12

SECTOR_MAX = (1 << 64) - 1


def _iowr(nr):
    """_IOWR(DM_IOCTL, nr, struct dm_ioctl)"""
    return (3 << 30) | (DM_HDR.size << 16) | (0xFD << 8) | nr


def _align8(n):
    return (n + 7) & ~7


def _cstr(buf, off):
    end = buf.index(b"\0", off)
    return bytes(buf[off:end])


class DmError(OSError):
    """An ioctl that failed: errno and the command's name."""


class Dm:
    """The device-mapper control device, one ioctl per call."""

    def __init__(self, path="/dev/mapper/control"):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.ioctls = 0

    def close(self):
        os.close(self.fd)

    def _ioctl(self, cmd, name=b"", flags=0, data=b"", size=0,
               target_count=0, dev=0):
        size = max(size, DM_HDR.size + len(data))
        buf = bytearray(_align8(size))
        DM_HDR.pack_into(buf, 0, 4, 0, 0, len(buf), DM_HDR.size,
                         target_count, 0, flags, 0, 0, dev, name, b"", b"")
        buf[DM_HDR.size:DM_HDR.size + len(data)] = data
        self.ioctls += 1
        try:
            fcntl.ioctl(self.fd, _iowr(cmd), buf, True)
        except OSError as e:
            raise DmError(e.errno, os.strerror(e.errno)) from None
        return buf

    @staticmethod
    def header(buf):
        f = DM_HDR.unpack_from(buf, 0)
        return {"version": f[0:3], "data_size": f[3], "data_start": f[4],
                "target_count": f[5], "open_count": f[6], "flags": f[7],
                "event_nr": f[8], "dev": f[10]}

    def version(self):
        return self.header(self._ioctl(DM_VERSION_CMD))["version"]

    def create(self, name):
        """DM_DEV_CREATE: returns (major, minor) of the new device."""
        h = self.header(self._ioctl(DM_DEV_CREATE_CMD, name))
        return os.major(h["dev"]), os.minor(h["dev"])

    def remove(self, name):
        self._ioctl(DM_DEV_REMOVE_CMD, name)

    def resume(self, name):
        self._ioctl(DM_DEV_SUSPEND_CMD, name, 0)

    def suspend(self, name):
        self._ioctl(DM_DEV_SUSPEND_CMD, name, DM_SUSPEND_FLAG)

    def clear(self, name):
        self._ioctl(DM_TABLE_CLEAR_CMD, name)

    def info(self, name):
        """DM_DEV_STATUS: the header fields, or None if there is no such
        device (ENXIO)."""
        try:
            return self.header(self._ioctl(DM_DEV_STATUS_CMD, name))
        except DmError as e:
            if e.errno == errno.ENXIO:
                return None
            raise

    def load(self, name, start, length, ttype, params):
        """DM_TABLE_LOAD of one target; params is the raw parameter string
        (bytes, no NUL), split by the kernel's dm_split_args()."""
        p = params + b"\0"
        nxt = _align8(DM_SPEC.size + len(p))
        spec = DM_SPEC.pack(start, length, 0, nxt, ttype)
        data = spec + p + b"\0" * (nxt - DM_SPEC.size - len(p))
        self._ioctl(DM_TABLE_LOAD_CMD, name, 0, data, target_count=1)

    def status(self, name, table=False, inactive=False):
        """DM_TABLE_STATUS: [(start, length, type, text)] of the live (or
        with inactive=True the inactive) table; INFO or, with table=True,
        TABLE."""
        flags = (DM_STATUS_TABLE_FLAG if table else 0) | \
            (DM_QUERY_INACTIVE_TABLE_FLAG if inactive else 0)
        buf = self._ioctl(DM_TABLE_STATUS_CMD, name, flags, size=16384)
        h = self.header(buf)
        if h["flags"] & DM_BUFFER_FULL_FLAG:
            raise DmError(errno.ENOSPC, "status buffer full")
        out = []
        base = h["data_start"]
        off = base
        for _ in range(h["target_count"]):
            start, length, _st, nxt, ttype = DM_SPEC.unpack_from(buf, off)
            text = _cstr(buf, off + DM_SPEC.size)
            out.append((start, length, ttype.rstrip(b"\0").decode(),
                        text.decode("latin-1")))
            off = base + nxt
        return out

    def message(self, name, sector, msg):
        """DM_TARGET_MSG; msg is the raw message string (bytes, no NUL)."""
        self._ioctl(DM_TARGET_MSG_CMD, name, 0,
                    struct.pack("=Q", sector) + msg + b"\0", size=4096)

    def list_devices(self):
        """DM_LIST_DEVICES: {name: (major, minor)}."""
        buf = self._ioctl(DM_LIST_DEVICES_CMD, size=65536)
        h = self.header(buf)
        if h["flags"] & DM_BUFFER_FULL_FLAG:
            raise DmError(errno.ENOSPC, "device list buffer full")
        out = {}
        off = h["data_start"]
        while True:
            dev, nxt = struct.unpack_from("=QI", buf, off)
            if not dev:
                break
            out[_cstr(buf, off + 12).decode()] = (os.major(dev),
                                                  os.minor(dev))
            if not nxt:
                break
            off += nxt
        return out


# ---------------------------------------------------------------- /dev/kmsg

class Kmsg:
    """New kernel log records, read non-blocking from /dev/kmsg (positioned
    at the end when opened).  Each record's text comes back as the kernel
    escapes it there (see kmsg_escape)."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK |
                          os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.lost = 0

    def drain(self):
        out = []
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return out
            except BrokenPipeError:		# overwritten before we read it
                self.lost += 1
                continue
            if not rec:
                return out
            head, _, body = rec.partition(b";")
            out.append(body.split(b"\n", 1)[0].decode("ascii", "replace"))


# ---------------------------------------------------------------- kernel models

# isspace() of lib/ctype.c: \t \n \v \f \r, space and Latin-1 NBSP (0xa0)
KSPACE = frozenset(b"\t\n\v\f\r \xa0")


def split_args(params):
    """dm_split_args(): whitespace-separated words, a backslash quotes the
    next character (a trailing backslash is kept)."""
    argv = []
    i, n = 0, len(params)
    while True:
        while i < n and params[i] in KSPACE:
            i += 1
        if i >= n:
            return argv
        out = bytearray()
        while i < n:
            c = params[i]
            if c == 0x5C and i + 1 < n:
                out.append(params[i + 1])
                i += 2
                continue
            if c in KSPACE:
                break
            out.append(c)
            i += 1
        i += 1		# past the whitespace that ended the word
        argv.append(bytes(out))


def quote_word(w):
    """The word, escaped so that dm_split_args() gives it back whole."""
    out = bytearray()
    for c in w:
        if c in KSPACE or c == 0x5C:
            out.append(0x5C)
        out.append(c)
    return bytes(out)


def kstrtouint(s):
    """kstrtouint(s, 10): an optional '+', decimal digits, one optional
    trailing newline; value <= UINT_MAX.  None when it would fail."""
    if s[:1] == b"+":
        s = s[1:]
    i = 0
    while i < len(s) and 0x30 <= s[i] <= 0x39:
        i += 1
    if not i:
        return None
    rest = s[i:]
    if rest[:1] == b"\n":
        rest = rest[1:]
    if rest:
        return None
    v = int(s[:i])
    return v if v <= 0xFFFFFFFF else None


def strcaseeq(arg, name):
    """strcasecmp(arg, name) == 0 for an ASCII lower-case name: the kernel's
    tolower() also folds Latin-1 letters, but never onto ASCII ones."""
    return arg.lower() == name


def kmsg_escape(b):
    """How /dev/kmsg shows bytes of a record's text (msg_add_ext_text)."""
    return "".join(chr(c) if 32 <= c < 127 and c != 0x5C else "\\x%02x" % c
                   for c in b)


def show(b):
    """Bytes for a human: printable ASCII as is, the rest as \\xNN."""
    return "".join(chr(c) if 32 <= c < 127 else "\\x%02x" % c for c in b)
