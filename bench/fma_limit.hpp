// bench/fma_limit.hpp: the register-only FMA loop that defines the fp32 compute limit (W0a),
// shared by W0 and by the workloads that report a percentage of it (W3).
#pragma once

#include <immintrin.h>
#include <omp.h>

#include <cstdint>

namespace dsm_bench {

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

inline float fma_kernel(std::int64_t iters) {
  Vec acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = vset(static_cast<float>(i));
  const Vec x = vset(0.999999f), y = vset(1e-7f);
  for (std::int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < chains; ++i) acc[i] = vfma(acc[i], x, y);
  float s = 0;
  for (int i = 0; i < chains; ++i) s += vsum(acc[i]);
  return s;
}

/// FLOPs one fma_kernel(iters) call performs.
inline double fma_kernel_flops(std::int64_t iters) { return static_cast<double>(iters) * chains * lanes * 2; }

/// Runs fma_kernel(iters) on `threads` threads at once; returns the sum (to keep it alive).
inline float fma_all_threads(int threads, std::int64_t iters) {
  float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  total += fma_kernel(iters);
  return total;
}

}  // namespace dsm_bench
