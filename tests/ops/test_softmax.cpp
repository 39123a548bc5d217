#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using TD = dsm::Tensor<double>;
using TF = dsm::Tensor<float>;

TEST_CASE("softmax and log_softmax along every dimension equal PyTorch") {
  dsm_test::Fixtures fx("ops.txt");
  const TD x = fx.get("red.x");
  for (int d = 0; d < 3; ++d) {
    dsm_test::check_close(dsm::softmax(x, d), fx.get("softmax." + std::to_string(d)), 1e-13, 1e-15);
    dsm_test::check_close(dsm::log_softmax(x, d), fx.get("log_softmax." + std::to_string(d)), 1e-13, 1e-14);
  }
  dsm_test::check_close(dsm::softmax(x, -1), fx.get("softmax.2"), 1e-13, 1e-15);
}

TEST_CASE("softmax is stable for large logits and takes expressions") {
  auto p = dsm::softmax(TF::from({1000.f, 1000.f, -1000.f}));
  CHECK(p(0) == doctest::Approx(0.5f));
  CHECK(p(2) == 0.f);
  auto lp = dsm::log_softmax(TF::from({1e4f, 0.f}));
  CHECK(lp(0) == 0.f);
  CHECK(lp(1) == -1e4f);
  auto x = TF::randn({4, 7});
  dsm_test::check_close(dsm::softmax(x * 2.f), dsm::softmax(dsm::eval(x * 2.f)), 0, 0);
  auto rows = dsm::sum(dsm::softmax(x, 1), 1);
  for (float v : rows.to_vector()) CHECK(v == doctest::Approx(1.f).epsilon(1e-6));
  auto h = dsm::softmax(x.to<dsm::bf16>(), 1);
  dsm_test::check_close(h.to<float>(), dsm::softmax(x.to<dsm::bf16>().to<float>(), 1), 0.01, 0.004);
  CHECK_THROWS_AS(dsm::softmax(x, 2), dsm::index_error);
}
