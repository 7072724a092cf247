#!/usr/bin/env python3
"""Load on `psdiff serve`: GET /api/diff at 1,000 requests per second for 30 s
on loopback, with Debian's `hey` (20 workers x 50 requests/s each), and the
same load on GET / (no /proc, no diff) as the reference measured in the same
run. Target: zero errors, p99 of /api/diff at most 50 ms. PROCESSES sleeping
processes (default 1,000) are started first, so that each reading of /proc
and each diff costs what it costs on a busy server.

    python3 bench/serve_load.py [SECONDS [PROCESSES]]
"""

import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/psdiff")
SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
PROCESSES = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
WORKERS, PER_WORKER = 20, 50


def hey(url, token):
    out = subprocess.run(
        ["hey", "-z", f"{SECONDS}s", "-c", str(WORKERS), "-q", str(PER_WORKER),
         "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True).stdout
    def seconds(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else float("nan")
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {
        "rps": seconds(r"Requests/sec:\s+([\d.]+)"),
        "p50": seconds(r"50%+ in ([\d.]+) secs"),
        "p99": seconds(r"99%+ in ([\d.]+) secs"),
        "ok": codes.get(200, 0),
        "other": sum(n for c, n in codes.items() if c != 200),
        "errors": errors.group(1).strip() if errors else "",
    }


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    sleepers = [subprocess.Popen(["sleep", f"3600.{i}"]) for i in range(PROCESSES)]
    try:
        return measure()
    finally:
        for s in sleepers:
            s.kill()
            s.wait()


def measure():
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens")
        env = dict(os.environ, PSDIFF_DB=os.path.join(tmp, "psdiff.db"), PSDIFF_CONFIG="/dev/null")
        token = subprocess.run([BIN, "token", "add", "bench", "--tokens", tokens],
                               check=True, capture_output=True, text=True, env=env).stdout.strip()
        subprocess.run([BIN, "write"], check=True, capture_output=True, env=env)
        server = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--tokens", tokens],
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            addr = re.search(r"http://(\S+)", server.stderr.readline()).group(1)
            processes = len([d for d in os.listdir("/proc") if d.isdigit()])
            print(f"{processes} processes; {WORKERS} workers x {PER_WORKER}/s = "
                  f"{WORKERS * PER_WORKER}/s for {SECONDS} s each")
            results = {path: hey(f"http://{addr}{path}", token) for path in ["/", "/api/diff"]}
        finally:
            server.terminate()
            server.wait()
    for path, r in results.items():
        print(f"GET {path:10} {r['rps']:7.1f} req/s  p50 {r['p50'] * 1000:6.2f} ms  "
              f"p99 {r['p99'] * 1000:6.2f} ms  200: {r['ok']}  other: {r['other']}  "
              f"errors: {r['errors'] or 'none'}")
    diff, health = results["/api/diff"], results["/"]
    print(f"p99 /api/diff / p99 GET /: {diff['p99'] / health['p99']:.2f}")
    ok = diff["other"] == 0 and not diff["errors"] and diff["p99"] <= 0.050 \
        and diff["rps"] >= 0.95 * WORKERS * PER_WORKER
    print("target (zero errors, p99 <= 50 ms, 1,000 req/s):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
