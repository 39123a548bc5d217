// dsm/core/half.hpp: the 16-bit floating-point storage types bf16 and f16.
//
// Both are storage types: arithmetic converts to float (`float(x)`), which is exact, and results
// convert back with round-to-nearest-even, handling NaN, infinities and subnormals as IEEE 754
// does. The conversions are DSM_HOST_DEVICE so kernels and host code round identically.
//
//   dsm::bf16 w{0.1f};            // nearest bf16 to 0.1
//   float y = float(w) * 2.f;     // arithmetic happens in float
//   auto h = dsm::f16::from_bits(0x3c00);   // 1.0
#pragma once

#include <cstdint>
#include <cstring>

#include "config.hpp"

namespace dsm {
namespace detail {

DSM_HOST_DEVICE inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
DSM_HOST_DEVICE inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

/// float -> bfloat16 bits, round to nearest even; NaN stays NaN (quieted).
DSM_HOST_DEVICE inline std::uint16_t float_to_bf16_bits(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  // Adding 0x7fff plus the lowest kept bit rounds half-way cases to the even neighbour; the carry
  // runs into the exponent, which also turns values past the largest finite bf16 into infinity.
  const std::uint32_t bias = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + bias) >> 16);
}
DSM_HOST_DEVICE inline float bf16_bits_to_float(std::uint16_t b) {
  return bits_float(static_cast<std::uint32_t>(b) << 16);
}

/// Shifts `m` right by `s` bits, rounding to nearest even (s in [1, 31]).
DSM_HOST_DEVICE inline std::uint32_t shift_round_even(std::uint32_t m, int s) {
  const std::uint32_t q = m >> s;
  const std::uint32_t rem = m & ((1u << s) - 1u);
  const std::uint32_t half = 1u << (s - 1);
  return q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
}

/// float -> IEEE binary16 bits, round to nearest even, with subnormals and overflow to infinity.
DSM_HOST_DEVICE inline std::uint16_t float_to_f16_bits(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // infinity or NaN; a NaN keeps its top payload bits and is quieted
    const std::uint32_t nan = ax > 0x7f800000u ? (0x0200u | ((ax >> 13) & 0x3ffu)) : 0u;
    return static_cast<std::uint16_t>(sign | 0x7c00u | nan);
  }
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  const int e = static_cast<int>(ax >> 23);                                   // biased, float
  const std::uint32_t mant = ax & 0x7fffffu;
  if (e >= 113) {  // normal in binary16: re-bias the exponent, round away 13 mantissa bits
    const std::uint32_t h = (static_cast<std::uint32_t>(e - 112) << 10) | (mant >> 13);
    const std::uint32_t rem = mant & 0x1fffu;
    const std::uint32_t up = (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ? 1u : 0u;
    return static_cast<std::uint16_t>(sign | (h + up));  // a carry may reach the exponent: fine
  }
  // Subnormal (or zero) in binary16: the value in units of 2^-24 is (1.mant * 2^24) >> (126 - e).
  if (e < 102) return static_cast<std::uint16_t>(sign);  // below 2^-25: rounds to zero
  const std::uint32_t m24 = mant | 0x800000u;
  return static_cast<std::uint16_t>(sign | shift_round_even(m24, 126 - e));
}

DSM_HOST_DEVICE inline float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  const std::uint32_t m = h & 0x3ffu;
  if (e == 0) {  // zero or subnormal: exactly m * 2^-24
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return bits_float(float_bits(v) | sign);
  }
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));  // inf / NaN
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace detail

namespace detail {
/// A 16-bit floating-point storage type; `Codec` converts between its bits and float.
template <class Codec>
struct Float16 {
  std::uint16_t bits = 0;

  Float16() = default;
  DSM_HOST_DEVICE explicit Float16(float f) : bits(Codec::encode(f)) {}
  DSM_HOST_DEVICE explicit Float16(double d) : Float16(static_cast<float>(d)) {}
  DSM_HOST_DEVICE explicit Float16(int i) : Float16(static_cast<float>(i)) {}
  DSM_HOST_DEVICE explicit Float16(long i) : Float16(static_cast<float>(i)) {}
  DSM_HOST_DEVICE explicit Float16(long long i) : Float16(static_cast<float>(i)) {}
  DSM_HOST_DEVICE explicit Float16(bool b) : Float16(b ? 1.f : 0.f) {}
  DSM_HOST_DEVICE operator float() const { return Codec::decode(bits); }

  DSM_HOST_DEVICE static Float16 from_bits(std::uint16_t b) {
    Float16 r;
    r.bits = b;
    return r;
  }
};
struct Bf16Codec {
  DSM_HOST_DEVICE static std::uint16_t encode(float f) { return float_to_bf16_bits(f); }
  DSM_HOST_DEVICE static float decode(std::uint16_t b) { return bf16_bits_to_float(b); }
};
struct F16Codec {
  DSM_HOST_DEVICE static std::uint16_t encode(float f) { return float_to_f16_bits(f); }
  DSM_HOST_DEVICE static float decode(std::uint16_t b) { return f16_bits_to_float(b); }
};
}  // namespace detail

/// Brain floating point: 1 sign, 8 exponent, 7 mantissa bits (float's range, 3 significant digits).
using bf16 = detail::Float16<detail::Bf16Codec>;
/// IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits (max 65504).
using f16 = detail::Float16<detail::F16Codec>;

}  // namespace dsm
