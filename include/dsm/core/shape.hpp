// dsm/core/shape.hpp: shapes and strides of rank <= 8, stored inline, and numpy broadcasting.
//
//   dsm::Shape s{32, 512};
//   auto st = dsm::contiguous_strides(s);                    // [512, 1]
//   auto b  = dsm::broadcast_shapes("add", {4, 1, 3}, {5, 1});   // [4, 5, 3]
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace dsm {

/// A fixed-capacity list of up to max_rank int64 values; used for shapes, strides and indices.
/// Trivially copyable so it can be passed into kernels by value.
class Shape {
 public:
  constexpr Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : Shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}
  explicit Shape(std::span<const std::int64_t> dims) {
    if (dims.size() > static_cast<std::size_t>(max_rank))
      fail<shape_error>("Shape", "rank ", dims.size(), " exceeds the maximum rank ", max_rank);
    rank_ = static_cast<int>(dims.size());
    for (int i = 0; i < rank_; ++i) d_[i] = dims[static_cast<std::size_t>(i)];
  }
  /// A shape of `rank` entries all equal to `fill`.
  static Shape filled(int rank, std::int64_t fill) {
    Shape s;
    s.resize(rank, fill);
    return s;
  }

  DSM_HOST_DEVICE constexpr int rank() const { return rank_; }
  DSM_HOST_DEVICE constexpr int size() const { return rank_; }
  DSM_HOST_DEVICE constexpr bool empty() const { return rank_ == 0; }
  DSM_HOST_DEVICE constexpr std::int64_t operator[](int i) const { return d_[i]; }
  DSM_HOST_DEVICE constexpr std::int64_t& operator[](int i) { return d_[i]; }
  DSM_HOST_DEVICE constexpr const std::int64_t* data() const { return d_; }
  DSM_HOST_DEVICE constexpr std::int64_t* data() { return d_; }
  const std::int64_t* begin() const { return d_; }
  const std::int64_t* end() const { return d_ + rank_; }
  std::int64_t back() const { return d_[rank_ - 1]; }

  void resize(int rank, std::int64_t fill = 0) {
    if (rank < 0 || rank > max_rank) fail<shape_error>("Shape", "rank ", rank, " is outside [0, ", max_rank, "]");
    for (int i = rank_; i < rank; ++i) d_[i] = fill;
    rank_ = rank;
  }
  void push_back(std::int64_t v) {
    if (rank_ == max_rank) fail<shape_error>("Shape", "rank would exceed the maximum rank ", max_rank);
    d_[rank_++] = v;
  }
  void insert(int pos, std::int64_t v) {
    push_back(0);
    for (int i = rank_ - 1; i > pos; --i) d_[i] = d_[i - 1];
    d_[pos] = v;
  }
  void erase(int pos) {
    for (int i = pos; i + 1 < rank_; ++i) d_[i] = d_[i + 1];
    --rank_;
  }

  /// Product of the entries (1 for rank 0).
  DSM_HOST_DEVICE constexpr std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(d_[i]);
    }
    return s + "]";
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  std::int64_t d_[max_rank] = {};
  int rank_ = 0;
};

/// Strides are element counts per dimension, stored the same way as a shape.
using Strides = Shape;

/// Row-major (C-order) strides of a shape.
inline Strides contiguous_strides(const Shape& shape) {
  Strides st = Shape::filled(shape.rank(), 1);
  for (int i = shape.rank() - 2; i >= 0; --i) st[i] = st[i + 1] * (shape[i + 1] > 1 ? shape[i + 1] : 1);
  return st;
}

/// Turns a possibly negative dimension into [0, rank), or throws index_error naming `op`.
inline int wrap_dim(const char* op, std::int64_t dim, int rank) {
  const int r = rank == 0 ? 1 : rank;  // a scalar accepts dim 0 and -1, as in PyTorch
  if (dim < -r || dim >= r) fail<index_error>(op, "dimension ", dim, " is out of range for a tensor of rank ", rank);
  return static_cast<int>(dim < 0 ? dim + r : dim);
}

/// The numpy broadcast of two shapes, or shape_error naming `op` and both shapes.
inline Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const int r = a.rank() > b.rank() ? a.rank() : b.rank();
  Shape out = Shape::filled(r, 1);
  for (int i = 0; i < r; ++i) {
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const std::int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) fail<shape_error>(op, "shapes ", a, " and ", b, " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// True when `from` broadcasts to exactly `to` (numpy rules, `to` unchanged).
inline bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  for (int i = 0; i < from.rank(); ++i) {
    const std::int64_t f = from[i], t = to[to.rank() - from.rank() + i];
    if (f != t && f != 1) return false;
  }
  return true;
}

/// Strides that read a tensor of (`shape`, `strides`) as if it had shape `to`: broadcast
/// dimensions get stride 0. Requires broadcasts_to(shape, to).
inline Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& to) {
  Strides out = Shape::filled(to.rank(), 0);
  const int lead = to.rank() - shape.rank();
  for (int i = 0; i < shape.rank(); ++i) out[lead + i] = shape[i] == 1 ? 0 : strides[i];
  return out;
}

}  // namespace dsm
