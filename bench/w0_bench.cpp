// W0: hardware limits. (a) a register-only FMA loop (AVX-512 when the CPU has it, else AVX2),
// (b) STREAM triad a = b + s * c on 3 arrays of 64 Mi floats. 1 and 2 threads.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <dsm/dsm.hpp>

#include "fma_limit.hpp"

namespace {

void W0_fma_limit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t iters = 20'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(dsm_bench::fma_all_threads(threads, iters));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations() * threads) * dsm_bench::fma_kernel_flops(iters)));  // FLOPs
  state.SetLabel("GFLOP/s = items_per_second / 1e9");
}
BENCHMARK(W0_fma_limit)->Name("W0/fma/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

void W0_triad_limit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t n = std::int64_t{64} << 20;
  auto a = dsm::Tensor<float>::empty({n}), b = dsm::Tensor<float>::full({n}, 1.f), c = dsm::Tensor<float>::full({n}, 2.f);
  float* pa = a.data();
  const float* pb = b.data();
  const float* pc = c.data();
  const float s = 3.f;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) pa[i] = 0.f;  // first touch by the threads that will use it
  for (auto _ : state) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 3 * n * static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(W0_triad_limit)->Name("W0/triad/limit")->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
