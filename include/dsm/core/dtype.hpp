// dsm/core/dtype.hpp: the element types a tensor can hold and what is known about each.
//
// dtype_traits<T> gives the run-time tag, a printable name, and the types arithmetic uses:
// compute_t<T> is what an expression computes in (float for bf16/f16, T otherwise) and
// accumulate_t<T> what a reduction sums in (double for floating types, int64 for integers).
//
//   static_assert(dsm::dtype_traits<dsm::bf16>::is_floating);
//   using C = dsm::compute_t<dsm::f16>;   // float
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include "half.hpp"

namespace dsm {

enum class dtype : std::uint8_t { float32, float64, bfloat16, float16, int8, uint8, int32, int64, boolean };

template <class T>
struct dtype_traits;  // defined only for the supported element types

#define DSM_DTYPE(T, TAG, NAME, FLOATING, COMPUTE, ACC)          \
  template <>                                                    \
  struct dtype_traits<T> {                                       \
    static constexpr dtype id = dtype::TAG;                      \
    static constexpr std::string_view name = NAME;               \
    static constexpr bool is_floating = FLOATING;                \
    static constexpr bool is_integral = !FLOATING;               \
    using compute_type = COMPUTE;                                \
    using accumulate_type = ACC;                                 \
  };
DSM_DTYPE(float, float32, "float32", true, float, double)
DSM_DTYPE(double, float64, "float64", true, double, double)
DSM_DTYPE(bf16, bfloat16, "bfloat16", true, float, double)
DSM_DTYPE(f16, float16, "float16", true, float, double)
DSM_DTYPE(std::int8_t, int8, "int8", false, std::int8_t, std::int64_t)
DSM_DTYPE(std::uint8_t, uint8, "uint8", false, std::uint8_t, std::int64_t)
DSM_DTYPE(std::int32_t, int32, "int32", false, std::int32_t, std::int64_t)
DSM_DTYPE(std::int64_t, int64, "int64", false, std::int64_t, std::int64_t)
DSM_DTYPE(bool, boolean, "bool", false, bool, std::int64_t)
#undef DSM_DTYPE

template <class T>
using compute_t = typename dtype_traits<T>::compute_type;
template <class T>
using accumulate_t = typename dtype_traits<T>::accumulate_type;

template <class T>
inline constexpr bool is_floating_v = dtype_traits<T>::is_floating;

/// Printable name of a run-time dtype tag.
constexpr std::string_view dtype_name(dtype d) {
  switch (d) {
    case dtype::float32: return "float32";
    case dtype::float64: return "float64";
    case dtype::bfloat16: return "bfloat16";
    case dtype::float16: return "float16";
    case dtype::int8: return "int8";
    case dtype::uint8: return "uint8";
    case dtype::int32: return "int32";
    case dtype::int64: return "int64";
    case dtype::boolean: return "bool";
  }
  return "?";
}

/// Converts between any two element types, going through float for the 16-bit ones.
template <class To, class From>
DSM_HOST_DEVICE inline To convert(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<To, bool>) {
    return static_cast<compute_t<From>>(x) != compute_t<From>(0);
  } else if constexpr (std::is_same_v<To, bf16> || std::is_same_v<To, f16>) {
    return To(static_cast<float>(static_cast<compute_t<From>>(x)));
  } else {
    return static_cast<To>(static_cast<compute_t<From>>(x));
  }
}

}  // namespace dsm
