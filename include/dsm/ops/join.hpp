// dsm/ops/join.hpp: cat, stack, split and chunk.
//
//   auto x  = dsm::cat({a, b}, 0);           // along an existing dimension
//   auto s  = dsm::stack({a, b}, 0);         // along a new one
//   auto parts = dsm::split(x, 2, 1);        // views of 2 columns each (the last may be smaller)
//   auto [q, k, v] = ... dsm::chunk(qkv, 3, -1) ...;   // 3 views
//
// split and chunk return views that share storage; cat and stack copy into one new tensor.
#pragma once

#include <initializer_list>
#include <vector>

#include "../core/tensor.hpp"

namespace dsm {

/// Concatenates tensors along `dim`; all other dimensions must agree.
template <class T, class B>
Tensor<T, B> cat(const std::vector<Tensor<T, B>>& xs, std::int64_t dim0 = 0) {
  if (xs.empty()) fail<shape_error>("cat", "expects at least one tensor");
  const Tensor<T, B>& first = xs.front();
  const int dim = wrap_dim("cat", dim0, first.rank());
  if (first.rank() == 0) fail<shape_error>("cat", "zero-dimensional tensors cannot be concatenated");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool ok = s.rank() == first.rank();
    for (int d = 0; ok && d < s.rank(); ++d) ok = d == dim || s[d] == first.shape()[d];
    if (!ok) fail<shape_error>("cat", "tensor ", i, " has shape ", s, ", expected ", first.shape(), " except in dimension ", dim);
    out_shape[dim] += s[dim];
  }
  Tensor<T, B> out(out_shape);
  std::int64_t at = 0;
  for (const auto& x : xs) {
    out.narrow(dim, at, x.size(dim)).copy_(x);
    at += x.size(dim);
  }
  return out;
}

template <class T, class B>
Tensor<T, B> cat(std::initializer_list<Tensor<T, B>> xs, std::int64_t dim = 0) {
  return cat(std::vector<Tensor<T, B>>(xs), dim);
}

/// Stacks equally shaped tensors along a new dimension `dim`.
template <class T, class B>
Tensor<T, B> stack(const std::vector<Tensor<T, B>>& xs, std::int64_t dim = 0) {
  if (xs.empty()) fail<shape_error>("stack", "expects at least one tensor");
  const int d = wrap_dim("stack", dim, xs.front().rank() + 1);
  std::vector<Tensor<T, B>> parts;
  parts.reserve(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!(xs[i].shape() == xs.front().shape()))
      fail<shape_error>("stack", "tensor ", i, " has shape ", xs[i].shape(), ", expected ", xs.front().shape());
    parts.push_back(xs[i].unsqueeze(d));
  }
  return cat(parts, d);
}

template <class T, class B>
Tensor<T, B> stack(std::initializer_list<Tensor<T, B>> xs, std::int64_t dim = 0) {
  return stack(std::vector<Tensor<T, B>>(xs), dim);
}

/// Views of `size` entries each along `dim` (the last one may be smaller).
template <class T, class B>
std::vector<Tensor<T, B>> split(const Tensor<T, B>& x, std::int64_t size, std::int64_t dim0 = 0) {
  const int dim = wrap_dim("split", dim0, x.rank());
  if (size <= 0) fail<shape_error>("split", "split size must be positive, got ", size);
  std::vector<Tensor<T, B>> out;
  const std::int64_t n = x.size(dim);
  for (std::int64_t at = 0; at < n || (n == 0 && out.empty()); at += size) out.push_back(x.narrow(dim, at, std::min(size, n - at)));
  return out;
}

/// Views with the listed sizes along `dim`; the sizes must add up to size(dim).
template <class T, class B>
std::vector<Tensor<T, B>> split(const Tensor<T, B>& x, const std::vector<std::int64_t>& sizes, std::int64_t dim0 = 0) {
  const int dim = wrap_dim("split", dim0, x.rank());
  std::int64_t total = 0;
  for (auto s : sizes) {
    if (s < 0) fail<shape_error>("split", "negative split size ", s);
    total += s;
  }
  if (total != x.size(dim)) fail<shape_error>("split", "sizes add up to ", total, " but dimension ", dim, " of ", x.shape(), " has size ", x.size(dim));
  std::vector<Tensor<T, B>> out;
  std::int64_t at = 0;
  for (auto s : sizes) out.push_back(x.narrow(dim, at, s)), at += s;
  return out;
}

/// `chunks` views of (nearly) equal size along `dim`, as torch.chunk (sizes ceil(n / chunks)).
template <class T, class B>
std::vector<Tensor<T, B>> chunk(const Tensor<T, B>& x, std::int64_t chunks, std::int64_t dim = 0) {
  if (chunks <= 0) fail<shape_error>("chunk", "number of chunks must be positive, got ", chunks);
  const std::int64_t n = x.size(dim);
  return split(x, std::max<std::int64_t>(1, (n + chunks - 1) / chunks), dim);
}

}  // namespace dsm
