#!/usr/bin/env bash
# Fuzzes each of psdiff's parsers for SECONDS (default 60) and prints the
# executions reached and the crashes found; crashing inputs go to
# fuzz/crashes/ (each one becomes a regression test in src/fuzz.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --features fuzzing --bench fuzz -- "${1:-60}"
