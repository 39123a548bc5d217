#include <doctest/doctest.h>

#include <dsm/dsm.hpp>

using dsm::Shape;

TEST_CASE("Shape: construction, numel, printing") {
  Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.str() == "[2, 3, 4]");
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{}.str() == "[]");
  s.insert(1, 7);
  CHECK(s == Shape{2, 7, 3, 4});
  s.erase(0);
  CHECK(s == Shape{7, 3, 4});
  CHECK_THROWS_WITH_AS(Shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), "Shape: rank 9 exceeds the maximum rank 8", dsm::shape_error);
}

TEST_CASE("contiguous strides") {
  CHECK(dsm::contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
  CHECK(dsm::contiguous_strides({5}) == Shape{1});
  CHECK(dsm::contiguous_strides({}) == Shape{});
}

TEST_CASE("broadcasting follows numpy") {
  CHECK(dsm::broadcast_shapes("add", {4, 1, 3}, {5, 1}) == Shape{4, 5, 3});
  CHECK(dsm::broadcast_shapes("add", {}, {2, 2}) == Shape{2, 2});
  CHECK(dsm::broadcast_shapes("add", {1}, {0}) == Shape{0});
  CHECK(dsm::broadcasts_to({3, 1}, {2, 3, 4}));
  CHECK_FALSE(dsm::broadcasts_to({2, 3}, {3, 3}));
  CHECK_FALSE(dsm::broadcasts_to({2, 3, 4}, {3, 4}));
  CHECK(dsm::broadcast_strides({3, 1}, {1, 1}, {2, 3, 4}) == Shape{0, 1, 0});
  CHECK_THROWS_WITH_AS(dsm::broadcast_shapes("mul", {2, 3}, {4, 3}), "mul: shapes [2, 3] and [4, 3] cannot be broadcast together", dsm::shape_error);
}

TEST_CASE("wrap_dim accepts negative dimensions and rejects out-of-range ones") {
  CHECK(dsm::wrap_dim("op", -1, 3) == 2);
  CHECK(dsm::wrap_dim("op", 0, 0) == 0);
  CHECK_THROWS_WITH_AS(dsm::wrap_dim("sum", 3, 3), "sum: dimension 3 is out of range for a tensor of rank 3", dsm::index_error);
  CHECK_THROWS_AS(dsm::wrap_dim("sum", -4, 3), dsm::index_error);
}
