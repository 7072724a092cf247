#!/usr/bin/env python3
"""Benchmark: `psdiff show` and the diff engine, against `psdiff dump`.

In one run:
  1. about 10,000 live processes: `show` (baseline written first) against
     `dump`; target show <= 1.1x dump.
  2. the diff alone (`psdiff diff OLD NEW`) on synthetic baselines of 10,000
     and 100,000 lines, with 2% of the lines changed and with every line
     changed; targets at 100,000 lines: each <= 0.2x the 10,000-process dump,
     and 10x the lines costs <= 12x the time.

Needs GNU time (Debian package `time`) and a C compiler.
Usage: python3 bench/show.py [--processes 10000] [--runs 15]
"""
import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import ROOT, build, measure, spawn  # noqa: E402


def synthetic_baseline(lines, rng):
    """A tree like a busy server's: services with worker children."""
    out = ["root  {user=root}", "  INIT  {user=root}"]
    users = ["root", "www-data", "postgres", "app%d"]
    service = 0
    while len(out) < lines:
        service += 1
        user = rng.choice(users).replace("%d", str(service % 97))
        out.append("    /opt/svc%d/bin/daemon --config /etc/svc%d.conf"
                   "  {user=%s}" % (service, service, user))
        for worker in range(rng.randint(0, 8)):
            if len(out) >= lines:
                break
            out.append("      svc%d: worker %d --queue q%d  {user=%s}"
                       % (service, worker, worker % 3, user))
    return out


def changed(lines, fraction, rng):
    """Changes a fraction of the process lines; the `root` and `INIT` lines
    are the same in every dump, so they stay (changing them would make the
    rest trivially unmatched)."""
    out = list(lines)
    count = len(lines) - 2 if fraction >= 1 else int(len(lines) * fraction)
    picks = range(2, len(lines)) if fraction >= 1 else \
        rng.sample(range(2, len(lines)), count)
    for i in picks:
        out[i] = out[i].replace("  {user=", " --changed  {user=", 1)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        psdiff, sleeper = build(tmp)
        rss = os.path.join(tmp, "rss")
        env = dict(os.environ, PSDIFF_CONFIG="/dev/null",
                   PSDIFF_DB=os.path.join(tmp, "psdiff.db"))
        base = len([d for d in os.listdir("/proc") if d.isdigit()])
        procs = spawn(sleeper, max(0, args.processes - base))
        try:
            measure([psdiff, "write"], env, rss)
            # Alternate the two, so that drift of the machine hits both.
            dumps, shows = [], []
            for _ in range(args.runs):
                dumps.append(measure([psdiff, "dump"], env, rss)[0])
                shows.append(measure([psdiff, "show"], env, rss)[0])
            dump_t = statistics.median(dumps)
            show_t = statistics.median(shows)
            count = len([d for d in os.listdir("/proc") if d.isdigit()])
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            for p in procs:
                p.wait()

        print("== %d live processes" % count)
        print("  dump  median %7.1f ms" % (dump_t * 1e3))
        print("  show  median %7.1f ms   show/dump %.2f (target <= 1.1)"
              % (show_t * 1e3, show_t / dump_t))

        print("\n== the diff alone (in process: cargo bench --bench diff),"
              " and the whole `psdiff diff OLD NEW` command")
        results = {}
        for size in (10000, 100000):
            old = synthetic_baseline(size, rng)
            for label, fraction in (("2% changed", 0.02), ("all changed", 1)):
                new = changed(old, fraction, rng)
                old_f = os.path.join(tmp, "old-%d" % size)
                new_f = os.path.join(tmp, "new-%d-%s" % (size, fraction))
                with open(old_f, "w") as f:
                    f.write("\n".join(old) + "\n")
                with open(new_f, "w") as f:
                    f.write("\n".join(new) + "\n")
                cold, warm = diff_alone(old_f, new_f, args.runs)
                whole = diff_time(psdiff, old_f, new_f, env, args.runs)
                results[(size, label)] = (cold, warm)
                print("  %6d lines, %-11s diff cold %5.1f ms = %.3fx dump"
                      " (warm %5.1f ms);  whole `psdiff diff` %5.1f ms = %.2fx"
                      % (size, label, cold * 1e3, cold / dump_t, warm * 1e3,
                         whole * 1e3, whole / dump_t))
        for label in ("2% changed", "all changed"):
            big, small = results[(100000, label)], results[(10000, label)]
            print("  %-11s 100,000 / 10,000 lines: %.1fx cold, %.1fx warm"
                  " (target <= 12x)" % (label, big[0] / small[0],
                                        big[1] / small[1]))
        print("  targets at 100,000 lines: <= 0.2x dump")


def diff_alone(old_f, new_f, runs):
    """Median and minimum time of the diff engine in process, from
    benches/diff.rs; many runs, as each is short."""
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "diff", "--",
                          old_f, new_f, str(runs * 3)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout

    def field(name):
        return float(out.split(name)[1].split()[0]) / 1e3
    return field("cold-median-ms"), field("warm-median-ms")


def diff_time(psdiff, old_f, new_f, env, runs):
    """`psdiff diff` exits 1 when there are differences; time it anyway."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([psdiff, "diff", old_f, new_f], env=env,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
