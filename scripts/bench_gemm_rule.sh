#!/usr/bin/env bash
# bench_gemm_rule.sh — the measurement behind DISTILL_FP32_GEMM=auto (engine/cpu/cpu_gemm_rule.c):
# runs tests/bench_gemm_rule (the engine's fp32 GEMM on OpenBLAS and on oneDNN, small products on
# one thread as the engine runs them) on the GEMM shapes of BERT models and prints, per shape, both
# times, the faster library and what the committed rule picks. Timing is noisy on a shared machine:
# run it on an idle one and repeat before changing the rule.
#
#   scripts/bench_gemm_rule.sh [BUILD_DIR] [THREADS]       (defaults: build, 2)
set -euo pipefail
build=${1:-build}
threads=${2:-2}
exe="$build/tests/bench_gemm_rule"
[[ -x $exe ]] || { echo "bench_gemm_rule.sh: error: $exe not found (build the bench_gemm_rule target)" >&2; exit 1; }
# H,A,I B,S: the demo student at batch 1 (eval latency) and batch 32, a tiny model, BERT-base at batch 8
OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=passive "$exe" \
    312,12,1200 1,25 312,12,1200 32,64 64,4,256 8,64 768,12,3072 8,128 |
python3 -c "
import json, sys
print('ta tb     m     n     k batch  OpenBLAS_us  oneDNN_us  faster    rule')
agree = total = 0
for line in sys.stdin:
    d = json.loads(line)
    fast = 'onednn' if 0 <= d['onednn_us'] < d['openblas_us'] else 'openblas'
    total += 1
    agree += fast == d['rule']
    print('%2d %2d %5d %5d %5d %5d %12.1f %10.1f  %-9s %s' % (d['ta'], d['tb'], d['m'], d['n'], d['k'], d['batch'],
          d['openblas_us'], d['onednn_us'], fast, d['rule']))
print('the rule picks the faster library for %d of %d shapes' % (agree, total))
"
