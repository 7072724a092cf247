#!/usr/bin/env python3
"""Memory of `psdiff serve` under many distinct `?fields=` sets (issue 16):
REQUESTS (default 12,000) GET /api/ps requests, each with a field set no
other request used, from 32 client threads, with a control token (so the
costly open_files and connections are among them). Reports the server's
resident memory before, its peak (VmHWM), what stays 3 s after, and its
most threads, for this build and, with --reference BIN, an earlier psdiff
measured in the same run. Target: peak under 64 MB.

    python3 bench/serve_memory.py [--requests 12000] [--reference BIN]
"""
import argparse
import concurrent.futures
import http.client
import itertools
import os
import random
import re
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ["pid", "ppid", "name", "exe", "cmdline", "username", "uids", "gids",
          "status", "nice", "num_threads", "num_fds", "cpu_times", "cpu_percent",
          "create_time", "memory_info", "memory_percent", "cwd", "terminal",
          "num_ctx_switches", "open_files", "connections"]


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    kb = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    return kb("VmRSS"), kb("VmHWM"), threads


def field_sets(n):
    rng = random.Random(16)
    seen = set()
    while len(seen) < n:
        mask = rng.getrandbits(len(FIELDS)) or 1
        seen.add(mask)
    for mask in seen:
        yield ",".join(f for i, f in enumerate(FIELDS) if mask >> i & 1)


def measure(binary, requests):
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "tokens")
        env = dict(os.environ, PSDIFF_DB=os.path.join(tmp, "psdiff.db"),
                   PSDIFF_CONFIG="/dev/null")
        token = subprocess.run([binary, "token", "add", "bench", "--control",
                                "--tokens", tokens], env=env, check=True,
                               capture_output=True, text=True).stdout.strip()
        server = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0",
                                   "--tokens", tokens], env=env,
                                  stderr=subprocess.PIPE, text=True)
        try:
            line = server.stderr.readline()
            addr = re.search(r"http://([\d.:]+)", line).group(1)
            threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
            host, port = addr.rsplit(":", 1)
            time.sleep(0.5)
            before = status(server.pid)
            most_threads = before[2]
            local = threading.local()

            def get(fields):
                if not hasattr(local, "conn"):
                    local.conn = http.client.HTTPConnection(host, int(port), timeout=60)
                local.conn.request("GET", f"/api/ps?fields={fields}",
                                   headers={"Authorization": f"Bearer {token}"})
                response = local.conn.getresponse()
                response.read()
                return response.status

            done = threading.Event()

            def sample():
                nonlocal most_threads
                while not done.is_set():
                    most_threads = max(most_threads, status(server.pid)[2])
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample)
            sampler.start()
            began = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(32) as pool:
                codes = list(pool.map(get, field_sets(requests)))
            took = time.monotonic() - began
            done.set()
            sampler.join()
            during = status(server.pid)
            time.sleep(3)
            after = status(server.pid)
            failed = sum(1 for c in codes if c != 200)
            return {"before": before[0], "peak": during[1], "after": after[0],
                    "threads": most_threads, "failed": failed, "seconds": took}
        finally:
            server.terminate()
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=12000)
    parser.add_argument("--reference")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    runs = [("psdiff", os.path.join(ROOT, "target/release/psdiff"))]
    if args.reference:
        runs.append(("reference", args.reference))
    results = {}
    for name, binary in runs:
        r = measure(binary, args.requests)
        results[name] = r
        print(f"{name:10} {args.requests} distinct field sets in {r['seconds']:.1f} s: "
              f"RSS {r['before'] / 1024:.1f} MB before, peak {r['peak'] / 1024:.1f} MB, "
              f"{r['after'] / 1024:.1f} MB 3 s after; at most {r['threads']} threads; "
              f"{r['failed']} failed")
    if "reference" in results:
        new, ref = results["psdiff"], results["reference"]
        print(f"ratio psdiff/reference: peak {new['peak'] / ref['peak']:.2f}, "
              f"after {new['after'] / ref['after']:.2f}, threads {new['threads'] / ref['threads']:.2f}")
    ok = results["psdiff"]["peak"] < 64 * 1024 and results["psdiff"]["failed"] == 0
    print("target (peak < 64 MB, no failure):", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
