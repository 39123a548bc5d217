#!/usr/bin/env bash
# Reports how long the umbrella header and W8 (one training step of the W7 model) take to compile
# at -O2 (STYLE.md: compile time is a feature). With the dsm::precompiled library as 5th argument,
# W8 is compiled a second time against it (DSM_PRECOMPILED: the heavy code declared extern), and
# both programs are linked and run: their losses must agree, so the extern declarations, the
# library's definitions and the header-only build are checked to be the same code.
set -euo pipefail
cxx=$1 src_dir=$2 work_dir=$3 eigen_dir=$4 precompiled_lib=${5:-}
mkdir -p "$work_dir"
flags=(-std=c++20 -O2 -fopenmp -I"$src_dir/include" -isystem "$eigen_dir")

timed_compile() {  # label source object [extra flags...]: compiles and prints the wall time
  local label=$1 src=$2 obj=$3
  shift 3
  local start ms
  start=$(date +%s%N)
  "$cxx" "${flags[@]}" "$@" -c "$src" -o "$obj"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  echo "$label: $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
}

timed_compile "compile time of a TU including <dsm/dsm.hpp> at -O2" "$src_dir/tests/compile_time/umbrella.cpp" "$work_dir/umbrella.o"
# W8 target: below the ~20 s of a <torch/torch.h> TU.
w8=$src_dir/tests/compile_time/w8_step.cpp
timed_compile "W8: compile time of one W7 training step (<dsm/dsm.hpp>, TransformerLM, AdamW) at -O2" "$w8" "$work_dir/w8_step.o"
"$cxx" -fopenmp "$work_dir/w8_step.o" -o "$work_dir/w8_step"
header_only=$("$work_dir/w8_step")
echo "W8 header-only: loss and loss after the step $header_only"
[ -n "$precompiled_lib" ] || exit 0

timed_compile "W8 with dsm::precompiled (its float code compiled once in the library) at -O2" "$w8" "$work_dir/w8_step_pre.o" -DDSM_PRECOMPILED=1
"$cxx" -fopenmp "$work_dir/w8_step_pre.o" "$precompiled_lib" -o "$work_dir/w8_step_pre"
# The heavy code must come from the library, not from the TU: no definition of flash_attention.
defines_flash() { nm -C --defined-only "$1" | grep -c "flash_attention<float" || true; }
if [ "$(defines_flash "$work_dir/w8_step.o")" = 0 ] || [ "$(defines_flash "$work_dir/w8_step_pre.o")" != 0 ]; then
  echo "W8: DSM_PRECOMPILED did not keep the library's instantiations out of the TU"; exit 1
fi
precompiled=$("$work_dir/w8_step_pre")
echo "W8 with dsm::precompiled: loss and loss after the step $precompiled"
# The same code compiled in other translation units: equal up to floating-point contraction.
awk -v a="$header_only" -v b="$precompiled" 'BEGIN {
  split(a, x, " "); split(b, y, " ")
  for (i = 1; i <= 2; ++i) {
    d = x[i] - y[i]; if (d < 0) d = -d
    if (!(x[i] > 0) || d > 1e-5 * x[i]) { print "W8: the two builds disagree: " a " vs " b; exit 1 }
  } }'
