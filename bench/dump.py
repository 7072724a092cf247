#!/usr/bin/env python3
"""Benchmark: `psdiff dump` against `ps ax -o user,pid,ppid,fname,args`,
and against an earlier psdiff (`--reference BIN`).

Starts about N live processes (1,000 and 10,000 by default), half of them
with an absolute argv[0] (so the disguise check runs for them), then runs
the commands in turn and reports the median wall time and the peak RSS of
each, and their ratios. Targets at 10,000 processes: dump <= 0.5x the ps
time, peak RSS <= 15 MB, and (reading cgroups and checking disguises)
<= 1.15x the reference psdiff. Ratios, not seconds, are what to compare:
these machines are noisy.

A reference binary, e.g. of the commit before identity was read:
    git worktree add /tmp/ref 565fa89
    cargo build --release --manifest-path /tmp/ref/Cargo.toml
    python3 bench/dump.py --reference /tmp/ref/target/release/psdiff

Needs GNU time (Debian package `time`) and a C compiler.
Usage: python3 bench/dump.py [--sizes 1000,10000] [--runs 15] [--reference BIN]
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
    """count sleepers, half named `worker`, half by their own path."""
    procs = []
    args = ["--pool", "bench", "--id"]
    for i in range(count):
        argv0 = sleeper if i % 2 else "worker"
        procs.append(subprocess.Popen([argv0] + args + [str(i % 50)],
                                      executable=sleeper))
    return procs


def bench(psdiff, reference, runs, env, rss_file):
    base = len([d for d in os.listdir("/proc") if d.isdigit()])
    print("processes: %d" % base)
    commands = [("ps", PS), ("dump", [psdiff, "dump"])]
    if reference:
        commands.append(("reference", [reference, "dump"]))
    times = {name: [] for name, _ in commands}
    rss = {name: 0 for name, _ in commands}
    for _ in range(runs):
        for name, cmd in commands:
            t, r = measure(cmd, env, rss_file)
            times[name].append(t)
            rss[name] = max(rss[name], r)
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, cmd in commands:
        print("  %-16s median %7.1f ms   peak RSS %6.1f MB"
              % (name, median[name] * 1e3, rss[name] / 1024))
    print("  ratio dump/ps: %.2f (target at 10,000: <= 0.5); "
          "dump RSS %.1f MB (target <= 15 MB)"
          % (median["dump"] / median["ps"], rss["dump"] / 1024))
    if reference:
        print("  ratio dump/reference: %.2f (target at 10,000: <= 1.15)"
              % (median["dump"] / median["reference"]))
    return median["dump"] / median["ps"], rss["dump"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--reference", help="an earlier psdiff binary")
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
                bench(psdiff, args.reference, args.runs, env,
                      os.path.join(tmp, "rss"))
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            for p in procs:
                p.wait()


if __name__ == "__main__":
    main()
