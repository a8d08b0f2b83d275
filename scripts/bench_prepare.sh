#!/usr/bin/env bash
# bench_prepare.sh — `distill prepare` against Hugging Face's Rust `tokenizers` on the same file.
#
# In one run, on INPUT (default the shared SST-2 train.tsv, 60,614 rows) with MAX_SEQ (128):
#   1. `distill prepare`, end to end as a user runs it (process start, vocabulary load, reading and
#      checking every row, tokenising, writing the gzip-compressed HDF5 file, fsync, rename),
#      timed from outside, median of RUNS runs;
#   2. `tokenizers.BertWordPieceTokenizer.encode_batch` on the same sentences with truncation to
#      MAX_SEQ, timed around the call only (file reading and Python start-up not counted), median
#      of RUNS calls after one warm-up;
#   3. the C tokenizer alone (tests/test_tokenizer_tool --time: the encode loop, one thread).
# Both sides get THREADS threads (OMP_NUM_THREADS for distill, RAYON_NUM_THREADS for tokenizers).
# Prints rows/s for each and the ratio distill / tokenizers.
#
# Environment: BUILD_DIR (default build-bench), DISTILL_PYTHON (default .venv/bin/python),
# INPUT, VOCAB, MAX_SEQ, THREADS (default 2), RUNS (default 5).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
PY=${DISTILL_PYTHON:-$ROOT/.venv/bin/python}
INPUT=${INPUT:-$ROOT/../shared/data/sst2/train.tsv}
VOCAB=${VOCAB:-$ROOT/../shared/data/vocab/bert-base-uncased-vocab.txt}
MAX_SEQ=${MAX_SEQ:-128}
THREADS=${THREADS:-2}
RUNS=${RUNS:-5}

cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C "$BUILD_DIR" -j2 distill test_tokenizer_tool >/dev/null

export OMP_NUM_THREADS=$THREADS RAYON_NUM_THREADS=$THREADS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" - "$BUILD_DIR/train/distill" "$BUILD_DIR/tests/test_tokenizer_tool" "$INPUT" "$VOCAB" "$MAX_SEQ" "$RUNS" \
  "$WORK" "$THREADS" <<'EOF'
import statistics
import subprocess
import sys
import time

distill, tool, inp, vocab, max_seq, runs, work, threads = sys.argv[1:]
max_seq, runs = int(max_seq), int(runs)

# The same sentences for both: the TSV's first column after the header (SST-2's layout).
with open(inp, encoding="utf-8") as f:
    lines = f.read().split("\n")
rows = [l.split("\t")[0] for l in lines[1:] if l]
n = len(rows)

# 1. distill prepare, end to end
times = []
for i in range(runs):
    out = f"{work}/out{i}.h5"
    t0 = time.perf_counter()
    subprocess.run([distill, "prepare", "--vocab", vocab, "--input", inp, "--output", out,
                    "--max-seq", str(max_seq)], check=True, capture_output=True)
    times.append(time.perf_counter() - t0)
c_s = statistics.median(times)

# 2. Hugging Face tokenizers, batch encode only
from tokenizers import BertWordPieceTokenizer, __version__ as tok_version

tok = BertWordPieceTokenizer(vocab, lowercase=True)
tok.enable_truncation(max_length=max_seq)
tok.encode_batch(rows)  # warm-up
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    enc = tok.encode_batch(rows)
    times.append(time.perf_counter() - t0)
hf_s = statistics.median(times)

# 3. the C tokenizer alone
hexed = "\n".join(r.encode().hex() for r in rows) + "\n"
r = subprocess.run([tool, "--vocab", vocab, "--max-seq", str(max_seq), "--time"], input=hexed.encode(),
                   capture_output=True, check=True)
enc_s = float(r.stderr.decode().split("encode ")[1].split(" s")[0])

print(f"input: {inp}, {n} rows, max_seq {max_seq}, {threads} threads, median of {runs} runs")
print(f"distill prepare (end to end, HDF5 written): {c_s:8.3f} s  {n / c_s:10.0f} rows/s")
print(f"tokenizers {tok_version} encode_batch only:     {hf_s:8.3f} s  {n / hf_s:10.0f} rows/s")
print(f"ratio distill prepare / tokenizers:         {hf_s / c_s:8.2f}x")
print(f"C tokenizer alone (1 thread, encode loop):  {enc_s:8.3f} s  {n / enc_s:10.0f} rows/s "
      f"({hf_s / enc_s:.1f}x tokenizers)")
EOF
