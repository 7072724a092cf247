#!/usr/bin/env python3
"""Cost of `psdiff watch` to the machine it watches (issue 26).

1. A fork+exec+exit loop (bench/spawner.c: PROCESSES times fork, exec
   /bin/true, wait) run alone, with a watcher on the connector backend,
   and with one on the eBPF backend, in turn, RUNS times each; the
   medians' ratios are the figures (targets: at most 1.15x with the
   connector, 1.10x with eBPF). Each watched run also checks that the
   journal holds every /bin/true the loop started: named, or, when it was
   gone before its /proc entry could be read, as `unread` and counted as
   loss. For the connector, bench/connector_floor.c (the same
   subscription, every event read and thrown away, /proc never read)
   runs too: what the connector itself costs, the floor under any reader.
2. Each backend's own CPU and resident memory with HELD extra processes
   running (spawner hold) and the loop paced at RATE execs a second (or as
   fast as this machine forks, when that is slower: the figure says which).

Needs root (the process events connector, eBPF) and cc.

    python3 bench/watch.py [PROCESSES] [RUNS]     # default 5000 7
"""

import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/psdiff")
BACKENDS = {"connector": 1.15, "ebpf": 1.10}
PROCESSES = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
HELD = 10_000
RATE = 1000


def spawn(spawner, count, rate=None):
    """Runs the loop; its wall time, CPU time (its own and its children's)
    and pid."""
    args = [spawner, str(count)] + ([str(rate)] if rate else [])
    run = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    _, err = run.communicate()
    if run.returncode:
        sys.exit("spawner: " + err)
    found = re.search(r"in ([\d.]+) s \(cpu ([\d.]+) s\)", err)
    return float(found.group(1)), float(found.group(2)), run.pid


class Watcher:
    """A `psdiff watch` with its own journal, started and waited for."""

    def __init__(self, tmp, name, backend):
        self.env = dict(os.environ, PSDIFF_DB=os.path.join(tmp, "db"),
                        PSDIFF_JOURNAL=os.path.join(tmp, name + ".sqlite"))
        self.proc = subprocess.Popen([BIN, "watch", "--backend", backend], env=self.env,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not self.alive():
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("psdiff watch did not start: " + self.proc.stderr.read())
            time.sleep(0.2)

    def history(self, *args):
        out = subprocess.run([BIN, "history", "--format", "json"] + list(args),
                             env=self.env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    def alive(self):
        if not os.path.exists(self.env["PSDIFF_JOURNAL"]):
            return False
        watcher = self.history("--since", "1m")["watcher"]
        return bool(watcher) and watcher["pid"] == self.proc.pid

    def cpu(self):
        """User and system CPU seconds of the watcher so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self):
        """Resident and peak resident memory, KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f)
        return int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0])

    def journaled(self, parent):
        """The programs the loop (pid `parent`) ran, as the journal holds
        them: named (argv read), unread (gone before /proc could be read:
        counted as loss), and the losses of all kinds."""
        time.sleep(2.5)  # a tick and a commit
        db = sqlite3.connect("file:%s?mode=ro" % self.env["PSDIFF_JOURNAL"], uri=True)
        named, unread = db.execute(
            "SELECT count(*) FILTER (WHERE verdict != 'unread'),"
            "       count(*) FILTER (WHERE verdict = 'unread')"
            "  FROM images WHERE ppid = ? AND origin = 'exec'", (parent,)).fetchone()
        lost = db.execute("SELECT coalesce(sum(count), 0) FROM losses").fetchone()[0]
        db.close()
        return named, unread, lost

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return err


def check_accounted(run, named, unread, lost, count):
    """Every program the loop ran is journaled, named or counted as lost."""
    if named + unread != count or unread > lost:
        sys.exit("run %s: %d named + %d unread of %d, %d lost: some went unsaid"
                 % (run, named, unread, count, lost))


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        spawner = os.path.join(tmp, "spawner")
        subprocess.run(["cc", "-O", "-o", spawner, os.path.join(ROOT, "bench/spawner.c")],
                       check=True)
        floor = os.path.join(tmp, "connector_floor")
        subprocess.run(["cc", "-O", "-o", floor, os.path.join(ROOT, "bench/connector_floor.c")],
                       check=True)
        env = dict(os.environ, PSDIFF_DB=os.path.join(tmp, "db"))
        subprocess.run([BIN, "write"], env=env, check=True, capture_output=True)

        alone = []
        floored = []
        watched = {backend: [] for backend in BACKENDS}
        watcher_cpu = {backend: [] for backend in BACKENDS}
        for i in range(RUNS):
            alone.append(spawn(spawner, PROCESSES))
            line = "run %d: alone %.2f s" % (i, alone[-1][0])
            reader = subprocess.Popen([floor], stdout=subprocess.PIPE, text=True)
            reader.stdout.readline()
            floored.append(spawn(spawner, PROCESSES))
            reader.terminate()
            reader.wait()
            line += "; connector floor %.2f s" % floored[-1][0]
            for backend in BACKENDS:
                watcher = Watcher(tmp, "run%d-%s" % (i, backend), backend)
                cpu0 = watcher.cpu()
                watched[backend].append(spawn(spawner, PROCESSES))
                watcher_cpu[backend].append(watcher.cpu() - cpu0)
                named, unread, lost = watcher.journaled(watched[backend][-1][2])
                watcher.stop()
                check_accounted("%d %s" % (i, backend), named, unread, lost, PROCESSES)
                line += "; %s %.2f s, %d named, %d unread (%d lost)" % (
                    backend, watched[backend][-1][0], named, unread, lost)
            print(line, flush=True)
        a = statistics.median(t[0] for t in alone)
        print("\n%d x fork+exec+exit of /bin/true, median of %d runs each:" % (PROCESSES, RUNS))
        print("  alone      %.3f s (%.0f/s)" % (a, PROCESSES / a))
        f = statistics.median(t[0] for t in floored)
        print("  floor      %.3f s = %.3fx alone: the connector's own cost, no reader's"
              % (f, f / a))
        for backend, target in BACKENDS.items():
            w = statistics.median(t[0] for t in watched[backend])
            cpu = statistics.median(watcher_cpu[backend])
            over_floor = "; %.3fx the floor" % (w / f) if backend == "connector" else ""
            print("  %-10s %.3f s = %.3fx alone (target <= %.2fx)%s; the watcher's CPU %.2f s"
                  " (%.1f%% of the loop's wall time)"
                  % (backend, w, w / a, target, over_floor, cpu, 100 * cpu / w))

        hold = subprocess.Popen([spawner, "hold", str(HELD)], stderr=subprocess.PIPE, text=True)
        hold.stderr.readline()
        try:
            print("\nwith %d more processes running, %d execs paced at %d/s:" % (HELD, RATE * 10, RATE))
            for backend in BACKENDS:
                held(tmp, spawner, backend)
        finally:
            hold.send_signal(signal.SIGTERM)
            hold.wait()


def held(tmp, spawner, backend):
    """The watcher's cost at RATE execs a second among HELD processes."""
    watcher = Watcher(tmp, "held-" + backend, backend)
    rss, _ = watcher.memory()
    count = RATE * 10
    cpu0 = watcher.cpu()
    wall, _, pid = spawn(spawner, count, RATE)
    used = watcher.cpu() - cpu0
    named, unread, lost = watcher.journaled(pid)
    after, peak = watcher.memory()
    watcher.stop()
    print("  %s (reached %.0f/s): CPU %.2f s over %.1f s = %.1f%% of one core; RSS %.1f MiB"
          " at start, %.1f MiB after, peak %.1f MiB; journaled %d of %d named, %d unread (%d lost)"
          % (backend, count / wall, used, wall, 100 * used / wall, rss / 1024, after / 1024,
             peak / 1024, named, count, unread, lost), flush=True)
    check_accounted("held " + backend, named, unread, lost, count)


if __name__ == "__main__":
    main()
