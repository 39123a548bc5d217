#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using TD = dsm::Tensor<double>;
using TF = dsm::Tensor<float>;
using TI = dsm::Tensor<std::int64_t>;

TEST_CASE("topk and stable sort equal PyTorch, ties included") {
  dsm_test::Fixtures fx("ops.txt");
  const TD ties = fx.get("ties.x");
  auto [tv, ti] = dsm::topk(ties, 4);
  dsm_test::check_equal(tv, fx.get("topk.v"));
  // PyTorch leaves the order of tied values unspecified; dsm puts the lower index first.
  CHECK(ti.to_vector() == std::vector<std::int64_t>{0, 2, 5, 3, 4, 0, 1, 3});
  auto [sv, si] = dsm::sort(ties, 1);
  dsm_test::check_equal(sv, fx.get("sort.v"));
  dsm_test::check_equal(si, fx.get<std::int64_t>("sort.i"));
  auto [dv, di] = dsm::sort(ties, 1, true);
  dsm_test::check_equal(dv, fx.get("sortd.v"));
  dsm_test::check_equal(di, fx.get<std::int64_t>("sortd.i"));
  dsm_test::check_equal(dsm::argsort(ties, 1), fx.get<std::int64_t>("sort.i"));
  auto [kv, ki] = dsm::topk(fx.get("red.x"), 2, 0, false);  // smallest, along a leading dim
  dsm_test::check_equal(kv, fx.get("topk0.v"));
  dsm_test::check_equal(ki, fx.get<std::int64_t>("topk0.i"));
}

TEST_CASE("NaN sorts as the largest value and k is checked") {
  auto x = TF::from({2.f, NAN, -1.f, 5.f});
  auto [v, i] = dsm::topk(x, 2);
  CHECK(i.to_vector() == std::vector<std::int64_t>{1, 3});
  CHECK(dsm::argsort(x).to_vector() == std::vector<std::int64_t>{2, 0, 3, 1});
  CHECK_THROWS_WITH_AS(dsm::topk(x, 5), "topk: k = 5 is out of range for dimension -1 of size 4 in [4]", dsm::index_error);
  auto [ev, ei] = dsm::topk(x, 0);
  CHECK(ev.numel() == 0);
}
