#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using dsm::Shape;
using TD = dsm::Tensor<double>;
using TF = dsm::Tensor<float>;

namespace {
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("ops.txt"); }
}  // namespace

TEST_CASE("sum, mean, var, logsumexp, max and min over any dims equal PyTorch") {
  const TD x = fx().get("red.x");  // [3, 4, 5]
  struct Case {
    const char* tag;
    Shape dims;
    bool keep;
  };
  for (const Case& c : {Case{"all", {}, false}, Case{"0", {0}, false}, Case{"1_k", {1}, true}, Case{"2", {2}, false}, Case{"0_2", {0, 2}, false},
                        Case{"-1_0_k", {-1, 0}, true}}) {
    CAPTURE(c.tag);
    const std::string t = c.tag;
    dsm_test::check_close(dsm::sum(x, c.dims, c.keep), fx().get("sum." + t), 1e-13, 1e-13);
    dsm_test::check_close(dsm::mean(x, c.dims, c.keep), fx().get("mean." + t), 1e-13, 1e-13);
    dsm_test::check_close(dsm::var(x, c.dims, c.keep), fx().get("var." + t), 1e-12, 1e-13);
    dsm_test::check_close(dsm::logsumexp(x, c.dims, c.keep), fx().get("lse." + t), 1e-13, 1e-13);
    dsm_test::check_close(dsm::max(x, c.dims, c.keep), fx().get("amax." + t), 0, 0);
    dsm_test::check_close(dsm::min(x, c.dims, c.keep), fx().get("amin." + t), 0, 0);
  }
  for (int d = 0; d < 3; ++d) {
    dsm_test::check_equal(dsm::argmax(x, d), fx().get<std::int64_t>("argmax." + std::to_string(d)));
    dsm_test::check_equal(dsm::argmin(x, d), fx().get<std::int64_t>("argmin." + std::to_string(d)));
  }
  CHECK(dsm::argmax(x).item() == fx().get<std::int64_t>("argmax.all").item());
}

TEST_CASE("reductions of strided views and expressions") {
  const TD x = fx().get("red.x");
  const TD xt = x.permute({2, 0, 1});  // non-contiguous input
  dsm_test::check_close(dsm::sum(xt, {1, 2}), dsm::sum(x, {0, 1}), 1e-13, 1e-13);
  dsm_test::check_close(dsm::sum(x * 2.0 + 1.0, {1}), dsm::eval(dsm::sum(x, {1}) * 2.0 + 4.0), 1e-13, 1e-13);
  CHECK(dsm::sum(dsm::Tensor<std::int32_t>::arange(101)).item() == 5050);
}

TEST_CASE("long reductions are exact enough and independent of the thread count") {
  dsm::Generator g{1};
  auto x = TF::rand({1000003}, g);
  const int saved = dsm::get_num_threads();
  dsm::set_num_threads(1);
  const float s1 = dsm::sum(x).item();
  const auto v1 = dsm::var(x).item();
  const auto a1 = dsm::argmax(x).item();
  dsm::set_num_threads(2);
  CHECK(dsm::sum(x).item() == s1);
  CHECK(dsm::var(x).item() == v1);
  CHECK(dsm::argmax(x).item() == a1);
  dsm::set_num_threads(saved);
  double ref = 0;
  for (float v : x.to_vector()) ref += v;
  CHECK(static_cast<double>(s1) == doctest::Approx(ref).epsilon(1e-7));
}

TEST_CASE("NaN, infinities, ties and empty inputs behave as in PyTorch") {
  auto x = TF::from({1.f, NAN, 3.f, 3.f});
  CHECK(std::isnan(dsm::max(x).item()));
  CHECK(dsm::argmax(x).item() == 1);
  CHECK(dsm::argmax(TF::from({1.f, 3.f, 3.f})).item() == 1);  // first of the ties
  CHECK(dsm::logsumexp(TF::from({-INFINITY, -INFINITY})).item() == -INFINITY);
  CHECK(dsm::logsumexp(TF::from({1.f, INFINITY})).item() == INFINITY);
  CHECK(dsm::logsumexp(TF::from({1000.f, 1000.f})).item() == doctest::Approx(1000.f + std::log(2.f)));
  CHECK(dsm::sum(TF::zeros({0, 3}), {0}).to_vector() == std::vector<float>{0, 0, 0});
  CHECK_THROWS_WITH_AS(dsm::max(TF::zeros({0, 3}), {0}), "max: cannot reduce over an empty dimension of a tensor of shape [0, 3]", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::sum(TF::zeros({2, 3}), {0, -2}), "sum: dimension 0 appears more than once in [0, -2]", dsm::shape_error);
  CHECK_THROWS_AS(dsm::mean(TF::zeros({2, 3}), 2), dsm::index_error);
  CHECK(dsm::std_dev(TF::from({1.f, 3.f})).item() == doctest::Approx(std::sqrt(2.f)));
}
