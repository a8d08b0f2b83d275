#!/usr/bin/env bash
# scripts/gpu_check.sh — the prepared check for a machine with an NVIDIA GPU: configure with CUDA,
# build, print nvidia-smi, run the tests labelled `gpu` (CUDA kernels against the CPU reference,
# test_cuda_step's TF32 / embedding determinism / async copies / no-allocation checks) with a GPU
# required (DISTILL_EXPECT_GPU=1: "no GPU" fails instead of skipping), then the bf16 step benchmark
# (scripts/gpu_bench.py: distill bench at bf16 against PyTorch bf16 autocast on the same GPU, BERT-base
# teacher + TinyBERT-4 student at batch 32 x seq 128, with the measured cuBLAS bf16 GEMM rate and the
# model FLOP utilisation, written to gpu_bench.json), all under one time limit.
#
# Two steps, because a lent GPU machine may lack Debian's development packages and reaches no
# package registry:
#   1. here, on a machine with apt:      bash scripts/gpu_check.sh --prepare
#      downloads OpenBLAS (runtime + headers) and its Fortran runtime as .deb files into
#      .cache/gpu-deps/ (git-ignored, about 13 MB), to be carried along.
#   2. on the GPU machine:               bash scripts/gpu_check.sh [--time-limit SECONDS]
#      (with the device tool: command "bash scripts/gpu_check.sh", carry [".cache/gpu-deps"],
#      timeout_s about 60 more than --time-limit.)
#      Where OpenBLAS is not installed it unpacks the carried .debs under /tmp/distill-deps
#      (never into /) and points CMake and the loader there. It configures the full project if the
#      machine has every library; otherwise engine/ alone (-DDISTILL_ENGINE_ONLY=ON), which is
#      all the GPU kernel tests need.
#
# Options:
#   --time-limit S   total seconds for everything (default 480); each step gets what is left
#   --engine-only    skip the attempt at a full configure
#   --arch LIST      CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   --build-dir DIR  the build folder (default build-gpu)
#   --dry-run        run everything except requiring a GPU (to check this script on a machine
#                    without one): the gpu tests then skip, compute-sanitizer is not run, and the
#                    benchmark is rehearsed on the CPU with tiny shapes (its figures mean nothing);
#                    a build folder that is already configured is reused as it is
# Output: logs in $OUT (the device tool's output folder) when set, else build-gpu/gpu-check/.
# Exit status: 0 when the build and every gpu test passed and compute-sanitizer (where it runs)
# found nothing; 1 otherwise.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEPS_DIR=.cache/gpu-deps
DEPS_PKGS=(libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0)
BUILD=build-gpu
LIMIT=480
ENGINE_ONLY=0
ARCH=90
DRY=0
PREPARE=0
while (($#)); do
  case "$1" in
  --prepare) PREPARE=1 ;;
  --time-limit) LIMIT="$2"; shift ;;
  --engine-only) ENGINE_ONLY=1 ;;
  --arch) ARCH="$2"; shift ;;
  --dry-run) DRY=1 ;;
  --build-dir) BUILD="$2"; shift ;;
  *) echo "gpu_check: error: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'gpu_check: %s\n' "$*"; }

# ------------------------------------------------------------------ step 1: --prepare (here)
if ((PREPARE)); then
  mkdir -p "$DEPS_DIR"
  rm -f "$DEPS_DIR"/*.deb
  if ! (cd "$DEPS_DIR" && apt-get download -q "${DEPS_PKGS[@]}"); then
    say "apt-get download failed; updating the package lists once and retrying"
    apt-get update -q && (cd "$DEPS_DIR" && apt-get download -q "${DEPS_PKGS[@]}") || exit 1
  fi
  say "ready: $(du -sh "$DEPS_DIR" | cut -f1) in $DEPS_DIR:"
  ls -1 "$DEPS_DIR"
  say "on the GPU machine: bash scripts/gpu_check.sh   (carry $DEPS_DIR)"
  exit 0
fi

# ------------------------------------------------------------------ step 2: the check
T0=$(date +%s)
LOG_DIR="${OUT:-$ROOT/$BUILD/gpu-check}"
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/gpu_check.log"
exec > >(tee "$LOG") 2>&1
left() { echo $((LIMIT - ($(date +%s) - T0))); }
# step NAME COMMAND...: runs under the time that is left; returns the command's status.
step() {
  local name="$1" t rc
  shift
  t=$(left)
  if ((t <= 5)); then
    say "$name: no time left (limit $LIMIT s)"
    return 124
  fi
  say "---- $name (at most $t s)"
  timeout --kill-after=10 "$t" "$@"
  rc=$?
  ((rc == 124)) && say "$name: timed out"
  return $rc
}

say "start $(date -u +%FT%TZ) on $(hostname), $(nproc) cores, limit $LIMIT s"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
elif ((DRY)); then
  say "no nvidia-smi (dry run: going on)"
else
  say "error: nvidia-smi not found: this machine has no NVIDIA driver"
  exit 1
fi

NVCC="$(command -v nvcc || true)"
[[ -z "$NVCC" && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
if [[ -z "$NVCC" ]]; then
  say "error: nvcc not found (PATH, /usr/local/cuda/bin)"
  exit 1
fi
say "nvcc: $NVCC ($("$NVCC" --version | tail -1))"

# OpenBLAS: the system's, or the carried .debs unpacked under /tmp/distill-deps.
CMAKE_EXTRA=()
have_openblas() {
  ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so' &&
    { [[ -f /usr/include/cblas.h ]] || ls /usr/include/*/cblas.h /usr/include/*/*/cblas.h >/dev/null 2>&1; }
}
if [[ "${DISTILL_GPU_CHECK_USE_DEBS:-0}" == 1 ]] || ! have_openblas; then
  if ! ls "$DEPS_DIR"/*.deb >/dev/null 2>&1; then
    say "error: no OpenBLAS on this machine and no $DEPS_DIR/*.deb carried"
    say "       (run 'bash scripts/gpu_check.sh --prepare' on the dev machine and carry $DEPS_DIR)"
    exit 1
  fi
  P=/tmp/distill-deps
  rm -rf "$P" && mkdir -p "$P"
  for f in "$DEPS_DIR"/*.deb; do
    if command -v dpkg >/dev/null; then
      dpkg -x "$f" "$P" || exit 1
    else # no dpkg: a .deb is an ar archive holding data.tar.xz
      ar p "$f" data.tar.xz | tar -xJ -C "$P" || exit 1
    fi
  done
  MA=x86_64-linux-gnu
  BLAS_LIB="$P/usr/lib/$MA/openblas-pthread"
  export CMAKE_LIBRARY_PATH="$BLAS_LIB${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
  export CMAKE_INCLUDE_PATH="$P/usr/include/$MA${CMAKE_INCLUDE_PATH:+:$CMAKE_INCLUDE_PATH}"
  LDP="$BLAS_LIB"
  # The Fortran runtime only where the machine has none (a newer one there stays in use).
  ldconfig -p 2>/dev/null | grep -q 'libgfortran\.so\.5' || LDP="$LDP:$P/usr/lib/$MA"
  export LD_LIBRARY_PATH="$LDP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  say "OpenBLAS from the carried .debs: $BLAS_LIB"
else
  say "OpenBLAS: the system's"
fi

CFG=(-S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDISTILL_CUDA=ON
     -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
     -DDISTILL_PYTHON="$(command -v python3 || echo python3)")
configured=0
if ((DRY)) && [[ -f "$BUILD/CMakeCache.txt" ]]; then
  say "dry run: reusing the configured $BUILD (no reconfigure)"
  cmake -N -LA "$BUILD" 2>/dev/null | grep -E '^DISTILL_(CUDA|ENGINE_ONLY)' || true
  configured=1
  : >"$LOG_DIR/configure.log"
elif ((!ENGINE_ONLY)); then
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
  if step "configure (full)" cmake "${CFG[@]}" -DDISTILL_ENGINE_ONLY=OFF >"$LOG_DIR/configure.log" 2>&1; then
    configured=1
  else
    say "full configure failed (last lines below); falling back to engine/ alone"
    tail -15 "$LOG_DIR/configure.log"
  fi
fi
if ((!configured)); then
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
  step "configure (engine only)" cmake "${CFG[@]}" -DDISTILL_ENGINE_ONLY=ON >"$LOG_DIR/configure.log" 2>&1 ||
    { tail -30 "$LOG_DIR/configure.log"; say "FAILED: configure"; exit 1; }
fi
grep -E '✓|✗' "$LOG_DIR/configure.log" || true

# Everything first; if some target fails, still build the GPU tests' own targets and run them,
# so one broken file elsewhere does not waste the lease (the check then fails all the same).
build_rc=0
if ! step build cmake --build "$BUILD" -j "$(nproc)" >"$LOG_DIR/build.log" 2>&1; then
  build_rc=1
  grep -E -B2 -A8 'error|Error' "$LOG_DIR/build.log" | head -60
  say "FAILED: build of all targets (log: $LOG_DIR/build.log); building the GPU tests alone"
  step "build gpu tests" cmake --build "$BUILD" -j "$(nproc)" --target test_cuda_backend test_cuda_ops test_cuda_step \
    >"$LOG_DIR/build-gpu-tests.log" 2>&1 ||
    { tail -40 "$LOG_DIR/build-gpu-tests.log"; say "FAILED: the GPU tests do not build"; exit 1; }
else
  say "build ok"
fi

if ((DRY)); then export DISTILL_EXPECT_GPU=0; else export DISTILL_EXPECT_GPU=1; fi
step "ctest -L gpu" ctest --test-dir "$BUILD" -L gpu --output-on-failure -j 1
tests_rc=$?

# compute-sanitizer (where the machine lets it run: Firecracker yes, gVisor no): memcheck catches
# out-of-bounds and misaligned accesses the guard zones cannot see (reads), racecheck shared-memory
# races in the reduction kernels. Errors found fail the check; a sanitizer that cannot start is
# reported and skipped.
san_rc=0
CS="$(command -v compute-sanitizer || true)"
[[ -z "$CS" && -x /usr/local/cuda/bin/compute-sanitizer ]] && CS=/usr/local/cuda/bin/compute-sanitizer
if ((DRY)) || [[ -z "$CS" || ! -x "$BUILD/tests/test_cuda_ops" ]]; then
  say "compute-sanitizer: not run ($( ((DRY)) && echo "dry run" || echo "${CS:-not found}, or no test_cuda_ops"))"
else
  for tool in memcheck racecheck; do
    if (($(left) < 90)); then say "compute-sanitizer $tool: skipped, too little time left"; continue; fi
    step "compute-sanitizer $tool" "$CS" --tool "$tool" "$BUILD/tests/test_cuda_ops" \
      >"$LOG_DIR/sanitizer-$tool.log" 2>&1
    summary="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOG_DIR/sanitizer-$tool.log" | tail -1)"
    if [[ -z "$summary" ]]; then
      say "compute-sanitizer $tool: did not run here (log tail below); not counted"
      tail -5 "$LOG_DIR/sanitizer-$tool.log"
    elif [[ "$summary" =~ [^0-9]0\ (errors|hazards) ]]; then
      say "compute-sanitizer $tool: clean ($summary)"
    else
      say "compute-sanitizer $tool: FOUND PROBLEMS ($summary)"
      grep -E -m 20 '^========= (Invalid|Race|Error|ERROR)|at 0x|in .*kernel' "$LOG_DIR/sanitizer-$tool.log"
      san_rc=1
    fi
  done
fi

# The bf16 step benchmark (scripts/gpu_bench.py): distill against PyTorch bf16 autocast on this GPU,
# the cuBLAS bf16 GEMM rate, model FLOP utilisation; gpu_bench.json in $LOG_DIR. A failing benchmark
# is reported but does not fail the check; neither do the issue's goals (speedup >= 1.5, MFU >= 40%),
# which the JSON and the log state as met or not. A dry run rehearses it on the CPU, tiny shapes.
DISTILL_BIN="$BUILD/train/distill"
PY=python3
for cand in python3 "$ROOT/.venv/bin/python"; do
  if "$cand" -c "import torch" >/dev/null 2>&1; then PY="$cand"; break; fi
done
if [[ ! -x "$DISTILL_BIN" ]]; then
  say "bf16 step benchmark: skipped: no $DISTILL_BIN (an engine-only build has no distill program)"
elif (($(left) < 60)); then
  say "bf16 step benchmark: skipped, too little time left ($(left) s)"
else
  t=$(($(left) - 15))
  ((t > 300)) && t=300
  if ((DRY)); then
    say "bf16 step benchmark: dry run: GPU-only parts replaced by a CPU rehearsal with tiny shapes ($PY)"
    step "bench rehearsal (cpu, smoke)" nice -n 10 "$PY" scripts/gpu_bench.py --distill "$DISTILL_BIN" \
      --device cpu --smoke --timeout "$t" --out "$LOG_DIR/gpu_bench.json" ||
      say "bench rehearsal: FAILED (exit $?): fix scripts/gpu_bench.py before the GPU run"
  else
    step "bf16 step benchmark (cuda)" "$PY" scripts/gpu_bench.py --distill "$DISTILL_BIN" --device cuda \
      --timeout "$t" --out "$LOG_DIR/gpu_bench.json" || say "bf16 step benchmark: some part failed (exit $?)"
  fi
fi

say "done in $(($(date +%s) - T0)) s; logs in $LOG_DIR"
if ((tests_rc != 0 || build_rc != 0 || san_rc != 0)); then
  ((tests_rc != 0)) && say "FAILED: gpu tests (exit $tests_rc)"
  ((build_rc != 0)) && say "FAILED: the full build (see build.log)"
  ((san_rc != 0)) && say "FAILED: compute-sanitizer found problems (sanitizer-*.log)"
  exit 1
fi
say "PASSED"
exit 0
