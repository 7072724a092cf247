#!/usr/bin/env python3
"""Benchmark: `psdiff check` with 100 rules against `psdiff dump`.

Starts about 10,000 processes, writes 100 [[check]] rules of every counting
kind (command names, exe paths, cmdline regexes, users, per-user counts, a
`*` rule), and times `psdiff check --rules FILE` against `psdiff dump`,
alternating, in the same run. Target: check <= 1.2x dump.

Needs GNU time (Debian package `time`) and a C compiler.
Usage: python3 bench/check.py [--processes 10000] [--runs 15]
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import build, measure, spawn  # noqa: E402


def rules(count):
    kinds = [
        'match = {{ command = "worker{i}" }}\ncount = "0-"',
        'match = {{ command = "/usr/sbin/daemon{i}" }}\ncount = "0-"',
        'match = {{ cmdline = \'^worker --pool bench --id {i}$\' }}\n'
        'warn = "~:1000"\ncrit = "0:"',
        'match = {{ command = "sleeper", user = "root" }}\nper = "user"\n'
        'count = "0-"',
    ]
    out = []
    for i in range(count - 1):
        out.append('[[check]]\nname = "rule{i}"\n{body}\n'.format(
            i=i, body=kinds[i % len(kinds)].format(i=i)))
    out.append('[[check]]\nname = "all"\nmatch = { command = "*" }\n'
               'per = "user"\ncount = "0-"\n')
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        psdiff, sleeper = build(tmp)
        rss = os.path.join(tmp, "rss")
        rules_file = os.path.join(tmp, "checks.toml")
        with open(rules_file, "w") as f:
            f.write(rules(100))
        env = dict(os.environ, PSDIFF_CONFIG="/dev/null")
        base = len([d for d in os.listdir("/proc") if d.isdigit()])
        procs = spawn(sleeper, max(0, args.processes - base))
        try:
            count = len([d for d in os.listdir("/proc") if d.isdigit()])
            dumps, checks = [], []
            for _ in range(args.runs):
                dumps.append(measure([psdiff, "dump"], env, rss)[0])
                checks.append(measure([psdiff, "check", "--rules", rules_file],
                                      env, rss)[0])
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            for p in procs:
                p.wait()
    dump_t, check_t = statistics.median(dumps), statistics.median(checks)
    print("== %d live processes, 100 check rules" % count)
    print("  dump   median %7.1f ms" % (dump_t * 1e3))
    print("  check  median %7.1f ms   check/dump %.2f (target <= 1.2)"
          % (check_t * 1e3, check_t / dump_t))


if __name__ == "__main__":
    main()
