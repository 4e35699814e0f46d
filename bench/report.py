#!/usr/bin/env python3
"""Turns bench/run.sh's rows into a Markdown table and bench/results.json.

    report.py ROWS.jsonl OUT.json COMMIT COMMAND

Each row has the values of its runs; the table shows the median and min-max. Ratios compare
medians from the same run of the script, and each target from issue 6 is marked met or not met
(missing rows: not measured).
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from datetime import datetime, timezone

rows_path, out_path, commit, command = sys.argv[1:5]
rows = {}
with open(rows_path) as f:
    for line in f:
        r = json.loads(line)
        v = r["values"]
        r.update(runs=len(v), median=statistics.median(v), min=min(v), max=max(v))
        rows[r["name"]] = r


def med(name):
    return rows[name]["median"] if name in rows else None


def ratio(a, b):
    return None if med(a) is None or not med(b) else med(a) / med(b)


# (name, value, how it is computed, target as (op, bound) or None)
checks = [
    ("stor / direct upload", ratio("ftps_stor", "direct_put"), "ftps_stor / direct_put", (">=", 0.9)),
    ("retr / direct download", ratio("ftps_retr", "direct_get"), "ftps_retr / direct_get", (">=", 0.9)),
    ("retr / direct single GET", ratio("ftps_retr", "direct_get_single"), "ftps_retr / direct_get_single", None),
    ("stor / rclone", ratio("ftps_stor", "rclone_stor"), "ftps_stor / rclone_stor", None),
    ("retr / rclone", ratio("ftps_retr", "rclone_retr"), "ftps_retr / rclone_retr", (">=", 2.0)),
    ("stor / vsftpd", ratio("ftps_stor", "vsftpd_stor"), "ftps_stor / vsftpd_stor", None),
    ("retr / vsftpd", ratio("ftps_retr", "vsftpd_retr"), "ftps_retr / vsftpd_retr", None),
    ("peak RSS, one large STOR (MiB)", med("rss_stor_peak"), "rss_stor_peak", ("<=", 64)),
    # issue 14: CPU per byte decides cost and density; SeaweedFS's beside it says where the rest went
    ("STOR server CPU-s per GiB", med("ftps_stor_cpu"), "ftps_stor_cpu", ("<=", 1.8)),
    ("RETR server CPU-s per GiB", med("ftps_retr_cpu"), "ftps_retr_cpu", None),
    # issue 14 target 2: RETR with a client that is not the bottleneck (ftps_load pget)
    ("RETR 1 stream / direct single GET", ratio("retr_ftps_1", "retr_direct_1"),
     "retr_ftps_1 / retr_direct_1", (">=", 0.9)),
    ("RETR 4 streams / direct 4 ranged GETs", ratio("retr_ftps_4", "retr_direct_4"),
     "retr_ftps_4 / retr_direct_4", (">=", 0.9)),
    ("RETR curl / direct single GET", ratio("retr_curl", "retr_direct_1"), "retr_curl / retr_direct_1", None),
    ("STOR: SeaweedFS CPU-s per GiB, via ftps-s3 / direct", ratio("ftps_stor_s3_cpu", "direct_put_s3_cpu"),
     "ftps_stor_s3_cpu / direct_put_s3_cpu", None),
]
IDLE = re.compile(r"idle_(\d+)_(per_session|rss)$")  # the default-settings rows only
for name in sorted((n for n in rows if IDLE.match(n) and n.endswith("_per_session")),
                   key=lambda n: int(IDLE.match(n).group(1))):
    checks.append((f"idle TLS session at {IDLE.match(name).group(1)} (KiB)", med(name), name, ("<=", 64)))
idle = sorted((int(IDLE.match(n).group(1)), med(n)) for n in rows
              if IDLE.match(n) and n.endswith("_rss"))
if len(idle) >= 2:
    (n0, r0), (n1, r1) = idle[0], idle[-1]
    checks.append((f"idle session, marginal {n0}->{n1} (KiB)", (r1 - r0) * 1024 / (n1 - n0),
                   f"(idle_{n1}_rss - idle_{n0}_rss) / {n1 - n0}", None))
checks += [
    ("LIST first byte / first ListObjectsV2 page", ratio("list_first_byte", "raw_list_first_page"),
     "list_first_byte / raw_list_first_page", ("<=", 1.5)),
    ("LIST total / raw ListObjectsV2 total", ratio("list_total", "raw_list_total"),
     "list_total / raw_list_total", ("<=", 1.2)),
]

ratios = []
for name, value, how, target in checks:
    met = None
    if value is not None and target is not None:
        op, bound = target
        met = value >= bound if op == ">=" else value <= bound
    ratios.append({
        "name": name, "value": value, "computed_as": how,
        "target": None if target is None else f"{target[0]} {target[1]}",
        "met": met,
    })


def fmt(x):
    if x is None:
        return "n/a"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


print()
print("| row | median | min–max | runs | unit | what |")
print("| --- | ---: | ---: | ---: | --- | --- |")
for r in rows.values():
    print(f"| {r['name']} | {fmt(r['median'])} | {fmt(r['min'])}–{fmt(r['max'])} | {r['runs']} "
          f"| {r['unit']} | {r['description']} |")
print()
print("| ratio / target | value | target | met |")
print("| --- | ---: | --- | --- |")
for c in ratios:
    met = {True: "met", False: "NOT met", None: "—" if c["target"] is None else "not measured"}[c["met"]]
    print(f"| {c['name']} | {fmt(c['value'])} | {c['target'] or '(info)'} | {met} |")

try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    cpu = platform.processor()
result = {
    "machine": {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), None),
    },
    "commit": commit,
    "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": command,
    "versions": {
        tool: subprocess.run(args, capture_output=True, text=True).stdout.splitlines()[:1]
        for tool, args in [("curl", ["curl", "--version"]), ("rclone", ["rclone", "version"]),
                           ("weed", ["weed", "version"])]
    },
    "rows": list(rows.values()),
    "ratios": ratios,
}
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
print(f"\nwrote {out_path} (commit {commit})")
