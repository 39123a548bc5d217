#!/bin/bash
# bench/targets.sh: the issues' speed targets, measured the way docs/performance.md reports them.
#
#   bench/targets.sh run [passes] [bench-dir] [out-dir]   # default 5 passes, build/bench/bench, a temp dir
#   bench/targets.sh summarize pass-file...                # the table again from saved passes
#
# A pass runs the target rows of W3, W4, W5 and W7 (each program's dsm rows, then its LibTorch
# rows in a process of their own; medians of 5 repetitions a row) and W0's FMA limit, a few
# minutes in all. On a shared machine one pass proves little (LibTorch's rows move by 15-40%
# from one hour to the next), so the summary gives, per row: the median over the passes of each
# library's medians, the ratio of those medians, the range of the per-pass ratios, the issue's
# target, and what the target asks of this CPU: the rate it demands (target x LibTorch's median)
# times the workload's useful FLOPs, as a share of the FMA peak (the highest W0 reading of the
# passes: a lower one means another tenant had a core for that half second), beside dsm's share.
# A target above what the GEMM alone reaches on these shapes (about 90%) cannot be met on this
# machine by any step that also does other work.
# Needs the bench build: cmake --preset bench && cmake --build --preset bench.
set -euo pipefail

# name-pattern target-ratio MFLOP-per-unit (useful FLOPs: W3 counts the expert GEMMs, W4 the
# causal scores once, W5 a sentence's GEMMs, W7 every product of the step; docs/performance.md)
targets() {
  cat <<'EOF'
W3/forward_backward/dsm/threads:1 1.3 18.9
W3/forward_backward/dsm/threads:2 1.3 18.9
W4/forward_backward/dsm/threads:1 1.5 7.2
W4/forward_backward/dsm/threads:2 1.5 7.2
W5/train/dsm/threads:1 2.5 44.7
W5/train/dsm/threads:2 2.5 44.7
W5/decode/dsm/threads:1 2.5 0
W5/decode/dsm/threads:2 2.5 0
W7/train/dsm/threads:1 1.5 27.0
W7/train/dsm/threads:2 2.0 27.0
EOF
}

run_pass() {  # bench-dir out-file
  local dir=$1 out=$2 strip='s/\x1b\[[0-9;]*m//g'
  : >"$out"
  # W0's median lines, "peak threads:N GFLOP/s"
  "$dir/dsm_bench_w0" --benchmark_filter='W0/fma/limit' --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>&1 |
    sed "$strip" | awk '/W0\/fma\/limit\/threads:[0-9]+\/real_time_median/ {
      for (i = 1; i <= NF; ++i) if ($i ~ /G\/s$/) { sub(/G\/s$/, "", $i); split($1, p, "/"); print "peak", p[4], $i }
    }' >>"$out"
  local spec
  # each program's ratio table, "row NAME DSM LIBTORCH LIMIT" (LIMIT "-" where there is none)
  for spec in "w3 W3/forward_backward/(dsm|limit|libtorch)/" "w4 W4/forward_backward/(dsm|libtorch|libtorch_manual)/" \
              "w5 W5/(train|decode)/" "w7 W7/train/(dsm|libtorch)/"; do
    "$dir/dsm_bench_${spec%% *}" --benchmark_filter="${spec#* }" --benchmark_repetitions=5 2>&1 | sed "$strip" |
      awk '/^workload \(dsm row\)/ { table = 1; next }
           table && NF >= 4 && $1 ~ /\/dsm\// { print "row", $1, $2, $3, ($5 ~ /^[0-9.e+]+$/ ? $5 : "-") }' >>"$out"
  done
}

summarize() {  # pass files
  targets | awk -v passes="$#" '
    function highest(list,   n, a, i, m) {
      n = split(list, a, " ")
      for (i = 1; i <= n; ++i) if (i == 1 || a[i] + 0 > m) m = a[i] + 0
      return m
    }
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    FNR == NR { target[$1] = $2; mflop[$1] = $3; order[++rows] = $1; next }
    $1 == "peak" { peak[$2] = peak[$2] " " $3; next }
    $1 == "row" {
      name = $2; sub(/\/real_time$/, "", name)
      if (!(name in target) || $4 + 0 <= 0) next
      dsm[name] = dsm[name] " " $3; peer[name] = peer[name] " " $4
      r = $3 / $4
      if (!(name in lo) || r < lo[name]) lo[name] = r
      if (!(name in hi) || r > hi[name]) hi[name] = r
      if ($5 != "-") limit[name] = limit[name] " " $5
    }
    END {
      printf "%d passes; FMA peak (the highest W0 reading of the passes): %.1f GFLOP/s at 1 thread, %.1f at 2\n\n",
             passes, highest(peak["threads:1"]), highest(peak["threads:2"])
      printf "| row | dsm | LibTorch | ratio | per-pass ratios | target | target as %% of the FMA peak | dsm as %% of the peak |"
      print " dsm as % of the limit row |"
      print "|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= rows; ++i) {
        name = order[i]
        if (!(name in dsm)) continue
        d = median(dsm[name]); p = median(peer[name])
        threads = parts[split(name, parts, "/")]
        known = mflop[name] > 0 && peak[threads] != ""
        ask = known ? sprintf("%.0f%%", 100 * target[name] * p * mflop[name] / 1000 / highest(peak[threads])) : "-"
        own = known ? sprintf("%.0f%%", 100 * d * mflop[name] / 1000 / highest(peak[threads])) : "-"
        lim = name in limit ? sprintf("%.1f%%", 100 * d / median(limit[name])) : "-"
        printf "| %s | %.0f | %.0f | %.2fx | %.2fx-%.2fx | %.1fx | %s | %s | %s |\n",
               name, d, p, d / p, lo[name], hi[name], target[name], ask, own, lim
        ++printed
      }
      if (!printed) {
        print "targets.sh: no target row has both a dsm and a LibTorch figure (was the bench build configured with LibTorch?)" > "/dev/stderr"
        exit 1
      }
    }' /dev/stdin "$@"
}

case "${1:-}" in
  run)
    passes=${2:-5} dir=${3:-build/bench/bench} out=${4:-$(mktemp -d)}
    [[ $passes =~ ^[1-9][0-9]*$ ]] || { echo "targets.sh: passes must be a positive number, got '$passes'" >&2; exit 2; }
    for w in w0 w3 w4 w5 w7; do
      [[ -x $dir/dsm_bench_$w ]] || { echo "targets.sh: $dir/dsm_bench_$w is missing (cmake --preset bench && cmake --build --preset bench)" >&2; exit 2; }
    done
    mkdir -p "$out"
    files=()
    for ((i = 1; i <= passes; ++i)); do
      echo "pass $i of $passes ($(date +%H:%M:%S)) -> $out/pass_$i.txt" >&2
      run_pass "$dir" "$out/pass_$i.txt"
      files+=("$out/pass_$i.txt")
    done
    summarize "${files[@]}"
    ;;
  summarize)
    shift
    [[ $# -gt 0 ]] || { echo "targets.sh summarize: no pass files given" >&2; exit 2; }
    for f in "$@"; do [[ -r $f ]] || { echo "targets.sh summarize: cannot read '$f'" >&2; exit 2; }; done
    summarize "$@"
    ;;
  *) sed -n 4,5p "$0" >&2; exit 2 ;;
esac
