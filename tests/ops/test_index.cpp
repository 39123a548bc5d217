#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

#include "support/fixtures.hpp"

using TD = dsm::Tensor<double>;
using TF = dsm::Tensor<float>;
using TI = dsm::Tensor<std::int64_t>;

namespace {
const dsm_test::Fixtures& fx() { return dsm_test::fixture_file("ops.txt"); }
}  // namespace

TEST_CASE("gather, scatter, scatter_add, index_select, index_add equal PyTorch") {
  const TD g = fx().get("gather.x");
  dsm_test::check_equal(dsm::gather(g, 1, fx().get<std::int64_t>("gather.i")), fx().get("gather.y1"));
  dsm_test::check_equal(dsm::gather(g, 0, fx().get<std::int64_t>("gather.i0")), fx().get("gather.y0"));
  const TD src = fx().get("scatter.src");
  dsm_test::check_equal(dsm::scatter(g, 0, fx().get<std::int64_t>("scatter.i"), src), fx().get("scatter.y"));
  dsm_test::check_close(dsm::scatter_add(g, 0, fx().get<std::int64_t>("scatter_add.i"), src), fx().get("scatter_add.y"), 1e-15, 1e-15);
  dsm_test::check_equal(dsm::index_select(g, 1, fx().get<std::int64_t>("isel.i")), fx().get("isel.y1"));
  dsm_test::check_equal(dsm::index_select(g, 0, TI::from({3, 3, 1})), fx().get("isel.y0"));
  dsm_test::check_close(dsm::index_add(g, 0, fx().get<std::int64_t>("iadd.i"), fx().get("iadd.src"), 0.5), fx().get("iadd.y"), 1e-15, 1e-15);
  dsm_test::check_equal(dsm::embedding(g, fx().get<std::int64_t>("emb.ids")), fx().get("emb.y"));
  dsm_test::check_equal(dsm::one_hot(TI::from({2, 0, 3}), 5), fx().get<std::int64_t>("onehot.y"));
  const dsm::Tensor<bool> mask = fx().get<bool>("mask.m");
  dsm_test::check_equal(dsm::masked_fill(g, mask, -7.5), fx().get("mask.y"));
  TD inplace = g.clone();
  dsm::masked_fill_(inplace, mask, -7.5);
  dsm_test::check_equal(inplace, fx().get("mask.y"));
}

TEST_CASE("int32 indices, strided inputs and in-place forms") {
  auto x = TF::arange(0.f, 12.f).reshape({3, 4});
  auto idx32 = dsm::Tensor<std::int32_t>::from({{3, 0}, {1, 1}, {2, 3}});
  auto y = dsm::gather(x.t().contiguous().t(), 1, idx32);  // same values, column-major input
  CHECK(y.to_vector() == std::vector<float>{3, 0, 5, 5, 10, 11});
  auto acc = TF::zeros({3});
  auto ids = TI::from({0, 2, 2, 2, 1});
  dsm::scatter_add_(acc, 0, ids, TF::ones({5}));
  CHECK(acc.to_vector() == std::vector<float>{1, 1, 3});
  auto rows = TF::zeros({3, 2});
  dsm::index_add_(rows, 0, TI::from({1, 1}), TF::ones({2, 2}));
  CHECK(rows.to_vector() == std::vector<float>{0, 0, 2, 2, 0, 0});
  // Along dim 1 (the slice-by-slice path) with a repeated index, against a plain loop.
  auto cols = TF::zeros({2, 3});
  dsm::index_add_(cols, 1, TI::from({2, 0, 2}), TF::arange(1.f, 7.f).reshape({2, 3}), 2.0);
  CHECK(cols.to_vector() == std::vector<float>{4, 0, 8, 10, 0, 20});
  auto sel = dsm::index_select(x.t(), 0, TI::from({1}));  // non-contiguous path
  CHECK(sel.to_vector() == std::vector<float>{1, 5, 9});
}

TEST_CASE("out-of-range indices throw before anything is touched") {
  auto x = TF::arange(0.f, 6.f).reshape({2, 3});
  CHECK_THROWS_WITH_AS(dsm::gather(x, 1, TI::from({{0, 3}, {1, 1}})), "gather: index 3 is out of bounds for dimension 1 with size 3", dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::gather(x, 0, TI::from({{-1, 0, 0}})), "gather: index -1 is out of bounds for dimension 0 with size 2", dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::gather(x, 0, TI::from({1, 0})), "gather: index [2] must have the same rank as the input [2, 3]", dsm::shape_error);
  auto target = x.clone();
  CHECK_THROWS_AS(dsm::scatter_add_(target, 1, TI::from({{0, 7}}), TF::ones({1, 2})), dsm::index_error);
  CHECK(target.to_vector() == x.to_vector());
  CHECK_THROWS_WITH_AS(dsm::index_select(x, 0, TI::from({2})), "index_select: index 2 is out of bounds for dimension 0 with size 2", dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::index_add(x, 0, TI::from({0}), TF::ones({2, 3})), "index_add: source [2, 3] must have shape [1, 3] for input [2, 3] and 1 indices", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::embedding(x, TI::from({0, 2})), "embedding: index 2 is out of range for 2 embeddings", dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::one_hot(TI::from({0, 4}), 3), "one_hot: class 4 is out of range for 3 classes", dsm::index_error);
  CHECK_THROWS_WITH_AS(dsm::masked_fill(x, dsm::Tensor<bool>::from({true, false}), 0.0), "masked_fill: mask [2] cannot be broadcast to [2, 3]", dsm::shape_error);
}
