// dsm/expr/math.hpp: elementary functions written so that compilers vectorize them.
//
// libm's expf and tanhf are opaque calls, so a fused loop containing them (sigmoid, silu, tanh,
// softmax...) runs
// one element at a time. dsm::math::exp for float is branch-free straight-line code (range
// reduction, polynomial, exponent bits), which `omp simd` loops turn into vector code, accurate
// to about 1 ulp over the whole float range (0.92 ulp with FMA contraction, 1.08 without), with IEEE behaviour at NaN, +-inf, overflow and
// underflow (subnormal results included). Other types and device code use the standard functions.
//
// exp_nonpositive is exp for the x <= 0 of probabilities in log space (softmax, log-softmax,
// the CRF): without overflow and subnormal handling, a third fewer operations, 0 below FLT_MIN.
//
// log is the natural log in the same vectorizable form (about 1 ulp), for loops of logs such as
// the CRF's forward algorithm.
//
// fast_tanh and fast_sigmoid trade accuracy (5 ulp; 3e-7 absolute) for speed: one rational
// function each, for the gates of recurrent cells.
//
//   float y = dsm::math::exp(x), t = dsm::math::tanh(x);
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../core/config.hpp"
#include "../core/half.hpp"

namespace dsm::math {

namespace detail {
using dsm::detail::bits_float;
using dsm::detail::float_bits;

/// e^x = 2^n * p for x in float's exponent range: x = n ln2 + r with |r| <= ln2 / 2 (n rounded to
/// nearest by the 1.5 * 2^23 trick, ln2 split hi / lo), p = e^r by its Taylor series to r^7
/// (truncation error below 1e-8 on |r| <= 0.347). Shared by exp and exp_nonpositive.
struct ExpParts {
  float n, p;
};
DSM_HOST_DEVICE DSM_ALWAYS_INLINE ExpParts exp_parts(float x) {
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return {n, p};
}
}  // namespace detail

/// e^x for float in vectorizable form; other types forward to std::exp.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T exp(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return std::exp(x);
  } else {
    // Clamp x to [-104, 89] (below, the result is 0; above, inf). The comparisons are done on
    // integers: float compares may trap, which stops compilers from turning them into vector
    // selects. Flipping the magnitude bits of negative floats gives an order-preserving int key.
    const auto xi = static_cast<std::int32_t>(detail::float_bits(x));
    const std::int32_t key = xi ^ ((xi >> 31) & 0x7fffffff);
    constexpr std::int32_t lo_key = static_cast<std::int32_t>(0xc2d00000u ^ 0x7fffffffu);  // -104.0f
    constexpr std::int32_t hi_key = 0x42b20000;                                              // 89.0f
    const std::int32_t kc = std::min(std::max(key, lo_key), hi_key);
    const float xc = detail::bits_float(static_cast<std::uint32_t>(kc ^ ((kc >> 31) & 0x7fffffff)));
    const auto [n, p] = detail::exp_parts(xc);
    // 2^n as two normal powers of two, so n down to -150 gives subnormal results correctly.
    const auto ni = static_cast<std::int32_t>(n);
    const std::int32_t n1 = ni >> 1, n2 = ni - n1;
    const float s1 = detail::bits_float(static_cast<std::uint32_t>(n1 + 127) << 23);
    const float s2 = detail::bits_float(static_cast<std::uint32_t>(n2 + 127) << 23);
    const float y = p * s1 * s2;
    // NaN in, NaN out: a bit mask rather than a branch, so y is computed unconditionally.
    const std::uint32_t nan_mask = 0u - static_cast<std::uint32_t>((xi & 0x7fffffff) > 0x7f800000);
    return detail::bits_float((static_cast<std::uint32_t>(xi) & nan_mask) | (detail::float_bits(y) & ~nan_mask));
  }
}

/// e^x for the x <= 0 of probabilities in log space (softmax's x - max, log-softmax outputs,
/// the CRF's log-marginals): math::exp without its overflow and subnormal handling, about a
/// third fewer operations. Within 1 ulp like math::exp from x = -87.33 up to x = 88 (a rounding
/// error above 0 is fine); below -87.33, where e^x < FLT_MIN, it returns 0 (math::exp returns
/// the subnormal), so -inf gives 0. NaN stays NaN. Past 88 the result is wrong: use math::exp.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T exp_nonpositive(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return std::exp(x);
  } else {
    // As unsigned integers, floats from +0 up are below those with the sign bit, and negative
    // floats order by magnitude: one unsigned min clamps x below -87.33 (and -inf) to it.
    const std::uint32_t xi = detail::float_bits(x);
    constexpr std::uint32_t lo_bits = 0xc2aeac4fu;  // -87.3365f
    const auto [n, p] = detail::exp_parts(detail::bits_float(std::min(xi, lo_bits)));
    // n >= -126 here: 2^n is one normal power of two.
    const float y = p * detail::bits_float(static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23);
    const std::uint32_t in_range = 0u - static_cast<std::uint32_t>(xi <= lo_bits);
    const std::uint32_t nan_mask = 0u - static_cast<std::uint32_t>((xi & 0x7fffffffu) > 0x7f800000u);
    return detail::bits_float((detail::float_bits(y) & in_range & ~nan_mask) | (xi & nan_mask));
  }
}

/// Natural log for float in vectorizable form; other types forward to std::log. x = 2^e m with
/// m in [sqrt(1/2), sqrt(2)) (a subnormal x is scaled by 2^23 first), f = m - 1, s = f / (2 + f),
/// and log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with R the series 2z/3 + 2z^2/5 + 2z^3/7 +
/// 2z^4/9 of 2 atanh(s) / s - 2 (truncation error below 1e-9 for |s| <= 0.172); e ln2 is added
/// with ln2 split hi / lo. About 1 ulp. log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T log(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return std::log(x);
  } else {
    // Every choice below is an integer mask, not a branch or a float compare, so loops of logs
    // vectorize. Subnormals (and 0, replaced at the end) are scaled into the normal range by 2^23.
    const std::uint32_t xi = detail::float_bits(x), abs_bits = xi & 0x7fffffffu;
    const std::uint32_t subnormal = 0u - static_cast<std::uint32_t>(xi < 0x00800000u);
    const std::uint32_t bits = detail::float_bits(x * detail::bits_float(0x3f800000u + (subnormal & (0x4b000000u - 0x3f800000u))));
    // Subtracting sqrt(1/2)'s bits moves the exponent boundary to sqrt(1/2): the exponent field
    // is then e, and the mantissa field plus those bits is m in [sqrt(1/2), sqrt(2)).
    constexpr std::uint32_t sqrt_half_bits = 0x3f3504f3u;
    const std::uint32_t shifted = bits - sqrt_half_bits;
    const auto e = static_cast<float>((static_cast<std::int32_t>(shifted) >> 23) - static_cast<std::int32_t>(subnormal & 23u));
    const float f = detail::bits_float((shifted & 0x007fffffu) + sqrt_half_bits) - 1.0f;
    const float s = f / (2.0f + f), z = s * s;
    float r = 2.0f / 9.0f;
    r = r * z + 2.0f / 7.0f;
    r = r * z + 2.0f / 5.0f;
    r = r * z + 2.0f / 3.0f;
    r = r * z;
    const float half_f2 = 0.5f * f * f;
    const float y = e * 0.693359375f + ((f - half_f2 + s * (half_f2 + r)) + e * -2.12194440e-4f);
    // Special inputs: +-0 -> -inf; other negatives (and -NaN) -> NaN; +inf and +NaN -> themselves.
    const std::uint32_t zero = 0u - static_cast<std::uint32_t>(abs_bits == 0u);
    const std::uint32_t negative = (0u - (xi >> 31)) & ~zero;
    const std::uint32_t inf_or_nan = (0u - static_cast<std::uint32_t>(xi >= 0x7f800000u)) & ~(0u - (xi >> 31));
    const std::uint32_t special = zero | negative | inf_or_nan;
    return detail::bits_float((detail::float_bits(y) & ~special) | (0xff800000u & zero) | (0x7fc00000u & negative) | (xi & inf_or_nan));
  }
}

/// tanh(x) for float in vectorizable form: an odd Taylor polynomial (to x^19) below |x| = 0.625, where
/// 1 - 2 / (e^{2|x|} + 1) would cancel, and that formula above; the sign is copied back. Both
/// branches are computed and one is kept with an integer mask, so the code has no branches.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T tanh(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return std::tanh(x);
  } else {
    const std::uint32_t xi = detail::float_bits(x);
    const std::uint32_t abs_bits = xi & 0x7fffffffu;
    const float ax = detail::bits_float(abs_bits);
    const float big = 1.0f - 2.0f / (math::exp(2.0f * ax) + 1.0f);
    const float z = ax * ax;
    float p = -443861162.0f / 1856156927625.0f;
    p = p * z + 6404582.0f / 10854718875.0f;
    p = p * z - 929569.0f / 638512875.0f;
    p = p * z + 21844.0f / 6081075.0f;
    p = p * z - 1382.0f / 155925.0f;
    p = p * z + 62.0f / 2835.0f;
    p = p * z - 17.0f / 315.0f;
    p = p * z + 2.0f / 15.0f;
    p = p * z - 1.0f / 3.0f;
    const float small = ax + ax * z * p;
    const std::uint32_t small_mask = 0u - static_cast<std::uint32_t>(abs_bits < 0x3f200000u);  // |x| < 0.625
    const std::uint32_t mag = (detail::float_bits(small) & small_mask) | (detail::float_bits(big) & ~small_mask);
    return detail::bits_float(mag | (xi & 0x80000000u));
  }
}

/// 1 / (1 + e^-x), with the vectorizable exp for float.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + math::exp(-x));
}

/// tanh for float as one rational function, x P(x^2) / Q(x^2) with |x| clamped to 9.1 (past it
/// tanh is 1 in float): within 5 ulp of the exact value (0.8 on average) where tanh above is
/// within 1.5, for about a third of the work (no exp, one division). Meant for recurrent gates,
/// whose outputs are summed and whose cost is a large part of a step; coefficients from
/// tests/reference/fit_fast_tanh.py. NaN stays NaN; other types and device code use std::tanh.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T fast_tanh(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return std::tanh(x);
  } else {
    // The clamp is an integer min on the magnitude bits (vectorizes, unlike a float compare),
    // skipped for NaN so that it propagates.
    const std::uint32_t xi = detail::float_bits(x), abs_bits = xi & 0x7fffffffu;
    constexpr std::uint32_t clamp_bits = 0x4111999au;  // 9.1f
    const std::uint32_t clamped = abs_bits > 0x7f800000u ? abs_bits : std::min(abs_bits, clamp_bits);
    const float xc = detail::bits_float(clamped | (xi & 0x80000000u));
    const float z = xc * xc;
    float p = -8.228293834e-14f;
    p = p * z + 5.177638634e-11f;
    p = p * z - 2.001907329e-08f;
    p = p * z + 1.110391788e-05f;
    p = p * z + 3.099161691e-03f;
    p = p * z + 1.307972395e-01f;
    p = p * z + 1.0f;
    float q = 2.539150009e-04f;
    q = q * z + 2.447610486e-02f;
    q = q * z + 4.641305033e-01f;
    q = q * z + 1.0f;
    return xc * p / q;
  }
}

/// The logistic function through fast_tanh: sigmoid(x) = (1 + tanh(x / 2)) / 2, within 3e-7 in
/// absolute terms (but not in relative ones far left, where the result is below 1e-7: use sigmoid
/// there). For recurrent gates, like fast_tanh.
template <class T>
DSM_HOST_DEVICE DSM_ALWAYS_INLINE T fast_sigmoid(T x) {
  if constexpr (!std::is_same_v<T, float> || DSM_IN_DEVICE_CODE) {
    return math::sigmoid(x);
  } else {
    return 0.5f + 0.5f * math::fast_tanh(0.5f * x);
  }
}

}  // namespace dsm::math
