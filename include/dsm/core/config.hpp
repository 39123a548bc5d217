// dsm/core/config.hpp: compiler and platform macros shared by every layer.
//
// DSM_HOST_DEVICE marks functions that must run both in host code and inside CUDA kernels
// (functors, evaluators, dtype conversions). Under a plain C++ compiler it expands to nothing.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define DSM_HOST_DEVICE __host__ __device__
#define DSM_DEVICE_COMPILER 1
#else
#define DSM_HOST_DEVICE
#define DSM_DEVICE_COMPILER 0
#endif

#if defined(__CUDA_ARCH__)
#define DSM_IN_DEVICE_CODE 1
#else
#define DSM_IN_DEVICE_CODE 0
#endif

#if defined(__GNUC__)
#define DSM_ALWAYS_INLINE inline __attribute__((always_inline))
#define DSM_RESTRICT __restrict__
#else
#define DSM_ALWAYS_INLINE inline
#define DSM_RESTRICT
#endif

// DSM_HOT_KERNEL: compiled at -O3 whatever the translation unit's level. At -O2 GCC 12 spills two
// of the GEMM micro-kernel's twelve accumulators to the stack, which halves its speed (42 against
// 75 GFLOP/s); users building at -O2 (RelWithDebInfo, distribution flags) would get that GEMM.
#if !defined(DSM_HOT_KERNEL)
#if defined(__GNUC__) && !defined(__clang__)
#define DSM_HOT_KERNEL __attribute__((optimize("O3")))
#else
#define DSM_HOT_KERNEL
#endif
#endif

namespace dsm {
/// The largest tensor rank; shapes and strides are stored inline at this size.
inline constexpr int max_rank = 8;
}  // namespace dsm
