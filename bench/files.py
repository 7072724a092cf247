#!/usr/bin/env python3
"""Cost of `psdiff files` to the processes it watches: a workload of 100,000
opens (tests/helpers/opener.c, each of 100,000 files once) run alone and
under `psdiff files --format json --path DIR -- opener ...`, five times each,
in the same run. Target: the watched median at most 1.5x the unwatched one,
with every open and close reported when the queue did not overflow.
Needs root (fanotify) and cc.

    python3 bench/files.py [DIR]     # DIR: where the files go (default: a temp folder)
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/psdiff")
OPENS = 100_000
RUNS = 5


def opener_seconds(stderr):
    return float(re.search(r"opener: \d+ opens in ([\d.]+) s", stderr).group(1))


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory(dir=sys.argv[1] if len(sys.argv) > 1 else None) as tmp:
        opener = os.path.join(tmp, "opener")
        subprocess.run(["cc", "-O", "-o", opener, os.path.join(ROOT, "tests/helpers/opener.c")], check=True)
        files = os.path.join(tmp, "files")
        os.mkdir(files)
        subprocess.run([opener, files, "0", str(OPENS)], check=True)
        workload = [opener, files, str(OPENS), str(OPENS)]
        alone, watched, lost, overflows = [], [], [], 0
        for _ in range(RUNS):
            run = subprocess.run(workload, capture_output=True, text=True, check=True)
            alone.append(opener_seconds(run.stderr))
            run = subprocess.run([BIN, "files", "--format", "json", "--path", files, "--"] + workload,
                                 capture_output=True, text=True, check=True)
            watched.append(opener_seconds(run.stderr))
            events = [json.loads(line) for line in run.stdout.splitlines()]
            opens = sum(1 for e in events if e["event"] == "open")
            closes = sum(1 for e in events if e["event"] == "close")
            overflowed = sum(1 for e in events if e["event"] == "overflow")
            overflows += overflowed
            if not overflowed:
                lost.append(2 * OPENS - opens - closes)
    a, w = statistics.median(alone), statistics.median(watched)
    print(f"{OPENS} opens: alone median {a * 1000:.0f} ms {[round(x * 1000) for x in alone]}")
    print(f"        watched median {w * 1000:.0f} ms {[round(x * 1000) for x in watched]}")
    print(f"watched / alone: {w / a:.2f}")
    print(f"runs with a queue overflow: {RUNS - len(lost)} of {RUNS}; "
          f"events missing in the others: {lost}")
    ok = w / a <= 1.5 and all(n == 0 for n in lost)
    print("target (<= 1.5x, nothing lost without an overflow):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
