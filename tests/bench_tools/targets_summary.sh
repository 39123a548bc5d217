#!/bin/bash
# bench/targets.sh's summary (the table the closing notes quote) on three hand-made passes whose
# medians, ratios and shares of the peak are worked out below; and its errors for bad input.
set -euo pipefail
src=$1 work=$2
mkdir -p "$work"
cat >"$work/pass_1.txt" <<'P'
peak threads:1 90
peak threads:2 180
row W3/forward_backward/dsm/threads:1/real_time 4000 3200 5000
row W7/train/dsm/threads:1/real_time 2000 1000 -
row W9/unknown/dsm/threads:1/real_time 1 1 -
P
cat >"$work/pass_2.txt" <<'P'
peak threads:1 100
peak threads:2 170
row W3/forward_backward/dsm/threads:1/real_time 3000 2500 4800
row W7/train/dsm/threads:1/real_time 2200 1600 -
P
cat >"$work/pass_3.txt" <<'P'
peak threads:1 95
row W3/forward_backward/dsm/threads:1/real_time 3600 3000 5200
row W7/train/dsm/threads:1/real_time 2100 1400 -
P
# W3: dsm median 3600, LibTorch 3000: 1.20x; per pass 1.25, 1.20, 1.20; limit median 5000: 72.0%;
# the peak is the highest reading, 100 GFLOP/s (180 at 2 threads): 1.3 x 3000 tokens/s x 18.9 MFLOP
# = 73.7 GFLOP/s, 74%; dsm 3600 x 18.9 = 68.0, 68%.
# W7: 2100 / 1400 = 1.50x; per pass 2.00, 1.375, 1.50; 1.5 x 1400 x 27.0 MFLOP = 56.7 GFLOP/s: 57%;
# dsm 2100 x 27.0 = 56.7: 57% too. W9 is no target's row and is left out.
expected='3 passes; FMA peak (the highest W0 reading of the passes): 100.0 GFLOP/s at 1 thread, 180.0 at 2

| row | dsm | LibTorch | ratio | per-pass ratios | target | target as % of the FMA peak | dsm as % of the peak | dsm as % of the limit row |
|---|---|---|---|---|---|---|---|---|
| W3/forward_backward/dsm/threads:1 | 3600 | 3000 | 1.20x | 1.20x-1.25x | 1.3x | 74% | 68% | 72.0% |
| W7/train/dsm/threads:1 | 2100 | 1400 | 1.50x | 1.38x-2.00x | 1.5x | 57% | 57% | - |'
got=$(bash "$src/bench/targets.sh" summarize "$work/pass_1.txt" "$work/pass_2.txt" "$work/pass_3.txt")
if [[ "$got" != "$expected" ]]; then
  echo "summary differs; expected:"; echo "$expected"; echo "got:"; echo "$got"; exit 1
fi

fails() {  # expected-message command...: the command must exit 2 and print the message
  local message=$1 out
  shift
  if out=$("$@" 2>&1); then echo "accepted: $*"; exit 1; fi
  [[ $out == *"$message"* ]] || { echo "'$*' said '$out', expected '$message'"; exit 1; }
}
printf 'peak threads:1 90\nrow W7/train/dsm/threads:1/real_time 2000 - -\n' >"$work/no_peer.txt"
fails "no target row has both a dsm and a LibTorch figure" bash "$src/bench/targets.sh" summarize "$work/no_peer.txt"
fails "no pass files given" bash "$src/bench/targets.sh" summarize
fails "cannot read '$work/missing.txt'" bash "$src/bench/targets.sh" summarize "$work/missing.txt"
fails "is missing (cmake --preset bench" bash "$src/bench/targets.sh" run 1 "$work/no_such_dir"
fails "passes must be a positive number, got '0'" bash "$src/bench/targets.sh" run 0
fails "targets.sh run [passes]" bash "$src/bench/targets.sh" walk
echo "targets.sh summary and errors: ok"
