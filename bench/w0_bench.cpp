// W0: hardware limits. (a) a register-only FMA loop (AVX-512 when the CPU has it, else AVX2),
// (b) STREAM triad a = b + s * c on 3 arrays of 64 Mi floats. 1 and 2 threads.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <dsm/dsm.hpp>

namespace {

// Independent accumulator chains hide the FMA latency; nothing touches memory.
template <class V, int Chains>
inline void fma_chains(V (&acc)[Chains], V x, V y, std::int64_t iters);

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int lanes = 16;
inline Vec vset(float v) { return _mm512_set1_ps(v); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(Vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int lanes = 8;
inline Vec vset(float v) { return _mm256_set1_ps(v); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(Vec v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#else
#error "W0 needs AVX2+FMA or AVX-512 (build with -march=native)"
#endif

constexpr int chains = 12;

float fma_kernel(std::int64_t iters) {
  Vec acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = vset(static_cast<float>(i));
  const Vec x = vset(0.999999f), y = vset(1e-7f);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < chains; ++i) acc[i] = vfma(acc[i], x, y);
  float s = 0;
  for (int i = 0; i < chains; ++i) s += vsum(acc[i]);
  return s;
}

void W0_fma_limit(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t iters = 20'000'000;
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += fma_kernel(iters);
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(state.iterations() * threads * iters * chains * lanes * 2);  // FLOPs
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
