#!/usr/bin/env bash
# scripts/demo.sh — the main job, from a fresh machine to the table users care about:
#   install what is missing, build, prepare GLUE SST-2 (../shared/data/sst2), fine-tune the real
#   all-MiniLM-L6-v2 weights into a teacher (configs/finetune-teacher.yaml), distil it into a
#   TinyBERT-4-shaped student (configs/tiny.yaml), evaluate both on sst2/test.tsv (the 872-row GLUE
#   dev set), and print parameters, file size, accuracy, latency per sample and speed-up for
#   BERT-base's shape (random weights: latency only), the teacher and the student.
# On the CPU (2 cores) this takes about 15 minutes; a GPU is used when the build has CUDA and one
# is present. scripts/sst2_recipe.sh runs the same pipeline with a longer schedule.
#
# Usage: bash scripts/demo.sh
# Environment:
#   DISTILL_TEACHER_STEPS / DISTILL_STUDENT_STEPS   optimizer steps (defaults: the configs' values;
#                                                   the README test runs 20 of each)
#   DISTILL_SKIP_INSTALL=1                          skip scripts/install-deps.sh
#   DISTILL_RUNS                                    where runs go (default: runs/demo: data/, teacher/,
#                                                   tiny/, eval.jsonl, results.md; the configs' own
#                                                   run.dir, runs/teacher and runs/tiny, stay free
#                                                   for the README's quick start)
#   DISTILL_EXTRA_SETS                              more "key=value" overrides for both runs
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${DISTILL_SHARED_DATA:-$ROOT/../shared/data}"
RUNS="${DISTILL_RUNS:-runs/demo}"
t0=$(date +%s)
say() { printf '\n== demo: %s (%ds)\n' "$*" "$(($(date +%s) - t0))"; }

if [[ "${DISTILL_SKIP_INSTALL:-0}" != 1 ]]; then
  say "install dependencies"
  bash scripts/install-deps.sh
fi

say "build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target distill >/dev/null
DISTILL=build/train/distill

say "prepare SST-2"
mkdir -p "$RUNS/data/sst2"
for split in train dev test; do
  "$DISTILL" prepare --vocab "$SHARED/vocab/bert-base-uncased-vocab.txt" --input "$SHARED/sst2/$split.tsv" \
    --output "$RUNS/data/sst2/$split.h5" --max-seq 128 --labels 0,1
done

common=(--set run.overwrite=true --set "data.train=$RUNS/data/sst2/train.h5" --set "data.dev=$RUNS/data/sst2/dev.h5"
        --set "data.test=$RUNS/data/sst2/test.h5")
teacher_extra=(); student_extra=()
[[ -n "${DISTILL_TEACHER_STEPS:-}" ]] && teacher_extra=(--set "train.max_steps=$DISTILL_TEACHER_STEPS")
[[ -n "${DISTILL_STUDENT_STEPS:-}" ]] && student_extra=(--set "train.max_steps=$DISTILL_STUDENT_STEPS")
for kv in ${DISTILL_EXTRA_SETS:-}; do common+=(--set "$kv"); done

say "fine-tune the teacher (all-MiniLM-L6-v2 -> SST-2)"
"$DISTILL" --config configs/finetune-teacher.yaml "${common[@]}" --set "run.dir=$RUNS/teacher" \
  ${teacher_extra[@]+"${teacher_extra[@]}"} >"$RUNS/teacher.log"
tail -n 4 "$RUNS/teacher.log"

say "distil the student (TinyBERT-4 shape)"
"$DISTILL" --config configs/tiny.yaml "${common[@]}" --set "run.dir=$RUNS/tiny" --set "teacher.path=$RUNS/teacher/best" \
  ${student_extra[@]+"${student_extra[@]}"} >"$RUNS/tiny.log"
tail -n 4 "$RUNS/tiny.log"

say "evaluate on sst2/test.tsv (872 rows)"
{
  "$DISTILL" eval --random 12,768,12,3072 --data "$RUNS/data/sst2/test.h5" --json --latency-rows 16
  "$DISTILL" eval --model "$RUNS/teacher/best" --data "$RUNS/data/sst2/test.h5" --json
  "$DISTILL" eval --model "$RUNS/tiny/best" --data "$RUNS/data/sst2/test.h5" --json
} >"$RUNS/eval.jsonl"
.venv/bin/python scripts/results_table.py "$RUNS/eval.jsonl" --names "BERT-base (random weights)" \
  "teacher: all-MiniLM-L6-v2 fine-tuned" "student: TinyBERT-4 shape, distilled" | tee "$RUNS/results.md"
say "done"
