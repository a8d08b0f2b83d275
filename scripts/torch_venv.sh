#!/usr/bin/env bash
# scripts/torch_venv.sh — the reference virtual environment with the current PyTorch and
# Hugging Face `transformers` from PyPI (default .cache/torch-venv, git-ignored). Used by
# scripts/bench_vs_torch.sh (PyTorch 2 timings) and by the hf_reference test (tests/test_hf_reference.py:
# distill's BERT against transformers' own BertModel).
#
#   bash scripts/torch_venv.sh [--check]
#
# Makes the venv with `python3 -m venv` and `pip install torch numpy transformers safetensors`
# from PyPI, once; a venv that already imports all four is reused and nothing is downloaded (a few
# seconds). PyPI's default Linux torch wheel depends on the CUDA libraries, so the first install
# downloads ~3 GB and takes ~5.5 GB on disk (~2-5 min); distill itself never uses this venv.
# --check: only report whether the venv is ready (exit 0) or not (exit 1); install nothing.
# On success prints the venv's python on stdout (the last line); every message goes to stderr.
# Environment: TORCH_VENV (default <repo>/.cache/torch-venv).
# Exit status: 0 ready, 1 the install failed (the pip log's path and last line are printed).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TORCH_VENV=${TORCH_VENV:-$ROOT/.cache/torch-venv}
PKGS=(torch numpy transformers safetensors)
IMPORTS="import torch, numpy, transformers, safetensors"
CHECK=0
case "${1:-}" in
    --check) CHECK=1 ;;
    "") ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "torch_venv.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

log() { echo "torch_venv: $*" >&2; }

if "$TORCH_VENV/bin/python" -c "$IMPORTS" 2>/dev/null; then
    echo "$TORCH_VENV/bin/python"
    exit 0
fi
if ((CHECK)); then
    log "$TORCH_VENV is not ready (it must import: ${PKGS[*]}); make it with: bash scripts/torch_venv.sh"
    exit 1
fi
log "making $TORCH_VENV: pip install ${PKGS[*]} from PyPI (large the first time: torch brings the CUDA libraries)"
mkdir -p "$(dirname "$TORCH_VENV")"
LOG="$TORCH_VENV.log"
if { [ -x "$TORCH_VENV/bin/pip" ] || python3 -m venv "$TORCH_VENV"; } >"$LOG" 2>&1 &&
   "$TORCH_VENV/bin/pip" install --disable-pip-version-check "${PKGS[@]}" >>"$LOG" 2>&1 &&
   "$TORCH_VENV/bin/python" -c "$IMPORTS" >>"$LOG" 2>&1; then
    log "ready: $("$TORCH_VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
    echo "$TORCH_VENV/bin/python"
    exit 0
fi
log "error: making the venv failed: $(tail -n 1 "$LOG") (log: $LOG)"
exit 1
