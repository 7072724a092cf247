#!/usr/bin/env python3
"""Benchmark: `psdiff check` with 100 rules against `psdiff dump`.

Starts about 10,000 processes, writes 100 [[check]] rules of every counting
kind (command names, exe paths, cmdline regexes, users, per-user counts, a
`*` rule), and times `psdiff check --rules FILE` against `psdiff dump`,
alternating, in the same run. Target: check <= 1.2x dump. A third file
has 200 checks: 150 of those, 25 resource checks by name, one resource
check over every sleeper (rss, threads, fds: /proc/PID/statm and fd of
10,000 processes) and 24 `listen` checks on a socket this script holds
(issue 17; target: <= 2x dump).

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


def rules(count, by_exe=True):
    """`count` rules; with `by_exe`, a quarter name an exe path, which
    makes psdiff read /proc/PID/exe for every process."""
    exe_rule = ('match = {{ command = "/usr/sbin/daemon{i}" }}\ncount = "0-"'
                if by_exe else 'match = {{ comm = "daemon{i}" }}\ncount = "0-"')
    kinds = [
        'match = {{ command = "worker{i}" }}\ncount = "0-"',
        exe_rule,
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


def mixed(listen_port):
    """200 checks: counts, resources and ports."""
    out = [rules(150)]
    for i in range(25):
        out.append('[[check]]\nname = "res{i}"\nmatch = {{ command = "worker{i}" }}\n'
                   'rss = {{ warn = "~:512M", crit = "~:1G" }}\nfds = "~:1000"\n'.format(i=i))
    out.append('[[check]]\nname = "sleepers"\nmatch = { comm = "sleeper" }\n'
               'rss = "~:64M"\nthreads = "~:4"\nfds = "~:64"\n')
    for i in range(24):
        out.append('[[check]]\nname = "port{i}"\nmatch = {{ pid = {pid} }}\n'
                   'listen = "tcp:127.0.0.1:{port}"\n'.format(i=i, pid=os.getpid(), port=listen_port))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        psdiff, sleeper = build(tmp)
        rss = os.path.join(tmp, "rss")
        files = {}
        for label, by_exe in (("no exe rules", False),
                              ("25 rules by exe path", True)):
            files[label] = os.path.join(tmp, "checks-%s.toml" % by_exe)
            with open(files[label], "w") as f:
                f.write(rules(100, by_exe))
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        files["200 incl. resources, ports"] = os.path.join(tmp, "checks-mixed.toml")
        with open(files["200 incl. resources, ports"], "w") as f:
            f.write(mixed(listener.getsockname()[1]))
        env = dict(os.environ, PSDIFF_CONFIG="/dev/null")
        base = len([d for d in os.listdir("/proc") if d.isdigit()])
        procs = spawn(sleeper, max(0, args.processes - base))
        try:
            count = len([d for d in os.listdir("/proc") if d.isdigit()])
            dumps, checks = [], {label: [] for label in files}
            for _ in range(args.runs):
                dumps.append(measure([psdiff, "dump"], env, rss)[0])
                for label, path in files.items():
                    checks[label].append(
                        measure([psdiff, "check", "--rules", path], env,
                                rss)[0])
        finally:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            for p in procs:
                p.wait()
    dump_t = statistics.median(dumps)
    print("== %d live processes, 100 check rules" % count)
    print("  dump   median %7.1f ms" % (dump_t * 1e3))
    for label, times in checks.items():
        check_t = statistics.median(times)
        target = 2.0 if label.startswith("200") else 1.2
        print("  check, %-26s median %7.1f ms   check/dump %.2f"
              " (target <= %.1f)" % (label, check_t * 1e3, check_t / dump_t, target))


if __name__ == "__main__":
    main()
