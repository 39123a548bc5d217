#!/usr/bin/env bash
# Reports how long the umbrella header takes to compile at -O2 (STYLE.md: compile time is a feature).
set -euo pipefail
cxx=$1 src_dir=$2 work_dir=$3 eigen_dir=$4
mkdir -p "$work_dir"
start=$(date +%s%N)
"$cxx" -std=c++20 -O2 -fopenmp -I"$src_dir/include" -isystem "$eigen_dir" -c "$src_dir/tests/compile_time/umbrella.cpp" -o "$work_dir/umbrella.o"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "compile time of a TU including <dsm/dsm.hpp> at -O2: $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
# W8: one training step of the W7 MoE transformer (target: below the ~20 s of a <torch/torch.h> TU).
start=$(date +%s%N)
"$cxx" -std=c++20 -O2 -fopenmp -I"$src_dir/include" -isystem "$eigen_dir" -c "$src_dir/tests/compile_time/w8_step.cpp" -o "$work_dir/w8_step.o"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "W8: compile time of one W7 training step (<dsm/dsm.hpp>, TransformerLM, AdamW) at -O2: $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
