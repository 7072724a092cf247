#!/usr/bin/env python3
"""Cost of `psdiff files` to the processes it watches: a workload of 100,000
opens (tests/helpers/opener.c, each of 100,000 files once) run alone, under
`psdiff files --format json --path DIR -- opener ...`, and under
bench/fanotify_floor.c (the same fanotify group and mark, its events read
and thrown away: what fanotify itself costs here, under any reader), in
turn, eleven times each. Target: the watched median at most 1.5x the
unwatched one, with every open and close reported when the queue did not
overflow. Needs root (fanotify) and cc.

    python3 bench/files.py [DIR]     # DIR: where the files go (default: a temp folder)
"""

import collections
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/psdiff")
OPENS = 100_000
RUNS = 11


def opener_seconds(stderr):
    """The workload's wall time and CPU time."""
    found = re.search(r"opener: \d+ opens in ([\d.]+) s \(cpu ([\d.]+) s\)", stderr)
    return float(found.group(1)), float(found.group(2))


def missing_events(stdout, files):
    """(event, path) pairs not reported exactly once, and the event count."""
    seen = collections.Counter()
    overflowed = False
    for line in stdout.splitlines():
        event = json.loads(line)
        if event["event"] == "overflow":
            overflowed = True
        else:
            seen[(event["event"], event["path"])] += 1
    expected = [(kind, os.path.join(files, f"f{i}")) for i in range(OPENS) for kind in ("open", "close")]
    return overflowed, [e for e in expected if seen[e] != 1]


def record(times, cpu, name, stderr):
    wall, used = opener_seconds(stderr)
    times[name].append(wall)
    cpu[name].append(used)


def cc(tmp, source):
    binary = os.path.join(tmp, os.path.splitext(os.path.basename(source))[0])
    subprocess.run(["cc", "-O", "-o", binary, os.path.join(ROOT, source)], check=True)
    return binary


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        opener = cc(tmp, "tests/helpers/opener.c")
        floor = cc(tmp, "bench/fanotify_floor.c")
        files = os.path.join(tmp, "files")
        os.mkdir(files)
        subprocess.run([opener, files, "0", str(OPENS)], check=True)
        workload = [opener, files, str(OPENS), str(OPENS)]
        times = {"alone": [], "floor": [], "psdiff": []}
        cpu = {name: [] for name in times}
        lost, overflows = [], 0
        for _ in range(RUNS):
            run = subprocess.run(workload, capture_output=True, text=True, check=True)
            record(times, cpu, "alone", run.stderr)

            reader = subprocess.Popen([floor, files], stdout=subprocess.PIPE, text=True)
            assert reader.stdout.readline() == "ready\n"
            run = subprocess.run(workload, capture_output=True, text=True, check=True)
            reader.send_signal(signal.SIGTERM)
            reader.wait()
            record(times, cpu, "floor", run.stderr)

            run = subprocess.run([BIN, "files", "--format", "json", "--path", files, "--"] + workload,
                                 capture_output=True, text=True, check=True)
            record(times, cpu, "psdiff", run.stderr)
            overflowed, missing = missing_events(run.stdout, files)
            if overflowed:
                overflows += 1
            else:
                lost.append(len(missing))
                if missing:
                    print(f"not reported exactly once: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:7} median {median[name] * 1000:4.0f} ms (cpu {statistics.median(cpu[name]) * 1000:4.0f} ms)  "
              f"{sorted(round(x * 1000) for x in t)}")
    ratio = median["psdiff"] / median["alone"]
    print(f"psdiff / alone: {ratio:.2f}    floor / alone: {median['floor'] / median['alone']:.2f}    "
          f"psdiff / floor: {median['psdiff'] / median['floor']:.2f}")
    print(f"runs with a queue overflow: {overflows} of {RUNS}; events missing in the others: {lost}")
    ok = ratio <= 1.5 and all(n == 0 for n in lost)
    print("target (<= 1.5x, nothing lost without an overflow):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
