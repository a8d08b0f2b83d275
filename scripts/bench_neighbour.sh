#!/usr/bin/env bash
# bench_neighbour.sh — a small model's training step alone and beside a busy neighbour process
# (issue 10: "the step slows in proportion to the cores it lost, not collapsing"): `distill bench`
# of a tiny distillation (random teacher 2 layers x 128, student 2 x 64, batch 8 x 64 tokens) at
# 1 and 2 threads, alone and beside one `yes > /dev/null`, alternating, for each binary given.
# Prints one line per measurement: binary, threads, alone|neighbour, tokens/s (median of the steps).
#
#   scripts/bench_neighbour.sh [--rounds N] [--steps N] DISTILL_BIN...     (default: build/train/distill)
set -euo pipefail
rounds=3 steps=20
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "bench_neighbour.sh: error: unknown option $1" >&2; exit 2 ;;
  esac
done
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(build/train/distill)
work=$(mktemp -d)
trap 'rm -rf "$work"; [[ -n ${hog:-} ]] && kill "$hog" 2>/dev/null || true' EXIT
printf 'sentence\tlabel\nfine\t1\nbad\t0\n' > "$work/rows.tsv"
shared=${DISTILL_SHARED_DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
"${bins[0]}" prepare --vocab "$shared/vocab/bert-base-uncased-vocab.txt" --input "$work/rows.tsv" \
  --output "$work/rows.h5" --labels 0,1 >/dev/null
cat > "$work/tiny.yaml" <<YAML
task: distill
run:       {name: neighbour, dir: $work/run, seed: 1}
device:    cpu
threads:   1
teacher:   {init: random, layers: 2, hidden: 128, heads: 2, intermediate: 512, num_labels: 2}
student:   {init: random, layers: 2, hidden: 64, heads: 2, intermediate: 256}
data:      {train: $work/rows.h5, batch_size: 8}
losses:
  - {type: logits_kd, weight: 1.0, temperature: 2.0}
  - {type: hidden_mse, weight: 1.0, layers: uniform}
train:     {max_steps: 10}
YAML
measure() { # bin threads
  "$1" bench --config "$work/tiny.yaml" --steps "$steps" --seq 64 --set "threads=$2" --json |
    tail -1 | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["tokens_per_s"])'
}
for ((r = 1; r <= rounds; r++)); do
  for where in alone neighbour; do
    if [[ $where == neighbour ]]; then yes > /dev/null & hog=$!; fi
    for bin in "${bins[@]}"; do
      for t in 1 2; do
        echo "round $r $bin threads=$t $where tokens/s $(measure "$bin" "$t")"
      done
    done
    if [[ $where == neighbour ]]; then kill "$hog"; wait "$hog" 2>/dev/null || true; hog=; fi
  done
done
