#!/usr/bin/env bash
# scripts/test.sh — the one test command: install what is missing, configure, build, run ctest.
# README's "run the tests" and .ci/run both call this, so what a user runs is what CI runs.
#
# Usage: bash scripts/test.sh [extra ctest arguments, e.g. -L unit, -R bert]
# Environment:
#   DISTILL_BUILD_DIR     build folder (default: build)
#   DISTILL_BUILD_TYPE    CMake build type (default: Release)
#   DISTILL_CMAKE_ARGS    extra CMake arguments, space-separated (e.g. -DDISTILL_SANITIZE=ON)
#   DISTILL_JOBS          parallel build jobs and ctest jobs (default: the number of cores)
#   DISTILL_SKIP_INSTALL  1 = do not run scripts/install-deps.sh first
# Exit status: non-zero when the install, the configure, the build or any test fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${DISTILL_BUILD_DIR:-build}"
TYPE="${DISTILL_BUILD_TYPE:-Release}"
JOBS="${DISTILL_JOBS:-$(nproc)}"
read -r -a EXTRA <<<"${DISTILL_CMAKE_ARGS:-}"

if [[ "${DISTILL_SKIP_INSTALL:-0}" != 1 ]]; then
  bash scripts/install-deps.sh
fi

echo "test.sh: configure $BUILD ($TYPE${EXTRA:+ ${EXTRA[*]}})"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE="$TYPE" ${EXTRA[@]+"${EXTRA[@]}"}
echo "test.sh: build ($JOBS jobs)"
cmake --build "$BUILD" -j "$JOBS"
echo "test.sh: ctest --output-on-failure $*"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" "$@"
