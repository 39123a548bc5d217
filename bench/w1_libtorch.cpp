// W1 in LibTorch, as a competent user writes it: torch::matmul on contiguous tensors.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "libtorch_threads.hpp"

namespace {

void run(benchmark::State& state, torch::Dtype dtype) {
  dsm_bench::set_torch_threads(static_cast<int>(state.range(1)));
  const std::int64_t n = state.range(0);
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  for (auto _ : state) {
    auto c = torch::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
void W1_gemm_libtorch(benchmark::State& state) { run(state, torch::kFloat); }
void W1_gemm_bf16_libtorch(benchmark::State& state) { run(state, torch::kBFloat16); }
BENCHMARK(W1_gemm_libtorch)->Name("W1/gemm_fp32/libtorch")->ArgsProduct({{1024, 2048}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(W1_gemm_bf16_libtorch)->Name("W1/gemm_bf16/libtorch")->ArgsProduct({{1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
