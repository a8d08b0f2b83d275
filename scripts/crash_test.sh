#!/usr/bin/env bash
# scripts/crash_test.sh — kills a training run with SIGKILL at random moments, many times, resuming
# each time with `--resume auto`, and checks that it ends exactly where a run that was never killed
# ends: final/model.safetensors and best/model.safetensors byte for byte, and metrics.jsonl line for
# line (less its wall-clock fields time_s and tokens_per_s). No temporary file may be left behind.
#
# The run: the toy task of tests/e2e (a distillation with dropout, grad_accum 2, projections, a
# temperature and a cosine schedule, dev evaluations; tests/e2e/resume.yaml) with a checkpoint after
# every step, so a good share of the kills land inside a checkpoint write (the script counts the
# kills that left a temporary file behind: those interrupted a write).
#
# Usage: bash scripts/crash_test.sh [--kills N] [--steps S] [--distill PATH] [--seed K] [--keep]
#   --kills N     SIGKILLs before the run is allowed to finish (default 50)
#   --steps S     optimizer steps of the run (default 25 x N / 4 + 20, at least 40)
#   --distill P   the binary (default build/train/distill, then build/distill)
#   --seed K      seeds the kill times (default: the time); printed, so a failure can be replayed
#   --keep        keep the work folder (it is kept anyway on failure)
# Exit status 0 when the killed run equals the reference, 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILLS=50
STEPS=""
DISTILL=""
SEED="$(date +%s)"
KEEP=0
while (($#)); do
  case "$1" in
  --kills) KILLS="$2"; shift ;;
  --steps) STEPS="$2"; shift ;;
  --distill) DISTILL="$2"; shift ;;
  --seed) SEED="$2"; shift ;;
  --keep) KEEP=1 ;;
  *) echo "crash_test: error: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$DISTILL" ]]; then
  for c in "$ROOT/build/train/distill" "$ROOT/build/distill"; do [[ -x "$c" ]] && DISTILL="$c" && break; done
fi
[[ -x "$DISTILL" ]] || { echo "crash_test: error: no distill binary (build first, or pass --distill)" >&2; exit 2; }
DISTILL="$(cd "$(dirname "$DISTILL")" && pwd)/$(basename "$DISTILL")"
[[ -n "$STEPS" ]] || STEPS=$((KILLS * 25 / 4 + 20))
((STEPS >= 40)) || STEPS=40
PY="${DISTILL_PYTHON:-python3}"
RANDOM=$SEED

say() { printf 'crash_test: %s\n' "$*"; }
WORK="$(mktemp -d /tmp/distill-crash-XXXXXX)"
say "work folder $WORK; $KILLS kills, $STEPS steps, seed $SEED"
cd "$WORK"
"$PY" -c "import sys; sys.path.insert(0, '$ROOT/tests/e2e'); import toy_task; toy_task.write_task('.')"
for s in train dev; do
  "$DISTILL" prepare --vocab vocab.txt --input $s.tsv --output $s.h5 --max-seq 16 --labels neg,pos >/dev/null ||
    { say "error: prepare failed"; exit 1; }
done
ARGS=(--config "$ROOT/tests/e2e/resume.yaml" --set "train.max_steps=$STEPS" --set train.checkpoint_every=1
      --set train.keep_last=2 --set train.eval_every=10 --set train.log_every=1)

# ---- the reference: never killed
t0=$(date +%s%N)
"$DISTILL" "${ARGS[@]}" --set run.dir=ref >ref.log 2>&1 || { say "error: the reference run failed (ref.log)"; exit 1; }
ref_ms=$((($(date +%s%N) - t0) / 1000000))
say "reference run: $STEPS steps in $ref_ms ms"

# ---- the killed run: a random delay in [20 ms, 2 x (run time / kills) + 20 ms] before each kill,
# so the N kills spread over about the whole run (each restart also re-reads the checkpoint).
span=$((2 * ref_ms / KILLS + 1))
kills=0 in_write=0 attempts=0 finished=0
while ((!finished)); do
  attempts=$((attempts + 1))
  "$DISTILL" "${ARGS[@]}" --set run.dir=crash --resume auto >>crash.log 2>&1 &
  pid=$!
  if ((kills < KILLS)); then
    delay_ms=$((20 + (RANDOM * 32768 + RANDOM) % span))
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      kills=$((kills + 1))
      if compgen -G "crash/*.tmp-*" >/dev/null; then in_write=$((in_write + 1)); fi
      continue
    fi
  fi
  wait "$pid"
  rc=$?
  if ((rc != 0)); then
    say "error: a resumed run exited $rc (see $WORK/crash.log)"
    exit 1
  fi
  finished=1
done
say "$kills kills ($in_write of them left a temporary file: inside a write), $attempts starts"

# ---- the checks
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then say "ok    $1"; else say "FAIL  $1"; fail=1; fi
}
strip() { "$PY" -c "
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); r.pop('time_s', None); r.pop('tokens_per_s', None); print(json.dumps(r, sort_keys=True))
" "$1"; }
check "final/model.safetensors is byte-identical to the reference's" cmp -s ref/final/model.safetensors crash/final/model.safetensors
check "best/model.safetensors is byte-identical to the reference's" cmp -s ref/best/model.safetensors crash/best/model.safetensors
check "metrics.jsonl (less time_s, tokens_per_s) equals the reference's" cmp -s <(strip ref/metrics.jsonl) <(strip crash/metrics.jsonl)
left="$(cd crash && ls -d ./*.tmp-* 2>/dev/null | tr '\n' ' ')"
check "no temporary file left in the run folder${left:+ (found: $left)}" test -z "$left"
if ((fail)); then
  say "FAILED (kept: $WORK; replay with --seed $SEED --kills $KILLS --steps $STEPS)"
  exit 1
fi
((KEEP)) && say "kept: $WORK" || rm -rf "$WORK"
say "passed: $kills kills, final weights identical"
