#!/usr/bin/env bash
# Builds and runs tests/clang/clang_step.cpp with clang++ (exit 77 = skipped: no clang++, or no OpenMP runtime for it).
set -euo pipefail
src_dir=$1 work_dir=$2 eigen_dir=$3
clang=${CLANGXX:-$(command -v clang++ || true)}
if [ -z "$clang" ]; then
  echo "clang check skipped: clang++ not found on PATH"
  exit 77
fi
mkdir -p "$work_dir"
# clang's OpenMP runtime comes in its own package (libomp-dev): without it there is nothing to test.
printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' > "$work_dir/omp_probe.cpp"
if ! "$clang" -fopenmp "$work_dir/omp_probe.cpp" -o "$work_dir/omp_probe" 2> /dev/null; then
  echo "clang check skipped: $clang cannot build OpenMP programs (libomp-dev missing)"
  exit 77
fi
"$clang" -std=c++20 -O1 -fopenmp -Wall -Wextra -Wno-pass-failed -I"$src_dir/include" -isystem "$eigen_dir" \
  "$src_dir/tests/clang/clang_step.cpp" -o "$work_dir/clang_step"
"$work_dir/clang_step"
echo "clang check passed: $("$clang" --version | head -n 1)"
