// dsm/ops/sort.hpp: sort, argsort and top-k along one dimension.
//
//   auto [vals, idx] = dsm::topk(scores, 2);          // the 2 largest per row, int64 indices
//   auto [s, order]  = dsm::sort(x, -1, true);        // descending
//   auto order2      = dsm::argsort(x);
//
// Orders are stable: equal values keep their original order (for top-k, the lower index first),
// so routing decisions built on top-k are reproducible. NaN counts as larger than every number,
// as in PyTorch.
#pragma once

#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "../expr/assign.hpp"
#include "reduce.hpp"

namespace dsm {

template <class T, class B>
struct ValuesIndices {
  Tensor<T, B> values;
  Tensor<std::int64_t, B> indices;
};

namespace detail {
/// a before b in a descending (or ascending) order with NaN as the largest value.
template <class C>
bool order_before(C a, C b, bool descending) {
  const bool an = a != a, bn = b != b;
  if (an || bn) return descending ? (an && !bn) : (!an && bn);
  return descending ? a > b : a < b;
}

/// Applies `per_row(values_row, n, out_values, out_indices)` to each row along `dim`, returning
/// tensors whose `dim` has `out_n` entries.
template <class T, class B, class F>
ValuesIndices<T, B> rowwise_select(const char* op, const Tensor<T, B>& x, std::int64_t dim, std::int64_t out_n, F per_row) {
  const Tensor<T, B> src = x.rank() == 0 ? x.reshape({1}) : x;
  const int d = wrap_dim(op, dim, src.rank());
  const Tensor<T, B> rows = src.transpose(d, -1).contiguous();
  const std::int64_t n = rows.size(-1), outer = n ? rows.numel() / n : 0;
  Shape out_shape = rows.shape();
  out_shape[out_shape.rank() - 1] = out_n;
  Tensor<T, B> vals(out_shape);
  Tensor<std::int64_t, B> idx(out_shape);
  B::parallel_for(outer, 64, [&](std::int64_t b, std::int64_t e) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(n));
    for (std::int64_t r = b; r < e; ++r) per_row(rows.data() + r * n, n, order, vals.data() + r * out_n, idx.data() + r * out_n);
  });
  if (x.rank() == 0) return {vals.reshape({}), idx.reshape({})};
  return {vals.transpose(d, -1).contiguous(), idx.transpose(d, -1).contiguous()};
}
}  // namespace detail

/// Sorted values and their original indices along `dim` (stable).
template <class T, class B>
ValuesIndices<T, B> sort(const Tensor<T, B>& x, std::int64_t dim = -1, bool descending = false) {
  const std::int64_t n = x.rank() == 0 ? 1 : x.size(dim);
  return detail::rowwise_select("sort", x, dim, n, [descending](const T* p, std::int64_t len, std::vector<std::int64_t>& order, T* v, std::int64_t* ix) {
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return detail::order_before(static_cast<compute_t<T>>(p[a]), static_cast<compute_t<T>>(p[b]), descending);
    });
    for (std::int64_t j = 0; j < len; ++j) v[j] = p[order[static_cast<std::size_t>(j)]], ix[j] = order[static_cast<std::size_t>(j)];
  });
}

/// Indices that sort `x` along `dim` (stable).
template <class T, class B>
Tensor<std::int64_t, B> argsort(const Tensor<T, B>& x, std::int64_t dim = -1, bool descending = false) {
  return sort(x, dim, descending).indices;
}

/// The k largest (or smallest) values along `dim` and their indices, in order; ties keep the
/// lower index first. Requires 0 <= k <= size(dim).
template <class T, class B>
ValuesIndices<T, B> topk(const Tensor<T, B>& x, std::int64_t k, std::int64_t dim = -1, bool largest = true) {
  const std::int64_t n = x.rank() == 0 ? 1 : x.size(dim);
  if (k < 0 || k > n) fail<index_error>("topk", "k = ", k, " is out of range for dimension ", dim, " of size ", n, " in ", x.shape());
  return detail::rowwise_select("topk", x, dim, k, [k, largest](const T* p, std::int64_t, std::vector<std::int64_t>& order, T* v, std::int64_t* ix) {
    std::iota(order.begin(), order.end(), 0);
    auto before = [&](std::int64_t a, std::int64_t b) {
      const auto va = static_cast<compute_t<T>>(p[a]), vb = static_cast<compute_t<T>>(p[b]);
      if (detail::order_before(va, vb, largest)) return true;
      if (detail::order_before(vb, va, largest)) return false;
      return a < b;  // equal: lower index first
    };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    for (std::int64_t j = 0; j < k; ++j) v[j] = p[order[static_cast<std::size_t>(j)]], ix[j] = order[static_cast<std::size_t>(j)];
  });
}

}  // namespace dsm
