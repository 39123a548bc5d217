// dsm/core/detail/transpose8x8.hpp: the in-register transpose of an 8 x 8 float block (AVX),
// shared by the GEMM's packing and the CPU's transposing copy.
#pragma once

#if defined(__AVX2__)
#include <immintrin.h>

namespace dsm::detail {

/// In-register transpose of an 8 x 8 float block: r[i] lane j becomes r[j] lane i.
inline void transpose8x8(__m256 (&r)[8]) {
  __m256 lo[4], hi[4], q[8];
  for (int i = 0; i < 4; ++i) {  // interleave row pairs: (0,1), (2,3), (4,5), (6,7)
    lo[i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    hi[i] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // four-row columns within each 128-bit half
    q[4 * h + 0] = _mm256_shuffle_ps(lo[2 * h], lo[2 * h + 1], _MM_SHUFFLE(1, 0, 1, 0));
    q[4 * h + 1] = _mm256_shuffle_ps(lo[2 * h], lo[2 * h + 1], _MM_SHUFFLE(3, 2, 3, 2));
    q[4 * h + 2] = _mm256_shuffle_ps(hi[2 * h], hi[2 * h + 1], _MM_SHUFFLE(1, 0, 1, 0));
    q[4 * h + 3] = _mm256_shuffle_ps(hi[2 * h], hi[2 * h + 1], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int j = 0; j < 4; ++j) {  // join the halves of rows 0-3 and rows 4-7
    r[j] = _mm256_permute2f128_ps(q[j], q[4 + j], 0x20);
    r[j + 4] = _mm256_permute2f128_ps(q[j], q[4 + j], 0x31);
  }
}

}  // namespace dsm::detail
#endif
