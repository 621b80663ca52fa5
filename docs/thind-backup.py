#!/usr/bin/python3
"""Full and incremental backups of thind volumes over NBD, with libnbd.

    thind-backup.py full URI FILE          # the allocated extents of URI
    thind-backup.py incr BASE URI FILE     # URI's extents dirty against snapshot BASE
    thind-backup.py restore URI FILE...    # apply a full backup, then incrementals, in order

URI is an export of a snapshot (nbd+unix:///SNAP?socket=thind-data/nbd.sock):
a snapshot does not change while it is read. A backup file is a sequence of
records, each "<cQQ" (kind, offset, length) in little endian: kind D is
followed by length bytes of data, kind Z says the range reads as zeroes
(unmapped since BASE; a restore must write those zeroes, not skip them).
Only data is read: holes and zero ranges come from base:allocation. Each
command prints the bytes it read or wrote.
"""

import struct
import sys

import nbd

REC = struct.Struct("<cQQ")
MAGIC = b"thind-backup 1\n"
CHUNK = 4 << 20  # per request: well under thind's and libnbd's limits


def extents(h, ctx, size):
    """All of ctx's extents over [0, size) as (offset, length, flags)."""
    out, off = [], 0
    while off < size:
        got = []

        def cb(meta, _o, ents, _err):
            if meta == ctx:
                got.extend(ents)

        h.block_status(min(size - off, 1 << 30), off, cb)
        if not got:
            raise RuntimeError("no extents for %s at %d" % (ctx, off))
        for i in range(0, len(got), 2):
            n = min(got[i], size - off)
            out.append((off, n, got[i + 1]))
            off += n
            if off >= size:
                break
    return out


def clip(exts, off, end):
    """The parts of exts inside [off, end)."""
    for o, n, f in exts:
        lo, hi = max(o, off), min(o + n, end)
        if lo < hi:
            yield lo, hi - lo, f


def connect(uri, *contexts):
    h = nbd.NBD()
    for c in contexts:
        h.add_meta_context(c)
    h.connect_uri(uri)
    return h


def copy(h, f, off, n):
    while n > 0:
        k = min(n, CHUNK)
        f.write(REC.pack(b"D", off, k))
        f.write(h.pread(k, off))
        off, n = off + k, n - k


def backup(uri, path, base=None):
    ctxs = [nbd.CONTEXT_BASE_ALLOCATION]
    if base:
        ctxs.append("qemu:dirty-bitmap:" + base)
    h = connect(uri, *ctxs)
    size = h.get_size()
    alloc = extents(h, nbd.CONTEXT_BASE_ALLOCATION, size)
    want = extents(h, ctxs[-1], size) if base else [(0, size, 1)]
    read = 0
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", size))
        for o, n, dirty in want:
            if not dirty & 1:
                continue
            for lo, k, flags in clip(alloc, o, o + n):
                if not flags & nbd.STATE_ZERO:
                    copy(h, f, lo, k)
                    read += k
                elif base:  # a fresh volume already reads zeroes: only incrementals say so
                    f.write(REC.pack(b"Z", lo, k))
    h.shutdown()
    print("read %d bytes" % read)


def restore(uri, paths):
    h = connect(uri)
    wrote = 0
    for path in paths:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                raise RuntimeError("%s: not a thind-backup file" % path)
            (size,) = struct.unpack("<Q", f.read(8))
            if size != h.get_size():
                raise RuntimeError("%s: size %d, volume %d" % (path, size, h.get_size()))
            while rec := f.read(REC.size):
                kind, off, n = REC.unpack(rec)
                if kind == b"D":
                    data = f.read(n)
                    if len(data) != n:
                        raise RuntimeError("%s: truncated at offset %d" % (path, off))
                    h.pwrite(data, off)
                elif kind == b"Z":
                    h.zero(n, off)
                else:
                    raise RuntimeError("%s: bad record %r" % (path, kind))
                wrote += n
    h.flush()
    h.shutdown()
    print("wrote %d bytes" % wrote)


def main(argv):
    if len(argv) == 4 and argv[1] == "full":
        backup(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "incr":
        backup(argv[3], argv[4], base=argv[2])
    elif len(argv) >= 4 and argv[1] == "restore":
        restore(argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
