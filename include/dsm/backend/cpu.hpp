// dsm/backend/cpu.hpp: the CPU backend policy (caching allocator, OpenMP loops, GEMM).
//
// Backends know nothing of expressions: they allocate, copy, run a parallel loop over an index
// range with a functor they are given, and run GEMMs. dsm/expr turns a tree into such a functor.
//
//   dsm::set_num_threads(2);
//   dsm::cpu::parallel_for(n, 4096, [&](int64_t b, int64_t e) { for (...) ... });
//   auto stats = dsm::cpu::memory_stats();
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../core/allocator.hpp"
#include "../core/concepts.hpp"
#include "../core/error.hpp"
#include "../core/precision_mode.hpp"
#include "detail/gemm_bf16.hpp"
#include "detail/gemm_f32.hpp"

namespace dsm {

namespace detail {
/// The one call site of a parallel_for body (see parallel_for).
template <class Fn>
[[gnu::noinline]] void call_chunk(void* f, std::int64_t begin, std::int64_t end) {
  (*static_cast<Fn*>(f))(begin, end);
}

/// Splits [0, n) into `threads` contiguous chunks and runs body(ctx, b, e) on each in an OpenMP
/// region; workers run in the caller's autocast mode.
inline void run_chunks_in_parallel(std::int64_t n, int threads, void (*body)(void*, std::int64_t, std::int64_t), void* ctx) {
#if defined(_OPENMP)
  const GemmPrecision precision = gemm_precision();
#pragma omp parallel num_threads(threads)
  {
    const GemmPrecisionScope mode(precision);
    const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const std::int64_t b = n * t / nt, e = n * (t + 1) / nt;
    if (b < e) body(ctx, b, e);
  }
#else
  (void)threads;
  body(ctx, 0, n);
#endif
}

/// Runs body(ctx, i) for i in [0, n) in an OpenMP region of `threads`, the indices dealt one at a
/// time in order as threads come free; workers run in the caller's autocast mode.
inline void run_tasks_in_parallel(std::int64_t n, int threads, void (*body)(void*, std::int64_t), void* ctx) {
#if defined(_OPENMP)
  const GemmPrecision precision = gemm_precision();
#pragma omp parallel num_threads(threads)
  {
    const GemmPrecisionScope mode(precision);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t i = 0; i < n; ++i) body(ctx, i);
  }
#else
  (void)threads;
  for (std::int64_t i = 0; i < n; ++i) body(ctx, i);
#endif
}
template <class Fn>
[[gnu::noinline]] void call_task(void* f, std::int64_t i) {
  (*static_cast<Fn*>(f))(i);
}
}  // namespace detail

/// Number of threads dsm's CPU loops and GEMMs use.
inline int get_num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
/// Sets the thread count for dsm's CPU loops and Eigen's GEMM (n >= 1).
inline void set_num_threads(int n) {
  if (n < 1) fail<config_error>("set_num_threads", "thread count must be at least 1, got ", n);
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

namespace detail {
/// 64-byte aligned system memory: the raw allocator behind the CPU caching allocator.
struct CpuRawAlloc {
  static void* raw_allocate(std::size_t bytes) { return std::aligned_alloc(64, (bytes + 63) & ~std::size_t{63}); }
  static void raw_free(void* p, std::size_t) { std::free(p); }
};
}  // namespace detail

struct cpu {
  static constexpr const char* name = "cpu";
  static constexpr bool host_accessible = true;

  /// The process-wide CPU allocator. Never destroyed, so tensors that outlive static
  /// destruction order (globals, function statics) can still return their blocks.
  static CachingAllocator<detail::CpuRawAlloc>& allocator() {
    static auto* a = new CachingAllocator<detail::CpuRawAlloc>();
    return *a;
  }
  static void* allocate(std::size_t bytes) { return allocator().allocate(bytes); }
  static void deallocate(void* p, std::size_t bytes) { allocator().deallocate(p, bytes); }
  static MemoryStats memory_stats() { return allocator().stats(); }
  static void reset_peak_memory() { allocator().reset_peak(); }
  static void empty_cache() { allocator().empty_cache(); }

  static void copy_bytes(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }

  /// Calls f(begin, end) on contiguous chunks covering [0, n), one chunk per thread, using at
  /// most n / grain threads. Chunk boundaries depend only on n and the thread count, and nested
  /// calls run serially inside the enclosing parallel region.
  ///
  /// f is compiled once, in a small trampoline that both the serial and the parallel path call,
  /// and the OpenMP region is one non-template function: inlining f at both paths and outlining a
  /// region per loop body doubled the code of every kernel (a model TU compiled 9% slower).
  template <class F>
  static void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
    if (n <= 0) return;
    using Fn = std::remove_reference_t<F>;
    void* const ctx = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
    int threads = 1;
#if defined(_OPENMP)
    const std::int64_t max_by_work = grain > 0 ? (n + grain - 1) / grain : n;
    threads = static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), max_by_work));
    if (omp_in_parallel()) threads = 1;
#endif
    (void)grain;
    if (threads > 1) return detail::run_chunks_in_parallel(n, threads, &detail::call_chunk<Fn>, ctx);
    detail::call_chunk<Fn>(ctx, 0, n);
  }

  /// Calls task(i) for every i in [0, n), each task on one thread (the loops and GEMMs inside it
  /// run serially), the tasks dealt dynamically in index order as threads come free: for
  /// independent pieces of uneven size, largest first. What a task computes must not depend on
  /// the thread that runs it; then neither does the result. A single task (or one thread) runs on
  /// the calling thread outside any parallel region, so its own loops and GEMMs may still use
  /// every thread.
  template <class F>
  static void parallel_tasks(std::int64_t n, F&& task) {
    if (n <= 0) return;
    using Fn = std::remove_reference_t<F>;
    void* const ctx = const_cast<void*>(static_cast<const void*>(std::addressof(task)));
    int threads = 1;
#if defined(_OPENMP)
    threads = static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), n));
    if (omp_in_parallel()) threads = 1;
#endif
    if (threads > 1) return detail::run_tasks_in_parallel(n, threads, &detail::call_task<Fn>, ctx);
    for (std::int64_t i = 0; i < n; ++i) detail::call_task<Fn>(ctx, i);
  }

  /// Row-major C[M, N] = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T by flag.
  /// A is stored [M, K] (or [K, M] when trans_a) with leading dimension lda; likewise B.
  /// float, bf16 and f16 inputs run the packed fp32 kernel (dsm/backend/detail/gemm_f32.hpp)
  /// and accumulate in float into a float C; double runs through Eigen. Under autocast
  /// (gemm_precision() bf16 or f16) float operands are rounded to that precision first. bf16
  /// products (bf16 inputs, or float ones under bf16 autocast) run on the AVX512-BF16 kernel
  /// (detail/gemm_bf16.hpp) where the CPU has it and bf16_dot_kernel_active().
  template <class T, class TC = std::conditional_t<std::is_same_v<T, double>, double, float>>
  static void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, TC alpha, const T* a, std::int64_t lda,
                   const T* b, std::int64_t ldb, TC beta, TC* c, std::int64_t ldc) {
    if constexpr (std::is_same_v<T, double>) {
      eigen_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    } else {
      static_assert(std::is_same_v<TC, float>, "cpu::gemm: float, bf16 and f16 inputs accumulate into float");
      using detail::gemm::View;
      const View<T> va{a, trans_a ? 1 : lda, trans_a ? lda : 1}, vb{b, trans_b ? 1 : ldb, trans_b ? ldb : 1};
#if DSM_HAS_BF16_DOT_KERNEL
      if constexpr (!std::is_same_v<T, f16>)
        if ((std::is_same_v<T, bf16> || rounding() == detail::gemm::Rounding::bf16) && detail::gemm_bf16::active())
          return detail::gemm_bf16::gemm<T, T>(m, n, k, alpha, va, vb, beta, c, ldc);
#endif
      detail::gemm::gemm<T, T>(m, n, k, alpha, va, vb, beta, c, ldc, nullptr, rounding());
    }
  }

  /// B (stored [K, N], or [N, K] when trans_b) packed once for gemm_packed_b: worth it when the
  /// same B multiplies many A (a recurrent weight over the time steps). float only. Packed under
  /// autocast, B is rounded once here; A is rounded by gemm_packed_b in the caller's mode. The
  /// results equal gemm()'s bit for bit, except that gemm() multiplies at most 4 rows by a
  /// transposed B without packing (dot products, summed in another order).
  using PackedB = detail::gemm::PackedB;
  static PackedB pack_b(bool trans_b, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb) {
    return detail::gemm::pack_b_once(detail::gemm::View<float>{b, trans_b ? 1 : ldb, trans_b ? ldb : 1}, k, n, rounding());
  }
  /// gemm() with B from pack_b: C[M, N] = alpha * op(A) * B[:K, :N] + beta * C, B's top-left
  /// [K, N] corner (all of it when it was packed as [K, N]; attention multiplies a packed block of
  /// keys by the queries that see only its first keys). Requires b.k >= K, b.n >= N.
  static void gemm_packed_b(bool trans_a, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
                            const PackedB& b, float beta, float* c, std::int64_t ldc) {
    if (k < 0 || n < 0 || b.k < k || b.n < n)
      fail<shape_error>("cpu::gemm_packed_b", "B was packed as [", b.k, ", ", b.n, "], the product needs [", k, ", ", n, "]");
    using detail::gemm::View;
    detail::gemm::gemm<float, float>(m, n, k, alpha, View<float>{a, trans_a ? 1 : lda, trans_a ? lda : 1}, View<float>{nullptr, 0, 0}, beta, c,
                                     ldc, &b, rounding());
  }

  /// Whether bf16 products run on the AVX512-BF16 kernel now: the CPU has the units and
  /// set_bf16_dot_kernel(false) (or DSM_BF16_DOT_KERNEL=0 in the environment) has not turned it off.
  static bool bf16_dot_kernel_active() { return detail::gemm_bf16::active(); }
  /// Turns the AVX512-BF16 kernel on or off for every thread (off: bf16 products run on the fp32
  /// kernel over bf16 values, bit for bit the product of bf16 copies with fp32 FMAs).
  static void set_bf16_dot_kernel(bool on) { detail::gemm_bf16::enabled().store(on); }

  /// How the calling thread's autocast mode rounds float GEMM operands.
  static detail::gemm::Rounding rounding() {
    switch (gemm_precision()) {
      case GemmPrecision::bf16: return detail::gemm::Rounding::bf16;
      case GemmPrecision::f16: return detail::gemm::Rounding::f16;
      default: return detail::gemm::Rounding::none;
    }
  }

  /// The same contract through Eigen's GEMM (double, and the reference the benchmarks compare with).
  template <class T>
  static void eigen_gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda,
                         const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using CMap = Eigen::Map<const Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    using OMap = Eigen::Map<Mat, Eigen::Unaligned, Eigen::OuterStride<>>;
    OMap cm(c, m, n, Eigen::OuterStride<>(ldc));
    if (k == 0) {
      if (beta == T(0)) cm.setZero();
      else cm *= beta;
      return;
    }
    const CMap am(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
    const CMap bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
    auto run = [&](const auto& opa, const auto& opb) {
      if (beta == T(0)) {
        if (alpha == T(1)) cm.noalias() = opa * opb;
        else cm.noalias() = alpha * (opa * opb);
      } else {
        cm *= beta;
        cm.noalias() += alpha * (opa * opb);
      }
    };
    if (trans_a && trans_b) run(am.transpose(), bm.transpose());
    else if (trans_a) run(am.transpose(), bm);
    else if (trans_b) run(am, bm.transpose());
    else run(am, bm);
  }
};

static_assert(Backend<cpu>);

}  // namespace dsm
