// bench/bench_main.cpp: the shared main of the benchmark programs.
//
// Each library runs in its own best configuration, in its own process:
// 1. This process runs the dsm and limit rows in the environment it was given (OpenMP's defaults:
//    idle workers spin a while before they sleep).
// 2. A second process, this program again, runs the libtorch rows with the peer's best
//    configuration set before LibTorch loads (../shared/WORKLOADS.md): OpenBLAS is told the real
//    core type (over any OPENBLAS_CORETYPE the machine sets), glibc's malloc keeps freed memory
//    instead of returning it to the kernel page by page, and ATen's idle OpenMP workers sleep at
//    once (OMP_WAIT_POLICY=PASSIVE; spinning ones compete with OpenBLAS's own threads and made
//    LibTorch's 2-thread W7 step 2x slower).
//    Under that policy every parallel region of dsm's has to wake a sleeping thread, which made
//    its 2-thread W7 step 1.4x slower; one environment for both would handicap one of them.
// 3. Prints each dsm row beside the libtorch and limit rows of the same workload and thread
//    count, with their ratio (medians over --benchmark_repetitions). Where LibTorch has several
//    versions of a workload (W4: its module and a hand-written one), the faster one is the peer.
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr const char* role_variable = "DSM_BENCH_ROLE";        // unset: main process; "list" or "peer"
constexpr const char* samples_variable = "DSM_BENCH_SAMPLES";  // where the peer process writes its rates

/// Runs this program again with args and extra environment entries ("NAME=value"); returns its
/// standard output when capture is set. Exits when it cannot be started or fails.
std::string run_self(const std::vector<std::string>& args, const std::vector<std::string>& extra_env, bool capture) {
  std::vector<std::string> env_strings(extra_env);
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    const bool overridden = std::any_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) { return x.compare(0, name.size() + 1, name + "=") == 0; });
    if (!overridden) env_strings.push_back(entry);
  }
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int out[2] = {-1, -1};
  if (capture && pipe(out) != 0) std::perror("dsm bench: pipe"), std::exit(1);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) std::perror("dsm bench: fork"), std::exit(1);
  if (pid == 0) {
    if (capture) dup2(out[1], STDOUT_FILENO), close(out[0]), close(out[1]);
    execve("/proc/self/exe", argv.data(), envp.data());
    std::perror("dsm bench: exec");
    _exit(127);
  }
  std::string text;
  if (capture) {
    close(out[1]);
    char buf[4096];
    for (ssize_t got; (got = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(got));
    close(out[0]);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::fprintf(stderr, "dsm bench: the %s process failed\n", capture ? "listing" : "peer"), std::exit(1);
  return text;
}

/// A filter matching exactly these benchmark names.
std::string exact_filter(const std::vector<std::string>& names) {
  std::string f = "--benchmark_filter=^(";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i) f += '|';
    for (const char c : names[i]) {
      if (std::strchr("\\^$.|?*+()[]{}", c)) f += '\\';
      f += c;
    }
  }
  return f + ")$";
}

/// The peer's best configuration (see the top of this file).
std::vector<std::string> peer_environment(const std::string& samples_path) {
  std::vector<std::string> env{std::string(role_variable) + "=peer", std::string(samples_variable) + "=" + samples_path};
  // The kernel for this CPU's widest vectors, whatever OPENBLAS_CORETYPE the machine sets: some
  // environments pin it to HASWELL for old OpenBLAS builds that misdetect new CPUs, which halves
  // LibTorch's fp32 GEMM on an AVX-512 core (W1 n = 1024, 1 thread: 101 against 190 GFLOP/s on
  // a Zen 5 core, same results to 1e-6). DSM_BENCH_PEER_CORETYPE names another.
  const char* core = std::getenv("DSM_BENCH_PEER_CORETYPE");
  if (!core) core = __builtin_cpu_supports("avx512f") ? "SKYLAKEX" : (__builtin_cpu_supports("avx2") ? "HASWELL" : nullptr);
  if (core) env.push_back(std::string("OPENBLAS_CORETYPE=") + core);
  // glibc keeps freed memory rather than unmapping it: LibTorch frees and allocates its
  // activations every step, and each page handed back to the kernel faults in again on the next
  // (on a virtual machine, a costly trap: 16% of its 1-thread W7 step, which ran 3.5x faster
  // with these). PyTorch deployments get the same from jemalloc or tcmalloc. dsm's rows need
  // none: its caching allocator reuses its blocks.
  for (const char* tuning : {"MALLOC_MMAP_THRESHOLD_=1073741824", "MALLOC_TRIM_THRESHOLD_=4294967296", "MALLOC_TOP_PAD_=268435456"})
    env.push_back(tuning);
  env.push_back(std::string("OMP_WAIT_POLICY=") + (std::getenv("DSM_BENCH_PEER_WAIT_POLICY") ? std::getenv("DSM_BENCH_PEER_WAIT_POLICY") : "PASSIVE"));
  return env;
}

/// Console output as usual; keeps every repetition's rate for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const auto it = r.counters.find("items_per_second");
      const auto jt = r.counters.find("bytes_per_second");
      const double rate = it != r.counters.end() ? it->second.value : (jt != r.counters.end() ? jt->second.value : 0);
      // With --benchmark_report_aggregates_only only the aggregates arrive: the median stands for its runs.
      if (r.run_type != Run::RT_Aggregate) samples_[r.run_name.str()].push_back(rate);
      else if (r.aggregate_name == "median") reported_medians_[r.run_name.str()] = rate;
    }
    for (const auto& [name, rate] : reported_medians_)
      if (!samples_.count(name)) samples_[name].push_back(rate);
    reported_medians_.clear();
  }
  void write_samples(const std::string& path) const {
    std::ofstream out(path);
    for (const auto& [name, v] : samples_)
      for (const double x : v) out << name << '\t' << x << '\n';
  }
  void read_samples(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      const auto tab = line.find('\t');
      if (tab != std::string::npos) samples_[line.substr(0, tab)].push_back(std::strtod(line.c_str() + tab + 1, nullptr));
    }
  }
  void print_table() {
    std::map<std::string, double> rates;
    for (auto& [name, v] : samples_) {
      std::sort(v.begin(), v.end());
      rates[name] = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    }
    std::printf("\n%-44s %14s %14s %9s %14s %9s\n", "workload (dsm row)", "dsm", "libtorch", "ratio", "limit", "% limit");
    for (const auto& [name, rate] : rates) {
      const auto pos = name.find("/dsm");
      if (pos == std::string::npos) continue;
      const std::string prefix = name.substr(0, pos), suffix = name.substr(pos + 4);
      const std::string limit = prefix + "/limit" + suffix;
      // The peer is LibTorch's best version of the workload: "libtorch" or a variant of it
      // ("libtorch_manual": W4's hand-written attention), whichever ran faster.
      const std::string head = prefix + "/libtorch";
      std::string peer, variant;
      for (const auto& [other, other_rate] : rates) {
        if (other.size() < head.size() + suffix.size() || other.compare(0, head.size(), head) != 0 ||
            other.compare(other.size() - suffix.size(), suffix.size(), suffix) != 0)
          continue;
        const std::string v = other.substr(head.size(), other.size() - head.size() - suffix.size());
        if ((v.empty() || v[0] == '_') && other_rate > 0 && (peer.empty() || other_rate > rates[peer])) peer = other, variant = v;
      }
      std::printf("%-44s %14.4g", name.c_str(), rate);
      if (!peer.empty()) std::printf(" %14.4g %8.2fx", rates[peer], rate / rates[peer]);
      else std::printf(" %14s %9s", "-", "-");
      if (rates.count(limit) && rates[limit] > 0) std::printf(" %14.4g %8.1f%%", rates[limit], 100.0 * rate / rates[limit]);
      else if (!variant.empty()) std::printf(" %14s %9s", "", "");
      if (!variant.empty()) std::printf("  (peer: libtorch%s)", variant.c_str());
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, std::vector<double>> samples_;
  std::map<std::string, double> reported_medians_;
};

bool is_peer_row(const std::string& name) { return name.find("/libtorch") != std::string::npos; }

}  // namespace

int main(int argc, char** argv) {
  const char* role = std::getenv(role_variable);
  std::vector<std::string> args(argv, argv + argc);
  const bool listing = std::any_of(args.begin(), args.end(), [](const std::string& a) { return a.rfind("--benchmark_list_tests", 0) == 0; });
  if (role || listing) {  // a listing, or the peer's process: run as asked
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    if (const char* path = std::getenv(samples_variable)) reporter.write_samples(path);
    benchmark::Shutdown();
    return 0;
  }

  // The main process: which benchmarks does the command line select, and whose are they?
  std::vector<std::string> list_args{args[0], "--benchmark_list_tests=true"};
  for (std::size_t i = 1; i < args.size(); ++i)
    if (args[i].rfind("--benchmark_filter=", 0) == 0) list_args.push_back(args[i]);
  std::vector<std::string> own, peer;
  std::istringstream names(run_self(list_args, {std::string(role_variable) + "=list"}, true));
  for (std::string name; std::getline(names, name);)
    if (!name.empty()) (is_peer_row(name) ? peer : own).push_back(name);
  auto with_filter = [&](const std::vector<std::string>& selected) {
    std::vector<std::string> a;
    for (const auto& x : args)
      if (x.rfind("--benchmark_filter=", 0) != 0) a.push_back(x);
    a.push_back(exact_filter(selected));
    return a;
  };

  RatioReporter reporter;
  if (!own.empty()) {
    std::vector<std::string> own_args = with_filter(own);
    std::vector<char*> own_argv;
    for (auto& a : own_args) own_argv.push_back(a.data());
    int own_argc = static_cast<int>(own_argv.size());
    own_argv.push_back(nullptr);
    benchmark::Initialize(&own_argc, own_argv.data());
    if (benchmark::ReportUnrecognizedArguments(own_argc, own_argv.data())) return 1;
    benchmark::RunSpecifiedBenchmarks(&reporter);
  }
  if (!peer.empty()) {
    char path[] = "/tmp/dsm_bench_peer_XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return std::perror("dsm bench: mkstemp"), 1;
    close(fd);
    std::fprintf(stderr, "dsm bench: the libtorch rows run in a second process with the peer's configuration\n");
    run_self(with_filter(peer), peer_environment(path), false);
    reporter.read_samples(path);
    unlink(path);
  }
  reporter.print_table();
  benchmark::Shutdown();
  return 0;
}
