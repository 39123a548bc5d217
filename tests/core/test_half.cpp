// Exhaustive checks of the bf16 and f16 conversions: all 65,536 bit patterns decode exactly, and
// every representable value, every midpoint between neighbours and the floats just beside each
// midpoint round as round-to-nearest-even says, against a brute-force nearest-value reference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <dsm/core/concepts.hpp>
#include <dsm/core/dtype.hpp>

namespace {

// Independent decoder: the value a 16-bit pattern denotes, from the format's definition.
double decode(std::uint16_t bits, int exp_bits, int man_bits) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int e = (bits >> man_bits) & ((1 << exp_bits) - 1);
  const int m = bits & ((1 << man_bits) - 1);
  const double sign = (bits & 0x8000) ? -1.0 : 1.0;
  if (e == (1 << exp_bits) - 1) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, 1 - bias - man_bits);
  return sign * std::ldexp((1 << man_bits) + m, e - bias - man_bits);
}

struct Format {
  int exp_bits, man_bits;
  std::vector<double> table;  // non-negative values by bit pattern, plus the next power as "infinity"
  std::uint16_t inf_bits;
  Format(int eb, int mb) : exp_bits(eb), man_bits(mb) {
    inf_bits = static_cast<std::uint16_t>(((1 << eb) - 1) << mb);
    for (std::uint32_t p = 0; p < inf_bits; ++p) table.push_back(decode(static_cast<std::uint16_t>(p), eb, mb));
    table.push_back(2 * table.back() - table[inf_bits - 2]);  // one step past the largest finite value
  }
  // Brute-force round-to-nearest-even of a finite float onto the format.
  std::uint16_t nearest(float xf) const {
    const double x = std::fabs(static_cast<double>(xf));
    const std::uint16_t sign = std::signbit(xf) ? 0x8000 : 0;
    if (x >= table.back()) return sign | inf_bits;
    const auto it = std::upper_bound(table.begin(), table.end(), x);
    const auto lo = static_cast<std::uint16_t>(it - table.begin() - 1);
    const auto hi = static_cast<std::uint16_t>(lo + 1);
    const double dlo = x - table[lo], dhi = table[hi] - x;
    const std::uint16_t pick = dlo < dhi ? lo : (dhi < dlo ? hi : ((lo & 1) ? hi : lo));
    return sign | pick;
  }
};

template <class H>
void check_exhaustive(const Format& fmt) {
  std::int64_t checked = 0;
  for (std::uint32_t p = 0; p < 65536; ++p) {
    const auto bits = static_cast<std::uint16_t>(p);
    const double want = decode(bits, fmt.exp_bits, fmt.man_bits);
    const float got = static_cast<float>(H::from_bits(bits));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
      REQUIRE(std::isnan(static_cast<float>(H(got))));  // NaN stays NaN through the round trip
      continue;
    }
    REQUIRE(static_cast<double>(got) == want);
    REQUIRE(std::signbit(got) == static_cast<bool>(bits & 0x8000));
    REQUIRE(H(got).bits == bits);  // exact values round-trip
    ++checked;
    if (std::isinf(want)) continue;
    // Midpoint to the next value away from zero, and the floats just either side of it.
    const std::uint16_t mag = bits & 0x7fff;
    const float sign = (bits & 0x8000) ? -1.f : 1.f;
    const float mid = sign * static_cast<float>((fmt.table[mag] + fmt.table[mag + 1u]) / 2);
    for (float x : {mid, std::nextafter(mid, INFINITY), std::nextafter(mid, -INFINITY)}) {
      REQUIRE_MESSAGE(H(x).bits == fmt.nearest(x), "pattern " << p << " x " << x);
      ++checked;
    }
  }
  CHECK(checked > 4 * 60000);
}

}  // namespace

TEST_CASE("f16: all 65,536 bit patterns against a brute-force reference") { check_exhaustive<dsm::f16>(Format(5, 10)); }

TEST_CASE("bf16: all 65,536 bit patterns against a brute-force reference") { check_exhaustive<dsm::bf16>(Format(8, 7)); }

TEST_CASE("f16: overflow, underflow and specials") {
  CHECK(dsm::f16(65504.f).bits == 0x7bff);
  CHECK(dsm::f16(65519.99f).bits == 0x7bff);
  CHECK(dsm::f16(65520.f).bits == 0x7c00);  // tie between 65504 and "65536" goes to even: inf
  CHECK(dsm::f16(1e9f).bits == 0x7c00);
  CHECK(dsm::f16(-1e9f).bits == 0xfc00);
  CHECK(dsm::f16(std::ldexp(1.f, -25)).bits == 0x0000);          // exactly half the smallest subnormal: even = 0
  CHECK(dsm::f16(std::ldexp(1.5f, -25)).bits == 0x0001);         // above half: smallest subnormal
  CHECK(dsm::f16(std::ldexp(1.f, -24)).bits == 0x0001);
  CHECK(dsm::f16(std::ldexp(3.f, -25)).bits == 0x0002);          // 1.5 ulp: tie to even (2)
  CHECK(dsm::f16(1e-30f).bits == 0x0000);
  CHECK(dsm::f16(-0.f).bits == 0x8000);
  CHECK(dsm::f16(std::numeric_limits<float>::denorm_min()).bits == 0);
  CHECK(std::isnan(static_cast<float>(dsm::f16(std::nanf("")))));
  CHECK(dsm::f16(INFINITY).bits == 0x7c00);
}

TEST_CASE("bf16: rounding, overflow and specials") {
  CHECK(dsm::bf16(1.f).bits == 0x3f80);
  CHECK(dsm::bf16(1.00390625f).bits == 0x3f80);  // 1 + 2^-8: tie, stays even
  CHECK(dsm::bf16(1.01171875f).bits == 0x3f82);  // 1 + 3*2^-8: tie, rounds up to even
  CHECK(dsm::bf16(std::numeric_limits<float>::max()).bits == 0x7f80);  // past the largest bf16: inf
  CHECK(dsm::bf16(std::numeric_limits<float>::denorm_min()).bits == 0x0000);
  CHECK(dsm::bf16(std::ldexp(1.f, -133)).bits == 0x0001);  // smallest bf16 subnormal
  CHECK(std::isnan(static_cast<float>(dsm::bf16(std::nanf("")))));
  CHECK(dsm::bf16(-INFINITY).bits == 0xff80);
}

TEST_CASE("dtype traits and conversions") {
  static_assert(dsm::dtype_traits<dsm::bf16>::is_floating);
  static_assert(std::is_same_v<dsm::compute_t<dsm::f16>, float>);
  static_assert(std::is_same_v<dsm::accumulate_t<std::int32_t>, std::int64_t>);
  static_assert(dsm::Scalar<bool> && !dsm::Scalar<char>);
  CHECK(dsm::dtype_name(dsm::dtype_traits<dsm::bf16>::id) == "bfloat16");
  CHECK(dsm::dtype_traits<std::uint8_t>::name == "uint8");
  CHECK(dsm::convert<std::int32_t>(dsm::bf16(-3.f)) == -3);
  CHECK(dsm::convert<bool>(0.5f));
  CHECK_FALSE(dsm::convert<bool>(dsm::f16(0.f)));
  CHECK(static_cast<float>(dsm::convert<dsm::f16>(dsm::bf16(2.5f))) == 2.5f);
}
