#!/usr/bin/env bash
# bench_cpu_forward.sh — BERT-base CPU forward: the engine against OpenBLAS SGEMM and PyTorch.
#
# Builds tests/bench_bert_forward (Release), runs it with THREADS threads (OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS; default 2), then times the same forward in PyTorch (scripts/torch_bert.py,
# float32, eval, torch.no_grad, torch.set_num_threads(THREADS)) in the same run on the same shapes
# and prints both, with the ratio. Batch 8, sequence 128 unless BATCH / SEQ say otherwise; median
# of RUNS runs after WARMUP warm-up forwards on both sides.
#
# Environment: BUILD_DIR (default build-bench), DISTILL_PYTHON (default .venv/bin/python),
# THREADS, BATCH, SEQ, RUNS, WARMUP.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
PY=${DISTILL_PYTHON:-$ROOT/.venv/bin/python}
THREADS=${THREADS:-2}
BATCH=${BATCH:-8}
SEQ=${SEQ:-128}
RUNS=${RUNS:-7}
WARMUP=${WARMUP:-2}

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$BUILD_DIR" -j2 bench_bert_forward >/dev/null

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS

JSON=$(mktemp)
trap 'rm -f "$JSON"' EXIT
"$BUILD_DIR/tests/bench_bert_forward" --batch "$BATCH" --seq "$SEQ" --runs "$RUNS" --warmup "$WARMUP" \
    --json-out "$JSON"

"$PY" - "$ROOT" "$JSON" "$THREADS" "$BATCH" "$SEQ" "$RUNS" "$WARMUP" <<'EOF'
import json, statistics, sys, time
root = sys.argv[1]
with open(sys.argv[2]) as f:
    engine_json = json.load(f)
threads, B, S, runs, warmup = (int(x) for x in sys.argv[3:8])
sys.path.insert(0, root + "/scripts")
import torch
from torch_bert import TorchBert

torch.set_num_threads(threads)
torch.manual_seed(0)
model = TorchBert({"num_labels": 2}).eval()          # BERT-base defaults, float32
H, I, L, C = 768, 3072, 12, 2
ids = torch.randint(1, 30522, (B, S))
types = (torch.arange(S)[None, :] >= S // 2).long().expand(B, S)
mask = torch.ones(B, S, dtype=torch.long)
times = []
with torch.no_grad():
    for it in range(warmup + runs):
        t0 = time.perf_counter()
        model(ids, mask, types)["logits"].numpy()
        if it >= warmup:
            times.append(time.perf_counter() - t0)
torch_ms = statistics.median(times) * 1e3
flops = L * (2 * B * S * (4 * H * H + 2 * H * I) + 4 * B * S * S * H) + 2 * B * H * H + 2 * B * H * C
e = engine_json
print(f"PyTorch {torch.__version__} forward (scripts/torch_bert.py, {threads} threads, no_grad): "
      f"median {torch_ms:8.2f} ms -> {flops / torch_ms / 1e6:7.2f} GFLOP/s")
print(f"summary: engine {e['engine_ms']:.1f} ms ({e['engine_gflops']:.1f} GFLOP/s), "
      f"OpenBLAS SGEMM-only {e['sgemm_ms']:.1f} ms ({e['sgemm_gflops']:.1f} GFLOP/s), "
      f"PyTorch {torch_ms:.1f} ms")
print(f"ratio engine time / PyTorch time = {e['engine_ms'] / torch_ms:.2f} "
      f"(< 1: the engine is faster); engine time / SGEMM-only time = "
      f"{e['engine_ms'] / e['sgemm_ms']:.2f}")
EOF
