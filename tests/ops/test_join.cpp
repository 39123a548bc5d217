#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

using dsm::Shape;
using TF = dsm::Tensor<float>;

TEST_CASE("cat and stack copy, split and chunk return views") {
  auto a = TF::arange(0.f, 6.f).reshape({2, 3});
  auto b = TF::arange(6.f, 10.f).reshape({2, 2});
  auto c = dsm::cat({a, b}, 1);
  CHECK(c.shape() == Shape{2, 5});
  CHECK(c.to_vector() == std::vector<float>{0, 1, 2, 6, 7, 3, 4, 5, 8, 9});
  auto s = dsm::stack({a, TF(a + 1.f)}, 1);  // a new middle dimension
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK(s(1, 1, 2) == 6.f);
  auto parts = dsm::split(c, 2, 1);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].shape() == Shape{2, 1});
  CHECK(parts[0].storage() == c.storage());
  auto sized = dsm::split(c, std::vector<std::int64_t>{1, 4}, 1);
  CHECK(sized[1](0, 0) == 1.f);
  auto ch = dsm::chunk(TF::arange(0.f, 10.f), 3);
  REQUIRE(ch.size() == 3);
  CHECK(ch[0].numel() == 4);
  CHECK(ch[2].numel() == 2);
}

TEST_CASE("cat, stack and split name the mismatch") {
  auto a = TF::zeros({2, 3});
  CHECK_THROWS_WITH_AS(dsm::cat({a, TF::zeros({3, 3})}, 1), "cat: tensor 1 has shape [3, 3], expected [2, 3] except in dimension 1", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::stack({a, TF::zeros({2, 2})}), "stack: tensor 1 has shape [2, 2], expected [2, 3]", dsm::shape_error);
  CHECK_THROWS_WITH_AS(dsm::split(a, std::vector<std::int64_t>{1, 1}, 1), "split: sizes add up to 2 but dimension 1 of [2, 3] has size 3", dsm::shape_error);
  CHECK_THROWS_AS(dsm::cat(std::vector<TF>{}), dsm::shape_error);
  CHECK_THROWS_AS(dsm::chunk(a, 0), dsm::shape_error);
}

TEST_CASE("zero-size tensors pass through expressions and ops without touching memory") {
  auto e = TF::zeros({0, 3});
  TF y = dsm::relu(e * 2.f + 1.f);
  CHECK(y.shape() == Shape{0, 3});
  CHECK(dsm::matmul(e, TF::zeros({3, 4})).shape() == Shape{0, 4});
  auto k0 = dsm::matmul(TF::zeros({2, 0}), TF::zeros({0, 5}));  // empty inner dimension: zeros
  CHECK(k0.to_vector() == std::vector<float>(10, 0.f));
  CHECK(dsm::sum(e, {1}).shape() == Shape{0});
  CHECK(dsm::softmax(e, 1).shape() == Shape{0, 3});
  auto [v, i] = dsm::topk(e, 2, 1);
  CHECK(v.shape() == Shape{0, 2});
  CHECK(dsm::cat({TF::ones({2, 3}), e}, 0).shape() == Shape{2, 3});
  CHECK(dsm::index_select(TF::ones({2, 3}), 0, dsm::Tensor<std::int64_t>::zeros({0})).shape() == Shape{0, 3});
  CHECK(dsm::embedding(TF::ones({4, 2}), dsm::Tensor<std::int64_t>::zeros({0})).shape() == Shape{0, 2});
  CHECK(dsm::sort(TF::zeros({0})).values.numel() == 0);
  CHECK(dsm::to_string(e) == "tensor([], size=(0, 3))");
}
