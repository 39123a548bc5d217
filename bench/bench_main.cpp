// bench/bench_main.cpp: the shared main of the benchmark programs.
//
// 1. Gives LibTorch its best configuration before it loads (../shared/WORKLOADS.md): OpenBLAS is
//    told the real core type and ATen's idle OpenMP workers sleep instead of spinning. The program
//    re-executes itself once with these variables set and says so.
// 2. Runs the benchmarks, then prints each dsm row beside the libtorch and limit rows of the same
//    workload and thread count, with their ratio (the median over --benchmark_repetitions).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace {

void configure_peer_and_reexec(char** argv) {
  if (std::getenv("DSM_BENCH_ENV_READY")) return;
  std::string note;
  if (!std::getenv("OPENBLAS_CORETYPE")) {
    const char* core = __builtin_cpu_supports("avx512f") ? "SKYLAKEX" : (__builtin_cpu_supports("avx2") ? "HASWELL" : nullptr);
    if (core) setenv("OPENBLAS_CORETYPE", core, 1), note += std::string(" OPENBLAS_CORETYPE=") + core;
  }
  if (!std::getenv("OMP_WAIT_POLICY")) setenv("OMP_WAIT_POLICY", "PASSIVE", 1), note += " OMP_WAIT_POLICY=PASSIVE";
  setenv("DSM_BENCH_ENV_READY", "1", 1);
  std::fprintf(stderr, "dsm bench: peer configuration set before LibTorch loads:%s (re-executing)\n", note.empty() ? " (already set)" : note.c_str());
  execv("/proc/self/exe", argv);
  std::perror("dsm bench: re-exec failed, continuing in this process");
}

/// Console output as usual, plus a ratio table at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    // Keep every repetition's rate; the table shows their median.
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type == Run::RT_Aggregate) continue;
      const auto it = r.counters.find("items_per_second");
      const auto jt = r.counters.find("bytes_per_second");
      const double rate = it != r.counters.end() ? it->second.value : (jt != r.counters.end() ? jt->second.value : 0);
      samples_[r.run_name.str()].push_back(rate);
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    for (auto& [name, v] : samples_) {
      std::sort(v.begin(), v.end());
      rates_[name] = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    }
    std::printf("\n%-44s %14s %14s %9s %14s %9s\n", "workload (dsm row)", "dsm", "libtorch", "ratio", "limit", "% limit");
    for (const auto& [name, rate] : rates_) {
      const auto pos = name.find("/dsm");
      if (pos == std::string::npos) continue;
      const std::string peer = name.substr(0, pos) + "/libtorch" + name.substr(pos + 4);
      const std::string limit = name.substr(0, pos) + "/limit" + name.substr(pos + 4);
      std::printf("%-44s %14.4g", name.c_str(), rate);
      if (rates_.count(peer) && rates_[peer] > 0) std::printf(" %14.4g %8.2fx", rates_[peer], rate / rates_[peer]);
      else std::printf(" %14s %9s", "-", "-");
      if (rates_.count(limit) && rates_[limit] > 0) std::printf(" %14.4g %8.1f%%", rates_[limit], 100.0 * rate / rates_[limit]);
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, std::vector<double>> samples_;
  std::map<std::string, double> rates_;
};

}  // namespace

int main(int argc, char** argv) {
  configure_peer_and_reexec(argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
