#!/usr/bin/env bash
# scripts/sst2_recipe.sh — the longer SST-2 recipe behind the README's quality table: the same
# pipeline as scripts/demo.sh (prepare, fine-tune all-MiniLM-L6-v2, distil the student of
# configs/two-layer.yaml or DISTILL_STUDENT_CONFIG, evaluate on the 872-row GLUE dev set), with schedules long enough to approach full
# quality and a dev evaluation every few hundred steps (the best model is kept).
#
# Usage: bash scripts/sst2_recipe.sh
# Environment (defaults in brackets):
#   TEACHER_STEPS [1500]   STUDENT_STEPS [3000]   EVAL_EVERY [500]   DISTILL_RUNS [runs/recipe]
#   DISTILL_SKIP_INSTALL=1 skip scripts/install-deps.sh
#   DISTILL_EXTRA_SETS     more "key=value" overrides for both runs, e.g. "precision=bf16"
# Time on 2 CPU cores: 22 minutes at TEACHER_STEPS=1000 STUDENT_STEPS=2000 (the README's table),
# about half an hour at the defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DISTILL_RUNS="${DISTILL_RUNS:-runs/recipe}"
TEACHER_STEPS="${TEACHER_STEPS:-1500}"
STUDENT_STEPS="${STUDENT_STEPS:-3000}"
EVAL_EVERY="${EVAL_EVERY:-500}"
export DISTILL_TEACHER_STEPS="$TEACHER_STEPS" DISTILL_STUDENT_STEPS="$STUDENT_STEPS"
export DISTILL_EXTRA_SETS="train.eval_every=$EVAL_EVERY train.checkpoint_every=$EVAL_EVERY ${DISTILL_EXTRA_SETS:-}"
exec bash scripts/demo.sh
