// dsm/backend/detail/gemm_bf16.hpp: the bf16 GEMM on AVX512-BF16 units (vdpbf16ps).
//
// C[M, N] = alpha * A[M, K] * B[K, N] + beta * C with A and B rounded to bf16 (nearest even) and
// the products summed in fp32: what a bf16 matmul and autocast's bf16 ask for, at twice the fp32
// FMA rate on CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake and later). vdpbf16ps
// multiplies two depths at once: each fp32 lane gains a[2p] b[2p] + a[2p+1] b[2p+1], so packed
// panels hold depth pairs, one 32-bit word each (the even depth in the low half).
//
// Against the fp32 kernel over bf16-rounded panels (gemm_f32.hpp, Rounding::bf16) the products are
// the same, exact in fp32, but they are summed two depths per instruction, and the instruction
// treats bf16 denormals as zero and flushes denormal sums (it ignores MXCSR): the two agree to
// fp32 rounding, not bit for bit. Like the fp32 kernel, each C tile is summed by one thread in a
// fixed order, so results do not depend on the thread count.
//
// This code is compiled for the AVX512-BF16 target whatever -march says, and runs only where the
// CPU reports the feature (available()); elsewhere cpu::gemm keeps the fp32 kernel.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "gemm_f32.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__CUDACC__) && (defined(__clang__) || __GNUC__ >= 10)
#define DSM_HAS_BF16_DOT_KERNEL 1
#define DSM_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#else
#define DSM_HAS_BF16_DOT_KERNEL 0
#endif

namespace dsm::detail::gemm_bf16 {

/// Whether the CPU has AVX512-BF16 (read once).
inline bool cpu_supports() {
#if DSM_HAS_BF16_DOT_KERNEL
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
#else
  return false;
#endif
}

/// The switch cpu::set_bf16_dot_kernel() sets; on by default unless DSM_BF16_DOT_KERNEL=0.
inline std::atomic<bool>& enabled() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("DSM_BF16_DOT_KERNEL");
    return !(v && std::strcmp(v, "0") == 0);
  }()};
  return on;
}

/// Whether bf16 products run on this kernel now.
inline bool active() { return cpu_supports() && enabled().load(std::memory_order_relaxed); }

#if DSM_HAS_BF16_DOT_KERNEL

constexpr int mr = 12;                          // rows of a micro-tile
constexpr int nr = 32;                          // its columns: two 16-lane vectors
#ifndef DSM_BF16_KC_PAIRS
#define DSM_BF16_KC_PAIRS 256
#endif
#ifndef DSM_BF16_MC_PANELS
#define DSM_BF16_MC_PANELS 16
#endif
// Blocks (1 thread, n = 1024, on a Zen 5 core: 128 to 384 pairs and 8 or 16 panels all ran within
// 5% of each other, 256 x 16 at the top at 2 threads).
constexpr std::int64_t kc_pairs = DSM_BF16_KC_PAIRS;    // depth pairs of a block: a B panel is 32 KB, in L1
constexpr std::int64_t mc_panels = DSM_BF16_MC_PANELS;  // row panels of an A block: 192 x 512 bf16, 192 KB, in L2
constexpr std::int64_t nc_block = nr * 128;     // columns of a B block: 4096 x 512 bf16, 4 MB, in L3
using Word = std::uint32_t;                     // a depth pair of bf16 values

template <class T>
inline std::uint16_t bf16_of(T x) {
  if constexpr (std::is_same_v<T, bf16>) return x.bits;
  else return float_to_bf16_bits(static_cast<float>(x));
}
template <class T>
inline Word pair_of(const gemm::View<T>& v, std::int64_t i, std::int64_t p, std::int64_t rows, std::int64_t k) {
  if (i >= rows || p >= k) return 0;
  const Word lo = bf16_of(v.p[i * v.rs + p * v.cs]);
  const Word hi = p + 1 < k ? bf16_of(v.p[i * v.rs + (p + 1) * v.cs]) : 0;
  return lo | (hi << 16);
}

/// Up to 16 consecutive values of a float or bf16 run (lanes set in `valid`; the others read
/// nothing and give 0) as bf16 words in the low halves of 32-bit lanes. (The zero-masked forms of
/// the widening and the shift below: GCC 12's plain ones warn of an uninitialized value, bug 105593.)
template <class T>
DSM_BF16_TARGET inline __m512i run16(const T* src, __mmask16 valid) {
  if constexpr (std::is_same_v<T, bf16>) {
    return _mm512_maskz_cvtepu16_epi32(0xffff, _mm256_maskz_loadu_epi16(valid, src));
  } else {
    return _mm512_maskz_cvtepu16_epi32(0xffff, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(valid, src)));
  }
}
/// 32 consecutive values of a float or bf16 run as 16 depth-pair words.
template <class T>
DSM_BF16_TARGET inline __m512i pairs16(const T* src) {
  if constexpr (std::is_same_v<T, bf16>) {
    return _mm512_loadu_si512(src);
  } else {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));
  }
}

/// The mask of the first `count` of 16 lanes (all of them from 16 on, none at 0 or below).
inline __mmask16 first_lanes(std::int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xffffu : (1u << std::max<std::int64_t>(count, 0)) - 1u);
}

/// Packs `rows` (<= width) lines of a source whose element (line i, depth p) is v.p[i * v.rs + p *
/// v.cs] into a panel of `width` words per depth pair: out[q * width + i] = pair (2q, 2q + 1) of
/// line i, zero past `rows` and past depth k. A's row panels (width mr) and B's column panels
/// (width nr, B seen transposed) are both this.
template <class T>
DSM_BF16_TARGET DSM_HOT_KERNEL void pack_panel(const gemm::View<T>& v, std::int64_t rows, std::int64_t k, int width, Word* out) {
  const std::int64_t kp = (k + 1) / 2;
  std::int64_t q = 0;
  if (v.cs == 1 && rows == width) {
    // Depth runs contiguous along each line (row-major A; B stored [N, K], as in x W^T): 32
    // depths of a line become 16 words, dealt out to their pairs.
    alignas(64) Word tmp[16];
    for (; 2 * q + 32 <= k; q += 16) {
      for (int i = 0; i < width; ++i) {
        _mm512_store_si512(tmp, pairs16(v.p + i * v.rs + 2 * q));
#pragma GCC unroll 16
        for (int t = 0; t < 16; ++t) out[(q + t) * width + i] = tmp[t];
      }
    }
  } else if (v.rs == 1) {
    // Lines contiguous at each depth (A stored [K, M]; row-major B): two depth runs become 16
    // pair words, stored whole.
    for (; 2 * q + 1 < k; ++q) {
      const T* even = v.p + 2 * q * v.cs;
      const T* odd = even + v.cs;
      for (int i = 0; i < width; i += 16) {
        const __mmask16 valid = first_lanes(rows - i);
        const __m512i words = _mm512_or_si512(run16(even + i, valid), _mm512_maskz_slli_epi32(0xffff, run16(odd + i, valid), 16));
        _mm512_mask_storeu_epi32(out + q * width + i, first_lanes(width - i), words);
      }
    }
  }
  for (; q < kp; ++q)
    for (int i = 0; i < width; ++i) out[q * width + i] = pair_of(v, i, 2 * q, rows, k);
}

/// acc = A panel x B panel over kp depth pairs, then C = alpha * acc + beta * C for the m x n
/// corner of the tile (beta == 0 never reads C).
template <int Rows>
[[gnu::noinline]] DSM_BF16_TARGET DSM_HOT_KERNEL void micro_kernel(std::int64_t kp, const Word* ap, const Word* bp, float* c, std::int64_t ldc,
                                                                   std::int64_t m, std::int64_t n, float alpha, float beta) {
  __m512 acc[Rows][2];
#pragma GCC unroll 16
  for (int i = 0; i < Rows; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int i = 0; i < Rows && i < m; ++i) __builtin_prefetch(c + i * ldc, 1, 3), __builtin_prefetch(c + i * ldc + nr - 1, 1, 3);
#pragma GCC unroll 2
  for (std::int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
    }
    ap += mr;
    bp += nr;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (m == Rows && n == nr) {
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i)
      for (int h = 0; h < 2; ++h) {
        float* cp = c + i * ldc + 16 * h;
        const __m512 r = beta == 0.f ? _mm512_mul_ps(va, acc[i][h]) : _mm512_fmadd_ps(vb, _mm512_loadu_ps(cp), _mm512_mul_ps(va, acc[i][h]));
        _mm512_storeu_ps(cp, r);
      }
    return;
  }
  alignas(64) float tile[Rows * nr];
  for (int i = 0; i < Rows; ++i)
    for (int h = 0; h < 2; ++h) _mm512_store_ps(tile + i * nr + 16 * h, acc[i][h]);
  gemm::store_tile_corner(tile, nr, c, ldc, m, n, alpha, beta);
}

/// The kernel for a panel of m <= mr valid rows: the shortest of 12, 8, 4, 2, 1 rows that holds it.
inline void run_micro_kernel(std::int64_t kp, const Word* ap, const Word* bp, float* c, std::int64_t ldc, std::int64_t m, std::int64_t n, float alpha,
                             float beta) {
  if (m > 8) return micro_kernel<12>(kp, ap, bp, c, ldc, m, n, alpha, beta);
  if (m > 4) return micro_kernel<8>(kp, ap, bp, c, ldc, m, n, alpha, beta);
  if (m > 2) return micro_kernel<4>(kp, ap, bp, c, ldc, m, n, alpha, beta);
  if (m > 1) return micro_kernel<2>(kp, ap, bp, c, ldc, m, n, alpha, beta);
  micro_kernel<1>(kp, ap, bp, c, ldc, m, n, alpha, beta);
}

inline gemm::Workspace<Word, 0>& a_workspace() { return gemm::Workspace<Word, 0>::of_this_thread(); }
inline gemm::Workspace<Word, 1>& b_workspace() { return gemm::Workspace<Word, 1>::of_this_thread(); }

/// C = alpha * A * B + beta * C with A viewed as [m, k], B as [k, n] (float or bf16 elements,
/// rounded to bf16), C row-major with ldc. Requires active().
template <class TA, class TB>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, gemm::View<TA> a, gemm::View<TB> b, float beta, float* c, std::int64_t ldc) {
  if (gemm::trivial_product(m, n, k, beta, c, ldc)) return;
  const int threads = gemm::threads_for(m, n, k, 4e6);  // twice the fp32 kernel's FLOPs a thread: twice its rate
  // Row blocks of whole panels, their count a multiple of the thread count (as the fp32 GEMM);
  // blocks start on panel boundaries, so each C element is summed the same way at any count.
  const std::int64_t m_panels = (m + mr - 1) / mr;
  std::int64_t m_blocks = (m_panels + mc_panels - 1) / mc_panels;
  if (threads > 1) m_blocks = (m_blocks + threads - 1) / threads * threads;
  m_blocks = std::min(m_blocks, m_panels);
  const gemm::View<TB> bt{b.p, b.cs, b.rs};  // B seen as [n, k]: its column panels pack as lines
  Word* bpack = b_workspace().get(static_cast<std::size_t>(kc_pairs * (nc_block + nr)));

  for (std::int64_t jc = 0; jc < n; jc += nc_block) {
    const std::int64_t nc = std::min(nc_block, n - jc), n_panels = (nc + nr - 1) / nr;
    for (std::int64_t pc = 0; pc < k; pc += 2 * kc_pairs) {
      const std::int64_t kc = std::min(2 * kc_pairs, k - pc), kp = (kc + 1) / 2;
      const float beta_here = pc == 0 ? beta : 1.f;
      auto pack_b_panel = [&](std::int64_t jp) {
        const std::int64_t j0 = jc + jp * nr;
        pack_panel(gemm::View<TB>{bt.p + j0 * bt.rs + pc * bt.cs, bt.rs, bt.cs}, std::min<std::int64_t>(nr, n - j0), kc, nr, bpack + jp * nr * kp);
      };
      const std::int64_t col_groups = std::min<std::int64_t>(n_panels, std::max<std::int64_t>(1, (threads + m_blocks - 1) / m_blocks));
      const std::int64_t items = m_blocks * col_groups;
      auto run_item = [&](std::int64_t item) {
        const std::int64_t ib = item / col_groups, g = item % col_groups;
        const std::int64_t q0 = m_panels * ib / m_blocks, q1 = m_panels * (ib + 1) / m_blocks;
        const std::int64_t p0 = n_panels * g / col_groups, p1 = n_panels * (g + 1) / col_groups;
        Word* apack = a_workspace().get(static_cast<std::size_t>(mc_panels * 2 * mr * kp + mr * kp));
        for (std::int64_t q = q0; q < q1; ++q) {
          const std::int64_t r0 = q * mr;
          pack_panel(gemm::View<TA>{a.p + r0 * a.rs + pc * a.cs, a.rs, a.cs}, std::min<std::int64_t>(mr, m - r0), kc, mr, apack + (q - q0) * mr * kp);
        }
        for (std::int64_t jp = p0; jp < p1; ++jp) {
          const std::int64_t j0 = jp * nr, ncols = std::min<std::int64_t>(nr, nc - j0);
          for (std::int64_t q = q0; q < q1; ++q)
            run_micro_kernel(kp, apack + (q - q0) * mr * kp, bpack + jp * nr * kp, c + q * mr * ldc + jc + j0, ldc, std::min<std::int64_t>(mr, m - q * mr),
                             ncols, alpha, beta_here);
        }
      };
#if defined(_OPENMP)
      if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
#pragma omp for schedule(static)
          for (std::int64_t jp = 0; jp < n_panels; ++jp) pack_b_panel(jp);
#pragma omp for schedule(static)
          for (std::int64_t item = 0; item < items; ++item) run_item(item);
        }
        continue;
      }
#endif
      for (std::int64_t jp = 0; jp < n_panels; ++jp) pack_b_panel(jp);
      for (std::int64_t item = 0; item < items; ++item) run_item(item);
    }
  }
}

#endif  // DSM_HAS_BF16_DOT_KERNEL

}  // namespace dsm::detail::gemm_bf16
