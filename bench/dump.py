#!/usr/bin/env python3
"""Benchmark: `psdiff dump` against `ps ax -o user,pid,ppid,fname,args`.

Starts about N live processes (1,000 and 10,000 by default), then runs both
commands alternately and reports the median wall time and the peak RSS of
each, and their ratio. Targets at 10,000 processes: dump <= 0.5x the ps
time, peak RSS <= 15 MB. Ratios, not seconds, are what to compare: these
machines are noisy.

Needs GNU time (Debian package `time`) and a C compiler.
Usage: python3 bench/dump.py [--sizes 1000,10000] [--runs 15]
"""
import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PS = ["ps", "ax", "-o", "user,pid,ppid,fname,args"]


def build(tmp):
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT,
                   check=True)
    sleeper = os.path.join(tmp, "sleeper")
    subprocess.run(["cc", "-O", "-o", sleeper,
                    os.path.join(ROOT, "tests/helpers/sleeper.c")], check=True)
    return os.path.join(ROOT, "target/release/psdiff"), sleeper


def measure(cmd, env, rss_file):
    """Wall time and peak RSS (KiB) of one run of cmd. The peak comes from
    GNU time: a child forked from this Python process would count Python's
    own pages in its high-water mark until it calls exec."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd,
                          env=env, stdout=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: show found differences
        raise SystemExit("%s failed with exit code %d" % (cmd, done.returncode))
    elapsed = time.perf_counter() - start
    with open(rss_file) as f:
        return elapsed, int(f.read().split()[-1])


def spawn(sleeper, count):
    """count sleepers in groups of 50 under a parent each, like workers."""
    procs = []
    args = ["worker", "--pool", "bench", "--id"]
    for i in range(count):
        procs.append(subprocess.Popen([sleeper] + args + [str(i % 50)],
                                      executable=sleeper))
    return procs


def bench(psdiff, runs, env, rss_file):
    base = len([d for d in os.listdir("/proc") if d.isdigit()])
    print("processes: %d" % base)
    dump = [psdiff, "dump"]
    times = {"ps": [], "dump": []}
    rss = {"ps": 0, "dump": 0}
    for _ in range(runs):
        for name, cmd in (("ps", PS), ("dump", dump)):
            t, r = measure(cmd, env, rss_file)
            times[name].append(t)
            rss[name] = max(rss[name], r)
    ps_t = statistics.median(times["ps"])
    dump_t = statistics.median(times["dump"])
    print("  ps ax -o ...  median %7.1f ms   peak RSS %6.1f MB"
          % (ps_t * 1e3, rss["ps"] / 1024))
    print("  psdiff dump   median %7.1f ms   peak RSS %6.1f MB"
          % (dump_t * 1e3, rss["dump"] / 1024))
    print("  ratio dump/ps: %.2f (target at 10,000: <= 0.5); "
          "dump RSS %.1f MB (target <= 15 MB)" % (dump_t / ps_t,
                                                  rss["dump"] / 1024))
    return dump_t / ps_t, rss["dump"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = dict(os.environ, PSDIFF_CONFIG="/dev/null")
    with tempfile.TemporaryDirectory() as tmp:
        psdiff, sleeper = build(tmp)
        procs = []
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                base = len([d for d in os.listdir("/proc") if d.isdigit()])
                procs += spawn(sleeper, max(0, size - base))
                print("\n== about %d processes" % size)
                bench(psdiff, args.runs, env, os.path.join(tmp, "rss"))
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            for p in procs:
                p.wait()


if __name__ == "__main__":
    main()
