#!/usr/bin/env bash
# bench_latency.sh — batch-1 latency of `distill eval` against ONNX Runtime on the same FP32 export
# of a student, on the same SST-2 rows, alternating rounds in one run (scripts/bench_latency.py
# says how; README, Benchmarks). Extra arguments go to it (--rows, --rounds, --threads, --model,
# --distill BIN again to compare a second build).
#
#   scripts/bench_latency.sh [BUILD_DIR] [bench_latency.py options]      (default build dir: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
if [[ $# -gt 0 && $1 != -* ]]; then build=$1; shift; fi
exe="$build/train/distill"
[[ -x $exe ]] || { echo "bench_latency.sh: error: $exe not found (build the distill target first)" >&2; exit 1; }
py=.venv/bin/python
[[ -x $py ]] || { echo "bench_latency.sh: error: $py not found (run scripts/install-deps.sh)" >&2; exit 1; }
exec "$py" scripts/bench_latency.py --distill "$exe" "$@"
