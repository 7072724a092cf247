#!/usr/bin/env bash
# What a flood of empty cgroups costs a check: `psdiff dump` (the built-in
# rules read every process's cgroup) timed with no flood, then with N
# empty cgroups made as a user makes them in their delegated subtree.
# Prints the medians and their ratio; the target is a cost that follows
# the processes, not the cgroups (a ratio near 1).
# Usage (root, cgroup v2 mounted): bench/cgroup_flood.sh [N] [PSDIFF]
set -euo pipefail
n=${1:-12000}
bin=${2:-target/release/psdiff}
v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$v2" ] || { echo "no cgroup2 mounted"; exit 1; }
flood="$v2/psdiff-flood-$$"
cleanup() { [ -d "$flood" ] && find "$flood" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$flood" 2>/dev/null || true; }
trap cleanup EXIT
median() {
    local times=()
    for _ in $(seq 1 9); do
        local start end
        start=$(date +%s%N)
        PSDIFF_CONFIG=/dev/null "$bin" dump >/dev/null
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 5p
}
quiet=$(median)
mkdir "$flood"
for i in $(seq 1 "$n"); do mkdir "$flood/c$i"; done
flooded=$(median)
echo "dump: ${quiet} us without, ${flooded} us with $n empty cgroups: ratio $(python3 -c "print(round($flooded / $quiet, 2))")"
