#!/usr/bin/env python3
"""Benchmark: dump and show on synthetic /proc trees of 10,000 and 100,000
processes (`--proc-root`, written to /dev/shm), with peak RSS.

Targets: at 100,000 processes peak RSS <= 100 MB, and time growing linearly
from 10,000 (10x the processes, about 10x the time).

Needs GNU time (Debian package `time`).
Usage: python3 bench/scale.py [--runs 5]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump import build, measure  # noqa: E402

USERS = [(0, "root"), (33, "www-data"), (65534, "nobody"), (1000, "app")]


def write_tree(root, count):
    """INIT, then services with up to 20 workers each, some with children."""
    os.makedirs(root)
    pid = 1

    def proc(pid, ppid, uid, argv):
        d = os.path.join(root, str(pid))
        os.mkdir(d)
        comm = os.path.basename(argv[0])[:15]
        with open(os.path.join(d, "stat"), "w") as f:
            f.write("%d (%s) S %d %d %d 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 "
                    "%d 1000000 100 0\n" % (pid, comm, ppid, pid, pid, pid))
        with open(os.path.join(d, "status"), "w") as f:
            f.write("Uid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\n"
                    % ((uid,) * 8))
        with open(os.path.join(d, "cmdline"), "wb") as f:
            f.write(b"".join(a.encode() + b"\0" for a in argv))

    proc(1, 0, 0, ["/sbin/init"])
    pid = 2
    service = 0
    while pid <= count:
        service += 1
        uid = USERS[service % len(USERS)][0]
        master = pid
        proc(pid, 1, uid, ["/opt/svc%d/bin/daemon" % service, "--config",
                           "/etc/svc%d.conf" % service])
        pid += 1
        for worker in range(20):
            if pid > count:
                break
            proc(pid, master, uid, ["svc%d: worker" % service,
                                    "--queue", "q%d" % (worker % 4)])
            pid += 1
    return pid - 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        psdiff, _ = build(tmp)
        rss_file = os.path.join(tmp, "rss")
        results = {}
        for count in (10000, 100000):
            root = os.path.join(tmp, "proc-%d" % count)
            write_tree(root, count)
            env = dict(os.environ, PSDIFF_CONFIG="/dev/null",
                       PSDIFF_PROC_ROOT=root,
                       PSDIFF_DB=os.path.join(tmp, "db-%d" % count))
            measure([psdiff, "write"], env, rss_file)
            row = {}
            for name in ("dump", "show"):
                runs = [measure([psdiff, name], env, rss_file)
                        for _ in range(args.runs)]
                row[name] = (statistics.median(t for t, _ in runs),
                             max(r for _, r in runs))
            results[count] = row
            shutil.rmtree(root)
            print("== %d processes" % count)
            for name, (t, rss) in row.items():
                print("  %-5s median %8.1f ms   peak RSS %6.1f MB"
                      % (name, t * 1e3, rss / 1024))
        for name in ("dump", "show"):
            ratio = results[100000][name][0] / results[10000][name][0]
            print("  %s: 100,000 / 10,000 processes = %.1fx time "
                  "(linear: about 10x); peak RSS %.1f MB (target <= 100 MB)"
                  % (name, ratio, results[100000][name][1] / 1024))


if __name__ == "__main__":
    main()
