// dsm::math::exp (the vectorizable float exp behind exp, sigmoid, silu, softplus and softmax),
// tanh, log, and the rational fast_tanh / fast_sigmoid of the LSTM gates.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <dsm/dsm.hpp>

TEST_CASE("math::exp for float is within about 1 ulp of the exact value over the whole range") {
  double worst = 0;
  std::int64_t checked = 0;
  for (std::uint32_t u = 0; u < 0xffffffffu - 9973u; u += 9973u) {  // ~430,000 floats, both signs
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (!(x > -103.9f && x < 88.7f)) continue;
    const double exact = std::exp(static_cast<double>(x));
    const float nearest = static_cast<float>(exact);
    const double ulp = nearest < std::numeric_limits<float>::min() ? std::ldexp(1.0, -149) : std::nextafter(nearest, INFINITY) - nearest;
    worst = std::max(worst, std::abs(dsm::math::exp(x) - exact) / ulp);
    ++checked;
  }
  CHECK(checked > 200000);
  // 0.92 ulp when the compiler contracts the polynomial into FMAs, 1.08 when it does not.
  CHECK(worst < 1.25);
}

TEST_CASE("math::exp_nonpositive equals math::exp's accuracy from -87.33 to 88, and is 0 below FLT_MIN") {
  double worst = 0;
  std::int64_t checked = 0, flushed = 0;
  for (std::uint32_t u = 0; u < 0xffffffffu - 9973u; u += 9973u) {  // both signs, the same sample as above
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (!(x > -104.f && x < 88.f)) continue;
    const double exact = std::exp(static_cast<double>(x));
    const float got = dsm::math::exp_nonpositive(x);
    if (exact < std::numeric_limits<float>::min()) {  // math::exp gives the subnormal; this one 0 or FLT_MIN's neighbourhood
      flushed += got == 0.f;
      CHECK(got <= std::numeric_limits<float>::min() * 1.0001f);
      continue;
    }
    const float nearest = static_cast<float>(exact);
    worst = std::max(worst, std::abs(got - exact) / (std::nextafter(nearest, INFINITY) - nearest));
    ++checked;
  }
  CHECK(checked > 200000);
  CHECK(flushed > 0);
  CHECK(worst < 1.25);
  CHECK(dsm::math::exp_nonpositive(0.f) == 1.f);
  CHECK(dsm::math::exp_nonpositive(-0.f) == 1.f);
  CHECK(dsm::math::exp_nonpositive(-INFINITY) == 0.f);  // a masked score
  CHECK(dsm::math::exp_nonpositive(-88.f) == 0.f);
  CHECK(dsm::math::exp_nonpositive(-87.3f) == doctest::Approx(std::exp(static_cast<double>(-87.3f))).scale(0).epsilon(1e-6));
  CHECK(std::isnan(dsm::math::exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(dsm::math::exp_nonpositive(-std::numeric_limits<float>::quiet_NaN())));  // x86's default NaN has the sign bit
  CHECK(dsm::math::exp_nonpositive(-1.0) == std::exp(-1.0));  // double goes to std::exp
}

TEST_CASE("math::exp handles NaN, infinities, overflow and underflow as IEEE expf") {
  CHECK(std::isnan(dsm::math::exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(dsm::math::exp(INFINITY) == INFINITY);
  CHECK(dsm::math::exp(-INFINITY) == 0.f);
  CHECK(dsm::math::exp(88.8f) == INFINITY);
  CHECK(dsm::math::exp(-200.f) == 0.f);
  CHECK(dsm::math::exp(0.f) == 1.f);
  CHECK(dsm::math::exp(-103.5f) == std::exp(-103.5f));  // a subnormal result
  CHECK(dsm::math::exp(1.0) == std::exp(1.0));          // double goes to std::exp
  CHECK(dsm::math::sigmoid(-100.f) == doctest::Approx(0.f));
  CHECK(dsm::math::sigmoid(100.f) == 1.f);
}

TEST_CASE("math::log for float is within 1.3 ulp over every positive float class, with IEEE specials") {
  double worst = 0;
  std::int64_t checked = 0;
  for (std::uint32_t u = 1; u < 0x7f800000u; u += 997u) {  // ~2.1 million positive floats, subnormals included
    float x;
    std::memcpy(&x, &u, sizeof x);
    const double exact = std::log(static_cast<double>(x));
    const float nearest = static_cast<float>(exact);
    const double ulp = std::abs(static_cast<double>(std::nextafter(nearest, INFINITY)) - nearest);
    worst = std::max(worst, std::abs(dsm::math::log(x) - exact) / (ulp > 0 ? ulp : 1e-45));
    ++checked;
  }
  CHECK(checked > 2000000);
  CHECK(worst < 1.3);  // 1.25 over all 2^31 positive floats, with or without FMA contraction
  CHECK(dsm::math::log(1.f) == 0.f);
  CHECK(dsm::math::log(0.f) == -INFINITY);
  CHECK(dsm::math::log(-0.f) == -INFINITY);
  CHECK(std::isnan(dsm::math::log(-1.f)));
  CHECK(std::isnan(dsm::math::log(-INFINITY)));
  CHECK(std::isnan(dsm::math::log(std::numeric_limits<float>::quiet_NaN())));
  CHECK(dsm::math::log(INFINITY) == INFINITY);
  CHECK(dsm::math::log(std::numeric_limits<float>::denorm_min()) == doctest::Approx(-103.2789).epsilon(1e-6));
  CHECK(dsm::math::log(2.0) == std::log(2.0));  // double goes to std::log
  // The vectorized loop computes the same values as the scalar calls.
  std::vector<float> in(37), out(37);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = 1e-3f * static_cast<float>(i * i) + (i % 5 == 0 ? 0.f : 1e-40f);
  DSM_SIMD for (std::size_t i = 0; i < in.size(); ++i) out[i] = dsm::math::log(in[i]);
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(out[i] == dsm::math::log(in[i]));
}

TEST_CASE("math::tanh for float is within 1.5 ulp everywhere and exact at the specials") {
  double worst = 0;
  for (std::uint32_t u = 0; u < 0xffffffffu - 9973u; u += 9973u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (std::isnan(x)) continue;
    const double exact = std::tanh(static_cast<double>(x));
    const float nearest = static_cast<float>(exact);
    if (std::abs(nearest) < std::numeric_limits<float>::min()) continue;  // tanh(x) = x there; checked below
    const double ulp = std::abs(static_cast<double>(std::nextafter(nearest, INFINITY)) - nearest);
    worst = std::max(worst, std::abs(dsm::math::tanh(x) - exact) / ulp);
  }
  CHECK(worst < 1.5);
  CHECK(std::isnan(dsm::math::tanh(std::numeric_limits<float>::quiet_NaN())));
  CHECK(dsm::math::tanh(INFINITY) == 1.f);
  CHECK(dsm::math::tanh(-INFINITY) == -1.f);
  CHECK(std::signbit(dsm::math::tanh(-0.f)));
  CHECK(dsm::math::tanh(1e-30f) == 1e-30f);
  CHECK(dsm::math::tanh(20.f) == 1.f);
  dsm::Tensor<float> t = dsm::tanh(dsm::Tensor<float>::from({-3.f, 0.5f}));
  CHECK(t(0) == doctest::Approx(std::tanh(-3.0)).epsilon(2e-7));
  CHECK(t(1) == doctest::Approx(std::tanh(0.5)).epsilon(2e-7));
}

TEST_CASE("float sigmoid, silu and softmax through the fast exp stay within float rounding of double") {
  auto x = dsm::Tensor<float>::linspace(-20.0, 20.0, 4001);
  dsm::Tensor<float> s = dsm::sigmoid(x), si = dsm::silu(x);
  auto xd = x.to<double>();
  dsm::Tensor<double> sd = dsm::sigmoid(xd), sid = dsm::silu(xd);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    CHECK(s(i) == doctest::Approx(sd(i)).epsilon(3e-7));
    CHECK(si(i) == doctest::Approx(sid(i)).epsilon(3e-7).scale(1e-30));
  }
  auto p = dsm::softmax(x.view({1, -1}), -1).to<double>();
  auto pd = dsm::softmax(xd.view({1, -1}), -1);
  // x - max is rounded in float (up to 2e-6 absolute near -40), which bounds the relative error.
  for (std::int64_t i = 0; i < x.numel(); i += 7) CHECK(p(0, i) == doctest::Approx(pd(0, i)).epsilon(5e-6).scale(1e-30));
}

TEST_CASE("math::fast_tanh is within 5 ulp of tanh everywhere, fast_sigmoid within 3e-7, and both keep the specials") {
  auto ulp_error = [](float x, double exact) {
    const float nearest = static_cast<float>(exact);
    return std::abs(dsm::math::fast_tanh(x) - exact) / std::abs(static_cast<double>(std::nextafter(nearest, INFINITY)) - nearest);
  };
  double worst_tanh = 0, worst_sigmoid = 0;
  std::int64_t counted = 0;
  for (std::uint32_t u = 0; u < 0xffffffffu - 9973u; u += 9973u) {  // ~430,000 floats, both signs
    float x;
    std::memcpy(&x, &u, sizeof x);
    if (std::isnan(x)) continue;
    const double exact = std::tanh(static_cast<double>(x));
    const float nearest = static_cast<float>(exact);
    if (std::abs(nearest) >= std::numeric_limits<float>::min()) {
      worst_tanh = std::max(worst_tanh, ulp_error(x, exact));
      ++counted;
    }
    const double sig = 1.0 / (1.0 + std::exp(-static_cast<double>(x)));
    worst_sigmoid = std::max(worst_sigmoid, std::abs(dsm::math::fast_sigmoid(x) - sig));
  }
  CHECK(counted > 400000);
  CHECK(worst_tanh < 5.0);  // 4.7 (tests/reference/fit_fast_tanh.py)
  // Where tanh is neither x nor 1 in float, the typical error is under an ulp (0.8 fitted).
  double sum = 0;
  for (int i = 1; i <= 100000; ++i) {
    const float x = 9.1f * static_cast<float>(i) / 100000.f;
    sum += ulp_error(x, std::tanh(static_cast<double>(x)));
  }
  CHECK(sum / 100000 < 1.0);
  CHECK(worst_sigmoid < 3e-7);
  CHECK(std::isnan(dsm::math::fast_tanh(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(dsm::math::fast_sigmoid(std::numeric_limits<float>::quiet_NaN())));
  CHECK(dsm::math::fast_tanh(INFINITY) == 1.f);
  CHECK(dsm::math::fast_tanh(-INFINITY) == -1.f);
  CHECK(dsm::math::fast_tanh(30.f) == 1.f);
  CHECK(std::signbit(dsm::math::fast_tanh(-0.f)));
  CHECK(dsm::math::fast_tanh(1e-30f) == 1e-30f);
  CHECK(dsm::math::fast_sigmoid(INFINITY) == 1.f);
  CHECK(dsm::math::fast_sigmoid(-INFINITY) == 0.f);
  CHECK(dsm::math::fast_sigmoid(0.f) == 0.5f);
  // Other types take the accurate functions.
  CHECK(dsm::math::fast_tanh(0.3) == std::tanh(0.3));
  CHECK(dsm::math::fast_sigmoid(0.3) == dsm::math::sigmoid(0.3));
}
