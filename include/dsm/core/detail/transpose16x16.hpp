// dsm/core/detail/transpose16x16.hpp: the in-register transpose of a 16 x 16 float block
// (AVX-512), for the GEMM's packing: 64 shuffles per 256 floats, where two 8 x 8 AVX transposes
// take 96 shuffles and twice the loads and stores for the same block.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>

namespace dsm::detail {

/// In-register transpose of a 16 x 16 float block: r[i] lane j becomes r[j] lane i. The unpacks
/// and lane shuffles are the zero-masked forms with every lane kept: GCC 12's plain ones pass an
/// "undefined" vector that -Wuninitialized reports (GCC bug 105593); the code is the same.
inline void transpose16x16(__m512 (&r)[16]) {
  constexpr __mmask16 all = 0xFFFF;
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {  // interleave row pairs within each 128-bit lane
    t[2 * i] = _mm512_maskz_unpacklo_ps(all, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(all, r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + c], 128-bit lane L: column 4L + c of rows 4g..4g+3
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; ++c) {  // gather each column's four 4-row pieces, lanes 0-1 and 2-3 apart
    const __m512 x_lo = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], 0x44), x_hi = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], 0xEE);
    const __m512 y_lo = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], 0x44), y_hi = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_maskz_shuffle_f32x4(all, x_lo, y_lo, 0x88);
    r[4 + c] = _mm512_maskz_shuffle_f32x4(all, x_lo, y_lo, 0xDD);
    r[8 + c] = _mm512_maskz_shuffle_f32x4(all, x_hi, y_hi, 0x88);
    r[12 + c] = _mm512_maskz_shuffle_f32x4(all, x_hi, y_hi, 0xDD);
  }
}

}  // namespace dsm::detail
#endif
