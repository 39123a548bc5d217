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

namespace dsm {
/// The largest tensor rank; shapes and strides are stored inline at this size.
inline constexpr int max_rank = 8;
}  // namespace dsm
