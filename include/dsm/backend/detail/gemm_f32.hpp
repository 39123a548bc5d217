// dsm/backend/detail/gemm_f32.hpp: a packed, cache-blocked fp32 GEMM (the BLIS/Goto scheme).
//
// C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C, row-major C. A and B are read through
// (row, column) strides, so transposes cost nothing, and their elements may be float, bf16 or f16:
// they are converted to float while being packed, which is also how bf16 inputs get fp32
// accumulation without a separate conversion pass. Under autocast, float operands are rounded to
// bf16 or f16 in their packed blocks (Rounding): a low-precision GEMM without a low-precision copy.
//
// Blocking: B is packed in [KC x NC] blocks of NR-wide column panels (kept in L3 and streamed
// through L1), A in [MC x KC] blocks of MR-tall row panels (kept in L2); a register-resident
// MR x NR micro-kernel runs over the panels. Threads split the MC blocks (and the NR panels when
// there are few rows); every C tile is owned by one thread and summed over K in a fixed order, so
// results do not depend on the thread count.
//
// The micro-kernel is written once over a small vector type: AVX-512 (16 lanes, 12 x 32 tile),
// AVX2+FMA (8 lanes, 6 x 16 tile), or GCC vector extensions elsewhere.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <vector>

#include <strings.h>

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../../core/config.hpp"
#include "../../core/detail/transpose16x16.hpp"
#include "../../core/detail/transpose8x8.hpp"
#include "../../core/dtype.hpp"
#include "../../core/half.hpp"

namespace dsm::detail::gemm {

#if defined(__AVX512F__)
struct Vec {
  __m512 v;
  static constexpr int lanes = 16;
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec broadcast(float x) { return {_mm512_set1_ps(x)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static Vec mul(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  static Vec add(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
};
constexpr int mr = 12, nv = 2;
#elif defined(__AVX2__) && defined(__FMA__)
struct Vec {
  __m256 v;
  static constexpr int lanes = 8;
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec broadcast(float x) { return {_mm256_set1_ps(x)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static Vec mul(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static Vec add(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
};
constexpr int mr = 6, nv = 2;
#else
struct Vec {
  typedef float raw __attribute__((vector_size(16)));
  raw v;
  static constexpr int lanes = 4;
  static Vec zero() { return {raw{0, 0, 0, 0}}; }
  static Vec load(const float* p) {
    Vec r;
    __builtin_memcpy(&r.v, p, sizeof r.v);
    return r;
  }
  static Vec broadcast(float x) { return {raw{x, x, x, x}}; }
  void store(float* p) const { __builtin_memcpy(p, &v, sizeof v); }
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  static Vec mul(Vec a, Vec b) { return {a.v * b.v}; }
  static Vec add(Vec a, Vec b) { return {a.v + b.v}; }
};
constexpr int mr = 4, nv = 2;
#endif

constexpr int nr = nv * Vec::lanes;           // micro-tile width
#ifndef DSM_GEMM_KC
#define DSM_GEMM_KC 384
#endif
#ifndef DSM_GEMM_MC_PANELS
#define DSM_GEMM_MC_PANELS 16
#endif
constexpr std::int64_t kc_block = DSM_GEMM_KC;                 // depth of a packed block
constexpr std::int64_t mc_block = mr * DSM_GEMM_MC_PANELS;     // rows of a packed A block (L2)
constexpr std::int64_t nc_block = nr * 256;                    // columns of a packed B block (L3)
constexpr std::int64_t b_group_panels = 4;  // B panels packed together: a row-major B's rows read 256 bytes at a time

/// The float a packed element holds.
template <class T>
inline float widen(T x) {
  return static_cast<float>(x);
}

/// A strided matrix operand: element (i, j) at p[i * rs + j * cs].
template <class T>
struct View {
  using value_type = T;
  const T* p;
  std::int64_t rs, cs;
  float at(std::int64_t i, std::int64_t j) const { return widen(p[i * rs + j * cs]); }
};

#if defined(__AVX2__)
using dsm::detail::transpose8x8;

/// Packs 8 depths of a panel whose depth runs are contiguous in memory (row-major A, transposed
/// B): out[q * ld_out + i] = in[i * ld_in + q] for q < 8 and the panel's rows i, in Groups blocks
/// of 8 rows, the last holding rows_last (missing rows read as zero). Every output row is stored
/// 8 wide per group, so when rows_last < 8 the store of row q spills 8 - rows_last floats into row
/// q + 1, which the next store overwrites; the caller then owns at least one more depth after
/// these 8 (it packs that one after), so the spill stays inside the panel.
template <int Groups>
DSM_HOT_KERNEL inline void pack_transposed_block8(const float* in, std::int64_t ld_in, int rows_last, float* out, std::int64_t ld_out) {
  __m256 cols[Groups][8];
  for (int g = 0; g < Groups; ++g) {
    const int rows = g + 1 < Groups ? 8 : rows_last;
    for (int i = 0; i < 8; ++i) cols[g][i] = i < rows ? _mm256_loadu_ps(in + (g * 8 + i) * ld_in) : _mm256_setzero_ps();
    transpose8x8(cols[g]);
  }
  for (int q = 0; q < 8; ++q)
    for (int g = 0; g < Groups; ++g) _mm256_storeu_ps(out + q * ld_out + g * 8, cols[g][q]);
}
#endif

#if defined(__AVX512F__)
/// Packs 16 depths of Rows (<= 16) rows whose depth runs are contiguous, as
/// pack_transposed_block8 does 8, through one 16 x 16 transpose: half the loads and stores and
/// two thirds of the shuffles (a 12-row A panel took two 8 x 8 transposes, a quarter of them on
/// zero rows). Rows < 16 store masked, so nothing spills past the block.
template <int Rows>
DSM_HOT_KERNEL inline void pack_transposed_block16(const float* in, std::int64_t ld_in, float* out, std::int64_t ld_out) {
  __m512 r[16];
  for (int i = 0; i < 16; ++i) r[i] = i < Rows ? _mm512_loadu_ps(in + i * ld_in) : _mm512_setzero_ps();
  dsm::detail::transpose16x16(r);
  for (int q = 0; q < 16; ++q) {
    if constexpr (Rows == 16) {
      _mm512_storeu_ps(out + q * ld_out, r[q]);
    } else {
      _mm512_mask_storeu_ps(out + q * ld_out, static_cast<__mmask16>((1u << Rows) - 1), r[q]);
    }
  }
}
#endif

/// Packs rows [0, m) x depth [0, k) of A into MR-tall panels, zero-padding the last panel:
/// panel r holds, for each depth p, MR consecutive values.
template <class T>
DSM_HOT_KERNEL void pack_a(const View<T>& a, std::int64_t m, std::int64_t k, float* dst) {
  constexpr bool plain_float = std::is_same_v<T, float>;
  if (a.rs == 1 && a.cs != 1 && m >= mr) {
    // Transposed A (depth p is a contiguous run of m values, runs a.cs apart): a block of
    // `depths` runs at a time (in L1 together), dealt out panel by panel, so each panel receives
    // depths * MR contiguous floats. Dealing one run out to every panel wrote MR floats per panel
    // at a stride of k * MR floats, a multiple of 4 KB that put all the panels' lines in one L1
    // set: 4.7 GB/s for a [256 x 512] block, against 26 for a row-major A. Panel by panel over
    // single runs reads MR values per run at the runs' stride, which thrashes the L1 sets too.
    const std::int64_t full = m / mr * mr;
    constexpr std::int64_t depths = 4;
    for (std::int64_t p0 = 0; p0 < k; p0 += depths) {
      const std::int64_t p1 = std::min(k, p0 + depths);
      if (p1 < k)  // the next block's runs: strided streams the hardware prefetcher follows late
        for (std::int64_t p = p1; p < std::min(k, p1 + depths); ++p)
          for (std::int64_t r0 = 0; r0 < m; r0 += 64 / static_cast<std::int64_t>(sizeof(T))) __builtin_prefetch(a.p + p * a.cs + r0);
      for (std::int64_t r0 = 0; r0 < full; r0 += mr) {
        float* d = dst + r0 * k + p0 * mr;
        for (std::int64_t p = p0; p < p1; ++p, d += mr) {
          const T* src = a.p + p * a.cs + r0;
          if constexpr (plain_float) {
            __builtin_memcpy(d, src, mr * sizeof(float));  // one or two vector moves, not mr scalar ones
          } else {
#pragma GCC unroll 16
            for (int i = 0; i < mr; ++i) d[i] = widen(src[i]);
          }
        }
      }
    }
    if (full == m) return;
    pack_a(View<T>{a.p + full, a.rs, a.cs}, m - full, k, dst + full * k);  // the partial panel, below
    return;
  }
  for (std::int64_t r0 = 0; r0 < m; r0 += mr) {
    const std::int64_t rows = std::min<std::int64_t>(mr, m - r0);
    if (rows == mr && (a.cs == 1 || a.rs == 1)) {  // full panel: fixed trip counts the compiler unrolls
      const T* base = a.p + r0 * a.rs;
      if (a.cs == 1) {  // row-major A: MR row streams
        std::int64_t p = 0;
#if defined(__AVX2__)
        if constexpr (plain_float) {  // 16 or 8 depths at a time through a register transpose
          constexpr int groups = (mr + 7) / 8;
          const bool prefetch = r0 + 3 * mr <= m;
#if defined(__AVX512F__)
          for (; p + 16 <= k; p += 16, dst += 16 * mr) {
            if (prefetch)  // the panel after next, a line per row: short rows give the hardware prefetcher nothing to lock on
              for (int i = 0; i < mr; ++i) __builtin_prefetch(base + (2 * mr + i) * a.rs + p, 0, 2);
            pack_transposed_block16<mr>(base + p, a.rs, dst, mr);
          }
#endif
          for (; p + 8 < k; p += 8, dst += 8 * mr) {
            if (prefetch && (p & 15) == 0)  // the panel after next, a line per row: short rows give the hardware prefetcher nothing to lock on
              for (int i = 0; i < mr; ++i) __builtin_prefetch(base + (2 * mr + i) * a.rs + p, 0, 2);
            pack_transposed_block8<groups>(base + p, a.rs, mr - 8 * (groups - 1), dst, mr);
          }
        }
#endif
        for (; p < k; ++p) {
#pragma GCC unroll 16
          for (int i = 0; i < mr; ++i) dst[i] = widen(base[i * a.rs + p]);
          dst += mr;
        }
      } else {  // transposed A: each depth is MR consecutive values
        for (std::int64_t p = 0; p < k; ++p) {
#pragma GCC unroll 16
          for (int i = 0; i < mr; ++i) dst[i] = widen(base[p * a.cs + i]);
          dst += mr;
        }
      }
      continue;
    }
    // A partial panel (the last rows of A, e.g. two 4-row panels in a 32-row LSTM step) or a
    // strided A. Element by element through View::at it cost a 4-row panel 1.5x a 6-row one.
    const T* base = a.p + r0 * a.rs;
    std::int64_t p = 0;
#if defined(__AVX2__)
    if constexpr (plain_float && mr <= 8) {
      if (a.cs == 1)  // row-major: the full panels' 8 x 8 transposes, the missing rows read as zero
        for (; p + 8 < k; p += 8, dst += 8 * mr) pack_transposed_block8<1>(base + p, a.rs, static_cast<int>(rows), dst, mr);
    }
#endif
    // The padding is zeroed whole, MR wide: a loop over [rows, MR) became a `rep stos` per depth,
    // whose start-up cost made a transposed 8-row A pack at a quarter of the row-major speed.
    for (; p < k; ++p, dst += mr) {
#pragma GCC unroll 16
      for (int i = 0; i < mr; ++i) dst[i] = 0.f;
      for (std::int64_t i = 0; i < rows; ++i) dst[i] = widen(base[i * a.rs + p * a.cs]);
    }
  }
}

/// Packs depth [0, k) x columns [0, n) of B into NR-wide panels, zero-padding the last one.
template <class T>
DSM_HOT_KERNEL void pack_b(const View<T>& b, std::int64_t k, std::int64_t n, float* dst) {
  // Row-major B: b_group_panels panels a row at a time (one line per panel and pass revisits rows a
  // power-of-two distance apart, which share a few L1 sets).
  constexpr std::int64_t group = b_group_panels * nr;
  const std::int64_t grouped = b.cs == 1 ? n / group * group : 0;
  for (std::int64_t c0 = 0; c0 < grouped; c0 += group)
    for (std::int64_t p = 0; p < k; ++p) {
      const T* row = b.p + p * b.rs + c0;
#pragma GCC unroll 4
      for (int g = 0; g < b_group_panels; ++g)
        for (int j = 0; j < nr; ++j) dst[(c0 + g * nr) * k + p * nr + j] = widen(row[g * nr + j]);
    }
  for (std::int64_t c0 = grouped; c0 < n; c0 += nr) {
    const std::int64_t cols = std::min<std::int64_t>(nr, n - c0);
    float* panel = dst + c0 * k;
    if (cols == nr && b.cs == 1) {  // unit-stride rows of B: straight copies
      for (std::int64_t p = 0; p < k; ++p)
        for (int j = 0; j < nr; ++j) panel[p * nr + j] = widen(b.p[p * b.rs + c0 + j]);
      continue;
    }
    std::int64_t p = 0;
#if defined(__AVX2__)
    if constexpr (std::is_same_v<T, float>) {
      if (cols == nr && b.rs == 1) {  // transposed B (x W^T): depth runs are contiguous, 16 x 16 or 8 x 8 transposes
#if defined(__AVX512F__)
        for (; p + 16 <= k; p += 16) {
          if (p + 64 < k)  // 32 short row streams: each one 64 depths ahead
            for (int j = 0; j < nr; ++j) __builtin_prefetch(b.p + (c0 + j) * b.cs + p + 64, 0, 2);
          for (int g = 0; g < nr / 16; ++g) pack_transposed_block16<16>(b.p + (c0 + 16 * g) * b.cs + p, b.cs, panel + p * nr + 16 * g, nr);
        }
#endif
        for (; p + 8 <= k; p += 8) {
          if ((p & 15) == 0 && p + 64 < k)  // 16 short row streams: each one 64 depths ahead
            for (int j = 0; j < nr; ++j) __builtin_prefetch(b.p + (c0 + j) * b.cs + p + 64, 0, 2);
          pack_transposed_block8<nr / 8>(b.p + c0 * b.cs + p, b.cs, 8, panel + p * nr, nr);
        }
      }
    }
#endif
    for (; p < k; ++p)
      for (int j = 0; j < nr; ++j) panel[p * nr + j] = j < cols ? b.at(p, c0 + j) : 0.f;
  }
}

/// The rounding a GEMM applies to float operands while packing them (autocast's bf16 or f16).
enum class Rounding : std::uint8_t { none, bf16, f16 };

/// Rounds a packed block in place to the nearest bf16 or f16 (round to nearest even) and widens it
/// back: exactly a GEMM over a bf16/f16 copy of the operand with fp32 accumulation, without the
/// copy. A pass of its own over the block, which is still in cache, rather than rounding types for
/// the packing routines: those doubled the packing code of every TU that multiplies floats.
DSM_HOT_KERNEL inline void round_packed(Rounding round, float* block, std::int64_t count) {
  if (round == Rounding::bf16) {
    for (std::int64_t i = 0; i < count; ++i) block[i] = bf16_bits_to_float(float_to_bf16_bits(block[i]));
  } else if (round == Rounding::f16) {
#if defined(__F16C__)
    std::int64_t i = 0;
    for (; i + 8 <= count; i += 8)  // IEEE round to nearest even, as the codec
      _mm256_storeu_ps(block + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(block + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < count; ++i) block[i] = _cvtsh_ss(_cvtss_sh(block[i], _MM_FROUND_TO_NEAREST_INT));
#else
    for (std::int64_t i = 0; i < count; ++i) block[i] = f16_bits_to_float(float_to_f16_bits(block[i]));
#endif
  }
}

/// C = alpha * tile + beta * C over the m x n corner of a row-major tile (beta == 0 never reads C):
/// the edge of a product, where a micro-tile overhangs C.
inline void store_tile_corner(const float* tile, std::int64_t tile_ld, float* c, std::int64_t ldc, std::int64_t m, std::int64_t n, float alpha, float beta) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float& out = c[i * ldc + j];
      out = beta == 0.f ? alpha * tile[i * tile_ld + j] : alpha * tile[i * tile_ld + j] + beta * out;
    }
}

/// acc = A panel x B panel over depth k; then C = alpha * acc + beta * C for the valid
/// m x n corner of the tile (beta == 0 never reads C, so C may be uninitialized).
/// Rows: how many rows of the (mr-strided) A panel hold data. A panel's last rows past m are
/// zero padding; the kernel instantiated for fewer rows skips their FMAs (a batch of 32 rows is
/// 5 full panels and one of 2 rows, a decoding step one of 1 row). NV: how many vectors of the
/// NR-wide B panel hold data (1 for a last panel of at most half its width).
template <int Rows = mr, int NV = nv>
[[gnu::noinline]] DSM_HOT_KERNEL void micro_kernel(std::int64_t k, const float* ap, const float* bp, float* c, std::int64_t ldc, std::int64_t m, std::int64_t n,
                                    float alpha, float beta) {
  // Fewer rows mean fewer independent FMA chains than the FMA latency can hide: short panels
  // keep Split partial sums over alternating depths (>= 8 chains), added at the end.
  constexpr int Split = Rows * NV >= 8 ? 1 : (8 + Rows * NV - 1) / (Rows * NV);
  Vec acc[Rows][NV], part[Split > 1 ? Split - 1 : 1][Rows][NV];
  // The C tile is read and written only after the depth loop; its rows lie far apart in a large C
  // (usually in L3 or memory), so ask for them now and let the loop hide the latency (this alone
  // took W1 n = 2048 from 0.75x to 0.9x of OpenBLAS at 1 thread).
  for (int i = 0; i < Rows && i < m; ++i) {
    __builtin_prefetch(c + i * ldc, 1, 3);
    __builtin_prefetch(c + i * ldc + nr - 1, 1, 3);
  }
#pragma GCC unroll 16
  for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      acc[i][v] = Vec::zero();
      for (int s = 0; s + 1 < Split; ++s) part[s][i][v] = Vec::zero();
    }
  auto depth = [&](Vec(&sum)[Rows][NV]) {
    Vec b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = Vec::load(bp + v * Vec::lanes);
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i) {
      const Vec a = Vec::broadcast(ap[i]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) sum[i][v] = Vec::fma(a, b[v], sum[i][v]);
    }
    ap += mr;
    bp += nr;
  };
  std::int64_t p = 0;
  if constexpr (Split > 1) {
    for (; p + Split <= k; p += Split) {
      depth(acc);
#pragma GCC unroll 4
      for (int s = 0; s + 1 < Split; ++s) depth(part[s]);
    }
  }
#pragma GCC unroll 4  // fewer loop-counter uops per FMA: the kernel alone went from ~80 to ~86 GFLOP/s
  for (; p < k; ++p) depth(acc);
  if constexpr (Split > 1)
    for (int s = 0; s + 1 < Split; ++s)
      for (int i = 0; i < Rows; ++i)
        for (int v = 0; v < NV; ++v) acc[i][v] = Vec::add(acc[i][v], part[s][i][v]);
  const Vec va = Vec::broadcast(alpha), vb = Vec::broadcast(beta);
  if (m == Rows && n == NV * Vec::lanes) {
#pragma GCC unroll 16
    for (int i = 0; i < Rows; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* cp = c + i * ldc + v * Vec::lanes;
        const Vec r = beta == 0.f ? Vec::mul(va, acc[i][v]) : Vec::fma(vb, Vec::load(cp), Vec::mul(va, acc[i][v]));
        r.store(cp);
      }
    return;
  }
  alignas(64) float tile[Rows * nr];
  for (int i = 0; i < Rows; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v].store(tile + i * nr + v * Vec::lanes);
  store_tile_corner(tile, nr, c, ldc, m, n, alpha, beta);
}

/// The kernel for a panel of m <= mr valid rows and n <= nr valid columns.
template <int NV>
inline void run_micro_kernel_cols(std::int64_t k, const float* ap, const float* bp, float* c, std::int64_t ldc, std::int64_t m, std::int64_t n, float alpha,
                                  float beta) {
  if (m == mr) return micro_kernel<mr, NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
  if (m == 1) return micro_kernel<1, NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
  if (m == 2) return micro_kernel<2, NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
  if (m <= 4 && mr > 4) return micro_kernel<(mr > 4 ? 4 : mr), NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
  // 8 rows under AVX-512: a 32-row LSTM step is 12 + 12 + 8 rows, and the 12-row kernel on the
  // last panel spent a third of its FMAs on zero padding (a ninth of the whole product; W5's
  // training step took 5.5% less time with this kernel).
  if (m <= 8 && mr > 8) return micro_kernel<(mr > 8 ? 8 : mr), NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
  micro_kernel<mr, NV>(k, ap, bp, c, ldc, m, n, alpha, beta);
}
/// A last B panel of at most half the panel's width runs a half-width kernel (W5's backward step
/// is 228 columns wide: 7 panels and 4 columns).
inline void run_micro_kernel(std::int64_t k, const float* ap, const float* bp, float* c, std::int64_t ldc, std::int64_t m, std::int64_t n, float alpha,
                             float beta) {
  if (nv > 1 && n <= Vec::lanes) return run_micro_kernel_cols<1>(k, ap, bp, c, ldc, m, n, alpha, beta);
  run_micro_kernel_cols<nv>(k, ap, bp, c, ldc, m, n, alpha, beta);
}

/// Prefetches slice `part` of `parts` of an A block [rows, k], along whichever of its dimensions
/// is contiguous in memory (a block with neither is left to the packing).
template <class T>
inline void prefetch_slice(const View<T>& a, std::int64_t rows, std::int64_t k, std::int64_t part, std::int64_t parts) {
  constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(T));
  if (a.cs == 1) {  // row-major: whole rows
    for (std::int64_t i = rows * part / parts, end = rows * (part + 1) / parts; i < end; ++i) {
      for (std::int64_t p = 0; p < k; p += line) __builtin_prefetch(a.p + i * a.rs + p, 0, 2);
      __builtin_prefetch(a.p + i * a.rs + k - 1, 0, 2);  // the row's last line when it starts mid-line
    }
  } else if (a.rs == 1) {  // transposed: whole depth runs
    for (std::int64_t p = k * part / parts, end = k * (part + 1) / parts; p < end; ++p) {
      for (std::int64_t i = 0; i < rows; i += line) __builtin_prefetch(a.p + p * a.cs + i, 0, 2);
      __builtin_prefetch(a.p + p * a.cs + rows - 1, 0, 2);
    }
  }
}

/// Per-thread packing buffers of E (float panels here, bf16 pairs in gemm_bf16.hpp), grown on
/// demand and reused across calls; Role tells A's buffer from B's.
template <class E, int Role>
struct Workspace {
  struct Free {
    void operator()(E* p) const { std::free(p); }
  };
  std::unique_ptr<E, Free> buf;
  std::size_t size = 0;
  E* get(std::size_t n) {
    if (n > size) {
      buf.reset(static_cast<E*>(std::aligned_alloc(64, (n * sizeof(E) + 63) / 64 * 64)));
      size = n;
    }
    return buf.get();
  }
  static Workspace& of_this_thread() {
    thread_local Workspace w;
    return w;
  }
};
inline Workspace<float, 0>& a_workspace() { return Workspace<float, 0>::of_this_thread(); }
inline Workspace<float, 1>& b_workspace() { return Workspace<float, 1>::of_this_thread(); }

/// B packed once, for many products with the same B (a recurrent weight across time steps):
/// the blocks gemm() would pack, in the order it visits them.
struct PackedB {
  std::int64_t k = 0, n = 0;
  std::vector<float> data;
};

template <class TB>
PackedB pack_b_once(View<TB> b, std::int64_t k, std::int64_t n, Rounding round = Rounding::none) {
  PackedB out{k, n, {}};
  std::size_t total = 0;
  for (std::int64_t jc = 0; jc < n; jc += nc_block)
    for (std::int64_t pc = 0; pc < k; pc += kc_block)
      total += static_cast<std::size_t>((std::min(nc_block, n - jc) + nr - 1) / nr * nr * std::min(kc_block, k - pc));
  out.data.resize(total);
  std::size_t offset = 0;
  for (std::int64_t jc = 0; jc < n; jc += nc_block)
    for (std::int64_t pc = 0; pc < k; pc += kc_block) {
      const std::int64_t nc = std::min(nc_block, n - jc), kc = std::min(kc_block, k - pc);
      const std::int64_t count = (nc + nr - 1) / nr * nr * kc;
      pack_b(View<TB>{b.p + pc * b.rs + jc * b.cs, b.rs, b.cs}, kc, nc, out.data.data() + offset);
      if constexpr (std::is_same_v<TB, float>) round_packed(round, out.data.data() + offset, count);  // bf16/f16 inputs already are
      offset += static_cast<std::size_t>(count);
    }
  return out;
}

/// Products of at most this many rows with a transposed B (x W^T; a decoding step has one row)
/// skip packing: packing such a B means transposing all of it, several times the product's own
/// cost, so they take dot products of A's rows with B's columns where they lie. (A row-major B
/// packs by plain copies and keeps the packed path, so gemm_packed_b still equals gemm for it.)
constexpr std::int64_t small_m_rows = 4;

/// Whether OpenMP's idle threads sleep at once (OMP_WAIT_POLICY=PASSIVE), read once.
inline bool omp_threads_sleep() {
  static const bool passive = [] {
    const char* p = std::getenv("OMP_WAIT_POLICY");  // case-insensitive, as OpenMP reads it
    return p && strcasecmp(p, "passive") == 0;
  }();
  return passive;
}

/// Sum of x[p] * y[p] over p < k, in Vec-wide partial sums (four, for the FMA latency) combined in
/// a fixed order.
inline float dot_product(const float* x, const float* y, std::int64_t k) {
  constexpr std::int64_t w = Vec::lanes;
  Vec s0 = Vec::zero(), s1 = Vec::zero(), s2 = Vec::zero(), s3 = Vec::zero();
  std::int64_t p = 0;
  for (; p + 4 * w <= k; p += 4 * w) {
    s0 = Vec::fma(Vec::load(x + p), Vec::load(y + p), s0);
    s1 = Vec::fma(Vec::load(x + p + w), Vec::load(y + p + w), s1);
    s2 = Vec::fma(Vec::load(x + p + 2 * w), Vec::load(y + p + 2 * w), s2);
    s3 = Vec::fma(Vec::load(x + p + 3 * w), Vec::load(y + p + 3 * w), s3);
  }
  for (; p + w <= k; p += w) s0 = Vec::fma(Vec::load(x + p), Vec::load(y + p), s0);
  alignas(64) float lanes[w];
  Vec::add(Vec::add(s0, s1), Vec::add(s2, s3)).store(lanes);
  float sum = 0.f;
  for (std::int64_t l = 0; l < w; ++l) sum += lanes[l];
  for (; p < k; ++p) sum += x[p] * y[p];
  return sum;
}

/// C = alpha * A * B^T-stored + beta * C for m <= small_m_rows rows: B's column j is the
/// contiguous run b.p + j * b.cs. Columns are split across threads; each C element is one dot
/// product by one thread, so the result does not depend on the thread count.
inline void gemm_small_m(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, View<float> a, View<float> b, float beta, float* c,
                         std::int64_t ldc, int threads) {
  std::vector<float> a_rows;  // A's rows, copied only when they are strided
  const float* arow[small_m_rows];
  if (a.cs == 1) {
    for (std::int64_t i = 0; i < m; ++i) arow[i] = a.p + i * a.rs;
  } else {
    a_rows.resize(static_cast<std::size_t>(m * k));
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t p = 0; p < k; ++p) a_rows[static_cast<std::size_t>(i * k + p)] = a.at(i, p);
      arow[i] = a_rows.data() + i * k;
    }
  }
  auto columns = [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j)
      for (std::int64_t i = 0; i < m; ++i) {  // column j stays in L1 across the rows
        const float acc = dot_product(arow[i], b.p + j * b.cs, k);
        float& out = c[i * ldc + j];
        out = beta == 0.f ? alpha * acc : alpha * acc + beta * out;
      }
  };
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const std::int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const std::int64_t j0 = n * t / nt, j1 = n * (t + 1) / nt;
      if (j0 < j1) columns(j0, j1);
    }
    return;
  }
#endif
  (void)threads;
  columns(0, n);
}

/// How the m rows of A are cut into panels (each packed MR tall, zero-padded): MR rows each,
/// except that a last panel of 2 rows after a full one becomes two panels of 4 (MR = 6 only):
/// the 4-row kernel runs at the 6-row kernel's rate per row, the 2-row one at about 2/3 of it
/// (a 32-row product, an LSTM step's, is 4 x 6 + 2 x 4 rows). The cut depends on m alone, so each
/// C element is computed by the same kernel whatever the thread count.
struct RowPanels {
  std::int64_t m, count, short_from;  // panels [short_from, count) are 4 rows tall
  explicit RowPanels(std::int64_t rows) : m(rows), count((rows + mr - 1) / mr), short_from(count) {
    if (mr == 6 && rows % mr == 2 && rows > mr) short_from = count - 2;
  }
  std::int64_t row(std::int64_t q) const { return q <= short_from ? q * mr : short_from * mr + (q - short_from) * 4; }
  std::int64_t height(std::int64_t q) const { return q < short_from ? std::min<std::int64_t>(mr, m - q * mr) : 4; }
  std::int64_t end(std::int64_t q) const { return row(q) + height(q); }
};

/// Handles the products with no rows, columns or depth (C = beta * C); true when it did.
inline bool trivial_product(std::int64_t m, std::int64_t n, std::int64_t k, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
  return true;
}
/// OpenMP's threads for a product started here (1 inside a parallel region).
inline int free_threads() {
#if defined(_OPENMP)
  if (!omp_in_parallel()) return omp_get_max_threads();
#endif
  return 1;
}
/// Threads for an [m, n, k] product: one per `flops_per_thread`, at most the free ones.
inline int threads_for(std::int64_t m, std::int64_t n, std::int64_t k, double flops_per_thread) {
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  return std::max(1, std::min<int>(free_threads(), static_cast<int>(flops / flops_per_thread)));
}

/// C = alpha * A * B + beta * C with A viewed as [m, k], B as [k, n], C row-major with ldc.
/// With `packed` (from pack_b_once of a B of at least [k, n]), B is its top-left [k, n] corner,
/// read from the packed copy instead of being packed.
/// `round` rounds float operands to bf16 or f16 as they are packed (autocast).
template <class TA, class TB>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, View<TA> a, View<TB> b, float beta, float* c, std::int64_t ldc,
          const PackedB* packed = nullptr, Rounding round = Rounding::none) {
  if (trivial_product(m, n, k, beta, c, ldc)) return;
  const int max_threads = free_threads();
  const int threads = threads_for(m, n, k, 2e6);  // enough work per thread to pay for a parallel region
  if constexpr (std::is_same_v<TA, float> && std::is_same_v<TB, float>) {
    if (m <= small_m_rows && !packed && round == Rounding::none && b.rs == 1 && b.cs != 1) {
      // These products are bound by reading B, not by their FLOPs: with OpenMP's idle threads
      // spinning (its default) a thread pays for itself from about 256 KB of B (decoding's
      // [1, 256] x [256, 768] is 768 KB); under OMP_WAIT_POLICY=PASSIVE each parallel region
      // wakes a sleeping thread (about 100 us here) and a thread needs 4 MB.
      const double b_bytes = 4.0 * static_cast<double>(n) * static_cast<double>(k), per_thread = omp_threads_sleep() ? 4.0 * (1 << 20) : 256.0 * 1024;
      return gemm_small_m(m, n, k, alpha, a, b, beta, c, ldc, std::max(1, std::min<int>(max_threads, static_cast<int>(b_bytes / per_thread))));
    }
  }
  // Row blocks: whole MR panels, at most mc_block rows each, their count a multiple of the thread
  // count and the panels dealt evenly, so every thread gets the same rows to within a panel
  // (fixed 96-row blocks gave 1024 rows on 2 threads 6 blocks and 5, 256 rows 2 and 1). Blocks
  // start on panel boundaries, so each C element is summed in the same order whatever the
  // thread count.
  const RowPanels panels(m);
  const std::int64_t m_panels = panels.count;
  std::int64_t m_blocks = (m_panels + DSM_GEMM_MC_PANELS - 1) / DSM_GEMM_MC_PANELS;
  if (threads > 1) m_blocks = (m_blocks + threads - 1) / threads * threads;
  m_blocks = std::min(m_blocks, m_panels);
  float* bwork = packed ? nullptr : b_workspace().get(static_cast<std::size_t>(kc_block * (nc_block + nr)));

  for (std::int64_t jc = 0; jc < n; jc += nc_block) {
    const std::int64_t nc = std::min(nc_block, n - jc);
    const std::int64_t n_panels = (nc + nr - 1) / nr;
    for (std::int64_t pc = 0; pc < k; pc += kc_block) {
      const std::int64_t kc = std::min(kc_block, k - pc);
      const float beta_here = pc == 0 ? beta : 1.f;  // later depth blocks accumulate
      const View<TB> bblk{b.p + pc * b.rs + jc * b.cs, b.rs, b.cs};
      // A packed B may be larger than this product's [k, n] (its top-left corner is used): its
      // block (jc, pc) starts after jc full-width columns of all its depth and pc depths of this
      // column block, and its panels are as deep as its own depth block (a panel's first kc
      // depths are this product's).
      const std::int64_t b_depth = packed ? std::min(kc_block, packed->k - pc) : kc;
      const std::int64_t packed_panels = packed ? (std::min(nc_block, packed->n - jc) + nr - 1) / nr : 0;
      float* bpack = packed ? const_cast<float*>(packed->data.data()) + jc * packed->k + packed_panels * nr * pc : bwork;  // read-only when packed
      // Split the B panels too when there are fewer row blocks than threads.
      const std::int64_t col_groups = std::min<std::int64_t>(n_panels, std::max<std::int64_t>(1, (threads + m_blocks - 1) / m_blocks));
      const std::int64_t items = m_blocks * col_groups;
      const bool pack_b_lazily = !packed && threads == 1;
      auto run_item = [&](std::int64_t item) {
        const std::int64_t ib = item / col_groups, g = item % col_groups;
        const std::int64_t q0 = m_panels * ib / m_blocks, q1 = m_panels * (ib + 1) / m_blocks;  // this block's panels
        const std::int64_t p0 = n_panels * g / col_groups, p1 = n_panels * (g + 1) / col_groups;
        float* apack = a_workspace().get(static_cast<std::size_t>((mc_block + mr) * kc));
        const std::int64_t q_regular = std::min(q1, std::max(q0, panels.short_from));  // panels [q0, q_regular) are MR tall
        if (q_regular > q0) pack_a(View<TA>{a.p + panels.row(q0) * a.rs + pc * a.cs, a.rs, a.cs}, panels.end(q_regular - 1) - panels.row(q0), kc, apack);
        for (std::int64_t q = q_regular; q < q1; ++q)
          pack_a(View<TA>{a.p + panels.row(q) * a.rs + pc * a.cs, a.rs, a.cs}, panels.height(q), kc, apack + (q - q0) * mr * kc);
        if constexpr (std::is_same_v<TA, float>) round_packed(round, apack, (q1 - q0) * mr * kc);
        // The next row block's A is read by its packing straight after these products; alone,
        // that read waits on memory (an activation saved for the backward, or rows too short for
        // the hardware prefetcher), so ask for it now, a slice per B panel.
        const std::int64_t next_ib = (item + 1) / col_groups;
        const bool prefetch_next = item + 1 < items && next_ib != ib;
        const std::int64_t next_r0 = prefetch_next ? panels.row(m_panels * next_ib / m_blocks) : 0;
        const std::int64_t next_rows = prefetch_next ? panels.row(m_panels * (next_ib + 1) / m_blocks) - next_r0 : 0;
        // One thread packs B a group of panels at a time as the first row block reaches them, the
        // next group's source prefetched during these products (packed all at once, B's first
        // read from memory stalled the thread).
        const bool pack_b_here = pack_b_lazily && ib == 0;
        constexpr std::int64_t group = b_group_panels;
        for (std::int64_t jp = p0; jp < p1; ++jp) {
          const std::int64_t j0 = jp * nr, ncols = std::min<std::int64_t>(nr, nc - j0);
          if (prefetch_next) prefetch_slice(View<TA>{a.p + next_r0 * a.rs + pc * a.cs, a.rs, a.cs}, next_rows, kc, jp - p0, p1 - p0);
          const std::int64_t group_from = p0 + (jp - p0) / group * group, group_panels = std::min(group, p1 - group_from);
          if (pack_b_here && jp == group_from) {
            pack_b(View<TB>{bblk.p + j0 * bblk.cs, bblk.rs, bblk.cs}, kc, std::min(group * nr, nc - j0), bpack + j0 * kc);
            if constexpr (std::is_same_v<TB, float>) round_packed(round, bpack + j0 * kc, group_panels * nr * kc);
          }
          const std::int64_t next_j0 = (group_from + group) * nr, next_cols = std::min(group * nr, nc - next_j0);
          const bool prefetch_b = pack_b_here && next_cols > 0;
          for (std::int64_t q = q0; q < q1; ++q) {
            if (prefetch_b)  // the next group of B panels, seen as a [columns, depth] block
              prefetch_slice(View<TB>{bblk.p + next_j0 * bblk.cs, bblk.cs, bblk.rs}, next_cols, kc, (jp - group_from) * (q1 - q0) + (q - q0),
                             group_panels * (q1 - q0));
            run_micro_kernel(kc, apack + (q - q0) * mr * kc, bpack + j0 * b_depth, c + panels.row(q) * ldc + jc + j0, ldc, panels.height(q), ncols, alpha,
                             beta_here);
          }
        }
      };
#if defined(_OPENMP)
      if (threads > 1) {
#pragma omp parallel num_threads(threads)
        {
          if (!packed) {
#pragma omp for schedule(static)
            for (std::int64_t p = 0; p < n_panels; p += b_group_panels) {
              const std::int64_t panels_here = std::min(b_group_panels, n_panels - p);
              pack_b(View<TB>{bblk.p + p * nr * bblk.cs, bblk.rs, bblk.cs}, kc, std::min(b_group_panels * nr, nc - p * nr), bpack + p * nr * kc);
              if constexpr (std::is_same_v<TB, float>) round_packed(round, bpack + p * nr * kc, panels_here * nr * kc);
            }
          }
#pragma omp for schedule(static)
          for (std::int64_t item = 0; item < items; ++item) run_item(item);
        }
        continue;
      }
#endif
      for (std::int64_t item = 0; item < items; ++item) run_item(item);  // B packed by the first (pack_b_lazily)
    }
  }
}

}  // namespace dsm::detail::gemm
