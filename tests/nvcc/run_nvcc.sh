#!/usr/bin/env bash
# Compiles and links tests/nvcc/core_expr.cu with nvcc (no GPU needed). Exit 77 = skipped.
set -euo pipefail
src_dir=$1
work_dir=$2
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
if [ ! -x "$nvcc" ]; then
  nvcc=$(command -v nvcc || true)
fi
if [ -z "$nvcc" ]; then
  echo "nvcc check skipped: nvcc not found (looked at /usr/local/cuda/bin/nvcc and PATH)"
  exit 77
fi
mkdir -p "$work_dir"
"$nvcc" -std=c++20 -O2 --expt-relaxed-constexpr -I"$src_dir/include" \
  "$src_dir/tests/nvcc/core_expr.cu" -o "$work_dir/core_expr"
echo "nvcc check passed: $("$nvcc" --version | tail -n 1)"
