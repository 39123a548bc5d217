#include <doctest/doctest.h>

#include <cmath>

#include <dsm/dsm.hpp>

TEST_CASE("Philox-4x32-10 matches the Random123 known-answer vectors") {
  // From Random123's tests/kat_vectors (counter, key -> output).
  auto r = dsm::philox4x32_10({{0, 0, 0, 0}}, 0, 0);
  CHECK(r.w[0] == 0x6627e8d5u);
  CHECK(r.w[1] == 0xe169c58du);
  CHECK(r.w[2] == 0xbc57ac4cu);
  CHECK(r.w[3] == 0x9b00dbd8u);
  r = dsm::philox4x32_10({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(r.w[0] == 0x408f276du);
  CHECK(r.w[1] == 0x41c83b0eu);
  CHECK(r.w[2] == 0xa20bc7c6u);
  CHECK(r.w[3] == 0x6d5451fdu);
  r = dsm::philox4x32_10({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  CHECK(r.w[0] == 0xd16cfe09u);
  CHECK(r.w[1] == 0x94fdccebu);
  CHECK(r.w[2] == 0x5001e420u);
  CHECK(r.w[3] == 0x24126ea1u);
}

TEST_CASE("the same seed gives the same tensor whatever the thread count") {
  const int saved = dsm::get_num_threads();
  dsm::set_num_threads(1);
  dsm::Generator g1{7};
  auto a = dsm::Tensor<float>::randn({100003}, g1);
  auto ai = dsm::Tensor<std::int64_t>::randint(-5, 9, {5001}, g1);
  dsm::set_num_threads(2);
  dsm::Generator g2{7};
  auto b = dsm::Tensor<float>::randn({100003}, g2);
  auto bi = dsm::Tensor<std::int64_t>::randint(-5, 9, {5001}, g2);
  dsm::set_num_threads(saved);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(ai.to_vector() == bi.to_vector());
  CHECK(g1.offset() == g2.offset());
}

TEST_CASE("generator state replays a stream and consecutive draws differ") {
  dsm::Generator g{99};
  const auto st = g.state();
  auto a = dsm::Tensor<double>::rand({37}, g);
  auto b = dsm::Tensor<double>::rand({37}, g);
  CHECK(a.to_vector() != b.to_vector());
  g.set_state(st);
  CHECK(dsm::Tensor<double>::rand({37}, g).to_vector() == a.to_vector());
  dsm::manual_seed(3);
  auto c = dsm::rand<float>({8});
  dsm::manual_seed(3);
  CHECK(dsm::rand<float>({8}).to_vector() == c.to_vector());
}

TEST_CASE_TEMPLATE("uniform and normal draws have the right moments and ranges", T, float, double, dsm::bf16, dsm::f16) {
  dsm::Generator g{2024};
  const std::int64_t n = 200000;
  auto u = dsm::Tensor<T>::rand({n}, g).template to<double>();
  auto z = dsm::Tensor<T>::randn({n}, g).template to<double>();
  CHECK(dsm::min(u).item() >= 0.0);
  CHECK(dsm::max(u).item() < 1.0);
  CHECK(std::abs(dsm::mean(u).item() - 0.5) < 0.005);
  CHECK(std::abs(dsm::var(u).item() - 1.0 / 12) < 0.003);
  CHECK(std::abs(dsm::mean(z).item()) < 0.01);
  CHECK(std::abs(dsm::var(z).item() - 1.0) < 0.02);
  // Tail mass beyond 2 sigma is about 4.55%.
  dsm::Tensor<double> tail = dsm::cast<double>(dsm::abs(z) > 2.0);
  CHECK(std::abs(dsm::mean(tail).item() - 0.0455) < 0.004);
}

TEST_CASE("randint covers its range uniformly and checks it") {
  dsm::Generator g{5};
  auto r = dsm::Tensor<std::int64_t>::randint(3, 8, {50000}, g);
  CHECK(dsm::min(r).item() == 3);
  CHECK(dsm::max(r).item() == 7);
  auto counts = dsm::sum(dsm::one_hot(r, 8), 0);
  for (std::int64_t k = 3; k < 8; ++k) CHECK(std::abs(static_cast<double>(counts(k)) - 10000.0) < 400.0);
  CHECK_THROWS_WITH_AS(dsm::Tensor<std::int64_t>::randint(4, 4, {2}, g), "randint: empty range [4, 4)", dsm::config_error);
}
