#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer harnesses (tests/fuzz/, clang, ASan + UBSan + LeakSanitizer)
# in build-fuzz/ and run each one on a scratch copy of its committed seed corpus.
#
#   bash scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]   default 600 s each, every harness
#   bash scripts/fuzz.sh --smoke                              CI: 8 s each (about 60 s in all),
#                                                             libFuzzer seed 1 (repeatable)
#
# The budget is CPU seconds of the harness (user + system): libFuzzer is restarted on the grown
# corpus until the harness has had them (rounds), so a loaded machine does not shorten the run.
# Prints, per harness: CPU seconds, rounds, executions, executions per CPU second, the final
# corpus (units/bytes), coverage (edges/features), peak RSS and the verdict; a crash, leak, sanitizer report, timeout or out-of-memory stops that harness
# (libFuzzer exits non-zero) and its reproducer is kept in the run folder. Exits 1 when any
# harness failed. Runs one harness at a time, at nice 19, one OpenMP thread.
#
# Environment: DISTILL_FUZZ_BUILD (default build-fuzz), DISTILL_FUZZ_OUT (default
# $DISTILL_FUZZ_BUILD/fuzz-run: the grown corpora and any crash inputs, never committed),
# DISTILL_JOBS (build jobs, default nproc), DISTILL_FUZZ_ARGS (extra libFuzzer flags),
# DISTILL_FUZZ_BIN (run the harnesses found there and build nothing: e.g. a copy of
# build-fuzz/tests/fuzz kept apart for a long run while build-fuzz is rebuilt).
# Reproduce a crash: build-fuzz/tests/fuzz/<harness> <crash file>.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${DISTILL_FUZZ_BUILD:-build-fuzz}"
OUT="${DISTILL_FUZZ_OUT:-$BUILD/fuzz-run}"
JOBS="${DISTILL_JOBS:-$(nproc)}"
ALL=(fuzz_config fuzz_safetensors fuzz_hf_config_json fuzz_vocab_tokenizer fuzz_text_reader
     fuzz_h5_data fuzz_h5_ckpt)

die() { printf 'fuzz.sh: error: %s\n' "$*" >&2; exit 2; }

SECONDS_EACH=600
SEED=()
TIMEOUT=30 # seconds for one input: a hang (the slowest seed takes a fraction of a second)
if [[ ${1:-} == --smoke ]]; then
  SECONDS_EACH=8
  SEED=(-seed=1) # the same mutations on every CI run: a smoke failure is a change, not luck
  TIMEOUT=5      # HDF5's own hangs on damaged files cost CI 5 s each, not 30
  shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  SECONDS_EACH=$1
  shift
elif [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,/^set -uo/p' "$0" | sed '$d'
  exit 0
fi
HARNESSES=("$@")
((${#HARNESSES[@]})) || HARNESSES=("${ALL[@]}")
for h in "${HARNESSES[@]}"; do
  [[ " ${ALL[*]} " == *" $h "* ]] || die "unknown harness '$h', expected one of: ${ALL[*]}"
done

BIN="${DISTILL_FUZZ_BIN:-}"
if [[ -n $BIN ]]; then
  echo "fuzz.sh: running the harnesses in $BIN (DISTILL_FUZZ_BIN: nothing is built)"
else
BIN="$BUILD/tests/fuzz"
command -v clang >/dev/null || die "clang not found (Debian: bash scripts/install-deps.sh installs it)"
echo "fuzz.sh: building ${HARNESSES[*]} in $BUILD (clang, -DDISTILL_FUZZ=ON)"
mkdir -p "$BUILD"
CC=clang CXX=clang++ nice -n 10 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDISTILL_FUZZ=ON \
  -DDISTILL_CUDA=OFF -DDISTILL_MPI=OFF >"$BUILD/fuzz-configure.log" 2>&1 \
  || { cat "$BUILD/fuzz-configure.log"; die "cmake configure failed"; }
nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target "${HARNESSES[@]}" >"$BUILD/fuzz-build.log" 2>&1 \
  || { tail -40 "$BUILD/fuzz-build.log"; die "build failed (log: $BUILD/fuzz-build.log)"; }
fi

export OMP_NUM_THREADS=1
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$ROOT/tests/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# CPU seconds (user + system) of this shell's finished children: `times` must run in this shell
# (a $(...) subshell has children of its own), so it writes to a file that cpu_read reads.
TIMES_FILE="$(mktemp)"
# The harnesses' scratch folders (fuzz_util.h) go under one folder of this run, in RAM where
# /dev/shm exists, removed at the end: a harness that stops on a finding exits without its own
# clean-up.
SCRATCH="$(mktemp -d /dev/shm/distill-fuzz-run-XXXXXX 2>/dev/null || mktemp -d)"
export DISTILL_FUZZ_TMPDIR="$SCRATCH"
trap 'rm -f "$TIMES_FILE"; rm -rf "$SCRATCH"' EXIT
cpu_mark() { times >"$TIMES_FILE"; }
cpu_read() {
  awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$TIMES_FILE"
}

# Where a finding happened, from a libFuzzer log: the first stack frame of its first report that
# is ours (symbolised with a source file: our code and the harness) or HDF5's (libhdf5) decides;
# frames of the sanitizers' interceptors (strdup, memcpy, malloc), of libFuzzer and of libc are
# passed over. "hdf5": a crash, leak, overlapping memcpy, hang or giant allocation inside the HDF5
# library on a damaged file (inside H5Fopen/H5Dread/H5Aread/H5Aexists, where our validators cannot
# step in); "ours" otherwise, including a report without a stack (an RSS limit), which fails.
where_found() { # where_found LOG
  awk '/^ *#[0-9]+ 0x[0-9a-f]+ / {
         if ($0 ~ /libhdf5/) { print "hdf5"; found = 1; exit }
         if ($3 == "in" && $5 ~ /^\//) { print "ours"; found = 1; exit }
       }
       END { if (!found) print "ours" }' "$1"
}

mkdir -p "$OUT"
declare -a ROWS=()
failed=0
for h in "${HARNESSES[@]}"; do
  corpus="$OUT/corpus/$h" art="$OUT/artifacts/$h/" log="$OUT/$h.log"
  rm -rf "$corpus" "$art"
  mkdir -p "$corpus" "$art"
  cp tests/fuzz/corpus/"$h"/* "$corpus"/
  dict=()
  [[ -f tests/fuzz/$h.dict ]] && dict=(-dict="tests/fuzz/$h.dict")
  echo
  echo "fuzz.sh: $h for ${SECONDS_EACH} CPU s (log: $log)"
  # HDF5 is built without frame pointers: the HDF5 harnesses unwind malloc stacks the slow way so
  # that the library-leak suppressions of tests/fuzz/lsan.supp can see HDF5's frames.
  unwind=""
  [[ $h == fuzz_h5_* ]] && unwind=":fast_unwind_on_malloc=0"
  : >"$log"
  cpu_mark
  c0=$(cpu_read)
  cpu=0 execs=0 rc=0 rounds=0 lib=0
  round="$OUT/$h.round.log"
  # The budget is CPU time (at nice 19 on a shared machine a wall-clock second is less): libFuzzer
  # runs again on the grown corpus for what is left until the harness has had its CPU seconds.
  while ((rc == 0 && cpu < SECONDS_EACH)); do
    left=$((SECONDS_EACH - cpu))
    ((left < 2)) && left=2
    rounds=$((rounds + 1))
    # -rss_limit_mb: the validators read at most a tiny model; 2 GiB is a runaway allocation.
    # shellcheck disable=SC2086
    ASAN_OPTIONS="$ASAN_OPTIONS$unwind" nice -n 19 "$BIN/$h" -max_total_time="$left" \
      -print_final_stats=1 -rss_limit_mb=2048 -timeout="$TIMEOUT" -artifact_prefix="$art" "${dict[@]}" \
      "${SEED[@]}" ${DISTILL_FUZZ_ARGS:-} "$corpus" >"$round" 2>&1
    rc=$?
    cat "$round" >>"$log"
    cpu_mark
    c1=$(cpu_read)
    cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", b - a }')
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$round" | tail -1)
    [[ -z $n ]] && n=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$round" | tail -1)
    execs=$((execs + ${n:-0}))
    if ((rc != 0)) && [[ $(where_found "$round") == hdf5 ]]; then
      # A crash, leak or giant allocation inside the HDF5 library itself, on a damaged file: its
      # input is kept apart and counted in the summary (not ours to fix); fuzzing goes on.
      lib=$((lib + 1))
      mkdir -p "$art/hdf5"
      find "$art" -maxdepth 1 -type f -exec mv {} "$art/hdf5/" \;
      echo "fuzz.sh: $h: round $rounds stopped inside libhdf5 ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+' "$round")); going on"
      rc=0
    fi
  done
  rate=$(awk -v e="$execs" -v c="$cpu" 'BEGIN { printf "%.0f", (c > 0 ? e / c : 0) }')
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | sort -n | tail -1)
  # the corpus as libFuzzer holds it at the end (units/bytes, minimised: the folder also keeps
  # the inputs it replaced), and its coverage (edges, features)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | awk '{ print $2 "/" $4 }')
  if ((rc == 0)); then
    verdict=ok
    ((lib)) && verdict="ok; $lib stop(s) inside libhdf5 (inputs in $art""hdf5)"
  else
    failed=1
    verdict="FAILED (exit $rc): $(ls "$art" | head -3 | tr '\n' ' ')"
    grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|fuzz_[a-z0-9_]+:' "$log"
    tail -5 "$log"
  fi
  line=$(printf '%-22s %6s %7s %12s %8s %12s %11s %6s MB  %s' "$h" "$cpu" "$rounds" "$execs" \
         "$rate" "${corp:-?}" "${cov:-?}" "${rss:-?}" "$verdict")
  echo "$line"
  ROWS+=("$line")
done

echo
echo "fuzz.sh: summary (${SECONDS_EACH} CPU s per harness; corpora and any crash inputs in $OUT)"
printf '%-22s %6s %7s %12s %8s %12s %11s %9s  %s\n' harness cpu_s rounds executions exec/cpu_s corpus cov/ft \
  peak_rss verdict
printf '%s\n' "${ROWS[@]}"
exit "$failed"
