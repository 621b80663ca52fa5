package tooltest

// HostilePy starts the Python scripts, run with RunPython, that send an
// NBD server what a careful client never sends: expect asserts that a
// call fails with a given errno, and refuse_bad_requests sends, on a
// libnbd handle with strict mode off, the out-of-range, oversized and
// flag-misusing requests every server must answer with an error while
// the connection lives on.
const HostilePy = `
import errno
import nbd

def expect(code, what, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errnum == code, "%s: errnum %s (%s), want %s" % (what, e.errnum, e, errno.errorcode[code])
        print("ok", what, errno.errorcode[code])
        return
    raise AssertionError("%s succeeded, want %s" % (what, errno.errorcode[code]))

def refuse_bad_requests(h, size):
    expect(errno.EINVAL, "read past the end", h.pread, 4096, size)
    expect(errno.EINVAL, "read across the end", h.pread, 4096, size - 100)
    expect(errno.ENOSPC, "write past the end", h.pwrite, b"a" * 4096, size)
    expect(errno.ENOSPC, "zero across the end", h.zero, 4096, size - 1)
    expect(errno.EINVAL, "trim past the end", h.trim, 4096, size)
    expect(errno.EINVAL, "cache past the end", h.cache, 4096, size)
    expect(errno.EINVAL, "block status past the end", h.block_status, 4096, size, lambda *a: 0)
    expect(errno.EINVAL, "read of 40 MiB", h.pread, 40 << 20, 0)
    expect(errno.EINVAL, "write of 40 MiB", h.pwrite, b"w" * (40 << 20), 0)
    expect(errno.EINVAL, "REQ_ONE on a read", h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE)
    expect(errno.EINVAL, "NO_HOLE on a trim", h.trim, 512, 0, nbd.CMD_FLAG_NO_HOLE)
    expect(errno.EINVAL, "FAST_ZERO on a write", h.pwrite, b"f", 0, nbd.CMD_FLAG_FAST_ZERO)
    expect(errno.EINVAL, "block status of length 0", h.block_status, 0, 0, lambda *a: 0)
`
