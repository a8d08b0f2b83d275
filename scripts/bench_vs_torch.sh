#!/usr/bin/env bash
# bench_vs_torch.sh — one distillation step (BERT-base teacher -> TinyBERT-4 student), distill
# against the current PyTorch from PyPI (fp32 and bf16 autocast) and Debian's PyTorch 1.13 (fp32),
# alternated in one run, with OpenBLAS SGEMM and oneDNN bf16 GEMM rates measured in the same run.
# Prints a markdown table (scripts/bench_vs_torch.py writes it; scripts/bench_step.py defines the
# step on the PyTorch side).
#
#   bash scripts/bench_vs_torch.sh [--smoke] [--no-pypi] [--rows 8x128,32x128,8x32] [--rounds 3]
#                                  [--steps 3] [--json-out FILE]
#
# 1. Builds `distill` and tests/bench_gemm in BUILD_DIR (default build-bench, Release, no CUDA),
#    unless DISTILL and BENCH_GEMM name built binaries.
# 2. Makes the PyPI PyTorch virtual environment TORCH_VENV (default .cache/torch-venv, git-ignored)
#    with scripts/torch_venv.sh (`pip install torch numpy transformers safetensors` from PyPI, once;
#    the hf_reference test uses the same venv); a venv that already has them is reused. PyPI's
#    default Linux wheel depends on the CUDA libraries, so the first install downloads ~3 GB and
#    takes ~5.5 GB on disk; only this script and that test use it — distill never does.
#    If the install fails (no network), the PyPI columns read n/a with the reason.
# 3. Runs the alternation, with bench_gemm (SGEMM and oneDNN bf16 at M = batch*seq of each row)
#    before and after it.
#
# --smoke: tiny models, one tiny row, one round, Debian's PyTorch only, no venv, no build when
# DISTILL/BENCH_GEMM are given (tests/bench.cmake runs it so; ~10 s). --no-pypi: skip step 2.
# Environment: BUILD_DIR, DISTILL, BENCH_GEMM, TORCH_VENV, DEBIAN_PYTHON (default /usr/bin/python3),
# THREADS (default: every CPU). The full default run takes ~15-25 min on 2 cores; measure on an
# idle machine (the table prints the load average beside every figure).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
TORCH_VENV=${TORCH_VENV:-$ROOT/.cache/torch-venv}
DEBIAN_PYTHON=${DEBIAN_PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
SMOKE=0
PYPI=1
PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; PYPI=0; PASS+=(--smoke) ;;
        --no-pypi) PYPI=0 ;;
        --rows|--rounds|--steps|--json-out) PASS+=("$1" "$2"); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench_vs_torch.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "bench_vs_torch: $*" >&2; }

# 1. binaries
if [ -z "${DISTILL:-}" ] || [ -z "${BENCH_GEMM:-}" ]; then
    log "building distill and bench_gemm in $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DDISTILL_CUDA=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target distill bench_gemm >/dev/null
    DISTILL=${DISTILL:-$BUILD_DIR/train/distill}
    BENCH_GEMM=${BENCH_GEMM:-$BUILD_DIR/tests/bench_gemm}
fi

# 2. the PyPI PyTorch venv
PYPI_PY=
PYPI_REASON="--smoke/--no-pypi: the PyPI venv is not used"
if [ "$PYPI" = 1 ]; then
    # scripts/torch_venv.sh makes it once (or finds it ready) and prints its python last
    if PYPI_PY=$(TORCH_VENV=$TORCH_VENV bash "$ROOT/scripts/torch_venv.sh" | tail -n 1) && [ -n "$PYPI_PY" ]; then
        :
    else
        PYPI_PY=
        PYPI_REASON="making the venv failed: $(tail -n 1 "$TORCH_VENV.log" 2>/dev/null | tr -d '|') (log: $TORCH_VENV.log)"
        log "$PYPI_REASON"
    fi
fi

# 3. the alternation, with the GEMM rates measured before and after it
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/scripts/bench_vs_torch.py" --distill "$DISTILL" --bench-gemm "$BENCH_GEMM" \
    --pypi-python "$PYPI_PY" --pypi-reason "$PYPI_REASON" --debian-python "$DEBIAN_PYTHON" \
    --threads "$THREADS" "${PASS[@]}"
