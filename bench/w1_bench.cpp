// W1: dense GEMM, row-major fp32, M = N = K = 1024 and 2048; bf16 inputs with fp32 accumulation,
// and fp32 inputs under bf16 autocast.
// dsm: dsm::matmul on tensors (output allocation included, served by the caching allocator).
// limit: Eigen 3.4's GEMM called directly on preallocated buffers (the W1 reference of WORKLOADS.md).
#include <benchmark/benchmark.h>

#include <dsm/dsm.hpp>

namespace {

void set_threads(benchmark::State& state) { dsm::set_num_threads(static_cast<int>(state.range(1))); }

void W1_gemm_dsm(benchmark::State& state) {
  set_threads(state);
  const std::int64_t n = state.range(0);
  dsm::Generator g{1};
  auto a = dsm::Tensor<float>::randn({n, n}, g), b = dsm::Tensor<float>::randn({n, n}, g);
  for (auto _ : state) {
    auto c = dsm::matmul(a, b);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK(W1_gemm_dsm)->Name("W1/gemm_fp32/dsm")->ArgsProduct({{1024, 2048}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

void W1_gemm_limit(benchmark::State& state) {
  set_threads(state);
  const std::int64_t n = state.range(0);
  dsm::Generator g{1};
  auto a = dsm::Tensor<float>::randn({n, n}, g), b = dsm::Tensor<float>::randn({n, n}, g), c = dsm::Tensor<float>::empty({n, n});
  for (auto _ : state) {
    dsm::cpu::eigen_gemm<float>(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK(W1_gemm_limit)->Name("W1/gemm_fp32/limit")->ArgsProduct({{1024, 2048}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

void W1_gemm_bf16_dsm(benchmark::State& state) {
  set_threads(state);
  const std::int64_t n = state.range(0);
  dsm::Generator g{1};
  auto a = dsm::Tensor<float>::randn({n, n}, g).to<dsm::bf16>(), b = dsm::Tensor<float>::randn({n, n}, g).to<dsm::bf16>();
  for (auto _ : state) {
    auto c = dsm::matmul(a, b);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK(W1_gemm_bf16_dsm)->Name("W1/gemm_bf16/dsm")->ArgsProduct({{1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

/// fp32 tensors under bf16 autocast: the operands are rounded to bf16 while being packed.
void W1_gemm_autocast_dsm(benchmark::State& state) {
  set_threads(state);
  const std::int64_t n = state.range(0);
  dsm::Generator g{1};
  auto a = dsm::Tensor<float>::randn({n, n}, g), b = dsm::Tensor<float>::randn({n, n}, g);
  dsm::amp::autocast ac(dsm::amp::Precision::bf16);
  for (auto _ : state) {
    auto c = dsm::matmul(a, b);
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK(W1_gemm_autocast_dsm)->Name("W1/gemm_fp32_autocast_bf16/dsm")->ArgsProduct({{1024}, {1, 2}})->ArgNames({"n", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
