"""Print one fio JSON run's figures: throughput (IOPS, or MiB/s with
--mibs) and the p50 and p99 completion latency in microseconds, summed
or taken over the directions that moved data."""
import json
import sys

path, unit = sys.argv[1], sys.argv[2]
text = open(path).read()  # the nbd engine prints a line before the JSON
job = json.loads(text[text.index("{"):])["jobs"][0]
if job["error"]:
    sys.exit("fio error %d" % job["error"])
iops = bw = 0.0
pct = {}
for d in ("read", "write", "trim"):
    s = job[d]
    if s["io_bytes"] == 0:
        continue
    iops += s["iops"]
    bw += s["bw_bytes"]
    pct = s["clat_ns"].get("percentile", pct)  # one direction per job here
value = bw / (1 << 20) if unit == "MiB/s" else iops
print("%.1f %.0f %.0f" % (value, pct.get("50.000000", 0) / 1000, pct.get("99.000000", 0) / 1000))
