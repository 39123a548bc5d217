#!/usr/bin/env bash
# Builds and runs tests/clang/clang_step.cpp with clang++ (exit 77 = skipped: no clang++).
set -euo pipefail
src_dir=$1 work_dir=$2 eigen_dir=$3
clang=${CLANGXX:-$(command -v clang++ || true)}
if [ -z "$clang" ]; then
  echo "clang check skipped: clang++ not found on PATH"
  exit 77
fi
mkdir -p "$work_dir"
"$clang" -std=c++20 -O1 -fopenmp -Wall -Wextra -Wno-pass-failed -I"$src_dir/include" -isystem "$eigen_dir" \
  "$src_dir/tests/clang/clang_step.cpp" -o "$work_dir/clang_step"
"$work_dir/clang_step"
echo "clang check passed: $("$clang" --version | head -n 1)"
