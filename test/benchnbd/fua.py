"""FUA writes: fio's nbd engine sends every write with no flags (and
--sync=1 only changes how fio opens files), so this loop sends 4 KiB
random writes with NBD_CMD_FLAG_FUA through libnbd, DEPTH in flight, for
SECONDS, and prints IOPS, p50 and p99 latency (microseconds). libnbd
refuses the flag unless the server advertises SEND_FUA, so a run that
completes put FUA on the wire.
Usage: fua.py URI SECONDS DEPTH"""
import random
import sys
import time

import nbd

uri, secs, depth = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
if not h.can_fua():
    sys.exit("fua.py: the server does not advertise FUA")
bs = 4096
blocks = h.get_size() // bs
buf = nbd.Buffer.from_bytearray(bytearray(random.randbytes(bs)))
rng = random.Random(1)
lat = []


def submit():
    start = time.perf_counter()

    def done(err):
        if err.value:
            sys.exit("fua.py: write failed: %d" % err.value)
        lat.append(time.perf_counter() - start)
        return 1

    h.aio_pwrite(buf, rng.randrange(blocks) * bs, completion=done, flags=nbd.CMD_FLAG_FUA)


begin = time.perf_counter()
for _ in range(depth):
    submit()
while time.perf_counter() - begin < secs:
    h.poll(-1)
    while h.aio_in_flight() < depth:
        submit()
while h.aio_in_flight() > 0:
    h.poll(-1)
elapsed = time.perf_counter() - begin
h.shutdown()
lat.sort()
print("%.1f %.0f %.0f" % (len(lat) / elapsed, lat[len(lat) // 2] * 1e6, lat[len(lat) * 99 // 100] * 1e6))
