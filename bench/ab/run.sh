#!/bin/bash
# bench/ab/run.sh: compares two versions of dsm on one workload's training step, in one process.
#   bench/ab/run.sh <rev-a> <rev-b> <workload 3|4|5|7> [threads] [rounds] [steps per round]
# A revision is anything git archive takes (a commit, a branch, HEAD) or "work" for the working
# tree. Example: bench/ab/run.sh HEAD~1 work 7 2 10 3
set -euo pipefail
if [[ $# -lt 3 ]]; then sed -n 2,5p "$0" >&2; exit 2; fi
if [[ ! $3 =~ ^[3457]$ ]]; then echo "run.sh: workload must be 3, 4, 5 or 7, got '$3'" >&2; exit 2; fi
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=${AB_DIR:-/tmp/dsm_ab}
rm -rf "$out" && mkdir -p "$out/a" "$out/b"
for v in a b; do
  rev=$([[ $v == a ]] && echo "$1" || echo "$2")
  if [[ $rev == work ]]; then cp -r "$root/include" "$out/$v/"; else git -C "$root" archive "$rev" include | tar -x -C "$out/$v"; fi
done
flags=(-std=c++20 -O3 -march=native -fopenmp $(pkg-config --cflags eigen3 2>/dev/null || echo -isystem /usr/include/eigen3) -DWORKLOAD="$3")
g++ "${flags[@]}" -I"$out/a/include" -Ddsm=dsm_a -DVARIANT=a -c "$root/bench/ab/variant.cpp" -o "$out/a.o" &
pid_a=$!
g++ "${flags[@]}" -I"$out/b/include" -Ddsm=dsm_b -DVARIANT=b -c "$root/bench/ab/variant.cpp" -o "$out/b.o" &
pid_b=$!
g++ -std=c++20 -O2 -c "$root/bench/ab/main.cpp" -o "$out/main.o"
wait "$pid_a"
wait "$pid_b"
g++ -fopenmp "$out/a.o" "$out/b.o" "$out/main.o" -o "$out/ab"
"$out/ab" "${4:-1}" "${5:-20}" "${6:-5}"
